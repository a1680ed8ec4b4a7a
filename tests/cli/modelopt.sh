# --layout modelopt: tiny-llama in FP8 (per channel), NVFP4 and W4A16 (AWQ layout) is written
# with ModelOpt's tensors and JSON records, verifies, and decodes to what the compressed-tensors
# artifact of the same scheme decodes (tests/test_modelopt --compare: FP8 and W4A16 bit for bit,
# NVFP4 codes and block scales identical, values within 2 ulp); schemes without a ModelOpt form
# are refused with exit 5.
. tests/cli/lib.sh
M=tests/data/tiny-llama
cmp_bin=$(dirname "$QFORGE")/tests/test_modelopt
for s in fp8-dynamic nvfp4a16 w4a16; do
    expect_exit 0 "$s: modelopt layout" -- "$QFORGE" convert $M -o "$T/mo-$s" --layout modelopt --scheme $s -q
    expect_exit 0 "$s: compressed-tensors layout" -- "$QFORGE" convert $M -o "$T/ct-$s" --scheme $s -q
    expect_exit 0 "$s: modelopt artifact verifies" -- "$QFORGE" verify "$T/mo-$s" -q
    grep -q '"name": "modelopt"' "$T/mo-$s/hf_quant_config.json" && ok "$s: hf_quant_config.json producer" ||
        bad "$s: hf_quant_config.json"
    grep -q '"quant_method": "modelopt"' "$T/mo-$s/config.json" && ok "$s: config.json quant_method modelopt" ||
        bad "$s: config.json quantization_config"
    grep -q -- "- modelopt" "$T/mo-$s/README.md" && ok "$s: model card tags the layout" || bad "$s: model card"
    if [ -x "$cmp_bin" ]; then
        expect_exit 0 "$s: decodes like the compressed-tensors artifact" -- "$cmp_bin" --compare "$T/ct-$s" "$T/mo-$s" $s
    else
        echo "skip - $cmp_bin not built"
    fi
done
"$QFORGE" inspect "$T/mo-w4a16" --tensors >"$T/insp" 2>&1
grep -q "q_proj.weight  *U8  *\[192, 384\]" "$T/insp" && ok "W4A16_AWQ weight packed along the output dim" || bad "AWQ weight shape"
grep -q "q_proj.pre_quant_scale" "$T/insp" && ok "W4A16_AWQ pre_quant_scale present" || bad "pre_quant_scale"
"$QFORGE" inspect "$T/mo-nvfp4a16" --tensors >"$T/insp" 2>&1
grep -q "q_proj.weight_scale_2  *F32  *\[\]" "$T/insp" && ok "NVFP4 weight_scale_2 is a scalar" || bad "weight_scale_2"
expect_exit 5 "w8a8 has no ModelOpt layout" -- "$QFORGE" convert $M -o "$T/x" --layout modelopt --scheme w8a8 -q
stderr_has "no ModelOpt layout" "refusal says why"
no_output "$T/x" "no output after a refused layout"
expect_exit 2 "unknown layout" -- "$QFORGE" convert $M -o "$T/x" --layout onnx --scheme w4a16 -q
finish
