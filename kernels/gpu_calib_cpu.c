/* gpu_calib_cpu.c - qf_gpu_calib.h in a CPU-only build: no GPU session ever starts, so
 * calibration keeps every product on the CPU; --device gpu is refused with the reason.
 * With QF_HAVE_CUDA this file is empty (kernels/gpu_calib.cu defines everything). */
#include <strings.h>

#include "qf_gpu_calib.h"

#ifndef QF_HAVE_CUDA

static qf_device_mode qf_mode = QF_DEVICE_AUTO;

int qf_device_mode_parse(const char *s)
{
    if (!s) return -1;
    if (!strcasecmp(s, "auto")) return QF_DEVICE_AUTO;
    if (!strcasecmp(s, "cpu")) return QF_DEVICE_CPU;
    if (!strcasecmp(s, "gpu") || !strcasecmp(s, "cuda")) return QF_DEVICE_GPU;
    return -1;
}

void qf_gpu_calib_set_mode(qf_device_mode mode) { qf_mode = mode; }
int qf_gpu_calib_enabled(void) { return 0; }

qf_status qf_gpu_calib_require(qf_error *err)
{
    if (qf_mode != QF_DEVICE_GPU) return QF_OK;
    return qf_fail(err, QF_ERR_UNSUPPORTED, "--device gpu: qforge was built without CUDA (no nvcc at build time)");
}

const char *qf_gpu_calib_device_name(void) { return ""; }
void qf_gpu_calib_shutdown(void) {}

#define QF_NO_GPU qf_fail(err, QF_ERR_UNSUPPORTED, "qforge was built without CUDA")

qf_status qf_gpu_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *w, float *y,
                          int64_t ldy, qf_error *err)
{
    (void)m, (void)n, (void)k, (void)x, (void)ldx, (void)w, (void)y, (void)ldy;
    return QF_NO_GPU;
}

qf_status qf_gpu_sgemm_nt_fill(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, qf_gpu_fill_fn fill,
                               void *ctx, float *y, int64_t ldy, qf_error *err)
{
    (void)m, (void)n, (void)k, (void)x, (void)ldx, (void)fill, (void)ctx, (void)y, (void)ldy;
    return QF_NO_GPU;
}

qf_status qf_gpu_xtx_create(int64_t cols, int cross, qf_gpu_xtx **out, qf_error *err)
{
    (void)cols, (void)cross;
    *out = 0;
    return QF_NO_GPU;
}

qf_status qf_gpu_xtx_add(qf_gpu_xtx *a, const float *X, int64_t rows, qf_error *err)
{
    (void)a, (void)X, (void)rows;
    return QF_NO_GPU;
}

qf_status qf_gpu_xtx_add_pair(qf_gpu_xtx *a, const float *X, const float *R, int64_t rows, qf_error *err)
{
    (void)a, (void)X, (void)R, (void)rows;
    return QF_NO_GPU;
}

qf_status qf_gpu_xtx_read(qf_gpu_xtx *a, double *C, double *P, qf_error *err)
{
    (void)a, (void)C, (void)P;
    return QF_NO_GPU;
}

void qf_gpu_xtx_free(qf_gpu_xtx *a) { (void)a; }

int64_t qf_gpu_gptq_factor(double *H, int64_t n, float *U, qf_status *status, qf_error *err)
{
    (void)H, (void)n, (void)U;
    *status = QF_NO_GPU;
    return 0;
}

#else
typedef int qf_gpu_calib_cpu_unused; /* ISO C: a translation unit must not be empty */
#endif
