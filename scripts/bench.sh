#!/bin/sh
# CPU benchmarks (make bench).  Prints one line per measurement; record results in
# docs/bench.md with the machine and date.
#   1. RTN conversion of a synthetic Llama-3-8B-shaped checkpoint (BENCH_LAYERS decoder layers,
#      default all 32 = 16 GB bf16), with RTN's default clip search and with --clip-search 0:
#      input GB/s and peak RSS, against `cat` of the same files,
#      both from a cold page cache when we may drop it (root), measured in the same run.
#   2. Validator throughput (tokens/s) on the bundled fixtures.
# Usage: scripts/bench.sh QFORGE [conversion|validate]
set -eu
qforge=${1:-build/qforge}
what=${2:-all}
layers=${BENCH_LAYERS:-32}
dir=${BENCH_DIR:-build/bench}
mkdir -p "$dir"
drop() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 >/proc/sys/vm/drop_caches && echo cold || echo warm; }
if [ "$what" = all ] || [ "$what" = conversion ]; then
    src=$dir/synth-8b-L$layers
    [ -f "$src/config.json" ] || "$qforge" synth --arch llama --preset 8b --layers "$layers" -o "$src" -q
    bytes=$(du -cb "$src"/*.safetensors | tail -1 | cut -f1)
    cache=$(drop)
    t0=$(date +%s.%N); cat "$src"/*.safetensors >/dev/null; t1=$(date +%s.%N)
    cat_s=$(echo "$t0 $t1" | awk '{print $2-$1}')
    # the default (RTN with its clip search) and the textbook rule (--clip-search 0), each cold
    for clip in default 0; do
        cache2=$(drop)
        rm -rf "$dir/out-w4a16"
        if [ $clip = default ]; then set --; else set -- --clip-search "$clip"; fi
        res=$(/usr/bin/time -f "%M" "$qforge" convert "$src" -o "$dir/out-w4a16" --scheme w4a16 "$@" --json 2>"$dir/time.txt")
        conv_s=$(echo "$res" | sed -n 's/.*"seconds":\([0-9.]*\).*/\1/p')
        rss_kb=$(tail -1 "$dir/time.txt")
        echo "$bytes $cat_s $conv_s $rss_kb $cache $cache2 $clip" | awk '{
            printf "conversion: %.2f GB input; cat %.2f s (%.2f GB/s, %s cache); qforge convert w4a16 (clip search %s) %.2f s (%.2f GB/s, %s cache); ratio %.2f of cat; peak RSS %.0f MB\n",
            $1/1e9, $2, $1/1e9/$2, $5, $7, $3, $1/1e9/$3, $6, $2/$3, $4/1024 }'
    done
    rm -rf "$dir/out-w4a16"
fi
if [ "$what" = all ] || [ "$what" = validate ]; then
    for m in tiny-llama tiny-moe; do
        res=$("$qforge" validate --base tests/data/$m --text tests/data/eval.txt --chunks ${BENCH_CHUNKS:-32} --json)
        echo "validate $m (base only, ${BENCH_CHUNKS:-32} windows of 512): $res"
    done
fi
