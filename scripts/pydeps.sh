#!/bin/sh
# Python reference packages for the interop tests only (never used by qforge itself), in a
# private virtual environment build/pyenv.  Prints the environment's python, or nothing when
# it cannot be made (no python3, no network): the interop tests then report SKIP.
set -u
venv=${1:-build/pyenv}
pkgs="numpy safetensors ml_dtypes gguf xxhash"
py=$venv/bin/python3
if [ -x "$py" ] && "$py" -c "import numpy, safetensors, ml_dtypes, gguf, xxhash" 2>/dev/null; then
    echo "$py"; exit 0
fi
command -v python3 >/dev/null 2>&1 || exit 0
python3 -m venv "$venv" >/dev/null 2>&1 || exit 0
"$py" -m pip install -q --disable-pip-version-check $pkgs >/dev/null 2>&1 || exit 0
"$py" -c "import numpy, safetensors, ml_dtypes, gguf, xxhash" 2>/dev/null && echo "$py"
