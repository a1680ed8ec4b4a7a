#!/bin/sh
# tests/bench/gguf_mix_types.sh - qforge's per-tensor types (and bytes) for each llama.cpp file
# type against llama-quantize's own, on the bundled models.
#
# Usage: sh tests/bench/gguf_mix_types.sh [QFORGE] [LLAMACPP_BIN_DIR] [OUT_DIR]
#   defaults build/qforge, build/lcpp/bld/bin (docs/bench.md), build/gguf-bench/types.
# For each model (MODELS, default tiny-llama tiny-tied tiny-yarn) qforge writes the bf16 GGUF,
# llama-quantize quantizes it to each TYPE (TYPES, default Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K_S Q4_K_M
# Q5_K_S Q5_K_M Q6_K), qforge converts the checkpoint with --scheme type (rtn), and
# tests/interop/check_gguf_types.py --bytes compares the two: the types must agree (exit 1
# otherwise); identical bytes are reported.  About a minute.
set -u
Q=${1:-build/qforge}
B=${2:-build/lcpp/bld/bin}
D=${3:-build/gguf-bench/types}
PY=${PYTHON:-build/pyenv/bin/python}
[ -x "$B/llama-quantize" ] || { echo "gguf_mix_types.sh: $B/llama-quantize not found (docs/bench.md)" >&2; exit 77; }
export LD_LIBRARY_PATH="$B${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$D"
fail=0
for m in ${MODELS:-tiny-llama tiny-tied tiny-yarn}; do
    rm -rf "$D/$m-bf16"
    "$Q" convert "tests/data/$m" -o "$D/$m-bf16" --layout gguf --scheme bf16 -q >/dev/null || exit 1
    for T in ${TYPES:-Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K}; do
        t=$(echo "$T" | tr 'A-Z' 'a-z')
        nice "$B/llama-quantize" "$D/$m-bf16/model.gguf" "$D/$m-$t-lc.gguf" "$T" 2 >"$D/$m-$t-lc.log" 2>&1 ||
            { echo "$m $T: llama-quantize failed ($D/$m-$t-lc.log)"; fail=1; continue; }
        rm -rf "$D/$m-$t-qf"
        "$Q" convert "tests/data/$m" -o "$D/$m-$t-qf" --layout gguf --scheme "$t" -q >/dev/null || { fail=1; continue; }
        r=$("$PY" tests/interop/check_gguf_types.py "$D/$m-$t-lc.gguf" "$D/$m-$t-qf/model.gguf" --bytes) || fail=1
        echo "$m $T: $(echo "$r" | tail -n 1)"
    done
done
exit $fail
