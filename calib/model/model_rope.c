/* model_rope.c - rotary position embedding as Hugging Face computes it (see qf_model.h).
 *
 * inv_freq[i] = 1 / theta^(2i / d) in float32 (i < d/2), then the scaling rule:
 *   linear  inv_freq / factor
 *   llama3  wavelen = 2π / inv_freq; wavelen > L/low: inv_freq / factor; wavelen < L/high: kept;
 *           in between: (1 - s) · inv_freq / factor + s · inv_freq, s = (L / wavelen - low) / (high - low)
 *           with L = original_max_position_embeddings.
 *   yarn    (transformers' _compute_yarn_parameters) the correction range [lo, hi] of dims whose
 *           wavelength makes beta_fast .. beta_slow turns over L: dim(r) = d ln(L / (2π r)) /
 *           (2 ln theta), floor / ceil when truncate, clamped to [0, d-1]; ramp_i = clamp((i - lo)
 *           / (hi - lo), 0, 1), e = 1 - ramp_i; inv_freq = inv_freq / factor · (1 - e) + inv_freq · e;
 *           and cos / sin are multiplied by attention_factor (qf_model_config.rope_attn_factor),
 *           which scales the attention logits by its square.
 * At position p: angle_i = float(p) · inv_freq[i]; rotate-half pairs element i with i + d/2:
 *   x'[i] = x[i] cos - x[i + d/2] sin,   x'[i + d/2] = x[i + d/2] cos + x[i] sin.
 * RoPE is part of the attention step (qf_step_attn_core), so validate and calibration get a
 * scaling rule from here alone.
 */
#include <math.h>
#include <stdlib.h>

#include "model_internal.h"

void qf_rope_inv_freq(const qf_model_config *cfg, float *inv_freq)
{
    int d = cfg->head_dim;
    for (int i = 0; i < d / 2; i++) {
        float e = (float)(2 * i) / (float)d;
        inv_freq[i] = 1.0f / powf((float)cfg->rope_theta, e);
    }
    if (cfg->rope_type == QF_ROPE_LINEAR) {
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
    } else if (cfg->rope_type == QF_ROPE_YARN) {
        const double L = cfg->rope_original_max_pos, lb = 2.0 * log(cfg->rope_theta);
        double lo = d * log(L / (cfg->rope_beta_fast * 2.0 * M_PI)) / lb;
        double hi = d * log(L / (cfg->rope_beta_slow * 2.0 * M_PI)) / lb;
        if (cfg->rope_truncate) lo = floor(lo), hi = ceil(hi);
        lo = lo > 0 ? lo : 0;
        hi = hi < d - 1 ? hi : d - 1;
        if (lo == hi) hi += 0.001; /* as transformers: no zero-width ramp */
        const float flo = (float)lo, span = (float)(hi - lo);
        for (int i = 0; i < d / 2; i++) {
            float pos = powf((float)cfg->rope_theta, (float)(2 * i) / (float)d); /* theta^(2i/d) */
            float ramp = ((float)i - flo) / span;
            ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
            float e = 1.0f - ramp, interp = 1.0f / (cfg->rope_factor * pos);
            inv_freq[i] = interp * (1.0f - e) + inv_freq[i] * e;
        }
    }
}

void qf_rope_cos_sin(const qf_model_config *cfg, const float *inv_freq, int64_t p, float *c, float *s)
{
    for (int i = 0; i < cfg->head_dim / 2; i++) {
        float a = (float)p * inv_freq[i];
        c[i] = cosf(a);
        s[i] = sinf(a);
        if (cfg->rope_type == QF_ROPE_YARN) {
            c[i] *= cfg->rope_attn_factor;
            s[i] *= cfg->rope_attn_factor;
        }
    }
}

void qf_rope_apply(const qf_model *m, float *x, int64_t n, int heads)
{
    const int d = m->cfg.head_dim, half = d / 2;
    const float *inv = m->inv_freq;
#pragma omp parallel for schedule(static) if (n * heads * d >= QF_PAR_MIN)
    for (int64_t p = 0; p < n; p++) {
        float cbuf[512], sbuf[512]; /* head_dim <= 1024 */
        const float *c = m->rope_cos + p * half, *s = m->rope_sin + p * half;
        if (p >= m->rope_len) { /* beyond the table: same formula */
            qf_rope_cos_sin(&m->cfg, inv, p, cbuf, sbuf);
            c = cbuf;
            s = sbuf;
        }
        for (int h = 0; h < heads; h++) {
            float *v = x + (p * heads + h) * d;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c[i] - x1 * s[i];
                v[i + half] = x1 * c[i] + x0 * s[i];
            }
        }
    }
}
