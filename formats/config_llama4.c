/* config_llama4.c - Llama 4's per-layer attention kinds (qf_config_llama4_layers, qf_config.h).
 *
 * The rules are transformers 5.23's Llama4TextConfig.__post_init__ and modeling_llama4.py:
 *   no_rope_layers[l]  1: layer l applies RoPE (and the L2 q/k norm when use_qk_norm), 0: a NoPE
 *                      layer (attention temperature tuning instead); absent or empty: 0 for every
 *                      no_rope_layer_interval-th layer (default 4), 1 otherwise.
 *   layer_types[l]     "chunked_attention": query i sees keys j <= i of its own chunk of
 *                      attention_chunk_size tokens (masking_utils' chunked_overlay:
 *                      kv_idx // C == q_idx // C); "full_attention": every earlier key.  Absent:
 *                      the RoPE layers are chunked, the NoPE layers full.
 * A layer type the runner does not know, a list of another length or a chunked layer without a
 * positive attention_chunk_size is refused naming the file and the key.
 */
#include <stdio.h>
#include <string.h>

#include "qf_config.h"

qf_status qf_config_llama4_layers(const char *path, const qf_model_config *c, int *use_rope, int *chunk,
                                  qf_error *err)
{
    json_t *o = json_object_get(c->json, "text_config");
    if (!json_is_object(o)) o = c->json;
    const int n = c->n_layers;
    json_t *nope = json_object_get(o, "no_rope_layers"), *types = json_object_get(o, "layer_types");
    json_t *iv = json_object_get(o, "no_rope_layer_interval"), *cs = json_object_get(o, "attention_chunk_size");
    const json_int_t interval = json_is_integer(iv) ? json_integer_value(iv) : 4;
    if (interval <= 0) return qf_fail(err, QF_ERR_FORMAT, "%s: no_rope_layer_interval must be positive", path);
    const int have_nope = json_is_array(nope) && json_array_size(nope) > 0; /* [] means the default too */
    if (have_nope && json_array_size(nope) != (size_t)n)
        return qf_fail(err, QF_ERR_FORMAT, "%s: no_rope_layers has %zu entries for %d layers", path,
                       json_array_size(nope), n);
    if (json_is_array(types) && json_array_size(types) != (size_t)n)
        return qf_fail(err, QF_ERR_FORMAT, "%s: layer_types has %zu entries for %d layers", path,
                       json_array_size(types), n);
    /* null (no chunking configured) is refused only where a layer is chunked */
    const json_int_t C = json_is_null(cs) ? 0 : json_is_integer(cs) ? json_integer_value(cs) : !cs ? 8192 : -1;
    for (int l = 0; l < n; l++) {
        json_t *v = have_nope ? json_array_get(nope, (size_t)l) : NULL;
        if (have_nope && !json_is_integer(v) && !json_is_boolean(v))
            return qf_fail(err, QF_ERR_FORMAT, "%s: no_rope_layers[%d] is not 0 or 1", path, l);
        use_rope[l] = have_nope ? (json_is_boolean(v) ? json_is_true(v) : json_integer_value(v) != 0)
                                : (int)((l + 1) % interval != 0);
        const char *t = json_is_array(types) ? json_string_value(json_array_get(types, (size_t)l)) : NULL;
        int chunked = use_rope[l];
        if (json_is_array(types)) {
            if (t && strcmp(t, "chunked_attention") == 0) chunked = 1;
            else if (t && strcmp(t, "full_attention") == 0) chunked = 0;
            else
                return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: layer_types[%d] is '%.40s'; the runner implements "
                               "chunked_attention and full_attention for llama4_text", path, l, t ? t : "(not a string)");
        }
        if (chunked && !(C > 0 && C <= (1 << 30)))
            return qf_fail(err, QF_ERR_FORMAT, "%s: layer %d is chunked_attention but attention_chunk_size is not a "
                           "positive integer", path, l);
        chunk[l] = chunked ? (int)C : 0;
    }
    return QF_OK;
}
