/* config.c - config.json of Llama-family checkpoints (see qf_config.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qf_config.h"

static const char *const qf_runnable_types[] = {"llama", "mistral", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe"};

/* Integer field: present and integral (a float like 4096.0 is accepted), else default; a value
 * of another type sets *bad to the key (the first one), so the error can name it. */
static int qf_cfg_int(json_t *o, const char *key, int dflt, const char **bad)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return dflt;
    if (json_is_integer(v)) return (int)json_integer_value(v);
    if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v)) return (int)json_real_value(v);
    if (json_is_boolean(v)) return json_is_true(v);
    if (!*bad) *bad = key;
    return dflt;
}

static double qf_cfg_num(json_t *o, const char *key, double dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

static qf_status qf_cfg_rope(const char *path, json_t *root, qf_model_config *c, qf_error *err)
{
    /* transformers 5: rope_parameters {rope_theta, rope_type, factor, ...};
     * older: rope_theta at top level, rope_scaling {type|rope_type, factor, ...} or null. */
    json_t *rp = json_object_get(root, "rope_parameters");
    json_t *rs = json_is_object(rp) ? rp : json_object_get(root, "rope_scaling");
    c->rope_theta = qf_cfg_num(json_is_object(rp) ? rp : root, "rope_theta", qf_cfg_num(root, "rope_theta", 10000.0));
    c->rope_type = QF_ROPE_DEFAULT;
    c->rope_factor = 1.0f;
    if (!json_is_object(rs)) return QF_OK;
    json_t *t = json_object_get(rs, "rope_type");
    if (!json_is_string(t)) t = json_object_get(rs, "type");
    const char *ty = json_is_string(t) ? json_string_value(t) : "default";
    c->rope_factor = (float)qf_cfg_num(rs, "factor", 1.0);
    if (strcmp(ty, "default") == 0) return QF_OK;
    if (strcmp(ty, "linear") == 0) {
        c->rope_type = QF_ROPE_LINEAR;
        return QF_OK;
    }
    if (strcmp(ty, "llama3") == 0) {
        c->rope_type = QF_ROPE_LLAMA3;
        c->rope_low_freq_factor = (float)qf_cfg_num(rs, "low_freq_factor", 1.0);
        c->rope_high_freq_factor = (float)qf_cfg_num(rs, "high_freq_factor", 4.0);
        c->rope_original_max_pos = (int)qf_cfg_num(rs, "original_max_position_embeddings", 8192);
        return QF_OK;
    }
    if (strcmp(ty, "yarn") == 0) { /* as transformers' _compute_yarn_parameters */
        c->rope_type = QF_ROPE_YARN;
        c->rope_original_max_pos = (int)qf_cfg_num(rs, "original_max_position_embeddings",
                                                   qf_cfg_num(root, "max_position_embeddings", 0));
        double factor = qf_cfg_num(rs, "factor", 0);
        if (factor <= 0 && c->rope_original_max_pos > 0) /* DeepSeek-V3 style: the ratio of the two lengths */
            factor = qf_cfg_num(root, "max_position_embeddings", 0) / c->rope_original_max_pos;
        if (!(factor > 0) || c->rope_original_max_pos <= 0)
            return qf_fail(err, QF_ERR_FORMAT, "%s: yarn rope needs factor > 0 and original_max_position_embeddings",
                           path);
        c->rope_factor = (float)factor;
        double bf = qf_cfg_num(rs, "beta_fast", 0), bs = qf_cfg_num(rs, "beta_slow", 0);
        c->rope_beta_fast = (float)(bf ? bf : 32.0);
        c->rope_beta_slow = (float)(bs ? bs : 1.0);
        json_t *tr = json_object_get(rs, "truncate");
        c->rope_truncate = json_is_boolean(tr) ? json_is_true(tr) : 1;
        /* attention_factor, else 0.1 ln(factor) + 1 (the mscale / mscale_all_dim ratio when both are set) */
        double ms = qf_cfg_num(rs, "mscale", 0), ma = qf_cfg_num(rs, "mscale_all_dim", 0);
#define QF_YARN_MSCALE(s, m) ((s) <= 1 ? 1.0 : 0.1 * (m) * log(s) + 1.0)
        double af = qf_cfg_num(rs, "attention_factor", 0);
        if (!af) af = ms && ma ? QF_YARN_MSCALE(factor, ms) / QF_YARN_MSCALE(factor, ma) : QF_YARN_MSCALE(factor, 1.0);
#undef QF_YARN_MSCALE
        c->rope_attn_factor = (float)af;
        return QF_OK;
    }
    return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: rope type '%.40s' is not supported (default, linear, llama3, yarn)",
                   path, ty);
}

qf_status qf_config_load(const char *path, qf_model_config *c, qf_error *err)
{
    memset(c, 0, sizeof *c);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (je.line < 0 || strstr(je.text, "unable to open"))
            return qf_fail(err, QF_ERR_IO, "%s: cannot read: %s", path, je.text);
        return qf_fail(err, QF_ERR_FORMAT, "%s: not valid JSON at line %d, column %d: %s", path, je.line,
                       je.column, je.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return qf_fail(err, QF_ERR_FORMAT, "%s: not a JSON object", path);
    }
    /* Multimodal wrappers keep the language model under text_config. */
    json_t *o = json_object_get(root, "text_config");
    if (!json_is_object(o)) o = root;
    json_t *mt = json_object_get(o, "model_type");
    if (!json_is_string(mt)) mt = json_object_get(root, "model_type");
    snprintf(c->model_type, sizeof c->model_type, "%s", json_is_string(mt) ? json_string_value(mt) : "");
    json_t *ar = json_object_get(root, "architectures");
    if (json_is_array(ar) && json_is_string(json_array_get(ar, 0)))
        snprintf(c->architecture, sizeof c->architecture, "%s", json_string_value(json_array_get(ar, 0)));
    const char *bad = NULL;
    c->hidden_size = qf_cfg_int(o, "hidden_size", 0, &bad);
    c->intermediate_size = qf_cfg_int(o, "intermediate_size", 0, &bad);
    c->n_layers = qf_cfg_int(o, "num_hidden_layers", 0, &bad);
    c->n_heads = qf_cfg_int(o, "num_attention_heads", 0, &bad);
    c->n_kv_heads = qf_cfg_int(o, "num_key_value_heads", c->n_heads, &bad);
    c->vocab_size = qf_cfg_int(o, "vocab_size", 0, &bad);
    c->max_position_embeddings = qf_cfg_int(o, "max_position_embeddings", 2048, &bad);
    c->head_dim = qf_cfg_int(o, "head_dim", c->n_heads ? c->hidden_size / c->n_heads : 0, &bad);
    c->rms_norm_eps = (float)qf_cfg_num(o, "rms_norm_eps", 1e-6);
    c->tie_word_embeddings = qf_cfg_int(o, "tie_word_embeddings", 0, &bad);
    int is_qwen2 = strcmp(c->model_type, "qwen2") == 0 || strcmp(c->model_type, "qwen2_moe") == 0;
    c->attention_bias = qf_cfg_int(o, "attention_bias", is_qwen2, &bad);
    c->qk_norm = strncmp(c->model_type, "qwen3", 5) == 0;
    c->n_experts = qf_cfg_int(o, "num_local_experts", qf_cfg_int(o, "num_experts", 0, &bad), &bad);
    c->n_experts_per_tok = qf_cfg_int(o, "num_experts_per_tok", c->n_experts ? 2 : 0, &bad);
    c->moe_intermediate_size = qf_cfg_int(o, "moe_intermediate_size", c->intermediate_size, &bad);
    c->shared_expert_intermediate_size = qf_cfg_int(o, "shared_expert_intermediate_size", 0, &bad);
    c->norm_topk_prob = qf_cfg_int(o, "norm_topk_prob", strcmp(c->model_type, "mixtral") == 0, &bad);
    if (bad) {
        json_decref(root);
        return qf_fail(err, QF_ERR_FORMAT, "%s: %s is not an integer", path, bad);
    }
    const char *missing = !c->hidden_size ? "hidden_size" : !c->n_layers ? "num_hidden_layers"
                        : !c->n_heads ? "num_attention_heads" : !c->vocab_size ? "vocab_size" : NULL;
    if (!missing && (c->hidden_size < 0 || c->n_layers < 0 || c->n_heads < 0 || c->n_kv_heads <= 0 ||
                     c->vocab_size < 0 || c->head_dim <= 0 || c->n_heads % c->n_kv_heads))
        missing = "consistent head counts";
    if (missing) {
        json_decref(root);
        return qf_fail(err, QF_ERR_FORMAT, "%s: missing or invalid %s", path, missing);
    }
    qf_status st = qf_cfg_rope(path, o, c, err);
    if (st) {
        json_decref(root);
        memset(c, 0, sizeof *c);
        return st;
    }
    c->json = root;
    return QF_OK;
}

void qf_config_free(qf_model_config *c)
{
    if (!c) return;
    json_decref(c->json);
    c->json = NULL;
}

qf_status qf_config_runnable(const qf_model_config *c, qf_error *err)
{
    for (size_t i = 0; i < sizeof qf_runnable_types / sizeof *qf_runnable_types; i++)
        if (strcmp(c->model_type, qf_runnable_types[i]) == 0) return QF_OK;
    return qf_fail(err, QF_ERR_UNSUPPORTED,
                   "model_type '%s' is not supported by the runner (supported: llama, mistral, qwen2, qwen3, mixtral, "
                   "qwen2_moe, qwen3_moe)",
                   c->model_type);
}
