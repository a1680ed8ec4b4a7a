/* linalg.c - blocked gemm, SYRK accumulation, Cholesky, triangular inverse and GPTQ's factor
 * (see qf_linalg.h). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "qf_linalg.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QF_X86 1
#endif

/* ---- blocking parameters --------------------------------------------------------------- */
#define QF_GEMM_KC 256               /* depth of a packed slice (fixed: it fixes the sum order) */
#define QF_GEMM_MC 120               /* rows of a packed A block (multiple of every MR) */
#define QF_GEMM_JCH 256              /* columns of C per work item (multiple of every NR) */
#define QF_GEMM_NC_BYTES (1 << 20)   /* packed B block: KC x NC elements = 1 MB */
#define QF_GEMM_TILE_MAX (12 * 32)   /* largest MR x NR */
#define QF_GEMM_PAR_MIN 4194304.0    /* multiply-adds below which one thread does the product */

static void *qf_aligned_alloc(size_t bytes)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) return NULL;
    return p;
}
static void qf_aligned_free(void *p) { free(p); }

/* ---- micro-kernels: tile[MR][NR] = sum_k a[k][0..MR) (x) b[k][0..NR) ------------------ *
 * a is an MR-high packed panel (a[k * MR + i]), b an NR-wide one (b[k * NR + j]).  Every
 * variant starts from 0 and applies one fused multiply-add per k in increasing k, so all
 * produce the same bits. */
typedef void (*qf_kern_s_fn)(int64_t kc, const float *a, const float *b, float *tile);
typedef void (*qf_kern_d_fn)(int64_t kc, const double *a, const double *b, double *tile);
typedef struct qf_kdesc_s { int mr, nr; qf_kern_s_fn fn; const char *name; } qf_kdesc_s;
typedef struct qf_kdesc_d { int mr, nr; qf_kern_d_fn fn; const char *name; } qf_kdesc_d;

#define QF_GEN_MR 4
#define QF_GEN_NR 8
static void qf_kern_s_generic(int64_t kc, const float *a, const float *b, float *t)
{
    float c[QF_GEN_MR * QF_GEN_NR] = {0};
    for (int64_t k = 0; k < kc; k++, a += QF_GEN_MR, b += QF_GEN_NR)
        for (int i = 0; i < QF_GEN_MR; i++)
            for (int j = 0; j < QF_GEN_NR; j++) c[i * QF_GEN_NR + j] = fmaf(a[i], b[j], c[i * QF_GEN_NR + j]);
    memcpy(t, c, sizeof c);
}
static void qf_kern_d_generic(int64_t kc, const double *a, const double *b, double *t)
{
    double c[QF_GEN_MR * QF_GEN_NR] = {0};
    for (int64_t k = 0; k < kc; k++, a += QF_GEN_MR, b += QF_GEN_NR)
        for (int i = 0; i < QF_GEN_MR; i++)
            for (int j = 0; j < QF_GEN_NR; j++) c[i * QF_GEN_NR + j] = fma(a[i], b[j], c[i * QF_GEN_NR + j]);
    memcpy(t, c, sizeof c);
}

#ifdef QF_X86
#define QF_TGT_AVX512 __attribute__((target("avx512f,fma")))
#define QF_TGT_AVX2 __attribute__((target("avx2,fma")))

QF_TGT_AVX512 static void qf_kern_s_avx512(int64_t kc, const float *a, const float *b, float *t)
{
    __m512 c[12][2];
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += 12, b += 32) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            c[i][0] = _mm512_fmadd_ps(ai, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(ai, b1, c[i][1]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {
        _mm512_storeu_ps(t + i * 32, c[i][0]);
        _mm512_storeu_ps(t + i * 32 + 16, c[i][1]);
    }
}
QF_TGT_AVX512 static void qf_kern_d_avx512(int64_t kc, const double *a, const double *b, double *t)
{
    __m512d c[12][2];
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) c[i][0] = c[i][1] = _mm512_setzero_pd();
    for (int64_t k = 0; k < kc; k++, a += 12, b += 16) {
        __m512d b0 = _mm512_loadu_pd(b), b1 = _mm512_loadu_pd(b + 8);
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            __m512d ai = _mm512_set1_pd(a[i]);
            c[i][0] = _mm512_fmadd_pd(ai, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_pd(ai, b1, c[i][1]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {
        _mm512_storeu_pd(t + i * 16, c[i][0]);
        _mm512_storeu_pd(t + i * 16 + 8, c[i][1]);
    }
}
QF_TGT_AVX2 static void qf_kern_s_avx2(int64_t kc, const float *a, const float *b, float *t)
{
    __m256 c[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++, a += 6, b += 16) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            c[i][0] = _mm256_fmadd_ps(ai, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(ai, b1, c[i][1]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        _mm256_storeu_ps(t + i * 16, c[i][0]);
        _mm256_storeu_ps(t + i * 16 + 8, c[i][1]);
    }
}
QF_TGT_AVX2 static void qf_kern_d_avx2(int64_t kc, const double *a, const double *b, double *t)
{
    __m256d c[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) c[i][0] = c[i][1] = _mm256_setzero_pd();
    for (int64_t k = 0; k < kc; k++, a += 6, b += 8) {
        __m256d b0 = _mm256_loadu_pd(b), b1 = _mm256_loadu_pd(b + 4);
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            __m256d ai = _mm256_broadcast_sd(a + i);
            c[i][0] = _mm256_fmadd_pd(ai, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_pd(ai, b1, c[i][1]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        _mm256_storeu_pd(t + i * 8, c[i][0]);
        _mm256_storeu_pd(t + i * 8 + 4, c[i][1]);
    }
}
#endif

static const qf_kdesc_s qf_ks_generic = {QF_GEN_MR, QF_GEN_NR, qf_kern_s_generic, "generic"};
static const qf_kdesc_d qf_kd_generic = {QF_GEN_MR, QF_GEN_NR, qf_kern_d_generic, "generic"};
#ifdef QF_X86
static const qf_kdesc_s qf_ks_avx512 = {12, 32, qf_kern_s_avx512, "avx512"};
static const qf_kdesc_d qf_kd_avx512 = {12, 16, qf_kern_d_avx512, "avx512"};
static const qf_kdesc_s qf_ks_avx2 = {6, 16, qf_kern_s_avx2, "avx2"};
static const qf_kdesc_d qf_kd_avx2 = {6, 8, qf_kern_d_avx2, "avx2"};
#endif

static int qf_isa_forced; /* 0 auto, 1 generic, 2 avx2 max, 3 avx512 allowed */

static int qf_isa_level(void)
{
    static int detected = -1; /* benign race: every thread computes the same value */
    if (detected < 0) {
        int lvl = 1;
#ifdef QF_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) lvl = 2;
        if (lvl == 2 && __builtin_cpu_supports("avx512f")) lvl = 3;
#endif
        detected = lvl;
    }
    if (qf_isa_forced && qf_isa_forced < detected) return qf_isa_forced;
    return detected;
}

static const qf_kdesc_s *qf_kernel_s(void)
{
#ifdef QF_X86
    int lvl = qf_isa_level();
    if (lvl >= 3) return &qf_ks_avx512;
    if (lvl == 2) return &qf_ks_avx2;
#endif
    return &qf_ks_generic;
}
static const qf_kdesc_d *qf_kernel_d(void)
{
#ifdef QF_X86
    int lvl = qf_isa_level();
    if (lvl >= 3) return &qf_kd_avx512;
    if (lvl == 2) return &qf_kd_avx2;
#endif
    return &qf_kd_generic;
}

const char *qf_linalg_set_isa(int level)
{
    qf_isa_forced = level < 0 ? 0 : level;
    return qf_kernel_s()->name;
}

/* ---- the three drivers ------------------------------------------------------------------- */
#define QF_T float
#define QF_D float
#define QF_KDESC qf_kdesc_s
#define QF_DRV qf_gemm_drv_ss
#define QF_NAME_ADD qf_tile_add_ss
#include "linalg_gemm.inc"

#define QF_T double
#define QF_D double
#define QF_KDESC qf_kdesc_d
#define QF_DRV qf_gemm_drv_dd
#define QF_NAME_ADD qf_tile_add_dd
#include "linalg_gemm.inc"

#define QF_T float
#define QF_D double
#define QF_KDESC qf_kdesc_s
#define QF_DRV qf_gemm_drv_sd
#define QF_NAME_ADD qf_tile_add_sd
#include "linalg_gemm.inc"

qf_status qf_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float *C, int64_t ldc, unsigned flags, qf_error *err)
{
    return qf_gemm_drv_ss(qf_kernel_s(), ta, tb, m, n, k, alpha, A, lda, B, ldb, C, ldc, flags, err);
}

qf_status qf_dgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha, const double *A, int64_t lda,
                   const double *B, int64_t ldb, double *C, int64_t ldc, unsigned flags, qf_error *err)
{
    return qf_gemm_drv_dd(qf_kernel_d(), ta, tb, m, n, k, alpha, A, lda, B, ldb, C, ldc, flags, err);
}

qf_status qf_syrk_acc(int64_t m, int64_t n, const float *X, int64_t ldx, double *C, int64_t ldc, qf_error *err)
{
    /* op(A) = X^T (A = X, transposed), op(B) = X: C[i][j] += sum_r X[r][i] X[r][j], i >= j.
     * k = m runs in KC slices, each summed in float and added into the double C. */
    return qf_gemm_drv_sd(qf_kernel_s(), 1, 0, n, n, m, 1.0f, X, ldx, X, ldx, C, ldc, QF_GEMM_C_LOWER, err);
}

qf_status qf_gemm_tn_acc(int64_t m, int64_t n1, int64_t n2, const float *A, int64_t lda, const float *B, int64_t ldb,
                         double *C, int64_t ldc, qf_error *err)
{
    return qf_gemm_drv_sd(qf_kernel_s(), 1, 0, n1, n2, m, 1.0f, A, lda, B, ldb, C, ldc, 0, err);
}

/* ---- Cholesky ------------------------------------------------------------------------------ */
#define QF_CHOL_NB 256

/* Unblocked Cholesky of the nb x nb block at A (lda); returns 0 or failing index + 1. */
static int64_t qf_chol_unblocked(double *A, int64_t nb, int64_t lda)
{
    for (int64_t j = 0; j < nb; j++) {
        double *rj = A + j * lda;
        double d = rj[j];
        for (int64_t p = 0; p < j; p++) d -= rj[p] * rj[p];
        if (!(d > 0.0) || !isfinite(d)) return j + 1;
        double ljj = sqrt(d), inv = 1.0 / ljj;
        rj[j] = ljj;
        for (int64_t i = j + 1; i < nb; i++) {
            double *ri = A + i * lda, s = ri[j];
            for (int64_t p = 0; p < j; p++) s -= ri[p] * rj[p];
            ri[j] = s * inv;
        }
    }
    return 0;
}

/* X = L^-1 for the lower-triangular nb x nb block L at A (lda), in place; zeroes the strict
 * upper part of the block.  tmp holds nb * nb doubles. */
static void qf_trtri_unblocked(double *A, int64_t nb, int64_t lda, double *tmp)
{
    for (int64_t i = 0; i < nb; i++)
        for (int64_t j = 0; j < nb; j++) tmp[i * nb + j] = j <= i ? A[i * lda + j] : 0.0;
    /* row i of X: X[i][i] = 1 / L[i][i]; X[i][j] = -X[i][i] * sum_{p=j}^{i-1} L[i][p] X[p][j] */
    for (int64_t i = 0; i < nb; i++) {
        double *xi = A + i * lda;
        const double *li = tmp + i * nb;
        double dii = 1.0 / li[i];
        for (int64_t j = 0; j < nb; j++) xi[j] = 0.0;
        for (int64_t p = 0; p < i; p++) { /* xi[0..p] += L[i][p] * X[p][0..p] (row of X) */
            const double *xp = A + p * lda, lip = li[p];
            for (int64_t j = 0; j <= p; j++) xi[j] += lip * xp[j];
        }
        for (int64_t j = 0; j < i; j++) xi[j] = -xi[j] * dii;
        xi[i] = dii;
    }
}

int64_t qf_cholesky_lower(double *A, int64_t n, int64_t lda, qf_status *status, qf_error *err)
{
    *status = QF_OK;
    double *tri = malloc(sizeof(double) * QF_CHOL_NB * QF_CHOL_NB);
    double *tmp = malloc(sizeof(double) * QF_CHOL_NB * QF_CHOL_NB);
    double *panel = n > QF_CHOL_NB ? malloc(sizeof(double) * (size_t)(n - QF_CHOL_NB) * QF_CHOL_NB) : NULL;
    int64_t fail = 0;
    if (!tri || !tmp || (n > QF_CHOL_NB && !panel)) {
        *status = qf_fail(err, QF_ERR_NOMEM, "cholesky: out of memory (n = %lld)", (long long)n);
        goto done;
    }
    for (int64_t k = 0; k < n; k += QF_CHOL_NB) {
        const int64_t kb = n - k < QF_CHOL_NB ? n - k : QF_CHOL_NB, r0 = k + kb, m2 = n - r0;
        double *A11 = A + k * lda + k;
        int64_t f = qf_chol_unblocked(A11, kb, lda);
        if (f) {
            fail = k + f;
            goto done;
        }
        if (m2 == 0) break;
        /* A21 <- A21 L11^-T: panel = A21 (L11^-1)^T, then copied back */
        for (int64_t i = 0; i < kb; i++)
            for (int64_t j = 0; j < kb; j++) tri[i * kb + j] = j <= i ? A11[i * lda + j] : 0.0;
        qf_trtri_unblocked(tri, kb, kb, tmp);
        double *A21 = A + r0 * lda + k;
        memset(panel, 0, sizeof(double) * (size_t)(m2 * kb));
        *status = qf_dgemm(0, 1, m2, kb, kb, 1.0, A21, lda, tri, kb, panel, kb, 0, err);
        if (*status) goto done;
        for (int64_t i = 0; i < m2; i++) memcpy(A21 + i * lda, panel + i * kb, sizeof(double) * (size_t)kb);
        /* A22 -= A21 A21^T, lower triangle only */
        *status = qf_dgemm(0, 1, m2, m2, kb, -1.0, A21, lda, A21, lda, A + r0 * lda + r0, lda, QF_GEMM_C_LOWER, err);
        if (*status) goto done;
    }
    for (int64_t i = 0; i < n; i++) memset(A + i * lda + i + 1, 0, sizeof(double) * (size_t)(n - i - 1));
done:
    free(tri);
    free(tmp);
    free(panel);
    return fail;
}

qf_status qf_trtri_lower(double *L, int64_t n, int64_t lda, qf_error *err)
{
    const int64_t NB = QF_CHOL_NB;
    qf_status st = QF_OK;
    double *tmp = malloc(sizeof(double) * (size_t)(NB * NB));
    double *T = n > NB ? malloc(sizeof(double) * (size_t)(n - NB) * (size_t)NB) : NULL;
    if (!tmp || (n > NB && !T)) {
        st = qf_fail(err, QF_ERR_NOMEM, "triangular inverse: out of memory (n = %lld)", (long long)n);
        goto done;
    }
    /* Backward over diagonal blocks: with X22 = L22^-1 already in place,
     * X21 = -X22 L21 L11^-1, then L11 <- L11^-1. */
    int64_t jlast = ((n - 1) / NB) * NB;
    for (int64_t j = jlast; j >= 0; j -= NB) {
        const int64_t jb = n - j < NB ? n - j : NB, r0 = j + jb, m2 = n - r0;
        double *A21 = L + r0 * lda + j;
        if (m2 > 0) {
            memset(T, 0, sizeof(double) * (size_t)(m2 * jb));
            st = qf_dgemm(0, 0, m2, jb, m2, 1.0, L + r0 * lda + r0, lda, A21, lda, T, jb, QF_GEMM_A_LOWER, err);
            if (st) goto done;
        }
        qf_trtri_unblocked(L + j * lda + j, jb, lda, tmp);
        if (m2 > 0) {
            for (int64_t i = 0; i < m2; i++) memset(A21 + i * lda, 0, sizeof(double) * (size_t)jb);
            st = qf_dgemm(0, 0, m2, jb, jb, -1.0, T, jb, L + j * lda + j, lda, A21, lda, 0, err);
            if (st) goto done;
        }
    }
done:
    free(tmp);
    free(T);
    return st;
}

int64_t qf_gptq_factor(double *H, int64_t n, float *U, qf_status *status, qf_error *err)
{
    /* J H J: (i, j) -> (n-1-i, n-1-j) is the reversal of the n*n array */
    const int64_t nn = n * n;
    for (int64_t a = 0, b = nn - 1; a < b; a++, b--) {
        double t = H[a];
        H[a] = H[b];
        H[b] = t;
    }
    int64_t f = qf_cholesky_lower(H, n, n, status, err);
    if (f || *status) return f;
    *status = qf_trtri_lower(H, n, n, err);
    if (*status) return 0;
    /* U = J L^-1 J: reverse again while narrowing to float */
#pragma omp parallel for schedule(static) if (nn >= 65536)
    for (int64_t a = 0; a < nn; a++) U[a] = (float)H[nn - 1 - a];
    return 0;
}

qf_status qf_quad_rows(int64_t m, int64_t n, const float *D, int64_t ldd, const float *H, int64_t ldh, double *out,
                       qf_error *err)
{
    *out = 0;
    if (m <= 0 || n <= 0) return QF_OK;
    float *T = calloc((size_t)(m * n), sizeof(float));
    double *row = malloc(sizeof(double) * (size_t)m);
    if (!T || !row) {
        free(T);
        free(row);
        return qf_fail(err, QF_ERR_NOMEM, "quadratic form: out of memory (%lld x %lld)", (long long)m, (long long)n);
    }
    qf_status st = qf_sgemm(0, 0, m, n, n, 1.0f, D, ldd, H, ldh, T, n, 0, err);
    if (st == QF_OK) {
#pragma omp parallel for schedule(static) if (m * n >= 65536)
        for (int64_t r = 0; r < m; r++) {
            const float *d = D + r * ldd, *t = T + r * n;
            double s = 0;
            for (int64_t j = 0; j < n; j++) s += (double)d[j] * (double)t[j];
            row[r] = s;
        }
        double s = 0;
        for (int64_t r = 0; r < m; r++) s += row[r];
        *out = s;
    }
    free(T);
    free(row);
    return st;
}
