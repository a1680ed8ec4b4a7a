/* qf_float_target.h - aim a Linear's quantization at the float model's output.
 *
 * Owns the "asymmetric" target of layer-by-layer calibration (GPTAQ, Li et al. 2025).
 * Textbook GPTQ rounds W so that X_q Q^T stays close to X_q W^T, where X_q are the inputs
 * the partly quantized model feeds the Linear: the error every earlier layer left in X_q is
 * taken as given.  The float model's own output for the same tokens is X_f W^T (X_f: the
 * float model's inputs), and that is what the quantized model should reproduce.  Ridge
 * least squares gives the float weights that best map the quantized inputs to it:
 *     W* = argmin ||X_f W^T - X_q V^T||^2 + lambda ||V - W||^2
 *        = W (P + lambda I)(H + lambda I)^-1 = W + W (P - H)(H + lambda I)^-1
 * with H = X_q^T X_q (GPTQ's Hessian), P = X_f^T X_q and lambda = percdamp * mean(diag H)
 * (GPTQ's own dampening).  GPTQ then rounds W* under H as usual: the float-path error
 * ||X_f W^T - X_q Q^T||^2 equals ||X_q (W* - Q)^T||^2 plus a constant (up to the ridge
 * term).  With X_f = X_q, W* = W exactly.  Pure math on matrices (float64 internally);
 * the caller collects H and P (qf_stats.h, QF_STATS_CROSS).
 */
#ifndef QF_FLOAT_TARGET_H
#define QF_FLOAT_TARGET_H

#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Optional replacements for the two kinds of work (the GPU's, when calibration runs with
 * one); NULL members: the CPU's. */
typedef struct qf_float_target_ops {
    /* qf_gptq_factor's contract (qf_linalg.h): H [n, n] float64 (workspace) -> U float32 upper
     * triangular with H^-1 = U^T U; returns 0 or the failing minor + 1 */
    int64_t (*factor)(double *H, int64_t n, float *U, qf_status *status, qf_error *err);
    /* y (m, n; ldy) = x (m, k; ldx) w^T, w [n, k] contiguous, float32; y overwritten */
    qf_status (*gemm_nt)(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *w, float *y,
                         int64_t ldy, qf_error *err);
} qf_float_target_ops;

/* Replace each of the n weights W[i] [rows[i], cols] (float32, row-major; Linears sharing
 * one input) by W + W (P - H)(H + lambda I)^-1, lambda = percdamp * mean(diag H).
 *   H  [cols, cols] float64, symmetric (as qf_stats_finish leaves it); not modified.
 *   P  [cols, cols] float64, P[a][b] = sum_t xf_t[a] xq_t[b]; not modified.
 *   ops    NULL: everything on the CPU.
 *   shift  may be NULL: receives ||W* - W|| / ||W|| over the n weights (0 when W is 0).
 * H all zero (no tokens): W is left as it is.  The factor is float64, the products float32
 * (float_target.c says why and in which order).
 * Errors: QF_ERR_USAGE (bad sizes, percdamp <= 0), QF_ERR_FORMAT (H or P not finite, or
 * H + lambda I not positive definite), QF_ERR_NOMEM, a replacement's error.  W is unchanged
 * on error.  Memory: qf_float_target_bytes. */
qf_status qf_float_target(float **W, const int64_t *rows, int n, int64_t cols, const double *H, const double *P,
                          float percdamp, const qf_float_target_ops *ops, double *shift, qf_error *err);

/* The workspace qf_float_target allocates for weights of these rows (memory plans): the
 * larger of the factor's 12 cols^2 and the products' (20 cols^2 + 4 * largest rows * cols when
 * the rows add up to cols or more, else 12 cols^2 + 12 * largest rows * cols), + 4 * sum of
 * rows * cols bytes. */
uint64_t qf_float_target_bytes(const int64_t *rows, int n, int64_t cols);

#ifdef __cplusplus
}
#endif

#endif /* QF_FLOAT_TARGET_H */
