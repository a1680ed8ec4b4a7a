/* model_steps.c - the decoder layer's steps: norms, attention block, dense FFN (see
 * qf_layer_steps.h; the MoE block is model_moe.c).
 *
 * Each step is the only implementation of its math: validate composes them over a whole
 * sequence, calibration calls them over chunks of samples, on the quantized layer and on its
 * float twin.  Variants are chosen here from the layer and the config, never by the caller:
 * qk-norm when the layer has q_norm / k_norm (qwen3), q/k/v bias inside the Linears (qwen2),
 * the layer's sliding window, RoPE scaling through the model's RoPE tables (model_rope.c).
 */
#include "model_internal.h"
#include "qf_layer_steps.h"

void qf_step_attn_norm(const qf_model *m, const qf_layer *L, const float *h, int64_t n, float *xn)
{
    qf_rmsnorm_rows(h, L->attn_norm, n, m->cfg.hidden_size, m->cfg.rms_norm_eps, xn);
}

void qf_step_ffn_norm(const qf_model *m, const qf_layer *L, const float *h, int64_t n, float *xn)
{
    qf_rmsnorm_rows(h, L->ffn_norm, n, m->cfg.hidden_size, m->cfg.rms_norm_eps, xn);
}

qf_status qf_step_attn_core(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, int64_t seqlen,
                            float *q, float *k, float *v, float *att, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const qf_linear_observer *obs = &m->observer;
    const int64_t qd = (int64_t)c->n_heads * c->head_dim, kvd = (int64_t)c->n_kv_heads * c->head_dim;
    if (n > 0 && (seqlen <= 0 || n % seqlen))
        return qf_fail(err, QF_ERR_USAGE, "attention: %lld rows are not whole samples of %lld tokens", (long long)n,
                       (long long)seqlen);
    QF_TRY(qf_linear_forward(&L->q, xn, n, q, obs, err));
    QF_TRY(qf_linear_forward(&L->k, xn, n, k, obs, err));
    QF_TRY(qf_linear_forward(&L->v, xn, n, v, obs, err));
    if (L->q_norm) { /* qwen3: per-head RMSNorm of q and k before RoPE */
        qf_rmsnorm_rows(q, L->q_norm, n * c->n_heads, c->head_dim, c->rms_norm_eps, q);
        qf_rmsnorm_rows(k, L->k_norm, n * c->n_kv_heads, c->head_dim, c->rms_norm_eps, k);
    }
    for (int64_t off = 0; off < n; off += seqlen) { /* each sample is its own sequence: positions 0..seqlen-1 */
        qf_rope_apply(m, q + off * qd, seqlen, c->n_heads);
        qf_rope_apply(m, k + off * kvd, seqlen, c->n_kv_heads);
        QF_TRY(qf_attention(m, q + off * qd, k + off * kvd, v + off * kvd, seqlen, L->attn_window, att + off * qd, err));
    }
    return QF_OK;
}

qf_status qf_step_attn_out(const qf_model *m, const qf_layer *L, const float *att, int64_t n, const float *h,
                           float *h1, float *tmp, qf_error *err)
{
    QF_TRY(qf_linear_forward(&L->o, att, n, tmp, &m->observer, err));
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
    QF_TRY(qf_linear_forward(gate, xn, n, g, &m->observer, err));
    QF_TRY(qf_linear_forward(qf_ffn_linear(L, ffn, 1), xn, n, u, &m->observer, err));
    qf_swiglu(g, u, n * gate->rows);
    return QF_OK;
}

qf_status qf_step_ffn_out(const qf_model *m, const qf_layer *L, int ffn, const float *g, int64_t n, const float *h,
                          float *out, float *tmp, qf_error *err)
{
    const qf_linear *down = qf_ffn_linear(L, ffn, 2);
    if (!h) return qf_linear_forward(down, g, n, out, &m->observer, err);
    QF_TRY(qf_linear_forward(down, g, n, tmp, &m->observer, err));
    qf_add_rows(out, h, tmp, n * m->cfg.hidden_size);
    return QF_OK;
}
