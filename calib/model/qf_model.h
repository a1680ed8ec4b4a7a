/* qf_model.h - the CPU model runner: a Llama-family decoder evaluated in float32.
 *
 * Owns a loaded model: its config, the checkpoint mapping (weights are borrowed from it, bf16
 * / fp16 / fp32 or packed quantized tensors), small float32 copies of the norm weights, and
 * one qf_linear per Linear module.  Architectures (config.json model_type):
 *   llama, mistral     GQA attention, RoPE (default, linear, llama3, yarn scaling), SwiGLU MLP
 *   qwen2              + bias on q/k/v projections
 *   qwen3              + per-head RMSNorm on q and k (q_norm, k_norm) before RoPE
 *   mixtral            MoE: block_sparse_moe.gate router, experts.E.w1 (gate) / w3 (up) / w2 (down)
 *   qwen2_moe/qwen3_moe MoE: mlp.gate router, mlp.experts.E.{gate,up,down}_proj, optional
 *                      mlp.shared_expert.* scaled by sigmoid(mlp.shared_expert_gate(x));
 *                      layers without a router use a dense mlp (decoder_sparse_step)
 *   gemma3_text        (1 + w) RMSNorms, sandwich norms (post-attention, pre- and post-feed-
 *                      forward), embeddings × sqrt(hidden), q/k norms, scores scaled by
 *                      query_pre_attn_scalar^-1/2, GeLU-tanh MLP, sliding layers with their own
 *                      RoPE base, final logit soft-capping, tied embeddings
 *   phi3               fused self_attn.qkv_proj and mlp.gate_up_proj, partial rotary
 *   glm4_moe           dense first layers, then MoE: sigmoid routing with a score-correction
 *                      bias over grouped experts, routed_scaling_factor, shared experts;
 *                      partial rotary, optional q/k norms, q/k/v biases
 *   gpt_oss            attention sinks, alternating sliding / full layers, YaRN, q/k/v/o biases,
 *                      router with a bias (top-k logits, softmax over k), fused 3-D experts with
 *                      biases (gate / up interleaved) and the clamped SwiGLU
 *   llama4_text        NoPE layers (attention temperature) and chunked-attention RoPE layers
 *                      (interleaved RoPE, L2 q/k norm), MoE on some layers: fused experts (gate /
 *                      up halves) run on sigmoid(top-k logit) · x, an ungated shared expert;
 *                      dense layers of intermediate_size_mlp
 *   nemotron_h         hybrid: each layer ONE mixer behind its norm (qf_layer.mixer): Mamba-2
 *                      (model_mamba.c; in_proj held in q, out_proj in o), attention without
 *                      RoPE, a squared-ReLU MLP (up, down; gate empty), or a MoE block of
 *                      such experts (GLM's sigmoid grouped routing, ungated shared experts)
 *   qwen3_next         gated DeltaNet linear-attention layers (model_deltanet.c) between gated
 *                      full-attention layers (output × sigmoid(gate)), (1 + w) norms, q/k
 *                      norms, partial rotary, MoE with a sigmoid-gated shared expert
 *   qwen3_5_moe_text   the same with the DeltaNet's four separate projections (in_proj_qkv, _z,
 *                      _b, _a) and top-k weights always renormalised
 *   deepseek_v3        glm4_moe's MoE layout and routing, with multi-head latent attention
 *                      (MLA: low-rank q and kv projections with their own norms, RoPE on a
 *                      decoupled part of each head, interleaved when rope_interleave, the
 *                      softmax scale × YaRN's mscale_all_dim adjustment; model_mla.c)
 *   deepseek_v32       deepseek_v3 for sequences no longer than index_topk, where the DSA
 *                      indexer keeps every key (its Linears are loaded, not run); longer
 *                      sequences are refused
 * What a family adds to the Llama layer is one row of the family table (qf_family,
 * model_family.c); the steps read the row, never the model_type.
 * Routing: softmax over the router logits (float32), top-k, renormalised when norm_topk_prob
 * (always for mixtral).  RoPE uses Hugging Face's rotate-half convention (on the leading
 * partial_rotary_factor of each head where the family has partial rotary; Llama 4: pairs).
 *
 * Evaluation is a whole sequence at once (one ppl window): every Linear is one batched
 * product over the n tokens, attention is causal over positions 0..n-1 with a fresh cache,
 * limited to each layer's sliding window where the config sets one (qf_layer.attn_window).
 * All work is parallel across OpenMP threads.  A model is immutable after loading and
 * forward passes only read it (not thread-safe against a concurrent observer change).
 *
 * The forward math lives in the layer steps (qf_layer_steps.h): qf_model_forward and
 * qf_model_layer_forward are their composition, and calibration calls the same steps pass by
 * pass.  Calibration drives the model through qf_model_forward with an observer (every
 * Linear's input is reported), layer by layer (qf_model_embed, qf_model_layer_forward,
 * qf_model_logits) or step by step, and may swap any qf_linear in m->layers between calls.
 */
#ifndef QF_MODEL_H
#define QF_MODEL_H

#include <stdint.h>

#include "qf_config.h"
#include "qf_error.h"
#include "qf_linear.h"
#include "qf_safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_model_options {
    int act_quant;        /* 1 (default): emulate activation quantization of packed Linears; 0: off */
    int moe_force_expert; /* -1 (default): route normally; e >= 0: every token uses expert e alone
                           * with weight 1 (a test / debugging knob) */
    int float_source;     /* 0 (default): a compressed-tensors / ModelOpt FP8 checkpoint runs as the
                           * packed FP8 Linears an engine serves; 1: as its bf16 dequantization
                           * (qf_quant_source.h), the float model calibration aims at */
    unsigned ablate;      /* 0 (default); QF_ABLATE_* bits switch one feature off, so a test can show
                           * that its check sees a runner without it (a test knob) */
} qf_model_options;

#define QF_ABLATE_ATTN_GATE 1u /* qwen3_next: attention output not multiplied by sigmoid(gate) */
#define QF_ABLATE_CONV 2u      /* gated DeltaNet: no causal conv1d (SiLU kept) */
#define QF_ABLATE_BETA 4u      /* gated DeltaNet: beta = 1 instead of sigmoid(b) */
#define QF_ABLATE_DECAY 8u     /* gated DeltaNet: g = 0 (no decay of the state) */

/* act_quant = 1, moe_force_expert = -1, float_source = 0, ablate = 0. */
void qf_model_options_default(qf_model_options *opt);

/* What a model_type's decoder layer adds to the Llama layer (one row of model_family.c). */
typedef struct qf_family {
    const char *model_type;
    float norm_offset;  /* 1: Gemma's RMSNorms multiply by (1 + w); added to the float copies at load */
    int sandwich;       /* Gemma: post_attention_layernorm normalizes the attention output and
                         * post_feedforward_layernorm the FFN output, each before its residual add;
                         * the FFN's input norm is pre_feedforward_layernorm */
    int scale_embed;    /* Gemma: embedding rows × sqrt(hidden_size) (float32) */
    int fused_qkv;      /* Phi-3: self_attn.qkv_proj = [q; k; v] rows, held in qf_layer.q */
    int fused_gate_up;  /* Phi-3: mlp.gate_up_proj = [gate; up] rows, held in qf_layer.gate */
    int partial_rope;   /* partial_rotary_factor honoured (RoPE on the leading dimensions) */
    int fold_norms;     /* AWQ / SmoothQuant may fold scales into plain x·w norms and the
                         * previous Linear (0: refused, the fold would be wrong or is not written) */
    int sigmoid_routing;       /* GLM-4.5: sigmoid scores, e_score_correction_bias, grouped top-k,
                                * routed_scaling_factor (else softmax top-k) */
    const char *shared_expert; /* the shared expert's module under mlp ("shared_expert"; GLM:
                                * "shared_experts", without a sigmoid gate); NULL: none */
    /* GPT-OSS (model_gptoss.c): */
    int attn_sinks;      /* self_attn.sinks: one learned logit per head in the softmax's denominator */
    int topk_softmax;    /* routing: the top k router logits (router with a bias), softmax over those k */
    int fused_experts;   /* experts.gate_up_proj (E, C, 2F) and down_proj (E, F, C) read into per-expert
                          * Linears at load: QF_FUSED_INTERLEAVED (GPT-OSS: gate / up interleaved, with
                          * gate_up_proj_bias and down_proj_bias) or QF_FUSED_HALVES (Llama 4: gate the
                          * first F columns, no biases); 0: per-expert modules only */
    int clamped_swiglu;  /* experts' (clamp(up) + 1) · g · sigmoid(swiglu_alpha · g), g = min(gate, limit) */
    const char *router;  /* the router's module under mlp (NULL: "gate"; GPT-OSS: "router") */
    /* Llama 4 (model_llama4.c): */
    const char *ffn_block;     /* each layer's FFN module (NULL: "mlp"; Llama 4: "feed_forward") */
    int sigmoid_input_routing; /* the top k router logits, each expert run on sigmoid(logit) · x and its
                                * output added unweighted (Llama4TextMoe) */
    int llama4_attention;      /* per-layer NoPE / chunked attention (qf_config_llama4_layers), the L2
                                * q/k norm after RoPE, the NoPE layers' attention temperature */
    int hybrid;                /* Nemotron-H: each layer is ONE mixer (qf_layer.mixer) behind its own
                                * pre-norm and residual, tensors under backbone.layers.N.mixer */
    int nope;                  /* attention without RoPE (Nemotron-H's attention layers) */
    int attn_gate;      /* Qwen3-Next: q_proj = per head [query; gate], output × sigmoid(gate) before o_proj */
    int deltanet;       /* Qwen3-Next: layer_types' linear_attention layers are gated DeltaNet
                         * (linear_attn.*, model_deltanet.c) */
    int deltanet_split; /* Qwen3.5: the DeltaNet's projections are in_proj_qkv (flat [q | k | v]),
                         * in_proj_z, in_proj_b, in_proj_a instead of head-grouped in_proj_qkvz / _ba */
    int mla;            /* DeepSeek-V3: multi-head latent attention (qf_layer's q_a, kv_a, kv_b;
                         * model_mla.c) */
} qf_family;

/* qf_layer.mixer of a hybrid family's layer (hybrid_override_pattern's characters); 0: the
 * Llama layer (attention block, then FFN block) of every other family. */
#define QF_MIXER_MAMBA 'M' /* Mamba-2: in_proj held in q, out_proj in o, the SSM in attn_core's place */
#define QF_MIXER_ATTN '*'  /* attention block alone */
#define QF_MIXER_MLP '-'   /* FFN block alone (its norm is ffn_norm) */
#define QF_MIXER_MOE 'E'   /* MoE block alone (its norm is ffn_norm; ungated experts: gate empty) */

/* The row of model_type, NULL when the runner does not know it. */
const qf_family *qf_family_find(const char *model_type);

/* RoPE tables of one base / scaling (a model has one, Gemma 3 two: full and sliding layers). */
typedef struct qf_rope {
    int dims;                /* dimensions rotated per head: head_dim × partial_rotary_factor (even) */
    float *inv_freq;         /* (dims / 2) fp32 inverse frequencies, owned */
    float *cos, *sin;        /* (len, dims / 2) cos / sin of position × inv_freq (× scale), owned (one block at cos) */
    int64_t len;             /* positions tabulated (later positions are computed on the fly) */
    float scale;             /* cos and sin are multiplied by it (YaRN's / LongRoPE's attention factor; else 1) */
    int interleaved;         /* pairs (2i, 2i + 1) rotate (Llama 4's complex product); else rotate-half */
    struct qf_rope *long_ctx; /* LongRoPE: the table of its long factors, used for a sequence of more
                               * than long_after tokens (transformers switches per forward call on
                               * the sequence length); owned, NULL for every other type */
    int64_t long_after;
} qf_rope;

typedef struct qf_layer {
    float *attn_norm;        /* (hidden) fp32, owned: input_layernorm */
    float *ffn_norm;         /* (hidden) fp32, owned: post_attention_layernorm (Gemma: pre_feedforward_layernorm) */
    float *post_attn_norm;   /* (hidden) fp32, owned: Gemma's post_attention_layernorm, else NULL */
    float *post_ffn_norm;    /* (hidden) fp32, owned: Gemma's post_feedforward_layernorm, else NULL */
    float *q_norm, *k_norm;  /* (head_dim) fp32, owned: qwen3 / gemma3 only, else NULL */
    qf_linear q, k, v, o;    /* q: (n_heads*head_dim, hidden), k/v: (n_kv*head_dim, hidden), o: (hidden, n_heads*head_dim);
                              * fused_qkv: q is qkv_proj ((n_heads + 2 n_kv)*head_dim rows), k and v are empty */
    int attn_window;         /* tokens a query sees, itself included (sliding window); 0 = every earlier one */
    int attn_chunk;          /* Llama 4's chunked attention: a query sees the earlier keys of its own chunk
                              * of attn_chunk tokens; 0 = none */
    const qf_rope *rope;     /* the model's RoPE this layer uses (Gemma 3's sliding layers: rope_local);
                              * NULL: none (Llama 4's NoPE layers) */
    int is_moe;
    /* dense MLP (is_moe == 0): gate/up (inter, hidden), down (hidden, inter); fused_gate_up:
     * gate is gate_up_proj (2 inter rows), up is empty */
    qf_linear gate, up, down;
    /* MoE (is_moe == 1) */
    qf_linear router;        /* (n_experts, hidden), usually float */
    float *router_bias;      /* (n_experts) fp32, owned: GLM's mlp.gate.e_score_correction_bias, else NULL */
    qf_linear *experts;      /* [n_experts * 3], owned array: expert e is gate = [3e], up = [3e+1], down = [3e+2] */
    int has_shared;
    qf_linear sh_gate, sh_up, sh_down; /* shared expert (qwen2_moe) */
    qf_linear sh_router;     /* shared_expert_gate (1, hidden): output scaled by sigmoid of it (empty: unscaled, GLM) */
    float *sinks;            /* (n_heads) fp32, owned: GPT-OSS's attention sinks, else NULL */
    void *expert_w;          /* owned: the experts' weights read out of fused 3-D tensors (GPT-OSS), which
                              * experts[] borrow; NULL when they are borrowed from the checkpoint */
    /* hybrid families (qf_family.hybrid) */
    int mixer;               /* QF_MIXER_*, 0 for a Llama layer */
    /* Mamba-2 mixer (mixer == QF_MIXER_MAMBA) and gated DeltaNet (linear_attn), every vector fp32,
     * owned.  Mamba: I = mamba heads x mamba_head_dim, CD = I + 2 n_groups ssm_state_size (the
     * convolved x, B, C).  DeltaNet (Qwen3-Next's linear_attention layers): q holds
     * in_proj_qkvz, k in_proj_ba, o out_proj; v is empty; no q_norm / k_norm, no RoPE */
    float *conv_w;           /* conv1d.weight: Mamba (CD, conv_kernel); DeltaNet (2 key_dim + value_dim, lin_conv) */
    float *conv_b;           /* Mamba (CD): conv1d.bias, NULL without use_conv_bias */
    float *dt_bias;          /* (mamba heads / lin_v_heads): dt_bias */
    float *ssm_a, *ssm_d;    /* Mamba (mamba heads): A = -exp(A_log), D */
    float *gnorm;            /* the gated RMSNorm's weight (mixer.norm: (I); DeltaNet: (lin_v_dim), x w, no offset) */
    int linear_attn;
    float *neg_a;            /* DeltaNet (lin_v_heads): -exp(A_log) */
    /* deltanet_split (Qwen3.5): q holds in_proj_qkv, k in_proj_z, v in_proj_b and in_a in_proj_a */
    qf_linear in_a;
    /* MLA (fam->mla; else empty / NULL): q is q_b_proj (q_proj when q_lora_rank is 0), k and v
     * are empty, o is o_proj (hidden, heads × v_head_dim) */
    qf_linear q_a;           /* q_a_proj (q_lora_rank, hidden); empty when q_lora_rank is 0 */
    qf_linear kv_a;          /* kv_a_proj_with_mqa (kv_lora_rank + qk_rope_head_dim, hidden) */
    qf_linear kv_b;          /* kv_b_proj (heads × (qk_nope_head_dim + v_head_dim), kv_lora_rank) */
    float *q_a_norm;         /* (q_lora_rank) fp32, owned: q_a_layernorm (eps 1e-6, as transformers) */
    float *kv_a_norm;        /* (kv_lora_rank) fp32, owned: kv_a_layernorm (eps 1e-6); NULL skips it (a test knob) */
    /* deepseek_v32's DSA indexer (else empty): loaded, never run (a sequence no longer than
     * index_topk keeps every key); calibration quantizes them from their real inputs, wq_b's
     * being q_b_proj's (the q latent), wk's and weights_proj's q_a_proj's (xn) */
    qf_linear idx_wq_b, idx_wk, idx_wproj;
} qf_layer;

typedef struct qf_model {
    qf_model_config cfg;
    const qf_family *fam;    /* the family's row (static) */
    qf_model_options opt;
    qf_checkpoint *ck;       /* owned: every borrowed weight pointer points into it */
    const void *embed;       /* (vocab_in, hidden) borrowed, embed_dtype (F32 / BF16 / F16) */
    qf_dtype embed_dtype;
    int64_t vocab_in;        /* rows of the embedding */
    int64_t vocab_out;       /* rows of lm_head = width of the logits */
    qf_layer *layers;        /* [cfg.n_layers], owned */
    float *final_norm;       /* (hidden) fp32, owned */
    qf_linear lm_head;       /* (vocab_out, hidden); the embedding when tie_word_embeddings */
    qf_rope rope;            /* the RoPE of the config (every layer's but Gemma 3's sliding ones) */
    qf_rope rope_local;      /* Gemma 3's sliding layers (rope_local_theta, default type); else unused */
    float embed_scale;       /* embedding rows are multiplied by it (Gemma: sqrt(hidden)); else 1 */
    float attn_scale;        /* attention scores × it: head_dim^-1/2, or query_pre_attn_scalar^-1/2 */
    int n_linear_packed;     /* how many Linears are quantized (0 for a float checkpoint) */
    int64_t ffn_max;         /* widest FFN (dense, expert or shared), for work buffers */
    qf_linear_observer observer; /* fn NULL: none; set freely between forward calls */
    int64_t mixer_width;     /* width of o's input over the layers: heads x head_dim, or a Mamba
                              * mixer's out_proj input when wider (the attention output buffers) */
} qf_model;

/* Load the model in folder dir (config.json + safetensors; an artifact folder with a
 * compressed-tensors quantization_config is read the same way).  opt may be NULL (defaults).
 * Errors name the file / tensor: QF_ERR_IO (unreadable), QF_ERR_FORMAT (missing tensor,
 * wrong shape), QF_ERR_UNSUPPORTED (model_type, dtype, scheme).  On failure *out is NULL. */
qf_status qf_model_load(const char *dir, const qf_model_options *opt, qf_model **out, qf_error *err);
void qf_model_free(qf_model *m); /* NULL accepted */

/* logits (n, vocab_out) fp32 of the sequence ids[0..n) at positions 0..n-1 (fresh cache).
 * ids outside [0, vocab_in) are QF_ERR_USAGE.  Allocates its activations (about
 * n * (4 hidden + 2 intermediate + heads * n) floats) for the duration of the call. */
qf_status qf_model_forward(const qf_model *m, const int32_t *ids, int64_t n, float *logits, qf_error *err);

/* ---- layer-by-layer (calibration) -------------------------------------------------------- */
/* h (n, hidden) = embedding rows of ids (× embed_scale). */
qf_status qf_model_embed(const qf_model *m, const int32_t *ids, int64_t n, float *h, qf_error *err);
/* h (n, hidden) <- decoder layer `layer` applied to h (residual stream), positions 0..n-1. */
qf_status qf_model_layer_forward(const qf_model *m, int layer, float *h, int64_t n, qf_error *err);
/* logits (n, vocab_out) = lm_head(final_norm(h)), soft-capped when cfg.final_logit_softcap > 0;
 * h is not modified. */
qf_status qf_model_logits(const qf_model *m, const float *h, int64_t n, float *logits, qf_error *err);

/* Dimensions RoPE rotates per head: head_dim, or head_dim × partial_rotary_factor rounded
 * down (as transformers' int()) and to an even count. */
int qf_rope_dims(const qf_model_config *cfg);
/* Build r for cfg (qf_rope_dims, qf_rope_inv_freq, qf_rope_cos_scale) over len positions;
 * r->cos is freed by qf_rope_free (which accepts a zeroed r).  QF_ERR_NOMEM only. */
qf_status qf_rope_init(qf_rope *r, const qf_model_config *cfg, int64_t len, qf_error *err);
void qf_rope_free(qf_rope *r);
/* RoPE inverse frequencies of cfg (qf_rope_dims / 2 values), as Hugging Face computes them
 * (float32): default theta^(-2i/d); linear divides by factor; llama3 applies the
 * low/high-frequency wavelength rule with smooth interpolation in between; yarn blends
 * interpolated and original frequencies along a ramp over the dimensions; longrope divides by
 * its short factors (the long ones are qf_rope.long_ctx's, model_rope.c). */
void qf_rope_inv_freq(const qf_model_config *cfg, float *inv_freq);
/* The factor cos and sin are multiplied by: YaRN's and LongRoPE's attention factor, 1 for every
 * other type. */
float qf_rope_cos_scale(const qf_model_config *cfg);
/* c[i] = cos(p · inv_freq[i]) · scale, s[i] likewise, for i < half (float32, as transformers). */
void qf_rope_cos_sin(const float *inv_freq, int64_t half, int64_t p, float scale, float *c, float *s);

/* Pointers to every Linear of m, in order: per layer q k v (in_a) o, then gate up down or router,
 * experts (gate up down per expert), shared expert (gate up down, its sigmoid gate); last
 * lm_head.  Writes at most cap pointers (out may be NULL when cap is 0); returns the count. */
int qf_model_linears(qf_model *m, qf_linear **out, int cap);

/* Number of weight elements (embedding + every Linear, logical shapes). */
int64_t qf_model_params(const qf_model *m);

#ifdef __cplusplus
}
#endif

#endif /* QF_MODEL_H */
