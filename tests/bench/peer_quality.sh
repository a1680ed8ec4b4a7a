#!/bin/sh
# peer_quality.sh - qforge against llm-compressor on quality (issue 18): a release / benchmark
# check, not part of `make test` (it needs torch and takes minutes).  Sets up what
# tests/bench/peer_quality.py needs, then runs it with the given options:
#   - build/qforge (built with `make NVCC=` when missing);
#   - the project's Python env with transformers + compressed-tensors, for the evaluator:
#     $PYENV (default build/pyenv, made by scripts/pydeps.sh);
#   - llm-compressor in its own venv, $LCENV (default build/lcenv), made when missing from the
#     pinned tests/tools/requirements-llmcompressor.txt (llmcompressor 0.14.0.1, torch on the CPU).
# Artifacts and evaluations are cached under build/peer/ (by qforge binary hash and
# llm-compressor version).  One thread for torch and qforge, OMP_WAIT_POLICY=PASSIVE, nice 10.
# Usage: tests/bench/peer_quality.sh [--windows 64] [--fixture tiny-moe] [--markdown FILE] ...
#        (tests/bench/peer_quality.py --help lists every option)
set -eu
cd "$(dirname "$0")/../.."
pyenv=${PYENV:-build/pyenv}
lcenv=${LCENV:-build/lcenv}
[ -x build/qforge ] || make -j2 NVCC= >build/peer-make.log 2>&1 || { echo "make failed: build/peer-make.log" >&2; exit 1; }
if [ ! -x "$pyenv/bin/python" ]; then
    echo "no $pyenv: scripts/pydeps.sh makes it (transformers + compressed-tensors, tests/interop/requirements.txt)" >&2
    exit 1
fi
if [ ! -x "$lcenv/bin/python" ] || ! "$lcenv/bin/python" -c "import llmcompressor" 2>/dev/null; then
    echo "peer_quality: making $lcenv from tests/tools/requirements-llmcompressor.txt (a few GB, minutes)" >&2
    python3 -m venv "$lcenv"
    "$lcenv/bin/pip" install -q --require-hashes -r tests/tools/requirements-llmcompressor.txt
fi
export OMP_WAIT_POLICY=PASSIVE TOKENIZERS_PARALLELISM=false
exec nice -n 10 "$pyenv/bin/python" tests/bench/peer_quality.py --lc-python "$lcenv/bin/python" "$@"
