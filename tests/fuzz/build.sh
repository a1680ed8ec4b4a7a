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
LIB="common/qf_dtype.c common/qf_error.c common/qf_fs.c common/qf_hash.c formats/safetensors_read.c
     formats/qf_pickle.c formats/qf_zip_checkpoint.c formats/qf_gguf.c formats/qf_gguf_quants.c formats/qf_gguf_llama.c
     formats/config.c formats/shard_index.c"
for t in fuzz_pickle fuzz_safetensors_header fuzz_gguf; do
    $CC -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Iformats -Iquant \
        -o build-fuzz/$t tests/fuzz/$t.c $LIB -lzip -ljansson -lxxhash -lm
    echo "built build-fuzz/$t"
done
$CC -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Icommon -Icalib/tokenizer \
    -o build-fuzz/fuzz_tokenizer_json tests/fuzz/fuzz_tokenizer_json.c calib/tokenizer/qf_tokenizer.c calib/tokenizer/tokenizer_*.c \
    common/qf_error.c common/qf_fs.c -ljansson -lpcre2-8 -lxxhash
echo "built build-fuzz/fuzz_tokenizer_json"
