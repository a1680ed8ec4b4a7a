/* config_window.c - which layers attend through a sliding window, and how wide (qf_config.h).
 *
 * The rules are transformers 5.23's, per model_type (configuration_*.py and modeling_*.py):
 *   mistral, mixtral   every layer slides when sliding_window is set (mistral's default is
 *                      4096 when the key is absent, mixtral's is none); layer_types is ignored
 *                      (transformers only warns about it for mistral).
 *   qwen2, qwen3       the window exists only when use_sliding_window is true (default false;
 *                      sliding_window default 4096); layer l slides when layer_types[l] is
 *                      "sliding_attention", or, without layer_types, when l >= max_window_layers
 *                      (default 28).
 *   qwen2_moe          as qwen2, but without layer_types layer l slides when l is even,
 *                      l < max_window_layers and use_sliding_window.
 *   qwen3_moe          every layer slides when use_sliding_window and sliding_window are set.
 *   phi3               every layer slides when sliding_window is set (default none).
 *   gemma3_text        layer l slides when layer_types[l] is "sliding_attention", or, without
 *                      layer_types, when (l + 1) % sliding_window_pattern != 0 (default 6: five
 *                      sliding layers, then a full one); sliding_window default 4096.
 *   gpt_oss            layer l slides when layer_types[l] is "sliding_attention", or, without
 *                      layer_types, when l is even (GptOssConfig); sliding_window default 128.
 *   llama (and others) never.
 * A window of W tokens lets query i see keys j with i - W < j <= i (masking_utils.py
 * sliding_window_overlay: kv_idx > q_idx - sliding_window), i.e. W keys including itself.
 * Anything the runner cannot honour (another layer type, a sliding layer without a positive
 * window, a layer_types list of the wrong length) is refused naming the file and the key:
 * running full attention instead would give wrong numbers without a word.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "qf_config.h"

/* The object the hyper-parameters live in (text_config of a multimodal wrapper, else root). */
static json_t *qf_cfg_text(const qf_model_config *c)
{
    json_t *o = json_object_get(c->json, "text_config");
    return json_is_object(o) ? o : c->json;
}

/* sliding_window: absent -> dflt, null -> 0 (none), a positive integer -> it, 0 -> -1 (a window
 * that masks every key: refused where it would be used). */
static qf_status qf_cfg_window_size(const char *path, json_t *o, int dflt, int *w, qf_error *err)
{
    json_t *v = json_object_get(o, "sliding_window");
    *w = dflt;
    if (!v) return QF_OK;
    if (json_is_null(v)) *w = 0;
    else if (json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) <= (1 << 30))
        *w = json_integer_value(v) ? (int)json_integer_value(v) : -1;
    else return qf_fail(err, QF_ERR_FORMAT, "%s: sliding_window must be a non-negative integer or null", path);
    return QF_OK;
}

static int qf_cfg_flag(json_t *o, const char *key, int dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* Layer l's type from layer_types: 1 sliding, 0 full (transformers' legacy "attention" too). */
static qf_status qf_cfg_layer_type(const char *path, json_t *types, int l, int *sliding, qf_error *err)
{
    const char *t = json_string_value(json_array_get(types, (size_t)l));
    if (t && (strcmp(t, "full_attention") == 0 || strcmp(t, "attention") == 0)) *sliding = 0;
    else if (t && strcmp(t, "sliding_attention") == 0) *sliding = 1;
    else
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: layer_types[%d] is '%.40s'; the runner implements "
                       "full_attention and sliding_attention only", path, l, t ? t : "(not a string)");
    return QF_OK;
}

qf_status qf_config_attn_windows(const char *path, const qf_model_config *c, int *window, qf_error *err)
{
    json_t *o = qf_cfg_text(c);
    const char *mt = c->model_type;
    int mistral = strcmp(mt, "mistral") == 0, mixtral = strcmp(mt, "mixtral") == 0;
    int qwen = strcmp(mt, "qwen2") == 0 || strcmp(mt, "qwen3") == 0, qwen2_moe = strcmp(mt, "qwen2_moe") == 0;
    int qwen3_moe = strcmp(mt, "qwen3_moe") == 0, phi3 = strcmp(mt, "phi3") == 0;
    int gemma3 = strcmp(mt, "gemma3_text") == 0, gpt_oss = strcmp(mt, "gpt_oss") == 0;
    for (int l = 0; l < c->n_layers; l++) window[l] = 0;
    if (!(mistral || mixtral || qwen || qwen2_moe || qwen3_moe || phi3 || gemma3 || gpt_oss)) return QF_OK;
    int w = 0;
    QF_TRY(qf_cfg_window_size(path, o, mixtral || phi3 ? 0 : gpt_oss ? 128 : 4096, &w, err));
    if ((qwen || qwen2_moe || qwen3_moe) && !qf_cfg_flag(o, "use_sliding_window", 0)) w = 0;
    if (w < 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: sliding_window is 0, which masks every key (transformers "
                       "gives NaN); expected a positive window or null", path);
    if (mistral || mixtral || qwen3_moe || phi3) {
        for (int l = 0; l < c->n_layers; l++) window[l] = w;
        return QF_OK;
    }
    json_t *types = json_object_get(o, "layer_types");
    if (types && !json_is_null(types) && (!json_is_array(types) || json_array_size(types) != (size_t)c->n_layers))
        return qf_fail(err, QF_ERR_FORMAT, "%s: layer_types must be a list of num_hidden_layers (%d) names", path,
                       c->n_layers);
    json_t *mwl = json_object_get(o, "max_window_layers");
    /* clamped, not cut: 2^32 + 1 layers means every layer, not layer 1 */
    json_int_t mwl_v = json_is_integer(mwl) ? json_integer_value(mwl) : 28;
    int max_window_layers = mwl_v > INT_MAX ? INT_MAX : mwl_v < 0 ? 0 : (int)mwl_v;
    json_t *pat = json_object_get(o, "sliding_window_pattern");
    if (!json_is_integer(pat)) pat = json_object_get(o, "_sliding_window_pattern");
    json_int_t pat_v = json_is_integer(pat) ? json_integer_value(pat) : 6;
    if (gemma3 && !json_is_array(types) && (pat_v <= 0 || pat_v > INT_MAX))
        return qf_fail(err, QF_ERR_FORMAT, "%s: sliding_window_pattern must be a positive integer", path);
    int pattern = pat_v > 0 && pat_v <= INT_MAX ? (int)pat_v : 6;
    for (int l = 0; l < c->n_layers; l++) {
        int sliding = 0;
        if (json_is_array(types)) QF_TRY(qf_cfg_layer_type(path, types, l, &sliding, err));
        else if (gemma3) sliding = (l + 1) % pattern != 0;
        else if (gpt_oss) sliding = l % 2 == 0;
        else if (qwen2_moe) sliding = w > 0 && l % 2 == 0 && l < max_window_layers;
        else sliding = w > 0 && l >= max_window_layers;
        if (sliding && w <= 0)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: layer_types[%d] is sliding_attention but there is no "
                           "window (use_sliding_window / sliding_window)", path, l);
        window[l] = sliding ? w : 0;
    }
    return QF_OK;
}
