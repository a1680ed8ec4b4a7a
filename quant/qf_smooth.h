/* qf_smooth.h - SmoothQuant scales, and the folding of per-input-channel scales.
 *
 * Owns (1) SmoothQuant's migration of activation outliers into the weights
 * (mit-han-lab/smoothquant `smooth_ln_fcs`): for the Linears that share one input x (q/k/v
 * after input_layernorm; gate/up after post_attention_layernorm) one scale per input
 * channel j,
 *     s_j = max|x_j|^alpha / max_k max_r |W_k[r, j]|^(1 - alpha)        (alpha = 0.5)
 * so that x' = x / s and W' = W diag(s) give the same product x' W'^T with flatter
 * activations; and (2) the folding helpers shared with AWQ: multiply weight columns by s,
 * divide the previous op (RMSNorm weight, or the rows and bias of a preceding Linear) by s,
 * and transform the input statistics (XᵀX, absmax) to those of x / s.
 *
 * Everything is float32 in, float32 out, caller-owned buffers; nothing allocates.
 */
#ifndef QF_SMOOTH_H
#define QF_SMOOTH_H

#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A float32 weight [rows, cols] (row-major) of a Linear in a group sharing one input. */
typedef struct qf_weight_ref {
    const float *w;
    int64_t rows;
} qf_weight_ref;

/* s[cols] = act_absmax^alpha / wmax^(1 - alpha), wmax_j = max over the n_lin weights of
 * max_r |W[r, j]|; wmax clamped to >= 1e-5 and s to >= 1e-5 as the reference does, except
 * that a channel whose activation or weight column is entirely zero gets s = 1 (scaling it
 * changes nothing but would store extreme values in the folded norm).  alpha in [0, 1].
 * QF_ERR_USAGE on bad arguments or non-finite statistics. */
qf_status qf_smooth_scales(const float *act_absmax, int64_t cols, const qf_weight_ref *lin, int n_lin, float alpha,
                           float *s, qf_error *err);

/* W[:, j] *= s[j] for W [rows, cols]: what the Linears after the folded op get. */
void qf_smooth_scale_columns(float *W, int64_t rows, int64_t cols, const float *s);
/* W[i, :] /= s[i] for W [rows, cols]: the op before the scaled input.  An RMSNorm weight or a
 * bias is the case cols = 1 (v[i] /= s[i]); the rows of a preceding Linear (v_proj before
 * o_proj, up_proj before down_proj) with cols = its in_features. */
void qf_smooth_div_rows(float *W, int64_t rows, int64_t cols, const float *s);
/* Statistics of x / s from those of x: H[i][j] /= s_i s_j (H [cols, cols] float64, the
 * XᵀX sum) and, when v is not NULL, v[j] /= s_j (absmax or mean |x|, float32). */
void qf_smooth_stats(double *H, float *v, int64_t cols, const float *s);

#ifdef __cplusplus
}
#endif

#endif /* QF_SMOOTH_H */
