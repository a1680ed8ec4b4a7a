/* qf_gptq_descent.h - after GPTQ: coordinate descent on the codes themselves.
 *
 * Owns the code-descent step of GPTQ (used by qf_gptq_quantize when qf_gptq_opts.descent > 0).
 * GPTQ chooses each code once, greedily, and pushes its rounding error onto the columns not
 * yet reached; the columns reached early never see the errors made after them.  With the
 * group parameters held fixed, the row's output error f(q) = (w0 - q)^T H (w0 - q) is a
 * quadratic in each single weight, so the best code of weight j given all the others is the
 * stored value nearest to q_j + (H (w0 - q))_j / H_jj: exact coordinate descent over the codes
 * (QuantEase, Behdin et al. 2023, applied after GPTQ instead of from RTN); for int4 / int8,
 * pair moves (one weight one level, a correlated partner to its best value given that) where
 * single moves are stuck.  Every accepted
 * move lowers f, so the result is never worse than GPTQ's own in the layer objective.  Pure
 * math on matrices; the caller packs the updated codes.
 */
#ifndef QF_GPTQ_DESCENT_H
#define QF_GPTQ_DESCENT_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_quantize.h"
#include "qf_scheme.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_descent_result {
    double loss_before; /* sum over rows of (w0 - q)^T H (w0 - q) with the codes given */
    double loss_after;  /* the same after the descent (<= loss_before) */
    int64_t moves;      /* codes changed (a code changed twice counts twice) */
} qf_descent_result;

/* W0 [rows, cols]: the target weights; H [cols, cols] (float64, full symmetric) the input
 * Hessian; codes [rows, cols] the stored codes (original column order; updated); gp [rows,
 * cols/gs] their group parameters (read only); Wq [rows, cols] the dequantized weights
 * (updated to what the new codes decode to, bit for bit as qf_quant_value gives them).
 * Columns with H_jj <= 0 (dead inputs) are left alone.  sweeps <= 0: nothing is done.
 * Returns QF_OK or QF_ERR_NOMEM (16 rows cols bytes of workspace). */
qf_status qf_gptq_descent(const qf_scheme *s, const float *W0, int64_t rows, int64_t cols, const double *H,
                          uint8_t *codes, const qf_group_params *gp, int sweeps, float *Wq, qf_descent_result *res,
                          qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_GPTQ_DESCENT_H */
