/* test_rotate.c - rotation matrices (quant/qf_rotate.h) and their folding into a model
 * (calib/calibrate/qf_rotate_model.h).
 *
 *   - every matrix is orthogonal to float64 rounding, Hadamard ones have entries +-1/sqrt(n),
 *     a seed means one matrix, an order with no Hadamard construction is refused;
 *   - the block products equal a float64 reference product;
 *   - the rotated float model computes the same logits as the original: tiny-llama (R1 over
 *     hidden 384 = Paley 12 x Sylvester 32, GQA for R2), tiny-moe (router and experts),
 *     tiny-yarn (qwen2: q/k/v bias), each with both kinds; tiny-tied (a tied embedding under a
 *     non-unit final norm) is refused with its reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"
#include "qf_model.h"
#include "qf_rotate.h"
#include "qf_rotate_model.h"
#include "qf_test_util.h"

static double orth_error(const double *Q, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            double d = 0;
            for (int64_t k = 0; k < n; k++) d += Q[k * n + i] * Q[k * n + j];
            d -= i == j;
            worst = fabs(d) > worst ? fabs(d) : worst;
        }
    return worst;
}

static void test_matrices(void **state)
{
    (void)state;
    const int64_t had[] = {1, 2, 12, 20, 64, 96, 384, 448};
    for (size_t t = 0; t < sizeof had / sizeof *had; t++) {
        const int64_t n = had[t];
        double *Q = malloc(sizeof(double) * (size_t)(n * n)), *Q2 = malloc(sizeof(double) * (size_t)(n * n));
        assert_int_equal(qf_rotate_hadamard_order(n), 1);
        QF_TEST_OK(qf_rotate_matrix(QF_ROTATE_HADAMARD, n, 7, Q, &err_));
        assert_true(orth_error(Q, n) < 1e-12);
        for (int64_t i = 0; i < n * n; i++) assert_true(fabs(fabs(Q[i]) * sqrt((double)n) - 1) < 1e-12);
        QF_TEST_OK(qf_rotate_matrix(QF_ROTATE_HADAMARD, n, 7, Q2, &err_));
        assert_memory_equal(Q, Q2, sizeof(double) * (size_t)(n * n));
        if (n >= 12) { /* another seed, other signs */
            QF_TEST_OK(qf_rotate_matrix(QF_ROTATE_HADAMARD, n, 8, Q2, &err_));
            assert_memory_not_equal(Q, Q2, sizeof(double) * (size_t)(n * n));
        }
        free(Q), free(Q2);
    }
    const int64_t orth[] = {1, 3, 7, 64, 384};
    for (size_t t = 0; t < sizeof orth / sizeof *orth; t++) {
        const int64_t n = orth[t];
        double *Q = malloc(sizeof(double) * (size_t)(n * n)), *Q2 = malloc(sizeof(double) * (size_t)(n * n));
        QF_TEST_OK(qf_rotate_matrix(QF_ROTATE_ORTHOGONAL, n, 11, Q, &err_));
        assert_true(orth_error(Q, n) < 1e-12);
        QF_TEST_OK(qf_rotate_matrix(QF_ROTATE_ORTHOGONAL, n, 11, Q2, &err_));
        assert_memory_equal(Q, Q2, sizeof(double) * (size_t)(n * n));
        free(Q), free(Q2);
    }
    /* 6 = 2 x 3 and 3 - 1 is not prime = 3 mod 4: no construction here */
    const int64_t none[] = {3, 6, 10, 36};
    for (size_t t = 0; t < sizeof none / sizeof *none; t++) {
        double Q[36 * 36];
        qf_error err = {0};
        assert_int_equal(qf_rotate_hadamard_order(none[t]), 0);
        assert_int_equal(qf_rotate_matrix(QF_ROTATE_HADAMARD, none[t], 1, Q, &err), QF_ERR_UNSUPPORTED);
        assert_non_null(strstr(err.msg, "--rotate orthogonal"));
    }
    assert_int_equal(qf_rotate_kind_from_name("hadamard"), QF_ROTATE_HADAMARD);
    assert_int_equal(qf_rotate_kind_from_name("orthogonal"), QF_ROTATE_ORTHOGONAL);
    assert_int_equal(qf_rotate_kind_from_name("none"), QF_ROTATE_NONE);
    assert_int_equal(qf_rotate_kind_from_name("givens"), -1);
}

/* W [rows, cols] rotated on both sides by block-diagonal Q, against float64 loops. */
static void test_apply(void **state)
{
    (void)state;
    const int64_t rows = 24, cols = 36, n = 12;
    double Qd[12 * 12];
    float Q[12 * 12], W[24 * 36], V[24 * 36];
    QF_TEST_OK(qf_rotate_matrix(QF_ROTATE_HADAMARD, n, 3, Qd, &err_));
    for (int i = 0; i < n * n; i++) Q[i] = (float)Qd[i];
    qf_test_rng r = qf_test_rng_init(5);
    for (int i = 0; i < rows * cols; i++) W[i] = V[i] = qf_test_rng_uniform(&r, -1, 1);
    QF_TEST_OK(qf_rotate_apply(V, rows, cols, Q, n, QF_ROTATE_COLS, &err_));
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double e = 0;
            const int64_t b = j / n * n;
            for (int64_t k = 0; k < n; k++) e += (double)W[i * cols + b + k] * Q[k * n + j % n];
            assert_true(fabs(e - V[i * cols + j]) < 1e-5);
        }
    memcpy(V, W, sizeof V);
    QF_TEST_OK(qf_rotate_apply(V, rows, cols, Q, n, QF_ROTATE_ROWS, &err_));
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            double e = 0;
            const int64_t b = i / n * n;
            for (int64_t k = 0; k < n; k++) e += (double)Q[k * n + i % n] * W[(b + k) * cols + j];
            assert_true(fabs(e - V[i * cols + j]) < 1e-5);
        }
    qf_error err = {0};
    assert_int_equal(qf_rotate_apply(V, rows, 30, Q, n, QF_ROTATE_COLS, &err), QF_ERR_USAGE);
}

/* ---- the rotated model ---------------------------------------------------------------------- */
typedef struct {
    float **buf;
    int n;
} owned;

static float *own(owned *o, int64_t n)
{
    o->buf = realloc(o->buf, sizeof(float *) * (size_t)(o->n + 1));
    return o->buf[o->n++] = malloc(sizeof(float) * (size_t)(n ? n : 1));
}

static void floatify(owned *o, qf_linear *lin)
{
    float *w = own(o, lin->rows * lin->cols);
    qf_linear_weight_rows(lin, 0, lin->rows, w);
    lin->weight = w;
    lin->wdtype = QF_DTYPE_F32;
}

/* The whole model rotated in place, float32 throughout (so only float rounding separates it
 * from the original). */
static void rotate_model(qf_model *m, qf_rotate_kind kind, int64_t block, owned *o)
{
    qf_rotation R;
    QF_TEST_OK(qf_rotation_init(&R, m, kind, 42, block, &err_));
    qf_linear **all = malloc(sizeof *all * 4096);
    const int nl = qf_model_linears(m, all, 4096);
    float *lm = own(o, m->vocab_out * m->cfg.hidden_size), *emb = own(o, m->vocab_in * m->cfg.hidden_size);
    QF_TEST_OK(qf_rotate_lm_head(&R, m, QF_DTYPE_F32, lm, &err_));
    QF_TEST_OK(qf_rotate_embedding(&R, m, QF_DTYPE_F32, emb, &err_));
    for (int i = 0; i < nl; i++)
        if (all[i] != &m->lm_head) floatify(o, all[i]);
    for (int l = 0; l < m->cfg.n_layers; l++) QF_TEST_OK(qf_rotate_layer(&R, m, &m->layers[l], &err_));
    m->embed = emb, m->embed_dtype = QF_DTYPE_F32;
    m->lm_head.weight = lm, m->lm_head.wdtype = QF_DTYPE_F32;
    for (int64_t j = 0; j < m->cfg.hidden_size; j++) m->final_norm[j] = 1.0f;
    free(all);
    qf_rotation_free(&R);
}

static void check_equivalent(const char *dir, qf_rotate_kind kind, int64_t block)
{
    qf_error err = {0};
    qf_model *a = NULL, *b = NULL;
    if (qf_model_load(dir, NULL, &a, &err) || qf_model_load(dir, NULL, &b, &err)) fail_msg("%s", err.msg);
    qf_mapped_file tf;
    if (qf_file_map("tests/data/eval.tokens.i32", &tf, &err)) fail_msg("%s", err.msg);
    const int64_t n = 48, V = a->vocab_out;
    float *la = malloc(sizeof(float) * (size_t)(n * V)), *lb = malloc(sizeof(float) * (size_t)(n * V));
    QF_TEST_OK(qf_model_forward(a, (const int32_t *)tf.data, n, la, &err_));
    owned o = {0};
    rotate_model(b, kind, block, &o);
    QF_TEST_OK(qf_model_forward(b, (const int32_t *)tf.data, n, lb, &err_));
    double num = 0, den = 0, worst = 0, amax = 0;
    for (int64_t i = 0; i < n * V; i++) {
        const double d = (double)la[i] - lb[i];
        num += d * d, den += (double)la[i] * la[i];
        worst = fabs(d) > worst ? fabs(d) : worst;
        amax = fabs(la[i]) > amax ? fabs(la[i]) : amax;
    }
    printf("%s, %s, block %lld: logits relative L2 %.3g, max |diff| / max |logit| %.3g\n", dir,
           qf_rotate_kind_name(kind), (long long)block, sqrt(num / den), worst / amax);
    assert_true(sqrt(num / den) < 1e-4);
    assert_true(worst / amax < 1e-4);
    qf_file_unmap(&tf);
    free(la), free(lb);
    qf_model_free(a);
    qf_model_free(b);
    for (int i = 0; i < o.n; i++) free(o.buf[i]);
    free(o.buf);
}

static void test_equivalent_llama(void **state)
{
    (void)state;
    check_equivalent("tests/data/tiny-llama", QF_ROTATE_HADAMARD, 0);
    check_equivalent("tests/data/tiny-llama", QF_ROTATE_ORTHOGONAL, 0);
    check_equivalent("tests/data/tiny-llama", QF_ROTATE_HADAMARD, 16); /* block-diagonal, R2 in blocks too */
    check_equivalent("tests/data/tiny-llama", QF_ROTATE_HADAMARD, 128); /* R2 over the whole head (128 > 64) */
}

static void test_equivalent_moe_bias(void **state)
{
    (void)state;
    check_equivalent("tests/data/tiny-moe", QF_ROTATE_HADAMARD, 0);
    check_equivalent("tests/data/tiny-yarn", QF_ROTATE_ORTHOGONAL, 0);
}

static void test_refused(void **state)
{
    (void)state;
    qf_error err = {0};
    qf_model *m = NULL;
    if (qf_model_load("tests/data/tiny-tied", NULL, &m, &err)) fail_msg("%s", err.msg);
    qf_rotation R;
    assert_int_equal(qf_rotation_init(&R, m, QF_ROTATE_HADAMARD, 0, 0, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "tied embeddings"));
    assert_null(strchr(err.msg, '\n'));
    /* with a final norm of ones the tied embedding is rotated once and serves both */
    for (int64_t j = 0; j < m->cfg.hidden_size; j++) m->final_norm[j] = 1.0f;
    QF_TEST_OK(qf_rotation_init(&R, m, QF_ROTATE_HADAMARD, 0, 0, &err_));
    qf_rotation_free(&R);
    /* a block must divide the hidden size (128) */
    assert_int_equal(qf_rotation_init(&R, m, QF_ROTATE_HADAMARD, 0, 48, &err), QF_ERR_USAGE);
    assert_non_null(strstr(err.msg, "does not divide"));
    qf_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matrices),         cmocka_unit_test(test_apply),
        cmocka_unit_test(test_equivalent_llama), cmocka_unit_test(test_equivalent_moe_bias),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
