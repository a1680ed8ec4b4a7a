/* test_model.c - the CPU model runner (calib/model/qf_model.h, qf_linear.h, qf_matmul.h) against
 * independent references.
 *
 * Where the expected values come from:
 *   - matmul: a double-precision triple loop over random matrices, for every micro-kernel
 *     this CPU has and shapes that hit every edge (rows % MR, cols % NR, k % KC);
 *   - activation quantization: vectors computed by hand from the format definitions;
 *   - tiny-llama logits: tests/data/tiny-llama.window0.logits.safetensors, written by
 *     Hugging Face transformers (float32, H100), within 1e-3 relative L2 (fixtures README);
 *   - RoPE: llama3 / linear / default inverse frequencies recomputed here in double from the
 *     published formulas;
 *   - architectures without a fixture (qwen2 bias, a qwen2 sliding window on layer 1 only,
 *     qwen3 qk-norm and explicit head_dim, qwen2_moe shared expert, qwen3_moe, mixtral naming,
 *     llama3 rope, tied embeddings): a
 *     random-weight checkpoint is written to a temporary folder and the runner's logits are
 *     compared with a naive double-precision transformer written below from the HF modeling
 *     code (loops over tokens, no blocking, no shared code with calib/);
 *   - MoE routing on tiny-moe: finite logits, and different from forcing every token
 *     through expert 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>

#include "qf_fs.h"
#include "qf_linear.h"
#include "qf_matmul.h"
#include "qf_model.h"
#include "qf_numfmt.h"
#include "qf_safetensors.h"
#include "qf_test_util.h"

static double rel_l2(const float *a, const float *ref, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* ==== matmul ============================================================================ */
typedef struct {
    const float *w;
    int64_t k;
} mm_src;

static void mm_rows(const void *src, int64_t r0, int64_t r1, float *out)
{
    const mm_src *s = src;
    memcpy(out, s->w + r0 * s->k, (size_t)((r1 - r0) * s->k) * sizeof(float));
}

static void check_matmul(int64_t m, int64_t n, int64_t k, qf_test_rng *rng)
{
    float *x = malloc((size_t)(m * k) * sizeof(float)), *w = malloc((size_t)(n * k) * sizeof(float));
    float *y = malloc((size_t)(m * n) * sizeof(float)), *y2 = malloc((size_t)(m * n) * sizeof(float));
    float *wp = malloc((size_t)qf_pack_floats(n, k) * sizeof(float));
    float *scr = malloc((size_t)qf_gemm_scratch_floats(k) * sizeof(float));
    for (int64_t i = 0; i < m * k; i++) x[i] = qf_test_rng_uniform(rng, -1, 1);
    for (int64_t i = 0; i < n * k; i++) w[i] = qf_test_rng_uniform(rng, -1, 1);
    mm_src s = {w, k};
    assert_int_equal(qf_matmul_rows(m, n, k, x, k, mm_rows, &s, y, n, NULL), QF_OK);
    qf_gemm_nt(m, n, k, x, k, w, k, y2, n, 0, scr);
    double worst = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double ref = 0, mag = 0;
            for (int64_t kk = 0; kk < k; kk++) {
                ref += (double)x[i * k + kk] * w[j * k + kk];
                mag += fabs((double)x[i * k + kk] * w[j * k + kk]);
            }
            /* float32 accumulation of k products: error <= k * eps * Σ|x w| (loose, never hit) */
            double tol = 1e-6 * (double)k * mag / 8 + 1e-6;
            double e1 = fabs(y[i * n + j] - ref), e2 = fabs(y2[i * n + j] - ref);
            if (e1 > worst) worst = e1;
            if (e1 > tol || e2 > tol) {
                fprintf(stderr, "%s m=%lld n=%lld k=%lld at (%lld,%lld): %g %g vs %g\n", qf_matmul_kernel_name(),
                        (long long)m, (long long)n, (long long)k, (long long)i, (long long)j, y[i * n + j],
                        y2[i * n + j], ref);
                fail();
            }
        }
    /* prepacked: a prefix of rows and columns of a wider packing, accumulating into y */
    if (n > 3 && k > 5) {
        qf_pack_nt(w, k, 1, n, k, wp);
        memset(y2, 0, (size_t)(m * n) * sizeof(float));
        qf_gemm_prepacked(m, n - 3, k - 5, x, k, wp, k, y2, n, 1);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n - 3; j++) {
                double ref = 0;
                for (int64_t kk = 0; kk < k - 5; kk++) ref += (double)x[i * k + kk] * w[j * k + kk];
                assert_true(fabs(y2[i * n + j] - ref) <= 1e-6 * (double)k + 1e-6);
            }
    }
    free(x);
    free(w);
    free(y);
    free(y2);
    free(wp);
    free(scr);
}

static void test_matmul_vs_naive(void **state)
{
    (void)state;
    const char *kernels[] = {"portable", "avx2", "avx512"};
    static const int64_t shapes[][3] = {{1, 1, 1}, {5, 17, 3}, {13, 33, 257}, {37, 45, 300}, {64, 128, 64},
                                        {25, 70, 520}};
    qf_test_rng rng = qf_test_rng_init(42);
    int tested = 0;
    for (int kidx = 0; kidx < 3; kidx++) {
        if (qf_matmul_use_kernel(kernels[kidx]) != 0) continue;
        tested++;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            check_matmul(shapes[s][0], shapes[s][1], shapes[s][2], &rng);
    }
    qf_matmul_use_kernel(NULL);
    assert_true(tested >= 1);
}

/* ==== activation quantization (hand-computed) ============================================ */
static void test_act_quant_vectors(void **state)
{
    (void)state;
    /* fp8 per token: absmax 448 -> s = 1; 0.3 -> 0.3125 (E4M3 step 1/32 in [0.25, 0.5):
     * 0.28125 / 0.3125, nearer the latter); -2.7 -> -2.75 (step 0.25 in [2, 4)) */
    float a[4] = {448.0f, 1.0f, 0.3f, -2.7f};
    qf_act_quant_rows(QF_ACT_FP8_TOKEN, 0, a, 1, 4);
    assert_true(a[0] == 448.0f && a[1] == 1.0f && a[2] == 0.3125f && a[3] == -2.75f);
    /* the same row scaled by 2: s = 2, every value doubles */
    float a2[4] = {896.0f, 2.0f, 0.6f, -5.4f};
    qf_act_quant_rows(QF_ACT_FP8_TOKEN, 0, a2, 1, 4);
    assert_true(a2[0] == 896.0f && a2[1] == 2.0f && a2[2] == 0.625f && a2[3] == -5.5f);
    /* int8 per token: absmax 127 -> s = 1; round half to even: 0.5 -> 0, 1.5 -> 2, 63.5 -> 64 */
    float b[6] = {127.0f, 0.5f, -0.5f, 1.5f, 63.5f, -2.5f};
    qf_act_quant_rows(QF_ACT_INT8_TOKEN, 0, b, 1, 6);
    assert_true(b[0] == 127 && b[1] == 0 && b[2] == 0 && b[3] == 2 && b[4] == 64 && b[5] == -2);
    /* static fp8 with input_scale 0.5: 1.1 / 0.5 = 2.2 -> 2.25 -> 1.125; 1000 saturates at 448 -> 224 */
    float c[2] = {1.1f, 1000.0f};
    qf_act_quant_rows(QF_ACT_FP8_STATIC, 0.5f, c, 1, 2);
    assert_true(c[0] == 1.125f && c[1] == 224.0f);
    /* nvfp4 with G = 1: block amax 6 -> block scale e4m3(1) = 1; E2M1 ties go to the even code:
     * 0.25 -> 0, 0.75 -> 1, 2.5 -> 2, 5 -> 4, -1.25 -> -1, 1.75 -> 2, 3.5 -> 4 */
    float d[16] = {6, 0.25f, 0.75f, 2.5f, 5, -1.25f, 1.75f, 3.5f, 0, 0, 0, 0, 0, 0, 0, 0};
    const float de[16] = {6, 0, 1, 2, 4, -1, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0};
    qf_act_quant_rows(QF_ACT_NVFP4, 1.0f, d, 1, 16);
    for (int i = 0; i < 16; i++) assert_true(d[i] == de[i]);
    /* nvfp4 with G = 2 and amax 3: block scale e4m3(3 * 2 / 6) = 1, step 1 / G = 0.5 -> x exact on the
     * half grid: 3 -> 3, 0.7 -> 0.7 * 2 = 1.4 -> 1.5 -> 0.75 */
    float e[16] = {3, 0.7f};
    qf_act_quant_rows(QF_ACT_NVFP4, 2.0f, e, 1, 16);
    assert_true(e[0] == 3.0f && e[1] == 0.75f && e[2] == 0.0f);
}

/* the fast round trips equal the reference encoder + decoder of quant/qf_numfmt.h */
static void test_fast_qdq_matches_numfmt(void **state)
{
    (void)state;
    qf_test_rng rng = qf_test_rng_init(7);
    for (int i = 0; i < 2000000; i++) {
        float v;
        if (i < 1000000) { /* every scale from 2^-12 to 2^10, random mantissas and signs */
            v = ldexpf(qf_test_rng_uniform(&rng, 1.0f, 2.0f), (int)qf_test_rng_below(&rng, 23) - 12);
            if (i & 1) v = -v;
        } else if (i < 1500000) { /* exact midpoints and neighbours of E4M3 codes */
            uint8_t c = (uint8_t)qf_test_rng_below(&rng, 0x7e);
            float lo = qf_e4m3_to_f32(c), hi = qf_e4m3_to_f32((uint8_t)(c + 1)), mid = 0.5f * (lo + hi);
            int k = (int)qf_test_rng_below(&rng, 3);
            v = k == 0 ? mid : k == 1 ? nextafterf(mid, 0) : nextafterf(mid, 1000);
        } else {
            v = qf_test_rng_uniform(&rng, -500.0f, 500.0f);
        }
        float want = qf_e4m3_to_f32(qf_f32_to_e4m3(v));
        if (qf_e4m3_qdq(v) != want) fail_msg("e4m3 %.9g: %.9g != %.9g", v, qf_e4m3_qdq(v), want);
        float w2 = qf_e2m1_to_f32(qf_f32_to_e2m1(v * 0.02f));
        if (qf_e2m1_qdq(v * 0.02f) != w2) fail_msg("e2m1 %.9g", v * 0.02f);
    }
    static const float edges[] = {0.0f, -0.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, 6.0f, 7.0f, 448.0f, 464.0f,
                                  1e30f, 0.015625f, 0.0078125f, 0.001953125f, 0.0009765625f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        for (int sg = 0; sg < 2; sg++) {
            float v = sg ? -edges[i] : edges[i];
            assert_true(qf_e4m3_qdq(v) == qf_e4m3_to_f32(qf_f32_to_e4m3(v)));
            assert_true(qf_e2m1_qdq(v) == qf_e2m1_to_f32(qf_f32_to_e2m1(v)));
        }
    }
}

/* ==== tiny-llama window-0 logits ========================================================= */
static void test_tiny_llama_logits(void **state)
{
    (void)state;
    qf_error err = {0};
    qf_model *m = NULL;
    qf_checkpoint *ref = NULL;
    if (qf_model_load("tests/data/tiny-llama", NULL, &m, &err)) fail_msg("%s", err.msg);
    if (qf_checkpoint_open("tests/data/tiny-llama.window0.logits.safetensors", &ref, &err)) fail_msg("%s", err.msg);
    const qf_tensor *ids = qf_checkpoint_find(ref, "input_ids"), *lg = qf_checkpoint_find(ref, "logits");
    assert_non_null(ids);
    assert_non_null(lg);
    int64_t n = (int64_t)qf_tensor_numel(ids), V = m->vocab_out;
    assert_int_equal(n, 16);
    assert_int_equal(lg->dtype, QF_DTYPE_F32);
    assert_int_equal(qf_tensor_numel(lg), (uint64_t)(n * V));
    /* the fixture's ids are the first 16 of eval.tokens.i32 (window 0) */
    qf_mapped_file tf;
    if (qf_file_map("tests/data/eval.tokens.i32", &tf, &err)) fail_msg("%s", err.msg);
    assert_memory_equal(tf.data, ids->data, (size_t)n * 4);
    qf_file_unmap(&tf);
    float *out = malloc((size_t)(n * V) * sizeof(float));
    if (qf_model_forward(m, (const int32_t *)ids->data, n, out, &err)) fail_msg("%s", err.msg);
    double e = rel_l2(out, (const float *)lg->data, n * V);
    printf("tiny-llama window 0, 16 positions: relative L2 %.3g (limit 1e-3)\n", e);
    assert_true(e < 1e-3);
    /* per position too: no row may hide behind the others */
    for (int64_t i = 0; i < n; i++) assert_true(rel_l2(out + i * V, (const float *)lg->data + i * V, V) < 1e-3);
    /* the layer-by-layer API gives the same logits */
    float *h = malloc((size_t)(n * m->cfg.hidden_size) * sizeof(float)), *out2 = malloc((size_t)(n * V) * sizeof(float));
    assert_int_equal(qf_model_embed(m, (const int32_t *)ids->data, n, h, &err), QF_OK);
    for (int l = 0; l < m->cfg.n_layers; l++) assert_int_equal(qf_model_layer_forward(m, l, h, n, &err), QF_OK);
    assert_int_equal(qf_model_logits(m, h, n, out2, &err), QF_OK);
    assert_true(rel_l2(out2, out, n * V) < 1e-6);
    /* out-of-range id */
    int32_t bad[2] = {1, 9000};
    assert_int_equal(qf_model_forward(m, bad, 2, out, &err), QF_ERR_USAGE);
    free(h);
    free(out2);
    free(out);
    qf_checkpoint_free(ref);
    qf_model_free(m);
}

/* ==== RoPE inverse frequencies ============================================================ */
static void test_rope_inv_freq(void **state)
{
    (void)state;
    qf_model_config c;
    memset(&c, 0, sizeof c);
    c.head_dim = 128;
    c.rope_theta = 500000.0;
    c.rope_type = QF_ROPE_LLAMA3;
    c.rope_factor = 8.0f;
    c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f;
    c.rope_original_max_pos = 8192;
    float f[64];
    qf_rope_inv_freq(&c, f);
    /* Llama 3.1 rule, in double: wavelength 2π/f; > 8192/1 -> f/8; < 8192/4 -> f; else
     * s = (8192/wavelength - 1)/(4 - 1), (1 - s) f/8 + s f */
    int n_high = 0, n_low = 0, n_mid = 0;
    for (int i = 0; i < 64; i++) {
        double base = pow(500000.0, -(double)(2 * i) / 128.0), wl = 2 * M_PI / base, want;
        if (wl < 8192.0 / 4.0) want = base, n_high++;
        else if (wl > 8192.0 / 1.0) want = base / 8.0, n_low++;
        else {
            double s = (8192.0 / wl - 1.0) / 3.0;
            want = (1 - s) * base / 8.0 + s * base;
            n_mid++;
        }
        assert_true(fabs(f[i] - want) <= 2e-6 * want);
    }
    assert_true(n_high > 0 && n_low > 0 && n_mid > 0); /* every regime of the rule is exercised */
    /* known anchor: the first frequency is 1 in every scheme; with factor 8 the last is base/8 */
    assert_true(f[0] == 1.0f);
    c.rope_type = QF_ROPE_LINEAR;
    c.rope_factor = 4.0f;
    qf_rope_inv_freq(&c, f);
    for (int i = 0; i < 64; i++) assert_true(fabs(f[i] - pow(500000.0, -(2.0 * i) / 128.0) / 4.0) <= 2e-6 * f[i]);
    c.rope_type = QF_ROPE_DEFAULT;
    c.head_dim = 64;
    c.rope_theta = 10000.0;
    qf_rope_inv_freq(&c, f);
    for (int i = 0; i < 32; i++) assert_true(fabs(f[i] - pow(10000.0, -(2.0 * i) / 64.0)) <= 2e-6 * f[i]);
}

/* ==== tiny-moe routing ==================================================================== */
static void test_tiny_moe_routing(void **state)
{
    (void)state;
    qf_error err = {0};
    qf_model *m = NULL, *m0 = NULL;
    qf_model_options o;
    qf_model_options_default(&o);
    if (qf_model_load("tests/data/tiny-moe", &o, &m, &err)) fail_msg("%s", err.msg);
    o.moe_force_expert = 0;
    if (qf_model_load("tests/data/tiny-moe", &o, &m0, &err)) fail_msg("%s", err.msg);
    assert_int_equal(m->cfg.n_experts, 4);
    assert_int_equal(m->cfg.n_experts_per_tok, 2);
    assert_true(m->layers[0].is_moe);
    qf_mapped_file tf;
    if (qf_file_map("tests/data/eval.tokens.i32", &tf, &err)) fail_msg("%s", err.msg);
    const int64_t n = 96, V = m->vocab_out;
    const int32_t *ids = (const int32_t *)tf.data;
    float *a = malloc((size_t)(n * V) * sizeof(float)), *b = malloc((size_t)(n * V) * sizeof(float));
    assert_int_equal(qf_model_forward(m, ids, n, a, &err), QF_OK);
    assert_int_equal(qf_model_forward(m0, ids, n, b, &err), QF_OK);
    for (int64_t i = 0; i < n * V; i++) assert_true(isfinite(a[i]) && isfinite(b[i]));
    double d = rel_l2(b, a, n * V);
    printf("tiny-moe: routed vs all-tokens-to-expert-0 logits differ by %.3g relative L2\n", d);
    assert_true(d > 0.05);
    /* routed logits are the better model of the text: lower NLL over the 95 predictions */
    double nll_a = 0, nll_b = 0;
    for (int64_t i = 0; i + 1 < n; i++) {
        double ma = -INFINITY, mb = -INFINITY, sa = 0, sb = 0;
        for (int64_t v = 0; v < V; v++) ma = fmax(ma, a[i * V + v]), mb = fmax(mb, b[i * V + v]);
        for (int64_t v = 0; v < V; v++) sa += exp(a[i * V + v] - ma), sb += exp(b[i * V + v] - mb);
        nll_a += ma + log(sa) - a[i * V + ids[i + 1]];
        nll_b += mb + log(sb) - b[i * V + ids[i + 1]];
    }
    printf("tiny-moe: NLL/token routed %.3f, forced expert 0 %.3f\n", nll_a / 95, nll_b / 95);
    assert_true(nll_a < nll_b);
    qf_file_unmap(&tf);
    free(a);
    free(b);
    qf_model_free(m);
    qf_model_free(m0);
}

/* ==== synthetic checkpoints vs a naive double-precision transformer ======================= */
typedef struct syn_tensor {
    char name[128];
    int ndim;
    int64_t shape[2];
    float *data;
} syn_tensor;

typedef struct syn_model {
    const char *model_type;
    int hidden, layers, heads, kv, head_dim, inter, vocab;
    int explicit_head_dim, bias, qk_norm, tie;
    int experts, topk, moe_inter, shared_inter, norm_topk, mixtral;
    int llama3; /* rope_scaling llama3 with original_max_position_embeddings 64 */
    int swa;    /* qwen2 sliding window: layers >= 1 see the last swa keys (max_window_layers 1) */
    double theta;
    int n;
    syn_tensor t[512];
} syn_model;

static float *syn_add(syn_model *s, qf_test_rng *rng, float scale, int64_t r, int64_t c, const char *fmt, ...)
{
    syn_tensor *t = &s->t[s->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = c ? 2 : 1;
    t->shape[0] = r;
    t->shape[1] = c;
    int64_t numel = r * (c ? c : 1);
    t->data = malloc((size_t)numel * sizeof(float));
    for (int64_t i = 0; i < numel; i++)
        t->data[i] = scale < 0 ? 1.0f + qf_test_rng_uniform(rng, -0.2f, 0.2f) : scale * qf_test_rng_normal(rng);
    return t->data;
}

static const float *syn_get(const syn_model *s, const char *fmt, ...)
{
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->t[i].name, name)) return s->t[i].data;
    return NULL;
}

static void syn_build(syn_model *s, uint64_t seed)
{
    qf_test_rng rng = qf_test_rng_init(seed);
    int C = s->hidden, hd = s->head_dim, qd = s->heads * hd, kvd = s->kv * hd;
    float ws = 1.0f / sqrtf((float)C) * 1.5f;
    syn_add(s, &rng, 1.0f, s->vocab, C, "model.embed_tokens.weight");
    for (int l = 0; l < s->layers; l++) {
        syn_add(s, &rng, -1, C, 0, "model.layers.%d.input_layernorm.weight", l);
        syn_add(s, &rng, -1, C, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        syn_add(s, &rng, ws, qd, C, "model.layers.%d.self_attn.q_proj.weight", l);
        syn_add(s, &rng, ws, kvd, C, "model.layers.%d.self_attn.k_proj.weight", l);
        syn_add(s, &rng, ws, kvd, C, "model.layers.%d.self_attn.v_proj.weight", l);
        syn_add(s, &rng, 1.0f / sqrtf((float)qd), C, qd, "model.layers.%d.self_attn.o_proj.weight", l);
        if (s->bias) {
            syn_add(s, &rng, 0.3f, qd, 0, "model.layers.%d.self_attn.q_proj.bias", l);
            syn_add(s, &rng, 0.3f, kvd, 0, "model.layers.%d.self_attn.k_proj.bias", l);
            syn_add(s, &rng, 0.3f, kvd, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        if (s->qk_norm) {
            syn_add(s, &rng, -1, hd, 0, "model.layers.%d.self_attn.q_norm.weight", l);
            syn_add(s, &rng, -1, hd, 0, "model.layers.%d.self_attn.k_norm.weight", l);
        }
        if (!s->experts) {
            syn_add(s, &rng, ws, s->inter, C, "model.layers.%d.mlp.gate_proj.weight", l);
            syn_add(s, &rng, ws, s->inter, C, "model.layers.%d.mlp.up_proj.weight", l);
            syn_add(s, &rng, 1.0f / sqrtf((float)s->inter), C, s->inter, "model.layers.%d.mlp.down_proj.weight", l);
            continue;
        }
        const char *blk = s->mixtral ? "block_sparse_moe" : "mlp";
        int fi = s->mixtral ? s->inter : s->moe_inter;
        syn_add(s, &rng, 2.0f * ws, s->experts, C, "model.layers.%d.%s.gate.weight", l, blk);
        for (int e = 0; e < s->experts; e++) {
            syn_add(s, &rng, ws, fi, C, "model.layers.%d.%s.experts.%d.%s.weight", l, blk, e, s->mixtral ? "w1" : "gate_proj");
            syn_add(s, &rng, ws, fi, C, "model.layers.%d.%s.experts.%d.%s.weight", l, blk, e, s->mixtral ? "w3" : "up_proj");
            syn_add(s, &rng, 1.0f / sqrtf((float)fi), C, fi, "model.layers.%d.%s.experts.%d.%s.weight", l, blk, e,
                    s->mixtral ? "w2" : "down_proj");
        }
        if (s->shared_inter) {
            syn_add(s, &rng, ws, s->shared_inter, C, "model.layers.%d.mlp.shared_expert.gate_proj.weight", l);
            syn_add(s, &rng, ws, s->shared_inter, C, "model.layers.%d.mlp.shared_expert.up_proj.weight", l);
            syn_add(s, &rng, 1.0f / sqrtf((float)s->shared_inter), C, s->shared_inter,
                    "model.layers.%d.mlp.shared_expert.down_proj.weight", l);
            syn_add(s, &rng, ws, 1, C, "model.layers.%d.mlp.shared_expert_gate.weight", l);
        }
    }
    syn_add(s, &rng, -1, C, 0, "model.norm.weight");
    if (!s->tie) syn_add(s, &rng, ws, s->vocab, C, "lm_head.weight");
}

/* Write config.json and model.safetensors (F32, plus one BF16 tensor to cross dtypes),
 * leaving out the tensor named `omit` (NULL: none) and writing model_type `type`. */
static void syn_write(const syn_model *s, const char *dir, const char *omit, const char *type)
{
    json_t *c = json_object();
    json_object_set_new(c, "model_type", json_string(type ? type : s->model_type));
    json_object_set_new(c, "hidden_size", json_integer(s->hidden));
    json_object_set_new(c, "intermediate_size", json_integer(s->inter));
    json_object_set_new(c, "num_hidden_layers", json_integer(s->layers));
    json_object_set_new(c, "num_attention_heads", json_integer(s->heads));
    json_object_set_new(c, "num_key_value_heads", json_integer(s->kv));
    json_object_set_new(c, "vocab_size", json_integer(s->vocab));
    json_object_set_new(c, "rms_norm_eps", json_real(1e-6));
    json_object_set_new(c, "tie_word_embeddings", json_boolean(s->tie));
    json_object_set_new(c, "rope_theta", json_real(s->theta));
    json_object_set_new(c, "max_position_embeddings", json_integer(256)); /* RoPE table: 512 positions */
    if (s->explicit_head_dim) json_object_set_new(c, "head_dim", json_integer(s->head_dim));
    if (s->swa) {
        json_object_set_new(c, "use_sliding_window", json_true());
        json_object_set_new(c, "sliding_window", json_integer(s->swa));
        json_object_set_new(c, "max_window_layers", json_integer(1));
    }
    if (s->llama3)
        json_object_set_new(c, "rope_scaling", json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor", 8.0,
                                                         "low_freq_factor", 1.0, "high_freq_factor", 4.0,
                                                         "original_max_position_embeddings", 64));
    if (s->experts) {
        json_object_set_new(c, s->mixtral ? "num_local_experts" : "num_experts", json_integer(s->experts));
        json_object_set_new(c, "num_experts_per_tok", json_integer(s->topk));
        if (!s->mixtral) {
            json_object_set_new(c, "moe_intermediate_size", json_integer(s->moe_inter));
            json_object_set_new(c, "norm_topk_prob", json_boolean(s->norm_topk));
            if (s->shared_inter) json_object_set_new(c, "shared_expert_intermediate_size", json_integer(s->shared_inter));
        }
    }
    char *p = qf_path_join(dir, "config.json");
    assert_int_equal(json_dump_file(c, p, JSON_INDENT(1)), 0);
    free(p);
    json_decref(c);
    /* safetensors: header then the tensors back to back; the first 2-D weight as BF16 */
    json_t *h = json_object();
    uint64_t off = 0;
    int bf16_done = 0;
    int is_bf16[512] = {0};
    for (int i = 0; i < s->n; i++) {
        const syn_tensor *t = &s->t[i];
        if (omit && !strcmp(omit, t->name)) continue;
        uint64_t numel = (uint64_t)t->shape[0] * (uint64_t)(t->ndim == 2 ? t->shape[1] : 1);
        is_bf16[i] = !bf16_done && t->ndim == 2 && strstr(t->name, "q_proj");
        bf16_done |= is_bf16[i];
        uint64_t nb = numel * (is_bf16[i] ? 2 : 4);
        json_t *shape = t->ndim == 2 ? json_pack("[I, I]", (json_int_t)t->shape[0], (json_int_t)t->shape[1])
                                     : json_pack("[I]", (json_int_t)t->shape[0]);
        json_object_set_new(h, t->name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", is_bf16[i] ? "BF16" : "F32", "shape",
                                                  shape, "data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
        off += nb;
    }
    char *hs = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    uint64_t hl = strlen(hs);
    p = qf_path_join(dir, "model.safetensors");
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fwrite(&hl, 8, 1, f);
    fwrite(hs, 1, hl, f);
    for (int i = 0; i < s->n; i++) {
        const syn_tensor *t = &s->t[i];
        if (omit && !strcmp(omit, t->name)) continue;
        uint64_t numel = (uint64_t)t->shape[0] * (uint64_t)(t->ndim == 2 ? t->shape[1] : 1);
        for (uint64_t j = 0; j < numel; j++) {
            if (is_bf16[i]) {
                uint16_t b = qf_f32_to_bf16(t->data[j]);
                t->data[j] = qf_bf16_to_f32(b); /* the reference sees the stored value */
                fwrite(&b, 2, 1, f);
            } else {
                fwrite(&t->data[j], 4, 1, f);
            }
        }
    }
    fclose(f);
    free(p);
    free(hs);
}

static void syn_free(syn_model *s)
{
    for (int i = 0; i < s->n; i++) free(s->t[i].data);
    s->n = 0;
}

/* --- the naive reference (double), following transformers' modeling_llama / qwen2 / qwen3 /
 *     mixtral / qwen2_moe forward functions ------------------------------------------------ */
static void ref_linear(const double *x, int n, int in, const float *w, const float *b, int out, double *y)
{
    for (int t = 0; t < n; t++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0;
            for (int i = 0; i < in; i++) s += x[t * in + i] * w[(size_t)o * in + i];
            y[t * out + o] = s;
        }
}

static void ref_rmsnorm(double *x, int rows, int d, const float *w, double eps)
{
    for (int r = 0; r < rows; r++) {
        double ss = 0;
        for (int i = 0; i < d; i++) ss += x[r * d + i] * x[r * d + i];
        double inv = 1 / sqrt(ss / d + eps);
        for (int i = 0; i < d; i++) x[r * d + i] = w[i] * (x[r * d + i] * inv);
    }
}

static double ref_silu(double x) { return x / (1 + exp(-x)); }

static void ref_mlp(const double *x, int n, int C, int F, const float *g, const float *u, const float *dn, double *out)
{
    double *a = malloc(sizeof(double) * n * F), *b = malloc(sizeof(double) * n * F);
    ref_linear(x, n, C, g, NULL, F, a);
    ref_linear(x, n, C, u, NULL, F, b);
    for (int i = 0; i < n * F; i++) a[i] = ref_silu(a[i]) * b[i];
    ref_linear(a, n, F, dn, NULL, C, out);
    free(a);
    free(b);
}

static double ref_inv_freq(const syn_model *s, int i)
{
    double f = pow(s->theta, -(2.0 * i) / s->head_dim);
    if (!s->llama3) return f;
    double wl = 2 * M_PI / f, L = 64, lo = 1, hi = 4, factor = 8;
    if (wl < L / hi) return f;
    if (wl > L / lo) return f / factor;
    double sm = (L / wl - lo) / (hi - lo);
    return (1 - sm) * f / factor + sm * f;
}

static void ref_forward(const syn_model *s, const int32_t *ids, int n, double *logits)
{
    const int C = s->hidden, hd = s->head_dim, H = s->heads, KV = s->kv, qd = H * hd, kvd = KV * hd;
    double *h = calloc((size_t)n * C, sizeof(double)), *x = malloc(sizeof(double) * n * C);
    double *q = malloc(sizeof(double) * n * qd), *k = malloc(sizeof(double) * n * kvd), *v = malloc(sizeof(double) * n * kvd);
    double *att = malloc(sizeof(double) * n * qd), *o = malloc(sizeof(double) * n * C), *sc = malloc(sizeof(double) * n);
    const float *emb = syn_get(s, "model.embed_tokens.weight");
    for (int t = 0; t < n; t++)
        for (int c = 0; c < C; c++) h[t * C + c] = emb[(size_t)ids[t] * C + c];
    for (int l = 0; l < s->layers; l++) {
        memcpy(x, h, sizeof(double) * n * C);
        ref_rmsnorm(x, n, C, syn_get(s, "model.layers.%d.input_layernorm.weight", l), 1e-6);
        ref_linear(x, n, C, syn_get(s, "model.layers.%d.self_attn.q_proj.weight", l),
                   syn_get(s, "model.layers.%d.self_attn.q_proj.bias", l), qd, q);
        ref_linear(x, n, C, syn_get(s, "model.layers.%d.self_attn.k_proj.weight", l),
                   syn_get(s, "model.layers.%d.self_attn.k_proj.bias", l), kvd, k);
        ref_linear(x, n, C, syn_get(s, "model.layers.%d.self_attn.v_proj.weight", l),
                   syn_get(s, "model.layers.%d.self_attn.v_proj.bias", l), kvd, v);
        if (s->qk_norm) {
            ref_rmsnorm(q, n * H, hd, syn_get(s, "model.layers.%d.self_attn.q_norm.weight", l), 1e-6);
            ref_rmsnorm(k, n * KV, hd, syn_get(s, "model.layers.%d.self_attn.k_norm.weight", l), 1e-6);
        }
        /* rotate_half: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) */
        for (int t = 0; t < n; t++)
            for (int i = 0; i < hd / 2; i++) {
                double a = t * ref_inv_freq(s, i), cs = cos(a), sn = sin(a);
                for (int hh = 0; hh < H + KV; hh++) {
                    double *p = hh < H ? q + t * qd + hh * hd : k + t * kvd + (hh - H) * hd;
                    double x1 = p[i], x2 = p[i + hd / 2];
                    p[i] = x1 * cs - x2 * sn;
                    p[i + hd / 2] = x2 * cs + x1 * sn;
                }
            }
        /* transformers' sliding window (masking_utils): key j visible to query t when j > t - W */
        const int win = s->swa && l >= 1 ? s->swa : 0;
        for (int hh = 0; hh < H; hh++) {
            int g = hh / (H / KV);
            for (int t = 0; t < n; t++) {
                double mx = -INFINITY, sum = 0;
                const int j0 = win && t - win + 1 > 0 ? t - win + 1 : 0;
                for (int j = j0; j <= t; j++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++) d += q[t * qd + hh * hd + i] * k[j * kvd + g * hd + i];
                    sc[j] = d / sqrt((double)hd);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = j0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int i = 0; i < hd; i++) {
                    double a = 0;
                    for (int j = j0; j <= t; j++) a += sc[j] / sum * v[j * kvd + g * hd + i];
                    att[t * qd + hh * hd + i] = a;
                }
            }
        }
        ref_linear(att, n, qd, syn_get(s, "model.layers.%d.self_attn.o_proj.weight", l), NULL, C, o);
        for (int i = 0; i < n * C; i++) h[i] += o[i];
        memcpy(x, h, sizeof(double) * n * C);
        ref_rmsnorm(x, n, C, syn_get(s, "model.layers.%d.post_attention_layernorm.weight", l), 1e-6);
        if (!s->experts) {
            ref_mlp(x, n, C, s->inter, syn_get(s, "model.layers.%d.mlp.gate_proj.weight", l),
                    syn_get(s, "model.layers.%d.mlp.up_proj.weight", l), syn_get(s, "model.layers.%d.mlp.down_proj.weight", l), o);
            for (int i = 0; i < n * C; i++) h[i] += o[i];
            continue;
        }
        const char *blk = s->mixtral ? "block_sparse_moe" : "mlp";
        int E = s->experts, F = s->mixtral ? s->inter : s->moe_inter;
        double *rl = malloc(sizeof(double) * n * E), *y = malloc(sizeof(double) * C);
        ref_linear(x, n, C, syn_get(s, "model.layers.%d.%s.gate.weight", l, blk), NULL, E, rl);
        for (int t = 0; t < n; t++) {
            double mx = -INFINITY, sum = 0, p[64], wsum = 0;
            int sel[8];
            for (int e = 0; e < E; e++) mx = fmax(mx, rl[t * E + e]);
            for (int e = 0; e < E; e++) sum += (p[e] = exp(rl[t * E + e] - mx));
            for (int e = 0; e < E; e++) p[e] /= sum;
            for (int j = 0; j < s->topk; j++) { /* selection sort of the top k */
                int best = -1;
                for (int e = 0; e < E; e++) {
                    int used = 0;
                    for (int i = 0; i < j; i++) used |= sel[i] == e;
                    if (!used && (best < 0 || p[e] > p[best])) best = e;
                }
                sel[j] = best;
                wsum += p[best];
            }
            double *acc = o + t * C;
            memset(acc, 0, sizeof(double) * C);
            for (int j = 0; j < s->topk; j++) {
                int e = sel[j];
                double w = s->mixtral || s->norm_topk ? p[e] / wsum : p[e];
                ref_mlp(x + t * C, 1, C, F,
                        syn_get(s, "model.layers.%d.%s.experts.%d.%s.weight", l, blk, e, s->mixtral ? "w1" : "gate_proj"),
                        syn_get(s, "model.layers.%d.%s.experts.%d.%s.weight", l, blk, e, s->mixtral ? "w3" : "up_proj"),
                        syn_get(s, "model.layers.%d.%s.experts.%d.%s.weight", l, blk, e, s->mixtral ? "w2" : "down_proj"), y);
                for (int c = 0; c < C; c++) acc[c] += w * y[c];
            }
            if (s->shared_inter) {
                double gl;
                ref_mlp(x + t * C, 1, C, s->shared_inter, syn_get(s, "model.layers.%d.mlp.shared_expert.gate_proj.weight", l),
                        syn_get(s, "model.layers.%d.mlp.shared_expert.up_proj.weight", l),
                        syn_get(s, "model.layers.%d.mlp.shared_expert.down_proj.weight", l), y);
                ref_linear(x + t * C, 1, C, syn_get(s, "model.layers.%d.mlp.shared_expert_gate.weight", l), NULL, 1, &gl);
                for (int c = 0; c < C; c++) acc[c] += y[c] / (1 + exp(-gl));
            }
        }
        for (int i = 0; i < n * C; i++) h[i] += o[i];
        free(rl);
        free(y);
    }
    ref_rmsnorm(h, n, C, syn_get(s, "model.norm.weight"), 1e-6);
    ref_linear(h, n, C, s->tie ? emb : syn_get(s, "lm_head.weight"), NULL, s->vocab, logits);
    free(h);
    free(x);
    free(q);
    free(k);
    free(v);
    free(att);
    free(o);
    free(sc);
}

typedef struct obs_count {
    int calls, expert_calls, bad_width;
    int64_t expert_tokens;
} obs_count;

static qf_status obs_fn(void *user, const qf_linear *lin, const float *x, int64_t m, qf_error *err)
{
    (void)err;
    obs_count *c = user;
    c->calls++;
    if (lin->cols <= 0 || !x || m <= 0) c->bad_width++;
    if (lin->expert >= 0) {
        c->expert_calls++;
        const char *d = strrchr(lin->name, '.');
        if (!strcmp(d, ".gate_proj") || !strcmp(d, ".w1")) c->expert_tokens += m;
    }
    return QF_OK;
}

static void check_synthetic(syn_model *s, uint64_t seed)
{
    char dir[] = "/tmp/qf_test_model_XXXXXX";
    assert_non_null(mkdtemp(dir));
    syn_build(s, seed);
    syn_write(s, dir, NULL, NULL);
    qf_error err = {0};
    qf_model *m = NULL;
    if (qf_model_load(dir, NULL, &m, &err)) fail_msg("%s: %s", s->model_type, err.msg);
    /* 70 crosses attention's 48-row blocks; the llama case runs 530 positions, past the
     * 512-position RoPE table (computed on the fly beyond it) */
    const int n = s->llama3 ? 530 : 70;
    int32_t ids[530];
    qf_test_rng rng = qf_test_rng_init(seed + 1);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)qf_test_rng_below(&rng, (uint64_t)s->vocab);
    float *got = malloc(sizeof(float) * n * s->vocab);
    double *want = malloc(sizeof(double) * n * s->vocab);
    if (qf_model_forward(m, ids, n, got, &err)) fail_msg("%s: %s", s->model_type, err.msg);
    ref_forward(s, ids, n, want);
    double num = 0, den = 0;
    for (int i = 0; i < n * s->vocab; i++) {
        num += (got[i] - want[i]) * (got[i] - want[i]);
        den += want[i] * want[i];
    }
    double e = sqrt(num / den);
    printf("synthetic %-9s%s%s%s%s%s: logits relative L2 vs naive double reference %.3g\n", s->model_type,
           s->bias ? " +qkv-bias" : "", s->qk_norm ? " +qk-norm" : "", s->shared_inter ? " +shared-expert" : "",
           s->llama3 ? " +llama3-rope +tied" : "", s->swa ? " +sliding-window (layer 1)" : "", e);
    for (int l = 0; l < s->layers; l++) assert_int_equal(m->layers[l].attn_window, s->swa && l >= 1 ? s->swa : 0);
    assert_true(e < 1e-4);
    /* the observer sees every Linear's input: its width, and for experts the routed tokens
     * (each token reaches top-k experts in each MoE layer) */
    obs_count oc = {0};
    m->observer.fn = obs_fn;
    m->observer.user = &oc;
    if (qf_model_forward(m, ids, n, got, &err)) fail_msg("%s", err.msg);
    assert_int_equal(oc.bad_width, 0);
    assert_int_equal(oc.calls, qf_model_linears(m, NULL, 0) - (s->experts ? (3 * s->experts * s->layers) : 0) +
                                   oc.expert_calls);
    if (s->experts) assert_int_equal(oc.expert_tokens, (int64_t)n * s->topk * s->layers);
    free(got);
    free(want);
    qf_model_free(m);
    qf_remove_tree(dir);
    syn_free(s);
}

static syn_model *syn_new(const char *type)
{
    syn_model *s = calloc(1, sizeof *s);
    s->model_type = type;
    s->hidden = 64;
    s->layers = 2;
    s->heads = 4;
    s->kv = 2;
    s->head_dim = 16;
    s->inter = 96;
    s->vocab = 50;
    s->theta = 10000.0;
    return s;
}

static void test_synthetic_architectures(void **state)
{
    (void)state;
    syn_model *s = syn_new("llama");
    s->llama3 = 1;
    s->tie = 1;
    check_synthetic(s, 1);
    free(s);
    s = syn_new("qwen2");
    s->bias = 1;
    s->theta = 1e6;
    check_synthetic(s, 2);
    free(s);
    s = syn_new("qwen2"); /* layer 0 full, layer 1 a 20-key window; 70 positions cross both */
    s->bias = 1;
    s->swa = 20;
    check_synthetic(s, 7);
    free(s);
    s = syn_new("qwen3");
    s->qk_norm = 1;
    s->head_dim = 32; /* explicit head_dim: heads * head_dim (128) != hidden (64) */
    s->explicit_head_dim = 1;
    check_synthetic(s, 3);
    free(s);
    s = syn_new("mixtral");
    s->experts = 4;
    s->topk = 2;
    s->mixtral = 1;
    check_synthetic(s, 4);
    free(s);
    s = syn_new("qwen2_moe");
    s->bias = 1;
    s->experts = 6;
    s->topk = 3;
    s->moe_inter = 40;
    s->shared_inter = 80;
    s->norm_topk = 0;
    check_synthetic(s, 5);
    free(s);
    s = syn_new("qwen3_moe");
    s->qk_norm = 1;
    s->experts = 5;
    s->topk = 2;
    s->moe_inter = 48;
    s->norm_topk = 1;
    check_synthetic(s, 6);
    free(s);
}

/* ==== loader errors name the thing ========================================================= */
static void test_load_errors(void **state)
{
    (void)state;
    char dir[] = "/tmp/qf_test_model_XXXXXX";
    assert_non_null(mkdtemp(dir));
    syn_model *s = syn_new("llama");
    syn_build(s, 9);
    qf_error err = {0};
    qf_model *m = NULL;
    syn_write(s, dir, "model.layers.1.mlp.down_proj.weight", NULL);
    assert_int_equal(qf_model_load(dir, NULL, &m, &err), QF_ERR_FORMAT);
    assert_null(m);
    assert_non_null(strstr(err.msg, "model.layers.1.mlp.down_proj.weight"));
    syn_write(s, dir, NULL, "gpt2");
    assert_int_equal(qf_model_load(dir, NULL, &m, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "gpt2"));
    assert_non_null(strstr(err.msg, "llama, mistral, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe"));
    assert_int_equal(qf_model_load("/nonexistent/qf", NULL, &m, &err), QF_ERR_IO);
    syn_free(s);
    free(s);
    qf_remove_tree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_vs_naive),        cmocka_unit_test(test_act_quant_vectors),
        cmocka_unit_test(test_fast_qdq_matches_numfmt),
        cmocka_unit_test(test_tiny_llama_logits),      cmocka_unit_test(test_rope_inv_freq),
        cmocka_unit_test(test_tiny_moe_routing),       cmocka_unit_test(test_synthetic_architectures),
        cmocka_unit_test(test_load_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
