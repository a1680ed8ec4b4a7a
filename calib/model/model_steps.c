/* model_steps.c - the decoder layer's steps: norms, attention block, dense FFN (see
 * qf_layer_steps.h; the MoE block is model_moe.c).
 *
 * Each step is the only implementation of its math: validate composes them over a whole
 * sequence, calibration calls them over chunks of samples, on the quantized layer and on its
 * float twin.  Variants are chosen here from the layer, the config and the family row
 * (qf_family), never by the caller: qk-norm when the layer has q_norm / k_norm (qwen3,
 * gemma3), q/k/v bias inside the Linears (qwen2), fused qkv_proj / gate_up_proj (phi3), the
 * layer's sliding window and RoPE tables (model_rope.c: scaling, partial rotary, Gemma's
 * local base), Gemma's post-norms before each residual add, the FFN activation, Qwen3-Next's
 * output gate and DeltaNet layers (model_deltanet.c).
 * (1 + w) norms need nothing here: the loader stores 1 + w.
 */
#include <stdlib.h>
#include <string.h>

#include "model_gptoss.h"
#include "model_internal.h"
#include "model_llama4.h"
#include "qf_layer_steps.h"

void qf_step_attn_norm(const qf_model *m, const qf_layer *L, const float *h, int64_t n, float *xn)
{
    qf_rmsnorm_rows(h, L->attn_norm, n, m->cfg.hidden_size, m->cfg.rms_norm_eps, xn);
}

void qf_step_ffn_norm(const qf_model *m, const qf_layer *L, const float *h, int64_t n, float *xn)
{
    qf_rmsnorm_rows(h, L->ffn_norm, n, m->cfg.hidden_size, m->cfg.rms_norm_eps, xn);
}

static qf_status qf_attn_core_qkv(const qf_model *m, const qf_layer *L, int64_t n, int64_t seqlen, float *q, float *k,
                                  float *v, float *att, qf_error *err);

qf_status qf_step_attn_core(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, int64_t seqlen,
                            float *q, float *k, float *v, float *att, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const qf_linear_observer *obs = &m->observer;
    const int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    if (n > 0 && (seqlen <= 0 || n % seqlen))
        return qf_fail(err, QF_ERR_USAGE, "attention: %lld rows are not whole samples of %lld tokens", (long long)n,
                       (long long)seqlen);
    if (L->mixer == QF_MIXER_MAMBA) return qf_mamba_core(m, L, xn, n, seqlen, att, err); /* nemotron_h */
    if (L->linear_attn) return qf_deltanet_core(m, L, xn, n, seqlen, att, err); /* qwen3_next (model_deltanet.c) */
    if (m->fam->attn_gate) { /* qwen3_next: q_proj gives the query and the output gate; per sample,
                              * so the gate's buffers hold one sample, not a calibration chunk */
        const int64_t C = c->hidden_size;
        float *gate = malloc((size_t)(seqlen * qd) * sizeof(float));
        if (!gate)
            return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for %lld tokens", L->q.name, (long long)seqlen);
        qf_status st = QF_OK;
        for (int64_t off = 0; !st && off < n; off += seqlen) {
            st = qf_attn_gate_split(m, L, xn + off * C, seqlen, q + off * qd, gate, err);
            if (!st) st = qf_linear_forward(&L->k, xn + off * C, seqlen, k + off * kvd, obs, err);
            if (!st) st = qf_linear_forward(&L->v, xn + off * C, seqlen, v + off * kvd, obs, err);
            if (!st)
                st = qf_attn_core_qkv(m, L, seqlen, seqlen, q + off * qd, k + off * kvd, v + off * kvd, att + off * qd,
                                      err);
            if (!st) qf_attn_gate_apply(m, att + off * qd, gate, seqlen);
        }
        free(gate);
        return st;
    }
    if (m->fam->mla) return qf_mla_attn_core(m, L, xn, n, seqlen, att, err); /* DeepSeek-V3: model_mla.c */
    if (m->fam->fused_qkv) { /* phi3: one product, its rows split into q | k | v */
        const int64_t w = qd + 2 * kvd;
        float *qkv = malloc((size_t)(n * w) * sizeof(float));
        if (!qkv) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for %lld tokens", L->q.name, (long long)n);
        qf_status st = qf_linear_forward(&L->q, xn, n, qkv, obs, err);
        for (int64_t t = 0; !st && t < n; t++) {
            memcpy(q + t * qd, qkv + t * w, (size_t)qd * sizeof(float));
            memcpy(k + t * kvd, qkv + t * w + qd, (size_t)kvd * sizeof(float));
            memcpy(v + t * kvd, qkv + t * w + qd + kvd, (size_t)kvd * sizeof(float));
        }
        free(qkv);
        QF_TRY(st);
    } else {
        QF_TRY(qf_linear_forward(&L->q, xn, n, q, obs, err));
        QF_TRY(qf_linear_forward(&L->k, xn, n, k, obs, err));
        QF_TRY(qf_linear_forward(&L->v, xn, n, v, obs, err));
    }
    return qf_attn_core_qkv(m, L, n, seqlen, q, k, v, att, err);
}

/* The attention core after the projections: qk-norm, RoPE and causal attention per sample. */
static qf_status qf_attn_core_qkv(const qf_model *m, const qf_layer *L, int64_t n, int64_t seqlen, float *q, float *k,
                                  float *v, float *att, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    if (L->q_norm) { /* qwen3, gemma3: per-head RMSNorm of q and k before RoPE */
        qf_rmsnorm_rows(q, L->q_norm, n * c->n_heads, c->head_dim, c->rms_norm_eps, q);
        qf_rmsnorm_rows(k, L->k_norm, n * c->n_kv_heads, c->head_dim, c->rms_norm_eps, k);
    }
    for (int64_t off = 0; off < n; off += seqlen) { /* each sample is its own sequence: positions 0..seqlen-1 */
        if (L->rope && !m->fam->nope) { /* Llama 4's NoPE layers, nemotron_h's attention: none */
            qf_rope_apply(L->rope, c->head_dim, q + off * qd, seqlen, c->n_heads);
            qf_rope_apply(L->rope, c->head_dim, k + off * kvd, seqlen, c->n_kv_heads);
        }
        if (m->fam->llama4_attention) qf_llama4_qk(m, L, q + off * qd, k + off * kvd, seqlen);
        QF_TRY(qf_attention(m, L, q + off * qd, k + off * kvd, v + off * kvd, seqlen, att + off * qd, err));
    }
    return QF_OK;
}

qf_status qf_step_attn_out(const qf_model *m, const qf_layer *L, const float *att, int64_t n, const float *h,
                           float *h1, float *tmp, qf_error *err)
{
    QF_TRY(qf_linear_forward(&L->o, att, n, tmp, &m->observer, err));
    if (L->post_attn_norm) /* gemma3: the attention output is normed before the residual add */
        qf_rmsnorm_rows(tmp, L->post_attn_norm, n, m->cfg.hidden_size, m->cfg.rms_norm_eps, tmp);
    qf_add_rows(h1, h, tmp, n * m->cfg.hidden_size);
    return QF_OK;
}

/* gate, up, down of FFN ffn (QF_FFN_DENSE, QF_FFN_SHARED or an expert index). */
static const qf_linear *qf_ffn_linear(const qf_layer *L, int ffn, int which)
{
    if (ffn >= 0) return &L->experts[3 * ffn + which];
    const qf_linear *dense[3] = {&L->gate, &L->up, &L->down}, *shared[3] = {&L->sh_gate, &L->sh_up, &L->sh_down};
    return ffn == QF_FFN_SHARED ? shared[which] : dense[which];
}

qf_status qf_step_ffn_act(const qf_model *m, const qf_layer *L, int ffn, const float *xn, int64_t n, float *g,
                          float *u, qf_error *err)
{
    const qf_linear *gate = qf_ffn_linear(L, ffn, 0);
    if (!gate->kind) { /* nemotron_h: ungated, g = relu(up(xn))^2 */
        const qf_linear *up = qf_ffn_linear(L, ffn, 1);
        QF_TRY(qf_linear_forward(up, xn, n, g, &m->observer, err));
        for (int64_t i = 0; i < n * up->rows; i++) g[i] = g[i] > 0.0f ? g[i] * g[i] : 0.0f;
        return QF_OK;
    }
    if (ffn == QF_FFN_DENSE && m->fam->fused_gate_up) { /* phi3: [gate | up] = gate_up(xn), gate first */
        const int64_t F = gate->rows / 2;
        float *gu = malloc((size_t)(n * 2 * F) * sizeof(float));
        if (!gu) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for %lld tokens", gate->name, (long long)n);
        qf_status st = qf_linear_forward(gate, xn, n, gu, &m->observer, err);
        for (int64_t t = 0; !st && t < n; t++) {
            memcpy(g + t * F, gu + t * 2 * F, (size_t)F * sizeof(float));
            memcpy(u + t * F, gu + t * 2 * F + F, (size_t)F * sizeof(float));
        }
        free(gu);
        QF_TRY(st);
        qf_glu(m->cfg.hidden_act, g, u, n * F);
        return QF_OK;
    }
    QF_TRY(qf_linear_forward(gate, xn, n, g, &m->observer, err));
    QF_TRY(qf_linear_forward(qf_ffn_linear(L, ffn, 1), xn, n, u, &m->observer, err));
    if (m->fam->clamped_swiglu) /* gpt_oss */
        qf_swiglu_clamped(g, u, n * gate->rows, (float)m->cfg.swiglu_alpha, (float)m->cfg.swiglu_limit);
    else
        qf_glu(m->cfg.hidden_act, g, u, n * gate->rows);
    return QF_OK;
}

qf_status qf_step_ffn_out(const qf_model *m, const qf_layer *L, int ffn, const float *g, int64_t n, const float *h,
                          float *out, float *tmp, qf_error *err)
{
    const qf_linear *down = qf_ffn_linear(L, ffn, 2);
    const float *post = ffn == QF_FFN_DENSE ? L->post_ffn_norm : NULL; /* gemma3: normed before the add */
    const int64_t C = m->cfg.hidden_size;
    if (!h) {
        QF_TRY(qf_linear_forward(down, g, n, out, &m->observer, err));
        if (post) qf_rmsnorm_rows(out, post, n, C, m->cfg.rms_norm_eps, out);
        return QF_OK;
    }
    QF_TRY(qf_linear_forward(down, g, n, tmp, &m->observer, err));
    if (post) qf_rmsnorm_rows(tmp, post, n, C, m->cfg.rms_norm_eps, tmp);
    qf_add_rows(out, h, tmp, n * C);
    return QF_OK;
}
