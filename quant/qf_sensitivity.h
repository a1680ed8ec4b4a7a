/* qf_sensitivity.h - how much rounding one Linear into a scheme costs its output, before any
 * quantization is done: the per-Linear sensitivity that --target-bits budgets with.
 *
 * Owns one estimate.  A Linear y = W x with inputs x whose second moment is H = E[x x^T]:
 * rounding W to Q changes the output's mean square by tr((Q - W) H (Q - W)^T), which with the
 * diagonal of H alone (hdiag[j] = E[x_j^2], from the calibration pass's XᵀX / tokens) is
 *     err = sum_ij hdiag[j] (W_ij - Q_ij)^2
 * (the Hessian-diagonal proxy of HAWQ / GPTQ's loss without the cross terms: O(rows x cols),
 * no cols x cols product).  Q is what RTN with the scheme's default clip search stores
 * (qf_quantize_rtn_clip), so the estimate is of the artifact's rounding, not of an idealised
 * one; calibrated methods lower it by a layer-dependent factor, the ranking is what is used.
 * energy = sum_ij hdiag[j] W_ij^2 is the output's own mean square, for relative figures.
 * Nothing is allocated for the caller; the function is deterministic for any thread count.
 */
#ifndef QF_SENSITIVITY_H
#define QF_SENSITIVITY_H

#include <stdint.h>

#include "qf_scheme.h"

#ifdef __cplusplus
extern "C" {
#endif

/* err (above) of rounding W[rows, cols] (float32, row-major) into scheme s; s NULL = the
 * Linear kept as it is (0).  tensor_amax: nvfp4's global-scale amax (the max over fused
 * siblings; <= 0: W's own).  *energy (may be NULL) receives sum hdiag[j] W_ij^2.  Returns -1
 * when W does not fit s (qf_scheme_fits). */
double qf_sens_error(const qf_scheme *s, const float *W, int64_t rows, int64_t cols, const double *hdiag,
                     float tensor_amax, double *energy);

#ifdef __cplusplus
}
#endif

#endif /* QF_SENSITIVITY_H */
