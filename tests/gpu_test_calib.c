/* gpu_test_calib.c - calibration's GPU products (qf_gpu_calib.h) against the CPU's.
 *
 * Without a GPU it prints a SKIP line and exits 77 (skipped); a GPU that does not start, or a
 * calibration session that does not start beside one, fails (qf_test_gpu.h).  With one:
 *   - qf_gpu_sgemm_nt against a float64 product, awkward shapes and strides; the output's
 *     padding between n and ldy is left alone; qf_gpu_sgemm_nt_fill gives the same bits;
 *   - qf_gpu_xtx against qf_syrk_acc chunk by chunk (float32 products of 512-row chunks, float64
 *     sum); reading resets the device sum; the upper triangle is not touched;
 *   - qf_stats puts a wide XᵀX on the GPU and gives the CPU's numbers (after a second finish too),
 *     and with paired rows its cross sum RᵀX matches qf_gemm_tn_acc's;
 *   - qf_gpu_gptq_factor against qf_gptq_factor on a random SPD matrix (U upper, lower exactly
 *     0), and the same failure index for matrices that are not positive definite or not finite.
 * Bounds: a float32 sum of k products differs from another order of it by at most about
 * k * 2^-24 * sum |terms|; the tests allow 4e-6 * sum |terms| for k <= 1600 (cuBLAS and the CPU
 * both block their sums, so the real differences are far smaller).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "qf_gpu_calib.h"
#include "qf_linalg.h"
#include "qf_rng.h"
#include "qf_test_gpu.h"
#include "qf_test_util.h"
#include "qf_stats.h"

#define QK(expr) QF_TEST_OK(expr) /* qf_test_util.h */

static float rnd(uint64_t *s) { return (float)((double)(qf_splitmix64(s) >> 11) * 0x1p-53 * 2.0 - 1.0); }

typedef struct fill_ctx {
    const float *w;
    int64_t count;
} fill_ctx;
static void fill_copy(void *ctx, float *w)
{
    const fill_ctx *f = ctx;
    memcpy(w, f->w, sizeof(float) * (size_t)f->count);
}

static void test_sgemm(void **state)
{
    (void)state;
    const int64_t m = 300, n = 517, k = 1100, ldx = k + 3, ldy = n + 5;
    uint64_t s = 1;
    float *x = malloc(sizeof(float) * (size_t)(m * ldx)), *w = malloc(sizeof(float) * (size_t)(n * k));
    float *y = malloc(sizeof(float) * (size_t)(m * ldy));
    assert_true(x && w && y);
    for (int64_t i = 0; i < m * ldx; i++) x[i] = rnd(&s);
    for (int64_t i = 0; i < n * k; i++) w[i] = rnd(&s) * 0.1f;
    for (int64_t i = 0; i < m * ldy; i++) y[i] = NAN;
    QK(qf_gpu_sgemm_nt(m, n, k, x, ldx, w, y, ldy, &err_));
    double worst = 0;
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double ref = 0, mag = 0;
            for (int64_t t = 0; t < k; t++) {
                ref += (double)x[i * ldx + t] * (double)w[j * k + t];
                mag += fabs((double)x[i * ldx + t] * (double)w[j * k + t]);
            }
            const double e = fabs((double)y[i * ldy + j] - ref) / mag;
            if (!(e <= 4e-6)) fail_msg("sgemm y(%lld, %lld) = %.9g, float64 %.9g", (long long)i, (long long)j, y[i * ldy + j], ref);
            if (e > worst) worst = e;
        }
        for (int64_t j = n; j < ldy; j++) assert_true(isnan(y[i * ldy + j])); /* padding untouched */
    }
    printf("sgemm [%lld x %lld x %lld]: worst error %.2e of sum |x w|\n", (long long)m, (long long)n, (long long)k, worst);
    /* the staged variant (weight written into page-locked memory by a callback): same bits */
    float *y2 = malloc(sizeof(float) * (size_t)(m * ldy));
    assert_non_null(y2);
    for (int64_t i = 0; i < m * ldy; i++) y2[i] = NAN;
    fill_ctx fc = {w, n * k};
    QK(qf_gpu_sgemm_nt_fill(m, n, k, x, ldx, fill_copy, &fc, y2, ldy, &err_));
    for (int64_t i = 0; i < m; i++) assert_memory_equal(y2 + i * ldy, y + i * ldy, sizeof(float) * (size_t)n);
    free(x), free(w), free(y), free(y2);
}

/* rows [n, cols] of a random activation: a few channels much larger, as in real models */
static float *activations(int64_t n, int64_t cols, uint64_t seed)
{
    float *X = malloc(sizeof(float) * (size_t)(n * cols));
    assert_non_null(X);
    for (int64_t i = 0; i < n * cols; i++) X[i] = rnd(&seed) * ((i % cols) % 97 == 0 ? 20.0f : 1.0f);
    return X;
}

/* |a - b| <= 4e-6 * sum_r |x_ri x_rj| on the lower triangle (a's upper must equal `upper`
 * unless that is NaN) */
static void check_xtx(const double *a, const double *b, const float *X, int64_t rows, int64_t cols, double upper)
{
    double worst = 0;
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = 0; j < cols; j++) {
            if (j > i) {
                if (!isnan(upper)) assert_true(a[i * cols + j] == upper);
                continue;
            }
            double mag = 0;
            for (int64_t r = 0; r < rows; r++) mag += fabs((double)X[r * cols + i] * (double)X[r * cols + j]);
            const double e = fabs(a[i * cols + j] - b[i * cols + j]) / (mag > 0 ? mag : 1);
            if (!(e <= 4e-6)) fail_msg("xtx (%lld, %lld): gpu %.12g cpu %.12g", (long long)i, (long long)j, a[i * cols + j], b[i * cols + j]);
            if (e > worst) worst = e;
        }
    printf("xtx %lld wide, %lld rows: worst error %.2e of sum |x_i x_j|\n", (long long)cols, (long long)rows, worst);
}

static void test_xtx(void **state)
{
    (void)state;
    const int64_t cols = 333, rows = 3 * 512 + 100;
    float *X = activations(rows, cols, 7);
    double *gpu = calloc((size_t)(cols * cols), sizeof(double)), *cpu = calloc((size_t)(cols * cols), sizeof(double));
    assert_true(gpu && cpu);
    for (int64_t i = 0; i < cols * cols; i++) gpu[i] = (i / cols < i % cols) ? -7.0 : 0.0; /* upper: sentinel */
    qf_gpu_xtx *a = NULL;
    QK(qf_gpu_xtx_create(cols, 0, &a, &err_));
    for (int64_t r0 = 0; r0 < rows; r0 += QF_STATS_CHUNK) {
        const int64_t nr = rows - r0 < QF_STATS_CHUNK ? rows - r0 : QF_STATS_CHUNK;
        QK(qf_gpu_xtx_add(a, X + r0 * cols, nr, &err_));
        QK(qf_syrk_acc(nr, cols, X + r0 * cols, cols, cpu, cols, &err_));
    }
    QK(qf_gpu_xtx_read(a, gpu, NULL, &err_));
    check_xtx(gpu, cpu, X, rows, cols, -7.0);
    /* the read reset the device sum: reading again adds nothing */
    double *again = malloc(sizeof(double) * (size_t)(cols * cols));
    memcpy(again, gpu, sizeof(double) * (size_t)(cols * cols));
    QK(qf_gpu_xtx_read(a, again, NULL, &err_));
    assert_memory_equal(again, gpu, sizeof(double) * (size_t)(cols * cols));
    qf_gpu_xtx_free(a);
    free(X), free(gpu), free(cpu), free(again);
}

static void test_stats_on_gpu(void **state)
{
    (void)state;
    const int64_t cols = QF_STATS_GPU_MIN_COLS + 3, rows = 700;
    float *X = activations(rows, cols, 11);
    qf_stats st;
    QK(qf_stats_init(&st, cols, QF_STATS_XTX, &err_));
    assert_non_null(st.gpu); /* wide enough: the sum lives on the GPU */
    QK(qf_stats_add(&st, X, 300, &err_));
    QK(qf_stats_finish(&st, &err_));
    QK(qf_stats_add(&st, X + 300 * cols, rows - 300, &err_)); /* adding after finish is allowed */
    QK(qf_stats_finish(&st, &err_));
    /* CPU: the same chunking (300 rows flushed by the first finish, then 400) */
    double *cpu = calloc((size_t)(cols * cols), sizeof(double));
    assert_non_null(cpu);
    QK(qf_syrk_acc(300, cols, X, cols, cpu, cols, &err_));
    QK(qf_syrk_acc(rows - 300, cols, X + 300 * cols, cols, cpu, cols, &err_));
    for (int64_t i = 0; i < cols; i++) /* st.xtx is symmetric after finish: compare its lower half */
        for (int64_t j = i + 1; j < cols; j++) {
            assert_true(st.xtx[i * cols + j] == st.xtx[j * cols + i]);
            cpu[i * cols + j] = st.xtx[i * cols + j];
        }
    check_xtx(st.xtx, cpu, X, rows, cols, NAN);
    assert_int_equal(st.count, rows);
    qf_stats_free(&st);
    free(X), free(cpu);
}

/* Paired rows (the float target): the cross sum RᵀX of a wide accumulator lives on the GPU
 * beside XᵀX and matches qf_gemm_tn_acc chunk by chunk, orientation included (R ≠ X). */
static void test_stats_cross_on_gpu(void **state)
{
    (void)state;
    const int64_t cols = QF_STATS_GPU_MIN_COLS + 5, rows = 2 * QF_STATS_CHUNK + 77;
    float *X = activations(rows, cols, 13), *R = activations(rows, cols, 14);
    for (int64_t i = 0; i < rows * cols; i++) R[i] = 0.5f * R[i] + X[i]; /* correlated, not equal */
    qf_stats st;
    QK(qf_stats_init(&st, cols, QF_STATS_XTX | QF_STATS_CROSS, &err_));
    assert_non_null(st.gpu);
    QK(qf_stats_add_pair(&st, X, R, 600, &err_));
    QK(qf_stats_add_pair(&st, X + 600 * cols, R + 600 * cols, rows - 600, &err_));
    QK(qf_stats_finish(&st, &err_));
    double *P = calloc((size_t)(cols * cols), sizeof(double));
    assert_non_null(P);
    for (int64_t r0 = 0; r0 < rows; r0 += QF_STATS_CHUNK) {
        const int64_t nr = rows - r0 < QF_STATS_CHUNK ? rows - r0 : QF_STATS_CHUNK;
        QK(qf_gemm_tn_acc(nr, cols, cols, R + r0 * cols, cols, X + r0 * cols, cols, P, cols, &err_));
    }
    double worst = 0;
    for (int64_t a = 0; a < cols; a++)
        for (int64_t b = 0; b < cols; b++) {
            double mag = 0;
            for (int64_t t = 0; t < rows; t++) mag += fabs((double)R[t * cols + a] * (double)X[t * cols + b]);
            const double e = fabs(st.cross[a * cols + b] - P[a * cols + b]) / (mag > 0 ? mag : 1);
            if (!(e <= 4e-6)) fail_msg("cross (%lld, %lld): gpu %.12g cpu %.12g", (long long)a, (long long)b, st.cross[a * cols + b], P[a * cols + b]);
            if (e > worst) worst = e;
        }
    printf("cross %lld wide, %lld rows: worst error %.2e of sum |r_a x_b|\n", (long long)cols, (long long)rows, worst);
    qf_stats_free(&st);
    free(X), free(R), free(P);
}

/* H = AᵀA / rows + 0.01 I, A random: symmetric positive definite */
static double *spd(int64_t n, uint64_t seed)
{
    const int64_t rows = 2 * n;
    float *A = activations(rows, n, seed);
    double *H = calloc((size_t)(n * n), sizeof(double));
    assert_non_null(H);
    QK(qf_syrk_acc(rows, n, A, n, H, n, &err_));
    for (int64_t i = 0; i < n; i++) {
        H[i * n + i] = H[i * n + i] / (double)rows + 0.01;
        for (int64_t j = 0; j < i; j++) H[j * n + i] = H[i * n + j] = H[i * n + j] / (double)rows;
    }
    free(A);
    return H;
}

static int64_t factor(int gpu, const double *H, int64_t n, float *U)
{
    double *work = malloc(sizeof(double) * (size_t)(n * n));
    assert_non_null(work);
    memcpy(work, H, sizeof(double) * (size_t)(n * n));
    qf_error err = {0};
    qf_status st = QF_OK;
    int64_t f = gpu ? qf_gpu_gptq_factor(work, n, U, &st, &err) : qf_gptq_factor(work, n, U, &st, &err);
    if (st != QF_OK) fail_msg("%s factor: %s", gpu ? "gpu" : "cpu", err.msg);
    free(work);
    return f;
}

static void test_factor(void **state)
{
    (void)state;
    const int64_t n = 700;
    double *H = spd(n, 3);
    float *ug = malloc(sizeof(float) * (size_t)(n * n)), *uc = malloc(sizeof(float) * (size_t)(n * n));
    assert_true(ug && uc);
    assert_int_equal(factor(1, H, n, ug), 0);
    assert_int_equal(factor(0, H, n, uc), 0);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        float rowmax = 0;
        for (int64_t j = i; j < n; j++) rowmax = fmaxf(rowmax, fabsf(uc[i * n + j]));
        for (int64_t j = 0; j < n; j++) {
            if (j < i) {
                assert_true(ug[i * n + j] == 0.0f);
                continue;
            }
            const double e = fabs((double)ug[i * n + j] - (double)uc[i * n + j]) / rowmax;
            if (!(e <= 1e-5)) fail_msg("U(%lld, %lld): gpu %.9g cpu %.9g", (long long)i, (long long)j, ug[i * n + j], uc[i * n + j]);
            if (e > worst) worst = e;
        }
    }
    printf("gptq factor %lld: worst difference %.2e of the row's largest |U|\n", (long long)n, worst);
    free(H), free(ug), free(uc);
}

static void test_factor_failures(void **state)
{
    (void)state;
    const int64_t n = 64;
    float *u = malloc(sizeof(float) * (size_t)(n * n));
    double *H = spd(n, 5);
    const struct {
        int64_t at;
        double v;
    } cases[] = {{n - 1, -1.0}, {n - 3, 0.0}, {n - 2, NAN}, {n - 40, INFINITY}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double *B = malloc(sizeof(double) * (size_t)(n * n));
        memcpy(B, H, sizeof(double) * (size_t)(n * n));
        for (int64_t j = 0; j < n; j++) B[cases[c].at * n + j] = B[j * n + cases[c].at] = 0.0;
        B[cases[c].at * n + cases[c].at] = cases[c].v;
        const int64_t fc = factor(0, B, n, u), fg = factor(1, B, n, u);
        printf("not positive definite at %lld (%g): cpu %lld, gpu %lld\n", (long long)cases[c].at, cases[c].v,
               (long long)fc, (long long)fg);
        assert_int_equal(fc, n - cases[c].at); /* J H J puts row `at` at n - 1 - at */
        assert_int_equal(fg, fc);
        free(B);
    }
    free(H), free(u);
}

int main(void)
{
    const int presence = qf_test_gpu_presence("gpu_test_calib");
    if (presence) return presence;
    const char *dev = getenv("QF_DEVICE");
    if (dev && strcmp(dev, "cpu") == 0) {
        printf("SKIP gpu_test_calib: QF_DEVICE=cpu\n");
        return 77;
    }
    if (!qf_gpu_calib_enabled()) { /* a device is there: a session that does not start is a failure */
        printf("FAIL gpu_test_calib: a CUDA device is present but the GPU calibration session did not start\n");
        return 1;
    }
    printf("gpu_test_calib: %s\n", qf_gpu_calib_device_name());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgemm),  cmocka_unit_test(test_xtx),          cmocka_unit_test(test_stats_on_gpu),
        cmocka_unit_test(test_stats_cross_on_gpu),
        cmocka_unit_test(test_factor), cmocka_unit_test(test_factor_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
