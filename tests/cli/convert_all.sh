# Converts both fixtures into every RTN scheme, verifies each artifact, checks determinism,
# and checks that the calibrated-only schemes are refused.
. tests/cli/lib.sh
for model in tiny-llama tiny-moe; do
    for s in fp8-dynamic w4a16 w4a16-asym nvfp4a16 mxfp4a16 w8a8; do
        out=$T/$model-$s
        expect_exit 0 "convert $model $s" -- "$QFORGE" convert tests/data/$model -o "$out" --scheme $s -q
        expect_exit 0 "verify $model $s" -- "$QFORGE" verify "$out" -q
        expect_exit 0 "inspect $model $s" -- "$QFORGE" inspect "$out" --json
        grep -q '"quant_method":"compressed-tensors"' "$T/stdout" && ok "inspect shows compressed-tensors" || bad "inspect $model $s: no quantization_config"
    done
done
# same command twice: byte-identical artifact
"$QFORGE" convert tests/data/tiny-moe -o "$T/again" --scheme w4a16-asym -q --threads 1
if cmp -s "$T/again/qforge.manifest.json" "$T/tiny-moe-w4a16-asym/qforge.manifest.json" &&
   cmp -s "$T/again/model.safetensors" "$T/tiny-moe-w4a16-asym/model.safetensors"; then
    ok "deterministic: 1 thread and all threads give identical bytes"
else bad "two conversions differ"; fi
# what is quantized: 42 Linear weights of tiny-llama; lm_head and router kept
expect_exit 0 "convert --json" -- "$QFORGE" convert tests/data/tiny-llama -o "$T/j" --scheme w4a16 --json
grep -q '"quantized":42' "$T/stdout" && ok "42 Linear weights quantized" || bad "quantized count: $(cat "$T/stdout")"
grep -q '"lm_head"' "$T/j/config.json" && ok "lm_head in ignore list" || bad "lm_head not ignored"
grep -q 'block_sparse_moe.gate"' "$T/tiny-moe-w4a16/config.json" && ok "router in ignore list" || bad "router not ignored"
# sharding: a 10 MB limit gives several shards with an index
expect_exit 0 "convert sharded" -- "$QFORGE" convert tests/data/tiny-llama -o "$T/sh" --scheme fp8-dynamic -q --max-shard-size 10M
[ -f "$T/sh/model.safetensors.index.json" ] && [ -f "$T/sh/model-00001-of-00003.safetensors" ] && ok "shards + index written" || bad "no shards: $(ls "$T/sh")"
expect_exit 0 "verify sharded" -- "$QFORGE" verify "$T/sh" -q
expect_exit 0 "sharded artifact reads back" -- "$QFORGE" inspect "$T/sh"
# bad calibration options refused before anything is written
expect_exit 2 "zero calibration samples refused" -- "$QFORGE" convert tests/data/tiny-llama -o "$T/c0" --scheme w4a16 --method gptq --calib-samples 0
stderr_has "calibration options out of range" "refusal names the reason"
no_output "$T/c0" "no output after refusal"
expect_exit 2 "unknown scheme" -- "$QFORGE" convert tests/data/tiny-llama -o "$T/x" --scheme int3
stderr_has "unknown scheme 'int3'" "unknown scheme named"
expect_exit 2 "existing destination refused" -- "$QFORGE" convert tests/data/tiny-llama -o "$T/j" --scheme w4a16
expect_exit 0 "--help" -- "$QFORGE" convert --help
finish
