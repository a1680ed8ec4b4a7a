#!/bin/sh
# tests/interop/quant_sources.sh - already-quantized sources (DeepSeek FP8 blocks, GPT-OSS MXFP4
# experts), dequantized on read by qforge, checked against transformers.
#
# Usage: sh tests/interop/quant_sources.sh QFORGE_BINARY
#   Builds the tiny deepseek_v3 and gpt_oss checkpoints (make_families.py) and their release
#   layouts (make_quant_sources.py: FP8 128x128 blocks with weight_scale_inv, MXFP4 *_blocks /
#   *_scales), in a temporary folder.  Then:
#   1. `qforge convert SRC --to safetensors` (the bf16 dequantization) equals transformers' own
#      dequantization of SRC bit for bit (check_quant_sources.py);
#   2. SRC converts to every RTN scheme (QS_SCHEMES), `qforge verify` passes, and the tensors
#      equal (manifest hashes) those converted from the step-1 bf16 checkpoint;
#   3. check_families.py loads each artifact in transformers + compressed-tensors and compares
#      it with the dequantized model of step 1 (GPT-OSS experts stay bf16 and are listed);
#   4. `qforge inspect` names the source format (human and --json);
#   5. compressed-tensors and ModelOpt FP8 sources (qforge's fp8-dynamic of tiny-llama, both
#      layouts) dequantize as compressed-tensors' dequantize() and ModelOpt's formula do, and
#      GPTQ from each writes the tensors GPTQ from its dequantization writes;
#   6. an FP8-block tiny-llama through the model runner: `validate --base` equals validate with its
#      dequantization as the base, and GPTQ writes the same tensors from either;
#   7. a source whose quant_method qforge does not read is refused with exit 5, nothing written;
#   8. the GPT-OSS MXFP4 source through the model runner, as 6 (gpt_oss runs since issue 15).
#   Python: $PYTHON or python3 with torch, transformers and compressed-tensors
#   (tests/interop/requirements.txt).  Without them: "SKIP quant_sources: <reason>", exit 77.
#   Prints "N passed, N failed" last; exit 1 when anything failed.
. "$(dirname "$0")/lib.sh"
interop_begin quant_sources $# 1 1 "${1:-}"
QS_SCHEMES=${QS_SCHEMES:-"w4a16 w4a16-asym fp8-dynamic w8a8 nvfp4a16 mxfp4a16"}
need_torch
need_qforge
interop_tmp
if ! "$py" "$root/tests/tools/make_families.py" "$tmp/base" deepseek_v3 gpt_oss >"$tmp/make.log" 2>&1 ||
   ! "$py" "$root/tests/tools/make_quant_sources.py" "$tmp/base" "$tmp/src" >>"$tmp/make.log" 2>&1; then
    echo "FAIL make_families.py / make_quant_sources.py:"; grep -v "Writing\|Warning" "$tmp/make.log" | tail -n 15 | sed 's/^/    /'
    fail=$((fail + 1))
fi
for pair in deepseek_v3:deepseek_v3_fp8 gpt_oss:gpt_oss_mxfp4; do
    fam=${pair%%:*} src=$tmp/src/${pair#*:}
    [ -f "$src/config.json" ] || continue
    mkdir -p "$tmp/deq"
    # 1. the dequantization itself (the folder is named after the family: check_families.py reads it)
    if ! "$qforge" convert "$src" --to safetensors -o "$tmp/deq/$fam" -q >"$tmp/$fam-deq.log" 2>&1; then
        echo "FAIL $fam: qforge convert --to safetensors exited non-zero:"; sed 's/^/    /' "$tmp/$fam-deq.log"
        fail=$((fail + 1)); continue
    fi
    PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH} "$py" "$here/check_quant_sources.py" "$src" "$tmp/deq/$fam" \
        >"$tmp/$fam-bits.log" 2>"$tmp/$fam-bits.err"
    grep -E '^(FAIL|     )' "$tmp/$fam-bits.log"
    counts_add "$tmp/$fam-bits.log" || { echo "FAIL $fam: check_quant_sources.py crashed:"; tail -n 15 "$tmp/$fam-bits.err" | sed 's/^/    /'; }
    # 2. every RTN scheme, verified
    specs=""
    for s in $QS_SCHEMES; do
        out=$tmp/$fam-$s
        if ! "$qforge" convert "$src" -o "$out" --scheme "$s" -q >"$out.log" 2>&1; then
            echo "FAIL $fam $s: qforge convert exited non-zero:"; sed 's/^/    /' "$out.log"
            fail=$((fail + 1)); continue
        fi
        if "$qforge" verify "$out" >"$out.verify" 2>&1; then pass=$((pass + 1))
        else echo "FAIL $fam $s: qforge verify:"; sed 's/^/    /' "$out.verify"; fail=$((fail + 1)); fi
        # the same scheme from the dequantized bf16 checkpoint: the same tensors, hash for hash
        if "$qforge" convert "$tmp/deq/$fam" -o "$out.bf16" --scheme "$s" -q >"$out.bf16.log" 2>&1 &&
           "$py" -c "import json,sys; t=lambda d: json.load(open(d+'/qforge.manifest.json'))['tensors']; sys.exit(t(sys.argv[1]) != t(sys.argv[2]))" \
               "$out" "$out.bf16"; then pass=$((pass + 1))
        else echo "FAIL $fam $s: the artifact differs from the one made from the dequantized bf16 checkpoint"; fail=$((fail + 1)); fi
        rm -rf "$out.bf16"
        if grep -q "dense_experts" "$out/qforge.manifest.json" && ! grep -q "dequantized from the source's MXFP4" "$out.log"; then
            echo "FAIL $fam $s: dense experts of an MXFP4 source are not said to be dequantized"; fail=$((fail + 1))
        fi
        specs="$specs $s=$out"
    done
    # 3. the artifacts in transformers + compressed-tensors, against the dequantized model
    # shellcheck disable=SC2086
    PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH} "$py" "$here/check_families.py" "$tmp/deq/$fam" $specs \
        >"$tmp/$fam.log" 2>"$tmp/$fam.err"
    grep -E '^(FAIL|XFAIL|XPASS|     )' "$tmp/$fam.log"
    counts_add "$tmp/$fam.log" || { echo "FAIL $fam: check_families.py crashed:"; tail -n 15 "$tmp/$fam.err" | sed 's/^/    /'; }
done
# 4. inspect names the source format (human and --json)
for pair in deepseek_v3_fp8:"fp8-block 128x128" gpt_oss_mxfp4:mxfp4; do
    src=$tmp/src/${pair%%:*} want=${pair#*:}
    [ -d "$src" ] || continue
    if "$qforge" inspect "$src" | grep -q "source format: $want (config.json quantization_config.quant_method" &&
       "$qforge" inspect "$src" --json | "$py" -c "import json,sys; sys.exit(json.load(sys.stdin)['source_format']['format'] != sys.argv[1].split()[0])" "$want"
    then pass=$((pass + 1)); else echo "FAIL inspect ${pair%%:*}: no 'source format: $want' (human or --json)"; fail=$((fail + 1)); fi
done
# gptq_matches SRC DEQ LOG WHAT: GPTQ (which calibrates through the model runner) from a quantized
# source and from its dequantization writes the same tensors (manifest hashes)
gptq_matches() {
    for b in "$1" "$2"; do
        "$qforge" convert "$b" -o "$b-gptq" --scheme w4a16 --method gptq --calib-samples 8 --calib-seqlen 128 -q >>"$3" 2>&1
    done
    if "$py" -c "import json,sys; t=lambda d: json.load(open(d+'/qforge.manifest.json'))['tensors']; sys.exit(t(sys.argv[1]) != t(sys.argv[2]))" \
           "$1-gptq" "$2-gptq" 2>>"$3"; then pass=$((pass + 1))
    else echo "FAIL GPTQ from $4 differs from GPTQ from its dequantization:"; tail -n 5 "$3" | sed 's/^/    /'; fail=$((fail + 1)); fi
}
# 5. compressed-tensors and ModelOpt FP8 sources (tiny-llama through qforge's fp8-dynamic, both
#    layouts), dequantized and compared with compressed-tensors' dequantize / ModelOpt's formula;
#    GPTQ from each writes the tensors GPTQ from its dequantization writes
for layout in compressed-tensors modelopt; do
    a=$tmp/llama-fp8-$layout
    if "$qforge" convert "$root/tests/data/tiny-llama" -o "$a" --scheme fp8-dynamic --layout "$layout" -q >"$a.log" 2>&1 &&
       "$qforge" convert "$a" --to safetensors -o "$a.deq" -q >>"$a.log" 2>&1; then
        PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH} "$py" "$here/check_quant_sources.py" "$a" "$a.deq" >"$a.bits" 2>"$a.err"
        grep -E '^FAIL' "$a.bits"
        counts_add "$a.bits" || { echo "FAIL $layout fp8: check_quant_sources.py crashed:"; tail -n 15 "$a.err" | sed 's/^/    /'; }
        # calibration runs such a source as its dequantization too: GPTQ from either, same tensors
        gptq_matches "$a" "$a.deq" "$a.log" "a $layout FP8 source"
    else echo "FAIL $layout fp8 source: qforge convert exited non-zero:"; sed 's/^/    /' "$a.log"; fail=$((fail + 1)); fi
done
# 6. the model runner reads an FP8-block source as its dequantization: validate --base gives the
#    figures the dequantized checkpoint gives, and GPTQ (which calibrates through the runner)
#    writes the same tensors from either
ll=$tmp/src/tiny_llama_fp8
if [ -d "$ll" ] && "$qforge" convert "$ll" --to safetensors -o "$tmp/ll-deq" -q >"$tmp/ll.log" 2>&1 &&
   "$qforge" convert "$ll" -o "$tmp/ll-w4" --scheme w4a16 -q >>"$tmp/ll.log" 2>&1; then
    for b in "$ll" "$tmp/ll-deq"; do
        "$qforge" validate --base "$b" --quant "$tmp/ll-w4" --text "$root/tests/data/eval.txt" --chunks 2 --json 2>/dev/null |
            "$py" -c "import json,sys; r=json.load(sys.stdin); print(r['ppl'], r['quant_ppl'], r['mean_kld'], r['top1_agreement'])"
    done >"$tmp/ll.validate"
    if [ "$(wc -l <"$tmp/ll.validate")" = 2 ] && [ "$(sed -n 1p "$tmp/ll.validate")" = "$(sed -n 2p "$tmp/ll.validate")" ]; then
        pass=$((pass + 1))
    else echo "FAIL validate --base an FP8-block source differs from its dequantization:"; sed 's/^/    /' "$tmp/ll.validate"; fail=$((fail + 1)); fi
    gptq_matches "$ll" "$tmp/ll-deq" "$tmp/ll.log" "an FP8-block source"
else echo "FAIL tiny_llama_fp8: no source, or qforge convert failed:"; tail -n 5 "$tmp/ll.log" 2>/dev/null | sed 's/^/    /'; fail=$((fail + 1)); fi
# 7. a quantized source qforge does not read: refused (exit 5), nothing written
if [ -d "$tmp/src/gpt_oss_mxfp4" ]; then
    cp -r "$tmp/src/gpt_oss_mxfp4" "$tmp/gptq"
    "$py" -c "import json,sys; p=sys.argv[1]; c=json.load(open(p)); c['quantization_config']={'quant_method':'gptq','bits':4}; json.dump(c,open(p,'w'))" "$tmp/gptq/config.json"
    "$qforge" convert "$tmp/gptq" -o "$tmp/gptq-out" --scheme w4a16 -q >"$tmp/gptq.log" 2>&1
    rc=$?
    if [ "$rc" = 5 ] && [ ! -e "$tmp/gptq-out" ] && grep -q "quant_method 'gptq'" "$tmp/gptq.log"; then pass=$((pass + 1))
    else echo "FAIL an unread quant_method (gptq) is refused with exit 5 and nothing written (exit $rc):"; sed 's/^/    /' "$tmp/gptq.log"; fail=$((fail + 1)); fi
fi
# 8. the GPT-OSS MXFP4 source through the model runner (its experts dequantized on read): validate
#    --base equals validate of its dequantization (step 1), and GPTQ writes the same tensors from either
mx=$tmp/src/gpt_oss_mxfp4
if [ -d "$mx" ] && [ -d "$tmp/deq/gpt_oss" ]; then
    for b in "$mx" "$tmp/deq/gpt_oss"; do
        "$qforge" validate --base "$b" --text "$root/tests/data/eval.txt" --chunks 2 --json 2>/dev/null |
            "$py" -c "import json,sys; r=json.load(sys.stdin); print(r['ppl'], r['scored_tokens'])"
    done >"$tmp/mx.validate"
    if [ "$(wc -l <"$tmp/mx.validate")" = 2 ] && [ "$(sed -n 1p "$tmp/mx.validate")" = "$(sed -n 2p "$tmp/mx.validate")" ]; then
        pass=$((pass + 1))
    else echo "FAIL validate --base the GPT-OSS MXFP4 source differs from its dequantization:"; sed 's/^/    /' "$tmp/mx.validate"; fail=$((fail + 1)); fi
    gptq_matches "$mx" "$tmp/deq/gpt_oss" "$tmp/mx.log" "the GPT-OSS MXFP4 source"
else echo "FAIL gpt_oss_mxfp4: no source or no dequantization (step 1)"; fail=$((fail + 1)); fi
interop_end
