#!/bin/sh
# Quality benchmark (issue 5 goals): converts the fixtures with each method and measures the
# drift of every artifact against its base with `qforge validate` on the whole eval.txt
# (ppl-512, weights only).  Slow on a 2-core CPU (each validate scores 262,143 tokens twice);
# CHUNKS=N limits it to the first N windows.  Prints one line per artifact; record the
# results in docs/bench.md.  Artifacts and their convert times are cached under
# $QUALITY_DIR/<key>, the key being the commit, the working tree's changes and the qforge
# binary's hash: a figure measured by another commit's code is never reported as this one's.
# SUBSET=core runs only w4a16-asym (rtn, gptq, awq-gptq) and nvfp4a16 (rtn, gptq).
# Usage: scripts/quality.sh QFORGE [model ...]
set -eu
qforge=${1:-build/qforge}; shift || true
models=${*:-tiny-llama tiny-moe}
# the code that made an artifact: commit + uncommitted changes + the binary that ran
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo nogit)
key=$commit-$({ git diff HEAD 2>/dev/null; git ls-files -z --others --exclude-standard 2>/dev/null | xargs -0 -r cat; cat "$qforge"; } |
    sha256sum | cut -c1-12)
out=${QUALITY_DIR:-build/quality}/$key
echo "quality: artifacts in $out (commit $commit$(git diff --quiet HEAD 2>/dev/null || echo ', with uncommitted changes'))" >&2
chunks=${CHUNKS:+--chunks $CHUNKS}
mkdir -p "$out"
run() { # run MODEL NAME SCHEME CONVERT-ARGS...
    model=$1 name=$2 scheme=$3; shift 3
    dir=$out/$model-$name
    if [ ! -f "$dir/qforge.manifest.json" ]; then
        t0=$(date +%s.%N)
        "$qforge" convert tests/data/$model -o "$dir" --scheme "$scheme" -q "$@" --force >/dev/null
        t1=$(date +%s.%N)
        echo "$t0 $t1" | awk '{printf "%.1f", $2-$1}' >"$dir.seconds"
    fi
    res=$("$qforge" validate --base tests/data/$model --quant "$dir" --text tests/data/eval.txt --act-quant ${ACT:-off} $chunks --json)
    kld=$(echo "$res" | sed -n 's/.*"mean_kld":\([0-9.e-]*\).*/\1/p')
    ppl=$(echo "$res" | sed -n 's/.*"quant_ppl":\([0-9.e-]*\).*/\1/p')
    top1=$(echo "$res" | sed -n 's/.*"top1_agreement":\([0-9.e-]*\).*/\1/p')
    windows=$(echo "$res" | sed -n 's/.*"windows":\([0-9]*\).*/\1/p')
    drift=$(echo "$res" | sed -n 's/.*"ppl_drift_pct":\([0-9.e-]*\).*/\1/p')
    printf '%-10s %-28s act %-3s drift %6.3f%%  mean_kld %.5f  ppl %.3f  top1 %.4f  windows %s  convert %ss\n' "$model" "$name" "${ACT:-off}" "$drift" "$kld" "$ppl" "$top1" "$windows" "$(cat "$dir.seconds")"
}
for m in $models; do
    if [ "${SUBSET:-all}" = core ]; then # the ratios the issue compares across models
        run $m w4a16-asym-rtn w4a16-asym
        run $m w4a16-asym-gptq-actorder w4a16-asym --method gptq --act-order
        run $m w4a16-asym-awq-gptq w4a16-asym --method awq-gptq --act-order
        run $m nvfp4a16-rtn nvfp4a16
        run $m nvfp4a16-gptq nvfp4a16 --method gptq --act-order
        continue
    fi
    run $m w4a16-asym-rtn w4a16-asym
    run $m w4a16-asym-gptq w4a16-asym --method gptq
    run $m w4a16-asym-gptq-actorder w4a16-asym --method gptq --act-order
    run $m w4a16-asym-awq-gptq w4a16-asym --method awq-gptq --act-order
    run $m w4a16-rtn w4a16
    run $m w4a16-gptq w4a16 --method gptq --act-order
    run $m w4a16-awq w4a16 --method awq
    run $m nvfp4a16-rtn nvfp4a16
    run $m nvfp4a16-gptq nvfp4a16 --method gptq --act-order
    run $m nvfp4a16-awq nvfp4a16 --method awq
    ACT=on run $m fp8-static-w8a8 fp8
    ACT=on run $m fp8-static-smoothquant fp8 --smoothquant 0.5
done
