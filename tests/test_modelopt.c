/* test_modelopt.c - the ModelOpt layout decodes to what the compressed-tensors layout decodes.
 *
 * For fp8-dynamic, nvfp4a16 and w4a16, every Linear weight of tests/data/tiny-llama (and a
 * random matrix with awkward values: zero blocks, a huge outlier) is quantized once (RTN,
 * compressed-tensors buffers), re-laid out into ModelOpt tensors, and both are decoded by
 * their own decoders (qf_dequant_rows for compressed-tensors, qf_modelopt_dequant_rows
 * written from ModelOpt's formulas).  FP8 and W4A16 must agree bit for bit; NVFP4 codes and
 * block scales must be the same bytes and the values may differ only in the last bit, since
 * ModelOpt stores the second-level scale as the reciprocal of compressed-tensors' global
 * scale (x * (1/G) vs x / G).  A hand-made 2x2 W4A16 case pins the output-dim nibble packing.
 *
 * `test_modelopt --compare CT_DIR MODELOPT_DIR SCHEME` does the same on two artifacts written
 * by `qforge convert` (tests/cli/modelopt.sh).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qf_dequant.h"
#include "qf_modelopt.h"
#include "qf_numfmt.h"
#include "qf_safetensors.h"

/* |a - b| within n units in the last place of the larger magnitude (n = 0: identical). */
static int within_ulp(float a, float b, int n)
{
    if (a == b) return 1;
    float m = fmaxf(fabsf(a), fabsf(b));
    return fabsf(a - b) <= (float)n * (nextafterf(m, INFINITY) - m);
}

typedef struct cmp_stats {
    uint64_t values, exact;
    double max_rel;
} cmp_stats;

/* Quantize w [rows, cols] (F32) with s, re-lay out, decode both, compare. */
static void check_matrix(const qf_scheme *s, qf_dtype dt, const void *w, int64_t rows, int64_t cols, cmp_stats *cs)
{
    qf_quant_plan ct, mo;
    qf_error err;
    assert_int_equal(qf_quant_plan_linear(s, rows, cols, &ct, &err), QF_OK);
    assert_int_equal(qf_modelopt_plan(s, dt, rows, cols, &mo, &err), QF_OK);
    qf_quant_buffers cb = {{0}}, mb = {{0}};
    for (int k = 0; k < ct.n; k++) cb.data[k] = calloc(1, ct.t[k].nbytes);
    for (int k = 0; k < mo.n; k++) mb.data[k] = calloc(1, mo.t[k].nbytes);
    assert_int_equal(qf_quantize_rtn(s, dt, w, rows, cols, 0, &ct, &cb, &err), QF_OK);
    assert_int_equal(qf_modelopt_relayout(s, rows, cols, &ct, &cb, &mo, &mb, &err), QF_OK);

    qf_packed_weight pw = {.scheme = s, .rows = rows, .cols = cols, .global_scale = 1.0f};
    pw.weight = cb.data[qf_quant_plan_find(&ct, QF_ROLE_WEIGHT)];
    int si = qf_quant_plan_find(&ct, QF_ROLE_SCALE);
    pw.scale = cb.data[si];
    pw.scale_dtype = ct.t[si].dtype;
    int gi = qf_quant_plan_find(&ct, QF_ROLE_GLOBAL);
    if (gi >= 0) memcpy(&pw.global_scale, cb.data[gi], 4);
    qf_modelopt_weight mw = {.scheme = s, .rows = rows, .cols = cols, .weight_scale_2 = 1.0f, .pqs_dtype = dt};
    for (int k = 0; k < mo.n; k++) {
        if (mo.t[k].role == QF_ROLE_WEIGHT) mw.weight = mb.data[k];
        if (mo.t[k].role == QF_ROLE_SCALE) mw.weight_scale = mb.data[k];
        if (mo.t[k].role == QF_ROLE_GLOBAL) memcpy(&mw.weight_scale_2, mb.data[k], 4);
        if (mo.t[k].role == QF_ROLE_PRE_QUANT_SCALE) mw.pre_quant_scale = mb.data[k];
    }
    if (s->value == QF_VALUE_FP4_E2M1 || s->value == QF_VALUE_FP8_E4M3) { /* the same code and scale bytes */
        assert_memory_equal(mw.weight, pw.weight, ct.t[qf_quant_plan_find(&ct, QF_ROLE_WEIGHT)].nbytes);
        if (s->value == QF_VALUE_FP4_E2M1) assert_memory_equal(mw.weight_scale, pw.scale, ct.t[si].nbytes);
    }
    if (s->value == QF_VALUE_FP8_E4M3) { /* CT's BF16 scales, widened exactly into ModelOpt's F32 */
        assert_int_equal(ct.t[si].dtype, QF_DTYPE_BF16);
        for (uint64_t i = 0; i < ct.t[si].nbytes / 2; i++)
            assert_true(((const float *)mw.weight_scale)[i] == qf_bf16_to_f32(((const uint16_t *)pw.scale)[i]));
    }
    float *a = malloc(sizeof(float) * (size_t)(rows * cols)), *b = malloc(sizeof(float) * (size_t)(rows * cols));
    qf_dequant_rows(&pw, 0, rows, a);
    qf_modelopt_dequant_rows(&mw, 0, rows, b);
    int tol = s->value == QF_VALUE_FP4_E2M1 ? 2 : 0;
    for (int64_t i = 0; i < rows * cols; i++) {
        if (!within_ulp(a[i], b[i], tol)) {
            fprintf(stderr, "%s: element %lld: compressed-tensors %.9g, ModelOpt %.9g\n", s->name, (long long)i, a[i], b[i]);
            fail();
        }
        cs->values++;
        cs->exact += a[i] == b[i];
        if (a[i] != b[i]) cs->max_rel = fmax(cs->max_rel, fabs((double)a[i] - b[i]) / fabs((double)a[i]));
    }
    free(a);
    free(b);
    for (int k = 0; k < QF_PLAN_MAX; k++) free(cb.data[k]), free(mb.data[k]);
}

static void test_tiny_llama_layouts(void **state)
{
    (void)state;
    qf_checkpoint *ck;
    qf_error err;
    assert_int_equal(qf_checkpoint_open("tests/data/tiny-llama", &ck, &err), QF_OK);
    const char *schemes[] = {"fp8-dynamic", "nvfp4a16", "w4a16"};
    for (int k = 0; k < 3; k++) {
        const qf_scheme *s = qf_scheme_find(schemes[k]);
        cmp_stats cs = {0};
        int n = 0;
        for (int i = 0; i < ck->n_tensors; i++) {
            const qf_tensor *t = &ck->tensors[i];
            if (t->ndim != 2 || !strstr(t->name, "layers.") || !strstr(t->name, "proj.weight")) continue;
            check_matrix(s, t->dtype, t->data, t->shape[0], t->shape[1], &cs);
            n++;
        }
        assert_true(n == 42);
        printf("%-12s %d Linear weights, %llu values: %.4f %% bit-identical, max relative difference %.3g\n", s->name, n,
               (unsigned long long)cs.values, 100.0 * (double)cs.exact / (double)cs.values, cs.max_rel);
        if (s->value != QF_VALUE_FP4_E2M1) assert_true(cs.exact == cs.values);
    }
    qf_checkpoint_free(ck);
}

static void test_awkward_values(void **state)
{
    (void)state;
    int64_t rows = 8, cols = 256;
    float *w = calloc((size_t)(rows * cols), sizeof(float));
    uint64_t x = 88172645463325252ull;
    for (int64_t i = 0; i < rows * cols; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        w[i] = ((float)(x % 2001) - 1000.0f) / 997.0f;
    }
    for (int64_t c = 0; c < 32; c++) w[c] = 0; /* zero blocks and groups */
    w[3 * cols + 77] = 3000.0f;                /* an outlier */
    w[5 * cols + 5] = -1e-30f;
    const char *schemes[] = {"fp8-dynamic", "nvfp4a16", "w4a16"};
    for (int k = 0; k < 3; k++) {
        cmp_stats cs = {0};
        check_matrix(qf_scheme_find(schemes[k]), QF_DTYPE_F32, w, rows, cols, &cs);
    }
    free(w);
}

static void test_awq_packing_by_hand(void **state)
{
    (void)state;
    /* 2 rows x 128 cols: row 0 = 7 * s0 at every column, row 1 = -8 * s1 -> q 7 and -8 */
    const qf_scheme *s = qf_scheme_find("w4a16");
    int64_t rows = 2, cols = 128;
    float w[256];
    for (int c = 0; c < 128; c++) w[c] = 7.0f, w[128 + c] = c == 0 ? -8.0f : -4.0f;
    qf_quant_plan ct, mo;
    qf_error err;
    assert_int_equal(qf_quant_plan_linear(s, rows, cols, &ct, &err), QF_OK);
    assert_int_equal(qf_modelopt_plan(s, QF_DTYPE_BF16, rows, cols, &mo, &err), QF_OK);
    assert_string_equal(mo.t[0].suffix, "weight");
    assert_int_equal(mo.t[0].dtype, QF_DTYPE_U8);
    assert_int_equal(mo.t[0].shape[0], 1);   /* out / 2 */
    assert_int_equal(mo.t[0].shape[1], 128); /* in */
    assert_int_equal(mo.t[1].dtype, QF_DTYPE_F32);
    assert_string_equal(mo.t[2].suffix, "pre_quant_scale");
    qf_quant_buffers cb = {{0}}, mb = {{0}};
    for (int k = 0; k < ct.n; k++) cb.data[k] = calloc(1, ct.t[k].nbytes);
    for (int k = 0; k < mo.n; k++) mb.data[k] = calloc(1, mo.t[k].nbytes);
    assert_int_equal(qf_quantize_rtn(s, QF_DTYPE_F32, w, rows, cols, 0, &ct, &cb, &err), QF_OK);
    assert_int_equal(qf_modelopt_relayout(s, rows, cols, &ct, &cb, &mo, &mb, &err), QF_OK);
    const uint8_t *b = mb.data[0];
    /* row 0 (low nibbles): q = 7 -> 0x7.  row 1 (high nibbles): scale = bf16(8 / 7) = 1.140625, so
     * column 0: rint(-8 / 1.140625) = -7 -> 0x9; the others: rint(-4 / 1.140625) = -4 -> 0xc */
    assert_int_equal(b[0], 0x97);
    assert_int_equal(b[1], 0xc7);
    const float *sc = mb.data[1];
    assert_true(sc[0] == 1.0f);
    assert_true(sc[1] == qf_bf16_to_f32(qf_f32_to_bf16(8.0f / 7.0f)));
    const uint16_t *pq = mb.data[2];
    for (int c = 0; c < 128; c++) assert_int_equal(pq[c], 0x3f80);
    for (int k = 0; k < QF_PLAN_MAX; k++) free(cb.data[k]), free(mb.data[k]);
}

static void test_configs_and_refusals(void **state)
{
    (void)state;
    char *ex[] = {"lm_head"};
    json_t *h = qf_modelopt_hf_quant_config(qf_scheme_find("nvfp4a16"), ex, 1);
    json_t *q = json_object_get(h, "quantization");
    assert_string_equal(json_string_value(json_object_get(json_object_get(h, "producer"), "name")), "modelopt");
    assert_string_equal(json_string_value(json_object_get(q, "quant_algo")), "NVFP4");
    assert_int_equal(json_integer_value(json_object_get(q, "group_size")), 16);
    assert_string_equal(json_string_value(json_array_get(json_object_get(q, "exclude_modules"), 0)), "lm_head");
    json_decref(h);
    json_t *c = qf_modelopt_quant_config(qf_scheme_find("fp8-dynamic"), ex, 1);
    assert_string_equal(json_string_value(json_object_get(c, "quant_method")), "modelopt");
    assert_string_equal(json_string_value(json_object_get(c, "quant_algo")), "FP8_PER_CHANNEL_PER_TOKEN");
    assert_non_null(json_object_get(json_object_get(c, "config_groups"), "group_0"));
    json_decref(c);
    c = qf_modelopt_quant_config(qf_scheme_find("w4a16"), ex, 1);
    assert_string_equal(json_string_value(json_object_get(c, "quant_algo")), "W4A16_AWQ");
    json_decref(c);
    const char *no[] = {"w4a16-asym", "mxfp4a16", "w8a8"};
    for (int k = 0; k < 3; k++) {
        qf_quant_plan p;
        qf_error err;
        assert_int_equal(qf_modelopt_plan(qf_scheme_find(no[k]), QF_DTYPE_BF16, 128, 256, &p, &err), QF_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "no ModelOpt layout"));
        assert_null(qf_modelopt_hf_quant_config(qf_scheme_find(no[k]), ex, 1));
    }
    qf_quant_plan p;
    qf_error err;
    assert_int_equal(qf_modelopt_plan(qf_scheme_find("w4a16"), QF_DTYPE_BF16, 127, 256, &p, &err), QF_ERR_UNSUPPORTED);
}

/* ---- --compare CT_DIR MO_DIR SCHEME: two artifacts of qforge convert ------------------------ */
static const qf_tensor *need(const qf_checkpoint *ck, const char *module, const char *suffix)
{
    char name[512];
    snprintf(name, sizeof name, "%s.%s", module, suffix);
    return qf_checkpoint_find(ck, name);
}

static int compare_artifacts(const char *ct_dir, const char *mo_dir, const char *scheme)
{
    const qf_scheme *s = qf_scheme_find(scheme);
    qf_checkpoint *ct, *mo;
    qf_error err;
    if (!s || qf_checkpoint_open(ct_dir, &ct, &err) || qf_checkpoint_open(mo_dir, &mo, &err)) {
        fprintf(stderr, "compare: %s\n", s ? err.msg : "unknown scheme");
        return 1;
    }
    int modules = 0, bad = 0;
    uint64_t values = 0, exact = 0;
    for (int i = 0; i < ct->n_tensors && !bad; i++) {
        const qf_tensor *sc = &ct->tensors[i];
        size_t l = strlen(sc->name);
        if (l < 13 || strcmp(sc->name + l - 13, ".weight_scale") != 0) continue;
        char module[400];
        snprintf(module, sizeof module, "%.*s", (int)(l - 13), sc->name);
        const qf_tensor *cw = need(ct, module, s->value == QF_VALUE_FP8_E4M3 ? "weight" : "weight_packed");
        const qf_tensor *mw_t = need(mo, module, "weight"), *ms = need(mo, module, "weight_scale");
        if (!cw || !mw_t || !ms) {
            fprintf(stderr, "compare: %s: tensors missing\n", module);
            bad = 1;
            break;
        }
        int64_t rows = sc->shape[0], cols = s->value == QF_VALUE_FP8_E4M3 ? cw->shape[1]
                                                : s->value == QF_VALUE_FP4_E2M1 ? cw->shape[1] * 2 : cw->shape[1] * 8;
        qf_packed_weight pw = {.scheme = s, .rows = rows, .cols = cols, .weight = cw->data, .scale = sc->data,
                               .scale_dtype = sc->dtype, .global_scale = 1.0f};
        const qf_tensor *g = need(ct, module, "weight_global_scale"), *g2 = need(mo, module, "weight_scale_2");
        if (g) memcpy(&pw.global_scale, g->data, 4);
        qf_modelopt_weight mw = {.scheme = s, .rows = rows, .cols = cols, .weight = mw_t->data, .weight_scale = ms->data,
                                 .weight_scale_2 = 1.0f};
        if (g2) memcpy(&mw.weight_scale_2, g2->data, 4);
        const qf_tensor *pq = need(mo, module, "pre_quant_scale");
        if (pq) mw.pre_quant_scale = pq->data, mw.pqs_dtype = pq->dtype;
        float *a = malloc(sizeof(float) * (size_t)cols), *b = malloc(sizeof(float) * (size_t)cols);
        for (int64_t r = 0; r < rows && !bad; r++) {
            qf_dequant_rows(&pw, r, r + 1, a);
            qf_modelopt_dequant_rows(&mw, r, r + 1, b);
            for (int64_t c = 0; c < cols; c++) {
                values++;
                exact += a[c] == b[c];
                if (!within_ulp(a[c], b[c], s->value == QF_VALUE_FP4_E2M1 ? 2 : 0)) {
                    fprintf(stderr, "compare: %s [%lld, %lld]: %.9g vs %.9g\n", module, (long long)r, (long long)c, a[c], b[c]);
                    bad = 1;
                    break;
                }
            }
        }
        free(a);
        free(b);
        modules++;
    }
    printf("compare %s: %d modules, %llu values, %llu bit-identical%s\n", scheme, modules, (unsigned long long)values,
           (unsigned long long)exact, bad ? ", MISMATCH" : "");
    qf_checkpoint_free(ct);
    qf_checkpoint_free(mo);
    return bad || modules == 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--compare") == 0) return compare_artifacts(argv[2], argv[3], argv[4]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_llama_layouts),
        cmocka_unit_test(test_awkward_values),
        cmocka_unit_test(test_awq_packing_by_hand),
        cmocka_unit_test(test_configs_and_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
