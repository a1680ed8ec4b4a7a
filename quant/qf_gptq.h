/* qf_gptq.h - GPTQ: error-compensating quantization of one Linear from its input Hessian.
 *
 * Owns the GPTQ column sweep (Frantar et al.; IST-DASLab/gptq `fasterquant`, llm-compressor
 * `quantize_weight`) as pure math on matrices: given W [rows = out, cols = in] and
 * H = sum_t x_t x_t^T over the calibration inputs x_t of the Linear, it chooses the codes of
 * every column in turn and pushes each column's rounding error onto the columns not yet
 * quantized, weighted by the inverse Hessian, so that the layer output X W^T moves as little
 * as possible.  Codes and group parameters come from the shared rules of qf_quantize.h
 * (qf_group_params_from*, qf_quant_value) and are written with qf_pack_row /
 * qf_pack_tensor_info, so the output is byte-for-byte the stored format of the scheme, the
 * same as RTN produces (with H = identity and act_order off, GPTQ *is* RTN, code for code).
 *
 * Steps (docs/calibration.md has the full account and the differences from the anchors):
 *   1. H <- 2/n * H.  Dead inputs (H_ii == 0): H_ii = 1, W[:, i] = 0.
 *   2. Dampening: H_ii += percdamp * mean(diag H).  If H is still not positive definite the
 *      dampening is multiplied by 10 (from 1e-4 * mean(diag H) when percdamp is 0), at most
 *      6 times; res->damp_retries counts them.
 *   3. act_order: columns are processed in order of decreasing H_ii (ties: lower index first).
 *   4. U = upper Cholesky factor of H^-1 (float64 factorization, float32 sweep).
 *   5. Blocks of block_size columns: within a block, column by column q = Q(w),
 *      err = (w - q) / U_ii, later columns of the block -= err * U_i,.; after the block the
 *      remaining columns get the whole block's update at once (a blocked matmul).
 *   6. Group parameters: static_groups = 0 (default): computed when the first column of a
 *      group is reached, from the group's current (error-updated) weights; static_groups = 1:
 *      computed up front from the original W.  The range is min/max, or shrunk by AWQ's clip
 *      ratios (clip) or by GPTQ's own search (clip_search).  Groups are always the scheme's contiguous
 *      groups of original columns (with act_order too), so the stored layout is the plain
 *      group layout and no g_idx tensor is needed.
 *   nvfp4: the global scale G comes from tensor_amax (pass the max over fused siblings so
 *   they share it; <= 0: amax of W) before any update; fp8 (static): the per-tensor weight
 *   scale is amax(W) / 448 and is written to the plan's weight_scale.  The activation scale
 *   of the calibrated schemes (input_scale, input_global_scale) is not written here.
 *
 * Threads: OpenMP over rows and inside the matmuls.  Deterministic: the output does not
 * depend on the number of threads or on the CPU's vector ISA.
 */
#ifndef QF_GPTQ_H
#define QF_GPTQ_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_quantize.h"
#include "qf_scheme.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_gptq_opts {
    float percdamp;    /* dampening as a fraction of mean(diag H); default 0.01 */
    int block_size;    /* columns per lazy-update block; default 128 */
    int act_order;     /* 1: process columns by decreasing H_ii; default 0 */
    int static_groups; /* 1: group parameters from the original W up front; default 0 */
    int clip_search;   /* > 0: when GPTQ sets a group's parameters, its range is shrunk by the best
                        * of the ratios 1, 1 - d, ..., clip_min (d = (1 - clip_min) / clip_search):
                        * the one with the smallest rounding error of the group's current
                        * weights, each weighted as in GPTQ's loss (1 / U_ii^2); 0: the plain
                        * min/max range (textbook GPTQ).  Not used where clip gives the ratios.
                        * default 0 */
    float clip_min;    /* smallest ratio clip_search tries; default 0.75 */
    int refit;         /* > 0: after the sweep, re-choose the group scales for the chosen codes
                        * (qf_gptq_refit.h) with at most this many coordinate-descent sweeps;
                        * default 0 */
    int descent;       /* > 0: after the sweep, coordinate descent on the codes with the group
                        * parameters fixed (qf_gptq_descent.h), at most this many sweeps over the
                        * columns; with refit R, then up to R rounds of (scale refit, descent) in
                        * place of the refit's re-sweeps; default 0 */
    /* optional replacement for qf_gptq_factor (qf_linalg.h), same contract: the GPU's
     * (qf_gpu_gptq_factor) when calibration runs with one; NULL = the CPU's */
    int64_t (*factor)(double *H, int64_t n, float *U, qf_status *status, qf_error *err);
    const float *clip; /* optional [rows, n_groups] range ratios in (0, 1] (e.g. from AWQ's clip
                        * search): a group's parameters come from its range times the ratio;
                        * NULL = 1 everywhere */
} qf_gptq_opts;

/* percdamp 0.01, block_size 128, act_order 0, static_groups 0, clip_search 0, clip_min 0.75,
 * refit 0, descent 0, factor NULL, clip NULL: the textbook algorithm on the CPU. */
void qf_gptq_opts_default(qf_gptq_opts *o);

typedef struct qf_gptq_result {
    double loss;        /* GPTQ's loss: sum over all weights of (w - q)^2 / U_ii^2 / 2 */
    double damp;        /* dampening finally added to the diagonal (absolute) */
    int damp_retries;   /* how often the dampening had to be multiplied by 10 */
    int64_t dead_cols;  /* inputs with H_ii == 0 (their weights are set to 0) */
    float global_scale; /* nvfp4's G as stored (1 for other schemes) */
    double refit_gain;  /* refit: 1 - output error after / before (0 without refit) */
    double descent_gain; /* descent: 1 - output error after / before it (0 without) */
} qf_gptq_result;

/* Quantize W [rows, cols] (float32, row-major) with GPTQ under scheme s.
 *   W         in: the weights; out: the dequantized weights Q (what the stored tensors decode
 *             to, bit for bit), in the original column order.
 *   H         [cols, cols] float64, sum over the n_samples calibration inputs of x x^T (full
 *             symmetric matrix, as qf_stats_finish leaves it); not modified.
 *   n_samples number of rows (tokens) H was summed over (> 0); scales H and hence the loss.
 *   tensor_amax  nvfp4: amax for the global scale (<= 0: computed from W); fp8: the per-tensor
 *             amax (<= 0: from W); ignored otherwise.
 *   o         NULL: defaults.
 *   plan/out  from qf_quant_plan_linear(s, rows, cols): buffers allocated by the caller with
 *             the plan's sizes; every tensor of the plan except the activation scale
 *             (QF_ROLE_INPUT_SCALE) is written.
 *   res       may be NULL.
 * Returns QF_OK; QF_ERR_USAGE (bad arguments, shape not fitting the scheme);
 * QF_ERR_FORMAT (non-finite values in W or H, or H not positive definite even after
 * dampening); QF_ERR_NOMEM.  Memory: about 12 * cols^2 + rows * (cols + block_size) * 4
 * bytes of workspace. */
qf_status qf_gptq_quantize(const qf_scheme *s, float *W, int64_t rows, int64_t cols, const double *H,
                           int64_t n_samples, float tensor_amax, const qf_gptq_opts *o, const qf_quant_plan *plan,
                           qf_quant_buffers *out, qf_gptq_result *res, qf_error *err);

/* ---- sharing the factorization between Linears with the same input -------------------- *
 * Steps 1-4 depend only on H (and percdamp, act_order): q/k/v share one, gate/up share one,
 * so the O(cols^3) factorization can be done once per input:
 *     qf_gptq_hinv *hv;
 *     qf_gptq_hinv_init(&hv, st.xtx, cols, st.count, &o, &err);
 *     qf_gptq_quantize_hinv(s, Wq, rows_q, cols, hv, amax, &o, &plan_q, &buf_q, &rq, &err);  (k, v ...)
 *     qf_gptq_hinv_free(hv);
 * The result is bit-identical to qf_gptq_quantize with the same options.  percdamp and
 * act_order are taken from the options given to qf_gptq_hinv_init; the others from those
 * given to qf_gptq_quantize_hinv. */
typedef struct qf_gptq_hinv qf_gptq_hinv;

/* Prepare the damped, ordered inverse-Hessian factor (4 cols^2 bytes kept, 8 cols^2 bytes of
 * workspace during the call).  H and n_samples as for qf_gptq_quantize; o NULL: defaults.
 * H is borrowed, not copied: it must outlive hv (the scale refit reads it).
 * On failure *out is NULL.  Errors: QF_ERR_USAGE, QF_ERR_FORMAT (non-finite H, negative
 * diagonal, not positive definite after the dampening retries), QF_ERR_NOMEM. */
qf_status qf_gptq_hinv_init(qf_gptq_hinv **out, const double *H, int64_t cols, int64_t n_samples,
                            const qf_gptq_opts *o, qf_error *err);
/* qf_gptq_quantize with a prepared factor (hv is only read: several threads may share it). */
qf_status qf_gptq_quantize_hinv(const qf_scheme *s, float *W, int64_t rows, int64_t cols, const qf_gptq_hinv *hv,
                                float tensor_amax, const qf_gptq_opts *o, const qf_quant_plan *plan,
                                qf_quant_buffers *out, qf_gptq_result *res, qf_error *err);
/* NULL accepted. */
void qf_gptq_hinv_free(qf_gptq_hinv *hv);

#ifdef __cplusplus
}
#endif

#endif /* QF_GPTQ_H */
