/* fuzz_gguf.c - libFuzzer target: one GGUF file image.
 *
 * The bytes go through qf_gguf_parse (magic, counts, metadata values and nested arrays,
 * tensor infos, offsets, bounds).  It must return whatever the input; what it accepts must be
 * consistent: every tensor's data span lies inside the image, its size is what its type and
 * shape say, and tensors the library decodes can be decoded (into a buffer of their size).
 *
 * Build (clang) and run: tests/fuzz/build.sh; build-fuzz/fuzz_gguf /tmp/scratch
 * Replayed without libFuzzer by tests/test_fuzz_replay.c in `make test`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qf_gguf.h"

#include "qf_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qf_gguf *g = NULL;
    qf_error err;
    if (qf_gguf_parse("fuzz.gguf", data, size, &g, &err) != QF_OK) return 0;
    for (int i = 0; i < g->n_tensors; i++) {
        const qf_gguf_tensor *t = &g->tensors[i];
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->ne[d];
        QF_FUZZ_ASSERT(t->offset <= size && t->nbytes <= size - t->offset);
        QF_FUZZ_ASSERT(t->ne[0] == 0 || t->nbytes == qf_ggml_row_bytes(t->type, t->ne[0]) * (numel / (uint64_t)t->ne[0]));
        if (qf_ggml_type_support(t->type) && numel <= (1u << 20)) {
            float *out = malloc(sizeof(float) * (numel ? numel : 1));
            if (out) qf_gguf_dequant_tensor(g, i, out, &err);
            free(out);
        }
    }
    qf_gguf_free(g);
    return 0;
}
