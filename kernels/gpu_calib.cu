/* gpu_calib.cu - calibration's float products on the GPU (see qf_gpu_calib.h). */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cusolverDn.h>

#include "qf_cuda_internal.cuh"

extern "C" {
#include "qf_gpu_calib.h"
}

#define QF_CUSOLVER_TRY(expr)                                                                                   \
    do {                                                                                                        \
        cusolverStatus_t qf_sol_s_ = (expr);                                                                    \
        if (qf_sol_s_ != CUSOLVER_STATUS_SUCCESS)                                                               \
            return qf_fail(err, QF_ERR_CUDA, "%s failed: cuSOLVER status %d (%s:%d)", #expr, (int)qf_sol_s_,     \
                           __FILE__, __LINE__);                                                                 \
    } while (0)

/* The session: created on first use, serialised by mu. */
static struct {
    pthread_mutex_t mu;
    int mode;      /* qf_device_mode; AUTO until set or read from QF_DEVICE */
    int mode_set;  /* mode fixed (by qf_gpu_calib_set_mode or the environment) */
    int state;     /* 0 not tried, 1 up, -1 unusable (reason in why) */
    char why[256];
    char name[256];
    cublasHandle_t blas;
    cusolverDnHandle_t sol;
    cudaStream_t s;
    qf_dbuf a, b, c, ws, info;
    float *pinned; /* page-locked staging for weights (qf_gpu_sgemm_nt_fill) */
    size_t pinned_cap;
} G = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, "", "", NULL, NULL, NULL, {}, {}, {}, {}, {}, NULL, 0};

struct qf_gpu_xtx {
    int64_t cols;
    double *sum; /* [cols, cols] column-major, upper triangle used (the float32 SSYRK result of one
                  * chunk goes to the session's buffer c: adds are serialised) */
    double *cross; /* [cols, cols] sum of RᵀX (NULL without): column-major XRᵀ = row-major RᵀX */
};

extern "C" int qf_device_mode_parse(const char *s)
{
    if (!s) return -1;
    if (!strcasecmp(s, "auto")) return QF_DEVICE_AUTO;
    if (!strcasecmp(s, "cpu")) return QF_DEVICE_CPU;
    if (!strcasecmp(s, "gpu") || !strcasecmp(s, "cuda")) return QF_DEVICE_GPU;
    return -1;
}

extern "C" void qf_gpu_calib_set_mode(qf_device_mode mode)
{
    pthread_mutex_lock(&G.mu);
    if (G.state == 0) G.mode = mode, G.mode_set = 1;
    pthread_mutex_unlock(&G.mu);
}

/* With mu held: start the session once.  Failure is remembered (state -1, reason in why). */
static int qf_gpu_start_locked(void)
{
    if (G.state) return G.state > 0;
    if (!G.mode_set) { /* the library reads no environment: QF_DEVICE is the CLI's (main.c) */
        G.mode = QF_DEVICE_AUTO;
        G.mode_set = 1;
    }
    G.state = -1;
    if (G.mode == QF_DEVICE_CPU) {
        snprintf(G.why, sizeof G.why, "--device cpu");
        return 0;
    }
    if (qf_cuda_device_count() < 1) {
        snprintf(G.why, sizeof G.why, "no CUDA device is visible");
        return 0;
    }
    cudaDeviceProp prop;
    if (cudaSetDevice(0) != cudaSuccess || cudaGetDeviceProperties(&prop, 0) != cudaSuccess ||
        cudaStreamCreateWithFlags(&G.s, cudaStreamNonBlocking) != cudaSuccess) {
        snprintf(G.why, sizeof G.why, "CUDA device 0 cannot be used: %s", cudaGetErrorString(cudaGetLastError()));
        return 0;
    }
    if (cublasCreate(&G.blas) != CUBLAS_STATUS_SUCCESS || cublasSetStream(G.blas, G.s) != CUBLAS_STATUS_SUCCESS ||
        cublasSetMathMode(G.blas, CUBLAS_PEDANTIC_MATH) != CUBLAS_STATUS_SUCCESS) {
        snprintf(G.why, sizeof G.why, "cuBLAS could not be initialised");
        return 0;
    }
    if (cusolverDnCreate(&G.sol) != CUSOLVER_STATUS_SUCCESS || cusolverDnSetStream(G.sol, G.s) != CUSOLVER_STATUS_SUCCESS) {
        snprintf(G.why, sizeof G.why, "cuSOLVER could not be initialised");
        return 0;
    }
    snprintf(G.name, sizeof G.name, "%s", prop.name);
    G.state = 1;
    return 1;
}

extern "C" int qf_gpu_calib_enabled(void)
{
    pthread_mutex_lock(&G.mu);
    const int on = qf_gpu_start_locked();
    pthread_mutex_unlock(&G.mu);
    return on;
}

extern "C" qf_status qf_gpu_calib_require(qf_error *err)
{
    pthread_mutex_lock(&G.mu);
    const int on = qf_gpu_start_locked();
    const int need = G.mode == QF_DEVICE_GPU;
    char why[256];
    snprintf(why, sizeof why, "%s", G.why);
    pthread_mutex_unlock(&G.mu);
    if (on || !need) return QF_OK;
    return qf_fail(err, QF_ERR_UNSUPPORTED, "--device gpu: %s", why);
}

extern "C" const char *qf_gpu_calib_device_name(void) { return G.state > 0 ? G.name : ""; }

static void qf_dbuf_drop(qf_dbuf *b)
{
    if (b->p) cudaFree(b->p);
    b->p = NULL;
    b->cap = 0;
}

extern "C" void qf_gpu_calib_shutdown(void)
{
    pthread_mutex_lock(&G.mu);
    if (G.state > 0) {
        cudaStreamSynchronize(G.s);
        qf_dbuf_drop(&G.a), qf_dbuf_drop(&G.b), qf_dbuf_drop(&G.c), qf_dbuf_drop(&G.ws), qf_dbuf_drop(&G.info);
        if (G.pinned) cudaFreeHost(G.pinned);
        G.pinned = NULL, G.pinned_cap = 0;
        cusolverDnDestroy(G.sol);
        cublasDestroy(G.blas);
        cudaStreamDestroy(G.s);
        G.sol = NULL, G.blas = NULL, G.s = NULL;
    }
    G.state = 0;
    pthread_mutex_unlock(&G.mu);
}

/* ---- y = x · Wᵀ ---------------------------------------------------------------------------- */

static qf_status qf_gpu_sgemm_locked(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *w,
                                     float *y, int64_t ldy, qf_error *err)
{
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
        return qf_fail(err, QF_ERR_USAGE, "gpu sgemm: dimension over 2^31 (%lld x %lld x %lld)", (long long)m,
                       (long long)n, (long long)k);
    const size_t xb = sizeof(float) * (size_t)m * (size_t)k, wb = sizeof(float) * (size_t)n * (size_t)k,
                 yb = sizeof(float) * (size_t)m * (size_t)n;
    QF_TRY(qf_dbuf_reserve(&G.a, xb, 0, err));
    QF_TRY(qf_dbuf_reserve(&G.b, wb, 0, err));
    QF_TRY(qf_dbuf_reserve(&G.c, yb, 0, err));
    float *dx = (float *)G.a.p, *dw = (float *)G.b.p, *dy = (float *)G.c.p;
    QF_CUDA_TRY(cudaMemcpy2DAsync(dx, sizeof(float) * (size_t)k, x, sizeof(float) * (size_t)ldx,
                                  sizeof(float) * (size_t)k, (size_t)m, cudaMemcpyHostToDevice, G.s));
    QF_CUDA_TRY(cudaMemcpyAsync(dw, w, wb, cudaMemcpyHostToDevice, G.s));
    /* column-major view: Y (n x m) = Wcᵀ (n x k) · Xc (k x m), Wc = w as k x n, Xc = x as k x m */
    const float one = 1.0f, zero = 0.0f;
    QF_CUBLAS_TRY(cublasSgemm(G.blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, dw, (int)k, dx, (int)k,
                              &zero, dy, (int)n));
    QF_CUDA_TRY(cudaMemcpy2DAsync(y, sizeof(float) * (size_t)ldy, dy, sizeof(float) * (size_t)n,
                                  sizeof(float) * (size_t)n, (size_t)m, cudaMemcpyDeviceToHost, G.s));
    QF_CUDA_TRY(cudaStreamSynchronize(G.s));
    return QF_OK;
}

extern "C" qf_status qf_gpu_sgemm_nt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *w,
                                     float *y, int64_t ldy, qf_error *err)
{
    if (m <= 0 || n <= 0 || k <= 0) return QF_OK;
    pthread_mutex_lock(&G.mu);
    qf_status st = G.state > 0 ? qf_gpu_sgemm_locked(m, n, k, x, ldx, w, y, ldy, err)
                               : qf_fail(err, QF_ERR_USAGE, "gpu sgemm: no GPU session");
    pthread_mutex_unlock(&G.mu);
    return st;
}

extern "C" qf_status qf_gpu_sgemm_nt_fill(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                                          qf_gpu_fill_fn fill, void *ctx, float *y, int64_t ldy, qf_error *err)
{
    if (m <= 0 || n <= 0 || k <= 0) return QF_OK;
    const size_t bytes = sizeof(float) * (size_t)n * (size_t)k;
    qf_status st = QF_OK;
    pthread_mutex_lock(&G.mu);
    if (G.state <= 0) st = qf_fail(err, QF_ERR_USAGE, "gpu sgemm: no GPU session");
    if (st == QF_OK && G.pinned_cap < bytes) {
        if (G.pinned) cudaStreamSynchronize(G.s), cudaFreeHost(G.pinned);
        G.pinned = NULL, G.pinned_cap = 0;
        const cudaError_t e = cudaHostAlloc((void **)&G.pinned, bytes, cudaHostAllocDefault);
        if (e != cudaSuccess) {
            G.pinned = NULL;
            st = qf_fail(err, QF_ERR_NOMEM, "gpu sgemm: %.1f MB of page-locked memory: %s", (double)bytes / 1e6,
                         cudaGetErrorString(e));
        } else {
            G.pinned_cap = bytes;
        }
    }
    if (st == QF_OK) {
        fill(ctx, G.pinned);
        st = qf_gpu_sgemm_locked(m, n, k, x, ldx, G.pinned, y, ldy, err);
    }
    pthread_mutex_unlock(&G.mu);
    return st;
}

/* ---- XᵀX ------------------------------------------------------------------------------------ */

/* sum[i + j*n] += chunk[i + j*n] on the upper triangle (i <= j; the rest of chunk is not set) */
static __global__ void qf_xtx_accumulate(double *sum, const float *chunk, int64_t n)
{
    const int64_t nn = n * n;
    for (int64_t a = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; a < nn; a += (int64_t)gridDim.x * blockDim.x)
        if (a % n <= a / n) sum[a] += (double)chunk[a];
}

/* sum[a] += chunk[a] everywhere (the cross product) */
static __global__ void qf_cross_accumulate(double *sum, const float *chunk, int64_t nn)
{
    for (int64_t a = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; a < nn; a += (int64_t)gridDim.x * blockDim.x)
        sum[a] += (double)chunk[a];
}

static __global__ void qf_xtx_zero(double *sum, int64_t nn)
{
    for (int64_t a = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; a < nn; a += (int64_t)gridDim.x * blockDim.x)
        sum[a] = 0.0;
}

extern "C" qf_status qf_gpu_xtx_create(int64_t cols, int cross, qf_gpu_xtx **out, qf_error *err)
{
    *out = NULL;
    if (cols <= 0 || cols > INT32_MAX) return qf_fail(err, QF_ERR_USAGE, "gpu xtx: bad width %lld", (long long)cols);
    qf_gpu_xtx *a = (qf_gpu_xtx *)calloc(1, sizeof *a);
    if (!a) return qf_fail(err, QF_ERR_NOMEM, "gpu xtx: out of memory");
    a->cols = cols;
    const size_t nn = (size_t)cols * (size_t)cols;
    pthread_mutex_lock(&G.mu);
    cudaError_t e = G.state > 0 ? cudaSetDevice(0) : cudaErrorNoDevice;
    if (e == cudaSuccess) e = cudaMalloc(&a->sum, nn * sizeof(double));
    if (e == cudaSuccess) e = cudaMemsetAsync(a->sum, 0, nn * sizeof(double), G.s);
    if (e == cudaSuccess && cross) e = cudaMalloc(&a->cross, nn * sizeof(double));
    if (e == cudaSuccess && cross) e = cudaMemsetAsync(a->cross, 0, nn * sizeof(double), G.s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(G.s);
    pthread_mutex_unlock(&G.mu);
    if (e != cudaSuccess) {
        qf_gpu_xtx_free(a);
        return qf_fail(err, e == cudaErrorMemoryAllocation ? QF_ERR_NOMEM : QF_ERR_CUDA,
                       "gpu xtx: %.2f GB of GPU memory for a %lld-wide XᵀX: %s", (cross ? 16.0 : 8.0) * (double)nn / 1e9,
                       (long long)cols, cudaGetErrorString(e));
    }
    *out = a;
    return QF_OK;
}

static qf_status qf_gpu_xtx_add_locked(qf_gpu_xtx *a, const float *X, const float *R, int64_t rows, qf_error *err)
{
    const int64_t n = a->cols;
    const size_t bytes = sizeof(float) * (size_t)rows * (size_t)n;
    QF_TRY(qf_dbuf_reserve(&G.a, bytes, 0, err));
    QF_TRY(qf_dbuf_reserve(&G.c, sizeof(float) * (size_t)n * (size_t)n, 0, err));
    if (R) QF_TRY(qf_dbuf_reserve(&G.b, bytes, 0, err));
    float *dx = (float *)G.a.p, *dr = R ? (float *)G.b.p : NULL, *chunk = (float *)G.c.p;
    QF_CUDA_TRY(cudaMemcpyAsync(dx, X, bytes, cudaMemcpyHostToDevice, G.s));
    /* X row-major [rows, n] = column-major A (n x rows); XᵀX = A Aᵀ, upper triangle */
    const float one = 1.0f, zero = 0.0f;
    QF_CUBLAS_TRY(cublasSsyrk(G.blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, (int)n, (int)rows, &one, dx, (int)n, &zero,
                              chunk, (int)n));
    qf_xtx_accumulate<<<2048, 256, 0, G.s>>>(a->sum, chunk, n);
    QF_CUDA_LAUNCHED("qf_xtx_accumulate");
    if (!R) return QF_OK; /* the next call on the stream orders after this one; read synchronises */
    /* RᵀX row-major = its transpose column-major: (A_X A_Rᵀ)[b + a n] = sum_t X[t][b] R[t][a] */
    QF_CUDA_TRY(cudaMemcpyAsync(dr, R, bytes, cudaMemcpyHostToDevice, G.s));
    QF_CUBLAS_TRY(cublasSgemm(G.blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)n, (int)n, (int)rows, &one, dx, (int)n, dr, (int)n,
                              &zero, chunk, (int)n));
    qf_cross_accumulate<<<2048, 256, 0, G.s>>>(a->cross, chunk, n * n);
    QF_CUDA_LAUNCHED("qf_cross_accumulate");
    return QF_OK;
}

extern "C" qf_status qf_gpu_xtx_add(qf_gpu_xtx *a, const float *X, int64_t rows, qf_error *err)
{
    if (rows <= 0) return QF_OK;
    pthread_mutex_lock(&G.mu);
    qf_status st = G.state > 0 ? qf_gpu_xtx_add_locked(a, X, NULL, rows, err)
                               : qf_fail(err, QF_ERR_USAGE, "gpu xtx: no GPU session");
    pthread_mutex_unlock(&G.mu);
    return st;
}

extern "C" qf_status qf_gpu_xtx_add_pair(qf_gpu_xtx *a, const float *X, const float *R, int64_t rows, qf_error *err)
{
    if (rows <= 0) return QF_OK;
    pthread_mutex_lock(&G.mu);
    qf_status st = !a->cross  ? qf_fail(err, QF_ERR_USAGE, "gpu xtx: made without the cross product")
                   : G.state > 0 ? qf_gpu_xtx_add_locked(a, X, R, rows, err)
                                 : qf_fail(err, QF_ERR_USAGE, "gpu xtx: no GPU session");
    pthread_mutex_unlock(&G.mu);
    return st;
}

/* dst += the device sum src [n, n] column-major, brought over in column panels of tmp
 * (panel x n) so the host needs no n x n staging buffer.  upper = 1: the upper triangle of
 * src into the lower triangle of row-major dst (column j = row j); 0: all of it as it is. */
static qf_status qf_gpu_sum_read(const double *src, int64_t n, int64_t panel, double *tmp, int upper, double *dst,
                                 const char *what, qf_error *err)
{
    for (int64_t j0 = 0; j0 < n; j0 += panel) {
        const int64_t nj = n - j0 < panel ? n - j0 : panel;
        cudaError_t e = cudaMemcpyAsync(tmp, src + j0 * n, sizeof(double) * (size_t)(nj * n), cudaMemcpyDeviceToHost, G.s);
        if (e == cudaSuccess) e = cudaStreamSynchronize(G.s);
        if (e != cudaSuccess) return qf_fail(err, QF_ERR_CUDA, "gpu xtx: reading the %s failed: %s", what, cudaGetErrorString(e));
        for (int64_t jj = 0; jj < nj; jj++) {
            const int64_t j = j0 + jj;
            const double *s = tmp + jj * n;
            double *d = dst + j * n;
            for (int64_t i = 0; i < (upper ? j + 1 : n); i++) d[i] += s[i];
        }
    }
    return QF_OK;
}

static qf_status qf_gpu_xtx_read_locked(qf_gpu_xtx *a, double *C, double *P, qf_error *err)
{
    const int64_t n = a->cols;
    const size_t nn = (size_t)n * (size_t)n;
    const int64_t panel = (int64_t)((256u << 20) / (sizeof(double) * (size_t)n)) > 0
                              ? (int64_t)((256u << 20) / (sizeof(double) * (size_t)n)) : 1;
    double *tmp = (double *)malloc(sizeof(double) * (size_t)panel * (size_t)n);
    if (!tmp) return qf_fail(err, QF_ERR_NOMEM, "gpu xtx: out of memory reading a %lld-wide XᵀX", (long long)n);
    qf_status st = qf_gpu_sum_read(a->sum, n, panel, tmp, 1, C, "sum", err);
    /* the cross sum: column-major XRᵀ is row-major RᵀX, added as it is */
    if (st == QF_OK && a->cross && P) st = qf_gpu_sum_read(a->cross, n, panel, tmp, 0, P, "cross sum", err);
    free(tmp);
    if (st != QF_OK) return st;
    qf_xtx_zero<<<1024, 256, 0, G.s>>>(a->sum, (int64_t)nn);
    QF_CUDA_LAUNCHED("qf_xtx_zero");
    if (a->cross) {
        qf_xtx_zero<<<1024, 256, 0, G.s>>>(a->cross, (int64_t)nn);
        QF_CUDA_LAUNCHED("qf_xtx_zero");
    }
    QF_CUDA_TRY(cudaStreamSynchronize(G.s));
    return QF_OK;
}

extern "C" qf_status qf_gpu_xtx_read(qf_gpu_xtx *a, double *C, double *P, qf_error *err)
{
    pthread_mutex_lock(&G.mu);
    qf_status st = G.state > 0 ? qf_gpu_xtx_read_locked(a, C, P, err)
                               : qf_fail(err, QF_ERR_USAGE, "gpu xtx: no GPU session");
    pthread_mutex_unlock(&G.mu);
    return st;
}

extern "C" void qf_gpu_xtx_free(qf_gpu_xtx *a)
{
    if (!a) return;
    pthread_mutex_lock(&G.mu);
    if (G.state > 0) cudaStreamSynchronize(G.s);
    if (a->sum) cudaFree(a->sum);
    if (a->cross) cudaFree(a->cross);
    pthread_mutex_unlock(&G.mu);
    free(a);
}

/* ---- GPTQ factor ------------------------------------------------------------------------------ */

/* dst[a] = src[nn - 1 - a]: the index reversal J·J of an n x n array (as qf_gptq_factor) */
static __global__ void qf_reverse_f64(double *dst, const double *src, int64_t nn)
{
    for (int64_t a = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; a < nn; a += (int64_t)gridDim.x * blockDim.x)
        dst[a] = src[nn - 1 - a];
}
static __global__ void qf_reverse_to_f32(float *dst, const double *src, int64_t nn)
{
    for (int64_t a = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; a < nn; a += (int64_t)gridDim.x * blockDim.x)
        dst[a] = (float)src[nn - 1 - a];
}
static __global__ void qf_identity_f64(double *dst, int64_t n)
{
    const int64_t nn = n * n;
    for (int64_t a = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; a < nn; a += (int64_t)gridDim.x * blockDim.x)
        dst[a] = a % (n + 1) == 0 ? 1.0 : 0.0;
}

/* With mu held: the factor of H into U, or *fail = the failing minor + 1. */
static qf_status qf_gpu_factor_locked(const double *H, int64_t n, float *U, int64_t *fail, qf_error *err)
{
    const size_t nn = (size_t)n * (size_t)n;
    *fail = 0;
    QF_TRY(qf_dbuf_reserve(&G.a, nn * sizeof(double), 0, err));
    QF_TRY(qf_dbuf_reserve(&G.b, nn * sizeof(double), 0, err));
    QF_TRY(qf_dbuf_reserve(&G.info, sizeof(int), 0, err));
    double *dh = (double *)G.a.p, *dl = (double *)G.b.p;
    int *dinfo = (int *)G.info.p;
    QF_CUDA_TRY(cudaMemcpyAsync(dh, H, nn * sizeof(double), cudaMemcpyHostToDevice, G.s));
    /* B = J H J, row-major; its row-major lower triangle is the column-major upper one */
    qf_reverse_f64<<<2048, 256, 0, G.s>>>(dl, dh, (int64_t)nn);
    QF_CUDA_LAUNCHED("qf_reverse_f64");
    int lwork = 0;
    QF_CUSOLVER_TRY(cusolverDnDpotrf_bufferSize(G.sol, CUBLAS_FILL_MODE_UPPER, (int)n, dl, (int)n, &lwork));
    QF_TRY(qf_dbuf_reserve(&G.ws, sizeof(double) * (size_t)(lwork > 0 ? lwork : 1), 0, err));
    /* column-major B = Ucᵀ Uc with Uc upper: Uc = Lᵀ where L Lᵀ = J H J (L row-major lower) */
    QF_CUSOLVER_TRY(cusolverDnDpotrf(G.sol, CUBLAS_FILL_MODE_UPPER, (int)n, dl, (int)n, (double *)G.ws.p, lwork, dinfo));
    int info = 0;
    QF_CUDA_TRY(cudaMemcpyAsync(&info, dinfo, sizeof info, cudaMemcpyDeviceToHost, G.s));
    /* the factor's diagonal, to catch NaN / Inf, which potrf does not report */
    double *diag = (double *)malloc(sizeof(double) * (size_t)n);
    if (!diag) return qf_fail(err, QF_ERR_NOMEM, "gptq factor: out of memory");
    cudaError_t e = cudaMemcpy2DAsync(diag, sizeof(double), dl, sizeof(double) * (size_t)(n + 1), sizeof(double),
                                      (size_t)n, cudaMemcpyDeviceToHost, G.s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(G.s);
    if (e != cudaSuccess) {
        free(diag);
        return qf_fail(err, QF_ERR_CUDA, "gptq factor: reading the Cholesky diagonal: %s", cudaGetErrorString(e));
    }
    if (info < 0) {
        free(diag);
        return qf_fail(err, QF_ERR_CUDA, "gptq factor: cusolverDnDpotrf argument %d is illegal", -info);
    }
    int64_t f = info;
    for (int64_t i = 0; i < (f ? f - 1 : n); i++)
        if (!(diag[i] > 0.0) || !isfinite(diag[i])) {
            f = i + 1;
            break;
        }
    free(diag);
    if (f) {
        *fail = f;
        return QF_OK;
    }
    /* Uc⁻¹ by a triangular solve against I: column-major upper Uc⁻¹ = row-major lower L⁻¹ */
    qf_identity_f64<<<2048, 256, 0, G.s>>>(dh, n);
    QF_CUDA_LAUNCHED("qf_identity_f64");
    const double one = 1.0;
    QF_CUBLAS_TRY(cublasDtrsm(G.blas, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT, (int)n,
                              (int)n, &one, dl, (int)n, dh, (int)n));
    /* U = J L⁻¹ J narrowed to float32, as on the CPU; L's buffer is free now and holds U */
    float *du = (float *)G.b.p;
    qf_reverse_to_f32<<<2048, 256, 0, G.s>>>(du, dh, (int64_t)nn);
    QF_CUDA_LAUNCHED("qf_reverse_to_f32");
    QF_CUDA_TRY(cudaMemcpyAsync(U, du, nn * sizeof(float), cudaMemcpyDeviceToHost, G.s));
    QF_CUDA_TRY(cudaStreamSynchronize(G.s));
    return QF_OK;
}

extern "C" int64_t qf_gpu_gptq_factor(double *H, int64_t n, float *U, qf_status *status, qf_error *err)
{
    *status = QF_OK;
    if (n <= 0) return 0;
    if (n > 46340) { /* n * n must fit the int32 leading-dimension arithmetic of the solvers */
        *status = qf_fail(err, QF_ERR_USAGE, "gptq factor: %lld columns is too wide for the GPU path", (long long)n);
        return 0;
    }
    pthread_mutex_lock(&G.mu);
    int64_t f = 0;
    if (G.state > 0) *status = qf_gpu_factor_locked(H, n, U, &f, err);
    else *status = qf_fail(err, QF_ERR_USAGE, "gptq factor: no GPU session");
    pthread_mutex_unlock(&G.mu);
    return f;
}
