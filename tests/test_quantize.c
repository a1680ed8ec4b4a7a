/* test_quantize.c - RTN quantization (quant/quantize.c) and dequantization (quant/dequant.c)
 * against an independent re-implementation of the formulas, for every scheme row.
 *
 * For each scheme that RTN can produce (qf_scheme_all minus needs_calibration rows), random
 * matrices of awkward-but-legal shapes are quantized with qf_quantize_rtn and then:
 *   (a) dequantized twice - by qf_dequant_rows and by ref_decode_artifact(), a decoder of the
 *       compressed-tensors layout written from the spec - and both compared for exact
 *       equality with ref_quantize(), a float re-implementation of the fixture README rules
 *       (tests/data/README / docs/formats.md); stored scales, zero points and global scale
 *       are compared exactly too;
 *   (b) checked against error bounds derived from each format (reasoning next to each bound);
 *   (c) checked for determinism: twice, and with 1, 2 and 3 OpenMP threads, byte-identical
 *       buffers (pre-filled with different garbage so an unwritten byte shows up);
 * and F32, BF16 and F16 sources of the same values give identical bytes; nvfp4's global
 * scale comes from the tensor or its fused siblings.  The reference and the qforge-side
 * harness live in tests/qf_quantize_fixture.h; the packed-tensor plans, refusals and edge
 * inputs are tested in tests/test_quantize_edges.c.
 * The reference uses its own scheme table (EXP_SCHEMES, keyed by name), its own bf16 / E4M3 /
 * E2M1 rounding (bracketing in a value table, ties to the even code), and none of qforge's
 * number-format helpers.  Its float32 expressions follow the documented evaluation order
 * (e.g. nvfp4: s = e4m3(amax_b * G / 6), q = e2m1(x / (s / G))), because algebraically equal
 * orders can differ by one float ulp right at a rounding boundary: the order is part of the
 * bit-exact contract with the artifacts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <omp.h>

#include "qf_dequant.h"
#include "qf_quantize.h"
#include "qf_scheme.h"
#include "qf_test_util.h"
#include "qf_quantize_fixture.h"

/* ==== helpers used only here ========================================================= */
/* Shape rule, written from the layout: groups must tile the row, int4 packs 8 per word,
 * asymmetric zero points pack 8 rows per word, fp4 packs 2 per byte. */
static int exp_fits(const exp_scheme *e, int64_t rows, int64_t cols)
{
    if (rows <= 0 || cols <= 0) return 0;
    if (e->group && cols % e->group) return 0;
    if ((e->kind == K_INT4_SYM || e->kind == K_INT4_ASYM) && cols % 8) return 0;
    if (e->kind == K_INT4_ASYM && rows % 8) return 0;
    if ((e->kind == K_NVFP4 || e->kind == K_MXFP4) && cols % 2) return 0;
    return 1;
}

static int qbuf_same(const qbuf *a, const qbuf *b)
{
    if (a->plan.n != b->plan.n) return 0;
    for (int i = 0; i < a->plan.n; i++)
        if (a->plan.t[i].nbytes != b->plan.t[i].nbytes || memcmp(a->b.data[i], b->b.data[i], a->plan.t[i].nbytes))
            return 0;
    return 1;
}

/* ==== tests ========================================================================== */
static void test_scheme_table_matches_expectations(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    assert_int_equal(n, N_EXP_SCHEMES);
    for (int i = 0; i < n; i++) {
        const exp_scheme *e = exp_for(&all[i]);
        assert_int_equal(all[i].group_size, e->group);
        assert_int_equal(all[i].needs_calibration, e->calib);
        assert_string_equal(all[i].ct_format, e->ct_format);
        assert_ptr_equal(qf_scheme_find(all[i].name), &all[i]);
        assert_ptr_equal(qf_scheme_by_id(all[i].id), &all[i]);
    }
    assert_null(qf_scheme_find("w4a17"));
}

static void test_rtn_matches_reference_every_scheme_awkward_shapes(void **state)
{
    (void)state;
    const int64_t rows_list[] = {1, 3, 8, 13, 24, 40};
    const int64_t cols_list[] = {1, 7, 16, 32, 48, 96, 128, 160, 384, 640, 130};
    int n = 0, covered = 0, kinds_seen = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(42);
    for (int si = 0; si < n; si++) {
        const qf_scheme *s = &all[si];
        const exp_scheme *e = exp_for(s);
        if (e->calib) continue; /* static activation scales: RTN refuses (checked elsewhere) */
        kinds_seen |= 1 << e->kind;
        for (size_t ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++)
            for (size_t ci = 0; ci < sizeof cols_list / sizeof cols_list[0]; ci++) {
                int64_t rows = rows_list[ri], cols = cols_list[ci];
                assert_int_equal(qf_scheme_fits(s, rows, cols), exp_fits(e, rows, cols));
                if (!exp_fits(e, rows, cols)) continue;
                float *x = malloc(sizeof(float) * (size_t)(rows * cols));
                assert_non_null(x);
                for (int g = 0; g < GEN_COUNT; g++) {
                    gen_matrix(&r, (gen_kind)g, x, rows, cols);
                    check_scheme_matrix(s, QF_DTYPE_F32, x, x, rows, cols, 0.0f);
                    covered++;
                }
                free(x);
            }
    }
    assert_int_equal(kinds_seen, (1 << K_FP8) | (1 << K_INT4_SYM) | (1 << K_INT4_ASYM) | (1 << K_NVFP4) |
                                     (1 << K_MXFP4) | (1 << K_INT8));
    assert_true(covered >= 6 * GEN_COUNT * 6);
}

/* Real checkpoints are bf16: quantize from BF16 bits (the reference sees their float values). */
static void test_rtn_from_bf16_source_matches_reference(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(7);
    const int64_t rows = 24, cols = 384;
    float *x = malloc(sizeof(float) * rows * cols);
    uint16_t *h = malloc(sizeof(uint16_t) * rows * cols);
    assert_non_null(x);
    assert_non_null(h);
    for (int si = 0; si < n; si++) {
        if (all[si].needs_calibration) continue;
        gen_matrix(&r, GEN_NORMAL_ROWSCALED, x, rows, cols);
        for (int64_t i = 0; i < rows * cols; i++) {
            float b = ref_bf16_round(x[i]);
            uint32_t u;
            memcpy(&u, &b, 4);
            h[i] = (uint16_t)(u >> 16);
            x[i] = b;
        }
        check_scheme_matrix(&all[si], QF_DTYPE_BF16, h, x, rows, cols, 0.0f);
    }
    free(x);
    free(h);
}

static int saved_threads;
static int threads_setup(void **state)
{
    (void)state;
    saved_threads = omp_get_max_threads();
    return 0;
}
static int threads_teardown(void **state)
{
    (void)state;
    omp_set_num_threads(saved_threads);
    return 0;
}

/* (c) byte-identical output twice and for 1, 2 and 3 threads (uneven splits of the row
 * blocks); buffers start as different garbage so an unwritten byte would differ. */
static void test_rtn_deterministic_across_runs_and_threads(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(99);
    const int64_t rows = 200, cols = 640;
    float *x = malloc(sizeof(float) * rows * cols);
    assert_non_null(x);
    gen_matrix(&r, GEN_HEAVY_TAIL, x, rows, cols);
    for (int si = 0; si < n; si++) {
        const qf_scheme *s = &all[si];
        if (s->needs_calibration) continue;
        qbuf ref, other;
        omp_set_num_threads(1);
        qbuf_alloc(&ref, s, rows, cols, 0x00);
        qbuf_quantize(&ref, s, QF_DTYPE_F32, x, rows, cols, 0.0f);
        const int threads[] = {1, 2, 3, 2};
        for (int t = 0; t < 4; t++) {
            omp_set_num_threads(threads[t]);
            qbuf_alloc(&other, s, rows, cols, (uint8_t)(0x11 * (t + 1) + 0x40));
            qbuf_quantize(&other, s, QF_DTYPE_F32, x, rows, cols, 0.0f);
            if (!qbuf_same(&ref, &other))
                fail_msg("%s: output with %d thread(s) differs from 1 thread", s->name, threads[t]);
            qbuf_free(&other);
        }
        qbuf_free(&ref);
    }
    free(x);
}

/* Exact f16 bits of a value representable in fp16 (normal or zero), written from the layout. */
static uint16_t exact_f16(float v)
{
    if (v == 0) return signbit(v) ? 0x8000 : 0;
    int k;
    double f = frexp(fabs((double)v), &k); /* |v| = f 2^k, f in [0.5, 1) -> 1.m 2^(k-1) */
    uint32_t e = (uint32_t)(k - 1 + 15), m = (uint32_t)((f * 2 - 1) * 1024);
    return (uint16_t)((v < 0 ? 0x8000u : 0) | e << 10 | m);
}

static double ref_f16_decode(uint16_t h) /* IEEE binary16, finite codes */
{
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return (h & 0x8000) ? -v : v;
}

/* The same values given as F32, BF16 and F16 give byte-identical packed tensors. */
static void test_f32_bf16_f16_sources_identical(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(17);
    const int64_t rows = 16, cols = 384;
    float *x = malloc(sizeof(float) * rows * cols);
    uint16_t *hb = malloc(sizeof(uint16_t) * rows * cols), *hh = malloc(sizeof(uint16_t) * rows * cols);
    assert_non_null(x);
    assert_non_null(hb);
    assert_non_null(hh);
    /* k * 2^-e with |k| < 256 and e <= 12: 8 significant bits (bf16 exact), >= 2^-12 (fp16 normal) */
    for (int64_t i = 0; i < rows * cols; i++) {
        int k = (int)qf_test_rng_below(&r, 511) - 255;
        x[i] = (float)ldexp(k, -(int)qf_test_rng_below(&r, 13));
        uint32_t u;
        memcpy(&u, &x[i], 4);
        assert_int_equal(u & 0xffffu, 0);
        hb[i] = (uint16_t)(u >> 16);
        hh[i] = exact_f16(x[i]);
        assert_true(bits_f32((uint32_t)hb[i] << 16) == x[i]);
        assert_true(ref_f16_decode(hh[i]) == x[i]);
    }
    for (int si = 0; si < n; si++) {
        const qf_scheme *s = &all[si];
        if (s->needs_calibration) continue;
        qbuf a, b, c;
        qbuf_alloc(&a, s, rows, cols, 0x01);
        qbuf_alloc(&b, s, rows, cols, 0x02);
        qbuf_alloc(&c, s, rows, cols, 0x03);
        qbuf_quantize(&a, s, QF_DTYPE_F32, x, rows, cols, 0.0f);
        qbuf_quantize(&b, s, QF_DTYPE_BF16, hb, rows, cols, 0.0f);
        qbuf_quantize(&c, s, QF_DTYPE_F16, hh, rows, cols, 0.0f);
        if (!qbuf_same(&a, &b)) fail_msg("%s: BF16 source differs from F32", s->name);
        if (!qbuf_same(&a, &c)) fail_msg("%s: F16 source differs from F32", s->name);
        qbuf_free(&a);
        qbuf_free(&b);
        qbuf_free(&c);
        check_scheme_matrix(s, QF_DTYPE_F16, hh, x, rows, cols, 0.0f);
    }
    free(x);
    free(hb);
    free(hh);
}

/* nvfp4: the tensor_amax argument (max over fused q/k/v or gate/up siblings) sets the global
 * scale G = 448 * 6 / tensor_amax; without it, G comes from the tensor's own absmax. */
static void test_nvfp4_global_scale_from_tensor_or_siblings(void **state)
{
    (void)state;
    const qf_scheme *s = qf_scheme_find("nvfp4a16");
    qf_test_rng r = qf_test_rng_init(23);
    const int64_t rows = 8, cols = 64;
    float x[8 * 64];
    gen_matrix(&r, GEN_UNIFORM, x, rows, cols);
    x[77] = -1.5f; /* uniform in [-1, 1): this is the absmax */
    const float given[] = {0.0f, 1.5f, 3.0f, 1234.5f};
    const float want_g[] = {2688.0f / 1.5f, 2688.0f / 1.5f, 2688.0f / 3.0f, 2688.0f / 1234.5f};
    for (int i = 0; i < 4; i++) {
        qbuf q;
        qbuf_alloc(&q, s, rows, cols, 0xA5);
        qbuf_quantize(&q, s, QF_DTYPE_F32, x, rows, cols, given[i]);
        const float *g = qbuf_tensor(&q, "weight_global_scale", QF_DTYPE_F32);
        assert_true(g[0] == want_g[i]);
        qbuf_free(&q);
        check_scheme_matrix(s, QF_DTYPE_F32, x, x, rows, cols, given[i]);
    }
    assert_true(qf_nvfp4_global_scale(0.0f) == 1.0f);
    assert_true(qf_nvfp4_global_scale(INFINITY) == 1.0f);
    assert_true(qf_nvfp4_global_scale(NAN) == 1.0f);
    assert_true(qf_nvfp4_global_scale(448.0f) == 6.0f);
}

int main(void)
{
    init_e4m3_table();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scheme_table_matches_expectations),
        cmocka_unit_test(test_rtn_matches_reference_every_scheme_awkward_shapes),
        cmocka_unit_test(test_rtn_from_bf16_source_matches_reference),
        cmocka_unit_test_setup_teardown(test_rtn_deterministic_across_runs_and_threads, threads_setup,
                                        threads_teardown),
        cmocka_unit_test(test_f32_bf16_f16_sources_identical),
        cmocka_unit_test(test_nvfp4_global_scale_from_tensor_or_siblings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
