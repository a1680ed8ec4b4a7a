/* model_rope.c - rotary position embedding as Hugging Face computes it (see qf_model.h).
 *
 * inv_freq[i] = 1 / theta^(2i / d) in float32 (i < d/2), then the scaling rule:
 *   linear  inv_freq / factor
 *   llama3  wavelen = 2π / inv_freq; wavelen > L/low: inv_freq / factor; wavelen < L/high: kept;
 *           in between: (1 - s) · inv_freq / factor + s · inv_freq, s = (L / wavelen - low) / (high - low)
 *           with L = original_max_position_embeddings.
 * At position p: angle_i = float(p) · inv_freq[i]; rotate-half pairs element i with i + d/2:
 *   x'[i] = x[i] cos - x[i + d/2] sin,   x'[i + d/2] = x[i + d/2] cos + x[i] sin.
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
            for (int i = 0; i < half; i++) {
                float a = (float)p * inv[i];
                cbuf[i] = cosf(a);
                sbuf[i] = sinf(a);
            }
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
