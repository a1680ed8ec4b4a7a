/* qf_act_store.h - activations of every calibration token, in RAM or spilled to a file.
 *
 * Owns one (rows, width) float32 table that outlives a pass over the calibration chunks:
 * the residual stream between decoder layers, the attention output waiting for o_proj's
 * quantization, the MLP activations waiting for down_proj's.  Either it is one 64-byte
 * aligned allocation, or (when the memory budget says so) a file, read and written a chunk
 * of rows at a time with pread / pwrite through a buffer the caller owns, so only a
 * chunk's rows are ever resident.  The file's blocks are reserved when it is opened (a full
 * disk fails there, not halfway through a layer) and the file is removed by
 * qf_act_store_close.  Rows come back bit for bit as written either way.
 *
 * Access, for rows [r0, r0 + n):
 *   qf_act_store_load  -> a writable pointer to the rows: into the table (RAM), or buf
 *                         after reading the file;
 *   qf_act_store_slot  -> where to build rows that will be saved (no read);
 *   qf_act_store_save  -> make rows the stored ones: RAM copies unless rows already is the
 *                         table's place, a file is written.
 * So "load, update in place, save" and "slot, fill, save" work the same on both kinds; buf
 * (n * width floats, caller-owned) is only touched by a spilled store.  Not thread-safe.
 */
#ifndef QF_ACT_STORE_H
#define QF_ACT_STORE_H

#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_act_store qf_act_store;

/* A store of rows x width floats; spill_path NULL: in RAM, else that file (created or
 * truncated; removed by close).  what names it in messages ("hidden states").  Errors:
 * QF_ERR_NOMEM, QF_ERR_IO (cannot create, or no room on the disk: the message names the
 * file and the size).  On failure *out is NULL and no file is left. */
qf_status qf_act_store_open(qf_act_store **out, const char *what, int64_t rows, int64_t width, const char *spill_path,
                            qf_error *err);
/* Free the memory or close and remove the file; NULL accepted. */
void qf_act_store_close(qf_act_store *s);

/* 1 when the rows live in a file. */
int qf_act_store_spilled(const qf_act_store *s);
/* Bytes of the table (rows * width * 4). */
uint64_t qf_act_store_bytes(const qf_act_store *s);

qf_status qf_act_store_load(qf_act_store *s, int64_t r0, int64_t n, float *buf, float **rows, qf_error *err);
float *qf_act_store_slot(qf_act_store *s, int64_t r0, float *buf);
qf_status qf_act_store_save(qf_act_store *s, int64_t r0, int64_t n, const float *rows, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_ACT_STORE_H */
