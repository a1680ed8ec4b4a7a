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

#include "qf_fused_experts.h"
#include "qf_model.h"

/* Fields added at the end of qf_family (hybrid, nope, ...) are left zero by the positional rows
 * above them: zero is every field's "not this family" value. */
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
    /* GptOssAttention (sinks, q/k/v/o biases), GptOssTopKRouter (top-k logits, then softmax),
     * GptOssExperts (fused, interleaved, biases, clamped SwiGLU).  The experts stay dense in an
     * artifact (convert_plan.h), and AWQ's fold would have to scale them: no fold. */
    {.model_type = "gpt_oss", .attn_sinks = 1, .topk_softmax = 1, .fused_experts = QF_FUSED_INTERLEAVED,
     .clamped_swiglu = 1, .router = "router"},
    /* Llama4TextAttention (NoPE layers, chunked attention, L2 q/k norm after an interleaved RoPE,
     * NoPE attention temperature), Llama4TextMoe (feed_forward.router: top-k logits, experts run on
     * sigmoid(logit) · x; fused experts, gate the first half; an ungated shared expert), dense
     * layers of intermediate_size_mlp.  The fold would have to scale the experts' inputs: no fold. */
    {.model_type = "llama4_text", .fused_experts = QF_FUSED_HALVES, .router = "router", .ffn_block = "feed_forward",
     .sigmoid_input_routing = 1, .llama4_attention = 1, .shared_expert = "shared_expert"},
    /* NemotronHBlock: norm -> one mixer (Mamba-2, attention without RoPE, squared-ReLU MLP or
     * MoE) -> residual add; NemotronHTopkRouter routes as GLM's does (shared experts added
     * unscaled).  The fold into the mixer's pre-norm is not written for the Mamba mixer (its
     * in_proj feeds a convolution and a gated norm): no fold. */
    {.model_type = "nemotron_h", .hybrid = 1, .nope = 1, .sigmoid_routing = 1, .shared_expert = "shared_experts"},
    /* Qwen3NextRMSNorm: (1 + w) (the DeltaNet's gated norm is x w: loaded without the offset);
     * Qwen3NextAttention: q_proj's gate; Qwen3NextGatedDeltaNet on linear_attention layers;
     * Qwen3NextSparseMoeBlock: shared_expert × sigmoid(shared_expert_gate).  No fold into
     * (1 + w) norms. */
    {.model_type = "qwen3_next", .norm_offset = 1.0f, .partial_rope = 1, .shared_expert = "shared_expert",
     .attn_gate = 1, .deltanet = 1},
    /* Qwen3_5MoeGatedDeltaNet: in_proj_qkv / in_proj_z / in_proj_b / in_proj_a; otherwise
     * Qwen3-Next's layer (its interleaved MRoPE is plain RoPE for text positions) */
    {.model_type = "qwen3_5_moe_text", .norm_offset = 1.0f, .partial_rope = 1, .shared_expert = "shared_expert",
     .attn_gate = 1, .deltanet = 1, .deltanet_split = 1},
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
