#!/bin/sh
# The main job on the bundled model: convert tests/data/tiny-llama into every scheme (and
# once with GPTQ calibration), verify each artifact, measure its drift from the source on
# held-out text, and print a table.  Usage: scripts/demo.sh QFORGE_BINARY
set -eu
qforge=${1:-build/qforge}
model=tests/data/tiny-llama
out=build/demo
windows=${DEMO_WINDOWS:-8}
rm -rf "$out"; mkdir -p "$out"
src_mb=$(du -cb "$model"/*.safetensors | tail -1 | awk '{printf "%.1f", $1/1e6}')
echo "qforge demo: $model ($src_mb MB of bf16 weights) -> $out/<scheme>"
echo "drift = mean KL divergence and top-1 agreement against the bf16 model on the first $windows"
echo "512-token windows of tests/data/eval.txt (qforge validate, weights and activations as served)"
echo
printf '%-22s %8s %6s %8s %7s %9s %7s\n' artifact "size MB" ratio convert verify "mean KLD" top-1
row() { # row NAME SCHEME ARGS...
    name=$1 s=$2; shift 2
    res=$("$qforge" convert "$model" -o "$out/$name" --scheme "$s" --json "$@" 2>/dev/null)
    secs=$(echo "$res" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
    mb=$(du -cb "$out/$name"/*.safetensors | tail -1 | awk '{printf "%.1f", $1/1e6}')
    if "$qforge" verify "$out/$name" -q >/dev/null 2>&1; then v=OK; else v=FAILED; fi
    val=$("$qforge" validate --base "$model" --quant "$out/$name" --text tests/data/eval.txt --chunks "$windows" --json 2>/dev/null)
    kld=$(echo "$val" | sed -n 's/.*"mean_kld":\([0-9.e-]*\).*/\1/p')
    top1=$(echo "$val" | sed -n 's/.*"top1_agreement":\([0-9.e-]*\).*/\1/p')
    printf '%-22s %8s %5.2fx %7.1fs %7s %9.4f %7.3f\n' "$name" "$mb" "$(echo "$src_mb $mb" | awk '{print $1/$2}')" "$secs" "$v" "$kld" "$top1"
    [ "$v" = OK ] || exit 6
}
for s in fp8-dynamic w8a8 w4a16 w4a16-asym nvfp4a16 mxfp4a16; do row "$s" "$s"; done
row w4a16-asym-gptq w4a16-asym --method gptq --calib-samples 32
echo
echo "Each folder loads in vLLM as-is (compressed-tensors); qforge.manifest.json seals every file and"
echo "tensor (qforge verify). The gptq row calibrated on 32 x 512 tokens of the bundled text."
