/* test_gguf_mix.c - llama.cpp's named mixes and the calibrated GGUF quantizers.
 *
 * Mixes: the per-tensor types for tiny-llama's shapes (6 layers, rows of 384 and 1024) and for
 * a Llama-2-7B-like model (32 layers, rows of 4096 / 11008), each expected type written out
 * by hand from llama.cpp's src/llama-quant.cpp (llama_tensor_get_type_impl: output.weight,
 * attn_v / ffn_down and use_more_bits; tensor_type_fallback: Q4_K -> Q5_0, Q5_K -> Q5_1,
 * Q6_K -> Q8_0, then F16), not from qforge's code; tests/bench/gguf_vs_llamacpp.sh also
 * compares against llama-quantize's own choice for tiny-llama.  Quantizers: with an importance
 * per value each block type's weighted squared error is below the reference rule's on the same
 * rows (what the importance is for); GPTQ's output error x (W - Q) H (W - Q)^T x is below the
 * importance-only rounding's for a correlated H, and W comes back as the bytes decode.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qf_gguf.h"
#include "qf_gguf_calib.h"
#include "qf_gguf_mix.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) /* uniform in [-1, 1] */
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((int64_t)(rng % 2000001) - 1000000) / 1000000.0f;
}

static int type_of(const char *mix, const char *name, int64_t cols, int n_layers, int tied, int imatrix)
{
    const qf_gguf_mix *m = qf_gguf_mix_find(mix);
    assert_non_null(m);
    qf_gguf_mix_tensor t = {name, cols, n_layers, tied, imatrix};
    return qf_gguf_mix_type(m, &t);
}

static void test_mix_names(void **state)
{
    (void)state;
    assert_non_null(qf_gguf_mix_find("Q4_K_M"));
    assert_null(qf_gguf_mix_find("q3_k_m"));
    assert_int_equal(qf_gguf_mix_find("q4_k_m")->ftype, 15); /* llama.h LLAMA_FTYPE_MOSTLY_Q4_K_M */
    assert_int_equal(qf_gguf_mix_find("q5_k_m")->ftype, 17);
    assert_int_equal(qf_gguf_mix_find("q6_k")->ftype, 18);
    assert_int_equal(qf_gguf_mix_find("q4_0")->ftype, 2);
}

/* tiny-llama: hidden 384 (q/k/v/o/gate/up/embedding/output rows), ffn 1024 (down) */
static void test_mix_tiny_llama(void **state)
{
    (void)state;
    char name[64];
    for (int l = 0; l < 6; l++) {
        int more = l == 2 || l == 5; /* use_more_bits(l, 6): l >= 5 or l % 3 == 2 */
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        assert_int_equal(type_of("q4_k_m", name, 384, 6, 0, 0), more ? QF_GGML_Q8_0 : QF_GGML_Q5_0);
        assert_int_equal(type_of("q5_k_m", name, 384, 6, 0, 0), more ? QF_GGML_Q8_0 : QF_GGML_Q5_1);
        assert_int_equal(type_of("q4_k_s", name, 384, 6, 0, 0), l < 4 ? QF_GGML_Q5_1 : QF_GGML_Q5_0);
        assert_int_equal(type_of("q4_k", name, 384, 6, 0, 0), QF_GGML_Q5_0);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        assert_int_equal(type_of("q4_k_m", name, 1024, 6, 0, 0), more ? QF_GGML_Q6_K : QF_GGML_Q4_K);
        assert_int_equal(type_of("q5_k_m", name, 1024, 6, 0, 0), more ? QF_GGML_Q6_K : QF_GGML_Q5_K);
        assert_int_equal(type_of("q4_k_s", name, 1024, 6, 0, 0), QF_GGML_Q4_K); /* l < 6/8 = 0: none */
        assert_int_equal(type_of("q4_0", name, 1024, 6, 0, 1), QF_GGML_Q4_0);
        snprintf(name, sizeof name, "blk.%d.attn_q.weight", l);
        assert_int_equal(type_of("q4_k_m", name, 384, 6, 0, 0), QF_GGML_Q5_0);
        assert_int_equal(type_of("q6_k", name, 384, 6, 0, 0), QF_GGML_Q8_0);
        snprintf(name, sizeof name, "blk.%d.ffn_gate.weight", l);
        assert_int_equal(type_of("q4_0", name, 384, 6, 0, 0), QF_GGML_Q4_0);
    }
    /* output.weight: rows of 384 fit neither Q4_K nor Q6_K: Q8_0 (also under Q4_0: Q6_K -> Q8_0) */
    assert_int_equal(type_of("q4_k_m", "output.weight", 384, 6, 0, 0), QF_GGML_Q8_0);
    assert_int_equal(type_of("q4_0", "output.weight", 384, 6, 0, 0), QF_GGML_Q8_0);
    assert_int_equal(type_of("q8_0", "output.weight", 384, 6, 0, 0), QF_GGML_Q8_0);
    assert_int_equal(type_of("q4_k", "output.weight", 384, 6, 0, 0), QF_GGML_Q5_0); /* pure */
    assert_int_equal(type_of("q4_k_m", "token_embd.weight", 384, 6, 0, 0), QF_GGML_Q5_0);
    assert_int_equal(type_of("q4_0", "token_embd.weight", 384, 6, 0, 0), QF_GGML_Q4_0);
    assert_int_equal(type_of("q4_0", "token_embd.weight", 384, 6, 1, 0), QF_GGML_Q8_0); /* tied: the output rule */
    assert_int_equal(type_of("f16", "blk.0.attn_v.weight", 384, 6, 0, 0), QF_GGML_F16);
    assert_int_equal(type_of("q4_0", "blk.0.attn_v.weight", 100, 6, 0, 0), QF_GGML_F16); /* no 32-block fits */
}

/* a 7B-like llama: 32 layers, rows of 4096 and 11008 (= 43 x 256) */
static void test_mix_32_layers(void **state)
{
    (void)state;
    char name[64];
    for (int l = 0; l < 32; l++) {
        int more = l < 4 || l >= 28 || (l - 4) % 3 == 2;
        snprintf(name, sizeof name, "blk.%d.attn_v.weight", l);
        assert_int_equal(type_of("q4_k_m", name, 4096, 32, 0, 0), more ? QF_GGML_Q6_K : QF_GGML_Q4_K);
        assert_int_equal(type_of("q4_k_s", name, 4096, 32, 0, 0), l < 4 ? QF_GGML_Q5_K : QF_GGML_Q4_K);
        snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
        assert_int_equal(type_of("q4_k_m", name, 11008, 32, 0, 0), more ? QF_GGML_Q6_K : QF_GGML_Q4_K);
        assert_int_equal(type_of("q4_k_s", name, 11008, 32, 0, 0), l < 4 ? QF_GGML_Q5_K : QF_GGML_Q4_K);
        assert_int_equal(type_of("q4_0", name, 11008, 32, 0, 1), l < 4 ? QF_GGML_Q4_1 : QF_GGML_Q4_0);
        assert_int_equal(type_of("q4_0", name, 11008, 32, 0, 0), QF_GGML_Q4_0);
        assert_int_equal(type_of("q5_0", name, 11008, 32, 0, 1), l < 4 ? QF_GGML_Q5_1 : QF_GGML_Q5_0);
    }
    assert_int_equal(type_of("q4_k_m", "output.weight", 4096, 32, 0, 0), QF_GGML_Q6_K);
    assert_int_equal(type_of("q4_0", "output.weight", 4096, 32, 0, 0), QF_GGML_Q6_K);
    assert_int_equal(type_of("q4_k_m", "token_embd.weight", 4096, 32, 0, 0), QF_GGML_Q4_K);
    assert_int_equal(type_of("q4_k_m", "token_embd.weight", 4096, 32, 1, 0), QF_GGML_Q6_K);
    assert_int_equal(type_of("q4_k_m", "blk.3.attn_output.weight", 4096, 32, 0, 0), QF_GGML_Q4_K);
}

static double weighted_err(int type, const float *x, const float *imp, int64_t n, const void *q)
{
    float y[1024];
    qf_ggml_dequantize_row(type, q, n, y);
    double e = 0;
    for (int64_t i = 0; i < n; i++) e += (double)imp[i] * (double)(y[i] - x[i]) * (double)(y[i] - x[i]);
    return e;
}

static void test_importance_lowers_weighted_error(void **state)
{
    (void)state;
    const int types[] = {QF_GGML_Q4_0, QF_GGML_Q4_1, QF_GGML_Q5_0, QF_GGML_Q5_1, QF_GGML_Q4_K, QF_GGML_Q5_K, QF_GGML_Q6_K};
    float x[1024], imp[1024];
    uint8_t a[2048], b[2048];
    for (int t = 0; t < 7; t++) {
        double e_ref = 0, e_imp = 0;
        for (int r = 0; r < 32; r++) {
            for (int i = 0; i < 1024; i++) {
                x[i] = 0.02f * frand() * (frand() > 0.9f ? 4.0f : 1.0f);
                float u = 0.5f * (frand() + 1.0f);
                imp[i] = u * u * u * u * 10.0f; /* a few inputs matter much more than the rest */
            }
            qf_ggml_quantize_row(types[t], x, 1024, a);
            qf_ggml_quantize_row_imp(types[t], x, 1024, imp, b);
            e_ref += weighted_err(types[t], x, imp, 1024, a);
            e_imp += weighted_err(types[t], x, imp, 1024, b);
        }
        print_message("%s: weighted error reference %.4g, with importance %.4g\n", qf_ggml_type_name(types[t]), e_ref, e_imp);
        assert_true(e_imp < 0.95 * e_ref);
    }
}

/* GPTQ under block rounding against importance-only rounding, on a correlated H */
static void test_gptq_lowers_output_error(void **state)
{
    (void)state;
    enum { ROWS = 16, COLS = 256, N = 2048 };
    const int types[] = {QF_GGML_Q4_0, QF_GGML_Q4_K, QF_GGML_Q6_K, QF_GGML_Q5_0};
    double *H = calloc(COLS * COLS, sizeof(double));
    float *X = malloc(sizeof(float) * N * COLS), *W = malloc(sizeof(float) * ROWS * COLS);
    float *Wg = malloc(sizeof(float) * ROWS * COLS), *Wi = malloc(sizeof(float) * ROWS * COLS), imp[COLS];
    uint8_t *bg = malloc(ROWS * 210 * 2), *bi = malloc(ROWS * 210 * 2);
    for (int t = 0; t < N; t++) { /* inputs: a shared factor plus noise, uneven column scales */
        float f = frand(), g = frand();
        for (int c = 0; c < COLS; c++)
            X[t * COLS + c] = (0.8f * f + 0.4f * (c % 2 ? g : -g) + 0.3f * frand()) * (1.0f + (float)(c % 7));
    }
    for (int i = 0; i < COLS; i++)
        for (int j = 0; j < COLS; j++) {
            double s = 0;
            for (int t = 0; t < N; t++) s += (double)X[t * COLS + i] * X[t * COLS + j];
            H[i * COLS + j] = s;
        }
    for (int k = 0; k < ROWS * COLS; k++) W[k] = 0.05f * frand();
    qf_gguf_importance(H, COLS, N, imp);
    for (int ti = 0; ti < 4; ti++) {
        const int type = types[ti];
        qf_error err = {0};
        memcpy(Wg, W, sizeof(float) * ROWS * COLS);
        memcpy(Wi, W, sizeof(float) * ROWS * COLS);
        double loss = -1;
        assert_int_equal(qf_gguf_quantize_gptq(type, Wg, ROWS, COLS, H, N, 0.01f, bg, &loss, &err), QF_OK);
        assert_int_equal(qf_gguf_quantize_imatrix(type, Wi, ROWS, COLS, imp, bi, &err), QF_OK);
        assert_true(loss >= 0);
        const uint64_t rb = qf_ggml_row_bytes(type, COLS);
        double eg = 0, ei = 0;
        float y[COLS];
        for (int r = 0; r < ROWS; r++) {
            qf_ggml_dequantize_row(type, bg + r * rb, COLS, y);
            assert_memory_equal(y, Wg + r * COLS, sizeof y); /* W is what the bytes decode to */
            for (int t = 0; t < N; t += 4) { /* output error on the calibration inputs */
                double og = 0, oi = 0;
                for (int c = 0; c < COLS; c++) {
                    og += (double)(Wg[r * COLS + c] - W[r * COLS + c]) * X[t * COLS + c];
                    oi += (double)(Wi[r * COLS + c] - W[r * COLS + c]) * X[t * COLS + c];
                }
                eg += og * og, ei += oi * oi;
            }
        }
        print_message("%s: output error gptq %.4g, importance only %.4g\n", qf_ggml_type_name(type), eg, ei);
        assert_true(eg < 0.8 * ei);
    }
    free(H), free(X), free(W), free(Wg), free(Wi), free(bg), free(bi);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mix_names),
        cmocka_unit_test(test_mix_tiny_llama),
        cmocka_unit_test(test_mix_32_layers),
        cmocka_unit_test(test_importance_lowers_weighted_error),
        cmocka_unit_test(test_gptq_lowers_output_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
