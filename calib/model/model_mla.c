/* model_mla.c - DeepSeek-V3's multi-head latent attention (MLA), the attention core of a
 * family whose row sets mla (see qf_model.h; qf_step_attn_core dispatches here).
 *
 * transformers 5.23's DeepseekV3Attention, per token (H heads, Dn = qk_nope_head_dim,
 * R = qk_rope_head_dim, Dv = v_head_dim, Dqk = Dn + R):
 *   q      = q_b(q_a_layernorm(q_a(x)))  or q_proj(x)           (H, Dqk): [q_nope | q_rot] per head
 *   [c | kr] = kv_a_proj_with_mqa(x)                            c (kv_lora_rank), kr (R): one shared k_pe
 *   kv     = kv_b(kv_a_layernorm(c))                            (H, Dn + Dv): [k_nope | v] per head
 *   RoPE on q_rot of every head and on kr (rope_interleave: the R values are (even, odd) pairs,
 *   rotated pair by pair, which equals rotate-half after moving the evens first, as
 *   apply_rotary_pos_emb_interleave does; q and k are permuted alike, so the scores are too)
 *   score  = (q_nope · k_nope + q_rot · kr) × scale,  scale = Dqk^-1/2 × YaRN's mscale²
 *   att    = causal softmax(score) · v                          (H, Dv): o_proj's input
 * Both latent norms are DeepseekV3RMSNorm with its default eps 1e-6 (not rms_norm_eps).  The
 * q / kv latents are also what calibration needs (q_b's and kv_b's inputs), so they are one
 * step (qf_step_mla_latents) the core is built on.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qf_layer_steps.h"

#define QF_MLA_NORM_EPS 1e-6f /* DeepseekV3RMSNorm(q_lora_rank / kv_lora_rank): the default eps */

qf_status qf_step_mla_latents(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, float *qlat,
                              float *kvlat, float *kpe, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const int64_t kvr = c->kv_lora_rank, R = c->qk_rope_head_dim, w = kvr + R;
    if (qlat && L->q_a.kind) {
        QF_TRY(qf_linear_forward(&L->q_a, xn, n, qlat, &m->observer, err));
        qf_rmsnorm_rows(qlat, L->q_a_norm, n, c->q_lora_rank, QF_MLA_NORM_EPS, qlat);
    }
    if (!kvlat && !kpe) return QF_OK;
    float *kva = malloc((size_t)(n * w) * sizeof(float));
    if (!kva) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for %lld tokens", L->kv_a.name, (long long)n);
    qf_status st = qf_linear_forward(&L->kv_a, xn, n, kva, &m->observer, err);
    for (int64_t t = 0; !st && t < n; t++) {
        if (kvlat) memcpy(kvlat + t * kvr, kva + t * w, (size_t)kvr * sizeof(float));
        if (kpe) memcpy(kpe + t * R, kva + t * w + kvr, (size_t)R * sizeof(float));
    }
    free(kva);
    QF_TRY(st);
    if (kvlat && L->kv_a_norm) qf_rmsnorm_rows(kvlat, L->kv_a_norm, n, kvr, QF_MLA_NORM_EPS, kvlat);
    return QF_OK;
}

/* (even, odd) pairs -> evens first, then odds, in each of the rows of R values. */
static void qf_mla_deinterleave(float *x, int64_t rows, int64_t R)
{
    float tmp[1024];
    for (int64_t r = 0; r < rows; r++) {
        float *v = x + r * R;
        for (int64_t i = 0; i < R / 2; i++) tmp[i] = v[2 * i], tmp[R / 2 + i] = v[2 * i + 1];
        memcpy(v, tmp, (size_t)R * sizeof(float));
    }
}

/* Causal attention of one sample of T tokens: q (T, H, Dqk) (its nope part read), qr (T, H, R)
 * the rotated rope parts, kv (T, H, Dn + Dv) = [k_nope | v] per head, kr (T, R) the rotated
 * shared k_pe; att (T, H, Dv). */
static qf_status qf_mla_attend(const qf_model *m, const float *q, const float *qr, const float *kv, const float *kr,
                          int64_t T, float *att, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const int64_t H = c->n_heads, Dn = c->qk_nope_head_dim, R = c->qk_rope_head_dim, Dv = c->v_head_dim,
                  Dqk = Dn + R, Dkv = Dn + Dv;
    const float scale = m->attn_scale;
    int nomem = 0;
#pragma omp parallel if (T * T * H * Dqk >= QF_PAR_MIN)
    {
    float *s = malloc((size_t)T * sizeof(float)); /* one query's scores */
    if (!s) {
#pragma omp atomic write
        nomem = 1;
    }
#pragma omp for schedule(dynamic, 8)
    for (int64_t ih = 0; ih < T * H; ih++) {
        if (!s) continue;
        const int64_t i = ih / H, h = ih % H;
        const float *qi = q + (i * H + h) * Dqk, *qri = qr + (i * H + h) * R;
        float mx = -INFINITY;
        for (int64_t j = 0; j <= i; j++) {
            const float *kj = kv + (j * H + h) * Dkv, *krj = kr + j * R;
            float d = 0.0f;
            for (int64_t e = 0; e < Dn; e++) d += qi[e] * kj[e];
            for (int64_t e = 0; e < R; e++) d += qri[e] * krj[e];
            s[j] = d * scale;
            mx = s[j] > mx ? s[j] : mx;
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; j++) sum += (s[j] = expf(s[j] - mx));
        float *o = att + (i * H + h) * Dv;
        for (int64_t e = 0; e < Dv; e++) o[e] = 0.0f;
        for (int64_t j = 0; j <= i; j++) {
            const float p = (float)(s[j] / sum), *vj = kv + (j * H + h) * Dkv + Dn;
            for (int64_t e = 0; e < Dv; e++) o[e] += p * vj[e];
        }
    }
    free(s);
    }
    return nomem ? qf_fail(err, QF_ERR_NOMEM, "MLA attention: out of memory for %lld scores", (long long)T) : QF_OK;
}

qf_status qf_mla_attn_core(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, int64_t seqlen,
                           float *att, qf_error *err)
{
    const qf_model_config *c = &m->cfg;
    const int64_t H = c->n_heads, Dn = c->qk_nope_head_dim, R = c->qk_rope_head_dim, Dv = c->v_head_dim,
                  Dqk = Dn + R, kvr = c->kv_lora_rank, qlr = L->q_a.kind ? c->q_lora_rank : 0;
    if (L->attn_window > 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: MLA with a sliding window is not supported", L->q.name);
    if (c->index_topk > 0 && seqlen > c->index_topk) /* DeepseekV32Indexer: topk = min(index_topk, T) */
        return qf_fail(err, QF_ERR_UNSUPPORTED, "deepseek_v32: a sequence of %lld tokens is longer than index_topk "
                       "%d, where the DSA indexer drops keys (sparse attention), which the runner does not "
                       "implement; use --ctx (or --calib-seqlen) <= %d", (long long)seqlen, c->index_topk,
                       c->index_topk);
    float *q = malloc((size_t)(n * H * Dqk) * sizeof(float)), *qr = malloc((size_t)(n * H * R) * sizeof(float));
    float *lat = malloc((size_t)(n * (qlr + kvr)) * sizeof(float)), *kr = malloc((size_t)(n * R) * sizeof(float));
    float *kv = malloc((size_t)(n * H * (Dn + Dv)) * sizeof(float));
    qf_status st = QF_OK;
    if (!q || !qr || !lat || !kr || !kv)
        st = qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for %lld tokens", L->q.name, (long long)n);
    float *qlat = lat, *kvlat = lat + n * qlr;
    if (!st) st = qf_step_mla_latents(m, L, xn, n, qlr ? qlat : NULL, kvlat, kr, err);
    if (!st) st = qf_linear_forward(&L->q, qlr ? qlat : xn, n, q, &m->observer, err);
    if (!st) st = qf_linear_forward(&L->kv_b, kvlat, n, kv, &m->observer, err);
    if (!st) {
        for (int64_t t = 0; t < n * H; t++) memcpy(qr + t * R, q + t * Dqk + Dn, (size_t)R * sizeof(float));
        if (c->rope_interleave) {
            qf_mla_deinterleave(qr, n * H, R);
            qf_mla_deinterleave(kr, n, R);
        }
    }
    for (int64_t off = 0; !st && off < n; off += seqlen) { /* each sample: positions 0..seqlen-1 */
        qf_rope_apply(L->rope, (int)R, qr + off * H * R, seqlen, (int)H);
        qf_rope_apply(L->rope, (int)R, kr + off * R, seqlen, 1);
        st = qf_mla_attend(m, q + off * H * Dqk, qr + off * H * R, kv + off * H * (Dn + Dv), kr + off * R, seqlen,
                           att + off * H * Dv, err);
    }
    free(q), free(qr), free(lat), free(kr), free(kv);
    return st;
}
