/* qf_matmul.c - cache-blocked float32 y = x · Wᵀ (see qf_matmul.h).
 *
 * Blocking (GotoBLAS-style, simplified for "many activation rows, weight streamed once"):
 *   W rows are cut into blocks of nb rows, one block per OpenMP work item; the block is
 *   produced as float32 by the row source, then packed into panels of NR columns.
 *   For each k-block of KC (panel (KC, NR) stays in L1), for each panel, every MR-row strip
 *   of x is multiplied by the micro-kernel, which keeps an (MR, NR) tile of y in registers.
 * Micro-kernels: AVX-512 12x32 (runtime-dispatched when the CPU has AVX-512F, compiled with
 * a target attribute so the rest of the build stays AVX2), AVX2/FMA 6x16, portable 4x16.
 */
#include "qf_gpu_calib.h"
#include "qf_matmul.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define QF_MM_X86 1
#endif

#define QF_MM_KC 256        /* k-block: one (KC, NR) panel slice stays in L1 */
#define QF_MM_NR_MAX 32
#define QF_MM_MR_MAX 12
#define QF_MM_TILE_BYTES (1 << 20) /* target size of one thread's dequantized weight tile */

typedef void (*qf_mm_kernel)(int mr, int64_t kc, const float *x, int64_t ldx, const float *bp, float *c,
                             int64_t ldc, int acc);

/* ---- portable micro-kernel (4 x 16) ---------------------------------------------------- */
static void qf_mm_kernel_portable(int mr, int64_t kc, const float *x, int64_t ldx, const float *bp, float *c,
                                  int64_t ldc, int acc)
{
    float t[4][16];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < 16; j++) t[r][j] = acc ? c[r * ldc + j] : 0.0f;
    for (int64_t kk = 0; kk < kc; kk++) {
        const float *b = bp + kk * 16;
        for (int r = 0; r < mr; r++) {
            float a = x[r * ldx + kk];
#pragma omp simd
            for (int j = 0; j < 16; j++) t[r][j] += a * b[j];
        }
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < 16; j++) c[r * ldc + j] = t[r][j];
}

#if defined(QF_MM_X86) && defined(__AVX2__) && defined(__FMA__)
/* ---- AVX2 / FMA micro-kernel (6 x 16: 12 accumulators, 2 panel loads, 1 broadcast) ----- */
/* Accumulators are named variables (an array of __m256 gets spilled by gcc); rows beyond
 * MR (a compile-time constant after inlining) are dead code. */
#define QF_AVX2_ROW(r)                                                              \
    if (MR > r) {                                                                   \
        __m256 a = _mm256_broadcast_ss(x + r * ldx + kk);                           \
        c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                                  \
        c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);                                  \
    }
#define QF_AVX2_LOAD(r)                                                             \
    __m256 c##r##0 = _mm256_setzero_ps(), c##r##1 = _mm256_setzero_ps();            \
    if (MR > r && acc) {                                                            \
        c##r##0 = _mm256_loadu_ps(c + r * ldc);                                     \
        c##r##1 = _mm256_loadu_ps(c + r * ldc + 8);                                 \
    }
#define QF_AVX2_STORE(r)                                                            \
    if (MR > r) {                                                                   \
        _mm256_storeu_ps(c + r * ldc, c##r##0);                                     \
        _mm256_storeu_ps(c + r * ldc + 8, c##r##1);                                 \
    }

static inline __attribute__((always_inline)) void qf_mm_avx2_body(const int MR, int64_t kc, const float *x,
                                                                  int64_t ldx, const float *bp, float *c,
                                                                  int64_t ldc, int acc)
{
    QF_AVX2_LOAD(0) QF_AVX2_LOAD(1) QF_AVX2_LOAD(2) QF_AVX2_LOAD(3) QF_AVX2_LOAD(4) QF_AVX2_LOAD(5)
    for (int64_t kk = 0; kk < kc; kk++) {
        __m256 b0 = _mm256_loadu_ps(bp + kk * 16), b1 = _mm256_loadu_ps(bp + kk * 16 + 8);
        QF_AVX2_ROW(0) QF_AVX2_ROW(1) QF_AVX2_ROW(2) QF_AVX2_ROW(3) QF_AVX2_ROW(4) QF_AVX2_ROW(5)
    }
    QF_AVX2_STORE(0) QF_AVX2_STORE(1) QF_AVX2_STORE(2) QF_AVX2_STORE(3) QF_AVX2_STORE(4) QF_AVX2_STORE(5)
}

static void qf_mm_kernel_avx2(int mr, int64_t kc, const float *x, int64_t ldx, const float *bp, float *c,
                              int64_t ldc, int acc)
{
    switch (mr) {
    case 6: qf_mm_avx2_body(6, kc, x, ldx, bp, c, ldc, acc); break;
    case 5: qf_mm_avx2_body(5, kc, x, ldx, bp, c, ldc, acc); break;
    case 4: qf_mm_avx2_body(4, kc, x, ldx, bp, c, ldc, acc); break;
    case 3: qf_mm_avx2_body(3, kc, x, ldx, bp, c, ldc, acc); break;
    case 2: qf_mm_avx2_body(2, kc, x, ldx, bp, c, ldc, acc); break;
    default: qf_mm_avx2_body(1, kc, x, ldx, bp, c, ldc, acc); break;
    }
}
#endif

#if defined(QF_MM_X86)
/* ---- AVX-512 micro-kernel (12 x 32: 24 accumulators), compiled for that target only --- */
#define QF_AVX512 __attribute__((target("avx512f,fma")))
#define QF_AVX512_ROW(r)                                                            \
    if (MR > r) {                                                                   \
        __m512 a = _mm512_set1_ps(x[r * ldx + kk]);                                 \
        c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                                  \
        c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);                                  \
    }
#define QF_AVX512_LOAD(r)                                                           \
    __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = _mm512_setzero_ps();            \
    if (MR > r && acc) {                                                            \
        c##r##0 = _mm512_loadu_ps(c + r * ldc);                                     \
        c##r##1 = _mm512_loadu_ps(c + r * ldc + 16);                                \
    }
#define QF_AVX512_STORE(r)                                                          \
    if (MR > r) {                                                                   \
        _mm512_storeu_ps(c + r * ldc, c##r##0);                                     \
        _mm512_storeu_ps(c + r * ldc + 16, c##r##1);                                \
    }
#define QF_AVX512_ALL(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)

static inline __attribute__((always_inline)) QF_AVX512 void qf_mm_avx512_body(const int MR, int64_t kc,
                                                                               const float *x, int64_t ldx,
                                                                               const float *bp, float *c,
                                                                               int64_t ldc, int acc)
{
    QF_AVX512_ALL(QF_AVX512_LOAD)
    for (int64_t kk = 0; kk < kc; kk++) {
        __m512 b0 = _mm512_loadu_ps(bp + kk * 32), b1 = _mm512_loadu_ps(bp + kk * 32 + 16);
        QF_AVX512_ALL(QF_AVX512_ROW)
    }
    QF_AVX512_ALL(QF_AVX512_STORE)
}

static QF_AVX512 void qf_mm_kernel_avx512(int mr, int64_t kc, const float *x, int64_t ldx, const float *bp,
                                          float *c, int64_t ldc, int acc)
{
    switch (mr) {
    case 12: qf_mm_avx512_body(12, kc, x, ldx, bp, c, ldc, acc); break;
    case 11: qf_mm_avx512_body(11, kc, x, ldx, bp, c, ldc, acc); break;
    case 10: qf_mm_avx512_body(10, kc, x, ldx, bp, c, ldc, acc); break;
    case 9: qf_mm_avx512_body(9, kc, x, ldx, bp, c, ldc, acc); break;
    case 8: qf_mm_avx512_body(8, kc, x, ldx, bp, c, ldc, acc); break;
    case 7: qf_mm_avx512_body(7, kc, x, ldx, bp, c, ldc, acc); break;
    case 6: qf_mm_avx512_body(6, kc, x, ldx, bp, c, ldc, acc); break;
    case 5: qf_mm_avx512_body(5, kc, x, ldx, bp, c, ldc, acc); break;
    case 4: qf_mm_avx512_body(4, kc, x, ldx, bp, c, ldc, acc); break;
    case 3: qf_mm_avx512_body(3, kc, x, ldx, bp, c, ldc, acc); break;
    case 2: qf_mm_avx512_body(2, kc, x, ldx, bp, c, ldc, acc); break;
    default: qf_mm_avx512_body(1, kc, x, ldx, bp, c, ldc, acc); break;
    }
}
#endif

/* ---- dispatch ------------------------------------------------------------------------- */
typedef struct qf_mm_impl {
    const char *name;
    int mr, nr;
    qf_mm_kernel kernel;
} qf_mm_impl;

static const qf_mm_impl qf_mm_portable = {"portable", 4, 16, qf_mm_kernel_portable};
#if defined(QF_MM_X86) && defined(__AVX2__) && defined(__FMA__)
static const qf_mm_impl qf_mm_avx2 = {"avx2", 6, 16, qf_mm_kernel_avx2};
#endif
#if defined(QF_MM_X86)
static const qf_mm_impl qf_mm_avx512 = {"avx512", 12, 32, qf_mm_kernel_avx512};
#endif

static const qf_mm_impl *qf_mm_best(void)
{
#if defined(QF_MM_X86)
    if (__builtin_cpu_supports("avx512f")) return &qf_mm_avx512;
#endif
#if defined(QF_MM_X86) && defined(__AVX2__) && defined(__FMA__)
    return &qf_mm_avx2;
#else
    return &qf_mm_portable;
#endif
}

/* The kernel in use: chosen once (a benign race: every thread computes the same pointer). */
static const qf_mm_impl *qf_mm_current;

static const qf_mm_impl *qf_mm_get(void)
{
    const qf_mm_impl *im = qf_mm_current;
    if (!im) qf_mm_current = im = qf_mm_best();
    return im;
}

int qf_matmul_use_kernel(const char *name)
{
    if (!name) {
        qf_mm_current = qf_mm_best();
        return 0;
    }
    if (!strcmp(name, "portable")) {
        qf_mm_current = &qf_mm_portable;
        return 0;
    }
#if defined(QF_MM_X86) && defined(__AVX2__) && defined(__FMA__)
    if (!strcmp(name, "avx2")) {
        qf_mm_current = &qf_mm_avx2;
        return 0;
    }
#endif
#if defined(QF_MM_X86)
    if (!strcmp(name, "avx512") && __builtin_cpu_supports("avx512f")) {
        qf_mm_current = &qf_mm_avx512;
        return 0;
    }
#endif
    return -1;
}

const char *qf_matmul_kernel_name(void) { return qf_mm_get()->name; }

/* ---- packing and the blocked product --------------------------------------------------- */
/* Panels of nr rows of W (W[r][c] = w[r * rs + c * cs]), each (k, nr), zero-padded. */
static void qf_mm_pack(const float *w, int64_t rs, int64_t cs, int64_t n, int64_t k, int nr, float *wp)
{
    int64_t np = (n + nr - 1) / nr;
    for (int64_t p = 0; p < np; p++) {
        float *dst = wp + p * k * nr;
        int64_t j1 = n - p * nr < nr ? n - p * nr : nr;
        const float *src = w + p * nr * rs;
        if (j1 < nr) memset(dst, 0, (size_t)(k * nr) * sizeof(float));
        if (rs == 1) { /* W's rows are contiguous across a panel: one copy per k */
            for (int64_t kk = 0; kk < k; kk++) memcpy(dst + kk * nr, src + kk * cs, (size_t)j1 * sizeof(float));
            continue;
        }
        /* transpose in blocks of 64 k so the written (64, nr) block stays in L1 */
        for (int64_t kb = 0; kb < k; kb += 64) {
            int64_t ke = kb + 64 < k ? kb + 64 : k;
            for (int64_t j = 0; j < j1; j++) {
                const float *sr = src + j * rs;
                if (cs == 1)
                    for (int64_t kk = kb; kk < ke; kk++) dst[kk * nr + j] = sr[kk];
                else
                    for (int64_t kk = kb; kk < ke; kk++) dst[kk * nr + j] = sr[kk * cs];
            }
        }
    }
}

/* y (m, n) (+)= x (m, k) · Wᵀ, W given as panels of a packing of width kp >= k. */
static void qf_mm_packed(const qf_mm_impl *im, int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx,
                         const float *wp, int64_t kp, float *y, int64_t ldy, int accumulate)
{
    const int mr = im->mr, nr = im->nr;
    int64_t np = (n + nr - 1) / nr;
    float tmp[QF_MM_MR_MAX * QF_MM_NR_MAX];
    for (int64_t kb = 0; kb < k; kb += QF_MM_KC) {
        int64_t kc = k - kb < QF_MM_KC ? k - kb : QF_MM_KC;
        int acc = accumulate || kb > 0;
        for (int64_t p = 0; p < np; p++) {
            const float *bp = wp + (p * kp + kb) * nr;
            int64_t ncols = n - p * nr < nr ? n - p * nr : nr;
            for (int64_t i0 = 0; i0 < m; i0 += mr) {
                int rows = m - i0 < mr ? (int)(m - i0) : mr;
                const float *xa = x + i0 * ldx + kb;
                float *c = y + i0 * ldy + p * nr;
                if (ncols == nr) {
                    im->kernel(rows, kc, xa, ldx, bp, c, ldy, acc);
                    continue;
                }
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < nr; j++) tmp[r * nr + j] = acc && j < ncols ? c[r * ldy + j] : 0.0f;
                im->kernel(rows, kc, xa, ldx, bp, tmp, nr, acc);
                for (int r = 0; r < rows; r++) memcpy(c + r * ldy, tmp + r * nr, (size_t)ncols * sizeof(float));
            }
        }
    }
}

int64_t qf_pack_floats(int64_t n, int64_t k)
{
    int nr = qf_mm_get()->nr;
    return (n + nr - 1) / nr * nr * k;
}

void qf_pack_nt(const float *w, int64_t rs, int64_t cs, int64_t n, int64_t k, float *wp)
{
    qf_mm_pack(w, rs, cs, n, k, qf_mm_get()->nr, wp);
}

void qf_gemm_prepacked(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *wp, int64_t kp,
                       float *y, int64_t ldy, int accumulate)
{
    qf_mm_packed(qf_mm_get(), m, n, k, x, ldx, wp, kp, y, ldy, accumulate);
}

/* Per-thread work buffers, kept between calls (OpenMP threads persist), so that the weight
 * tiles of every product do not cost fresh pages each time.  Grown on demand, released
 * by qf_matmul_release_buffers (call it from each thread) or at process exit. */
static _Thread_local float *qf_mm_tls[QF_MM_TLS_SLOTS];
static _Thread_local size_t qf_mm_tls_cap[QF_MM_TLS_SLOTS];

float *qf_mm_tls_buffer(int slot, size_t floats)
{
    if (floats > qf_mm_tls_cap[slot]) {
        free(qf_mm_tls[slot]);
        size_t cap = floats + floats / 4;
        qf_mm_tls[slot] = aligned_alloc(64, (cap * sizeof(float) + 63) / 64 * 64);
        qf_mm_tls_cap[slot] = qf_mm_tls[slot] ? cap : 0;
    }
    return qf_mm_tls[slot];
}

void qf_matmul_release_buffers(void)
{
    for (int i = 0; i < QF_MM_TLS_SLOTS; i++) {
        free(qf_mm_tls[i]);
        qf_mm_tls[i] = NULL;
        qf_mm_tls_cap[i] = 0;
    }
}

#define QF_GEMM_ROWS 128 /* weight rows packed at a time by qf_gemm_nt */

int64_t qf_gemm_scratch_floats(int64_t k) { return (int64_t)QF_GEMM_ROWS * k + QF_MM_NR_MAX * k; }

void qf_gemm_nt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *w, int64_t ldw,
                float *y, int64_t ldy, int accumulate, float *wp_scratch)
{
    const qf_mm_impl *im = qf_mm_get();
    for (int64_t r0 = 0; r0 < n; r0 += QF_GEMM_ROWS) {
        int64_t nb = n - r0 < QF_GEMM_ROWS ? n - r0 : QF_GEMM_ROWS;
        qf_mm_pack(w + r0 * ldw, ldw, 1, nb, k, im->nr, wp_scratch);
        qf_mm_packed(im, m, nb, k, x, ldx, wp_scratch, k, y + r0, ldy, accumulate);
    }
}

/* The product on the GPU (qf_gpu_calib.h): the row source writes the whole weight as float32
 * (all threads) into the GPU session's page-locked buffer, then one cuBLAS SGEMM. */
typedef struct qf_mm_fill {
    int64_t n, k;
    qf_rows_fn rows;
    const void *src;
} qf_mm_fill;

static void qf_mm_fill_weight(void *ctx, float *w)
{
    const qf_mm_fill *f = ctx;
    const int64_t blk = 64, nblk = (f->n + blk - 1) / blk;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t b = 0; b < nblk; b++) {
        const int64_t r0 = b * blk, r1 = r0 + blk < f->n ? r0 + blk : f->n;
        f->rows(f->src, r0, r1, w + r0 * f->k);
    }
}

qf_status qf_matmul_rows(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, qf_rows_fn rows,
                         const void *src, float *y, int64_t ldy, qf_error *err)
{
    if (m >= QF_MM_GPU_MIN_M && (double)m * (double)n * (double)k >= QF_MM_GPU_MIN_MACS && qf_gpu_calib_enabled()) {
        qf_mm_fill f = {n, k, rows, src};
        return qf_gpu_sgemm_nt_fill(m, n, k, x, ldx, qf_mm_fill_weight, &f, y, ldy, err);
    }
    const qf_mm_impl *im = qf_mm_get();
    const int nr = im->nr;
    if (m <= 0 || n <= 0) return QF_OK;
    if (k <= 0) {
        for (int64_t i = 0; i < m; i++) memset(y + i * ldy, 0, (size_t)n * sizeof(float));
        return QF_OK;
    }
    /* Block size: at most ~1 MB of float weight per tile, a multiple of NR, and a number of
     * blocks that is a multiple of the thread count so both cores finish together. */
    int nth = omp_get_max_threads();
    int64_t nb_max = QF_MM_TILE_BYTES / (k * (int64_t)sizeof(float));
    nb_max = nb_max / nr * nr;
    if (nb_max < nr) nb_max = nr;
    int64_t nchunks = (n + nth * nb_max - 1) / (nth * nb_max) * nth;
    int64_t nb = (n + nchunks - 1) / nchunks;
    nb = (nb + nr - 1) / nr * nr;
    nchunks = (n + nb - 1) / nb;
    if (nchunks < nth) nth = (int)nchunks;
    int failed = 0;
#pragma omp parallel num_threads(nth)
    {
        float *tile = qf_mm_tls_buffer(0, (size_t)(nb * k));
        float *wp = qf_mm_tls_buffer(1, (size_t)((nb + nr) * k));
        if (!tile || !wp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < nchunks; c++) {
            if (!tile || !wp) continue;
            int64_t r0 = c * nb, r1 = r0 + nb < n ? r0 + nb : n;
            rows(src, r0, r1, tile);
            qf_mm_pack(tile, k, 1, r1 - r0, k, nr, wp);
            qf_mm_packed(im, m, r1 - r0, k, x, ldx, wp, k, y + r0, ldy, 0);
        }
    }
    if (failed)
        return qf_fail(err, QF_ERR_NOMEM, "matmul: cannot allocate a %lld x %lld weight tile",
                       (long long)nb, (long long)k);
    return QF_OK;
}
