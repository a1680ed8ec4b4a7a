#!/bin/sh
# Build the libFuzzer targets of tests/fuzz (every tests/fuzz/fuzz_*.c) with clang under
# ASan + UBSan into build-fuzz/: the library is compiled once by the Makefile into
# build-fuzz/libqforge.a (CPU-only, instrumented with -fsanitize=fuzzer-no-link so the fuzzer
# sees coverage inside the parsers), then each target links against it.  Incremental: a second
# run rebuilds only what changed.
#
# `make fuzz` (tests/fuzz/run.sh) builds and runs them for a fixed, seeded budget; for a
# longer campaign run one by hand with a scratch folder first (libFuzzer adds new inputs to the
# first folder it is given) and the committed seeds second, e.g.
#   tests/fuzz/build.sh && mkdir -p /tmp/fz && build-fuzz/fuzz_pickle -max_total_time=600 /tmp/fz tests/fuzz/corpus/pickle
# Exit 77 (with a SKIP line) when clang or its fuzzer runtime is missing.
set -eu
cd "$(dirname "$0")/../.."
CC=${CLANG:-clang}
OUT=${FUZZ_BUILD:-build-fuzz}
command -v "$CC" >/dev/null 2>&1 || { echo "SKIP fuzz: $CC not found (Debian: apt-get install clang)"; exit 77; }
probe=$(mktemp -d "${TMPDIR:-/tmp}/qf-fuzz-probe.XXXXXX")
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe/p.c"
"$CC" -fsanitize=fuzzer,address,undefined -o "$probe/p" "$probe/p.c" 2>"$probe/err" ||
    { echo "SKIP fuzz: $CC cannot link -fsanitize=fuzzer,address,undefined: $(head -n 1 "$probe/err")"; exit 77; }
mkdir -p "$OUT"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
make --no-print-directory -j"$(nproc)" BUILD="$OUT" CC="$CC" NVCC= WERROR= \
    OPT="-O1 -g -fsanitize=fuzzer-no-link $SAN" "$OUT/libqforge.a" >"$OUT/library.log" 2>&1 ||
    { tail -n 20 "$OUT/library.log"; echo "fuzz: the instrumented library did not build ($OUT/library.log)"; exit 1; }
INC="-Icommon -Iquant -Iformats -Icalib/tokenizer -Itests/fuzz"
for src in tests/fuzz/fuzz_*.c; do
    t=$(basename "$src" .c)
    if [ ! -x "$OUT/$t" ] || [ "$src" -nt "$OUT/$t" ] || [ tests/fuzz/qf_fuzz.h -nt "$OUT/$t" ] || [ "$OUT/libqforge.a" -nt "$OUT/$t" ]; then
        "$CC" -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer $SAN $INC -fopenmp -o "$OUT/$t" "$src" \
            "$OUT/libqforge.a" -lzip -ljansson -lxxhash -lpcre2-8 -lcrypto -lm
        echo "built $OUT/$t"
    fi
done
