/* model_family.c - the family table: what each model_type's decoder layer adds to the Llama
 * layer (see qf_family in qf_model.h).
 *
 * One row per model_type the runner runs.  The loader reads a row to find the tensors
 * (fused projections, sandwich norms) and the layer steps read it through qf_model.fam to
 * choose a variant; the steps test no model_type.  A new family is a
 * row here, its config keys in formats/config*.c, and a fixture checked against transformers.
 * The facts of each row are transformers 5.23's modeling_<family>.py.
 */
#include <string.h>

#include "qf_model.h"

/* Rows name the fields they set; a field added at the end of qf_family is 0 in the older
 * positional rows (C11 6.7.9), which is what those families mean. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static const qf_family qf_families[] = {
    /* type          offset sandwich embed fused_qkv fused_gu partial fold sigmoid shared expert */
    {"llama",        0.0f,  0,       0,    0,        0,       0,      1,   0,      NULL},
    {"mistral",      0.0f,  0,       0,    0,        0,       0,      1,   0,      NULL},
    {"qwen2",        0.0f,  0,       0,    0,        0,       0,      1,   0,      NULL},
    {"qwen3",        0.0f,  0,       0,    0,        0,       0,      1,   0,      NULL},
    {"mixtral",      0.0f,  0,       0,    0,        0,       0,      1,   0,      NULL},
    {"qwen2_moe",    0.0f,  0,       0,    0,        0,       0,      1,   0,      "shared_expert"},
    {"qwen3_moe",    0.0f,  0,       0,    0,        0,       0,      1,   0,      "shared_expert"},
    /* Gemma3RMSNorm: x / rms(x) · (1 + w); Gemma3DecoderLayer: sandwich norms;
     * Gemma3TextScaledWordEmbedding: × sqrt(hidden).  Folding a scale into a (1 + w) norm
     * would have to write (1 + w) s - 1, and a post-norm sits between o / down and the
     * residual: no fold. */
    {"gemma3_text",  1.0f,  1,       1,    0,        0,       0,      0,   0,      NULL},
    /* Phi3Attention.qkv_proj, Phi3MLP.gate_up_proj (gate rows first: chunk(2)); AWQ's fold
     * into the fused gate_up's up half is not written: no fold. */
    {"phi3",         0.0f,  0,       0,    1,        1,       1,      0,   0,      NULL},
    /* Glm4MoeTopkRouter (sigmoid + e_score_correction_bias, grouped top-k), Glm4MoeMoE
     * (mlp.shared_experts, added unscaled).  The fold would also have to scale the shared
     * experts' inputs, which it does not: no fold. */
    {"glm4_moe",     0.0f,  0,       0,    0,        0,       1,      0,   1,      "shared_experts"},
    /* DeepseekV3Attention (MLA), DeepseekV3TopkRouter (GLM's routing), DeepseekV3MoE
     * (shared_experts, unscaled).  No fold: shared experts, and MLA's latent norms sit between
     * q_a / kv_a and their consumers. */
    {.model_type = "deepseek_v3", .sigmoid_routing = 1, .shared_expert = "shared_experts", .mla = 1},
    /* DeepseekV32: V3's layer with the DSA indexer, which keeps every key of a sequence no longer
     * than index_topk (then the layer is V3's, checked on tiny-deepseekv32); longer sequences
     * are refused in model_mla.c.  The indexer's own Linears are not run. */
    {.model_type = "deepseek_v32", .sigmoid_routing = 1, .shared_expert = "shared_experts", .mla = 1},
};

const qf_family *qf_family_find(const char *model_type)
{
    for (size_t i = 0; i < sizeof qf_families / sizeof *qf_families; i++)
        if (strcmp(model_type, qf_families[i].model_type) == 0) return &qf_families[i];
    return NULL;
}
