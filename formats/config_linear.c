/* config_linear.c - which layers are linear attention (qf_config.h, qf_config_linear_layers).
 *
 * Qwen3-Next alternates gated DeltaNet layers ("linear_attention") with gated full attention
 * ("full_attention"), and so does Qwen3.5-MoE.  transformers 5.23's Qwen3NextConfig saves the list as layer_types; a
 * config without it has full_attention_interval (default 4): layer l is full when (l + 1) is a
 * multiple of it.  A name the runner does not implement is refused, never run as another kind.
 */
#include <stdio.h>
#include <string.h>

#include "qf_config.h"

qf_status qf_config_linear_layers(const char *path, const qf_model_config *c, int *linear, qf_error *err)
{
    for (int l = 0; l < c->n_layers; l++) linear[l] = 0;
    if (strcmp(c->model_type, "qwen3_next") != 0 && strcmp(c->model_type, "qwen3_5_moe_text") != 0) return QF_OK;
    json_t *o = json_object_get(c->json, "text_config");
    if (!json_is_object(o)) o = c->json;
    json_t *types = json_object_get(o, "layer_types");
    if (types && !json_is_null(types)) {
        if (!json_is_array(types) || json_array_size(types) != (size_t)c->n_layers)
            return qf_fail(err, QF_ERR_FORMAT, "%s: layer_types must be a list of num_hidden_layers (%d) names", path,
                           c->n_layers);
        for (int l = 0; l < c->n_layers; l++) {
            const char *t = json_string_value(json_array_get(types, (size_t)l));
            if (t && strcmp(t, "linear_attention") == 0) linear[l] = 1;
            else if (!t || strcmp(t, "full_attention") != 0)
                return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: layer_types[%d] is '%.40s'; the runner implements "
                               "linear_attention and full_attention for %s", path, l, t ? t : "(not a string)",
                               c->model_type);
        }
        return QF_OK;
    }
    json_t *iv = json_object_get(o, "full_attention_interval");
    json_int_t every = json_is_integer(iv) ? json_integer_value(iv) : 4;
    if (iv && !json_is_integer(iv)) every = 0;
    if (every <= 0 || every > (1 << 30))
        return qf_fail(err, QF_ERR_FORMAT, "%s: full_attention_interval must be a positive integer", path);
    for (int l = 0; l < c->n_layers; l++) linear[l] = (l + 1) % every != 0;
    return QF_OK;
}
