/* qf_gguf_calib.h - calibrated GGUF rows: a Linear's float weights and the statistics of its
 * inputs (H = sum over calibration tokens of x x^T, as calib/ collects them) into ggml blocks.
 *
 * Two methods, both deterministic (rows are independent; OpenMP over rows):
 *   imatrix: each value's importance is the mean x^2 of its input column (H_cc / n, llama.cpp's
 *     imatrix), and every block's scales / mins minimise the importance-weighted squared error
 *     (qf_ggml_quantize_row_imp);
 *   gptq: GPTQ's column sweep (qf_gptq.h steps 1, 2, 4, 5) with the block format's rounding:
 *     when the sweep reaches a block its scales are fitted (importance-weighted) to the block's
 *     weights as the earlier columns' errors have left them, then each column takes the
 *     nearest code under those scales and pushes its error onto every later column through the
 *     upper Cholesky factor of H^-1.  Cost rows x cols^2 / 2 multiply-adds (no lazy batching).
 * On return W holds what the bytes decode to (bit for bit), so the caller's forward runs with
 * the stored weights. */
#ifndef QF_GGUF_CALIB_H
#define QF_GGUF_CALIB_H

#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* imp[c] = H[c, c] / n (1 when n is 0). */
void qf_gguf_importance(const double *H, int64_t cols, int64_t n, float *imp);
/* W [rows, cols] -> out (rows x qf_ggml_row_bytes(type, cols)) with importance imp[cols]. */
qf_status qf_gguf_quantize_imatrix(int type, float *W, int64_t rows, int64_t cols, const float *imp, uint8_t *out,
                                   qf_error *err);
/* W [rows, cols] -> out with GPTQ; H [cols, cols] float64 over n tokens (not modified);
 * percdamp as qf_gptq_opts (<= 0: 1e-4), multiplied by 10 up to 6 times while H + damp is not
 * positive definite.  *loss (may be NULL): GPTQ's loss.  QF_ERR_FORMAT when H stays
 * indefinite, QF_ERR_NOMEM. */
qf_status qf_gguf_quantize_gptq(int type, float *W, int64_t rows, int64_t cols, const double *H, int64_t n,
                                float percdamp, uint8_t *out, double *loss, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_GGUF_CALIB_H */
