#!/bin/sh
# bench_validate.sh - validator throughput and the full-text ppl-512 checks.
#
# Runs `qforge validate` on the whole tests/data/eval.txt (513 windows of 512 tokens) for both
# fixtures, base alone and base + a w4a16-asym RTN artifact, and checks the base perplexity
# against tests/data/reference.json (0.1 %) and the artifact's mean KLD against the
# int4_g128_asym_rtn row (5 %).  Prints one line per run with tokens/s; the numbers go into
# docs/bench.md ("Validator throughput").  Takes about 2-6 minutes on 2 idle cores.
#
# Usage: tests/bench_validate.sh [QFORGE] [THREADS]     (from the repository root)
set -eu
# libgomp's default spin-wait at barriers collapses under a shared machine's load (docs/bench.md)
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY
qf=${1:-build/qforge}
threads=${2:-$(nproc)}
tmp=$(mktemp -d /tmp/qf_bench_validate.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
fail=0
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads $threads; OMP_WAIT_POLICY=$OMP_WAIT_POLICY;" \
     "load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"
for m in tiny-llama tiny-moe; do
    "$qf" convert "tests/data/$m" -o "$tmp/$m-w4" --scheme w4a16-asym --clip-search 0 -q >/dev/null # the reference's rule
    for mode in base quant; do
        if [ $mode = base ]; then extra=""; else extra="--quant $tmp/$m-w4"; fi
        # shellcheck disable=SC2086
        "$qf" validate --base "tests/data/$m" $extra --text tests/data/eval.txt --threads "$threads" --json -q \
            >"$tmp/out.json"
        python3 - "$tmp/out.json" "$m" "$mode" <<'PY' || fail=1
import json, sys
r = json.load(open(sys.argv[1])); m, mode = sys.argv[2], sys.argv[3]
ref = json.load(open("tests/data/reference.json"))[m]
ok = abs(r["ppl"] / ref["eval"]["ppl"] - 1) < 1e-3 and r["scored_tokens"] == ref["eval"]["scored_tokens"]
line = "%-10s %-5s ppl %.5f (ref %.5f)" % (m, mode, r["ppl"], ref["eval"]["ppl"])
if mode == "quant":
    want = ref["int4_g128_asym_rtn"]["mean_kld"]
    ok = ok and abs(r["mean_kld"] / want - 1) < 0.05
    line += " | w4a16-asym ppl %.4f mean KLD %.5f (ref %.5f) p99 %.4f top-1 %.4f (ref %.4f)" % (
        r["quant_ppl"], r["mean_kld"], want, r["p99_kld"], r["top1_agreement"], ref["int4_g128_asym_rtn"]["same_top1"])
line += " | %.0f tokens/s, %.1f s  %s" % (r["tokens_per_s"], r["seconds"], "OK" if ok else "FAIL")
print(line)
sys.exit(0 if ok else 1)
PY
    done
done
exit $fail
