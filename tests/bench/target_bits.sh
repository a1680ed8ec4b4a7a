#!/bin/sh
# tests/bench/target_bits.sh - --target-bits against uniform schemes at the same and at larger
# sizes (docs/bench.md, "Mixed precision to a size budget").
#
# Usage: sh tests/bench/target_bits.sh QFORGE OUT_DIR [MODEL] [CHUNKS]
#   MODEL: a fixture under tests/data (default tiny-llama); CHUNKS: ppl-512 windows of
#   tests/data/eval.txt (default: the whole text).  For each artifact: the conversion (GPTQ,
#   default calibration), `qforge validate --json` against the bf16 model, and the bits per
#   weight of the quantized Linears counted from the safetensors headers by
#   tests/interop/check_mixed.py.  Prints one line per artifact.
set -eu
qforge=$1 out=$2 model=${3:-tiny-llama} chunks=${4:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
py=${PYTHON:-$root/build/pyenv/bin/python}
src=$root/tests/data/$model
mkdir -p "$out"
# w4a16-asym's own bits per weight on this model (equal size), then 4.5 (nvfp4a16's)
eq=$("$py" - "$src" <<'PY'
import json, os, struct, sys
sys.path.insert(0, os.path.join(os.path.dirname(sys.argv[1]), "..", "interop"))
from check_mixed import headers, candidate
h = headers(sys.argv[1]); b = w = 0
for k, v in h.items():
    if candidate(k, v):
        r, c = v["shape"]; w += r * c
        b += r * c // 2 + r * c // 128 * 2 + (r // 8) * (c // 128) * 4 + 16
print(f"{8 * b / w:.6f}")
PY
)
set -- "uniform-w4a16-asym-gptq|--scheme w4a16-asym" "uniform-nvfp4a16-gptq|--scheme nvfp4a16" \
       "target-$eq-gptq|--target-bits $eq" "target-4.5-gptq|--target-bits 4.5"
for spec in "$@"; do
    label=${spec%%|*} args=${spec#*|}
    a=$out/$model-$label
    rm -rf "$a"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    "$qforge" convert "$src" -o "$a" $args --method gptq -q >"$a.convert.log" 2>&1
    t1=$(date +%s)
    "$qforge" validate --base "$src" --quant "$a" --text "$root/tests/data/eval.txt" ${chunks:+--chunks $chunks} \
        --json -q >"$a.validate.json"
    bpw=$(cd "$root/tests/interop" && "$py" check_mixed.py "$src" "$a" | sed -n 's/.*bytes: \([0-9.]*\) bits per weight/\1/p')
    size=$(cat "$a"/*.safetensors | wc -c)
    "$py" - "$a.validate.json" "$label" "$bpw" "$size" "$((t1 - t0))" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:30s} bpw {float(sys.argv[3]):.4f}  weights file {int(sys.argv[4])} B  convert {sys.argv[5]} s  "
      f"windows {v['windows']}  mean KLD {v['mean_kld']:.5f}  PPL {v['quant_ppl']:.4f} (base {v['ppl']:.4f})  "
      f"top-1 {v['top1_agreement']:.4f}", flush=True)
PY
done
