/* qf_gguf_arch.c - the architectures GGUF output maps, one table row each: Hugging Face <->
 * GGUF tensor names, whether q/k rows are interleaved, and the {arch}.* metadata llama.cpp's
 * converter (convert_hf_to_gguf.py) writes for them (see qf_gguf.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_gguf.h"

/* model_type -> llama.cpp architecture.  llama.cpp rotates llama's q/k as interleaved pairs
 * (LLAMA_ROPE_TYPE_NORM): its converter permutes the rows of q_proj / k_proj.  Qwen2 and Qwen3
 * rotate halves as Hugging Face does (NEOX): rows stay.  Qwen3 adds per-head q/k RMSNorm and
 * has no biases in llama.cpp; Qwen2 has q/k/v biases; llama.cpp's llama takes a bias on any
 * projection (each optional).  yarn: the converter's Qwen2Model (and Qwen3Model, its subclass)
 * writes YaRN as rope.scaling.type / factor / original_context_length. */
/* Experts: llama.cpp stacks each layer's experts into one 3-D tensor per projection
 * (ffn_{gate,up,down}_exps, [n_expert, rows, cols]) beside the router ffn_gate_inp.  Its converter
 * writes Mixtral as the llama architecture (the graph takes experts when expert_count is set),
 * with Mixtral's names block_sparse_moe.experts.E.w1 / w3 / w2 (gate / up / down) and
 * block_sparse_moe.gate; the llama row reads them back in those names. */
static const qf_gguf_arch qf_gguf_archs[] = {
    {"llama", "llama", 1, 0, QF_GGUF_BIAS_ANY, 0, QF_GGUF_EXPERTS_MIXTRAL, 0},
    {"mistral", "llama", 1, 0, QF_GGUF_BIAS_ANY, 0, QF_GGUF_EXPERTS_NONE, 0},
    {"mixtral", "llama", 1, 0, QF_GGUF_BIAS_ANY, 0, QF_GGUF_EXPERTS_MIXTRAL, 0},
    {"qwen2", "qwen2", 0, 0, QF_GGUF_BIAS_QKV, 1, QF_GGUF_EXPERTS_NONE, 0},
    {"qwen3", "qwen3", 0, 1, QF_GGUF_BIAS_NONE, 1, QF_GGUF_EXPERTS_NONE, 0},
    /* The converter's Qwen2MoeModel / Qwen3MoeModel are TextModels: experts stacked from
     * mlp.experts.E.{gate,up,down}_proj, the router mlp.gate; qwen2moe's graph needs the shared
     * expert (ffn_*_shexp) and its sigmoid gate ffn_gate_inp_shexp (kept [1, hidden] as the
     * converter keeps it).  yarn is not mapped for them: no fixture shows llama.cpp agrees. */
    {"qwen2_moe", "qwen2moe", 0, 0, QF_GGUF_BIAS_QKV, 0, QF_GGUF_EXPERTS_QWEN_SHARED, 0},
    {"qwen3_moe", "qwen3moe", 0, 1, QF_GGUF_BIAS_NONE, 0, QF_GGUF_EXPERTS_QWEN, 0},
    /* Phi3MiniModel: fused attn_qkv / ffn_up, NEOX RoPE over the first rope.dimension_count dims
     * (partial_rotary_factor), attention.sliding_window written (llama.cpp's phi3 ignores it) */
    {"phi3", "phi3", 0, 0, QF_GGUF_BIAS_NONE, 0, QF_GGUF_EXPERTS_NONE, 1},
};
#define QF_N_ARCHS (sizeof qf_gguf_archs / sizeof *qf_gguf_archs)

const qf_gguf_arch *qf_gguf_arch_for(const char *model_type)
{
    for (size_t i = 0; i < QF_N_ARCHS; i++)
        if (strcmp(qf_gguf_archs[i].model_type, model_type) == 0) return &qf_gguf_archs[i];
    return NULL;
}

const qf_gguf_arch *qf_gguf_arch_named(const char *arch)
{
    for (size_t i = 0; arch && i < QF_N_ARCHS; i++)
        if (strcmp(qf_gguf_archs[i].name, arch) == 0) return &qf_gguf_archs[i];
    return NULL;
}

void qf_gguf_arch_list(char *buf, size_t len, int names)
{
    size_t at = 0;
    buf[0] = 0;
    for (size_t i = 0; i < QF_N_ARCHS && at < len; i++) {
        if (names && qf_gguf_arch_named(qf_gguf_archs[i].name) != &qf_gguf_archs[i]) continue; /* said already */
        at += (size_t)snprintf(buf + at, len - at, "%s%s", at ? ", " : "",
                               names ? qf_gguf_archs[i].name : qf_gguf_archs[i].model_type);
    }
}

/* ---- tensor names ----------------------------------------------------------------------------- */

enum { QF_ANY, QF_QK_NORM, QF_FUSED, QF_UNFUSED }; /* where a layer name exists */
static const struct {
    const char *hf, *gg;
    int where; /* QF_QK_NORM: architectures with q/k norms; QF_FUSED / QF_UNFUSED: with / without phi3's fused projections */
} qf_layer_names[] = {
    {"input_layernorm", "attn_norm", QF_ANY},         {"self_attn.q_proj", "attn_q", QF_ANY},
    {"self_attn.k_proj", "attn_k", QF_ANY},           {"self_attn.v_proj", "attn_v", QF_ANY},
    {"self_attn.o_proj", "attn_output", QF_ANY},      {"self_attn.q_norm", "attn_q_norm", QF_QK_NORM},
    {"self_attn.k_norm", "attn_k_norm", QF_QK_NORM},  {"post_attention_layernorm", "ffn_norm", QF_ANY},
    {"mlp.gate_proj", "ffn_gate", QF_ANY},            {"mlp.up_proj", "ffn_up", QF_UNFUSED},
    {"mlp.down_proj", "ffn_down", QF_ANY},
    /* phi3: llama.cpp's attn_qkv holds q, k, v rows in Hugging Face's order, and its ffn_up the
     * gate rows then the up rows (the graph's SWIGLU splits it in halves, gate first) */
    {"self_attn.qkv_proj", "attn_qkv", QF_FUSED},     {"mlp.gate_up_proj", "ffn_up", QF_FUSED},
};
static const struct {
    const char *hf, *gg;
} qf_global_names[] = {
    {"model.embed_tokens", "token_embd"},
    {"model.norm", "output_norm"},
    {"lm_head", "output"},
};
#define QF_N_LAYER_NAMES (sizeof qf_layer_names / sizeof *qf_layer_names)
/* Expert naming per QF_GGUF_EXPERTS_* style: the router, the prefix of expert E's projections
 * and their names in the order gate, up, down (the stacked GGUF names below) */
static const struct {
    const char *router, *prefix, *proj[3];
} qf_moe_names[] = {
    [QF_GGUF_EXPERTS_MIXTRAL] = {"block_sparse_moe.gate", "block_sparse_moe.experts.", {"w1", "w3", "w2"}},
    [QF_GGUF_EXPERTS_QWEN] = {"mlp.gate", "mlp.experts.", {"gate_proj", "up_proj", "down_proj"}},
    [QF_GGUF_EXPERTS_QWEN_SHARED] = {"mlp.gate", "mlp.experts.", {"gate_proj", "up_proj", "down_proj"}},
};
static const char *const qf_exps[3] = {"ffn_gate_exps", "ffn_up_exps", "ffn_down_exps"};
/* qwen2moe's shared expert and its gate */
static const struct {
    const char *hf, *gg;
} qf_shexp_names[] = {
    {"mlp.shared_expert.gate_proj", "ffn_gate_shexp"}, {"mlp.shared_expert.up_proj", "ffn_up_shexp"},
    {"mlp.shared_expert.down_proj", "ffn_down_shexp"}, {"mlp.shared_expert_gate", "ffn_gate_inp_shexp"},
};

static int qf_is(const char *s, size_t l, const char *word) { return strlen(word) == l && strncmp(s, word, l) == 0; }
#define QF_N_GLOBAL_NAMES (sizeof qf_global_names / sizeof *qf_global_names)

/* "stem.weight" / "stem.bias" -> stem length and the suffix, or -1. */
static int qf_split_param(const char *name, size_t *stem, const char **suffix)
{
    size_t l = strlen(name);
    if (l > 7 && strcmp(name + l - 7, ".weight") == 0) *stem = l - 7, *suffix = "weight";
    else if (l > 5 && strcmp(name + l - 5, ".bias") == 0) *stem = l - 5, *suffix = "bias";
    else return -1;
    return 0;
}

/* A layer tensor exists in a's llama.cpp graph: q/k norms only where a has them, biases only
 * where a loads them (llama.cpp would not read a qwen3 bias, and compute another model). */
static int qf_layer_ok(const qf_gguf_arch *a, size_t i, const char *suf)
{
    int w = qf_layer_names[i].where;
    if ((w == QF_QK_NORM && !a->qk_norm) || (w == QF_FUSED && !a->fused) || (w == QF_UNFUSED && a->fused)) return 0;
    if (strcmp(suf, "bias") != 0 || a->biases == QF_GGUF_BIAS_ANY) return 1;
    const char *g = qf_layer_names[i].gg;
    return a->biases == QF_GGUF_BIAS_QKV && (!strcmp(g, "attn_q") || !strcmp(g, "attn_k") || !strcmp(g, "attn_v"));
}

/* rest = "<prefix>E.<proj>" (rl bytes, style st): the projection's index (gate, up, down) and E, or -1. */
static int qf_expert_of(int st, const char *rest, size_t rl, int *expert)
{
    size_t pl = strlen(qf_moe_names[st].prefix), d = pl;
    if (rl <= pl || strncmp(rest, qf_moe_names[st].prefix, pl) != 0) return -1;
    long e = 0;
    while (d < rl && d < pl + 7 && rest[d] >= '0' && rest[d] <= '9') e = e * 10 + (rest[d++] - '0');
    if (d == pl || d >= rl || rest[d] != '.' || (rest[pl] == '0' && d > pl + 1)) return -1;
    for (int j = 0; j < 3; j++)
        if (qf_is(rest + d + 1, rl - d - 1, qf_moe_names[st].proj[j])) return *expert = (int)e, j;
    return -1;
}

int qf_gguf_name(const qf_gguf_arch *a, const char *hf, char *out, size_t len)
{
    int expert;
    int r = qf_gguf_name_expert(a, hf, out, len, &expert);
    return r == 1 && expert >= 0 ? -1 : r; /* a slice of a stacked tensor has no name of its own */
}

int qf_gguf_name_expert(const qf_gguf_arch *a, const char *hf, char *out, size_t len, int *expert)
{
    *expert = -1;
    if (strstr(hf, "rotary_emb.inv_freq")) return 0;
    size_t stem;
    const char *suf;
    if (qf_split_param(hf, &stem, &suf)) return -1;
    for (size_t i = 0; i < QF_N_GLOBAL_NAMES; i++)
        if (strlen(qf_global_names[i].hf) == stem && strncmp(hf, qf_global_names[i].hf, stem) == 0 &&
            strcmp(suf, "weight") == 0) {
            snprintf(out, len, "%s.%s", qf_global_names[i].gg, suf);
            return 1;
        }
    int layer, n = 0;
    if (sscanf(hf, "model.layers.%d.%n", &layer, &n) != 1 || n == 0 || layer < 0) return -1;
    const char *rest = hf + n;
    size_t rl = stem - (size_t)n;
    for (size_t i = 0; i < QF_N_LAYER_NAMES; i++)
        if (strlen(qf_layer_names[i].hf) == rl && strncmp(rest, qf_layer_names[i].hf, rl) == 0) {
            if (!qf_layer_ok(a, i, suf)) continue; /* another row may hold the name here (ffn_up) */
            snprintf(out, len, "blk.%d.%s.%s", layer, qf_layer_names[i].gg, suf);
            return 1;
        }
    if (a->experts == QF_GGUF_EXPERTS_NONE || strcmp(suf, "weight") != 0) return -1;
    if (qf_is(rest, rl, qf_moe_names[a->experts].router)) {
        snprintf(out, len, "blk.%d.ffn_gate_inp.weight", layer);
        return 1;
    }
    for (size_t i = 0; a->experts == QF_GGUF_EXPERTS_QWEN_SHARED && i < sizeof qf_shexp_names / sizeof *qf_shexp_names; i++)
        if (qf_is(rest, rl, qf_shexp_names[i].hf)) {
            snprintf(out, len, "blk.%d.%s.weight", layer, qf_shexp_names[i].gg);
            return 1;
        }
    int j = qf_expert_of(a->experts, rest, rl, expert);
    if (j < 0) return -1;
    snprintf(out, len, "blk.%d.%s.weight", layer, qf_exps[j]);
    return 1;
}

int qf_gguf_hf_name(const qf_gguf_arch *a, const char *gg, char *out, size_t len)
{
    return qf_gguf_hf_name_expert(a, gg, -1, out, len);
}

int qf_gguf_hf_name_expert(const qf_gguf_arch *a, const char *gg, int expert, char *out, size_t len)
{
    size_t stem;
    const char *suf;
    if (qf_split_param(gg, &stem, &suf)) return -1;
    for (size_t i = 0; i < QF_N_GLOBAL_NAMES; i++)
        if (strlen(qf_global_names[i].gg) == stem && strncmp(gg, qf_global_names[i].gg, stem) == 0) {
            snprintf(out, len, "%s.%s", qf_global_names[i].hf, suf);
            return 0;
        }
    int layer, n = 0;
    if (sscanf(gg, "blk.%d.%n", &layer, &n) != 1 || n == 0 || layer < 0) return -1;
    const char *rest = gg + n;
    size_t rl = stem - (size_t)n;
    for (size_t i = 0; i < QF_N_LAYER_NAMES; i++)
        if (strlen(qf_layer_names[i].gg) == rl && strncmp(rest, qf_layer_names[i].gg, rl) == 0) {
            if (!qf_layer_ok(a, i, suf)) continue; /* another row may hold the name here (ffn_up) */
            snprintf(out, len, "model.layers.%d.%s.%s", layer, qf_layer_names[i].hf, suf);
            return expert < 0 ? 0 : -1;
        }
    const int st = a->experts;
    if (st == QF_GGUF_EXPERTS_NONE || strcmp(suf, "weight") != 0) return -1;
    if (qf_is(rest, rl, "ffn_gate_inp") && expert < 0) {
        snprintf(out, len, "model.layers.%d.%s.weight", layer, qf_moe_names[st].router);
        return 0;
    }
    const size_t n_shexp = sizeof qf_shexp_names / sizeof *qf_shexp_names;
    for (size_t i = 0; st == QF_GGUF_EXPERTS_QWEN_SHARED && expert < 0 && i < n_shexp; i++)
        if (qf_is(rest, rl, qf_shexp_names[i].gg)) {
            snprintf(out, len, "model.layers.%d.%s.weight", layer, qf_shexp_names[i].hf);
            return 0;
        }
    for (int j = 0; j < 3 && expert >= 0; j++)
        if (qf_is(rest, rl, qf_exps[j])) {
            snprintf(out, len, "model.layers.%d.%s%d.%s.weight", layer, qf_moe_names[st].prefix, expert,
                     qf_moe_names[st].proj[j]);
            return 0;
        }
    return -1;
}

/* ---- metadata --------------------------------------------------------------------------------- */

/* Families the runner runs whose GGUF mapping is not written, and why (issue 15 item 4) */
static const struct {
    const char *model_type, *why;
} qf_gguf_unmapped[] = {
    {"gemma3_text", "llama.cpp's gemma3 graph fixes what the config sets (every 6th layer full, queries scaled by "
                    "head_dim^-1/2 whatever query_pre_attn_scalar says) and its converter shifts norms by +1 and trims "
                    "embedding rows; not written yet"},
    {"glm4_moe", "llama.cpp's glm4moe needs sigmoid routing with exp_probs_b, grouped top-k, leading dense layers and "
                 "its nextn layers written; not written yet"},
};

qf_status qf_gguf_arch_of(const char *path, const qf_model_config *cfg, const qf_gguf_arch **out, qf_error *err)
{
    *out = qf_gguf_arch_for(cfg->model_type);
    char list[128];
    qf_gguf_arch_list(list, sizeof list, 0);
    for (size_t i = 0; !*out && i < sizeof qf_gguf_unmapped / sizeof *qf_gguf_unmapped; i++)
        if (strcmp(cfg->model_type, qf_gguf_unmapped[i].model_type) == 0)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: model_type '%s' has no GGUF mapping: %s (GGUF output maps %s)",
                           path, cfg->model_type, qf_gguf_unmapped[i].why, list);
    if (!*out)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: model_type '%s' has no GGUF mapping (GGUF output maps %s)", path,
                       cfg->model_type, list);
    const qf_gguf_arch *a = *out;
    *out = NULL;
    if (cfg->n_experts && a->experts == QF_GGUF_EXPERTS_NONE)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: model_type '%s' with %d experts: its GGUF mapping is dense only",
                       path, cfg->model_type, cfg->n_experts);
    /* llama.cpp's graphs route with a softmax over all experts, top-k; llama (Mixtral) and
     * qwen3moe renormalise the k weights, qwen2moe does not (build_moe_ffn's norm_w); only
     * qwen2moe has (and needs) the shared expert.  Every layer must be MoE. */
    if (cfg->n_experts) {
        int norm = a->experts != QF_GGUF_EXPERTS_QWEN_SHARED, shared = !norm;
        const json_t *mlp_only = json_object_get(cfg->json, "mlp_only_layers");
        const json_t *step = json_object_get(cfg->json, "decoder_sparse_step");
        if (cfg->n_group > 1 || cfg->routed_scaling_factor != 1.0 || !cfg->norm_topk_prob != !norm)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: model_type '%s': grouped routing, a routed scaling factor or "
                           "norm_topk_prob %s: llama.cpp's %s graph computes top-k weights %s", path, cfg->model_type,
                           cfg->norm_topk_prob ? "true" : "false", a->name,
                           norm ? "renormalised" : "as the softmax gives them");
        if ((cfg->shared_expert_intermediate_size > 0) != shared)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: model_type '%s' %s a shared expert; llama.cpp's %s graph %s", path,
                           cfg->model_type, shared ? "lacks" : "has", a->name, shared ? "needs one" : "has none");
        if ((json_is_array(mlp_only) && json_array_size(mlp_only)) ||
            (json_is_integer(step) && json_integer_value(step) != 1))
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: mlp_only_layers / decoder_sparse_step make dense layers; "
                           "llama.cpp's %s graph has experts in every layer", path, a->name);
    }
    if (cfg->qk_norm != a->qk_norm)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: model_type '%s' %s q/k norms; llama.cpp's %s architecture %s", path,
                       cfg->model_type, cfg->qk_norm ? "has" : "lacks", a->name, a->qk_norm ? "needs them" : "has none");
    if (cfg->attention_bias && a->biases == QF_GGUF_BIAS_NONE)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: attention_bias is true; llama.cpp's %s architecture loads no q/k/v biases",
                       path, a->name);
    if (cfg->head_dim % 2 || cfg->n_heads <= 0 || cfg->n_kv_heads <= 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: head_dim %d / %d heads cannot be laid out for GGUF", path,
                       cfg->head_dim, cfg->n_heads);
    /* Written below: default, linear, llama3 (rope_freqs) and, where the converter writes it,
     * yarn.  Anything else would load in llama.cpp as plain RoPE and compute another model. */
    double rot = cfg->rope_partial_factor * cfg->head_dim;
    if (cfg->rope_partial_factor != 1.0 && (!a->fused || rot != floor(rot) || (int)rot % 2 || rot <= 0))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: partial_rotary_factor %g is not mapped to llama.cpp's %s keys (GGUF "
                       "maps it for phi3, to an even number of rotated dimensions)", path, cfg->rope_partial_factor, a->name);
    /* the converter's Phi3MiniModel writes no rope scaling keys (and longrope as factor tensors) */
    if (a->fused && cfg->rope_type != QF_ROPE_DEFAULT)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: model_type '%s': only default RoPE is mapped to llama.cpp's %s keys",
                       path, cfg->model_type, a->name);
    if (cfg->rope_type == QF_ROPE_LONGROPE) /* llama.cpp keeps its factors as rope_factors_{long,short} tensors */
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: rope type longrope is not mapped to llama.cpp's %s keys", path,
                       a->name);
    if (cfg->rope_type == QF_ROPE_YARN && !a->yarn)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: rope type yarn is not mapped to llama.cpp's %s keys (GGUF maps yarn "
                       "for qwen2, qwen3)", path, a->name);
    /* llama.cpp keeps only factor and the original context in the file: it ramps between
     * floor / ceil of the correction dimensions for betas 32 / 1 (transformers' truncate), and
     * scales cos / sin by 0.1 ln(factor) + 1 (transformers' default attention_factor).  Any other
     * value would run another model. */
    if (cfg->rope_type == QF_ROPE_YARN) {
        double want = 0.1 * log(cfg->rope_factor) + 1.0;
        if (!(cfg->rope_factor >= 1.0f) || fabs(cfg->rope_yarn_attn_factor - want) > 1e-6 * want)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: rope yarn factor %g / attention_factor %g: llama.cpp computes "
                           "0.1 ln(factor) + 1 and needs factor >= 1", path, cfg->rope_factor, cfg->rope_yarn_attn_factor);
        if (cfg->rope_yarn_beta_fast != 32.0 || cfg->rope_yarn_beta_slow != 1.0 || !cfg->rope_yarn_truncate)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: rope yarn beta_fast %g / beta_slow %g / truncate %d: llama.cpp's "
                           "keys hold 32 / 1 / true only", path, cfg->rope_yarn_beta_fast, cfg->rope_yarn_beta_slow,
                           cfg->rope_yarn_truncate);
    }
    *out = a;
    return QF_OK;
}

qf_status qf_gguf_metadata(qf_gguf_writer *w, const qf_gguf_arch *a, const qf_model_config *cfg, const char *name,
                           int file_type, qf_error *err)
{
    char key[96];
#define QF_KEY(k) (snprintf(key, sizeof key, "%s." k, a->name), key)
    qf_gguf_kv_str(w, "general.architecture", a->name);
    qf_gguf_kv_str(w, "general.type", "model"); /* not an adapter or a vision projector */
    qf_gguf_kv_str(w, "general.name", name);
    qf_gguf_kv_u32(w, "general.file_type", (uint32_t)file_type);
    qf_gguf_kv_u32(w, "general.quantization_version", 2);
    qf_gguf_kv_u32(w, QF_KEY("vocab_size"), (uint32_t)cfg->vocab_size);
    /* None of the mapped architectures slides its window in llama.cpp.  Within the window sliding
     * and full attention are the same computation, so a model whose layers slide (Mistral v0.1,
     * tiny-swa) announces the smallest window as its context: llama.cpp then warns before running
     * longer contexts instead of silently attending further than the model was made to. */
    int64_t ctx = cfg->max_position_embeddings > 0 ? cfg->max_position_embeddings : 2048;
    int *win = calloc((size_t)(cfg->n_layers > 0 ? cfg->n_layers : 1), sizeof *win);
    if (!win) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    qf_status ws = qf_config_attn_windows("config.json", cfg, win, err);
    for (int l = 0; ws == QF_OK && l < cfg->n_layers; l++)
        if (win[l] > 0 && win[l] < ctx) ctx = win[l];
    free(win);
    if (ws) return ws;
    qf_gguf_kv_u32(w, QF_KEY("context_length"), (uint32_t)ctx);
    qf_gguf_kv_u32(w, QF_KEY("embedding_length"), (uint32_t)cfg->hidden_size);
    qf_gguf_kv_u32(w, QF_KEY("block_count"), (uint32_t)cfg->n_layers);
    qf_gguf_kv_u32(w, QF_KEY("feed_forward_length"), (uint32_t)cfg->intermediate_size);
    /* the rotated dimensions: all of a head, or phi3's partial_rotary_factor of it */
    qf_gguf_kv_u32(w, QF_KEY("rope.dimension_count"), (uint32_t)lround(cfg->rope_partial_factor * cfg->head_dim));
    qf_gguf_kv_u32(w, QF_KEY("attention.head_count"), (uint32_t)cfg->n_heads);
    qf_gguf_kv_u32(w, QF_KEY("attention.head_count_kv"), (uint32_t)cfg->n_kv_heads);
    qf_gguf_kv_f32(w, QF_KEY("attention.layer_norm_rms_epsilon"), cfg->rms_norm_eps);
    qf_gguf_kv_f32(w, QF_KEY("rope.freq_base"), (float)cfg->rope_theta);
    if (cfg->n_experts) { /* what the converter's TextModel / Qwen2MoeModel write */
        qf_gguf_kv_u32(w, QF_KEY("expert_count"), (uint32_t)cfg->n_experts);
        qf_gguf_kv_u32(w, QF_KEY("expert_used_count"), (uint32_t)cfg->n_experts_per_tok);
        /* written when config.json names them, as the converter does */
        if (json_is_integer(json_object_get(cfg->json, "moe_intermediate_size")))
            qf_gguf_kv_u32(w, QF_KEY("expert_feed_forward_length"), (uint32_t)cfg->moe_intermediate_size);
        if (json_is_integer(json_object_get(cfg->json, "shared_expert_intermediate_size")))
            qf_gguf_kv_u32(w, QF_KEY("expert_shared_feed_forward_length"), (uint32_t)cfg->shared_expert_intermediate_size);
    }
    /* llama.cpp's converter writes them whenever config.json names head_dim; they are needed
     * when heads do not tile the hidden size */
    if (json_is_integer(json_object_get(cfg->json, "head_dim")) || cfg->head_dim * cfg->n_heads != cfg->hidden_size) {
        qf_gguf_kv_u32(w, QF_KEY("attention.key_length"), (uint32_t)cfg->head_dim);
        qf_gguf_kv_u32(w, QF_KEY("attention.value_length"), (uint32_t)cfg->head_dim);
    }
    if (cfg->rope_type == QF_ROPE_LINEAR || cfg->rope_type == QF_ROPE_YARN) {
        qf_gguf_kv_str(w, QF_KEY("rope.scaling.type"), cfg->rope_type == QF_ROPE_YARN ? "yarn" : "linear");
        qf_gguf_kv_f32(w, QF_KEY("rope.scaling.factor"), cfg->rope_factor);
    }
    if (cfg->rope_type == QF_ROPE_YARN)
        qf_gguf_kv_u32(w, QF_KEY("rope.scaling.original_context_length"), (uint32_t)cfg->rope_original_max_pos);
    if (a->fused) { /* Phi3MiniModel: the original context, and the window (0: none) */
        const json_t *rp = json_object_get(cfg->json, "rope_parameters"), *sw = json_object_get(cfg->json, "sliding_window");
        const json_t *orig = json_object_get(rp, "original_max_position_embeddings");
        if (!json_is_integer(orig)) orig = json_object_get(cfg->json, "original_max_position_embeddings");
        if (json_is_integer(orig))
            qf_gguf_kv_u32(w, QF_KEY("rope.scaling.original_context_length"), (uint32_t)json_integer_value(orig));
        qf_gguf_kv_u32(w, QF_KEY("attention.sliding_window"), json_is_integer(sw) ? (uint32_t)json_integer_value(sw) : 0);
    }
#undef QF_KEY
    return QF_OK;
}

void qf_gguf_size_label(uint64_t n_params, char *buf, size_t len)
{
    /* gguf-py's model_weight_count_rounded_notation: scale by a power of 1e-3 (multiplied, as
     * there), then as many decimals as make two significant digits of the rounded value
     * (rint is Python's round: half to even) */
    static const struct {
        double above, scale;
        char suffix;
    } steps[] = {{1e12, 1e-12, 'T'}, {1e9, 1e-9, 'B'}, {1e6, 1e-6, 'M'}, {-1, 1e-3, 'K'}};
    size_t i = 0;
    while ((double)n_params <= steps[i].above) i++;
    double x = (double)n_params * steps[i].scale;
    int digits = 0;
    for (double r = rint(x); r >= 1; r = floor(r / 10)) digits++;
    snprintf(buf, len, "%.*f%c", digits < 2 ? 2 - digits : 0, x, steps[i].suffix);
}

int qf_gguf_llama_rope_freqs(const qf_model_config *cfg, float *out, int cap)
{
    if (cfg->rope_type != QF_ROPE_LLAMA3) return 0;
    int n = cfg->head_dim / 2;
    if (n > cap) return 0;
    double old_len = cfg->rope_original_max_pos, lo = cfg->rope_low_freq_factor, hi = cfg->rope_high_freq_factor;
    double lo_wave = old_len / lo, hi_wave = old_len / hi, factor = cfg->rope_factor;
    for (int i = 0; i < n; i++) {
        double freq = 1.0 / pow(cfg->rope_theta, (2.0 * i) / cfg->head_dim), wave = 2.0 * M_PI / freq;
        if (wave < hi_wave) out[i] = 1.0f;
        else if (wave > lo_wave) out[i] = (float)factor;
        else {
            double smooth = (old_len / wave - lo) / (hi - lo);
            out[i] = (float)(1.0 / ((1.0 - smooth) / factor + smooth));
        }
    }
    return n;
}
