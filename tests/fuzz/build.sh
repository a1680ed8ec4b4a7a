#!/bin/sh
# Build the libFuzzer targets of tests/fuzz with clang (-fsanitize=fuzzer,address,undefined)
# into build-fuzz/.  Run one with a scratch folder first (libFuzzer adds new inputs to the
# first folder it is given) and the committed seeds second, e.g.
#   tests/fuzz/build.sh && mkdir -p /tmp/fz && build-fuzz/fuzz_pickle -max_total_time=60 /tmp/fz tests/fuzz/corpus/pickle
# Without clang this prints why and exits 0; `make test` replays the corpus either way
# (tests/test_fuzz_replay.c).
set -eu
cd "$(dirname "$0")/../.."
CC=${CLANG:-clang}
command -v "$CC" >/dev/null 2>&1 || { echo "fuzz: $CC not found, nothing built"; exit 0; }
mkdir -p build-fuzz
# Whole folders, so that a new source file of formats/ can never break this link again.
LIB="common/*.c quant/*.c formats/*.c"
for t in fuzz_pickle fuzz_safetensors_header fuzz_gguf; do
    $CC -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Iformats -Iquant \
        -fopenmp -o build-fuzz/$t tests/fuzz/$t.c $LIB -lzip -ljansson -lxxhash -lpcre2-8 -lcrypto -lm
    echo "built build-fuzz/$t"
done
$CC -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Icalib/tokenizer \
    -o build-fuzz/fuzz_tokenizer_json tests/fuzz/fuzz_tokenizer_json.c calib/tokenizer/qf_tokenizer.c calib/tokenizer/tokenizer_*.c \
    common/*.c -fopenmp -ljansson -lpcre2-8 -lxxhash -lcrypto -lm
echo "built build-fuzz/fuzz_tokenizer_json"
