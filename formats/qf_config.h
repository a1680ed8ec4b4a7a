/* qf_config.h - a model's config.json, as the runner and the converter need it.
 *
 * Owns the parsed hyper-parameters of the Llama family as hub checkpoints spell them:
 * llama, mistral, qwen2 (qkv bias), qwen3 (q/k RMSNorm), mixtral, qwen2_moe / qwen3_moe, and
 * the keys the runner's other families add (gemma3_text, glm4_moe, qwen3_next / qwen3_5_moe_text).
 * Accepts both RoPE spellings: top-level rope_theta + rope_scaling (older transformers) and
 * rope_parameters {rope_theta, rope_type, factor, ...} (transformers 5).  The raw JSON is
 * kept (json, owned) so writers can copy the config with a quantization_config added.
 * qf_config_free releases it.  Unknown model_type is not an error here (the converter does
 * not need to understand a model to quantize its Linear layers); the runner checks
 * qf_config_runnable().
 */
#ifndef QF_CONFIG_H
#define QF_CONFIG_H

#include <jansson.h>

#include "qf_error.h"
#include "qf_safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qf_rope_type {
    QF_ROPE_DEFAULT = 0,
    QF_ROPE_LLAMA3 = 1, /* llama3 frequency-dependent scaling */
    QF_ROPE_LINEAR = 2, /* positions divided by factor */
    QF_ROPE_YARN = 3,   /* YaRN: frequencies blended between interpolated and original by a
                         * ramp over the dimensions, cos/sin scaled by an attention factor */
    QF_ROPE_LONGROPE = 4, /* LongRoPE (Phi-3 128k, Phi-3.5, Phi-4-mini): one factor per frequency,
                           * the short set for sequences up to original_max_position_embeddings and
                           * the long set beyond, cos/sin scaled by an attention factor */
} qf_rope_type;

/* The most frequencies a LongRoPE factor list may hold (rotated dimensions / 2). */
#define QF_ROPE_MAX_FREQS 256

/* The FFN's activation (hidden_act, or Gemma's hidden_activation). */
typedef enum qf_ffn_act {
    QF_FFN_ACT_SILU = 0,      /* "silu" (SwiGLU), the default */
    QF_FFN_ACT_GELU_TANH = 1, /* "gelu_pytorch_tanh" / "gelu_new": tanh-approximated GeLU (GeGLU) */
    QF_FFN_ACT_OTHER = 2,     /* anything else: the runner refuses it by name */
    QF_FFN_ACT_RELU2 = 3,     /* "relu2": relu(x)^2 of an ungated MLP (nemotron_h's mlp_hidden_act) */
} qf_ffn_act;

typedef struct qf_model_config {
    char model_type[32];       /* "llama", "mixtral", ... */
    char architecture[64];     /* architectures[0] */
    int hidden_size;
    int intermediate_size;     /* dense FFN width (or per-expert width for mixtral) */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;              /* explicit head_dim or hidden_size / n_heads */
    int vocab_size;
    int max_position_embeddings;
    float rms_norm_eps;
    double rope_theta;
    qf_rope_type rope_type;
    float rope_factor;             /* linear / llama3 / yarn */
    float rope_low_freq_factor;    /* llama3 */
    float rope_high_freq_factor;   /* llama3 */
    int rope_original_max_pos;     /* llama3 / yarn / longrope original_max_position_embeddings */
    double rope_yarn_attn_factor;  /* yarn / longrope: cos and sin are multiplied by it (attention_factor, or
                                    * from factor, mscale, mscale_all_dim as transformers derives it) */
    double rope_yarn_beta_fast, rope_yarn_beta_slow; /* yarn: the ramp's bounds in rotations (32, 1) */
    int rope_yarn_truncate;        /* yarn: ramp bounds rounded to whole dimensions (default 1) */
    /* longrope: inv_freq[i] = 1 / (factor[i] · theta^(2i/d)) with the short factors for a
     * sequence of at most rope_original_max_pos tokens, the long ones beyond; cos and sin are
     * multiplied by rope_yarn_attn_factor (attention_factor, or from factor as transformers
     * derives it) */
    int rope_n_factors;            /* entries of each list (= rotated dimensions / 2) */
    float rope_short_factor[QF_ROPE_MAX_FREQS], rope_long_factor[QF_ROPE_MAX_FREQS];
    double rope_partial_factor;    /* partial_rotary_factor: the fraction of each head RoPE rotates (1) */
    double rope_local_theta;       /* Gemma 3: rope_parameters.sliding_attention.rope_theta, the base of
                                    * the sliding layers' (default-type) RoPE; 0 = one RoPE for all */
    qf_ffn_act hidden_act;
    char hidden_act_name[32];      /* as spelled in config.json, for messages */
    double query_pre_attn_scalar;  /* Gemma: attention scores are scaled by its -1/2 power (0: head_dim) */
    double final_logit_softcap;    /* logits = cap · tanh(logits / cap) when > 0 (final_logit_softcapping) */
    int tie_word_embeddings;
    int attention_bias;            /* q/k/v projections carry a bias (qwen2) */
    int qk_norm;                   /* per-head RMSNorm on q and k (qwen3) */
    /* mixture of experts (0 experts = dense) */
    int n_experts;
    int n_experts_per_tok;
    int moe_intermediate_size;     /* qwen-moe expert width; mixtral uses intermediate_size */
    int shared_expert_intermediate_size; /* qwen2_moe shared expert (0 = none) */
    int norm_topk_prob;            /* renormalise top-k router weights (mixtral: always) */
    /* glm4_moe (DeepSeek-V3-style routing): sigmoid scores + e_score_correction_bias choose
     * the experts within the best topk_group of n_group groups; weights × routed_scaling_factor */
    int n_group, topk_group;
    double routed_scaling_factor;  /* 1 unless set */
    int n_extra_layers;            /* num_nextn_predict_layers: MTP layers stored after the decoder's
                                    * (model.layers.N..N+extra-1), not run */
    json_t *json;                  /* the whole parsed config.json (owned) */
    /* gpt_oss: the experts' SwiGLU, (clamp(up, -limit, limit) + 1) · g · sigmoid(alpha · g) with
     * g = min(gate, limit) (swiglu_alpha 1.702, swiglu_limit 7 unless set); 0 for other families */
    double swiglu_alpha, swiglu_limit;
    /* the dense MLP's width where it differs from intermediate_size (llama4_text:
     * intermediate_size_mlp, its experts and shared expert being intermediate_size wide) */
    int mlp_intermediate_size;
    int rope_interleaved;          /* RoPE rotates pairs (2i, 2i + 1), as a complex product (llama4_text) */
    /* llama4_text (Llama4TextConfig): per-layer kinds from qf_config_llama4_layers; the L2 q/k
     * norm of the RoPE layers (use_qk_norm), and the NoPE layers' attention temperature
     * q · (log1p(floor((pos + 1) / floor_scale)) · attn_scale + 1) (attn_temperature_tuning) */
    int l4_qk_norm, l4_temp_tuning;
    double l4_floor_scale, l4_attn_scale;
    /* nemotron_h's Mamba-2 mixers (config_hybrid.c; 0 for every other family) */
    int mamba_n_heads, mamba_head_dim; /* mamba_num_heads, mamba_head_dim: the SSM's width is their product */
    int ssm_state_size, mamba_n_groups; /* ssm_state_size, n_groups (B and C are shared by a group of heads) */
    int conv_kernel, use_conv_bias;     /* conv_kernel (causal depthwise conv over x, B, C), use_conv_bias */
    int ssm_chunk_size;                 /* chunk_size of transformers' chunked scan (the runner's scan is
                                         * sequential; kept for messages and tests) */
    int mamba_bias;                     /* use_bias: in_proj / out_proj carry a bias */
    double time_step_min;               /* dt is clamped below at it (the mixer's time_step_limit) */
    /* qwen3_next: gated DeltaNet (linear attention) layers, and the full layers' output gate */
    int lin_k_heads, lin_v_heads;  /* linear_num_key_heads, linear_num_value_heads */
    int lin_k_dim, lin_v_dim;      /* linear_key_head_dim, linear_value_head_dim */
    int lin_conv;                  /* linear_conv_kernel_dim (the causal depthwise conv's width) */
    int attn_output_gate;          /* q_proj's rows hold each head's query and then its output gate */
    /* deepseek_v3's multi-head latent attention (MLA; kv_lora_rank 0 elsewhere).  head_dim is
     * then max(qk_nope + qk_rope, v_head_dim), the width of the runner's per-head buffers, and
     * RoPE rotates qk_rope_head_dim dimensions (transformers' head_dim) */
    int q_lora_rank;               /* q_a_proj's rank; 0: a plain q_proj */
    int kv_lora_rank;              /* the compressed kv latent (kv_a_proj_with_mqa's first rows) */
    int qk_nope_head_dim, qk_rope_head_dim, v_head_dim;
    int rope_interleave;           /* the rope part of q and k_pe is laid out in (even, odd) pairs */
    double attn_mscale;            /* softmax scale = qk_head_dim^-1/2 x this: YaRN's
                                    * mscale(factor, mscale_all_dim)^2 when set, else 1 */
    int index_topk;                /* deepseek_v32: keys its indexer keeps per query (0 elsewhere);
                                    * a sequence no longer than it keeps every key */
} qf_model_config;

/* Parse path (a config.json).  Missing or non-integer required fields are QF_ERR_FORMAT
 * naming the file and the key.  On failure cfg holds nothing to free. */
qf_status qf_config_load(const char *path, qf_model_config *cfg, qf_error *err);
void qf_config_free(qf_model_config *cfg);
/* QF_OK when the runner supports cfg->model_type; else QF_ERR_UNSUPPORTED naming the
 * supported list. */
qf_status qf_config_runnable(const qf_model_config *cfg, qf_error *err);
/* Attention window of each layer as transformers computes it for cfg->model_type
 * (formats/config_window.c has the rules): window[l] = W > 0 when layer l's query i sees only
 * keys i-W+1..i, 0 for full causal attention; window has cfg->n_layers entries.  A variant the
 * runner does not implement is QF_ERR_UNSUPPORTED (or QF_ERR_FORMAT when malformed) naming path
 * and the key, never full attention in its place. */
qf_status qf_config_attn_windows(const char *path, const qf_model_config *cfg, int *window, qf_error *err);
/* llama4_text's layer kinds (formats/config_llama4.c), cfg->n_layers entries each: use_rope[l]
 * (no_rope_layers[l], default a NoPE layer every no_rope_layer_interval = 4) and chunk[l] > 0
 * when layer l is "chunked_attention" (layer_types, default: the RoPE layers) with chunks of
 * attention_chunk_size tokens (query i sees keys j <= i with j / C = i / C).  Anything else
 * is refused naming the file and the key. */
qf_status qf_config_llama4_layers(const char *path, const qf_model_config *cfg, int *use_rope, int *chunk,
                                  qf_error *err);

/* nemotron_h (config_hybrid.c): the Mamba-2 keys into cfg (layer_norm_epsilon as rms_norm_eps,
 * mlp_hidden_act as hidden_act, the SSM's sizes, the MoE keys: n_routed_experts, n_group, ...); *bad is set to a key that is not an integer. */
void qf_config_hybrid_keys(json_t *o, qf_model_config *cfg, const char **bad);
/* The mixer of each of cfg->n_layers layers of a nemotron_h config, one character per layer as
 * hybrid_override_pattern spells it: 'M' Mamba-2, '*' attention, '-' MLP, 'E' MoE; from
 * layers_block_type (transformers 5: linear_attention / full_attention / mlp / moe, or the
 * legacy mamba / attention) or else hybrid_override_pattern.  kinds has n_layers + 1 bytes.
 * QF_ERR_FORMAT naming path and the key for an unknown kind or a count that differs. */
qf_status qf_config_hybrid_kinds(const char *path, const qf_model_config *cfg, char *kinds, qf_error *err);

/* nemotron_h: what the runner does not run, refused by key (QF_ERR_UNSUPPORTED): MoE layers
 * with a latent projection (moe_latent_size), a Mamba activation other than silu; sizes that do not divide (QF_ERR_FORMAT).  o: the
 * config's JSON object.  Called by qf_config_runnable. */
qf_status qf_config_hybrid_runnable(const qf_model_config *cfg, json_t *o, qf_error *err);

/* Which layers are linear attention (qwen3_next's gated DeltaNet): linear[l] = 1 where
 * layer_types[l] is "linear_attention", 0 where "full_attention"; without layer_types, for
 * qwen3_next, every full_attention_interval-th layer (default 4) is full, as transformers'
 * Qwen3NextConfig derives it; other families: all 0.  Any other layer type in a qwen3_next
 * config is QF_ERR_UNSUPPORTED naming path and the entry.  (config_linear.c) */
qf_status qf_config_linear_layers(const char *path, const qf_model_config *cfg, int *linear, qf_error *err);

/* Every tensor of ck whose Llama-family name it knows (embeddings, norms, attention and MLP
 * projections, routers, experts, lm_head) has the shape cfg implies, and layer and expert
 * indexes are below the config's counts; QF_ERR_FORMAT naming cfg_path, the tensor, its shape
 * and the config keys otherwise.  Packed (non-float) tensors and families other than
 * qf_config_runnable's are not checked.  (config_shapes.c) */
qf_status qf_config_check_shapes(const char *cfg_path, const qf_model_config *cfg, const qf_checkpoint *ck,
                                 qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_CONFIG_H */
