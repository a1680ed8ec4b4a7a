/* qf_stats.h - streaming statistics of a Linear's inputs, for calibration.
 *
 * Owns one accumulator per Linear input (or per expert): the calibration observer feeds it
 * the raw input rows x (tokens) of every forward call, and the calibrated methods read:
 *   count      tokens seen
 *   absmax[j]  max |x_j|                      SmoothQuant, static fp8 / nvfp4 activation scales
 *   xmin/xmax  min x_j, max x_j               (llm-compressor's SmoothQuant uses the range)
 *   abssum[j]  sum |x_j|  (mean: / count)     AWQ's x_mean
 *   sqsum[j]   sum x_j^2                      the Hessian diagonal (llama.cpp imatrix in_sum2)
 *   xtx        sum x^T x  [cols, cols]        GPTQ's and AWQ's Hessian (flag QF_STATS_XTX)
 *   cross      sum r^T x  [cols, cols]        r: the float model's input for the same token,
 *                                             given beside x (flag QF_STATS_CROSS,
 *                                             qf_stats_add_pair): the float-path target of
 *                                             qf_float_target.h
 *
 * XᵀX: rows are buffered into chunks of QF_STATS_CHUNK; each full chunk is multiplied in
 * float32 (fused multiply-adds in row order) and added into the float64 sum.  The result
 * therefore depends only on the sequence of rows, not on how they were split into calls or
 * on the number of threads.  Per-channel sums are float64, in row order.  With a GPU
 * (qf_gpu_calib.h) and at least QF_STATS_GPU_MIN_COLS inputs, each chunk's product is a cuBLAS
 * SSYRK added to a float64 sum on the device (same contract, another summation order); a
 * GPU that cannot hold the sum leaves it on the CPU.  The cross product is chunked the same
 * way (qf_gemm_tn_acc; on the GPU a cuBLAS SGEMM per chunk, beside the XᵀX sum).
 *
 * Lifecycle: qf_stats_init -> qf_stats_add ... -> qf_stats_finish (flushes the partial chunk
 * and mirrors the lower triangle: xtx is then the full symmetric matrix) -> read ->
 * qf_stats_free.  Adding after finish is allowed (finish again before reading xtx).
 * Memory: with QF_STATS_XTX, 8 cols^2 + 4 * QF_STATS_CHUNK * cols bytes (cols = 4096:
 * 136 MB; 14336: 1.7 GB); QF_STATS_CROSS as much again.
 */
#ifndef QF_STATS_H
#define QF_STATS_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_gpu_calib.h"
#include "qf_scheme.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QF_STATS_XTX 1u     /* accumulate the [cols, cols] XᵀX sum */
#define QF_STATS_CROSS 2u   /* with QF_STATS_XTX: also the [cols, cols] RᵀX sum of qf_stats_add_pair */
#define QF_STATS_CHUNK 512  /* rows per float32 XᵀX chunk */
#define QF_STATS_GPU_MIN_COLS 1024 /* narrower inputs stay on the CPU (the transfer would dominate) */

typedef struct qf_stats {
    int64_t cols;
    unsigned flags;
    int64_t count;   /* rows (tokens) added */
    float *absmax;   /* (cols) max |x| */
    float *xmin;     /* (cols) min x (0 before any row) */
    float *xmax;     /* (cols) max x (0 before any row) */
    double *abssum;  /* (cols) sum |x| */
    double *sqsum;   /* (cols) sum x^2 */
    double *xtx;     /* (cols, cols) sum x^T x; NULL without QF_STATS_XTX; full after finish */
    double *cross;   /* (cols, cols) sum r^T x (cross[a][b] = sum r_a x_b); NULL without QF_STATS_CROSS */
    float *pending;  /* (QF_STATS_CHUNK, cols) rows not yet in xtx */
    float *pending_ref; /* (QF_STATS_CHUNK, cols) their r rows (QF_STATS_CROSS) */
    int64_t n_pending;
    int nonfinite;   /* 1 once a NaN / Inf input was seen (its row is skipped) */
    qf_gpu_xtx *gpu; /* the XᵀX sum lives on the GPU (qf_gpu_calib.h) until finish; NULL: CPU */
} qf_stats;

/* Allocate the accumulator for inputs of width cols (> 0).  On failure *st holds nothing to
 * free (QF_ERR_NOMEM, QF_ERR_USAGE). */
qf_status qf_stats_init(qf_stats *st, int64_t cols, unsigned flags, qf_error *err);
/* Release everything; NULL and a zeroed struct are accepted; the struct is zeroed. */
void qf_stats_free(qf_stats *st);

/* Add n rows X[n, cols] (row-major float32).  Rows with a NaN or Inf are skipped and set
 * st->nonfinite (calibration should report it).  Returns QF_OK or QF_ERR_NOMEM. */
qf_status qf_stats_add(qf_stats *st, const float *X, int64_t n, qf_error *err);

/* QF_STATS_CROSS: add n rows X[n, cols] with their reference rows R[n, cols] (the float
 * model's input for the same tokens).  X feeds every statistic as qf_stats_add does; a row
 * is skipped when X's or R's row has a NaN or Inf.  qf_stats_add is a usage error on such an
 * accumulator (the pairs would fall out of step). */
qf_status qf_stats_add_pair(qf_stats *st, const float *X, const float *R, int64_t n, qf_error *err);

/* Flush the partial chunk into xtx and make it symmetric.  Idempotent. */
qf_status qf_stats_finish(qf_stats *st, qf_error *err);

/* out[cols] = abssum / count (0 when count is 0). */
void qf_stats_mean_abs(const qf_stats *st, float *out);
/* max_j absmax[j]: the per-tensor activation amax. */
float qf_stats_amax(const qf_stats *st);
/* The static activation scale a calibrated scheme stores (QF_ROLE_INPUT_SCALE):
 * fp8 (static): input_scale = amax / 448; nvfp4: input_global_scale = 448 * 6 / amax
 * (1 when amax is 0; fp8 gives FLT_EPSILON then).  0 for schemes without one. */
float qf_stats_input_scale(const qf_stats *st, const qf_scheme *s);

#ifdef __cplusplus
}
#endif

#endif /* QF_STATS_H */
