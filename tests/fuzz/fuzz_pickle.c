/* fuzz_pickle.c - libFuzzer target: torch.save archives and bare data.pkl streams.
 *
 * An input starting with a zip local-header signature ("PK\3\4") goes through
 * qf_zip_archive_read (central directory, libzip cross-check, pickle, views); anything else
 * straight through qf_pickle_load_state_dict.  Whatever the bytes, the readers must return
 * (no crash, no leak, no read outside the input) and what they accept must be consistent:
 * every tensor's bytes lie inside the input or inside a buffer the table owns, and its
 * nbytes is numel * element size.
 *
 * Build (clang) and run: tests/fuzz/build.sh; build-fuzz/fuzz_pickle /tmp/scratch tests/fuzz/corpus/pickle
 * Replayed without libFuzzer by tests/test_fuzz_replay.c in `make test`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qf_pickle.h"
#include "qf_zip_checkpoint.h"

#include "qf_fuzz.h"

static int qf_fuzz_inside(const void *p, uint64_t n, const void *base, uint64_t size)
{
    const uint8_t *a = p, *b = base;
    return a >= b && n <= size && (uint64_t)(a - b) <= size - n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qf_error err;
    if (size >= 4 && memcmp(data, "PK\3\4", 4) == 0) {
        qf_checkpoint ck;
        memset(&ck, 0, sizeof ck);
        if (qf_zip_archive_read("fuzz.bin", data, size, 0, &ck, &err) == QF_OK) {
            for (int i = 0; i < ck.n_tensors; i++) {
                const qf_tensor *t = &ck.tensors[i];
                QF_FUZZ_ASSERT(t->nbytes == qf_tensor_numel(t) * (uint64_t)qf_dtype_bits(t->dtype) / 8);
                if (!t->nbytes) continue;
                int ok = qf_fuzz_inside(t->data, t->nbytes, data, size);
                for (int k = 0; k < ck.n_owned && !ok; k++) ok = t->data == ck.owned[k];
                QF_FUZZ_ASSERT(ok);
                volatile uint8_t sink = t->data[0] ^ t->data[t->nbytes - 1];
                (void)sink;
            }
        }
        qf_tensors_free(ck.tensors, ck.n_tensors);
        for (int k = 0; k < ck.n_owned; k++) free(ck.owned[k]);
        free(ck.owned);
        return 0;
    }
    qf_state_dict sd;
    if (qf_pickle_load_state_dict("fuzz: data.pkl", data, size, &sd, &err) == QF_OK) {
        for (int i = 0; i < sd.n_tensors; i++) {
            const qf_pickle_tensor *t = &sd.tensors[i];
            int ovf = 0;
            QF_FUZZ_ASSERT(t->storage >= 0 && t->storage < sd.n_storages);
            QF_FUZZ_ASSERT(qf_pickle_view_end(t, &ovf) <= sd.storages[t->storage].nbytes && !ovf);
        }
    }
    qf_state_dict_free(&sd);
    return 0;
}
