/* model_forward.c - the decoder forward pass of one sequence (see qf_model.h).
 *
 * Shapes (n tokens, C = hidden, H heads, KV kv heads, D head_dim, F intermediate):
 *   h    (n, C)    residual stream            xn  (n, C)   normed input of a block
 *   q    (n, H*D)  k, v (n, KV*D)             att (n, H*D) attention output per head
 *   logits (n, vocab)
 * Layer: xn = rmsnorm(h) -> q,k,v = Linear(xn) (+ qk-norm) -> RoPE(q, k) -> causal attention
 *        (within the layer's sliding window, if any)
 *        -> h += o(att) -> xn = rmsnorm(h) -> h += MLP(xn) or MoE(xn).
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"
#include "qf_matmul.h"
#include "qf_numfmt.h"

/* ---- elementwise helpers ------------------------------------------------------------------ */
double qf_exp_shift_sum(float *x, int64_t n, float shift)
{
    double total = 0.0;
    int64_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 sh = _mm256_set1_ps(shift);
    for (int64_t b = 0; b + 8 <= n; b += 256) { /* float lanes, flushed to double every 256 */
        __m256 acc = _mm256_setzero_ps();
        for (i = b; i + 8 <= n && i < b + 256; i += 8) {
            __m256 e = qf_fast_exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
            _mm256_storeu_ps(x + i, e);
            acc = _mm256_add_ps(acc, e);
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, acc);
        for (int j = 0; j < 8; j++) total += lanes[j];
    }
#endif
    for (; i < n; i++) {
        x[i] = qf_fast_expf(x[i] - shift);
        total += x[i];
    }
    return total;
}

void qf_rmsnorm_rows(const float *x, const float *w, int64_t rows, int64_t d, float eps, float *out)
{
#pragma omp parallel for schedule(static) if (rows * d >= QF_PAR_MIN)
    for (int64_t i = 0; i < rows; i++) {
        const float *xr = x + i * d;
        float *o = out + i * d;
        double ss = 0.0;
#pragma omp simd reduction(+ : ss)
        for (int64_t j = 0; j < d; j++) ss += (double)xr[j] * xr[j];
        float r = 1.0f / sqrtf((float)(ss / (double)d) + eps);
#pragma omp simd
        for (int64_t j = 0; j < d; j++) o[j] = w[j] * (xr[j] * r);
    }
}

void qf_swiglu(float *g, const float *u, int64_t n)
{
    const int64_t chunk = 4096;
#pragma omp parallel for schedule(static) if (n >= QF_PAR_MIN / 4)
    for (int64_t b = 0; b < n; b += chunk) {
        int64_t e = b + chunk < n ? b + chunk : n, i = b;
#if defined(__AVX2__) && defined(__FMA__)
        const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
        for (; i + 8 <= e; i += 8) {
            __m256 x = _mm256_loadu_ps(g + i);
            __m256 den = _mm256_add_ps(one, qf_fast_exp8(_mm256_sub_ps(zero, x)));
            _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, den), _mm256_loadu_ps(u + i)));
        }
#endif
        for (; i < e; i++) g[i] = g[i] / (1.0f + qf_fast_expf(-g[i])) * u[i];
    }
}

static void qf_add_into(float *h, const float *d, int64_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= QF_PAR_MIN)
    for (int64_t i = 0; i < n; i++) h[i] += d[i];
}

/* ---- attention ---------------------------------------------------------------------------- */
#define QF_ATT_BM 48 /* query rows per work item */

qf_status qf_attention(const qf_model *m, const float *q, const float *k, const float *v, int64_t n, int64_t window,
                       float *out, qf_error *err)
{
    const int H = m->cfg.n_heads, KV = m->cfg.n_kv_heads, D = m->cfg.head_dim, group = H / KV;
    const int64_t ldq = (int64_t)H * D, ldk = (int64_t)KV * D;
    const float scale = 1.0f / sqrtf((float)D);
    /* Per kv head g, packed once and shared by its query heads and every query block:
     * kp_g = K_g (n keys, D) and vp_g = V_gᵀ (D, n keys), as matmul panels. */
    const int64_t ksz = qf_pack_floats(n, D), vsz = qf_pack_floats(D, n);
    float *pk = malloc((size_t)(KV * (ksz + vsz)) * sizeof(float));
    if (!pk) return qf_fail(err, QF_ERR_NOMEM, "attention: out of memory (n = %lld)", (long long)n);
    float *pv = pk + KV * ksz;
    const int64_t nb = (n + QF_ATT_BM - 1) / QF_ATT_BM, items = nb * H;
    int failed = 0;
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int g = 0; g < 2 * KV; g++) {
            if (g < KV) qf_pack_nt(k + (int64_t)g * D, ldk, 1, n, D, pk + g * ksz);
            else qf_pack_nt(v + (int64_t)(g - KV) * D, 1, ldk, D, n, pv + (g - KV) * vsz);
        }
        float *s = qf_mm_tls_buffer(2, (size_t)(QF_ATT_BM * n));
        if (!s) {
#pragma omp atomic write
            failed = 1;
        }
        /* items ordered longest first (the last query block sees every key) */
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            if (!s) continue;
            int h = (int)(it % H), g = h / group;
            int64_t b = nb - 1 - it / H, i0 = b * QF_ATT_BM;
            int64_t i1 = i0 + QF_ATT_BM < n ? i0 + QF_ATT_BM : n, mb = i1 - i0, keys = i1;
            /* s (mb, keys) = q_h[i0:i1] · K_g[0:keys]ᵀ */
            qf_gemm_prepacked(mb, keys, D, q + i0 * ldq + (int64_t)h * D, ldq, pk + g * ksz, D, s, keys, 0);
            for (int64_t r = 0; r < mb; r++) {
                float *row = s + r * keys;
                /* causal: keys lo..i; a sliding window of W keeps the last W of them (i - W < j) */
                int64_t valid = i0 + r + 1, lo = window > 0 && valid > window ? valid - window : 0;
                float mx = -INFINITY;
                for (int64_t j = lo; j < valid; j++) {
                    row[j] *= scale;
                    mx = row[j] > mx ? row[j] : mx;
                }
                double sum = qf_exp_shift_sum(row + lo, valid - lo, mx);
                float inv = (float)(1.0 / sum);
#pragma omp simd
                for (int64_t j = lo; j < valid; j++) row[j] *= inv;
                for (int64_t j = 0; j < lo; j++) row[j] = 0.0f;
                for (int64_t j = valid; j < keys; j++) row[j] = 0.0f;
            }
            /* out_h[i0:i1] (mb, D) = p (mb, keys) · V_g[0:keys] */
            qf_gemm_prepacked(mb, D, keys, s, keys, pv + g * vsz, n, out + i0 * ldq + (int64_t)h * D, ldq, 0);
        }
    }
    free(pk);
    if (failed) return qf_fail(err, QF_ERR_NOMEM, "attention: out of memory for work buffers");
    return QF_OK;
}

/* ---- MLP ---------------------------------------------------------------------------------- */
qf_status qf_mlp_forward(const qf_model *m, const qf_linear *gate, const qf_linear *up, const qf_linear *down,
                         const float *xn, int64_t n, float *out, float *g, float *u, qf_error *err)
{
    const qf_linear_observer *obs = &m->observer;
    QF_TRY(qf_linear_forward(gate, xn, n, g, obs, err));
    QF_TRY(qf_linear_forward(up, xn, n, u, obs, err));
    qf_swiglu(g, u, n * gate->rows);
    return qf_linear_forward(down, g, n, out, obs, err);
}

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
    const int64_t C = c->hidden_size, qd = (int64_t)c->n_heads * c->head_dim,
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
    const qf_model_config *c = &m->cfg;
    const qf_layer *L = &m->layers[layer];
    const qf_linear_observer *obs = &m->observer;
    const int64_t C = c->hidden_size;
    /* attention block: h += o(attention(rope(q(xn)), rope(k(xn)), v(xn))) */
    qf_rmsnorm_rows(h, L->attn_norm, n, C, c->rms_norm_eps, w->xn);
    QF_TRY(qf_linear_forward(&L->q, w->xn, n, w->q, obs, err));
    QF_TRY(qf_linear_forward(&L->k, w->xn, n, w->k, obs, err));
    QF_TRY(qf_linear_forward(&L->v, w->xn, n, w->v, obs, err));
    if (L->q_norm) {
        qf_rmsnorm_rows(w->q, L->q_norm, n * c->n_heads, c->head_dim, c->rms_norm_eps, w->q);
        qf_rmsnorm_rows(w->k, L->k_norm, n * c->n_kv_heads, c->head_dim, c->rms_norm_eps, w->k);
    }
    qf_rope_apply(m, w->q, n, c->n_heads);
    qf_rope_apply(m, w->k, n, c->n_kv_heads);
    QF_TRY(qf_attention(m, w->q, w->k, w->v, n, L->attn_window, w->att, err));
    QF_TRY(qf_linear_forward(&L->o, w->att, n, w->tmp, obs, err));
    qf_add_into(h, w->tmp, n * C);
    /* feed-forward block: h += mlp(xn) or moe(xn) */
    qf_rmsnorm_rows(h, L->ffn_norm, n, C, c->rms_norm_eps, w->xn);
    if (L->is_moe) QF_TRY(qf_moe_forward(m, L, w->xn, n, w->tmp, w->g, w->u, err));
    else QF_TRY(qf_mlp_forward(m, &L->gate, &L->up, &L->down, w->xn, n, w->tmp, w->g, w->u, err));
    qf_add_into(h, w->tmp, n * C);
    return QF_OK;
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
