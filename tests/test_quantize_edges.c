/* test_quantize_edges.c - the packed-tensor plans of quant/quantize.c and RTN on edge inputs.
 *
 *   (d) the plan of a [4096, 14336] Linear for every scheme is compared with the
 *       compressed-tensors layout written out below (names, dtypes, shapes, byte sizes);
 *       unfit shapes, calibrated schemes and non-float sources are refused with a message;
 *   - all-zero matrices / rows / groups, an all-zero nvfp4 block (scale byte 0x20, as
 *     compressed-tensors writes), one huge outlier per group, and asymmetric int4 groups that
 *     are entirely negative or entirely positive: outputs stay finite and still match the
 *     independent reference of tests/qf_quantize_fixture.h exactly.
 * Random inputs, source dtypes and determinism are tested in tests/test_quantize.c.
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

#include "qf_dequant.h"
#include "qf_quantize.h"
#include "qf_scheme.h"
#include "qf_test_util.h"
#include "qf_quantize_fixture.h"

/* ==== tests ========================================================================== */
/* (d) plans for a [4096, 14336] Linear (Llama-3-8B's up_proj transposed: down_proj). */
typedef struct exp_tensor {
    const char *suffix;
    qf_dtype dtype;
    int ndim;
    int64_t d0, d1;
    int elem_bytes;
} exp_tensor;

static void check_plan(const char *name, const exp_tensor *want, int nwant, int64_t rows, int64_t cols)
{
    const qf_scheme *s = qf_scheme_find(name);
    assert_non_null(s);
    qf_quant_plan plan;
    qf_error err = {0};
    assert_int_equal(qf_quant_plan_linear(s, rows, cols, &plan, &err), QF_OK);
    if (plan.n != nwant) fail_msg("%s: plan has %d tensors, expected %d", name, plan.n, nwant);
    for (int i = 0; i < nwant; i++) {
        int found = 0;
        for (int j = 0; j < plan.n; j++) {
            const qf_packed_tensor *t = &plan.t[j];
            if (strcmp(t->suffix, want[i].suffix)) continue;
            found = 1;
            uint64_t numel = (uint64_t)want[i].d0 * (uint64_t)(want[i].ndim > 1 ? want[i].d1 : 1);
            if (t->dtype != want[i].dtype || t->ndim != want[i].ndim || t->shape[0] != want[i].d0 ||
                (want[i].ndim > 1 && t->shape[1] != want[i].d1) || t->nbytes != numel * (uint64_t)want[i].elem_bytes)
                fail_msg("%s.%s: got %s ndim %d [%lld, %lld] %llu bytes, expected %s ndim %d [%lld, %lld] %llu bytes",
                         name, want[i].suffix, qf_dtype_name(t->dtype), t->ndim, (long long)t->shape[0],
                         (long long)t->shape[1], (unsigned long long)t->nbytes, qf_dtype_name(want[i].dtype),
                         want[i].ndim, (long long)want[i].d0, (long long)want[i].d1,
                         (unsigned long long)(numel * (uint64_t)want[i].elem_bytes));
        }
        if (!found) fail_msg("%s: plan lacks %s", name, want[i].suffix);
    }
}

static void test_plans_4096x14336_match_compressed_tensors_layout(void **state)
{
    (void)state;
    const int64_t O = 4096, I = 14336;
    const exp_tensor fp8d[] = {{"weight", QF_DTYPE_F8_E4M3, 2, O, I, 1}, {"weight_scale", QF_DTYPE_BF16, 2, O, 1, 2}};
    const exp_tensor w4[] = {{"weight_packed", QF_DTYPE_I32, 2, O, I / 8, 4},
                             {"weight_scale", QF_DTYPE_BF16, 2, O, I / 128, 2},
                             {"weight_shape", QF_DTYPE_I64, 1, 2, 0, 8}};
    const exp_tensor w4a[] = {{"weight_packed", QF_DTYPE_I32, 2, O, I / 8, 4},
                              {"weight_scale", QF_DTYPE_BF16, 2, O, I / 128, 2},
                              {"weight_zero_point", QF_DTYPE_I32, 2, O / 8, I / 128, 4},
                              {"weight_shape", QF_DTYPE_I64, 1, 2, 0, 8}};
    const exp_tensor nv[] = {{"weight_packed", QF_DTYPE_U8, 2, O, I / 2, 1},
                             {"weight_scale", QF_DTYPE_F8_E4M3, 2, O, I / 16, 1},
                             {"weight_global_scale", QF_DTYPE_F32, 1, 1, 0, 4}};
    const exp_tensor mx[] = {{"weight_packed", QF_DTYPE_U8, 2, O, I / 2, 1},
                             {"weight_scale", QF_DTYPE_U8, 2, O, I / 32, 1}};
    const exp_tensor w8[] = {{"weight", QF_DTYPE_I8, 2, O, I, 1}, {"weight_scale", QF_DTYPE_BF16, 2, O, 1, 2}};
    const exp_tensor fp8s[] = {{"weight", QF_DTYPE_F8_E4M3, 2, O, I, 1},
                               {"weight_scale", QF_DTYPE_BF16, 1, 1, 0, 2},
                               {"input_scale", QF_DTYPE_BF16, 1, 1, 0, 2}};
    const exp_tensor nv44[] = {{"weight_packed", QF_DTYPE_U8, 2, O, I / 2, 1},
                               {"weight_scale", QF_DTYPE_F8_E4M3, 2, O, I / 16, 1},
                               {"weight_global_scale", QF_DTYPE_F32, 1, 1, 0, 4},
                               {"input_global_scale", QF_DTYPE_F32, 1, 1, 0, 4}};
    check_plan("fp8-dynamic", fp8d, 2, O, I);
    check_plan("w4a16", w4, 3, O, I);
    check_plan("w4a16-asym", w4a, 4, O, I);
    check_plan("nvfp4a16", nv, 3, O, I);
    check_plan("mxfp4a16", mx, 2, O, I);
    check_plan("w8a8", w8, 2, O, I);
    check_plan("fp8", fp8s, 3, O, I);
    check_plan("nvfp4", nv44, 4, O, I);
    /* byte sizes spelled out once as numbers: int4 is 4096*14336/2 bytes of weights */
    qf_quant_plan p;
    qf_error err = {0};
    assert_int_equal(qf_quant_plan_linear(qf_scheme_find("w4a16"), O, I, &p, &err), QF_OK);
    assert_int_equal(p.t[qf_quant_plan_find(&p, QF_ROLE_WEIGHT)].nbytes, 29360128u);
    assert_int_equal(p.t[qf_quant_plan_find(&p, QF_ROLE_SCALE)].nbytes, 917504u);
    assert_int_equal(qf_quant_plan_find(&p, QF_ROLE_ZERO), -1);
    /* a small asymmetric plan: one zero-point word covers 8 rows of one group */
    check_plan("w4a16-asym", (const exp_tensor[]){{"weight_packed", QF_DTYPE_I32, 2, 8, 16, 4},
                                                  {"weight_scale", QF_DTYPE_BF16, 2, 8, 1, 2},
                                                  {"weight_zero_point", QF_DTYPE_I32, 2, 1, 1, 4},
                                                  {"weight_shape", QF_DTYPE_I64, 1, 2, 0, 8}},
               4, 8, 128);
}

static void test_unfit_shapes_and_bad_inputs_refused(void **state)
{
    (void)state;
    const struct { const char *name; int64_t rows, cols; } bad[] = {
        {"w4a16", 4096, 14336 + 64}, {"w4a16", 4096, 100}, {"w4a16", 0, 128}, {"w4a16-asym", 4097, 14336},
        {"w4a16-asym", 12, 128},     {"nvfp4a16", 16, 24}, {"nvfp4a16", 16, 8}, {"mxfp4a16", 16, 48},
        {"mxfp4a16", 16, 16},        {"fp8-dynamic", 0, 16}, {"w8a8", 16, 0}, {"w8a8", -1, 16},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qf_quant_plan p;
        qf_error err = {0};
        const qf_scheme *s = qf_scheme_find(bad[i].name);
        assert_non_null(s);
        qf_status st = qf_quant_plan_linear(s, bad[i].rows, bad[i].cols, &p, &err);
        if (st != QF_ERR_UNSUPPORTED)
            fail_msg("%s [%lld, %lld]: expected QF_ERR_UNSUPPORTED, got %d", bad[i].name, (long long)bad[i].rows,
                     (long long)bad[i].cols, st);
        assert_true(strlen(err.msg) > 0);
        assert_non_null(strstr(err.msg, bad[i].name)); /* the message names the scheme */
    }
    /* RTN refuses calibrated schemes and non-float sources */
    float x[16 * 16] = {0};
    qbuf q;
    qf_error err = {0};
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    for (int i = 0; i < n; i++) {
        if (!all[i].needs_calibration) continue;
        qbuf_alloc(&q, &all[i], 16, 16, 0);
        assert_int_equal(qf_quantize_rtn(&all[i], QF_DTYPE_F32, x, 16, 16, 0, &q.plan, &q.b, &err), QF_ERR_USAGE);
        qbuf_free(&q);
    }
    qbuf_alloc(&q, qf_scheme_find("fp8-dynamic"), 16, 16, 0);
    assert_int_equal(qf_quantize_rtn(qf_scheme_find("fp8-dynamic"), QF_DTYPE_I32, x, 16, 16, 0, &q.plan, &q.b, &err),
                     QF_ERR_UNSUPPORTED);
    qbuf_free(&q);
}

/* All-zero matrix, all-zero rows, and all-zero groups next to nonzero ones: no NaN or inf
 * anywhere, zeros dequantize to exactly 0, everything else still matches the reference. */
static void test_zero_rows_and_groups(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(5);
    const int64_t rows = 16, cols = 256; /* fits every scheme: 256 = 2 * 128 = 8 * 32 = 16 * 16 */
    float *x = calloc(rows * cols, sizeof(float));
    float *deq = malloc(sizeof(float) * rows * cols);
    assert_non_null(x);
    assert_non_null(deq);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) { /* row 0 zero, row 1 zero in its first 128 columns, others random */
            gen_matrix(&r, GEN_NORMAL_ROWSCALED, x, rows, cols);
            memset(x, 0, sizeof(float) * cols);
            memset(x + cols, 0, sizeof(float) * 128);
            for (int64_t c = 128; c < cols; c += 32) memset(x + 5 * cols + c, 0, sizeof(float) * 16);
        }
        for (int si = 0; si < n; si++) {
            const qf_scheme *s = &all[si];
            if (s->needs_calibration) continue;
            check_scheme_matrix(s, QF_DTYPE_F32, x, x, rows, cols, 0.0f);
            qbuf q;
            qbuf_alloc(&q, s, rows, cols, 0xA5);
            qbuf_quantize(&q, s, QF_DTYPE_F32, x, rows, cols, 0.0f);
            qf_dequant_all(s, &q, rows, cols, deq);
            for (int64_t i = 0; i < rows * cols; i++) {
                if (!isfinite(deq[i])) fail_msg("%s pass %d: element %lld dequantizes to %g", s->name, pass,
                                                (long long)i, (double)deq[i]);
                if (x[i] == 0 && deq[i] != 0) fail_msg("%s pass %d: zero input %lld -> %g", s->name, pass,
                                                       (long long)i, (double)deq[i]);
            }
            int ig = qf_quant_plan_find(&q.plan, QF_ROLE_GLOBAL);
            if (ig >= 0) assert_true(isfinite(*(float *)q.b.data[ig]) && *(float *)q.b.data[ig] > 0);
            qbuf_free(&q);
        }
    }
    free(x);
    free(deq);
}

/* compressed-tensors replaces a zero E4M3 block scale by finfo(float8_e4m3fn).eps = 0.125
 * (code 0x20); qf_quantize.h documents the same ("code 0 -> 0.125 as compressed-tensors
 * does").  An all-zero nvfp4 block must therefore store weight_scale byte 0x20. */
static void test_nvfp4_zero_block_scale_is_ct_eps_0x20(void **state)
{
    (void)state;
    const qf_scheme *s = qf_scheme_find("nvfp4a16");
    float x[2 * 32] = {0};
    for (int i = 16; i < 32; i++) x[i] = (float)(i - 20); /* row 0: block 0 zero, block 1 nonzero */
    qbuf q;
    qbuf_alloc(&q, s, 2, 32, 0xA5);
    qbuf_quantize(&q, s, QF_DTYPE_F32, x, 2, 32, 0.0f);
    const uint8_t *scp = qbuf_tensor(&q, "weight_scale", QF_DTYPE_F8_E4M3);
    uint8_t sc[4];
    memcpy(sc, scp, 4); /* [2 rows, 2 blocks] */
    qbuf_free(&q);
    assert_int_equal(sc[1], 0x7e); /* the nonzero block holds the tensor amax 11: 11 * G / 6 = 448 */
    /* This once wrote 0x28 (E4M3 0.25): values were still right (all codes 0) but the bytes
     * differed from what compressed-tensors writes for the same weights. */
    if (sc[0] != 0x20 || sc[2] != 0x20 || sc[3] != 0x20)
        fail_msg("zero nvfp4 block scale stored as 0x%02x 0x%02x 0x%02x "
                 "(E4M3 %g), expected 0x20 (0.125)", sc[0], sc[2], sc[3], E4M3_VAL[sc[0] & 0x7f]);
}

/* One huge outlier per group: no overflow, the other values collapse towards 0 within the
 * bound of the (now large) step, and the outlier itself is represented within its bound. */
static void test_group_with_huge_outlier(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(11);
    const int64_t rows = 8, cols = 256;
    float *x = malloc(sizeof(float) * rows * cols);
    assert_non_null(x);
    const float outliers[] = {1e4f, -65504.0f, 3e30f};
    for (size_t oi = 0; oi < sizeof outliers / sizeof outliers[0]; oi++) {
        for (int64_t i = 0; i < rows * cols; i++) x[i] = qf_test_rng_normal(&r) * 0.01f;
        for (int64_t row = 0; row < rows; row++) x[row * cols + (row * 37) % cols] = outliers[oi] * (row % 2 ? -1 : 1);
        for (int si = 0; si < n; si++)
            if (!all[si].needs_calibration) check_scheme_matrix(&all[si], QF_DTYPE_F32, x, x, rows, cols, 0.0f);
    }
    free(x);
}

/* qf_quant_dequant (the vectorised loop GPTQ's clip search rounds with) equals qf_quant_value
 * bit for bit, for every scheme's value format, on values around every grid point, beyond the
 * range, ±0, NaN, ±Inf and subnormals, under ordinary, tiny, huge, zero, negative and NaN
 * scales (the last three take the scalar path) and both zero-point extremes. */
static void test_quant_dequant_equals_quant_value(void **state)
{
    (void)state;
    int n = 0;
    const qf_scheme *all = qf_scheme_all(&n);
    qf_test_rng r = qf_test_rng_init(23);
    enum { N = 4096 };
    static float x[N], a[N], b[N];
    const float scales[] = {0.37f, 1e-30f, 3e30f, 1.0f, 0.0f, -0.5f, NAN};
    const float zeros[] = {0.0f, 8.0f, 15.0f};
    for (int si = 0; si < n; si++) {
        const qf_scheme *sc = &all[si];
        for (size_t k = 0; k < sizeof scales / sizeof scales[0]; k++)
            for (size_t z = 0; z < sizeof zeros / sizeof zeros[0]; z++) {
                const qf_group_params p = {scales[k], zeros[z], 0};
                for (int i = 0; i < N; i++) { /* multiples of the step and half-steps, jittered */
                    const float grid = (float)((int)(qf_test_rng_u32(&r) % 64) - 32) * 0.5f;
                    x[i] = (grid + (float)(qf_test_rng_normal(&r) * 0.01)) * (isfinite(scales[k]) ? scales[k] : 1.0f);
                }
                const float special[] = {0.0f, -0.0f, NAN, INFINITY, -INFINITY, 1e-45f, -1e-40f, 3e38f, -3e38f};
                for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) x[i] = special[i];
                qf_quant_dequant(sc, &p, x, N, a);
                for (int i = 0; i < N; i++) qf_quant_value(sc, &p, x[i], &b[i]);
                if (memcmp(a, b, sizeof a)) {
                    for (int i = 0; i < N; i++)
                        if (memcmp(&a[i], &b[i], sizeof(float)))
                            fail_msg("%s scale %g zero %g x %g: vectorised %g, qf_quant_value %g", sc->name, scales[k],
                                     zeros[z], x[i], a[i], b[i]);
                }
            }
    }
}

/* Asymmetric int4 on groups that are entirely negative (zero point 15, min at code 0) and
 * entirely positive (zero point 0). */
static void test_asym_negative_only_and_positive_only_groups(void **state)
{
    (void)state;
    const qf_scheme *s = qf_scheme_find("w4a16-asym");
    qf_test_rng r = qf_test_rng_init(13);
    const int64_t rows = 16, cols = 256;
    float *x = malloc(sizeof(float) * rows * cols);
    assert_non_null(x);
    for (int64_t i = 0; i < rows * cols; i++) {
        float m = qf_test_rng_uniform(&r, 0.1f, 2.0f);
        x[i] = (i % cols) < 128 ? -m : m; /* group 0 negative-only, group 1 positive-only */
    }
    check_scheme_matrix(s, QF_DTYPE_F32, x, x, rows, cols, 0.0f);
    qbuf q;
    qbuf_alloc(&q, s, rows, cols, 0xA5);
    qbuf_quantize(&q, s, QF_DTYPE_F32, x, rows, cols, 0.0f);
    const uint32_t *zp = qbuf_tensor(&q, "weight_zero_point", QF_DTYPE_I32);
    const uint32_t *wp = qbuf_tensor(&q, "weight_packed", QF_DTYPE_I32);
    for (int64_t row = 0; row < rows; row++) {
        assert_int_equal((zp[(row / 8) * 2 + 0] >> (4 * (row % 8))) & 15u, 15); /* all-negative group */
        assert_int_equal((zp[(row / 8) * 2 + 1] >> (4 * (row % 8))) & 15u, 0);  /* all-positive group */
        /* the group minimum lands on code 0, the maximum on code 15 */
        int64_t argmin = 0, argmax = 128;
        for (int64_t c = 0; c < 128; c++) argmin = x[row * cols + c] < x[row * cols + argmin] ? c : argmin;
        for (int64_t c = 128; c < 256; c++) argmax = x[row * cols + c] > x[row * cols + argmax] ? c : argmax;
        assert_int_equal((wp[row * 32 + argmin / 8] >> (4 * (argmin % 8))) & 15u, 0);
        assert_int_equal((wp[row * 32 + argmax / 8] >> (4 * (argmax % 8))) & 15u, 15);
    }
    qbuf_free(&q);
    free(x);
}

int main(void)
{
    init_e4m3_table();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plans_4096x14336_match_compressed_tensors_layout),
        cmocka_unit_test(test_unfit_shapes_and_bad_inputs_refused),
        cmocka_unit_test(test_zero_rows_and_groups),
        cmocka_unit_test(test_nvfp4_zero_block_scale_is_ct_eps_0x20),
        cmocka_unit_test(test_group_with_huge_outlier),
        cmocka_unit_test(test_asym_negative_only_and_positive_only_groups),
        cmocka_unit_test(test_quant_dequant_equals_quant_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
