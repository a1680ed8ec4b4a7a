/* test_gptq.c - the calibration linear algebra, the input statistics and GPTQ.
 *
 * References are independent float64 loops (tests/qf_calib_fixture.h).  Inputs are
 * correlated (X = Z A with a dense random mixing A), so XᵀX is far from diagonal and GPTQ has
 * something to compensate.  Margins were measured on these seeded inputs and pinned a little
 * below the measured value (the measured values are in the comments). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_calib_fixture.h"
#include "qf_gptq_fixture.h"
#include "qf_test_util.h"
#include "qf_float_target.h"
#include "qf_gptq.h"
#include "qf_linalg.h"
#include "qf_numfmt.h"
#include "qf_stats.h"

/* ---- linear algebra ----------------------------------------------------------------------- */

/* C += alpha op(A) op(B) against a float64 loop, every ISA, all transposes, the structure
 * flags, odd shapes; and the same bits whatever the ISA and the thread count. */
static void test_gemm(void **state)
{
    (void)state;
    const int shapes[][3] = {{1, 1, 1}, {7, 13, 5}, {121, 257, 300}, {300, 100, 513}, {64, 700, 128}, {250, 250, 90}};
    qf_error err = {0};
    fx_rng r = {7};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (unsigned flags = 0; flags < 4; flags++) {
                    const int64_t m = shapes[si][0], n = flags & QF_GEMM_C_LOWER ? m : shapes[si][1],
                                  k = flags & QF_GEMM_A_LOWER ? m : shapes[si][2];
                    const int64_t lda = ta ? m : k, ldb = tb ? k : n;
                    float *A = malloc(sizeof(float) * (size_t)(m * k)), *B = malloc(sizeof(float) * (size_t)(k * n));
                    float *C0 = malloc(sizeof(float) * (size_t)(m * n)), *C = malloc(sizeof(float) * (size_t)(m * n));
                    float *Cref = malloc(sizeof(float) * (size_t)(m * n));
                    for (int64_t i = 0; i < m * k; i++) A[i] = (float)fx_normal(&r);
                    for (int64_t i = 0; i < k * n; i++) B[i] = (float)fx_normal(&r);
                    for (int64_t i = 0; i < m * n; i++) C0[i] = (float)fx_normal(&r);
                    if (flags & QF_GEMM_A_LOWER) /* op(A)[i][p] = 0 for p > i */
                        for (int64_t i = 0; i < m; i++)
                            for (int64_t p = i + 1; p < k; p++) A[ta ? p * lda + i : i * lda + p] = 0;
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < n; j++) {
                            double s = 0;
                            for (int64_t p = 0; p < k; p++)
                                s += (double)(ta ? A[p * lda + i] : A[i * lda + p]) *
                                     (double)(tb ? B[j * ldb + p] : B[p * ldb + j]);
                            int keep = !(flags & QF_GEMM_C_LOWER) || i >= j;
                            Cref[i * n + j] = keep ? (float)(C0[i * n + j] - 0.5 * s) : C0[i * n + j];
                        }
                    float *first = malloc(sizeof(float) * (size_t)(m * n));
                    for (int isa = 1; isa <= 3; isa++)
                        for (int nt = 1; nt <= 2; nt++) {
                            qf_linalg_set_isa(isa);
                            omp_set_num_threads(nt);
                            memcpy(C, C0, sizeof(float) * (size_t)(m * n));
                            assert_int_equal(qf_sgemm(ta, tb, m, n, k, -0.5f, A, lda, B, ldb, C, n, flags, &err), QF_OK);
                            for (int64_t i = 0; i < m * n; i++)
                                if (fabsf(C[i] - Cref[i]) > 1e-4f * (float)sqrt((double)k) + 1e-5f)
                                    fail_msg("sgemm %lldx%lldx%lld ta%d tb%d flags%u isa%d: C[%lld] = %g, want %g",
                                             (long long)m, (long long)n, (long long)k, ta, tb, flags, isa,
                                             (long long)i, (double)C[i], (double)Cref[i]);
                            if (isa == 1 && nt == 1)
                                memcpy(first, C, sizeof(float) * (size_t)(m * n));
                            else if (memcmp(first, C, sizeof(float) * (size_t)(m * n)))
                                fail_msg("sgemm bits differ between ISAs / thread counts (isa %d, %d threads)", isa, nt);
                        }
                    qf_linalg_set_isa(0);
                    omp_set_num_threads(2);
                    free(A), free(B), free(C0), free(C), free(Cref), free(first);
                }
}

/* Cholesky, triangular inverse and GPTQ's factor on a random SPD matrix; failure index on
 * an indefinite one. */
static void test_factorizations(void **state)
{
    (void)state;
    qf_error err = {0};
    qf_status st;
    const int64_t sizes[] = {1, 5, 128, 129, 300};
    for (size_t q = 0; q < sizeof sizes / sizeof sizes[0]; q++) {
        const int64_t n = sizes[q];
        float *X = fx_inputs(8 * n + 3, n, 11 + q, 0, 1);
        double *H = fx_xtx(X, 8 * n + 3, n), mean = 0;
        for (int64_t i = 0; i < n; i++) mean += H[i * n + i] / (double)n;
        for (int64_t i = 0; i < n; i++) H[i * n + i] += 0.01 * mean; /* GPTQ's dampening */
        double *L = malloc(sizeof(double) * (size_t)(n * n)), *W = malloc(sizeof(double) * (size_t)(n * n));
        float *U = malloc(sizeof(float) * (size_t)(n * n));
        memcpy(L, H, sizeof(double) * (size_t)(n * n));
        assert_int_equal(qf_cholesky_lower(L, n, n, &st, &err), 0);
        assert_int_equal(st, QF_OK);
        double md = 0, hmax = 0;
        for (int64_t i = 0; i < n * n; i++) hmax = fmax(hmax, fabs(H[i]));
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < n; p++) s += L[i * n + p] * L[j * n + p];
                md = fmax(md, fabs(s - H[i * n + j]));
                if (j > i) assert_true(L[i * n + j] == 0.0);
            }
        assert_true(md <= 1e-12 * hmax * (double)n);
        /* L^-1 L = I */
        memcpy(W, L, sizeof(double) * (size_t)(n * n));
        assert_int_equal(qf_trtri_lower(W, n, n, &err), QF_OK);
        md = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t p = 0; p < n; p++) s += W[i * n + p] * L[p * n + j];
                md = fmax(md, fabs(s - (i == j)));
            }
        assert_true(md < 1e-9);
        /* U^T U H = I, U upper */
        memcpy(W, H, sizeof(double) * (size_t)(n * n));
        assert_int_equal(qf_gptq_factor(W, n, U, &st, &err), 0);
        md = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                if (j < i) assert_true(U[i * n + j] == 0.0f);
                double s = 0;
                for (int64_t p = 0; p < n; p++) {
                    double utu = 0;
                    for (int64_t c = 0; c <= (p < i ? p : i); c++) utu += (double)U[c * n + i] * U[c * n + p];
                    s += utu * H[p * n + j];
                }
                md = fmax(md, fabs(s - (i == j)));
            }
        if (md > 2e-5) fail_msg("n = %lld: |U^T U H - I| = %g", (long long)n, md); /* U is float32 */
        free(X), free(H), free(L), free(W), free(U);
    }
    /* indefinite: diag(1, 1, -1, 1) fails at index 2 (returns 3) */
    double A[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, -1, 0, 0, 0, 0, 1};
    assert_int_equal(qf_cholesky_lower(A, 4, 4, &st, &err), 3);
    assert_int_equal(st, QF_OK);
}

/* ---- statistics ---------------------------------------------------------------------------- */

static void stats_of(const float *X, int64_t n, int64_t cols, const int64_t *splits, int nsplit, qf_stats *st)
{
    qf_error err = {0};
    assert_int_equal(qf_stats_init(st, cols, QF_STATS_XTX, &err), QF_OK);
    int64_t at = 0;
    for (int i = 0; i <= nsplit; i++) {
        int64_t end = i < nsplit ? splits[i] : n;
        assert_int_equal(qf_stats_add(st, X + at * cols, end - at, &err), QF_OK);
        at = end;
    }
    assert_int_equal(qf_stats_finish(st, &err), QF_OK);
}

static void test_stats(void **state)
{
    (void)state;
    const int64_t n = 1300, cols = 200;
    float *X = fx_inputs(n, cols, 5, 4, 20.0f);
    double *H = fx_xtx(X, n, cols);
    qf_stats a, b, c;
    const int64_t split_b[] = {1, 511, 512, 1000};
    stats_of(X, n, cols, NULL, 0, &a);
    stats_of(X, n, cols, split_b, 4, &b);
    omp_set_num_threads(1);
    const int64_t split_c[] = {700};
    stats_of(X, n, cols, split_c, 1, &c);
    omp_set_num_threads(2);
    assert_int_equal(a.count, n);
    /* equals the float64 loop: float32 chunks of 512 rows summed in float64 */
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = 0; j < cols; j++) {
            double tol = 2e-6 * sqrt(H[i * cols + i] * H[j * cols + j]);
            if (fabs(a.xtx[i * cols + j] - H[i * cols + j]) > tol)
                fail_msg("xtx[%lld][%lld] = %.9g, naive %.9g", (long long)i, (long long)j, a.xtx[i * cols + j],
                         H[i * cols + j]);
            assert_true(a.xtx[i * cols + j] == a.xtx[j * cols + i]);
        }
    /* the same bits however the rows were split into calls and however many threads */
    assert_memory_equal(a.xtx, b.xtx, sizeof(double) * (size_t)(cols * cols));
    assert_memory_equal(a.xtx, c.xtx, sizeof(double) * (size_t)(cols * cols));
    assert_memory_equal(a.abssum, c.abssum, sizeof(double) * (size_t)cols);
    /* per-channel statistics */
    for (int64_t j = 0; j < cols; j++) {
        double am = 0, as = 0, sq = 0, mn = INFINITY, mx = -INFINITY;
        for (int64_t t = 0; t < n; t++) {
            double v = X[t * cols + j];
            am = fmax(am, fabs(v)), as += fabs(v), sq += v * v, mn = fmin(mn, v), mx = fmax(mx, v);
        }
        assert_true(a.absmax[j] == (float)am && a.xmin[j] == (float)mn && a.xmax[j] == (float)mx);
        assert_true(fabs(a.abssum[j] - as) <= 1e-9 * as && fabs(a.sqsum[j] - sq) <= 1e-9 * sq);
        assert_true(fabs(a.sqsum[j] - H[j * cols + j]) <= 1e-9 * sq);
    }
    float mean[200];
    qf_stats_mean_abs(&a, mean);
    assert_true(fabsf(mean[3] - (float)(a.abssum[3] / n)) <= 1e-6f * mean[3]);
    assert_true(qf_stats_input_scale(&a, qf_scheme_find("fp8")) == qf_stats_amax(&a) / 448.0f);
    assert_true(qf_stats_input_scale(&a, qf_scheme_find("w4a16")) == 0.0f);
    /* a row with a NaN is skipped and flagged */
    qf_error err = {0};
    X[5 * cols + 7] = NAN;
    qf_stats d;
    assert_int_equal(qf_stats_init(&d, cols, QF_STATS_XTX, &err), QF_OK);
    assert_int_equal(qf_stats_add(&d, X, 10, &err), QF_OK);
    assert_int_equal(qf_stats_finish(&d, &err), QF_OK);
    assert_int_equal(d.count, 9);
    assert_true(d.nonfinite);
    for (int64_t i = 0; i < cols * cols; i++) assert_true(isfinite(d.xtx[i]));
    qf_stats_free(&a), qf_stats_free(&b), qf_stats_free(&c), qf_stats_free(&d);
    qf_stats_free(NULL);
    free(X), free(H);
}

/* ---- GPTQ ------------------------------------------------------------------------------------ */

/* GPTQ's output error is well below RTN's on correlated inputs, for every format, with and
 * without act_order.  Measured error ratios GPTQ / RTN (default options; act_order):
 *   w4a16 0.479 (0.448)  w4a16-asym 0.470 (0.453)  nvfp4a16 0.462 (0.486)  mxfp4a16 0.485 (0.474)
 *   w8a8 0.473 (0.449)   fp8-dynamic 0.462 (0.441)
 * Pinned: each ratio at most its measured value + QF_GPTQ_SLACK.  The fixture is seeded, so the
 * ratios move only with the float summation order: the AVX2/FMA and generic (ARCH=) builds
 * agree within 0.001, and 0.02 is a few times that while a 10 % loss of GPTQ's gain (about
 * +0.05 on the ratio) fails.  A uniform "40 % below RTN" let such a loss through. */
#define QF_GPTQ_SLACK 0.02
static void test_gptq_beats_rtn(void **state)
{
    (void)state;
    gptq_fx f = fx_make(1);
    const char *names[] = {"w4a16", "w4a16-asym", "nvfp4a16", "mxfp4a16", "w8a8", "fp8-dynamic"};
    const double measured[][2] = {{0.479, 0.448}, {0.470, 0.453}, {0.462, 0.486},
                                  {0.485, 0.474}, {0.473, 0.449}, {0.462, 0.441}}; /* act_order 0, 1 */
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const qf_scheme *s = qf_scheme_find(names[i]);
        float *Qr = run_rtn(s, f.W, NULL);
        double er = fx_out_err(f.W, Qr, NULL, f.X, GR, GC, GN);
        for (int ao = 0; ao < 2; ao++) {
            qf_gptq_opts o;
            qf_gptq_opts_default(&o);
            o.act_order = ao;
            float *Qg = run_gptq(s, &f, NULL, &o, NULL, NULL);
            double eg = fx_out_err(f.W, Qg, NULL, f.X, GR, GC, GN);
            print_message("gptq %-11s act_order %d: output error %.4g vs rtn %.4g (ratio %.4f)\n", names[i], ao, eg, er,
                          eg / er);
            const double pin = measured[i][ao] + QF_GPTQ_SLACK;
            if (!(eg <= pin * er))
                fail_msg("%s act_order %d: gptq / rtn error ratio %.4f above %.3f (measured %.3f)", names[i], ao, eg / er,
                         pin, measured[i][ao]);
            free(Qg);
        }
        free(Qr);
    }
    fx_drop(&f);
}

/* With H = identity (no correlation to exploit) and act_order off, GPTQ is RTN: the same
 * packed bytes, for every scheme RTN handles. */
static void test_gptq_identity_is_rtn(void **state)
{
    (void)state;
    gptq_fx f = fx_make(2);
    double *I = calloc(GC * GC, sizeof(double));
    for (int i = 0; i < GC; i++) I[i * GC + i] = 3.0;
    int count;
    const qf_scheme *all = qf_scheme_all(&count);
    for (int i = 0; i < count; i++) {
        const qf_scheme *s = &all[i];
        if (s->needs_calibration) continue;
        for (int sg = 0; sg < 2; sg++) {
            qf_gptq_opts o;
            qf_gptq_opts_default(&o);
            o.static_groups = sg;
            qf_quant_buffers bg, br;
            qf_quant_plan plan;
            qf_error err = {0};
            assert_int_equal(qf_quant_plan_linear(s, GR, GC, &plan, &err), QF_OK);
            float *Qg = run_gptq(s, &f, I, &o, &bg, NULL);
            float *Qr = run_rtn(s, f.W, &br);
            if (!fx_same_buffers(&plan, &bg, &br)) fail_msg("%s static_groups %d: gptq(H = I) != rtn", s->name, sg);
            assert_memory_equal(Qg, Qr, sizeof(float) * GR * GC);
            fx_free_buffers(&plan, &bg), fx_free_buffers(&plan, &br);
            free(Qg), free(Qr);
        }
    }
    free(I);
    fx_drop(&f);
}

/* act_order keeps the plain group layout: the packed tensors decode to the returned W (checked
 * in run_gptq) for every scheme, lazy and static groups; static groups' parameters are the
 * RTN parameters of the original W (same scales as RTN). */
static void test_gptq_act_order_layout(void **state)
{
    (void)state;
    gptq_fx f = fx_make(3);
    int count;
    const qf_scheme *all = qf_scheme_all(&count);
    for (int i = 0; i < count; i++) {
        const qf_scheme *s = &all[i];
        for (int sg = 0; sg < 2; sg++) {
            qf_gptq_opts o;
            qf_gptq_opts_default(&o);
            o.act_order = 1;
            o.static_groups = sg;
            o.block_size = 48; /* blocks that do not line up with the groups */
            qf_quant_buffers bg;
            qf_quant_plan plan;
            qf_error err = {0};
            assert_int_equal(qf_quant_plan_linear(s, GR, GC, &plan, &err), QF_OK);
            float *Qg = run_gptq(s, &f, NULL, &o, &bg, NULL);
            if (sg && !s->needs_calibration) {
                qf_quant_buffers br;
                float *Qr = run_rtn(s, f.W, &br);
                int si = qf_quant_plan_find(&plan, QF_ROLE_SCALE);
                if (memcmp(bg.data[si], br.data[si], (size_t)plan.t[si].nbytes))
                    fail_msg("%s: static groups must keep RTN's scales", s->name);
                int zi = qf_quant_plan_find(&plan, QF_ROLE_ZERO);
                if (zi >= 0) assert_memory_equal(bg.data[zi], br.data[zi], (size_t)plan.t[zi].nbytes);
                fx_free_buffers(&plan, &br);
                free(Qr);
            }
            fx_free_buffers(&plan, &bg);
            free(Qg);
        }
    }
    fx_drop(&f);
}

/* Inputs that are always 0: H_ii = 0, the weights of those columns become 0, the rest is
 * still better than RTN. */
static void test_gptq_dead_columns(void **state)
{
    (void)state;
    gptq_fx f = fx_make(4);
    const int dead[] = {0, 17, 128, 255};
    for (size_t d = 0; d < 4; d++)
        for (int t = 0; t < GN; t++) f.X[t * GC + dead[d]] = 0;
    free(f.H);
    f.H = fx_xtx(f.X, GN, GC);
    const qf_scheme *s = qf_scheme_find("w4a16");
    for (int ao = 0; ao < 2; ao++) {
        qf_gptq_opts o;
        qf_gptq_opts_default(&o);
        o.act_order = ao;
        qf_gptq_result r;
        float *Q = run_gptq(s, &f, NULL, &o, NULL, &r);
        assert_int_equal(r.dead_cols, 4);
        for (int i = 0; i < GR; i++)
            for (size_t d = 0; d < 4; d++) assert_true(Q[i * GC + dead[d]] == 0.0f);
        float *Qr = run_rtn(s, f.W, NULL);
        assert_true(fx_out_err(f.W, Q, NULL, f.X, GR, GC, GN) < 0.75 * fx_out_err(f.W, Qr, NULL, f.X, GR, GC, GN));
        free(Q), free(Qr);
    }
    fx_drop(&f);
}

/* Same bytes twice, with 1 or 2 threads, and with each micro-kernel ISA. */
static void test_gptq_determinism(void **state)
{
    (void)state;
    gptq_fx f = fx_make(5);
    const char *names[] = {"w4a16-asym", "nvfp4a16"};
    for (int i = 0; i < 2; i++) {
        const qf_scheme *s = qf_scheme_find(names[i]);
        qf_quant_plan plan;
        qf_error err = {0};
        assert_int_equal(qf_quant_plan_linear(s, GR, GC, &plan, &err), QF_OK);
        qf_gptq_opts o;
        qf_gptq_opts_default(&o);
        o.act_order = 1;
        qf_quant_buffers b0, b1;
        qf_gptq_result r0, r1;
        float *Q0 = run_gptq(s, &f, NULL, &o, &b0, &r0);
        for (int run = 0; run < 4; run++) {
            omp_set_num_threads(run == 1 ? 1 : 2);
            qf_linalg_set_isa(run == 2 ? 2 : run == 3 ? 1 : 0);
            float *Q1 = run_gptq(s, &f, NULL, &o, &b1, &r1);
            if (!fx_same_buffers(&plan, &b0, &b1) || memcmp(Q0, Q1, sizeof(float) * GR * GC) || r0.loss != r1.loss)
                fail_msg("%s run %d: output differs", s->name, run);
            fx_free_buffers(&plan, &b1);
            free(Q1);
        }
        omp_set_num_threads(2);
        qf_linalg_set_isa(0);
        fx_free_buffers(&plan, &b0);
        free(Q0);
    }
    fx_drop(&f);
}

/* One prepared factor shared by two Linears gives the same bytes as qf_gptq_quantize. */
static void test_gptq_shared_factor(void **state)
{
    (void)state;
    gptq_fx f = fx_make(8);
    const qf_scheme *s = qf_scheme_find("w4a16");
    qf_gptq_opts o;
    qf_gptq_opts_default(&o);
    o.act_order = 1;
    qf_error err = {0};
    qf_gptq_hinv *hv;
    assert_int_equal(qf_gptq_hinv_init(&hv, f.H, GC, GN, &o, &err), QF_OK);
    qf_quant_plan plan;
    assert_int_equal(qf_quant_plan_linear(s, GR, GC, &plan, &err), QF_OK);
    for (int k = 0; k < 2; k++) {
        float *W = fx_weights(GR, GC, 40 + (uint64_t)k), *W2 = malloc(sizeof(float) * GR * GC);
        memcpy(W2, W, sizeof(float) * GR * GC);
        qf_quant_buffers a, b;
        fx_alloc_buffers(&plan, &a), fx_alloc_buffers(&plan, &b);
        qf_gptq_result ra, rb;
        assert_int_equal(qf_gptq_quantize_hinv(s, W, GR, GC, hv, 0, &o, &plan, &a, &ra, &err), QF_OK);
        assert_int_equal(qf_gptq_quantize(s, W2, GR, GC, f.H, GN, 0, &o, &plan, &b, &rb, &err), QF_OK);
        assert_true(fx_same_buffers(&plan, &a, &b));
        assert_memory_equal(W, W2, sizeof(float) * GR * GC);
        assert_true(ra.loss == rb.loss && ra.damp == rb.damp);
        fx_free_buffers(&plan, &a), fx_free_buffers(&plan, &b);
        free(W), free(W2);
    }
    qf_quant_plan other;
    assert_int_equal(qf_quant_plan_linear(s, GR, 2 * GC, &other, &err), QF_OK);
    float *Wbig = fx_weights(GR, 2 * GC, 3);
    qf_quant_buffers c;
    fx_alloc_buffers(&other, &c);
    assert_int_equal(qf_gptq_quantize_hinv(s, Wbig, GR, 2 * GC, hv, 0, &o, &other, &c, NULL, &err), QF_ERR_USAGE);
    fx_free_buffers(&other, &c);
    free(Wbig);
    qf_gptq_hinv_free(hv);
    qf_gptq_hinv_free(NULL);
    fx_drop(&f);
}

/* fp8 with a static activation scale: one weight scale for the tensor, written by GPTQ. */
static void test_gptq_fp8_static(void **state)
{
    (void)state;
    gptq_fx f = fx_make(6);
    const qf_scheme *s = qf_scheme_find("fp8");
    qf_quant_plan plan;
    qf_error err = {0};
    assert_int_equal(qf_quant_plan_linear(s, GR, GC, &plan, &err), QF_OK);
    qf_quant_buffers b;
    float *Q = run_gptq(s, &f, NULL, NULL, &b, NULL);
    uint16_t scale; /* bf16, as llm-compressor stores it */
    float amax = 0;
    memcpy(&scale, b.data[qf_quant_plan_find(&plan, QF_ROLE_SCALE)], sizeof scale);
    for (int i = 0; i < GR * GC; i++) amax = fmaxf(amax, fabsf(f.W[i]));
    assert_int_equal(scale, qf_f32_to_bf16(amax / 448.0f));
    fx_free_buffers(&plan, &b);
    free(Q);
    fx_drop(&f);
}

/* Bad input is refused with a message; an indefinite H is rescued by more dampening. */
static void test_gptq_errors(void **state)
{
    (void)state;
    gptq_fx f = fx_make(7);
    const qf_scheme *s = qf_scheme_find("w4a16");
    qf_quant_plan plan;
    qf_error err = {0};
    assert_int_equal(qf_quant_plan_linear(s, GR, GC, &plan, &err), QF_OK);
    qf_quant_buffers b;
    fx_alloc_buffers(&plan, &b);
    float *W = malloc(sizeof(float) * GR * GC);
    memcpy(W, f.W, sizeof(float) * GR * GC);
    double h = f.H[5 * GC + 9];
    f.H[5 * GC + 9] = NAN;
    assert_int_equal(qf_gptq_quantize(s, W, GR, GC, f.H, GN, 0, NULL, &plan, &b, NULL, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "Hessian [5, 9]"));
    f.H[5 * GC + 9] = h;
    qf_quant_plan other;
    assert_int_equal(qf_quant_plan_linear(s, GR, 2 * GC, &other, &err), QF_OK);
    assert_int_equal(qf_gptq_quantize(s, W, GR, GC, f.H, GN, 0, NULL, &other, &b, NULL, &err), QF_ERR_USAGE);
    assert_int_equal(qf_gptq_quantize(s, W, GR, 100, f.H, GN, 0, NULL, &plan, &b, NULL, &err), QF_ERR_UNSUPPORTED);
    /* an indefinite H (16 tokens for 256 inputs, minus 1 % of the mean diagonal) with little
     * dampening: retried with more */
    double *Hlow = fx_xtx(f.X, 16, GC), mean = 0;
    for (int i = 0; i < GC; i++) mean += Hlow[i * GC + i] / GC;
    for (int i = 0; i < GC; i++) Hlow[i * GC + i] -= 0.01 * mean;
    qf_gptq_opts o;
    qf_gptq_opts_default(&o);
    o.percdamp = 0.001f;
    qf_gptq_result r;
    assert_int_equal(qf_gptq_quantize(s, W, GR, GC, Hlow, 16, 0, &o, &plan, &b, &r, &err), QF_OK);
    assert_true(r.damp_retries >= 1 && r.damp > 0);
    fx_free_buffers(&plan, &b);
    free(Hlow), free(W);
    fx_drop(&f);
}

/* The scale refit (qf_gptq_opts.refit) never raises the output error and lowers it where the
 * stored scale has room to move; the gain it reports is the one measured independently
 * (against a run without refit: the first sweep is the same), and the packed tensors decode
 * to the returned weights (run_gptq).  Measured error ratios with 1 / 4 rounds against no
 * refit (act_order 0; act_order 1):  w4a16 0.982 / 0.941; 0.984 / 0.951
 *   w4a16-asym 0.985 / 0.985; 0.987 / 0.987 (the second round was worse here: not kept)
 *   nvfp4a16 0.976 / 0.960; 0.972 / 0.954   mxfp4a16 1 / 1 (a power-of-two scale has no room)
 *   w8a8 0.995 / 0.982; 0.995 / 0.995       fp8-dynamic 0.990 / 0.990; 0.992 / 0.992
 * Pinned: never above the previous figure (+1e-9), at least 1 % lower for int4 and nvfp4. */
static void test_gptq_refit(void **state)
{
    (void)state;
    gptq_fx f = fx_make(9);
    const char *names[] = {"w4a16", "w4a16-asym", "nvfp4a16", "mxfp4a16", "w8a8", "fp8-dynamic"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const qf_scheme *s = qf_scheme_find(names[i]);
        for (int ao = 0; ao < 2; ao++) {
            qf_gptq_opts o;
            qf_gptq_opts_default(&o);
            o.act_order = ao;
            float *Q0 = run_gptq(s, &f, NULL, &o, NULL, NULL);
            const double e0 = fx_out_err(f.W, Q0, NULL, f.X, GR, GC, GN);
            double prev = e0;
            for (int rounds = 1; rounds <= 4; rounds += 3) {
                o.refit = rounds;
                qf_gptq_result r;
                float *Q = run_gptq(s, &f, NULL, &o, NULL, &r);
                const double e = fx_out_err(f.W, Q, NULL, f.X, GR, GC, GN);
                print_message("refit %-11s act_order %d rounds %d: error ratio %.4f (reported gain %.4f)\n", names[i],
                              ao, rounds, e / e0, r.refit_gain);
                if (!(e <= prev * (1 + 1e-9)))
                    fail_msg("%s act_order %d: refit %d raised the error %g -> %g", names[i], ao, rounds, prev, e);
                if (fabs((1 - e / e0) - r.refit_gain) > 1e-4)
                    fail_msg("%s: refit gain reported %g, measured %g", names[i], r.refit_gain, 1 - e / e0);
                if ((s->value == QF_VALUE_INT4 || s->has_global_scale) && !(e <= 0.99 * e0))
                    fail_msg("%s act_order %d: refit gained only %.2f %%", names[i], ao, 100 * (1 - e / e0));
                prev = e;
                free(Q);
            }
            free(Q0);
        }
    }
    fx_drop(&f);
}

/* The code descent (qf_gptq_opts.descent) never raises the output error, measured
 * independently from X (float64), against the same run without it (the sweep before it is the
 * same); the gain it reports is the measured one; the packed tensors decode to the returned
 * weights (run_gptq).  And it ends where it claims to: for w4a16 (levels (c - 8) s) no single
 * weight moved one level up or down lowers its row's error, checked in float64 from H = XᵀX
 * and the stored bf16 scales.  With the refit (2 rounds of refit + descent) the error is
 * never above the descent's alone.  Measured error ratios against no descent, 8 sweeps
 * (w4a16: 100), act_order 0; 1, then with refit 2:
 *   w4a16 0.841; 0.871 | 0.814; 0.849        w4a16-asym 0.856; 0.880 | 0.836; 0.859
 *   nvfp4a16 0.720; 0.704 | 0.707; 0.684     mxfp4a16 0.660; 0.687 | 0.657; 0.684
 *   w8a8 0.860; 0.883 | 0.858; 0.883         fp8-dynamic 0.637; 0.643 | 0.635; 0.642
 * Pinned: never above 1 + 1e-9 (nor above the descent's with the refit), at least 8 % lower
 * for the 4-bit formats. */
static void test_gptq_descent(void **state)
{
    (void)state;
    gptq_fx f = fx_make(12);
    const char *names[] = {"w4a16", "w4a16-asym", "nvfp4a16", "mxfp4a16", "w8a8", "fp8-dynamic"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const qf_scheme *s = qf_scheme_find(names[i]);
        for (int ao = 0; ao < 2; ao++) {
            qf_gptq_opts o;
            qf_gptq_opts_default(&o);
            o.act_order = ao;
            float *Q0 = run_gptq(s, &f, NULL, &o, NULL, NULL);
            const double e0 = fx_out_err(f.W, Q0, NULL, f.X, GR, GC, GN);
            o.descent = strcmp(names[i], "w4a16") ? 8 : 100; /* w4a16: to convergence, checked below */
            qf_gptq_result r;
            qf_quant_buffers b;
            float *Q = run_gptq(s, &f, NULL, &o, &b, &r);
            const double e = fx_out_err(f.W, Q, NULL, f.X, GR, GC, GN);
            print_message("descent %-11s act_order %d: error ratio %.4f (reported gain %.4f)\n", names[i], ao, e / e0,
                          r.descent_gain);
            if (!(e <= e0 * (1 + 1e-9))) fail_msg("%s act_order %d: descent raised the error %g -> %g", names[i], ao, e0, e);
            if (fabs((1 - e / e0) - r.descent_gain) > 1e-4)
                fail_msg("%s: descent gain reported %g, measured %g", names[i], r.descent_gain, 1 - e / e0);
            if ((s->value == QF_VALUE_INT4 || s->value == QF_VALUE_FP4_E2M1) && !(e <= 0.92 * e0))
                fail_msg("%s act_order %d: descent gained only %.2f %%", names[i], ao, 100 * (1 - e / e0));
            /* with the refit: rounds of (refit scales, descend) start from the descent's result */
            o.refit = 2;
            qf_gptq_result r2;
            float *Q2 = run_gptq(s, &f, NULL, &o, NULL, &r2);
            const double e2 = fx_out_err(f.W, Q2, NULL, f.X, GR, GC, GN);
            print_message("descent + refit 2 %-11s act_order %d: error ratio %.4f\n", names[i], ao, e2 / e0);
            if (!(e2 <= e * (1 + 1e-9))) fail_msg("%s act_order %d: refit after descent raised the error %g -> %g", names[i], ao, e, e2);
            if (fabs((1 - e2 / e0) - r2.descent_gain) > 1e-4)
                fail_msg("%s: descent + refit gain reported %g, measured %g", names[i], r2.descent_gain, 1 - e2 / e0);
            free(Q2);
            if (!strcmp(names[i], "w4a16")) { /* a local minimum over one-level moves */
                qf_error err = {0};
                qf_quant_plan plan;
                assert_int_equal(qf_quant_plan_linear(s, GR, GC, &plan, &err), QF_OK);
                const uint16_t *sc = b.data[qf_quant_plan_find(&plan, QF_ROLE_SCALE)];
                const int64_t gs = s->group_size, ng = GC / gs;
                double *u = malloc(sizeof(double) * GC);
                int64_t checked = 0;
                for (int64_t rr = 0; rr < GR; rr++) {
                    double fr = 0;
                    for (int64_t a = 0; a < GC; a++) {
                        u[a] = 0;
                        for (int64_t c = 0; c < GC; c++)
                            u[a] += f.H[a * GC + c] * ((double)f.W[rr * GC + c] - (double)Q[rr * GC + c]);
                        fr += ((double)f.W[rr * GC + a] - (double)Q[rr * GC + a]) * u[a];
                    }
                    for (int64_t j = 0; j < GC; j++) {
                        const double st = qf_bf16_to_f32(sc[rr * ng + j / gs]), lv = Q[rr * GC + j] / st;
                        for (int k = -1; k <= 1; k += 2) {
                            if (lv + k < -8 || lv + k > 7) continue;
                            const double d = k * st, delta = -2 * d * u[j] + d * d * f.H[j * GC + j];
                            checked++;
                            if (delta < -1e-5 * fr)
                                fail_msg("w4a16 act_order %d: row %lld col %lld one level %+d lowers the error by %g of %g",
                                         ao, (long long)rr, (long long)j, k, -delta, fr);
                        }
                    }
                }
                assert_true(checked > GR * GC); /* most weights have both neighbours */
                free(u);
                fx_free_buffers(&plan, &b);
            } else {
                qf_quant_plan plan;
                qf_error err = {0};
                assert_int_equal(qf_quant_plan_linear(s, GR, GC, &plan, &err), QF_OK);
                fx_free_buffers(&plan, &b);
            }
            free(Q0), free(Q);
        }
    }
    fx_drop(&f);
}

/* GPTQ's own clip search (clip_search) lowers the output error on these inputs for the
 * formats whose scale has room below the min/max range; the packed tensors still decode to
 * the returned weights (run_gptq), with and without static groups.  Measured error ratios
 * against clip_search 0 (act_order 0; 1; static groups):
 *   w4a16 0.760; 0.784; 0.791   w4a16-asym 0.941; 0.953; 0.977   nvfp4a16 0.867; 0.992; 0.987
 *   mxfp4a16 1; 1; 1 (a 25 % shrink rarely crosses a power of two)
 * Pinned: int4 and nvfp4 at least 0.5 % lower, mxfp4 not above 1.02. */
static void test_gptq_clip_search(void **state)
{
    (void)state;
    gptq_fx f = fx_make(10);
    const char *names[] = {"w4a16", "w4a16-asym", "nvfp4a16", "mxfp4a16"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const qf_scheme *s = qf_scheme_find(names[i]);
        for (int mode = 0; mode < 3; mode++) {
            qf_gptq_opts o;
            qf_gptq_opts_default(&o);
            o.act_order = mode == 1;
            o.static_groups = mode == 2;
            float *Q0 = run_gptq(s, &f, NULL, &o, NULL, NULL);
            o.clip_search = 20;
            float *Q = run_gptq(s, &f, NULL, &o, NULL, NULL);
            const double e0 = fx_out_err(f.W, Q0, NULL, f.X, GR, GC, GN), e = fx_out_err(f.W, Q, NULL, f.X, GR, GC, GN);
            print_message("clip search %-10s mode %d: error ratio %.4f\n", names[i], mode, e / e0);
            const double pin = s->value == QF_VALUE_INT4 || s->has_global_scale ? 0.995 : 1.02;
            if (!(e <= pin * e0)) fail_msg("%s mode %d: clip search error ratio %.4f above %.3f", names[i], mode, e / e0, pin);
            free(Q0), free(Q);
        }
    }
    fx_drop(&f);
}

int main(void)
{
    omp_set_num_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_factorizations),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_gptq_beats_rtn),
        cmocka_unit_test(test_gptq_identity_is_rtn),
        cmocka_unit_test(test_gptq_act_order_layout),
        cmocka_unit_test(test_gptq_dead_columns),
        cmocka_unit_test(test_gptq_determinism),
        cmocka_unit_test(test_gptq_shared_factor),
        cmocka_unit_test(test_gptq_fp8_static),
        cmocka_unit_test(test_gptq_errors),
        cmocka_unit_test(test_gptq_refit),
        cmocka_unit_test(test_gptq_descent),
        cmocka_unit_test(test_gptq_clip_search),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
