#!/bin/sh
# The main job on the bundled model: convert tests/data/tiny-llama into every scheme,
# verify each artifact, and print a table.  Usage: scripts/demo.sh QFORGE_BINARY
set -eu
qforge=${1:-build/qforge}
model=tests/data/tiny-llama
out=build/demo
rm -rf "$out"; mkdir -p "$out"
src_mb=$(du -cb "$model"/*.safetensors | tail -1 | awk '{printf "%.1f", $1/1e6}')
echo "qforge demo: $model ($src_mb MB of bf16 weights) -> $out/<scheme>"
echo
printf '%-12s %9s %7s %9s %8s\n' scheme "size MB" ratio "convert" verify
for s in fp8-dynamic w8a8 w4a16 w4a16-asym nvfp4a16 mxfp4a16; do
    res=$("$qforge" convert "$model" -o "$out/$s" --scheme "$s" --json)
    secs=$(echo "$res" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
    mb=$(du -cb "$out/$s"/*.safetensors | tail -1 | awk '{printf "%.1f", $1/1e6}')
    if "$qforge" verify "$out/$s" -q >/dev/null 2>&1; then v=OK; else v=FAILED; fi
    printf '%-12s %9s %6.2fx %8.2fs %8s\n' "$s" "$mb" "$(echo "$src_mb $mb" | awk '{print $1/$2}')" "$secs" "$v"
    [ "$v" = OK ] || exit 6
done
echo
echo "Each folder loads in vLLM as-is (compressed-tensors); qforge.manifest.json seals every file and tensor."
