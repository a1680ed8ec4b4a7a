/* config.c - config.json of Llama-family checkpoints (see qf_config.h). */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qf_config.h"

static const char *const qf_runnable_types[] = {"llama",     "mistral",   "qwen2",       "qwen3", "mixtral",
                                                "qwen2_moe", "qwen3_moe", "gemma3_text", "phi3",   "glm4_moe",
                                                "gpt_oss", "llama4_text", "nemotron_h", "qwen3_next", "qwen3_5_moe_text",
                                                "deepseek_v3", "deepseek_v32"};

/* Qwen3-Next and Qwen3.5-MoE (text): gated DeltaNet + gated attention, the same config keys */
static int qf_is_qwen3_next(const char *mt)
{
    return strcmp(mt, "qwen3_next") == 0 || strcmp(mt, "qwen3_5_moe_text") == 0;
}

/* Integer field: present and integral (a float like 4096.0 is accepted), else default; a value
 * of another type, or one outside int's range, sets *bad to the key (the first one), so the
 * error can name it.  The range check comes first: converting 8e92 to int is undefined, and a
 * 64-bit 2^32 + 8 cut to int would be a quiet 8. */
static int qf_cfg_int(json_t *o, const char *key, int dflt, const char **bad)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return dflt;
    if (json_is_integer(v) && json_integer_value(v) >= INT_MIN && json_integer_value(v) <= INT_MAX)
        return (int)json_integer_value(v);
    if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) && json_real_value(v) >= (double)INT_MIN &&
        json_real_value(v) <= (double)INT_MAX)
        return (int)json_real_value(v);
    if (json_is_boolean(v)) return json_is_true(v);
    if (!*bad) *bad = key;
    return dflt;
}

static double qf_cfg_num(json_t *o, const char *key, double dflt)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* YaRN's mscale: 1 for scale <= 1, else 0.1 * mscale * ln(scale) + 1 (transformers' get_mscale). */
static double qf_yarn_mscale(double scale, double mscale)
{
    return scale <= 1.0 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

/* The YaRN keys as transformers 5 reads them (modeling_rope_utils._compute_yarn_parameters):
 * factor (absent or null: max_position_embeddings / original), original_max_position_embeddings
 * (in the rope dict, else the top-level key, else max_position_embeddings), attention_factor
 * (else from mscale / mscale_all_dim when both are set and non-zero, else from factor),
 * beta_fast (32), beta_slow (1), truncate (true). */
static qf_status qf_cfg_yarn(const char *path, json_t *root, json_t *rs, qf_model_config *c, qf_error *err)
{
    c->rope_type = QF_ROPE_YARN;
    double orig = qf_cfg_num(rs, "original_max_position_embeddings",
                             qf_cfg_num(root, "original_max_position_embeddings", (double)c->max_position_embeddings));
    if (!(orig >= 1.0 && orig <= 1e9))
        return qf_fail(err, QF_ERR_FORMAT, "%s: rope yarn needs original_max_position_embeddings >= 1 (or "
                       "max_position_embeddings)", path);
    c->rope_original_max_pos = (int)orig;
    json_t *f = json_object_get(rs, "factor");
    double factor = json_is_number(f) ? json_number_value(f) : (double)c->max_position_embeddings / orig;
    if (!(factor > 0.0 && factor <= 1e6))
        return qf_fail(err, QF_ERR_FORMAT, "%s: rope yarn factor %g is not a positive number", path, factor);
    c->rope_factor = (float)factor;
    double ms = qf_cfg_num(rs, "mscale", 0.0), ms_all = qf_cfg_num(rs, "mscale_all_dim", 0.0);
    json_t *af = json_object_get(rs, "attention_factor");
    if (json_is_number(af)) c->rope_yarn_attn_factor = json_number_value(af);
    else if (ms != 0.0 && ms_all != 0.0) c->rope_yarn_attn_factor = qf_yarn_mscale(factor, ms) / qf_yarn_mscale(factor, ms_all);
    else c->rope_yarn_attn_factor = qf_yarn_mscale(factor, 1.0);
    json_t *bf = json_object_get(rs, "beta_fast"), *bs = json_object_get(rs, "beta_slow");
    /* transformers: `get(...) or 32`, so 0 and null mean the default too */
    c->rope_yarn_beta_fast = json_is_number(bf) && json_number_value(bf) != 0.0 ? json_number_value(bf) : 32.0;
    c->rope_yarn_beta_slow = json_is_number(bs) && json_number_value(bs) != 0.0 ? json_number_value(bs) : 1.0;
    json_t *tr = json_object_get(rs, "truncate");
    c->rope_yarn_truncate = json_is_boolean(tr) ? json_is_true(tr) : 1;
    if (!(c->rope_yarn_attn_factor > 0.0 && c->rope_yarn_attn_factor < 1e3) || !(c->rope_yarn_beta_fast > 0.0) ||
        !(c->rope_yarn_beta_slow > 0.0))
        return qf_fail(err, QF_ERR_FORMAT, "%s: rope yarn attention_factor, beta_fast or beta_slow out of range", path);
    return QF_OK;
}

/* One LongRoPE factor list: an array of (rotated dimensions / 2) positive numbers. */
static qf_status qf_cfg_longrope_list(const char *path, json_t *rs, const char *key, int n, float *out, qf_error *err)
{
    json_t *a = json_object_get(rs, key);
    if (!json_is_array(a) || (int)json_array_size(a) != n)
        return qf_fail(err, QF_ERR_FORMAT, "%s: rope longrope %s must be a list of %d numbers (rotated dimensions / 2)",
                       path, key, n);
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(a, (size_t)i);
        double x = json_is_number(v) ? json_number_value(v) : -1.0;
        if (!(x > 0.0 && x <= 1e6))
            return qf_fail(err, QF_ERR_FORMAT, "%s: rope longrope %s[%d] is not a positive number", path, key, i);
        out[i] = (float)x;
    }
    return QF_OK;
}

/* LongRoPE as transformers 5 reads it (_compute_longrope_parameters, longrope_frequency_update):
 * short_factor and long_factor (one per rotated frequency), original_max_position_embeddings
 * (phi3: the top-level key, Phi3Config's 4096 when absent, whatever the rope dict says —
 * standardize_rope_params gives the attribute priority; other types: the rope dict's, else
 * max_position_embeddings), factor (absent: max_position_embeddings / original),
 * attention_factor (absent: 1 for factor <= 1, else sqrt(1 + ln factor / ln original)). */
static qf_status qf_cfg_longrope(const char *path, json_t *root, json_t *rs, qf_model_config *c, qf_error *err)
{
    c->rope_type = QF_ROPE_LONGROPE;
    double orig = strcmp(c->model_type, "phi3") == 0
                      ? qf_cfg_num(root, "original_max_position_embeddings", 4096.0)
                      : qf_cfg_num(rs, "original_max_position_embeddings", (double)c->max_position_embeddings);
    if (!(orig >= 2.0 && orig <= 1e9))
        return qf_fail(err, QF_ERR_FORMAT, "%s: rope longrope needs original_max_position_embeddings >= 2", path);
    c->rope_original_max_pos = (int)orig;
    const double pf = c->rope_partial_factor;
    const int dim = pf > 0.0 && pf < 1.0 ? (int)(c->head_dim * pf) : c->head_dim;
    c->rope_n_factors = dim / 2;
    if (c->rope_n_factors < 1 || c->rope_n_factors > QF_ROPE_MAX_FREQS)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: rope longrope over %d rotated dimensions is not supported "
                       "(2..%d)", path, dim, 2 * QF_ROPE_MAX_FREQS);
    QF_TRY(qf_cfg_longrope_list(path, rs, "short_factor", c->rope_n_factors, c->rope_short_factor, err));
    QF_TRY(qf_cfg_longrope_list(path, rs, "long_factor", c->rope_n_factors, c->rope_long_factor, err));
    json_t *f = json_object_get(rs, "factor");
    double factor = json_is_number(f) ? json_number_value(f) : (double)c->max_position_embeddings / orig;
    if (!(factor > 0.0 && factor <= 1e6))
        return qf_fail(err, QF_ERR_FORMAT, "%s: rope longrope factor %g is not a positive number", path, factor);
    c->rope_factor = (float)factor;
    json_t *af = json_object_get(rs, "attention_factor");
    c->rope_yarn_attn_factor = json_is_number(af) ? json_number_value(af)
                             : factor <= 1.0 ? 1.0 : sqrt(1.0 + log(factor) / log(orig));
    if (!(c->rope_yarn_attn_factor > 0.0 && c->rope_yarn_attn_factor < 1e3))
        return qf_fail(err, QF_ERR_FORMAT, "%s: rope longrope attention_factor out of range", path);
    return QF_OK;
}

/* Gemma 3's two RoPEs: rope_parameters {sliding_attention: {...}, full_attention: {...}} in
 * transformers 5, or rope_theta / rope_scaling (full layers) + rope_local_base_freq (sliding
 * layers) in older configs; defaults 1e6 and 1e4 (Gemma3TextConfig.default_theta).  The local
 * RoPE must be of the default type (every released Gemma 3); *rp becomes the full layers'
 * dict (NULL in the older spelling). */
static qf_status qf_cfg_rope_local(const char *path, json_t *root, json_t **rp, double *global_dflt,
                                   qf_model_config *c, qf_error *err)
{
    *global_dflt = 1000000.0;
    c->rope_local_theta = qf_cfg_num(root, "rope_local_base_freq", 10000.0);
    if (!json_is_object(*rp)) return QF_OK;
    json_t *loc = json_object_get(*rp, "sliding_attention"), *full = json_object_get(*rp, "full_attention");
    if (json_is_object(loc)) {
        json_t *t = json_object_get(loc, "rope_type");
        if (json_is_string(t) && strcmp(json_string_value(t), "default") != 0)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: rope_parameters.sliding_attention.rope_type '%.40s' is not "
                           "supported (default only)", path, json_string_value(t));
        c->rope_local_theta = qf_cfg_num(loc, "rope_theta", c->rope_local_theta);
    }
    *rp = json_is_object(full) ? full : NULL;
    return QF_OK;
}

static qf_status qf_cfg_rope(const char *path, json_t *root, qf_model_config *c, qf_error *err)
{
    /* transformers 5: rope_parameters {rope_theta, rope_type, factor, ...};
     * older: rope_theta at top level, rope_scaling {type|rope_type, factor, ...} or null. */
    json_t *rp = json_object_get(root, "rope_parameters");
    double theta_dflt = 10000.0;
    c->rope_local_theta = 0.0;
    if (strcmp(c->model_type, "gemma3_text") == 0) QF_TRY(qf_cfg_rope_local(path, root, &rp, &theta_dflt, c, err));
    if (strcmp(c->model_type, "gpt_oss") == 0) theta_dflt = 150000.0; /* GptOssConfig.default_theta */
    json_t *rs = json_is_object(rp) ? rp : json_object_get(root, "rope_scaling");
    json_t *gpt_oss_dflt = NULL; /* GptOssConfig without RoPE keys: its YaRN, as transformers fills it in */
    if (strcmp(c->model_type, "gpt_oss") == 0 && !json_is_object(rs))
        rs = gpt_oss_dflt = json_pack("{s:s, s:f, s:f, s:f, s:b, s:i}", "rope_type", "yarn", "factor", 32.0, "beta_fast",
                                      32.0, "beta_slow", 1.0, "truncate", 0, "original_max_position_embeddings", 4096);
    if (strcmp(c->model_type, "gpt_oss") == 0 && !rs) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", path);
    c->rope_theta = qf_cfg_num(json_is_object(rp) ? rp : root, "rope_theta", qf_cfg_num(root, "rope_theta", theta_dflt));
    c->rope_type = QF_ROPE_DEFAULT;
    c->rope_factor = 1.0f;
    /* Qwen3NextConfig, Qwen3_5MoeTextConfig: partial_rotary_factor defaults to 0.25 */
    const double partial_dflt = qf_is_qwen3_next(c->model_type) ? 0.25 : 1.0;
    c->rope_partial_factor = qf_cfg_num(json_is_object(rp) ? rp : root, "partial_rotary_factor",
                                        qf_cfg_num(root, "partial_rotary_factor", partial_dflt));
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
        const double orig = qf_cfg_num(rs, "original_max_position_embeddings", 8192);
        if (!(orig >= 1.0 && orig <= 1e9)) /* checked before the cast: (int)8e92 is undefined */
            return qf_fail(err, QF_ERR_FORMAT, "%s: rope llama3 original_max_position_embeddings %g is not in 1..1e9",
                           path, orig);
        c->rope_original_max_pos = (int)orig;
        return QF_OK;
    }
    /* Phi3Config renames the older "su" and "yarn" spellings to longrope */
    if (strcmp(ty, "longrope") == 0 ||
        (strcmp(c->model_type, "phi3") == 0 && (strcmp(ty, "su") == 0 || strcmp(ty, "yarn") == 0)))
        return qf_cfg_longrope(path, root, rs, c, err);
    if (strcmp(ty, "yarn") == 0) {
        qf_status st = qf_cfg_yarn(path, root, rs, c, err);
        json_decref(gpt_oss_dflt);
        return st;
    }
    return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: rope type '%.40s' is not supported (default, linear, llama3, yarn, "
                   "longrope)", path, ty);
}

/* DeepseekV3Config's MLA keys (defaults as there; q_lora_rank null: a plain q_proj).  The
 * runner's head_dim becomes max(qk_nope + qk_rope, v_head_dim), its per-head buffer width
 * (transformers' head_dim is qk_rope_head_dim, which qf_rope_dims returns for MLA). */
static qf_status qf_cfg_mla(const char *path, json_t *o, qf_model_config *c, const char **bad, qf_error *err)
{
    json_t *ql = json_object_get(o, "q_lora_rank");
    c->q_lora_rank = json_is_null(ql) ? 0 : qf_cfg_int(o, "q_lora_rank", 1536, bad);
    c->kv_lora_rank = qf_cfg_int(o, "kv_lora_rank", 512, bad);
    c->qk_nope_head_dim = qf_cfg_int(o, "qk_nope_head_dim", 128, bad);
    c->qk_rope_head_dim = qf_cfg_int(o, "qk_rope_head_dim", 64, bad);
    c->v_head_dim = qf_cfg_int(o, "v_head_dim", 128, bad);
    c->rope_interleave = qf_cfg_int(o, "rope_interleave", 1, bad);
    c->shared_expert_intermediate_size = c->moe_intermediate_size * qf_cfg_int(o, "n_shared_experts", 1, bad);
    if (strcmp(c->model_type, "deepseek_v32") == 0) { /* DeepseekV32Attention: always a q LoRA, always
                                                       * interleaved; the indexer's top-k */
        c->rope_interleave = 1;
        c->index_topk = qf_cfg_int(o, "index_topk", 2048, bad);
        if (!*bad && (c->q_lora_rank <= 0 || c->index_topk <= 0))
            return qf_fail(err, QF_ERR_FORMAT, "%s: deepseek_v32 needs a positive q_lora_rank (got %d) and "
                           "index_topk (got %d)", path, c->q_lora_rank, c->index_topk);
    }
    if (*bad) return QF_OK; /* named by the caller */
    if (c->q_lora_rank < 0 || c->kv_lora_rank <= 0 || c->qk_nope_head_dim < 0 || c->qk_rope_head_dim <= 0 ||
        c->qk_rope_head_dim % 2 || c->v_head_dim <= 0 || c->qk_nope_head_dim + c->qk_rope_head_dim > 1024 ||
        c->v_head_dim > 1024 || c->n_kv_heads != c->n_heads)
        return qf_fail(err, QF_ERR_FORMAT, "%s: MLA sizes q_lora_rank %d, kv_lora_rank %d, qk_nope_head_dim %d, "
                       "qk_rope_head_dim %d (even), v_head_dim %d (each <= 1024) or num_key_value_heads %d != "
                       "num_attention_heads %d are invalid", path, c->q_lora_rank, c->kv_lora_rank,
                       c->qk_nope_head_dim, c->qk_rope_head_dim, c->v_head_dim, c->n_kv_heads, c->n_heads);
    int qk = c->qk_nope_head_dim + c->qk_rope_head_dim;
    c->head_dim = qk > c->v_head_dim ? qk : c->v_head_dim;
    return QF_OK;
}

/* DeepseekV3Attention's yarn_apply_mscale: any rope type but default with a non-zero
 * mscale_all_dim multiplies the softmax scale by mscale(factor, mscale_all_dim)^2. */
static void qf_cfg_mla_mscale(json_t *o, qf_model_config *c)
{
    json_t *rp = json_object_get(o, "rope_parameters");
    if (!json_is_object(rp)) rp = json_object_get(o, "rope_scaling");
    if (!json_is_object(rp)) return;
    json_t *t = json_object_get(rp, "rope_type");
    if (!json_is_string(t)) t = json_object_get(rp, "type");
    double all = qf_cfg_num(rp, "mscale_all_dim", 0.0);
    if (json_is_string(t) && strcmp(json_string_value(t), "default") != 0 && all != 0.0) {
        double ms = qf_yarn_mscale(qf_cfg_num(rp, "factor", 1.0), all);
        c->attn_mscale = ms * ms;
    }
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
    /* Nemotron-H: transformers 5 saves the layer kinds (layers_block_type) instead of a count;
     * hub configs carry hybrid_override_pattern, one character per layer ("M-M*-") */
    json_t *kinds = json_object_get(o, "layers_block_type"), *pattern = json_object_get(o, "hybrid_override_pattern");
    int n_kinds = json_is_array(kinds) ? (int)json_array_size(kinds)
                : json_is_string(pattern) ? (int)json_string_length(pattern) : 0;
    c->n_layers = qf_cfg_int(o, "num_hidden_layers", n_kinds, &bad);
    c->n_heads = qf_cfg_int(o, "num_attention_heads", 0, &bad);
    c->n_kv_heads = qf_cfg_int(o, "num_key_value_heads", c->n_heads, &bad);
    c->vocab_size = qf_cfg_int(o, "vocab_size", 0, &bad);
    c->max_position_embeddings = qf_cfg_int(o, "max_position_embeddings", 2048, &bad);
    c->head_dim = qf_cfg_int(o, "head_dim", c->n_heads ? c->hidden_size / c->n_heads : 0, &bad);
    c->rms_norm_eps = (float)qf_cfg_num(o, "rms_norm_eps", 1e-6);
    c->tie_word_embeddings = qf_cfg_int(o, "tie_word_embeddings", 0, &bad);
    int is_qwen2 = strcmp(c->model_type, "qwen2") == 0 || strcmp(c->model_type, "qwen2_moe") == 0;
    int is_gpt_oss = strcmp(c->model_type, "gpt_oss") == 0;
    c->attention_bias = qf_cfg_int(o, "attention_bias", is_qwen2 || is_gpt_oss, &bad);
    c->qk_norm = strncmp(c->model_type, "qwen3", 5) == 0;
    c->n_experts = qf_cfg_int(o, "num_local_experts", qf_cfg_int(o, "num_experts", 0, &bad), &bad);
    c->n_experts_per_tok = qf_cfg_int(o, "num_experts_per_tok", c->n_experts ? 2 : 0, &bad);
    c->moe_intermediate_size = qf_cfg_int(o, "moe_intermediate_size", c->intermediate_size, &bad);
    c->shared_expert_intermediate_size = qf_cfg_int(o, "shared_expert_intermediate_size", 0, &bad);
    c->norm_topk_prob = qf_cfg_int(o, "norm_topk_prob", strcmp(c->model_type, "mixtral") == 0, &bad);
    if (strcmp(c->model_type, "gemma3_text") == 0) c->qk_norm = 1;
    c->n_group = 1, c->topk_group = 1, c->routed_scaling_factor = 1.0;
    int mla = strcmp(c->model_type, "deepseek_v3") == 0 || strcmp(c->model_type, "deepseek_v32") == 0;
    if (strcmp(c->model_type, "glm4_moe") == 0 || mla) {
        c->qk_norm = qf_cfg_int(o, "use_qk_norm", 0, &bad);
        c->n_experts = qf_cfg_int(o, "n_routed_experts", c->n_experts, &bad);
        c->n_group = qf_cfg_int(o, "n_group", 1, &bad);
        c->topk_group = qf_cfg_int(o, "topk_group", 1, &bad);
        c->routed_scaling_factor = qf_cfg_num(o, "routed_scaling_factor", 1.0);
        c->norm_topk_prob = qf_cfg_int(o, "norm_topk_prob", 1, &bad);
        c->n_extra_layers = qf_cfg_int(o, "num_nextn_predict_layers", 0, &bad);
        if (!bad && (c->n_group <= 0 || c->topk_group <= 0 || c->topk_group > c->n_group ||
                     (c->n_experts > 0 && c->n_experts % c->n_group))) {
            json_decref(root);
            return qf_fail(err, QF_ERR_FORMAT, "%s: n_group %d / topk_group %d do not divide %d experts", path,
                           c->n_group, c->topk_group, c->n_experts);
        }
    }
    if (is_gpt_oss) { /* GptOssConfig: the experts' clamped SwiGLU (hidden_act is not read) */
        c->swiglu_alpha = qf_cfg_num(o, "swiglu_alpha", 1.702);
        c->swiglu_limit = qf_cfg_num(o, "swiglu_limit", 7.0);
        if (!bad && !(c->swiglu_alpha > 0.0 && c->swiglu_alpha < 1e6 && c->swiglu_limit > 0.0 && c->swiglu_limit < 1e30)) {
            json_decref(root);
            return qf_fail(err, QF_ERR_FORMAT, "%s: swiglu_alpha %g / swiglu_limit %g must be positive numbers", path,
                           c->swiglu_alpha, c->swiglu_limit);
        }
    }
    c->mlp_intermediate_size = c->intermediate_size;
    if (strcmp(c->model_type, "llama4_text") == 0) { /* Llama4TextConfig's defaults */
        c->mlp_intermediate_size = qf_cfg_int(o, "intermediate_size_mlp", 16384, &bad);
        c->n_experts_per_tok = qf_cfg_int(o, "num_experts_per_tok", 1, &bad);
        c->shared_expert_intermediate_size = c->intermediate_size;
        c->rope_interleaved = 1;
        c->l4_qk_norm = qf_cfg_int(o, "use_qk_norm", 1, &bad);
        c->l4_temp_tuning = qf_cfg_int(o, "attn_temperature_tuning", 1, &bad);
        c->l4_floor_scale = qf_cfg_num(o, "floor_scale", 8192.0);
        c->l4_attn_scale = qf_cfg_num(o, "attn_scale", 0.1);
        if (!bad && !(c->l4_floor_scale >= 1.0 && c->l4_floor_scale < 1e12 && c->l4_attn_scale > -1e6 &&
                      c->l4_attn_scale < 1e6)) {
            json_decref(root);
            return qf_fail(err, QF_ERR_FORMAT, "%s: floor_scale %g / attn_scale %g out of range", path,
                           c->l4_floor_scale, c->l4_attn_scale);
        }
    }
    if (qf_is_qwen3_next(c->model_type)) { /* gated DeltaNet layers, gated full attention */
        c->lin_k_heads = qf_cfg_int(o, "linear_num_key_heads", 16, &bad);
        c->lin_v_heads = qf_cfg_int(o, "linear_num_value_heads", 32, &bad);
        c->lin_k_dim = qf_cfg_int(o, "linear_key_head_dim", 128, &bad);
        c->lin_v_dim = qf_cfg_int(o, "linear_value_head_dim", 128, &bad);
        c->lin_conv = qf_cfg_int(o, "linear_conv_kernel_dim", 4, &bad);
        c->attn_output_gate = 1;
        if (strcmp(c->model_type, "qwen3_5_moe_text") == 0) c->norm_topk_prob = 1; /* its router always renormalises */
        if (!bad && (c->lin_k_heads <= 0 || c->lin_v_heads <= 0 || c->lin_v_heads % c->lin_k_heads ||
                     c->lin_k_dim <= 0 || c->lin_v_dim <= 0 || c->lin_conv <= 0 || c->lin_conv > 64)) {
            json_decref(root);
            return qf_fail(err, QF_ERR_FORMAT, "%s: linear_num_value_heads %d must be a multiple of "
                           "linear_num_key_heads %d, head dims and linear_conv_kernel_dim (<= 64) positive", path,
                           c->lin_v_heads, c->lin_k_heads);
        }
    }
    c->attn_mscale = 1.0;
    if (mla && qf_cfg_mla(path, o, c, &bad, err)) {
        json_decref(root);
        return QF_ERR_FORMAT;
    }
    c->query_pre_attn_scalar = qf_cfg_num(o, "query_pre_attn_scalar", 0.0);
    c->final_logit_softcap = qf_cfg_num(o, "final_logit_softcapping", 0.0);
    json_t *act = json_object_get(o, "hidden_activation"); /* Gemma's spelling first, as transformers reads it */
    if (!json_is_string(act)) act = json_object_get(o, "hidden_act");
    snprintf(c->hidden_act_name, sizeof c->hidden_act_name, "%s", json_is_string(act) ? json_string_value(act) : "silu");
    c->hidden_act = strcmp(c->hidden_act_name, "silu") == 0 ? QF_FFN_ACT_SILU
                  : strcmp(c->hidden_act_name, "gelu_pytorch_tanh") == 0 || strcmp(c->hidden_act_name, "gelu_new") == 0
                      ? QF_FFN_ACT_GELU_TANH
                      : QF_FFN_ACT_OTHER;
    if (strcmp(c->model_type, "nemotron_h") == 0) qf_config_hybrid_keys(o, c, &bad);
    if (bad) {
        json_decref(root);
        return qf_fail(err, QF_ERR_FORMAT, "%s: %s is not an integer of at most 31 bits", path, bad);
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
    if (!st && c->kv_lora_rank > 0) qf_cfg_mla_mscale(o, c);
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
    int known = 0;
    for (size_t i = 0; i < sizeof qf_runnable_types / sizeof *qf_runnable_types; i++)
        known |= strcmp(c->model_type, qf_runnable_types[i]) == 0;
    if (!known)
        return qf_fail(err, QF_ERR_UNSUPPORTED,
                       "model_type '%s' is not supported by the runner (supported: llama, mistral, qwen2, qwen3, mixtral, "
                       "qwen2_moe, qwen3_moe, gemma3_text, phi3, glm4_moe, gpt_oss, llama4_text, nemotron_h, qwen3_next, "
                       "qwen3_5_moe_text, deepseek_v3, deepseek_v32)",
                       c->model_type);
    /* RoPE on a part of each head: transformers rotates the leading dimensions only where the
     * family's attention does (phi3, glm4_moe, qwen3_next, qwen3_5_moe_text); llama & co. would fail
     * on it, so it is not guessed. */
    if (c->rope_partial_factor != 1.0 && strcmp(c->model_type, "phi3") != 0 && strcmp(c->model_type, "glm4_moe") != 0 &&
        !qf_is_qwen3_next(c->model_type))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "model_type '%s': partial_rotary_factor %g is not supported by the "
                       "runner (RoPE on whole heads only)", c->model_type, c->rope_partial_factor);
    if (c->hidden_act == QF_FFN_ACT_OTHER && strcmp(c->model_type, "nemotron_h") == 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "model_type 'nemotron_h': mlp_hidden_act '%s' is not supported by the "
                       "runner (relu2)", c->hidden_act_name);
    if (c->hidden_act == QF_FFN_ACT_OTHER)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "model_type '%s': activation '%s' is not supported by the runner "
                       "(silu, gelu_pytorch_tanh)", c->model_type, c->hidden_act_name);
    json_t *o = json_object_get(c->json, "text_config");
    if (!json_is_object(o)) o = c->json;
    if (strcmp(c->model_type, "nemotron_h") == 0) QF_TRY(qf_config_hybrid_runnable(c, o, err));
    if (json_is_true(json_object_get(o, "use_bidirectional_attention")))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "model_type '%s': use_bidirectional_attention is not supported by the "
                       "runner (causal attention only)", c->model_type);
    return QF_OK;
}
