/* config_hybrid.c - nemotron_h's config keys: the layer pattern and the Mamba-2 sizes (see
 * qf_config.h).
 *
 * transformers 5.23 (configuration_nemotron_h.py) names each layer's one mixer in
 * layers_block_type ("linear_attention", "full_attention", "mlp", "moe"; the legacy "mamba" and
 * "attention" are remapped to the first two) and reads the hub's older hybrid_override_pattern
 * ("M*-E", one character per layer) when the list is absent.  The Mamba mixer clamps dt below
 * at time_step_min (NemotronHMamba2Mixer.time_step_limit = (time_step_min, inf)); the config's
 * own time_step_limit key is not what the mixer uses, so it is not read.
 */
#include <stdio.h>
#include <string.h>

#include "qf_config.h"

static int qf_hyb_int(json_t *o, const char *key, int dflt, const char **bad)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return dflt;
    if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= 1 << 24)
        return (int)json_integer_value(v);
    if (json_is_boolean(v)) return json_is_true(v);
    if (!*bad) *bad = key;
    return dflt;
}

void qf_config_hybrid_keys(json_t *o, qf_model_config *c, const char **bad)
{
    json_t *eps = json_object_get(o, "layer_norm_epsilon");
    c->rms_norm_eps = json_is_number(eps) ? (float)json_number_value(eps) : 1e-5f;
    json_t *act = json_object_get(o, "mlp_hidden_act");
    snprintf(c->hidden_act_name, sizeof c->hidden_act_name, "%s", json_is_string(act) ? json_string_value(act) : "relu2");
    c->hidden_act = strcmp(c->hidden_act_name, "relu2") == 0 ? QF_FFN_ACT_RELU2 : QF_FFN_ACT_OTHER;
    c->attention_bias = 0; /* NemotronHAttention's projections have no bias whatever attention_bias says */
    c->mamba_n_heads = qf_hyb_int(o, "mamba_num_heads", 128, bad);
    c->mamba_head_dim = qf_hyb_int(o, "mamba_head_dim", 64, bad);
    c->ssm_state_size = qf_hyb_int(o, "ssm_state_size", 128, bad);
    c->mamba_n_groups = qf_hyb_int(o, "n_groups", qf_hyb_int(o, "mamba_n_groups", 8, bad), bad);
    c->conv_kernel = qf_hyb_int(o, "conv_kernel", qf_hyb_int(o, "mamba_d_conv", 4, bad), bad);
    c->use_conv_bias = qf_hyb_int(o, "use_conv_bias", qf_hyb_int(o, "mamba_conv_bias", 1, bad), bad);
    c->ssm_chunk_size = qf_hyb_int(o, "chunk_size", qf_hyb_int(o, "mamba_chunk_size", 128, bad), bad);
    c->mamba_bias = qf_hyb_int(o, "use_bias", 0, bad);
    json_t *tmin = json_object_get(o, "time_step_min");
    if (!json_is_number(tmin)) tmin = json_object_get(o, "mamba_dt_min");
    c->time_step_min = json_is_number(tmin) ? json_number_value(tmin) : 0.001;
    /* MoE layers (NemotronHMoE): NemotronHTopkRouter is GLM-4.5's sigmoid grouped routing */
    c->n_experts = qf_hyb_int(o, "n_routed_experts", 8, bad);
    c->n_experts_per_tok = qf_hyb_int(o, "num_experts_per_tok", 2, bad);
    c->moe_intermediate_size = qf_hyb_int(o, "moe_intermediate_size", 7688, bad);
    c->shared_expert_intermediate_size = qf_hyb_int(o, "moe_shared_expert_intermediate_size", 7688, bad);
    c->n_group = qf_hyb_int(o, "n_group", 1, bad);
    c->topk_group = qf_hyb_int(o, "topk_group", 1, bad);
    c->norm_topk_prob = qf_hyb_int(o, "norm_topk_prob", 1, bad);
    json_t *rsf = json_object_get(o, "routed_scaling_factor");
    c->routed_scaling_factor = json_is_number(rsf) ? json_number_value(rsf) : 1.0;
}

qf_status qf_config_hybrid_kinds(const char *path, const qf_model_config *c, char *kinds, qf_error *err)
{
    json_t *o = json_object_get(c->json, "text_config");
    if (!json_is_object(o)) o = c->json;
    json_t *list = json_object_get(o, "layers_block_type"), *pat = json_object_get(o, "hybrid_override_pattern");
    static const struct {
        const char *name;
        char kind;
    } names[] = {{"linear_attention", 'M'}, {"mamba", 'M'}, {"full_attention", '*'}, {"attention", '*'},
                 {"mlp", '-'}, {"moe", 'E'}};
    int n = json_is_array(list) ? (int)json_array_size(list) : json_is_string(pat) ? (int)json_string_length(pat) : -1;
    if (n != c->n_layers)
        return qf_fail(err, QF_ERR_FORMAT, "%s: layers_block_type / hybrid_override_pattern gives %d layers, "
                       "num_hidden_layers %d", path, n, c->n_layers);
    for (int l = 0; l < n; l++) {
        kinds[l] = 0;
        if (json_is_array(list)) {
            const char *s = json_string_value(json_array_get(list, l));
            for (size_t i = 0; s && i < sizeof names / sizeof *names; i++)
                if (strcmp(s, names[i].name) == 0) kinds[l] = names[i].kind;
        } else {
            char ch = json_string_value(pat)[l];
            kinds[l] = ch == 'M' || ch == '*' || ch == '-' || ch == 'E' ? ch : 0;
        }
        if (!kinds[l])
            return qf_fail(err, QF_ERR_FORMAT, "%s: %s[%d] is not a layer kind (linear_attention / mamba, "
                           "full_attention / attention, mlp, moe; or M * - E)", path,
                           json_is_array(list) ? "layers_block_type" : "hybrid_override_pattern", l);
    }
    kinds[n] = 0;
    return QF_OK;
}

qf_status qf_config_hybrid_runnable(const qf_model_config *c, json_t *o, qf_error *err)
{
    char kinds[4097];
    if (c->n_layers > 4096)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "config.json: %d layers (the runner's nemotron_h reads at most 4096)",
                       c->n_layers);
    QF_TRY(qf_config_hybrid_kinds("config.json", c, kinds, err));
    json_t *latent = json_object_get(o, "moe_latent_size");
    if (strchr(kinds, 'E') && latent && !json_is_null(latent))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "model_type 'nemotron_h': moe_latent_size is not supported by the runner "
                       "(experts on the hidden size only, moe_latent_size null)");
    if (strchr(kinds, 'E') && (c->n_experts <= 0 || c->n_experts_per_tok <= 0 || c->n_group <= 0 ||
                               c->topk_group <= 0 || c->topk_group > c->n_group || c->n_experts % c->n_group ||
                               c->n_experts_per_tok > c->n_experts / c->n_group * c->topk_group))
        return qf_fail(err, QF_ERR_FORMAT, "config.json: n_routed_experts %d / num_experts_per_tok %d / n_group %d / "
                       "topk_group %d are not a routing (n_group must divide the experts)", c->n_experts,
                       c->n_experts_per_tok, c->n_group, c->topk_group);
    json_t *act = json_object_get(o, "mamba_hidden_act");
    if (json_is_string(act) && strcmp(json_string_value(act), "silu") != 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "model_type 'nemotron_h': mamba_hidden_act '%.32s' is not supported by "
                       "the runner (silu)", json_string_value(act));
    if (strchr(kinds, 'M') &&
        (c->mamba_n_heads <= 0 || c->mamba_head_dim <= 0 || c->ssm_state_size <= 0 || c->mamba_n_groups <= 0 ||
         c->mamba_n_heads % c->mamba_n_groups || c->conv_kernel < 1 || c->conv_kernel > 64 ||
         !(c->time_step_min >= 0)))
        return qf_fail(err, QF_ERR_FORMAT, "config.json: mamba_num_heads %d / mamba_head_dim %d / ssm_state_size %d / "
                       "n_groups %d / conv_kernel %d / time_step_min %g are not a Mamba-2 mixer (n_groups must divide "
                       "the heads)", c->mamba_n_heads, c->mamba_head_dim, c->ssm_state_size, c->mamba_n_groups,
                       c->conv_kernel, c->time_step_min);
    return QF_OK;
}
