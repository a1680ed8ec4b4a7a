#!/bin/sh
# tests/interop/mixed.sh - do --target-bits artifacts load and compute what qforge says in
# Hugging Face transformers + compressed-tensors, and are they what their config says?
#
# Usage: sh tests/interop/mixed.sh QFORGE_BINARY
#   For each fixture in FIXTURES (tiny-llama, tiny-moe): `qforge convert --target-bits TARGET
#   --method gptq` with CI-sized calibration, `qforge verify`, check_mixed.py (config groups
#   against the stored tensors, fused siblings / all MoE experts in one group, bits per weight
#   counted from the safetensors headers <= TARGET and equal to the manifest's), then
#   `qforge validate --chunks $WINDOWS --json` and check_transformers.py: loads with no
#   missing / unexpected keys, every dense Linear in ignore, mean KLD within tolerance of
#   qforge's.  TARGET (default 5) is high enough that each fixture's choice mixes formats,
#   which the suite requires (a single-format choice would not test mixing).
#   Python: $PYTHON or python3 with torch, transformers and compressed-tensors; without them
#   "SKIP mixed: <reason>", exit 77 (required under CI=true by scripts/run-tests.sh).
#   Prints "N passed, N failed" last; exit 1 when anything failed.
. "$(dirname "$0")/lib.sh"
interop_begin mixed $# 1 1 "${1:-}"
text=$root/tests/data/eval.txt
FIXTURES=${FIXTURES:-"tiny-llama tiny-moe"}
TARGET=${TARGET:-5}
WINDOWS=${WINDOWS:-2}
calib="--calib-samples 4 --calib-seqlen 256 --target-samples 2"

need_torch
need_qforge
interop_tmp

for fx in $FIXTURES; do
    model=$root/tests/data/$fx
    if [ ! -d "$model" ]; then
        echo "FAIL $fx: tests/data/$fx does not exist (listed in FIXTURES)"; fail=$((fail + 1)); continue
    fi
    aq=on
    grep -Eq '"num_(local_)?experts"' "$model/config.json" && aq=off # transformers runs fused experts weight-only
    out=$tmp/$fx-target
    # shellcheck disable=SC2086
    if ! "$qforge" convert "$model" -o "$out" --target-bits "$TARGET" --method gptq $calib -q >"$out.log" 2>&1; then
        echo "FAIL $fx: qforge convert --target-bits exited non-zero:"; sed 's/^/    /' "$out.log"
        fail=$((fail + 1)); continue
    fi
    if "$qforge" verify "$out" >"$out.verify" 2>&1; then pass=$((pass + 1)); else
        echo "FAIL $fx: qforge verify:"; sed 's/^/    /' "$out.verify"; fail=$((fail + 1)); fi
    n_groups=$("$py" -c "import json,sys; print(len(json.load(open(sys.argv[1]))['quantization_config']['config_groups']))" \
        "$out/config.json")
    if [ "$n_groups" -ge 2 ]; then pass=$((pass + 1)); else
        echo "FAIL $fx: --target-bits $TARGET chose one format ($n_groups config group): nothing mixed to test"
        fail=$((fail + 1)); fi
    "$py" "$here/check_mixed.py" "$model" "$out" "$TARGET" >"$tmp/$fx.mixed.log" 2>&1
    grep -v '^[0-9]* passed, [0-9]* failed$' "$tmp/$fx.mixed.log"
    counts_add "$tmp/$fx.mixed.log" || { echo "FAIL $fx: check_mixed.py crashed"; tail -n 5 "$tmp/$fx.mixed.log"; }
    if ! "$qforge" validate --base "$model" --quant "$out" --text "$text" --chunks "$WINDOWS" --act-quant $aq \
            --json -q >"$out.json" 2>"$out.log"; then
        echo "FAIL $fx: qforge validate exited non-zero:"; sed 's/^/    /' "$out.log"; fail=$((fail + 1)); continue
    fi
    "$py" "$here/check_transformers.py" "$model" "$text" "$WINDOWS" "target-$TARGET=$out=$out.json" \
        >"$tmp/$fx.log" 2>"$tmp/$fx.err"
    grep -v '^[0-9]* passed, [0-9]* failed$' "$tmp/$fx.log"
    if counts_add "$tmp/$fx.log"; then echo "== $fx --target-bits $TARGET vs transformers: $counts_line"; else
        echo "FAIL $fx: check_transformers.py crashed:"; tail -n 15 "$tmp/$fx.err" | sed 's/^/    /'; fi
done
interop_end
