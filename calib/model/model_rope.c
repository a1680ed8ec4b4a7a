/* model_rope.c - rotary position embedding as Hugging Face computes it (see qf_model.h).
 *
 * inv_freq[i] = 1 / theta^(2i / d) in float32 (i < d/2), then the scaling rule:
 *   linear  inv_freq / factor
 *   llama3  wavelen = 2π / inv_freq; wavelen > L/low: inv_freq / factor; wavelen < L/high: kept;
 *           in between: (1 - s) · inv_freq / factor + s · inv_freq, s = (L / wavelen - low) / (high - low)
 *           with L = original_max_position_embeddings.
 *   yarn    transformers' _compute_yarn_parameters in float32: pos_i = theta^(2i/d); extrapolated
 *           1 / pos_i and interpolated 1 / (factor · pos_i) blended by e_i = 1 - clamp((i - lo) /
 *           (hi - lo), 0, 1), lo / hi the dimensions where beta_fast / beta_slow rotations fit in
 *           L (floor / ceil when truncate); cos and sin are then multiplied by the attention
 *           factor (qf_rope_cos_scale).
 *   longrope transformers' _compute_longrope_parameters: inv_freq[i] = 1 / (f[i] · theta^(2i/d))
 *           in float32, f the short factors for a sequence of at most original_max_position_embeddings
 *           tokens and the long ones beyond (longrope_frequency_update decides per forward call
 *           from the sequence length, so qf_rope_apply does: r->long_ctx); cos and sin are
 *           multiplied by the attention factor.
 * At position p: angle_i = float(p) · inv_freq[i]; rotate-half pairs element i with i + d/2:
 *   x'[i] = x[i] cos - x[i + d/2] sin,   x'[i + d/2] = x[i + d/2] cos + x[i] sin;
 * interleaved (Llama 4's apply_rotary_emb, a complex product) pairs 2i with 2i + 1:
 *   x'[2i] = x[2i] cos - x[2i + 1] sin,   x'[2i + 1] = x[2i] sin + x[2i + 1] cos.
 * Partial rotary (qf_rope_dims): d = the rotated dimensions, the leading d of each head; the
 * formulas above use d in place of head_dim and the rest of the head passes through
 * (transformers' apply_rotary_pos_emb: q[..., :rotary_dim] rotated, q[..., rotary_dim:] kept).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* The dimension (of d) at which `rotations` full turns fit in the original context. */
static double qf_yarn_dim(double rotations, int d, double theta, double orig_len)
{
    return d * log(orig_len / (rotations * 2.0 * M_PI)) / (2.0 * log(theta));
}

int qf_rope_dims(const qf_model_config *cfg)
{
    if (cfg->kv_lora_rank > 0) return cfg->qk_rope_head_dim; /* MLA: the decoupled rope part of each head */
    const double f = cfg->rope_partial_factor; /* 0 (a config built in code) means unset: whole heads */
    int d = f > 0.0 && f < 1.0 ? (int)(cfg->head_dim * f) : cfg->head_dim;
    d -= d % 2;
    return d < 2 ? 2 : d > cfg->head_dim ? cfg->head_dim : d;
}

static void qf_rope_yarn(const qf_model_config *cfg, float *inv_freq)
{
    const int d = qf_rope_dims(cfg);
    const double orig = cfg->rope_original_max_pos;
    double lo = qf_yarn_dim(cfg->rope_yarn_beta_fast, d, cfg->rope_theta, orig),
           hi = qf_yarn_dim(cfg->rope_yarn_beta_slow, d, cfg->rope_theta, orig);
    if (cfg->rope_yarn_truncate) lo = floor(lo), hi = ceil(hi);
    lo = lo > 0 ? lo : 0;
    hi = hi < d - 1 ? hi : d - 1;
    if (lo == hi) hi += 0.001; /* transformers: no singular ramp */
    const float flo = (float)lo, span = (float)(hi - lo), factor = cfg->rope_factor;
    for (int i = 0; i < d / 2; i++) {
        float pos = powf((float)cfg->rope_theta, (float)(2 * i) / (float)d);
        float extrapolated = 1.0f / pos, interpolated = 1.0f / (factor * pos);
        float ramp = ((float)i - flo) / span;
        ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
        float e = 1.0f - ramp;
        inv_freq[i] = interpolated * (1.0f - e) + extrapolated * e;
    }
}

float qf_rope_cos_scale(const qf_model_config *cfg)
{
    return cfg->rope_type == QF_ROPE_YARN || cfg->rope_type == QF_ROPE_LONGROPE ? (float)cfg->rope_yarn_attn_factor
                                                                                : 1.0f;
}

void qf_rope_cos_sin(const float *inv_freq, int64_t half, int64_t p, float scale, float *c, float *s)
{
    for (int64_t i = 0; i < half; i++) {
        float a = (float)p * inv_freq[i];
        c[i] = cosf(a) * scale;
        s[i] = sinf(a) * scale;
    }
}

void qf_rope_inv_freq(const qf_model_config *cfg, float *inv_freq)
{
    int d = qf_rope_dims(cfg);
    for (int i = 0; i < d / 2; i++) {
        float e = (float)(2 * i) / (float)d;
        inv_freq[i] = 1.0f / powf((float)cfg->rope_theta, e);
    }
    if (cfg->rope_type == QF_ROPE_LONGROPE) {
        for (int i = 0; i < d / 2 && i < cfg->rope_n_factors; i++) /* float32, as torch: f · base^e, then 1 / */
            inv_freq[i] = 1.0f / (cfg->rope_short_factor[i] * powf((float)cfg->rope_theta, (float)(2 * i) / (float)d));
    } else if (cfg->rope_type == QF_ROPE_YARN) {
        qf_rope_yarn(cfg, inv_freq);
    } else if (cfg->rope_type == QF_ROPE_LINEAR) {
        for (int i = 0; i < d / 2; i++) inv_freq[i] /= cfg->rope_factor;
    } else if (cfg->rope_type == QF_ROPE_LLAMA3) {
        float factor = cfg->rope_factor, lo = cfg->rope_low_freq_factor, hi = cfg->rope_high_freq_factor;
        float old_len = (float)cfg->rope_original_max_pos;
        float lo_wavelen = old_len / lo, hi_wavelen = old_len / hi;
        for (int i = 0; i < d / 2; i++) {
            float f = inv_freq[i], wavelen = 2.0f * (float)M_PI / f;
            float scaled = wavelen > lo_wavelen ? f / factor : f;
            if (!(wavelen < hi_wavelen) && !(wavelen > lo_wavelen)) {
                float s = (old_len / wavelen - lo) / (hi - lo);
                scaled = (1.0f - s) * scaled / factor + s * scaled;
            }
            inv_freq[i] = scaled;
        }
    }
}

/* r's inverse frequencies and cos / sin table for cfg (LongRoPE: of its short factors). */
static qf_status qf_rope_table(qf_rope *r, const qf_model_config *cfg, int64_t len, qf_error *err)
{
    memset(r, 0, sizeof *r);
    r->dims = qf_rope_dims(cfg);
    const int64_t half = r->dims / 2;
    r->len = len;
    r->inv_freq = malloc((size_t)half * sizeof(float));
    r->cos = malloc((size_t)(2 * len * half) * sizeof(float));
    if (!r->inv_freq || !r->cos) {
        qf_rope_free(r);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory for the RoPE table");
    }
    r->sin = r->cos + len * half;
    qf_rope_inv_freq(cfg, r->inv_freq);
    r->scale = qf_rope_cos_scale(cfg);
    r->interleaved = cfg->rope_interleaved;
    for (int64_t p = 0; p < len; p++) qf_rope_cos_sin(r->inv_freq, half, p, r->scale, r->cos + p * half, r->sin + p * half);
    return QF_OK;
}

qf_status qf_rope_init(qf_rope *r, const qf_model_config *cfg, int64_t len, qf_error *err)
{
    QF_TRY(qf_rope_table(r, cfg, len, err));
    if (cfg->rope_type != QF_ROPE_LONGROPE) return QF_OK;
    /* LongRoPE: the long factors' table, the same computation with the other list */
    qf_model_config *lc = malloc(sizeof *lc);
    r->long_ctx = calloc(1, sizeof *r->long_ctx);
    qf_status st = QF_OK;
    if (!lc || !r->long_ctx) {
        st = qf_fail(err, QF_ERR_NOMEM, "out of memory for the RoPE table");
    } else {
        *lc = *cfg;
        memcpy(lc->rope_short_factor, cfg->rope_long_factor, sizeof lc->rope_short_factor);
        st = qf_rope_table(r->long_ctx, lc, len, err);
    }
    free(lc);
    if (st) {
        qf_rope_free(r);
        return st;
    }
    r->long_after = cfg->rope_original_max_pos;
    return QF_OK;
}

void qf_rope_free(qf_rope *r)
{
    if (r->long_ctx) {
        qf_rope_free(r->long_ctx);
        free(r->long_ctx);
    }
    free(r->inv_freq);
    free(r->cos); /* sin shares the allocation */
    memset(r, 0, sizeof *r);
}

void qf_rope_apply(const qf_rope *r, int head_dim, float *x, int64_t n, int heads)
{
    if (r->long_ctx && n > r->long_after) r = r->long_ctx; /* LongRoPE: a long sequence, the long factors */
    const int half = r->dims / 2; /* dimensions r->dims..head_dim-1 pass through unrotated */
    const float *inv = r->inv_freq;
#pragma omp parallel for schedule(static) if (n * heads * head_dim >= QF_PAR_MIN)
    for (int64_t p = 0; p < n; p++) {
        float cbuf[512], sbuf[512]; /* head_dim <= 1024 */
        const float *c = r->cos + p * half, *s = r->sin + p * half;
        if (p >= r->len) { /* beyond the table: same formula */
            qf_rope_cos_sin(inv, half, p, r->scale, cbuf, sbuf);
            c = cbuf;
            s = sbuf;
        }
        for (int h = 0; h < heads && r->interleaved; h++) { /* (x0 + i x1) (cos + i sin), as torch's complex product */
            float *v = x + (p * heads + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float x0 = v[2 * i], x1 = v[2 * i + 1];
                v[2 * i] = x0 * c[i] - x1 * s[i];
                v[2 * i + 1] = x0 * s[i] + x1 * c[i];
            }
        }
        for (int h = 0; h < heads && !r->interleaved; h++) {
            float *v = x + (p * heads + h) * head_dim;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c[i] - x1 * s[i];
                v[i + half] = x1 * c[i] + x0 * s[i];
            }
        }
    }
}
