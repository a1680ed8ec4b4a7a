/* qf_gpu_calib.h - the GPU for calibration's float products (XᵀX, Linear forward, GPTQ factor).
 *
 * Owns one process-wide GPU session (device 0, one cuBLAS and one cuSOLVER handle, one stream,
 * device buffers that grow and are kept) that the CPU model runner hands its three big
 * products to when a GPU is present:
 *   - the Hessian sums XᵀX of qf_stats: float32 products of each 512-row chunk (cuBLAS SSYRK)
 *     added into a float64 sum that stays on the device until it is read, as on the CPU;
 *   - the Linear product y = x·Wᵀ of qf_matmul_rows (cuBLAS SGEMM, float32, no TF32);
 *   - GPTQ's factor U = chol(H⁻¹, upper) (cuSOLVER Cholesky + cuBLAS triangular solve, float64).
 * Results equal the CPU's up to the order of floating-point sums, so an artifact made with the
 * GPU differs from one made without it in a few rounding decisions (both are deterministic).
 * Everything else (norms, attention, RoPE, the GPTQ sweep) stays on the CPU.
 *
 * The session starts on first use and lives until exit (qf_gpu_calib_shutdown releases it
 * early).  Calls are serialised by a mutex; inputs and outputs are host memory.  Which device
 * work goes to: qf_gpu_calib_set_mode (the pipeline sets qf_ctx's device; the CLI
 * fills that from --device or QF_DEVICE=cpu|gpu|auto), else auto = the GPU when a CUDA build finds one.  In a CPU-only
 * build (no nvcc) every entry point reports "no GPU" and callers stay on the CPU.
 */
#ifndef QF_GPU_CALIB_H
#define QF_GPU_CALIB_H

#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { QF_DEVICE_AUTO = 0, QF_DEVICE_CPU = 1, QF_DEVICE_GPU = 2 } qf_device_mode;

/* Parses "auto", "cpu", "gpu"; -1 for anything else. */
int qf_device_mode_parse(const char *s);
/* Choose the device before the first product (later calls are ignored once the session
 * started).  QF_DEVICE_GPU makes qf_gpu_calib_require fail when no GPU can be used. */
void qf_gpu_calib_set_mode(qf_device_mode mode);

/* 1 when products go to the GPU (starting the session on first call), else 0. */
int qf_gpu_calib_enabled(void);
/* QF_OK when the mode allows the CPU or a GPU session is up; with --device gpu and no usable
 * GPU, QF_ERR_UNSUPPORTED with the reason. */
qf_status qf_gpu_calib_require(qf_error *err);
/* "NVIDIA H100 80GB HBM3" or "" when no session; for logs and the manifest. */
const char *qf_gpu_calib_device_name(void);
/* Release the device buffers and handles (the next enabled call starts again). */
void qf_gpu_calib_shutdown(void);

/* Below: only call when qf_gpu_calib_enabled() returned 1.  All return QF_ERR_CUDA (with the
 * failing call named) or QF_ERR_NOMEM on failure. */

/* y[m, n] (row stride ldy) = x[m, k] (row stride ldx) · w[n, k]ᵀ (w contiguous), float32. */
qf_status qf_gpu_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *w, float *y,
                          int64_t ldy, qf_error *err);
/* The same product with W written by fill(ctx, w) straight into the session's page-locked
 * staging buffer (w[n, k], contiguous; fill may use threads): no copy of the weight in
 * pageable memory and a transfer at full PCIe speed. */
typedef void (*qf_gpu_fill_fn)(void *ctx, float *w);
qf_status qf_gpu_sgemm_nt_fill(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, qf_gpu_fill_fn fill,
                               void *ctx, float *y, int64_t ldy, qf_error *err);

/* A float64 XᵀX sum for inputs of width cols, kept on the device; cross = 1: also the
 * float64 sum of RᵀX for paired rows (qf_stats' QF_STATS_CROSS). */
typedef struct qf_gpu_xtx qf_gpu_xtx;
qf_status qf_gpu_xtx_create(int64_t cols, int cross, qf_gpu_xtx **out, qf_error *err);
/* sum += XᵀX of rows X[rows, cols] (contiguous), products and sums over the rows in float32
 * (the CPU's qf_syrk_acc contract for one chunk), then added to the float64 sum. */
qf_status qf_gpu_xtx_add(qf_gpu_xtx *a, const float *X, int64_t rows, qf_error *err);
/* The same, and cross += RᵀX for the reference rows R[rows, cols] (qf_gemm_tn_acc's contract
 * for one chunk).  QF_ERR_USAGE when made without cross. */
qf_status qf_gpu_xtx_add_pair(qf_gpu_xtx *a, const float *X, const float *R, int64_t rows, qf_error *err);
/* C[cols, cols] (row-major, float64) lower triangle incl. diagonal += the sum; P (may be NULL;
 * row-major, all of it) += the cross sum; the device sums are reset to 0 (so reading twice
 * does not count rows twice).  C's upper triangle untouched. */
qf_status qf_gpu_xtx_read(qf_gpu_xtx *a, double *C, double *P, qf_error *err);
void qf_gpu_xtx_free(qf_gpu_xtx *a);

/* qf_gptq_factor (qf_linalg.h) on the GPU: H[n, n] symmetric positive definite (float64,
 * row-major, left unchanged here), U[n, n] float32 upper triangular with H⁻¹ = UᵀU.  Returns 0,
 * or j + 1 when the leading minor of order j + 1 is not positive definite (or not finite);
 * *status QF_OK or the CUDA failure. */
int64_t qf_gpu_gptq_factor(double *H, int64_t n, float *U, qf_status *status, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_GPU_CALIB_H */
