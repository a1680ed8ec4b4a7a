/* fuzz_safetensors_header.c - libFuzzer target: one safetensors file image.
 *
 * The bytes go through qf_safetensors_parse (header length, JSON, dtypes, shapes, span
 * tiling).  It must return whatever the input; what it accepts must be consistent: every
 * tensor's bytes lie inside the data section and nbytes is numel * bits / 8.
 *
 * Build (clang) and run: tests/fuzz/build.sh; build-fuzz/fuzz_safetensors_header /tmp/scratch tests/fuzz/corpus/safetensors
 * Replayed without libFuzzer by tests/test_fuzz_replay.c in `make test`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qf_safetensors.h"

#include "qf_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qf_tensor *t = NULL;
    int n = 0, nm = 0;
    qf_st_meta *meta = NULL;
    qf_error err;
    if (qf_safetensors_parse("fuzz.safetensors", data, size, 0, &t, &n, &meta, &nm, &err) == QF_OK) {
        for (int i = 0; i < n; i++) {
            QF_FUZZ_ASSERT(t[i].nbytes * 8 == qf_tensor_numel(&t[i]) * (uint64_t)qf_dtype_bits(t[i].dtype));
            QF_FUZZ_ASSERT(t[i].offset <= size && t[i].nbytes <= size - t[i].offset);
        }
        qf_st_meta_free(meta, nm);
    }
    qf_tensors_free(t, n);
    return 0;
}
