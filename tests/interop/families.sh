#!/bin/sh
# tests/interop/families.sh - qforge on today's open-weight families, checked by transformers.
#
# Usage: sh tests/interop/families.sh QFORGE_BINARY
#   Builds tiny checkpoints of every family in tests/tools/make_families.py with transformers
#   (random weights, in a temporary folder: ~80 MB that need not live in git), converts each
#   with qforge in the scheme FAMILY_SCHEMES gives it (one per family keeps CI short; all
#   formats are covered across the families), and checks each artifact with check_families.py:
#   it loads in transformers + compressed-tensors with no missing or unexpected keys, every
#   weight is the base's within the format's rounding, no fused expert tensor is silently left
#   in bf16, finite logits.  What qforge does not do yet is a strict XFAIL there (issue 15).
#   FAMILIES="a b" restricts the families; FAMILY_SCHEMES="family:scheme ..." overrides;
#   GPTQ_FAMILIES (same form) names the families also converted with --method gptq.
#   Python: $PYTHON or python3 with torch, transformers and compressed-tensors
#   (tests/interop/requirements.txt).  Without them: "SKIP families: <reason>", exit 77.
#   Prints "N passed, N failed" last; exit 1 when anything failed.
. "$(dirname "$0")/lib.sh"
interop_begin families $# 1 1 "${1:-}"
DEFAULT_SCHEMES="nemotron_h:w4a16 qwen3_next:fp8-dynamic qwen3_5_moe_text:w4a16-asym deepseek_v3:w4a16
deepseek_v32:nvfp4a16 gpt_oss:w4a16 llama4_text:w4a16 gemma3_text:mxfp4a16 phi3:w8a8 glm4_moe:nvfp4a16
deepseek_v4:fp8-dynamic gemma4_text:w4a16"
FAMILY_SCHEMES=${FAMILY_SCHEMES:-$DEFAULT_SCHEMES}
# Families the runner runs are also calibrated (GPTQ, few samples: this checks the artifact, not
# its quality; tests/cli/model_families.sh holds GPTQ to beat RTN) and loaded the same way.
GPTQ_FAMILIES=${GPTQ_FAMILIES:-"gemma3_text:w4a16 phi3:w4a16 glm4_moe:w4a16 gpt_oss:w4a16 nemotron_h:w4a16 qwen3_next:w4a16
qwen3_5_moe_text:w4a16 deepseek_v3:w4a16"}
need_torch
need_qforge
interop_tmp
wanted=${FAMILIES:-$(echo "$FAMILY_SCHEMES" | tr ' ' '\n' | sed 's/:.*//')}
# shellcheck disable=SC2086
if ! "$py" "$root/tests/tools/make_families.py" "$tmp/base" $wanted >"$tmp/make.log" 2>&1; then
    echo "FAIL make_families.py:"; grep -v "Writing\|Warning" "$tmp/make.log" | tail -n 15 | sed 's/^/    /'
    fail=$((fail + 1))
fi
for fam in $wanted; do
    [ -f "$tmp/base/$fam/config.json" ] || continue
    for fs in $FAMILY_SCHEMES; do
        [ "${fs%%:*}" = "$fam" ] || continue
        s=${fs#*:}
        out=$tmp/$fam-$s
        if ! "$qforge" convert "$tmp/base/$fam" -o "$out" --scheme "$s" -q >"$out.log" 2>&1; then
            echo "FAIL $fam $s: qforge convert exited non-zero:"; sed 's/^/    /' "$out.log"
            fail=$((fail + 1)); continue
        fi
        PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH} "$py" "$here/check_families.py" "$tmp/base/$fam" "$s=$out" \
            >"$tmp/$fam.log" 2>"$tmp/$fam.err"
        grep -E '^(FAIL|XFAIL|XPASS|     )' "$tmp/$fam.log"
        counts_add "$tmp/$fam.log" || { echo "FAIL $fam: check_families.py crashed:"; tail -n 15 "$tmp/$fam.err" | sed 's/^/    /'; }
        rm -rf "$out"
    done
    for fs in $GPTQ_FAMILIES; do
        [ "${fs%%:*}" = "$fam" ] || continue
        s=${fs#*:}
        out=$tmp/$fam-$s-gptq
        if ! "$qforge" convert "$tmp/base/$fam" -o "$out" --scheme "$s" --method gptq --calib-samples 16 -q \
            >"$out.log" 2>&1; then
            echo "FAIL $fam $s gptq: qforge convert exited non-zero:"; sed 's/^/    /' "$out.log"
            fail=$((fail + 1)); continue
        fi
        PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH} "$py" "$here/check_families.py" "$tmp/base/$fam" "$s-gptq=$out" \
            >"$tmp/$fam-gptq.log" 2>"$tmp/$fam-gptq.err"
        grep -E '^(FAIL|XFAIL|XPASS|     )' "$tmp/$fam-gptq.log"
        counts_add "$tmp/$fam-gptq.log" || { echo "FAIL $fam gptq: check_families.py crashed:"; tail -n 15 "$tmp/$fam-gptq.err" | sed 's/^/    /'; }
        rm -rf "$out"
    done
    # a partitioned conversion (--layers parts, then merge) is the single run's artifact byte
    # for byte; for GPT-OSS that includes the fused experts kept dense, which every part lists
    if [ "$fam" = gpt_oss ]; then
        p=$tmp/$fam-parts
        if "$qforge" convert "$tmp/base/$fam" -o "$p.whole" --scheme w4a16 -q >"$p.log" 2>&1 &&
           "$qforge" convert "$tmp/base/$fam" -o "$p.0" --scheme w4a16 --layers 0-1 -q >>"$p.log" 2>&1 &&
           "$qforge" convert "$tmp/base/$fam" -o "$p.1" --scheme w4a16 --layers 2-3 -q >>"$p.log" 2>&1 &&
           "$qforge" merge "$p.1" "$p.0" -o "$p.merged" >>"$p.log" 2>&1 &&
           grep -q "qforge merge: warning: 8 fused expert tensor(s) kept in full precision" "$p.log" &&
           diff -r "$p.whole" "$p.merged" >>"$p.log" 2>&1; then
            pass=$((pass + 1))
        else echo "FAIL $fam: merged --layers parts differ from the single run (or merge does not warn):"
            tail -n 8 "$p.log" | sed 's/^/    /'; fail=$((fail + 1)); fi
        rm -rf "$p".*
    fi
done
interop_end
