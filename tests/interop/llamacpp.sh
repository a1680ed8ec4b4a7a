#!/bin/sh
# tests/interop/llamacpp.sh - qforge's GGUF run by llama.cpp itself (opt-in: building llama.cpp
# from source takes many minutes, so `make test` runs this only when QF_TEST_LLAMACPP=1; run it
# directly before a release and record the result in docs/bench.md).
#
# Usage: sh tests/interop/llamacpp.sh QFORGE_BINARY
#   check_llamacpp.py: llama.cpp's tokenization of tests/data/eval.txt equals the Hugging Face
#   tokenizer's ids, and its ppl-512 perplexity on qforge's f16 GGUF of each mapped family's
#   fixture (tiny-llama, tiny-tied, tiny-yarn, tiny-moe, tiny-qwen2moe, tiny-qwen3moe, tiny-phi3)
#   equals `qforge validate` on the same file within 0.1 % (first $QF_LLAMACPP_WINDOWS windows,
#   8); window 0's logits within 5e-3 of transformers' where the fixture has a reference.
#   Python: $PYTHON, else build/llamacpp-venv/bin/python when it exists, else python3; it needs
#   llama_cpp and numpy (tests/interop/requirements-llamacpp.txt).  Without them: a SKIP line
#   and exit 77.  Prints "N passed, N failed" last; exit 1 when anything failed.
set -u
if [ $# -ne 1 ]; then
    echo "usage: sh tests/interop/llamacpp.sh QFORGE_BINARY" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
qforge=$1
case $qforge in /*) ;; *) qforge=$(pwd)/$qforge ;; esac
venv=$root/build/llamacpp-venv
py=${PYTHON:-}
[ -z "$py" ] && [ -x "$venv/bin/python" ] && py=$venv/bin/python
py=${py:-python3}

if ! "$py" -c "import llama_cpp, numpy" 2>/dev/null; then
    echo "SKIP tests/interop/llamacpp.sh: $py cannot import llama_cpp and numpy; install them (builds llama.cpp," \
         "CPU only, several minutes) with: python3 -m venv $venv && CMAKE_ARGS='-DGGML_NATIVE=ON" \
         "-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_CUDA=OFF'" \
         "$venv/bin/pip install --require-hashes -r tests/interop/requirements-llamacpp.txt"
    exit 77
fi
if [ ! -x "$qforge" ]; then
    echo "tests/interop/llamacpp.sh: $qforge is not an executable qforge binary" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
log=$(mktemp "${TMPDIR:-/tmp}/qf-llamacpp.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT
"$py" "$here/check_llamacpp.py" "$qforge" "$root" "${QF_LLAMACPP_WINDOWS:-8}" >"$log" 2>&1
rc=$?
cat "$log"
# a crash before the checker's summary line still counts, as one failure
tail -n 1 "$log" | grep -q '^[0-9]* passed, [0-9]* failed$' || { echo "0 passed, 1 failed"; exit 1; }
[ $rc = 0 ]
