/* model_internal.h - internal to calib/model/ and calib/eval/: the kernels the layer
 * steps (qf_layer_steps.h) are built from, and small vectorizable math.  Calibration does not
 * include it: it runs the layer through the steps only.
 *
 * qf_fast_expf is a branch-free Cephes-style exp (range reduction by ln 2 in two parts,
 * degree-6 polynomial, exponent bits built directly): relative error below 2e-7 over
 * [-87, 88], inputs clamped to that range (exp(-87) = 1.6e-38 stands in for 0, which callers
 * that need exact zeros — masked attention — write themselves).
 * qf_fast_exp8 is the same function on 8 AVX2 lanes.
 */
#ifndef QF_MODEL_INTERNAL_H
#define QF_MODEL_INTERNAL_H

#include <math.h>
#include <stdint.h>

#include "qf_error.h"
#include "qf_model.h"

static inline float qf_fast_expf(float x)
{
    if (x != x) return x; /* NaN stays NaN (a broken model must show as one); and converting it
                           * to an int below would be undefined (UBSan: shift of a negative) */
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln 2) */
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } e;
    e.i = ((int32_t)n + 127) << 23;
    return y * e.f;
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
/* The same function, 8 lanes (gcc does not vectorize the scalar one: the exponent bit cast). */
static inline __m256 qf_fast_exp8(__m256 x)
{
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.0f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}
#endif

/* Elementwise steps below this many elements run on one thread: for small models a fork /
 * join costs more than the work, and on a shared machine every barrier can wait a whole
 * scheduler time slice for a descheduled thread.  Matrix products are always parallel. */
#define QF_PAR_MIN (1 << 20)

/* x[i] = exp(x[i] - shift) for i < n; returns the sum (float64 accumulation). */
double qf_exp_shift_sum(float *x, int64_t n, float shift);

/* Row-wise RMSNorm: out[i] = w * (x[i] / sqrt(mean(x[i]^2) + eps)), rows of d (x may alias out). */
void qf_rmsnorm_rows(const float *x, const float *w, int64_t rows, int64_t d, float eps, float *out);

/* SwiGLU: g[i] = silu(g[i]) * u[i] for i < n. */
void qf_swiglu(float *g, const float *u, int64_t n);

/* The residual add: out[i] = a[i] + b[i] for i < n (out may alias a or b). */
void qf_add_rows(float *out, const float *a, const float *b, int64_t n);

/* Causal self-attention of one sequence: q (n, H*D), k / v (n, KV*D) after RoPE; out (n, H*D),
 * with layer L's mask and softmax: L->attn_window > 0: query i sees only keys i-window+1..i
 * (0 = all); L->attn_chunk > 0: only the earlier keys of its own chunk (j / chunk = i / chunk,
 * Llama 4); L->sinks (H) or NULL: GPT-OSS's per-head logit that joins the softmax's
 * denominator (a key with no value).  The one attention of the runner, called by the
 * attention step (qf_step_attn_core). */
qf_status qf_attention(const qf_model *m, const qf_layer *L, const float *q, const float *k, const float *v, int64_t n,
                       float *out, qf_error *err);

/* DeepSeek-V3's MLA attention core (model_mla.c): att (n, H * v_head_dim) from xn (n, C), n a
 * multiple of seqlen (samples at positions 0..seqlen-1); qf_step_attn_core's body for a family
 * whose row sets mla. */
qf_status qf_mla_attn_core(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, int64_t seqlen,
                           float *att, qf_error *err);

/* Apply RoPE r in place to x (n, heads*head_dim) at positions 0..n-1 (HF rotate-half over the
 * leading r->dims of each head). */
void qf_rope_apply(const qf_rope *r, int head_dim, float *x, int64_t n, int heads);

/* The FFN activation in place: g[i] = act(g[i]) * u[i] for i < n (SwiGLU or GeGLU-tanh). */
void qf_glu(qf_ffn_act act, float *g, const float *u, int64_t n);

/* logits[i] = cap · tanh(logits[i] / cap) for i < n (final logit soft-capping). */
void qf_softcap(float *x, int64_t n, float cap);

/* ---- loading (model_load.c), shared with the hybrid families' loader (model_hybrid.c) ---- */
typedef struct qf_load_ctx {
    const qf_checkpoint *ck;
    const json_t *qc; /* quantization_config or NULL */
    const qf_family *fam;
    qf_error *err;
} qf_load_ctx;

/* A float vector tensor of n elements copied to float32 (owned by *out), plus offset. */
qf_status qf_load_vec_off(const qf_checkpoint *ck, const char *name, int64_t n, float offset, float **out,
                          qf_error *err);
/* Linear `fmt...` (rows, cols) into lin, tagged with its layer and expert (-1: none);
 * with_bias: 1 required, 0 ignored, -1 taken when present (qf_linear_load). */
qf_status qf_lin(qf_load_ctx *c, qf_linear *lin, int layer, int expert, int64_t rows, int64_t cols, int with_bias,
                 const char *fmt, ...) __attribute__((format(printf, 8, 9)));
/* Every layer of a hybrid family (nemotron_h): its mixer kind from the config, its norm and
 * its one mixer's tensors under backbone.layers.N (model_hybrid.c). */
qf_status qf_load_hybrid_layers(qf_load_ctx *c, const qf_model_config *cfg, qf_layer *layers);

/* The Mamba-2 mixer of layer L on xn (n, C), n rows = n / seqlen samples of seqlen tokens
 * (fresh state each): out (n, I) = gated-RMSNorm(SSM(conv(x, B, C)), z): out_proj's input
 * (model_mamba.c).  in_proj (held in L->q) reports to the observer. */
qf_status qf_mamba_core(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, int64_t seqlen, float *out,
                        qf_error *err);

/* ---- Qwen3-Next (model_deltanet.c) ---- */
/* QF_ERR_UNSUPPORTED naming path when the family's DeltaNet shapes are beyond the runner
 * (value heads x value dim must equal heads x head_dim: they share the attention buffers). */
qf_status qf_deltanet_check(const qf_model *m, const char *path, qf_error *err);
/* The gated DeltaNet of a linear_attention layer: att (n, value_dim) = out_proj's input for
 * xn (n, C), n a multiple of seqlen (each sample from a zero state). */
qf_status qf_deltanet_core(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, int64_t seqlen,
                           float *att, qf_error *err);
/* q (n, H*D) and gate (n, H*D) from the gated q_proj (per head [query | gate]). */
qf_status qf_attn_gate_split(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, float *q, float *gate,
                             qf_error *err);
/* att (n, H*D) ×= sigmoid(gate). */
void qf_attn_gate_apply(const qf_model *m, float *att, const float *gate, int64_t n);

#endif /* QF_MODEL_INTERNAL_H */
