/* qf_calib_data.h - calibration samples: text in, token windows out.
 *
 * Owns the choice of what calibration sees: a plain text file, or JSON Lines with a "text"
 * field per line (the texts are joined with blank lines), tokenized with the model's own
 * tokenizer, then n_samples windows of seqlen tokens taken at pseudo-random offsets drawn
 * from a seeded generator (the GPTQ reference's sampling), so the same file, seed and sizes
 * always give the same samples.  With no file, the text bundled into the binary is used
 * (calib/data/default-calib.txt: paragraphs of Linux kernel documentation, the fixtures'
 * training domain; GPL-2.0).  The calibration text must never be the evaluation text.
 */
#ifndef QF_CALIB_DATA_H
#define QF_CALIB_DATA_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_hash.h"
#include "qf_tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_calib_data {
    int32_t *ids;          /* (n_samples, seqlen) token ids, owned */
    int n_samples, seqlen;
    uint64_t seed;
    char source[256];      /* file name, or "bundled:default-calib.txt" */
    uint64_t text_bytes;
    int64_t text_tokens;
    qf_hash128 text_hash;  /* XXH3-128 of the raw file bytes */
} qf_calib_data;

/* path NULL: the bundled text.  Errors: QF_ERR_IO (unreadable), QF_ERR_FORMAT (JSONL line
 * without a string "text"), QF_ERR_USAGE (text shorter than one window, sizes <= 0). */
qf_status qf_calib_data_load(const char *path, const qf_tokenizer *tok, int n_samples, int seqlen, uint64_t seed,
                             qf_calib_data *out, qf_error *err);
void qf_calib_data_free(qf_calib_data *d);

#ifdef __cplusplus
}
#endif

#endif
