#!/bin/sh
# Python packages for the interop tests only (never used by qforge itself), in a private
# virtual environment build/pyenv made from tests/interop/requirements.txt: every package
# pinned with its hash, so an interop result means the same thing on every machine and a
# tampered or re-uploaded wheel is refused by pip rather than tested against.
# Prints the environment's python on stdout; otherwise nothing, and the reason as the last
# line on stderr (scripts/run-tests.sh shows it with the SKIP, and fails on it under CI=true).
# The venv is rebuilt from scratch when requirements.txt changes (a stamp in the venv holds
# the hash of the file it was made from), so no package outlives its pin.
# Usage: scripts/pydeps.sh [VENV]   (default $QF_PYENV, else build/pyenv)
set -u
venv=${1:-${QF_PYENV:-build/pyenv}}
req=tests/interop/requirements.txt
py=$venv/bin/python3
stamp=$venv/qforge-requirements.sha256
fail() { echo "pydeps: $*" >&2; exit 1; }

[ -f "$req" ] || fail "$req is missing"
mkdir -p "$(dirname "$venv")" || fail "cannot make $(dirname "$venv")"
want=$(sha256sum <"$req" | cut -d' ' -f1)
if [ -x "$py" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && "$py" -c 'import sys' 2>/dev/null; then
    echo "$py"; exit 0
fi
command -v python3 >/dev/null 2>&1 || fail "no python3 on PATH (Debian: apt-get install python3 python3-venv)"
echo "pydeps: making $venv from $req (pip install --require-hashes; a few minutes the first time)" >&2
# --clear: packages of an older requirements file must not survive into the new venv
python3 -m venv --clear "$venv" >"$venv.log" 2>&1 ||
    fail "python3 -m venv $venv failed (Debian: apt-get install python3-venv): $(tail -n 1 "$venv.log")"
"$py" -m pip install -q --disable-pip-version-check --require-hashes -r "$req" >>"$venv.log" 2>&1 ||
    fail "pip install --require-hashes -r $req failed (PyPI unreachable?): $(grep -E 'ERROR|error' "$venv.log" | tail -n 1)"
"$py" -c "import numpy, safetensors, ml_dtypes, gguf, xxhash" >>"$venv.log" 2>&1 ||
    fail "$venv was made but cannot import numpy/safetensors/ml_dtypes/gguf/xxhash (see $venv.log)"
echo "$want" >"$stamp"
echo "$py"
