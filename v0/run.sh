#!/usr/bin/env bash
# v0, the first design: the whole date as one long completion with EOS ignored.
#   bash v0/run.sh [--n-predict N] [--seed S] [--out DIR] [--url URL]
# Uses $LLAMA_URL if set (any llama-server), otherwise starts the embedded
# llama-server with the bundled SmolLM2-135M-Instruct. Writes
# v0/output/generation.json (or $V0_OUTPUT/generation.json). Then:
#   streamlit run v0/app.py
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
py="${PYTHON:-$root/.venv/bin/python}"
[ -x "$py" ] || py="$(command -v python3)"
exec "$py" "$here/generate.py" "$@"
