/* qf_awq.h - AWQ: activation-aware per-channel scales and per-group clipping.
 *
 * Owns the two searches of AWQ (Lin et al.; AutoAWQ `quantizer.py`, llm-compressor
 * `AWQModifier`) as pure math on matrices and input statistics:
 *
 *   1. Scale search, for the Linears sharing one input x (q/k/v after input_layernorm;
 *      gate/up after post_attention_layernorm; o after v; down after up): one scale per input
 *      channel, chosen jointly for the whole group, from the candidates
 *          k = 0:              s = 1 (plain RTN; always a candidate, as in llm-compressor)
 *          k = 1 .. n_grid-1:  a = k / n_grid,
 *                              s = x_mean^a / (w_mean^(1-a) + 1e-4)  (duo_scaling, default)
 *                              s = x_mean^a                           (duo_scaling = 0)
 *      each clamped to >= 1e-4 and normalised by sqrt(max(s) min(s)), where x_mean[j] = mean
 *      over tokens of |x_j| and w_mean[j] = mean over the rows of all the group's weights of
 *      |W[r, j]| / max |W[r, group of j]|.  Each candidate is scored by the exact squared
 *      output error over the calibration set,
 *          L(s) = sum_k tr(dW_k H dW_k^T),  dW_k = Q(W_k diag(s)) diag(s)^-1 - W_k,
 *      with H = sum_t x_t x_t^T (instead of AutoAWQ's forward of the block on sampled tokens),
 *      evaluated on an evenly spaced subset of the group's rows when there are many (see
 *      max_rows).  The best s is returned; the caller folds it: the Linears' columns are
 *      multiplied by s (qf_smooth_scale_columns) and the previous op divided by it
 *      (qf_smooth_div_rows on the RMSNorm weight or the preceding Linear's rows and bias).
 *   2. Clip search, per Linear (after scaling): for each row and group, the range the group
 *      parameters are computed from is shrunk by ratios 1, 1 - d, ..., clip_min
 *      (d = (1 - clip_min) / clip_steps) and the ratio with the smallest output error of that
 *      group alone, e H_gg e^T (H's diagonal block: the partial dot products over the group's
 *      inputs), is kept.  The ratios feed qf_awq_quantize (RTN) or GPTQ (qf_gptq_opts.clip).
 *
 * Quantization inside the searches uses the scheme's own rules (qf_group_params_clipped,
 * qf_quant_value), so the error scored is the error of the stored format.  nvfp4: one
 * global scale for the whole group, from the amax of the scaled weights.
 */
#ifndef QF_AWQ_H
#define QF_AWQ_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_quantize.h"
#include "qf_scheme.h"
#include "qf_smooth.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_awq_opts {
    int n_grid;       /* scale candidates (including s = 1); default 20 */
    int duo_scaling;  /* 1 (default): candidates use w_mean too, as AutoAWQ's default */
    int64_t max_rows; /* rows (over all the group's Linears) the scale search scores; 0 (default)
                       * = automatic: all rows when rows * cols^2 <= 2^32 multiply-adds, else
                       * max(512, 2^32 / cols^2) evenly spaced rows */
    int clip_steps;   /* clip ratios tried after 1; default 10; 0 disables the clip search */
    float clip_min;   /* smallest clip ratio; default 0.5 */
} qf_awq_opts;

/* n_grid 20, duo_scaling 1, max_rows 0 (automatic), clip_steps 10, clip_min 0.5. */
void qf_awq_opts_default(qf_awq_opts *o);

typedef struct qf_awq_result {
    int best;        /* index of the chosen candidate (0: s = 1) */
    float alpha;     /* its exponent: best / n_grid */
    double loss;     /* L(s) of the chosen s on the scored rows */
    double loss_rtn; /* L(1): plain RTN on the same rows */
    int64_t rows_scored;
} qf_awq_result;

/* Scale search for the n_lin Linears in lin (unscaled float32 weights [rows_k, cols]) that
 * share one input with per-channel mean |x| x_mean[cols] and XᵀX sum H[cols, cols]
 * (float64, full symmetric).  Writes scales[cols].  tensor_amax is not needed: nvfp4's global
 * scale is recomputed for each candidate from the scaled weights.  o NULL: defaults.
 * QF_ERR_USAGE on bad arguments, QF_ERR_FORMAT on non-finite statistics, QF_ERR_NOMEM. */
qf_status qf_awq_search_scales(const qf_scheme *s, const qf_weight_ref *lin, int n_lin, int64_t cols,
                               const float *x_mean, const double *H, const qf_awq_opts *o, float *scales,
                               qf_awq_result *res, qf_error *err);

typedef struct qf_awq_clip_result {
    double loss;        /* sum over rows and groups of the chosen e H_gg e^T */
    double loss_noclip; /* the same with every ratio 1 */
} qf_awq_clip_result;

/* Clip search for one Linear.  W [rows, cols] float32: the weights as they will be quantized
 * (already multiplied by the AWQ scales).  H: XᵀX sum of the *unscaled* input when scales is
 * given (H_ij / (s_i s_j) is used), or of the input W sees when scales is NULL.
 * tensor_amax: nvfp4's global-scale amax (<= 0: from W; pass the max over fused siblings).
 * Writes ratios[rows * n_groups] (n_groups = cols / group_size, 1 for per-channel schemes;
 * per-channel schemes cost rows * cols^2 per ratio).  res may be NULL. */
qf_status qf_awq_search_clip(const qf_scheme *s, const float *W, int64_t rows, int64_t cols, const double *H,
                             const float *scales, float tensor_amax, const qf_awq_opts *o, float *ratios,
                             qf_awq_clip_result *res, qf_error *err);

/* Round-to-nearest with clip ratios: quantizes W [rows, cols] (float32, e.g. the AWQ-scaled
 * weights) under s into the plan's buffers, each group's parameters from its range times
 * ratios[r * n_groups + g] (NULL: 1 = plain RTN, byte-identical to qf_quantize_rtn), and
 * overwrites W with the dequantized values.  tensor_amax as for qf_gptq_quantize (nvfp4 G,
 * fp8 per-tensor scale; <= 0: from W).  The activation scale entry is not written. */
qf_status qf_awq_quantize(const qf_scheme *s, float *W, int64_t rows, int64_t cols, float tensor_amax,
                          const float *ratios, const qf_quant_plan *plan, qf_quant_buffers *out, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_AWQ_H */
