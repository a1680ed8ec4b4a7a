#!/bin/sh
# Per-tensor fingerprint of every scheme x method x layout on the fixtures: one line per
# tensor ("model scheme method-options tensor xxh3") or per file for GGUF.  Run at two
# commits and diff the listings to prove a refactor changed no byte of any artifact:
#   tests/tools/tensor_identity.sh build/qforge /tmp/ident-new > new.txt
# Calibrates on 8 windows of 128 tokens so that the whole matrix takes minutes on two cores;
# every code path (every scheme, method, target, fold, layout) runs as at the defaults.
set -u
QF=$1; T=$2
rm -rf "$T"; mkdir -p "$T"
n=0
run() { # model tag args...
    model=$1; tag=$2; shift 2
    n=$((n + 1)); out=$T/$n
    if "$QF" convert tests/data/$model -o "$out" -q --threads 2 "$@" >/dev/null 2>"$T/err"; then
        if [ -f "$out/qforge.manifest.json" ]; then
            python3 - "$out/qforge.manifest.json" "$model $tag" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
for t in sorted(m["tensors"], key=lambda t: t["name"]):
    print(sys.argv[2], t["name"], t["dtype"], "x".join(map(str, t["shape"])), t["xxh3_128"])
PY
        fi
        for f in "$out"/*.gguf; do [ -f "$f" ] && echo "$model $tag $(basename "$f") $(sha256sum < "$f" | cut -c1-64)"; done
    else
        echo "$model $tag refused: $(head -c 160 "$T/err" | tr '\n' ' ')"
    fi
    rm -rf "$out"
}
C="--calib-samples 8 --calib-seqlen 128"
for model in tiny-llama tiny-moe; do
    for s in fp8-dynamic w4a16 w4a16-asym nvfp4a16 mxfp4a16 w8a8 fp8 nvfp4; do
        run $model "$s/rtn" --scheme $s $C
        for m in gptq awq awq-gptq; do run $model "$s/$m" --scheme $s --method $m $C; done
        run $model "$s/gptq-qtarget" --scheme $s --method gptq --calib-target quantized $C
    done
    run $model "w4a16-asym/gptq-actorder-refit" --scheme w4a16-asym --method gptq --act-order --refit 1 $C
    run $model "w4a16/gptq-noclip" --scheme w4a16 --method gptq --clip-search 0 $C
    run $model "w4a16/awq-qtarget" --scheme w4a16 --method awq --calib-target quantized $C
    run $model "w8a8/smooth" --scheme w8a8 --smoothquant 0.5 $C
    run $model "fp8/smooth-gptq" --scheme fp8 --smoothquant 0.5 --method gptq $C
    run $model "w4a16/moe-floor-all" --scheme w4a16 --method gptq --moe-floor all $C
    for s in fp8 nvfp4 nvfp4a16 fp8-dynamic w4a16; do run $model "modelopt-$s" --scheme $s --layout modelopt $C; done
    for s in q8_0 q4_0 q4_k f16 bf16; do run $model "gguf-$s" --scheme $s --layout gguf; done
done
for model in tiny-tied tiny-swa; do
    for s in w4a16 nvfp4 fp8; do run $model "$s/gptq" --scheme $s --method gptq $C; done
done
