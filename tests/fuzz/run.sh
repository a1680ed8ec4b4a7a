#!/bin/sh
# `make fuzz` and a required suite of `make test`: every libFuzzer target of tests/fuzz, built
# with clang under ASan + UBSan (tests/fuzz/build.sh), run for a fixed, seeded budget over its
# committed corpus (tests/fuzz/corpus/<parser>/, which also keeps every crasher found, as a
# regression input).  Deterministic: -seed=1, a fixed -runs per target and an empty scratch
# folder each time, so a failure reproduces with the command printed beside it.
#
# Fails on any finding: a crash, a sanitizer report, a leak, a consistency check of the target
# (QF_FUZZ_ASSERT), one input slower than 10 s, or one allocation above 2 GB (libFuzzer's
# -malloc_limit_mb: allocation must follow the input's size, never a size field's claim).
# QF_FUZZ_SCALE=N multiplies every budget (a release check runs N=20 or more); exit 77 with a
# SKIP line when clang is missing.
set -u
cd "$(dirname "$0")/../.."
out=${FUZZ_BUILD:-build-fuzz}
sh tests/fuzz/build.sh || exit $?
scale=${QF_FUZZ_SCALE:-1}
work=$(mktemp -d "${TMPDIR:-/tmp}/qf-fuzz-run.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
fail=0
# target:corpus:runs
for spec in fuzz_safetensors_header:safetensors:300000 fuzz_gguf:gguf:300000 fuzz_pickle:pickle:200000 \
            fuzz_config:config:100000 fuzz_shard_index:index:100000 fuzz_tokenizer_json:tokenizer:50000 \
            fuzz_manifest:manifest:50000; do
    t=${spec%%:*}; rest=${spec#*:}; corpus=tests/fuzz/corpus/${rest%%:*}; runs=$((${rest#*:} * scale))
    [ -x "$out/$t" ] || { echo "FAIL $t: $out/$t was not built"; fail=1; continue; }
    mkdir -p "$work/$t"
    cmd="$out/$t -seed=1 -runs=$runs -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1"
    start=$(date +%s)
    if $cmd -artifact_prefix="$work/" "$work/$t" "$corpus" >"$work/$t.log" 2>&1; then
        stats=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log")
        cov=$(grep -o 'cov: [0-9]*' "$work/$t.log" | tail -n 1)
        echo "ok   $t: $stats inputs from $(ls "$corpus" | wc -l) seeds, $cov edges, $(( $(date +%s) - start )) s, 0 reports"
    else
        fail=1
        echo "FAIL $t ($cmd $corpus):"
        grep -E 'ERROR|SUMMARY|runtime error|deadly signal|Test unit written' "$work/$t.log" | head -n 8
        for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*; do
            [ -f "$f" ] || continue
            keep=$out/findings/$t-$(basename "$f")
            mkdir -p "$out/findings" && cp "$f" "$keep"
            echo "  input kept: $keep (after the fix, add it to $corpus/ as a regression input)"
        done
        tail -n 30 "$work/$t.log"
    fi
done
[ "$fail" = 0 ] && echo "fuzz: every target ran its budget with 0 reports"
exit "$fail"
