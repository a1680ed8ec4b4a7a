/* model_hybrid.c - the layers of a hybrid family (nemotron_h) as the runner holds them (see
 * qf_model.h: qf_layer.mixer, model_internal.h).
 *
 * transformers 5.23 (modeling_nemotron_h.py): NemotronHBlock is
 *   h = h + mixer(norm(h))
 * with ONE mixer per layer, named by config.layers_block_type (config_hybrid.c):
 *   Mamba-2     mixer.in_proj -> [z | x B C | dt], conv1d (+ bias), dt_bias, A_log, D,
 *               mixer.norm (gated, grouped RMSNorm), mixer.out_proj         (model_mamba.c)
 *   attention   mixer.q/k/v/o_proj, no bias, no RoPE
 *   mlp         mixer.up_proj -> relu^2 -> mixer.down_proj (no gate)
 *   moe         mixer.gate router (sigmoid, e_score_correction_bias, grouped top-k as GLM-4.5),
 *               experts.E.up_proj / down_proj and shared_experts (relu^2, no gate, added unscaled)
 * The block's norm is held as attn_norm for the two sequence mixers and as ffn_norm for the
 * MLP, so the layer steps (qf_layer_steps.h) run each mixer as the attention or the FFN block
 * of a Llama layer; in_proj is held in q and out_proj in o, which makes calibration quantize
 * them as the q/k/v and o groups (inputs: the normed h, and the gated norm's output).  The
 * Mamba vectors are not Linears and are copied to float32 (A as -exp(A_log), as the mixer
 * computes it in float32).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

static qf_status qf_load_mamba(qf_load_ctx *c, const qf_model_config *cfg, int l, qf_layer *L)
{
    const int64_t hid = cfg->hidden_size, H = cfg->mamba_n_heads, I = H * cfg->mamba_head_dim,
                  CD = I + 2 * (int64_t)cfg->mamba_n_groups * cfg->ssm_state_size, K = cfg->conv_kernel;
    const int bias = cfg->mamba_bias ? 1 : 0;
    char name[QF_LINEAR_NAME_MAX];
    QF_TRY(qf_lin(c, &L->q, l, -1, I + CD + H, hid, bias, "backbone.layers.%d.mixer.in_proj", l));
    QF_TRY(qf_lin(c, &L->o, l, -1, hid, I, bias, "backbone.layers.%d.mixer.out_proj", l));
    snprintf(name, sizeof name, "backbone.layers.%d.mixer.conv1d.weight", l); /* (CD, 1, K) */
    QF_TRY(qf_load_vec_off(c->ck, name, CD * K, 0.0f, &L->conv_w, c->err));
    if (cfg->use_conv_bias) {
        snprintf(name, sizeof name, "backbone.layers.%d.mixer.conv1d.bias", l);
        QF_TRY(qf_load_vec_off(c->ck, name, CD, 0.0f, &L->conv_b, c->err));
    }
    snprintf(name, sizeof name, "backbone.layers.%d.mixer.dt_bias", l);
    QF_TRY(qf_load_vec_off(c->ck, name, H, 0.0f, &L->dt_bias, c->err));
    snprintf(name, sizeof name, "backbone.layers.%d.mixer.A_log", l);
    QF_TRY(qf_load_vec_off(c->ck, name, H, 0.0f, &L->ssm_a, c->err));
    for (int64_t h = 0; h < H; h++) L->ssm_a[h] = -expf(L->ssm_a[h]);
    snprintf(name, sizeof name, "backbone.layers.%d.mixer.D", l);
    QF_TRY(qf_load_vec_off(c->ck, name, H, 0.0f, &L->ssm_d, c->err));
    snprintf(name, sizeof name, "backbone.layers.%d.mixer.norm.weight", l);
    return qf_load_vec_off(c->ck, name, I, 0.0f, &L->gnorm, c->err);
}

/* NemotronHMoE: mixer.gate (+ e_score_correction_bias), experts.E.{up,down}_proj and
 * shared_experts.{up,down}_proj, all ungated (gate Linears left empty). */
static qf_status qf_load_hybrid_moe(qf_load_ctx *c, const qf_model_config *cfg, int l, qf_layer *L)
{
    const int64_t hid = cfg->hidden_size, E = cfg->n_experts, F = cfg->moe_intermediate_size,
                  S = cfg->shared_expert_intermediate_size;
    const int mlp_bias = json_is_true(json_object_get(cfg->json, "mlp_bias"));
    char name[QF_LINEAR_NAME_MAX];
    L->is_moe = 1;
    QF_TRY(qf_lin(c, &L->router, l, -1, E, hid, 0, "backbone.layers.%d.mixer.gate", l));
    snprintf(name, sizeof name, "backbone.layers.%d.mixer.gate.e_score_correction_bias", l);
    QF_TRY(qf_load_vec_off(c->ck, name, E, 0.0f, &L->router_bias, c->err));
    if (!(L->experts = calloc((size_t)(3 * E), sizeof(qf_linear))))
        return qf_fail(c->err, QF_ERR_NOMEM, "out of memory for %lld experts", (long long)E);
    for (int64_t e = 0; e < E; e++) {
        QF_TRY(qf_lin(c, &L->experts[3 * e + 1], l, (int)e, F, hid, 0, "backbone.layers.%d.mixer.experts.%d.up_proj", l,
                      (int)e));
        QF_TRY(qf_lin(c, &L->experts[3 * e + 2], l, (int)e, hid, F, 0, "backbone.layers.%d.mixer.experts.%d.down_proj",
                      l, (int)e));
    }
    L->has_shared = 1; /* NemotronHMoE always has its shared experts (moe_shared_expert_intermediate_size) */
    QF_TRY(qf_lin(c, &L->sh_up, l, -2, S, hid, mlp_bias, "backbone.layers.%d.mixer.shared_experts.up_proj", l));
    return qf_lin(c, &L->sh_down, l, -2, hid, S, mlp_bias, "backbone.layers.%d.mixer.shared_experts.down_proj", l);
}

qf_status qf_load_hybrid_layers(qf_load_ctx *c, const qf_model_config *cfg, qf_layer *layers)
{
    const int64_t hid = cfg->hidden_size, hd = cfg->head_dim;
    const int64_t qd = (int64_t)cfg->n_heads * hd, kvd = (int64_t)cfg->n_kv_heads * hd;
    const int mlp_bias = json_is_true(json_object_get(cfg->json, "mlp_bias"));
    char *kinds = malloc((size_t)cfg->n_layers + 1), name[QF_LINEAR_NAME_MAX];
    if (!kinds) return qf_fail(c->err, QF_ERR_NOMEM, "out of memory");
    qf_status st = qf_config_hybrid_kinds("config.json", cfg, kinds, c->err);
    for (int l = 0; !st && l < cfg->n_layers; l++) {
        qf_layer *L = &layers[l];
        L->mixer = kinds[l];
        snprintf(name, sizeof name, "backbone.layers.%d.norm.weight", l);
        st = qf_load_vec_off(c->ck, name, hid, 0.0f,
                             L->mixer == QF_MIXER_MLP || L->mixer == QF_MIXER_MOE ? &L->ffn_norm : &L->attn_norm, c->err);
        if (st) break;
        if (L->mixer == QF_MIXER_MAMBA) {
            st = qf_load_mamba(c, cfg, l, L);
        } else if (L->mixer == QF_MIXER_ATTN) {
            if (!(st = qf_lin(c, &L->q, l, -1, qd, hid, 0, "backbone.layers.%d.mixer.q_proj", l)) &&
                !(st = qf_lin(c, &L->k, l, -1, kvd, hid, 0, "backbone.layers.%d.mixer.k_proj", l)) &&
                !(st = qf_lin(c, &L->v, l, -1, kvd, hid, 0, "backbone.layers.%d.mixer.v_proj", l)))
                st = qf_lin(c, &L->o, l, -1, hid, qd, 0, "backbone.layers.%d.mixer.o_proj", l);
        } else if (L->mixer == QF_MIXER_MLP) { /* ungated: up_proj alone, gate left empty */
            const int64_t F = cfg->intermediate_size;
            if (!(st = qf_lin(c, &L->up, l, -1, F, hid, mlp_bias, "backbone.layers.%d.mixer.up_proj", l)))
                st = qf_lin(c, &L->down, l, -1, hid, F, mlp_bias, "backbone.layers.%d.mixer.down_proj", l);
        } else if (L->mixer == QF_MIXER_MOE) {
            st = qf_load_hybrid_moe(c, cfg, l, L);
        } else {
            st = qf_fail(c->err, QF_ERR_UNSUPPORTED, "config.json: layer %d's mixer '%c' is not run by the runner", l,
                         L->mixer);
        }
    }
    free(kinds);
    return st;
}
