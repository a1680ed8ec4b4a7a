#!/bin/sh
# target_bits.sh - `qforge convert --target-bits`: what it refuses (one line, the documented exit
# code, nothing written), and that a run meets its budget by the manifest's own accounting
# (the independent count from the safetensors headers, the load in transformers +
# compressed-tensors and the drift are tests/interop/mixed.sh's).
. "$(dirname "$0")/lib.sh"
M=tests/data/tiny-llama
quick="--target-samples 1 --calib-seqlen 64 -q"

expect_exit 2 "--target-bits 0 refused" -- "$QFORGE" convert "$M" -o "$T/z" --target-bits 0
stderr_has "--target-bits '0'" "names the value"
no_output "$T/z" "nothing written for --target-bits 0"
expect_exit 2 "--target-bits below the smallest mix refused" -- "$QFORGE" convert "$M" -o "$T/low" --target-bits 3 $quick
stderr_has "below the smallest mix" "says why, with the smallest bits per weight"
no_output "$T/low" "nothing written below the smallest mix"
expect_exit 2 "--target-bits with another --scheme refused" -- "$QFORGE" convert "$M" -o "$T/s" --target-bits 4.5 --scheme nvfp4a16
stderr_has "drop --scheme nvfp4a16" "names the scheme"
no_output "$T/s" "nothing written with --scheme"
expect_exit 5 "--target-bits with --layout gguf refused" -- "$QFORGE" convert "$M" -o "$T/g" --target-bits 4.5 --layout gguf
stderr_has "not with --layout gguf" "names the layout"
no_output "$T/g" "nothing written for gguf"
expect_exit 5 "--target-bits with --layout modelopt refused" -- "$QFORGE" convert "$M" -o "$T/mo" --target-bits 4.5 --layout modelopt
no_output "$T/mo" "nothing written for modelopt"
expect_exit 5 "--target-bits with --layers refused" -- "$QFORGE" convert "$M" -o "$T/l" --target-bits 4.5 --layers 0-2 $quick
stderr_has "not with --layers" "names --layers"
no_output "$T/l" "nothing written for --layers"

expect_exit 2 "--target-size below the tensors kept as they are refused" -- "$QFORGE" convert "$M" -o "$T/ts" --target-size 1M $quick
stderr_has "tensors kept as they are" "says what the size must hold"
no_output "$T/ts" "nothing written for a too small --target-size"
expect_exit 2 "--target-bits and --target-size together refused" -- "$QFORGE" convert "$M" -o "$T/tb" --target-bits 5 --target-size 18M
no_output "$T/tb" "nothing written for both budgets"
expect_exit 0 "--target-size 18M converts" -- "$QFORGE" convert "$M" -o "$T/t18" --target-size 18M $quick
size=$(cat "$T"/t18/*.safetensors | wc -c)
# the budget is of tensor bytes; the safetensors header (a few KB here) comes on top
if [ "$size" -le $((18000000 + 65536)) ] && [ "$size" -gt 17000000 ]; then ok "--target-size 18M: weights file $size bytes";
else bad "--target-size 18M: weights file $size bytes"; fi

expect_exit 0 "--target-bits 5 converts" -- "$QFORGE" convert "$M" -o "$T/m5" --target-bits 5 --json $quick
if grep -q '"mixed_precision"' "$T/stdout"; then ok "--json reports the choice"; else bad "--json has no mixed_precision"; fi
bits=$(sed -n 's/.*"bits_per_weight": *\([0-9.]*\).*/\1/p' "$T/m5/qforge.manifest.json" | head -n 1)
if [ -n "$bits" ] && awk -v b="$bits" 'BEGIN { exit !(b <= 5 && b > 4.5) }'; then ok "manifest: $bits bits per weight, within 5 and using it";
else bad "manifest bits_per_weight '$bits' not in (4.5, 5]"; fi
if grep -q '"target_bits"' "$T/m5/qforge.manifest.json" && grep -qi 'mixed precision' "$T/m5/README.md"; then
    ok "recipe and model card record the choice"; else bad "recipe / model card do not record --target-bits"; fi
expect_exit 0 "the artifact verifies" -- "$QFORGE" verify "$T/m5"
finish
