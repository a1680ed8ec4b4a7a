/* model_deltanet.c - Qwen3-Next's gated DeltaNet, the linear-attention core of its
 * linear_attention layers (qf_deltanet_core, called by qf_step_attn_core), and its gated
 * full attention's output gate (qf_attn_gate_split / qf_attn_gate_apply).
 *
 * Qwen3.5-MoE (Qwen3_5MoeGatedDeltaNet) computes the same from four separate projections:
 * in_proj_qkv (already [q | k | v]), in_proj_z, in_proj_b, in_proj_a (qf_deltanet_split_in).
 * The facts are transformers 5.23's Qwen3NextGatedDeltaNet with its torch fallbacks
 * (causal_conv1d_fn, torch_chunk_gated_delta_rule, Qwen3NextRMSNormGated).  Per token, with
 * nk key heads of dk, nv value heads of dv, r = nv / nk:
 *   in_proj_qkvz(xn) per key head g: [q_g (dk) | k_g (dk) | v (r dv) | z (r dv)]  (value heads
 *   g r .. g r + r - 1); in_proj_ba(xn) per key head g: [b (r) | a (r)]  (fix_query_key_value_ordering)
 *   [q | k | v] (2 nk dk + nv dv channels) -> causal depthwise conv1d (width lin_conv, zero
 *   history before the sample's first token) -> SiLU
 *   beta = sigmoid(b), g = -exp(A_log) softplus(a + dt_bias)   (per value head)
 *   q, k l2-normalised (rsqrt(Σx² + 1e-6)), q × dk^-1/2; value head h reads key head h / r
 *   state S (dk, dv), zero at each sample's start:  S ← S e^g;  S ← S + k (β (v - Sᵀk))ᵀ;
 *   o = Sᵀ q                      (the delta rule, one token after another)
 *   att = gnorm · rmsnorm(o) · silu(z) per value head -> out_proj's input (nv dv)
 * The reference runs the recurrence in chunks of 64 tokens (a triangular solve per chunk);
 * this file runs it token by token with the state in float64, which is the same function:
 * the two agree to float32 rounding (tests/test_model_families.c, tiny-qwen3next's 512 tokens
 * span 8 chunks).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

qf_status qf_deltanet_check(const qf_model *m, const char *path, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    if (!m->fam->deltanet) return QF_OK;
    const int64_t vd = (int64_t)c->lin_v_heads * c->lin_v_dim, qd = (int64_t)c->n_heads * c->head_dim;
    if (vd != qd) /* out_proj's input shares the attention buffers and calibration's ATTN table */
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: linear_num_value_heads x linear_value_head_dim (%lld) differs "
                       "from num_attention_heads x head_dim (%lld); the runner needs them equal", path, (long long)vd,
                       (long long)qd);
    if (c->lin_k_dim > 1024 || c->lin_v_dim > 1024)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: linear head dims %d / %d exceed the runner's 1024", path,
                       c->lin_k_dim, c->lin_v_dim);
    return QF_OK;
}

static float qf_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* torch.nn.functional.softplus (beta 1, threshold 20) */
static float qf_softplusf(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

/* x[0..d) ← x · rsqrt(Σx² + 1e-6) (transformers' l2norm, float32 result) */
static void qf_l2norm(float *x, int d)
{
    double ss = 0;
    for (int i = 0; i < d; i++) ss += (double)x[i] * x[i];
    float r = 1.0f / sqrtf((float)ss + 1e-6f);
    for (int i = 0; i < d; i++) x[i] *= r;
}

/* The delta rule of value head h over one sample of T tokens.  mix (T, cd): the conv's output
 * [q | k | v]; beta, g (T, nv); core (T, nv dv) receives o.  ws: dk dv + 2 dv doubles, qk: 2 dk
 * floats. */
static void qf_delta_head(const qf_model_config *c, int h, const float *mix, const float *beta, const float *g,
                          int64_t T, float *core, double *ws, float *qk)
{
    const int nk = c->lin_k_heads, nv = c->lin_v_heads, dk = c->lin_k_dim, dv = c->lin_v_dim, kh = h / (nv / nk);
    const int64_t kd = (int64_t)nk * dk, cd = 2 * kd + (int64_t)nv * dv;
    const float qscale = (float)pow((double)dk, -0.5); /* the reference's query * dk ** -0.5 */
    float *q = qk, *k = qk + dk;
    double *S = ws, *delta = ws + (int64_t)dk * dv, *o = delta + dv;
    memset(S, 0, (size_t)dk * (size_t)dv * sizeof(double));
    for (int64_t t = 0; t < T; t++) {
        const float *row = mix + t * cd, *v = row + 2 * kd + (int64_t)h * dv;
        memcpy(q, row + (int64_t)kh * dk, (size_t)dk * sizeof(float));
        memcpy(k, row + kd + (int64_t)kh * dk, (size_t)dk * sizeof(float));
        qf_l2norm(q, dk);
        qf_l2norm(k, dk);
        for (int i = 0; i < dk; i++) q[i] *= qscale;
        const double decay = exp((double)g[t * nv + h]), b = beta[t * nv + h];
        for (int j = 0; j < dv; j++) delta[j] = 0, o[j] = 0;
        for (int i = 0; i < dk; i++) { /* S ← S e^g; delta = Sᵀ k (the state's prediction of v) */
            double *s = S + (int64_t)i * dv;
            for (int j = 0; j < dv; j++) {
                s[j] *= decay;
                delta[j] += s[j] * k[i];
            }
        }
        for (int j = 0; j < dv; j++) delta[j] = b * ((double)v[j] - delta[j]);
        for (int i = 0; i < dk; i++) { /* S ← S + k deltaᵀ; o = Sᵀ q */
            double *s = S + (int64_t)i * dv;
            for (int j = 0; j < dv; j++) {
                s[j] += (double)k[i] * delta[j];
                o[j] += s[j] * q[i];
            }
        }
        float *out = core + t * (int64_t)nv * dv + (int64_t)h * dv;
        for (int j = 0; j < dv; j++) out[j] = (float)o[j];
    }
}

/* [q | k | v] (n, cd) -> the causal depthwise conv (each sample from a zero history), then SiLU. */
static void qf_deltanet_conv(const qf_model *m, const qf_layer *L, const float *mix, int64_t n, int64_t seqlen,
                             float *out)
{
    const qf_model_config *c = &m->cfg;
    const int K = c->lin_conv;
    const int64_t cd = 2 * (int64_t)c->lin_k_heads * c->lin_k_dim + (int64_t)c->lin_v_heads * c->lin_v_dim;
    const int off = (m->opt.ablate & QF_ABLATE_CONV) != 0;
#pragma omp parallel for schedule(static) if (n * cd >= QF_PAR_MIN / 4)
    for (int64_t t = 0; t < n; t++) {
        const int64_t tt = t % seqlen; /* position in its sample */
        for (int64_t ch = 0; ch < cd; ch++) {
            float acc = 0.0f;
            if (off) acc = mix[t * cd + ch];
            else
                for (int j = 0; j < K; j++) { /* tap j reads position tt - (K - 1) + j */
                    int64_t src = tt - (K - 1) + j;
                    if (src >= 0) acc += L->conv_w[ch * K + j] * mix[(t - tt + src) * cd + ch];
                }
            out[t * cd + ch] = acc / (1.0f + expf(-acc));
        }
    }
}

/* beta[h] = sigmoid(b), g[h] = -exp(A_log) softplus(a + dt_bias) of value head h. */
static void qf_beta_g(const qf_model *m, const qf_layer *L, int h, float b, float a, float *beta, float *g)
{
    beta[h] = m->opt.ablate & QF_ABLATE_BETA ? 1.0f : qf_sigmoidf(b);
    g[h] = m->opt.ablate & QF_ABLATE_DECAY ? 0.0f : L->neg_a[h] * qf_softplusf(a + L->dt_bias[h]);
}

/* Qwen3.5's four projections: in_proj_qkv is already [q | k | v] (n, cd), in_proj_z z (n, vd),
 * in_proj_b / in_proj_a one value per value head; ba (n, 2 nv) is work. */
static qf_status qf_deltanet_split_in(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, float *mix,
                                      float *z, float *beta, float *g, float *ba, qf_error *err)
{
    const int nv = m->cfg.lin_v_heads;
    float *a = ba + n * nv;
    QF_TRY(qf_linear_forward(&L->q, xn, n, mix, &m->observer, err));
    QF_TRY(qf_linear_forward(&L->k, xn, n, z, &m->observer, err));
    QF_TRY(qf_linear_forward(&L->v, xn, n, ba, &m->observer, err));
    QF_TRY(qf_linear_forward(&L->in_a, xn, n, a, &m->observer, err));
    for (int64_t t = 0; t < n; t++)
        for (int h = 0; h < nv; h++) qf_beta_g(m, L, h, ba[t * nv + h], a[t * nv + h], beta + t * nv, g + t * nv);
    return QF_OK;
}

/* Qwen3-Next's two projections, head-grouped (fix_query_key_value_ordering): key head gi's rows
 * of in_proj_qkvz are [q | k | v (r heads) | z (r heads)], of in_proj_ba [b (r) | a (r)];
 * qkvz (n, 2 kd + 2 vd) and ba (n, 2 nv) are work.  -> mix [q | k | v] (n, cd), z, beta, g. */
static qf_status qf_deltanet_grouped_in(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, float *qkvz,
                                        float *ba, float *mix, float *z, float *beta, float *g, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const int nk = c->lin_k_heads, nv = c->lin_v_heads, dk = c->lin_k_dim, dv = c->lin_v_dim, r = nv / nk;
    const int64_t kd = (int64_t)nk * dk, vd = (int64_t)nv * dv, cd = 2 * kd + vd, W = 2 * kd + 2 * vd;
    const int64_t grp = 2 * (int64_t)dk + 2 * (int64_t)r * dv; /* in_proj_qkvz rows per key head */
    QF_TRY(qf_linear_forward(&L->q, xn, n, qkvz, &m->observer, err));
    QF_TRY(qf_linear_forward(&L->k, xn, n, ba, &m->observer, err));
    for (int64_t t = 0; t < n; t++)
        for (int gi = 0; gi < nk; gi++) {
            const float *src = qkvz + t * W + gi * grp, *bg = ba + t * 2 * nv + (int64_t)gi * 2 * r;
            float *dst = mix + t * cd;
            memcpy(dst + (int64_t)gi * dk, src, (size_t)dk * sizeof(float));
            memcpy(dst + kd + (int64_t)gi * dk, src + dk, (size_t)dk * sizeof(float));
            memcpy(dst + 2 * kd + (int64_t)gi * r * dv, src + 2 * dk, (size_t)r * (size_t)dv * sizeof(float));
            memcpy(z + t * vd + (int64_t)gi * r * dv, src + 2 * dk + (int64_t)r * dv,
                   (size_t)r * (size_t)dv * sizeof(float));
            for (int j = 0; j < r; j++) qf_beta_g(m, L, gi * r + j, bg[j], bg[r + j], beta + t * nv, g + t * nv);
        }
    return QF_OK;
}

/* One sample of T tokens: xn (T, C) -> att (T, nv dv); the other pointers are work for T tokens. */
static qf_status qf_deltanet_sample(const qf_model *m, const qf_layer *L, const float *xn, int64_t T, float *att,
                                    float *qkvz, float *ba, float *mix, float *conv, float *z, float *core, float *beta,
                                    float *g, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const int nv = c->lin_v_heads, dk = c->lin_k_dim, dv = c->lin_v_dim;
    const int64_t vd = (int64_t)nv * dv;
    QF_TRY(m->fam->deltanet_split ? qf_deltanet_split_in(m, L, xn, T, mix, z, beta, g, ba, err)
                                  : qf_deltanet_grouped_in(m, L, xn, T, qkvz, ba, mix, z, beta, g, err));
    qf_deltanet_conv(m, L, mix, T, T, conv);
    /* the recurrence: one work item per value head */
    int failed = 0;
#pragma omp parallel
    {
        double *ws = malloc(((size_t)dk * (size_t)dv + 2 * (size_t)dv) * sizeof(double));
        float *qk = malloc(2 * (size_t)dk * sizeof(float));
        if (!ws || !qk) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int h = 0; h < nv; h++)
            if (ws && qk) qf_delta_head(c, h, conv, beta, g, T, core, ws, qk);
        free(ws);
        free(qk);
    }
    if (failed) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for the delta rule's state", L->q.name);
    /* Qwen3NextRMSNormGated per value head: gnorm · (o · rsqrt(mean(o²) + eps)) · silu(z) */
#pragma omp parallel for schedule(static) if (T * vd >= QF_PAR_MIN)
    for (int64_t row = 0; row < T * nv; row++) {
        const float *o = core + row * dv, *zz = z + row * dv;
        float *y = att + row * dv;
        double ss = 0;
        for (int j = 0; j < dv; j++) ss += (double)o[j] * o[j];
        const float rs = 1.0f / sqrtf((float)(ss / dv) + c->rms_norm_eps);
        for (int j = 0; j < dv; j++) y[j] = L->gnorm[j] * (o[j] * rs) * (zz[j] / (1.0f + expf(-zz[j])));
    }
    return QF_OK;
}

/* Sample by sample, so the work buffers (about 6 key_dim + 5 value_dim floats per token) hold
 * one sample, not a calibration chunk of them. */
qf_status qf_deltanet_core(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, int64_t seqlen,
                           float *att, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const int nk = c->lin_k_heads, nv = c->lin_v_heads, dk = c->lin_k_dim, dv = c->lin_v_dim;
    const int64_t kd = (int64_t)nk * dk, vd = (int64_t)nv * dv, cd = 2 * kd + vd, W = 2 * kd + 2 * vd;
    const int64_t T = seqlen, C = c->hidden_size;
    if (n > 0 && (seqlen <= 0 || n % seqlen))
        return qf_fail(err, QF_ERR_USAGE, "linear attention: %lld rows are not whole samples of %lld tokens",
                       (long long)n, (long long)seqlen);
    if (n <= 0) return QF_OK;
    float *qkvz = malloc((size_t)(T * W) * sizeof(float)), *ba = malloc((size_t)(T * 2 * nv) * sizeof(float));
    float *mix = malloc((size_t)(T * cd) * sizeof(float)), *conv = malloc((size_t)(T * cd) * sizeof(float));
    float *z = malloc((size_t)(T * vd) * sizeof(float)), *core = malloc((size_t)(T * vd) * sizeof(float));
    float *beta = malloc((size_t)(T * nv) * sizeof(float)), *g = malloc((size_t)(T * nv) * sizeof(float));
    qf_status st = QF_OK;
    if (!qkvz || !ba || !mix || !conv || !z || !core || !beta || !g)
        st = qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for %lld tokens", L->q.name, (long long)T);
    for (int64_t s0 = 0; !st && s0 < n; s0 += T)
        st = qf_deltanet_sample(m, L, xn + s0 * C, T, att + s0 * vd, qkvz, ba, mix, conv, z, core, beta, g, err);
    free(qkvz);
    free(ba);
    free(mix);
    free(conv);
    free(z);
    free(core);
    free(beta);
    free(g);
    return st;
}

/* ---- the gated full attention's output gate ---------------------------------------------- */
qf_status qf_attn_gate_split(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, float *q, float *gate,
                             qf_error *err)
{
    const int H = m->cfg.n_heads, D = m->cfg.head_dim;
    const int64_t qd = (int64_t)H * D;
    float *qg = malloc((size_t)(n * 2 * qd) * sizeof(float));
    if (!qg) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for %lld tokens", L->q.name, (long long)n);
    qf_status st = qf_linear_forward(&L->q, xn, n, qg, &m->observer, err);
    for (int64_t t = 0; !st && t < n; t++) /* Qwen3NextAttention: view(..., H, 2 D).chunk(2): [query | gate] per head */
        for (int h = 0; h < H; h++) {
            memcpy(q + t * qd + (int64_t)h * D, qg + t * 2 * qd + (int64_t)h * 2 * D, (size_t)D * sizeof(float));
            memcpy(gate + t * qd + (int64_t)h * D, qg + t * 2 * qd + (int64_t)h * 2 * D + D, (size_t)D * sizeof(float));
        }
    free(qg);
    return st;
}

void qf_attn_gate_apply(const qf_model *m, float *att, const float *gate, int64_t n)
{
    if (m->opt.ablate & QF_ABLATE_ATTN_GATE) return;
    const int64_t len = n * m->cfg.n_heads * m->cfg.head_dim;
#pragma omp parallel for schedule(static) if (len >= QF_PAR_MIN)
    for (int64_t i = 0; i < len; i++) att[i] *= qf_sigmoidf(gate[i]);
}
