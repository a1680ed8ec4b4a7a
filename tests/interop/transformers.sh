#!/bin/sh
# tests/interop/transformers.sh - do qforge's artifacts load, and compute what qforge says they
# compute, in Hugging Face transformers + compressed-tensors (the library vLLM reads the config
# with)?  Backs the README's "Load it with vllm serve OUT_DIR" with a real loader.
#
# Usage: sh tests/interop/transformers.sh QFORGE_BINARY
#   For every fixture in FIXTURES and every artifact in ARTIFACTS (SCHEMES_TIED / SCHEMES_SWA / SCHEMES_YARN for
#   tiny-tied / tiny-swa unless ARTIFACTS is set): convert with qforge, run
#   `qforge validate --chunks $WINDOWS --json` on the first WINDOWS ppl-512 windows of
#   tests/data/eval.txt, then check_transformers.py loads the artifact (CPU, float32), requires
#   no missing / unexpected keys and a complete ignore list, and requires its mean
#   KL(base || quant) on the same windows within 2 % of qforge's (5 % for 8-bit
#   activations: check_transformers.py says why).
#   Python: $PYTHON or python3 with torch, transformers and compressed-tensors
#   (tests/interop/requirements.txt).  Without them: "SKIP transformers: <reason>", exit 77.
#   A fixture folder that does not exist is a printed note, and a FAIL when CI=true.
#   Prints "N passed, N failed" last; exit 1 when anything failed.
. "$(dirname "$0")/lib.sh"
interop_begin transformers $# 1 1 "${1:-}"
text=$root/tests/data/eval.txt

# The fixtures (folders under tests/data/): adding one is adding its name here.
#   tiny-llama  dense Llama: every scheme, the reference for the table in docs/bench.md
#   tiny-moe    Mixtral, per-expert w1/w2/w3 that transformers fuses at load (weight-only on
#               both sides; check_transformers.py patches transformers 5.23's fused-expert
#               dequantizer, docs/formats.md section 8): every scheme
#   tiny-tied   Qwen3, tie_word_embeddings (no lm_head tensor), q/k norms: SCHEMES_TIED
#   tiny-swa    Mistral, sliding_window 128 < the 512-token windows (its base is also checked
#               against the fixture's reference logits beyond the window): SCHEMES_SWA
#   tiny-yarn   Qwen2 (q/k/v biases) with YaRN RoPE scaling: SCHEMES_YARN, one of them calibrated
FIXTURES=${FIXTURES:-"tiny-llama tiny-moe tiny-tied tiny-swa tiny-yarn"}
artifacts_user=${ARTIFACTS:+set}
# label:scheme:method; the calibrated ones run on a few short windows (CI-sized), which is
# enough here: the check is that both sides compute the same thing, not how good it is.
ARTIFACTS=${ARTIFACTS:-"fp8-dynamic:fp8-dynamic:rtn w8a8:w8a8:rtn w4a16:w4a16:rtn w4a16-asym:w4a16-asym:rtn
    nvfp4a16:nvfp4a16:rtn mxfp4a16:mxfp4a16:rtn fp8:fp8:rtn nvfp4:nvfp4:rtn
    w4a16-asym-gptq:w4a16-asym:gptq nvfp4a16-gptq:nvfp4a16:gptq"}
# The extra fixtures test a model family, not the schemes again: one layout per weight kind
# (int8 + 8-bit activations, packed int4, fp4) and fp4 activations, to keep the
# whole run within a few minutes on 2 cores.  ARTIFACTS (when set) applies to every fixture.
SCHEMES_TIED=${SCHEMES_TIED:-"fp8-dynamic:fp8-dynamic:rtn w8a8:w8a8:rtn w4a16:w4a16:rtn nvfp4a16:nvfp4a16:rtn nvfp4:nvfp4:rtn"}
SCHEMES_SWA=${SCHEMES_SWA:-"fp8-dynamic:fp8-dynamic:rtn w4a16-asym:w4a16-asym:rtn nvfp4a16:nvfp4a16:rtn nvfp4:nvfp4:rtn"}
SCHEMES_YARN=${SCHEMES_YARN:-"w4a16:w4a16:rtn w8a8:w8a8:rtn w4a16-asym-gptq:w4a16-asym:gptq"}
WINDOWS=${WINDOWS:-2}
calib="--calib-samples 4 --calib-seqlen 256"

need_torch
need_qforge

interop_tmp

for fx in $FIXTURES; do
    model=$root/tests/data/$fx
    if [ ! -d "$model" ]; then
        if [ "${CI:-}" = true ]; then
            echo "FAIL $fx: tests/data/$fx does not exist (listed in FIXTURES)"
            fail=$((fail + 1))
        else
            echo "note: tests/data/$fx does not exist; fixture skipped (a FAIL when CI=true)"
        fi
        continue
    fi
    # transformers fuses MoE experts into 3-D tensors at load and runs them weight-only (no
    # input quantization), so on a MoE fixture both sides compare weight-only drift.
    aq=on
    grep -Eq '"num_(local_)?experts"' "$model/config.json" && aq=off
    specs=""
    artifacts=$ARTIFACTS
    if [ -z "$artifacts_user" ]; then
        case $fx in tiny-tied) artifacts=$SCHEMES_TIED ;; tiny-swa) artifacts=$SCHEMES_SWA ;; tiny-yarn) artifacts=$SCHEMES_YARN ;; esac
    fi
    for a in $artifacts; do
        label=${a%%:*}; rest=${a#*:}; scheme=${rest%%:*}; method=${rest#*:}
        out=$tmp/$fx-$label
        extra=""
        [ "$method" != rtn ] && extra="--method $method"
        case $scheme:$method in fp8:* | nvfp4:* | *:gptq | *:awq*) extra="$extra $calib" ;; esac
        # shellcheck disable=SC2086
        if ! "$qforge" convert "$model" -o "$out" --scheme "$scheme" $extra -q >"$out.log" 2>&1; then
            echo "FAIL $fx $label: qforge convert exited non-zero:"; sed 's/^/    /' "$out.log"
            fail=$((fail + 1)); continue
        fi
        if ! "$qforge" validate --base "$model" --quant "$out" --text "$text" --chunks "$WINDOWS" \
                --act-quant $aq --json -q \
                >"$out.json" 2>"$out.log"; then
            echo "FAIL $fx $label: qforge validate exited non-zero:"; sed 's/^/    /' "$out.log"
            fail=$((fail + 1)); continue
        fi
        pass=$((pass + 2))
        specs="$specs $label=$out=$out.json"
    done
    [ -z "$specs" ] && continue
    # shellcheck disable=SC2086
    "$py" "$here/check_transformers.py" "$model" "$text" "$WINDOWS" $specs >"$tmp/$fx.log" 2>"$tmp/$fx.err"
    grep -v '^[0-9]* passed, [0-9]* failed$' "$tmp/$fx.log"
    if counts_add "$tmp/$fx.log"; then
        echo "== $fx vs transformers: $counts_line"
    else
        echo "FAIL $fx: check_transformers.py crashed:"; tail -n 15 "$tmp/$fx.err" | sed 's/^/    /'
    fi
done

interop_end
