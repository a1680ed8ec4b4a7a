/* model_llama4.c - Llama 4's layer kinds, q/k treatment and router choice (see model_llama4.h).
 *
 * The facts are transformers 5.23's modeling_llama4.py: Llama4TextAttention applies RoPE only
 * where config.no_rope_layers[l] is 1, then Llama4TextL2Norm (x · rsqrt(mean(x²) + eps), eps =
 * rms_norm_eps) to q and k when use_qk_norm, and on the NoPE layers multiplies q by
 * log1p(floor((positions + 1) / floor_scale)) · attn_scale + 1, all in float32; Llama4Router
 * keeps the top k logits and takes their sigmoid.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model_gptoss.h"
#include "model_internal.h"
#include "model_llama4.h"
#include "qf_fs.h"

qf_status qf_llama4_layers(qf_model *m, const char *dir, qf_error *err)
{
    const int n = m->cfg.n_layers;
    int *use_rope = calloc((size_t)n, sizeof(int)), *chunk = calloc((size_t)n, sizeof(int));
    char *path = qf_path_join(dir, "config.json");
    qf_status st = use_rope && chunk && path ? qf_config_llama4_layers(path, &m->cfg, use_rope, chunk, err)
                                             : qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (int l = 0; !st && l < n; l++) {
        m->layers[l].rope = use_rope[l] ? &m->rope : NULL;
        m->layers[l].attn_chunk = chunk[l];
    }
    free(use_rope);
    free(chunk);
    free(path);
    return st;
}

/* x (rows, d) = x · rsqrt(mean(x²) + eps) per row, float32 as Llama4TextL2Norm. */
static void qf_l2norm_rows(float *x, int64_t rows, int64_t d, float eps)
{
    for (int64_t i = 0; i < rows; i++) {
        float *v = x + i * d;
        double ss = 0.0;
        for (int64_t j = 0; j < d; j++) ss += (double)v[j] * v[j];
        float r = 1.0f / sqrtf((float)(ss / (double)d) + eps);
        for (int64_t j = 0; j < d; j++) v[j] *= r;
    }
}

void qf_llama4_qk(const qf_model *m, const qf_layer *L, float *q, float *k, int64_t seqlen)
{
    const qf_model_config *c = &m->cfg;
    const int64_t D = c->head_dim, qd = (int64_t)c->n_heads * D;
    if (L->rope && c->l4_qk_norm) {
        qf_l2norm_rows(q, seqlen * c->n_heads, D, c->rms_norm_eps);
        qf_l2norm_rows(k, seqlen * c->n_kv_heads, D, c->rms_norm_eps);
    }
    if (!L->rope && c->l4_temp_tuning) {
        const float floor_scale = (float)c->l4_floor_scale, attn_scale = (float)c->l4_attn_scale;
        for (int64_t t = 0; t < seqlen; t++) {
            float s = log1pf(floorf(((float)t + 1.0f) / floor_scale)) * attn_scale + 1.0f;
            for (int64_t j = 0; j < qd; j++) q[t * qd + j] *= s;
        }
    }
}

void qf_route_topk_sigmoid(const float *logits, int E, int K, int *s, float *w)
{
    qf_route_topk_softmax(logits, E, K, s, w); /* the same choice (GPT-OSS's); other weights */
    for (int j = 0; j < K; j++) w[j] = 1.0f / (1.0f + expf(-logits[s[j]]));
}
