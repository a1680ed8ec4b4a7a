/* model_gptoss.c - GPT-OSS's fused experts, router choice and clamped SwiGLU (see model_gptoss.h).
 *
 * The facts are transformers 5.23's modeling_gpt_oss.py: GptOssExperts computes
 * x @ gate_up_proj[e] + gate_up_proj_bias[e], takes gate = [..., ::2] and up = [..., 1::2],
 * then (up.clamp(-limit, limit) + 1) · g · sigmoid(g · alpha) with g = gate.clamp(max=limit),
 * and out = that @ down_proj[e] + down_proj_bias[e]; GptOssTopKRouter takes torch.topk of the
 * logits of F.linear(x, weight, bias) and a softmax over the k values.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_gptoss.h"
#include "qf_fused_experts.h"
#include "qf_numfmt.h"

/* Element i of a float tensor (F32 / BF16 / F16) as float32. */
static float qf_gptoss_elem(const qf_tensor *t, int64_t i)
{
    uint16_t h;
    float f;
    if (t->dtype == QF_DTYPE_F32) {
        memcpy(&f, t->data + 4 * i, 4);
        return f;
    }
    memcpy(&h, t->data + 2 * i, 2);
    return t->dtype == QF_DTYPE_BF16 ? qf_bf16_to_f32(h) : qf_f16_to_f32(h);
}

static int qf_gptoss_float(qf_dtype d)
{
    return d == QF_DTYPE_F32 || d == QF_DTYPE_BF16 || d == QF_DTYPE_F16;
}

/* Layer l's tensor "<blk>.experts.<suffix>", which must be a float tensor of ndim dims d0 x d1 (x d2). */
static qf_status qf_gptoss_find(const qf_checkpoint *ck, int l, const char *blk, const char *suffix, int ndim,
                                const int64_t *dims, const qf_tensor **out, qf_error *err)
{
    char name[QF_LINEAR_NAME_MAX + 32];
    snprintf(name, sizeof name, "model.layers.%d.%s.experts.%s", l, blk, suffix);
    const qf_tensor *t = qf_checkpoint_find(ck, name);
    if (!t) return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor '%s'", ck->dir, name);
    int ok = t->ndim == ndim && qf_gptoss_float(t->dtype);
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == dims[i];
    if (!ok)
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is %d-D %s, expected a float [%lld, %lld%s] as config.json "
                       "implies (num_local_experts, hidden_size, intermediate_size)", ck->dir, name, t->ndim,
                       qf_dtype_name(t->dtype), (long long)dims[0], (long long)dims[1],
                       ndim == 3 ? ", ..." : "");
    *out = t;
    return QF_OK;
}

qf_status qf_load_fused_experts(const qf_checkpoint *ck, const qf_family *fam, const qf_model_config *cfg, int l,
                                qf_layer *L, qf_error *err)
{
    const int64_t E = cfg->n_experts, C = cfg->hidden_size, F = cfg->moe_intermediate_size;
    const char *blk = fam->ffn_block ? fam->ffn_block : "mlp";
    const qf_fused_layout layout = (qf_fused_layout)fam->fused_experts;
    const int biased = layout == QF_FUSED_INTERLEAVED; /* GPT-OSS; Llama 4's experts have none */
    const qf_tensor *gu, *gub = NULL, *dn, *dnb = NULL;
    QF_TRY(qf_gptoss_find(ck, l, blk, "gate_up_proj", 3, (int64_t[]){E, C, 2 * F}, &gu, err));
    if (biased) QF_TRY(qf_gptoss_find(ck, l, blk, "gate_up_proj_bias", 2, (int64_t[]){E, 2 * F}, &gub, err));
    QF_TRY(qf_gptoss_find(ck, l, blk, "down_proj", 3, (int64_t[]){E, F, C}, &dn, err));
    if (biased) QF_TRY(qf_gptoss_find(ck, l, blk, "down_proj_bias", 2, (int64_t[]){E, C}, &dnb, err));
    QF_TRY(qf_fused_experts_check(ck->dir, gu, dn, err));
    /* one block: per expert gate [F, C], up [F, C], down [C, F], in the source dtype */
    const size_t es = (size_t)qf_dtype_bits(gu->dtype) / 8, des = (size_t)qf_dtype_bits(dn->dtype) / 8;
    const size_t per = (size_t)(2 * F * C) * es + (size_t)(C * F) * des;
    L->experts = calloc((size_t)E * 3, sizeof(qf_linear));
    L->expert_w = malloc(per * (size_t)E);
    if (!L->experts || !L->expert_w)
        return qf_fail(err, QF_ERR_NOMEM, "out of memory for layer %d's %lld experts", l, (long long)E);
    static const char *const part_name[3] = {"gate_proj", "up_proj", "down_proj"};
    for (int e = 0; e < E; e++) {
        uint8_t *base = (uint8_t *)L->expert_w + per * (size_t)e;
        for (int j = 0; j < 3; j++) {
            qf_linear *lin = &L->experts[3 * e + j];
            const qf_tensor *t = j == 2 ? dn : gu, *b = j == 2 ? dnb : gub;
            qf_expert_slice s = qf_expert_slice_of(t, e, (qf_expert_part)j, layout);
            void *w = base + (j == 0 ? 0 : j == 1 ? (size_t)(F * C) * es : (size_t)(2 * F * C) * es);
            qf_expert_slice_read(&s, w);
            snprintf(lin->name, sizeof lin->name, "model.layers.%d.%s.experts.%d.%s", l, blk, e, part_name[j]);
            lin->layer = l;
            lin->expert = e;
            lin->kind = QF_LINEAR_FLOAT;
            lin->rows = s.rows;
            lin->cols = s.cols;
            lin->weight = w;
            lin->wdtype = t->dtype;
            if (!b) continue;
            if (!(lin->bias = malloc((size_t)s.rows * sizeof(float))))
                return qf_fail(err, QF_ERR_NOMEM, "out of memory for '%s' bias", lin->name);
            /* gate_up_proj_bias[e] is interleaved like the columns: gate even, up odd */
            for (int64_t r = 0; r < s.rows; r++)
                lin->bias[r] = qf_gptoss_elem(b, j == 2 ? e * C + r : e * 2 * F + 2 * r + j);
        }
    }
    return QF_OK;
}

void qf_route_topk_softmax(const float *logits, int E, int K, int *s, float *w)
{
    for (int j = 0; j < K; j++) {
        int best = -1;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int i = 0; i < j; i++) taken |= s[i] == e;
            if (!taken && (best < 0 || logits[e] > logits[best])) best = e;
        }
        s[j] = best;
    }
    /* softmax over the k chosen: the first is the largest */
    float sum = 0.0f;
    for (int j = 0; j < K; j++) sum += (w[j] = expf(logits[s[j]] - logits[s[0]]));
    for (int j = 0; j < K; j++) w[j] /= sum;
}

void qf_swiglu_clamped(float *g, const float *u, int64_t n, float alpha, float limit)
{
    for (int64_t i = 0; i < n; i++) {
        float x = g[i] > limit ? limit : g[i]; /* NaN stays NaN: clamp(max) of NaN is NaN */
        float up = u[i] > limit ? limit : u[i] < -limit ? -limit : u[i];
        float glu = x * (1.0f / (1.0f + expf(-(x * alpha))));
        g[i] = (up + 1.0f) * glu;
    }
}
