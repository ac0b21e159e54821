#!/usr/bin/env bash
# parrot.sh: N conversations into a new run folder parrot_<YYYYmmdd_HHMMSS>/.
#   ./parrot.sh <number_of_iterations> <path/config.json> [-j K]
#   ./parrot.sh <number_of_iterations> --resume <parrot_YYYYmmdd_HHMMSS>
# Uses the project's .venv when it exists (make setup / scripts/setup.sh).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="$here/.venv/bin/python"
[ -x "$py" ] || py="$(command -v python3)"
if [ $# -lt 1 ]; then
    echo "usage: ./parrot.sh <number_of_iterations> <path/config.json> [-j K]" >&2
    echo "       ./parrot.sh <number_of_iterations> --resume <parrot_YYYYmmdd_HHMMSS>" >&2
    exit 2
fi
if ! "$py" -c "import broken_record.cli.batch" 2>/dev/null; then
    echo "parrot.sh: the broken_record package cannot be imported by $py: run 'make setup' (or: pip install -e $here)" >&2
    exit 2
fi
exec "$py" -m broken_record.cli.batch "$@"
