/* qf_gptq_refit.h - after GPTQ: the best stored group scales for the codes it chose.
 *
 * Owns the scale refit step of GPTQ (used by qf_gptq_quantize when qf_gptq_opts.refit > 0):
 * with the codes fixed, each group's stored scale (and int4 asym zero point, by +-1) is
 * re-chosen by coordinate descent on the row's output error (w0 - q)^T H (w0 - q), over the
 * values the scale's stored dtype can hold.  Every move lowers that error, so the result is
 * never worse than the scales GPTQ picked when it reached each group (gptq_refit.c explains
 * the algebra).  Pure math on matrices; the packed bytes are written by the caller from the
 * updated group parameters.
 */
#ifndef QF_GPTQ_REFIT_H
#define QF_GPTQ_REFIT_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_quantize.h"
#include "qf_scheme.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_refit_result {
    double loss_before; /* sum over rows of (w0 - q)^T H (w0 - q) with GPTQ's scales */
    double loss_after;  /* the same after the refit (<= loss_before) */
    int64_t moves;      /* group parameters changed */
} qf_refit_result;

/* W0 [rows, cols]: the original weights; H [cols, cols] (float64, full symmetric) the input
 * Hessian; codes [rows, cols] the stored codes (original column order); gp [rows, cols/gs]
 * their group parameters (updated); G nvfp4's global scale (ignored otherwise); Wq [rows,
 * cols] the dequantized weights (updated to what the new parameters decode to).
 * sweeps <= 0 or a per-tensor scheme (fp8 static): nothing is done.
 * Returns QF_OK or QF_ERR_NOMEM (4 cols^2 + 8 rows cols bytes of workspace). */
qf_status qf_gptq_refit(const qf_scheme *s, const float *W0, int64_t rows, int64_t cols, const double *H,
                        const uint8_t *codes, qf_group_params *gp, float G, int sweeps, float *Wq,
                        qf_refit_result *res, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_GPTQ_REFIT_H */
