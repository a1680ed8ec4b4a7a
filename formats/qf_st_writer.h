/* qf_st_writer.h - writing one safetensors file, hashing while writing.
 *
 * Owns an open output file: the caller declares every tensor (name, dtype, shape) up front,
 * which fixes the header (compact JSON, "__metadata__": {"format": "pt"} first, padded with
 * spaces to a multiple of 8) and the byte offsets (declaration order, contiguous); then feeds
 * each tensor's bytes in declaration order, in as many pieces as it likes.  The XXH3-128 of
 * the whole file and of each tensor's bytes, and the file's SHA-256, are computed on the way
 * (no second pass).  The
 * file is written under the given path directly: the caller writes into a temporary folder
 * that is renamed when everything is complete.  A write error (disk full) is QF_ERR_IO naming
 * the file; qf_st_writer_abort closes and deletes the partial file.
 */
#ifndef QF_ST_WRITER_H
#define QF_ST_WRITER_H

#include <stdint.h>

#include "qf_dtype.h"
#include "qf_error.h"
#include "qf_hash.h"
#include "qf_sha256.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_st_entry {
    const char *name; /* borrowed until qf_st_writer_open returns (copied) */
    qf_dtype dtype;
    int ndim;
    int64_t shape[8];
} qf_st_entry;

typedef struct qf_st_writer qf_st_writer;

/* Bytes of one entry (numel * bits / 8). */
uint64_t qf_st_entry_bytes(const qf_st_entry *e);
/* Total file size for these entries (header included). */
uint64_t qf_st_file_bytes(const qf_st_entry *e, int n);

qf_status qf_st_writer_open(const char *path, const qf_st_entry *entries, int n, qf_st_writer **out, qf_error *err);
/* Append bytes of entry i (must be the current entry: entries are completed in order). */
qf_status qf_st_writer_write(qf_st_writer *w, int i, const void *data, uint64_t nbytes, qf_error *err);
/* Flush, fsync, close.  file_hash: XXH3-128 of the whole file; file_sha256: its SHA-256;
 * tensor_hashes[n]; any may be NULL.  Frees w whatever the outcome (on failure the partial
 * file is deleted). */
qf_status qf_st_writer_close(qf_st_writer *w, uint64_t *file_size, qf_hash128 *file_hash, qf_sha256 *file_sha256,
                             qf_hash128 *tensor_hashes, qf_error *err);
/* Close and delete the partial file; NULL ok. */
void qf_st_writer_abort(qf_st_writer *w);
/* Write out what is buffered and hand the buffer's pages back to the system (they come back,
 * zeroed, on the next write): for a writer that will sit idle a while (a conversion waiting
 * for calibration's next layer), so its 8 MB buffer does not add to the peak memory. */
qf_status qf_st_writer_trim(qf_st_writer *w, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_ST_WRITER_H */
