/* model_forward.c - the forward pass of one sequence, composed of the layer steps (see
 * qf_model.h, qf_layer_steps.h).
 *
 * Shapes (n tokens, C = hidden, H heads, KV kv heads, D head_dim, F widest FFN):
 *   h    (n, C)    residual stream            xn  (n, C)   normed input of a block
 *   q    (n, H*D)  k, v (n, KV*D)             att (n, H*D) attention output per head
 *   logits (n, vocab)
 * Layer: xn = attn_norm(h) -> att = attn_core(xn) (one sample: seqlen = n) -> h = attn_out(h, att)
 *        -> xn = ffn_norm(h) -> h = ffn_out(h, ffn_act(xn)) or moe(h, xn).
 */
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qf_layer_steps.h"
#include "qf_numfmt.h"

/* ---- the model ---------------------------------------------------------------------------- */
qf_status qf_model_embed(const qf_model *m, const int32_t *ids, int64_t n, float *h, qf_error *err)
{
    const int64_t C = m->cfg.hidden_size;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->vocab_in)
            return qf_fail(err, QF_ERR_USAGE, "token id %d at position %lld is outside the vocabulary (%lld)",
                           (int)ids[i], (long long)i, (long long)m->vocab_in);
#pragma omp parallel for schedule(static) if (n * C >= QF_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float *o = h + i * C;
        if (m->embed_dtype == QF_DTYPE_F32) {
            memcpy(o, (const float *)m->embed + ids[i] * C, (size_t)C * sizeof(float));
        } else {
            const uint16_t *e = (const uint16_t *)m->embed + ids[i] * C;
            for (int64_t j = 0; j < C; j++)
                o[j] = m->embed_dtype == QF_DTYPE_BF16 ? qf_bf16_to_f32(e[j]) : qf_f16_to_f32(e[j]);
        }
        if (m->embed_scale != 1.0f) /* gemma: × sqrt(hidden), in float32 as the reference runs */
            for (int64_t j = 0; j < C; j++) o[j] *= m->embed_scale;
    }
    return QF_OK;
}

/* Work buffers of one layer for n tokens, carved from one allocation. */
typedef struct qf_layer_ws {
    float *xn, *tmp;  /* (n, C) */
    float *q, *att;   /* (n, H*D) */
    float *k, *v;     /* (n, KV*D) */
    float *g, *u;     /* (n, F) F = widest FFN */
} qf_layer_ws;

static float *qf_layer_ws_alloc(const qf_model *m, int64_t n, qf_layer_ws *w)
{
    const qf_model_config *c = &m->cfg;
    const int64_t C = c->hidden_size, qd = m->mixer_width,
                  kvd = (int64_t)c->n_kv_heads * c->head_dim, F = m->ffn_max;
    float *buf = malloc((size_t)(n * (2 * C + 2 * qd + 2 * kvd + 2 * F)) * sizeof(float));
    if (!buf) return NULL;
    w->xn = buf;
    w->tmp = w->xn + n * C;
    w->q = w->tmp + n * C;
    w->att = w->q + n * qd;
    w->k = w->att + n * qd;
    w->v = w->k + n * kvd;
    w->g = w->v + n * kvd;
    w->u = w->g + n * F;
    return buf;
}

static qf_status qf_layer_run(const qf_model *m, int layer, float *h, int64_t n, const qf_layer_ws *w, qf_error *err)
{
    const qf_layer *L = &m->layers[layer];
    if (L->mixer == QF_MIXER_MLP || L->mixer == QF_MIXER_MOE) { /* a hybrid layer that is an FFN alone */
        qf_step_ffn_norm(m, L, h, n, w->xn);
        if (L->is_moe) return qf_step_moe(m, L, w->xn, n, h, h, w->tmp, w->g, w->u, err);
        QF_TRY(qf_step_ffn_act(m, L, QF_FFN_DENSE, w->xn, n, w->g, w->u, err));
        return qf_step_ffn_out(m, L, QF_FFN_DENSE, w->g, n, h, h, w->tmp, err);
    }
    /* attention block (or a hybrid layer's Mamba mixer): h += o(attention(xn)) */
    qf_step_attn_norm(m, L, h, n, w->xn);
    QF_TRY(qf_step_attn_core(m, L, w->xn, n, n, w->q, w->k, w->v, w->att, err));
    QF_TRY(qf_step_attn_out(m, L, w->att, n, h, h, w->tmp, err));
    if (L->mixer) return QF_OK; /* a hybrid layer is its one mixer */
    /* feed-forward block: h += mlp(xn) or moe(xn) */
    qf_step_ffn_norm(m, L, h, n, w->xn);
    if (L->is_moe) return qf_step_moe(m, L, w->xn, n, h, h, w->tmp, w->g, w->u, err);
    QF_TRY(qf_step_ffn_act(m, L, QF_FFN_DENSE, w->xn, n, w->g, w->u, err));
    return qf_step_ffn_out(m, L, QF_FFN_DENSE, w->g, n, h, h, w->tmp, err);
}

qf_status qf_model_layer_forward(const qf_model *m, int layer, float *h, int64_t n, qf_error *err)
{
    if (layer < 0 || layer >= m->cfg.n_layers)
        return qf_fail(err, QF_ERR_USAGE, "layer %d out of range (%d layers)", layer, m->cfg.n_layers);
    qf_layer_ws w = {0};
    float *buf = qf_layer_ws_alloc(m, n, &w);
    if (!buf) return qf_fail(err, QF_ERR_NOMEM, "layer %d: out of memory for %lld tokens", layer, (long long)n);
    qf_status st = qf_layer_run(m, layer, h, n, &w, err);
    free(buf);
    return st;
}

qf_status qf_model_logits(const qf_model *m, const float *h, int64_t n, float *logits, qf_error *err)
{
    const int64_t C = m->cfg.hidden_size;
    float *xn = malloc((size_t)(n * C) * sizeof(float));
    if (!xn) return qf_fail(err, QF_ERR_NOMEM, "out of memory for the final norm");
    qf_rmsnorm_rows(h, m->final_norm, n, C, m->cfg.rms_norm_eps, xn);
    qf_status st = qf_linear_forward(&m->lm_head, xn, n, logits, &m->observer, err);
    if (!st && m->cfg.final_logit_softcap > 0) qf_softcap(logits, n * m->vocab_out, (float)m->cfg.final_logit_softcap);
    free(xn);
    return st;
}

qf_status qf_model_forward(const qf_model *m, const int32_t *ids, int64_t n, float *logits, qf_error *err)
{
    if (n <= 0) return qf_fail(err, QF_ERR_USAGE, "forward: empty sequence");
    qf_layer_ws w = {0};
    float *buf = qf_layer_ws_alloc(m, n, &w);
    float *h = malloc((size_t)(n * m->cfg.hidden_size) * sizeof(float));
    qf_status st = QF_OK;
    if (!buf || !h) st = qf_fail(err, QF_ERR_NOMEM, "out of memory for %lld tokens", (long long)n);
    if (!st) st = qf_model_embed(m, ids, n, h, err);
    for (int l = 0; l < m->cfg.n_layers && !st; l++) st = qf_layer_run(m, l, h, n, &w, err);
    if (!st) st = qf_model_logits(m, h, n, logits, err);
    free(h);
    free(buf);
    return st;
}
