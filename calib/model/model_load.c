/* model_load.c - build a qf_model from a hub folder or an artifact folder (see qf_model.h).
 *
 * Story: read config.json (refuse an unsupported model_type or attention variant; the
 * family's row; each layer's sliding window) -> map the safetensors ->
 * embedding -> for each decoder layer: norms (+ Gemma's sandwich norms), attention projections
 * (or Phi-3's fused qkv_proj) (+ qk norms), then a dense MLP (or the fused gate_up_proj) or a
 * MoE block (router, experts, shared expert) -> final norm -> lm_head (or the tied embedding)
 * -> RoPE tables (and Gemma 3's local one), embedding and attention scales.  Weights stay in
 * the mapping; only norm vectors (Gemma: 1 + w) and biases are copied to float32.
 */
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_gptoss.h"
#include "model_llama4.h"
#include "model_internal.h"
#include "qf_fs.h"
#include "qf_numfmt.h"
#include "qf_quant_source.h"

void qf_model_options_default(qf_model_options *opt)
{
    opt->act_quant = 1;
    opt->moe_force_expert = -1;
    opt->float_source = 0;
    opt->ablate = 0;
}

/* A float vector tensor of n elements copied to float32 (owned by *out), plus offset (Gemma's
 * (1 + w) norms: the sum is formed in float32, as Gemma3RMSNorm does before multiplying). */
qf_status qf_load_vec_off(const qf_checkpoint *ck, const char *name, int64_t n, float offset, float **out,
                          qf_error *err)
{
    const qf_tensor *t = qf_checkpoint_find(ck, name);
    if (!t) return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor '%s'", ck->dir, name);
    if (qf_tensor_numel(t) != (uint64_t)n ||
        (t->dtype != QF_DTYPE_F32 && t->dtype != QF_DTYPE_BF16 && t->dtype != QF_DTYPE_F16))
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' is %s with %llu elements, expected a float vector of %lld",
                       ck->dir, name, qf_dtype_name(t->dtype), (unsigned long long)qf_tensor_numel(t), (long long)n);
    float *v = malloc((size_t)n * sizeof(float));
    if (!v) return qf_fail(err, QF_ERR_NOMEM, "out of memory for '%s'", name);
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        if (t->dtype == QF_DTYPE_F32) {
            memcpy(&v[i], t->data + 4 * i, 4);
            continue;
        }
        memcpy(&h, t->data + 2 * i, 2);
        v[i] = t->dtype == QF_DTYPE_BF16 ? qf_bf16_to_f32(h) : qf_f16_to_f32(h);
    }
    if (offset != 0.0f)
        for (int64_t i = 0; i < n; i++) v[i] = offset + v[i];
    *out = v;
    return QF_OK;
}


/* Whether module `name` has a weight (float or packed). */
static int qf_has_module(const qf_checkpoint *ck, const char *name)
{
    char buf[QF_LINEAR_NAME_MAX + 32];
    snprintf(buf, sizeof buf, "%s.weight", name);
    if (qf_checkpoint_find(ck, buf)) return 1;
    snprintf(buf, sizeof buf, "%s.weight_packed", name);
    return qf_checkpoint_find(ck, buf) != NULL;
}

/* out_features of module `name` from its tensors (weight_shape, weight or weight_packed). */
static int64_t qf_module_rows(const qf_checkpoint *ck, const char *name)
{
    char buf[QF_LINEAR_NAME_MAX + 32];
    snprintf(buf, sizeof buf, "%s.weight_shape", name);
    const qf_tensor *t = qf_checkpoint_find(ck, buf);
    if (t && t->dtype == QF_DTYPE_I64 && qf_tensor_numel(t) == 2) {
        int64_t s[2];
        memcpy(s, t->data, sizeof s);
        return s[0];
    }
    snprintf(buf, sizeof buf, "%s.weight", name);
    if (!(t = qf_checkpoint_find(ck, buf))) {
        snprintf(buf, sizeof buf, "%s.weight_packed", name);
        t = qf_checkpoint_find(ck, buf);
    }
    return t && t->ndim == 2 ? t->shape[0] : -1;
}

qf_status qf_lin(qf_load_ctx *c, qf_linear *lin, int layer, int expert, int64_t rows, int64_t cols,
                        int with_bias, const char *fmt, ...)
{
    char name[QF_LINEAR_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    QF_TRY(qf_linear_load(lin, c->ck, name, rows, cols, with_bias, c->qc, c->err));
    lin->layer = layer;
    lin->expert = expert;
    return QF_OK;
}

static qf_status qf_load_moe(qf_load_ctx *c, const qf_model_config *cfg, int l, qf_layer *L, int mixtral)
{
    const int64_t hid = cfg->hidden_size, E = cfg->n_experts;
    const char *blk = mixtral ? "block_sparse_moe" : c->fam->ffn_block ? c->fam->ffn_block : "mlp";
    int64_t inter = mixtral ? cfg->intermediate_size : cfg->moe_intermediate_size;
    char name[QF_LINEAR_NAME_MAX];
    if (E <= 0 || cfg->n_experts_per_tok <= 0 || cfg->n_experts_per_tok > E)
        return qf_fail(c->err, QF_ERR_FORMAT, "config.json: layer %d has a router but num_experts=%lld, "
                       "num_experts_per_tok=%d", l, (long long)E, cfg->n_experts_per_tok);
    L->is_moe = 1;
    const char *router = c->fam->router ? c->fam->router : "gate";
    QF_TRY(qf_lin(c, &L->router, l, -1, E, hid, -1, "model.layers.%d.%s.%s", l, blk, router));
    /* GPT-OSS, Llama 4 as released: fused 3-D experts (an artifact that unfused them into
     * per-expert Linears, as qforge writes Llama 4's, is read below) */
    snprintf(name, sizeof name, "model.layers.%d.%s.experts.gate_up_proj", l, blk);
    if (c->fam->fused_experts && qf_checkpoint_find(c->ck, name)) QF_TRY(qf_load_fused_experts(c->ck, c->fam, cfg, l, L, c->err));
    else {
    L->experts = calloc((size_t)E * 3, sizeof(qf_linear));
    if (!L->experts) return qf_fail(c->err, QF_ERR_NOMEM, "out of memory for %lld experts", (long long)E);
    static const char *const mix[3] = {"w1", "w3", "w2"}, *const qw[3] = {"gate_proj", "up_proj", "down_proj"};
    for (int e = 0; e < E; e++)
        for (int j = 0; j < 3; j++)
            QF_TRY(qf_lin(c, &L->experts[3 * e + j], l, e, j == 2 ? hid : inter, j == 2 ? inter : hid, -1,
                          "model.layers.%d.%s.experts.%d.%s", l, blk, e, mixtral ? mix[j] : qw[j]));
    }
    if (c->fam->sigmoid_routing) { /* GLM: the bias added to the scores that choose the experts */
        snprintf(name, sizeof name, "model.layers.%d.mlp.gate.e_score_correction_bias", l);
        QF_TRY(qf_load_vec_off(c->ck, name, E, 0.0f, &L->router_bias, c->err));
    }
    const char *sh = c->fam->shared_expert;
    snprintf(name, sizeof name, "model.layers.%d.%s.%s.gate_proj", l, blk, sh ? sh : "");
    if (sh && qf_has_module(c->ck, name)) {
        int64_t si = cfg->shared_expert_intermediate_size > 0 ? cfg->shared_expert_intermediate_size
                                                               : qf_module_rows(c->ck, name);
        L->has_shared = 1;
        QF_TRY(qf_lin(c, &L->sh_gate, l, -2, si, hid, -1, "model.layers.%d.%s.%s.gate_proj", l, blk, sh));
        QF_TRY(qf_lin(c, &L->sh_up, l, -2, si, hid, -1, "model.layers.%d.%s.%s.up_proj", l, blk, sh));
        QF_TRY(qf_lin(c, &L->sh_down, l, -2, hid, si, -1, "model.layers.%d.%s.%s.down_proj", l, blk, sh));
        snprintf(name, sizeof name, "model.layers.%d.%s.shared_expert_gate", l, blk);
        if (qf_has_module(c->ck, name)) /* qwen2_moe's sigmoid gate; GLM adds its shared experts unscaled */
            QF_TRY(qf_lin(c, &L->sh_router, l, -2, 1, hid, -1, "model.layers.%d.mlp.shared_expert_gate", l));
    }
    return QF_OK;
}

/* Qwen3-Next's gated DeltaNet (Qwen3NextGatedDeltaNet): in_proj_qkvz in q, in_proj_ba in k,
 * out_proj in o; the conv, A_log (kept as -exp(A_log)), dt_bias and the gated norm (x w: no
 * (1 + w) offset) stay float32 copies. */
static qf_status qf_load_deltanet(qf_load_ctx *c, const qf_model_config *cfg, int l, qf_layer *L)
{
    const int64_t hid = cfg->hidden_size, nv = cfg->lin_v_heads;
    const int64_t kd = (int64_t)cfg->lin_k_heads * cfg->lin_k_dim, vd = nv * cfg->lin_v_dim;
    char name[QF_LINEAR_NAME_MAX];
    if (c->fam->deltanet_split) { /* Qwen3.5 */
        QF_TRY(qf_lin(c, &L->q, l, -1, 2 * kd + vd, hid, -1, "model.layers.%d.linear_attn.in_proj_qkv", l));
        QF_TRY(qf_lin(c, &L->k, l, -1, vd, hid, -1, "model.layers.%d.linear_attn.in_proj_z", l));
        QF_TRY(qf_lin(c, &L->v, l, -1, nv, hid, -1, "model.layers.%d.linear_attn.in_proj_b", l));
        QF_TRY(qf_lin(c, &L->in_a, l, -1, nv, hid, -1, "model.layers.%d.linear_attn.in_proj_a", l));
    } else {
        QF_TRY(qf_lin(c, &L->q, l, -1, 2 * kd + 2 * vd, hid, -1, "model.layers.%d.linear_attn.in_proj_qkvz", l));
        QF_TRY(qf_lin(c, &L->k, l, -1, 2 * nv, hid, -1, "model.layers.%d.linear_attn.in_proj_ba", l));
    }
    QF_TRY(qf_lin(c, &L->o, l, -1, hid, vd, -1, "model.layers.%d.linear_attn.out_proj", l));
    snprintf(name, sizeof name, "model.layers.%d.linear_attn.conv1d.weight", l);
    QF_TRY(qf_load_vec_off(c->ck, name, (2 * kd + vd) * cfg->lin_conv, 0.0f, &L->conv_w, c->err));
    snprintf(name, sizeof name, "model.layers.%d.linear_attn.A_log", l);
    QF_TRY(qf_load_vec_off(c->ck, name, nv, 0.0f, &L->neg_a, c->err));
    for (int64_t h = 0; h < nv; h++) L->neg_a[h] = -expf(L->neg_a[h]); /* as -A_log.float().exp() */
    snprintf(name, sizeof name, "model.layers.%d.linear_attn.dt_bias", l);
    QF_TRY(qf_load_vec_off(c->ck, name, nv, 0.0f, &L->dt_bias, c->err));
    snprintf(name, sizeof name, "model.layers.%d.linear_attn.norm.weight", l);
    return qf_load_vec_off(c->ck, name, cfg->lin_v_dim, 0.0f, &L->gnorm, c->err);
}

/* DeepseekV3Attention's Linears and latent norms (q_a_proj / q_a_layernorm / q_b_proj or
 * q_proj; kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj; o_proj), biases where
 * attention_bias (q_a, kv_a and o only, as there). */
static qf_status qf_load_mla(qf_load_ctx *c, const qf_model_config *cfg, int l, qf_layer *L)
{
    const int64_t hid = cfg->hidden_size, H = cfg->n_heads, qk = cfg->qk_nope_head_dim + cfg->qk_rope_head_dim;
    const int bias = cfg->attention_bias ? 1 : -1;
    char name[QF_LINEAR_NAME_MAX];
    if (cfg->q_lora_rank > 0) {
        QF_TRY(qf_lin(c, &L->q_a, l, -1, cfg->q_lora_rank, hid, bias, "model.layers.%d.self_attn.q_a_proj", l));
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_a_layernorm.weight", l);
        QF_TRY(qf_load_vec_off(c->ck, name, cfg->q_lora_rank, 0.0f, &L->q_a_norm, c->err));
        QF_TRY(qf_lin(c, &L->q, l, -1, H * qk, cfg->q_lora_rank, -1, "model.layers.%d.self_attn.q_b_proj", l));
    } else {
        QF_TRY(qf_lin(c, &L->q, l, -1, H * qk, hid, -1, "model.layers.%d.self_attn.q_proj", l));
    }
    QF_TRY(qf_lin(c, &L->kv_a, l, -1, (int64_t)cfg->kv_lora_rank + cfg->qk_rope_head_dim, hid, bias,
                  "model.layers.%d.self_attn.kv_a_proj_with_mqa", l));
    snprintf(name, sizeof name, "model.layers.%d.self_attn.kv_a_layernorm.weight", l);
    QF_TRY(qf_load_vec_off(c->ck, name, cfg->kv_lora_rank, 0.0f, &L->kv_a_norm, c->err));
    QF_TRY(qf_lin(c, &L->kv_b, l, -1, H * (cfg->qk_nope_head_dim + cfg->v_head_dim), cfg->kv_lora_rank, -1,
                  "model.layers.%d.self_attn.kv_b_proj", l));
    if (cfg->index_topk > 0) { /* DeepseekV32Indexer's Linears (shapes from the checkpoint: not run) */
        snprintf(name, sizeof name, "model.layers.%d.self_attn.indexer.wq_b", l);
        int64_t qrows = qf_module_rows(c->ck, name);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.indexer.wk", l);
        int64_t krows = qf_module_rows(c->ck, name);
        snprintf(name, sizeof name, "model.layers.%d.self_attn.indexer.weights_proj", l);
        int64_t wrows = qf_module_rows(c->ck, name);
        if (qrows <= 0 || krows <= 0 || wrows <= 0)
            return qf_fail(c->err, QF_ERR_FORMAT, "%s: layer %d of deepseek_v32 lacks its indexer (self_attn.indexer."
                           "wq_b / wk / weights_proj)", c->ck->dir, l);
        QF_TRY(qf_lin(c, &L->idx_wq_b, l, -1, qrows, cfg->q_lora_rank, -1, "model.layers.%d.self_attn.indexer.wq_b", l));
        QF_TRY(qf_lin(c, &L->idx_wk, l, -1, krows, hid, -1, "model.layers.%d.self_attn.indexer.wk", l));
        QF_TRY(qf_lin(c, &L->idx_wproj, l, -1, wrows, hid, -1, "model.layers.%d.self_attn.indexer.weights_proj", l));
    }
    return qf_lin(c, &L->o, l, -1, hid, H * cfg->v_head_dim, bias, "model.layers.%d.self_attn.o_proj", l);
}

static qf_status qf_load_layer(qf_load_ctx *c, const qf_model_config *cfg, int l, qf_layer *L)
{
    const int64_t hid = cfg->hidden_size, hd = cfg->head_dim;
    const int64_t qd = (int64_t)cfg->n_heads * hd, kvd = (int64_t)cfg->n_kv_heads * hd;
    const qf_family *fam = c->fam;
    const float off = fam->norm_offset;
    char name[QF_LINEAR_NAME_MAX];
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    QF_TRY(qf_load_vec_off(c->ck, name, hid, off, &L->attn_norm, c->err));
    /* the FFN's input norm; with sandwich norms post_attention_layernorm is the attention output's */
    snprintf(name, sizeof name, "model.layers.%d.%s.weight", l,
             fam->sandwich ? "pre_feedforward_layernorm" : "post_attention_layernorm");
    QF_TRY(qf_load_vec_off(c->ck, name, hid, off, &L->ffn_norm, c->err));
    if (fam->sandwich) {
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        QF_TRY(qf_load_vec_off(c->ck, name, hid, off, &L->post_attn_norm, c->err));
        snprintf(name, sizeof name, "model.layers.%d.post_feedforward_layernorm.weight", l);
        QF_TRY(qf_load_vec_off(c->ck, name, hid, off, &L->post_ffn_norm, c->err));
    }
    int qkv_bias = cfg->attention_bias ? 1 : -1;
    if (L->linear_attn) {
        QF_TRY(qf_load_deltanet(c, cfg, l, L));
    } else if (fam->mla) {
        QF_TRY(qf_load_mla(c, cfg, l, L));
    } else if (fam->attn_gate) { /* Qwen3-Next: q_proj holds [query; gate] per head */
        QF_TRY(qf_lin(c, &L->q, l, -1, 2 * qd, hid, qkv_bias, "model.layers.%d.self_attn.q_proj", l));
        QF_TRY(qf_lin(c, &L->k, l, -1, kvd, hid, qkv_bias, "model.layers.%d.self_attn.k_proj", l));
        QF_TRY(qf_lin(c, &L->v, l, -1, kvd, hid, qkv_bias, "model.layers.%d.self_attn.v_proj", l));
    } else if (fam->fused_qkv) {
        QF_TRY(qf_lin(c, &L->q, l, -1, qd + 2 * kvd, hid, qkv_bias, "model.layers.%d.self_attn.qkv_proj", l));
    } else {
        QF_TRY(qf_lin(c, &L->q, l, -1, qd, hid, qkv_bias, "model.layers.%d.self_attn.q_proj", l));
        QF_TRY(qf_lin(c, &L->k, l, -1, kvd, hid, qkv_bias, "model.layers.%d.self_attn.k_proj", l));
        QF_TRY(qf_lin(c, &L->v, l, -1, kvd, hid, qkv_bias, "model.layers.%d.self_attn.v_proj", l));
    }
    if (!L->linear_attn && !fam->mla) QF_TRY(qf_lin(c, &L->o, l, -1, hid, qd, -1, "model.layers.%d.self_attn.o_proj", l));
    if (fam->attn_sinks) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.sinks", l);
        QF_TRY(qf_load_vec_off(c->ck, name, cfg->n_heads, 0.0f, &L->sinks, c->err));
    }
    if (cfg->qk_norm && !L->linear_attn) {
        snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", l);
        QF_TRY(qf_load_vec_off(c->ck, name, hd, off, &L->q_norm, c->err));
        snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", l);
        QF_TRY(qf_load_vec_off(c->ck, name, hd, off, &L->k_norm, c->err));
    }
    int mixtral = strcmp(cfg->model_type, "mixtral") == 0;
    const char *blk = mixtral ? "block_sparse_moe" : fam->ffn_block ? fam->ffn_block : "mlp";
    snprintf(name, sizeof name, "model.layers.%d.%s.%s", l, blk, fam->router ? fam->router : "gate");
    if (qf_has_module(c->ck, name)) return qf_load_moe(c, cfg, l, L, mixtral);
    if (mixtral) return qf_fail(c->err, QF_ERR_FORMAT, "%s: missing tensor '%s.weight'", c->ck->dir, name);
    if (fam->fused_gate_up) {
        QF_TRY(qf_lin(c, &L->gate, l, -1, 2 * (int64_t)cfg->intermediate_size, hid, -1, "model.layers.%d.mlp.gate_up_proj", l));
        QF_TRY(qf_lin(c, &L->down, l, -1, hid, cfg->intermediate_size, -1, "model.layers.%d.mlp.down_proj", l));
        return QF_OK;
    }
    const int64_t F = cfg->mlp_intermediate_size > 0 ? cfg->mlp_intermediate_size : cfg->intermediate_size;
    QF_TRY(qf_lin(c, &L->gate, l, -1, F, hid, -1, "model.layers.%d.%s.gate_proj", l, blk));
    QF_TRY(qf_lin(c, &L->up, l, -1, F, hid, -1, "model.layers.%d.%s.up_proj", l, blk));
    QF_TRY(qf_lin(c, &L->down, l, -1, hid, F, -1, "model.layers.%d.%s.down_proj", l, blk));
    return QF_OK;
}

static void qf_layer_free(qf_layer *L, int n_experts)
{
    free(L->attn_norm);
    free(L->ffn_norm);
    free(L->post_attn_norm);
    free(L->post_ffn_norm);
    free(L->q_norm);
    free(L->k_norm);
    qf_linear_free(&L->q);
    qf_linear_free(&L->k);
    qf_linear_free(&L->v);
    qf_linear_free(&L->o);
    qf_linear_free(&L->gate);
    qf_linear_free(&L->up);
    qf_linear_free(&L->down);
    qf_linear_free(&L->router);
    free(L->router_bias);
    if (L->experts)
        for (int i = 0; i < 3 * n_experts; i++) qf_linear_free(&L->experts[i]);
    free(L->experts);
    qf_linear_free(&L->sh_gate);
    qf_linear_free(&L->sh_up);
    qf_linear_free(&L->sh_down);
    qf_linear_free(&L->sh_router);
    free(L->sinks);
    free(L->expert_w);
    free(L->conv_w);
    free(L->conv_b);
    free(L->dt_bias);
    free(L->ssm_a);
    free(L->ssm_d);
    free(L->neg_a);
    free(L->gnorm);
    qf_linear_free(&L->in_a);
    qf_linear_free(&L->q_a);
    qf_linear_free(&L->kv_a);
    qf_linear_free(&L->kv_b);
    free(L->q_a_norm);
    free(L->kv_a_norm);
    qf_linear_free(&L->idx_wq_b);
    qf_linear_free(&L->idx_wk);
    qf_linear_free(&L->idx_wproj);
}

void qf_model_free(qf_model *m)
{
    if (!m) return;
    if (m->layers)
        for (int l = 0; l < m->cfg.n_layers; l++) qf_layer_free(&m->layers[l], m->cfg.n_experts);
    free(m->layers);
    free(m->final_norm);
    qf_rope_free(&m->rope);
    qf_rope_free(&m->rope_local);
    qf_linear_free(&m->lm_head);
    qf_checkpoint_free(m->ck);
    qf_config_free(&m->cfg);
    free(m);
}

int qf_model_linears(qf_model *m, qf_linear **out, int cap)
{
    int n = 0;
#define QF_ADD(p)                                          \
    do {                                                   \
        if ((p)->kind) {                                   \
            if (n < cap) out[n] = (p);                     \
            n++;                                           \
        }                                                  \
    } while (0)
    for (int l = 0; l < m->cfg.n_layers; l++) {
        qf_layer *L = &m->layers[l];
        QF_ADD(&L->q);
        QF_ADD(&L->k);
        QF_ADD(&L->v);
        QF_ADD(&L->in_a);
        QF_ADD(&L->o);
        QF_ADD(&L->q_a); /* MLA */
        QF_ADD(&L->kv_a);
        QF_ADD(&L->kv_b);
        QF_ADD(&L->idx_wq_b); /* deepseek_v32's indexer */
        QF_ADD(&L->idx_wk);
        QF_ADD(&L->idx_wproj);
        QF_ADD(&L->gate);
        QF_ADD(&L->up);
        QF_ADD(&L->down);
        QF_ADD(&L->router);
        if (L->experts)
            for (int i = 0; i < 3 * m->cfg.n_experts; i++) QF_ADD(&L->experts[i]);
        QF_ADD(&L->sh_gate);
        QF_ADD(&L->sh_up);
        QF_ADD(&L->sh_down);
        QF_ADD(&L->sh_router);
    }
    QF_ADD(&m->lm_head);
#undef QF_ADD
    return n;
}

int64_t qf_model_params(const qf_model *m)
{
    int64_t n = m->vocab_in * m->cfg.hidden_size;
    int cnt = qf_model_linears((qf_model *)m, NULL, 0);
    qf_linear **all = malloc((size_t)cnt * sizeof *all);
    if (!all) return n;
    qf_model_linears((qf_model *)m, all, cnt);
    for (int i = 0; i < cnt; i++) n += all[i]->rows * all[i]->cols;
    free(all);
    return n;
}

/* A source quantized in a format the runner does not run as packed Linears (DeepSeek / transformers
 * FP8 blocks, GPT-OSS MXFP4; and with float_source, compressed-tensors / ModelOpt FP8, which it
 * otherwise runs as served): its weights dequantized to bf16 (qf_quant_source.h) and every one
 * decoded now, since the runner keeps pointers to all of them (resident: the model's bf16 size,
 * not its FP8 one); the config's quantization_config no longer applies (*qc = NULL). */
static qf_status qf_load_source_quant(const char *dir, qf_checkpoint *ck, const json_t **qc, int float_source,
                                      qf_error *err)
{
    const char *method = *qc ? json_string_value(json_object_get(*qc, "quant_method")) : NULL;
    qf_qsource q;
    if (float_source && (!method || (strcmp(method, "fp8") != 0 && strcmp(method, "mxfp4") != 0))) {
        /* FP8 artifacts only; anything else quantized (an int4 artifact) stays packed, and the
         * caller refuses it as "already quantized" with its own message */
        qf_error ignored = {0};
        if (qf_qsource_detect(dir, ck, &q, &ignored) != QF_OK ||
            (q.kind != QF_QSOURCE_CT_FP8 && q.kind != QF_QSOURCE_MODELOPT_FP8))
            return QF_OK;
    } else {
        if (!method || (strcmp(method, "fp8") != 0 && strcmp(method, "mxfp4") != 0)) return QF_OK;
        QF_TRY(qf_qsource_detect(dir, ck, &q, err));
    }
    QF_TRY(qf_qsource_dequantize(ck, &q, err));
    for (int i = 0; i < ck->n_tensors; i++) QF_TRY(qf_checkpoint_acquire(ck, &ck->tensors[i], err));
    *qc = NULL;
    return QF_OK;
}

static qf_status qf_model_load_body(qf_model *m, const char *dir, qf_error *err)
{
    /* 1. config.json: architecture and sizes */
    char *cfg_path = qf_path_join(dir, "config.json");
    if (!cfg_path) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    qf_status st = qf_config_load(cfg_path, &m->cfg, err);
    const qf_model_config *cfg = &m->cfg;
    if (!st && qf_config_runnable(cfg, err)) { /* name the file: the message is about its model_type */
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        st = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: %s", cfg_path, why);
    }
    if (!st && !(m->fam = qf_family_find(cfg->model_type)))
        st = qf_fail(err, QF_ERR_UNSUPPORTED, "%s/config.json: model_type '%s' has no row in the runner's family table",
                     dir, cfg->model_type);
    if (!st && (cfg->head_dim % 2 || cfg->head_dim > 1024 || cfg->hidden_size <= 0 || cfg->n_layers <= 0 ||
                cfg->intermediate_size < 0))
        st = qf_fail(err, QF_ERR_UNSUPPORTED, "%s/config.json: head_dim %d / hidden_size %d not supported by the "
                     "runner (even head_dim <= 1024)", dir, cfg->head_dim, cfg->hidden_size);
    /* per-layer sliding windows, refused here (before any tensor is mapped) when unsupported */
    int *window = st ? NULL : calloc((size_t)cfg->n_layers, sizeof(int));
    if (!st && !window) st = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    if (!st) st = qf_config_attn_windows(cfg_path, cfg, window, err);
    /* linear-attention layers (Qwen3-Next's gated DeltaNet), refused before any tensor is mapped */
    int *linear = st ? NULL : calloc((size_t)cfg->n_layers, sizeof(int));
    if (!st && !linear) st = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    if (!st) st = qf_config_linear_layers(cfg_path, cfg, linear, err);
    if (!st) st = qf_deltanet_check(m, cfg_path, err);
    free(cfg_path);
    if (!st && !(m->layers = calloc((size_t)cfg->n_layers, sizeof(qf_layer))))
        st = qf_fail(err, QF_ERR_NOMEM, "out of memory for %d layers", cfg->n_layers);
    for (int l = 0; !st && l < cfg->n_layers; l++) m->layers[l].attn_window = window[l];
    for (int l = 0; !st && l < cfg->n_layers; l++) m->layers[l].linear_attn = linear[l];
    free(window);
    free(linear);
    if (st) return st;
    /* 2. the tensors */
    QF_TRY(qf_checkpoint_open(dir, &m->ck, err));
    qf_load_ctx c = {m->ck, json_object_get(cfg->json, "quantization_config"), m->fam, err};
    if (!json_is_object(c.qc)) c.qc = NULL;
    QF_TRY(qf_load_source_quant(dir, m->ck, &c.qc, m->opt.float_source, err));
    /* 3. embedding */
    const char *emb_name = m->fam->hybrid ? "backbone.embeddings.weight" : "model.embed_tokens.weight";
    const qf_tensor *emb = qf_checkpoint_find(m->ck, emb_name);
    if (!emb) return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor '%s'", dir, emb_name);
    if (emb->ndim != 2 || emb->shape[1] != cfg->hidden_size ||
        (emb->dtype != QF_DTYPE_F32 && emb->dtype != QF_DTYPE_BF16 && emb->dtype != QF_DTYPE_F16))
        return qf_fail(err, QF_ERR_FORMAT, "%s: '%s' must be a float [vocab, %d] matrix", dir, emb_name,
                       cfg->hidden_size);
    m->embed = emb->data;
    m->embed_dtype = emb->dtype;
    m->vocab_in = emb->shape[0];
    /* 4. decoder layers */
    if (m->fam->hybrid) QF_TRY(qf_load_hybrid_layers(&c, cfg, m->layers));
    else
        for (int l = 0; l < cfg->n_layers; l++) QF_TRY(qf_load_layer(&c, cfg, l, &m->layers[l]));
    m->mixer_width = (int64_t)cfg->n_heads * cfg->head_dim;
    for (int l = 0; l < cfg->n_layers; l++)
        if (m->layers[l].o.cols > m->mixer_width) m->mixer_width = m->layers[l].o.cols;
    /* 5. final norm and lm_head (or the tied embedding) */
    QF_TRY(qf_load_vec_off(m->ck, m->fam->hybrid ? "backbone.norm_f.weight" : "model.norm.weight", cfg->hidden_size,
                           m->fam->norm_offset, &m->final_norm, err));
    if (qf_has_module(m->ck, "lm_head")) {
        m->vocab_out = qf_module_rows(m->ck, "lm_head");
        if (m->vocab_out <= 0) return qf_fail(err, QF_ERR_FORMAT, "%s: 'lm_head' has no 2-D weight", dir);
        QF_TRY(qf_lin(&c, &m->lm_head, -1, -1, m->vocab_out, cfg->hidden_size, 0, "lm_head"));
    } else if (cfg->tie_word_embeddings) {
        m->vocab_out = m->vocab_in;
        qf_linear *h = &m->lm_head;
        snprintf(h->name, sizeof h->name, "lm_head");
        h->layer = h->expert = -1;
        h->kind = QF_LINEAR_FLOAT;
        h->rows = m->vocab_in;
        h->cols = cfg->hidden_size;
        h->weight = m->embed;
        h->wdtype = m->embed_dtype;
    } else {
        return qf_fail(err, QF_ERR_FORMAT, "%s: missing tensor 'lm_head.weight' (and tie_word_embeddings is false)",
                       dir);
    }
    /* 6. RoPE (Gemma 3: a second one, default type, for the sliding layers), scales */
    int64_t len = cfg->max_position_embeddings;
    len = len < 512 ? 512 : len > 8192 ? 8192 : len;
    QF_TRY(qf_rope_init(&m->rope, cfg, len, err));
    if (cfg->rope_local_theta > 0) {
        qf_model_config local = *cfg;
        local.rope_theta = cfg->rope_local_theta;
        local.rope_type = QF_ROPE_DEFAULT;
        QF_TRY(qf_rope_init(&m->rope_local, &local, len, err));
    }
    for (int l = 0; l < cfg->n_layers; l++) {
        qf_layer *L = &m->layers[l];
        L->rope = cfg->rope_local_theta > 0 && L->attn_window > 0 ? &m->rope_local : &m->rope;
    }
    if (m->fam->llama4_attention) QF_TRY(qf_llama4_layers(m, dir, err)); /* NoPE and chunked layers */
    /* as transformers: the Python double's power, rounded to float32 */
    m->embed_scale = m->fam->scale_embed ? (float)sqrt((double)cfg->hidden_size) : 1.0f;
    m->attn_scale = cfg->query_pre_attn_scalar > 0 ? (float)pow(cfg->query_pre_attn_scalar, -0.5)
                                                   : 1.0f / sqrtf((float)cfg->head_dim);
    if (m->fam->mla) /* DeepseekV3Attention.scaling: Python floats, rounded once */
        m->attn_scale = (float)(pow(cfg->qk_nope_head_dim + cfg->qk_rope_head_dim, -0.5) * cfg->attn_mscale);
    if (m->opt.moe_force_expert >= 0 && m->opt.moe_force_expert >= cfg->n_experts)
        return qf_fail(err, QF_ERR_USAGE, "moe_force_expert %d: the model has %d experts", m->opt.moe_force_expert,
                       cfg->n_experts);
    /* activation emulation switch and the packed count */
    int cnt = qf_model_linears(m, NULL, 0);
    qf_linear **all = malloc((size_t)cnt * sizeof *all);
    if (!all) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    qf_model_linears(m, all, cnt);
    for (int i = 0; i < cnt; i++) {
        const char *nm = all[i]->name, *dot = strrchr(nm, '.');
        if (all[i]->kind == QF_LINEAR_PACKED) m->n_linear_packed++;
        /* an FFN's width is its down projection's input (gate_up_proj is twice that) */
        if (dot && (strcmp(dot, ".down_proj") == 0 || strcmp(dot, ".w2") == 0) && all[i]->cols > m->ffn_max)
            m->ffn_max = all[i]->cols;
        if (!m->opt.act_quant) all[i]->act_enabled = 0;
    }
    free(all);
    return QF_OK;
}

qf_status qf_model_load(const char *dir, const qf_model_options *opt, qf_model **out, qf_error *err)
{
    *out = NULL;
    qf_model *m = calloc(1, sizeof *m);
    if (!m) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    if (opt) m->opt = *opt;
    else qf_model_options_default(&m->opt);
    qf_status st = qf_model_load_body(m, dir, err);
    if (st) {
        qf_model_free(m);
        return st;
    }
    *out = m;
    return QF_OK;
}
