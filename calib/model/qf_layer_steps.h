/* qf_layer_steps.h - the decoder layer as named steps: the one home of the forward math.
 *
 * Owns every piece of the forward pass of a Llama-family decoder layer, written once, with
 * each family's additions (qf_family: Gemma 3's sandwich norms, Phi-3's fused projections).
 * `qforge validate` composes the steps (qf_model_forward, qf_model_layer_forward in
 * model_forward.c) and every calibration pass (calib/calibrate/) calls the same steps, pass by
 * pass, on the layer being quantized or on its float twin: each step takes the qf_layer to
 * run and reads the model (m) only for its config, RoPE tables and observer.  A variant lives
 * inside its step and is chosen there from m->cfg and the qf_layer (qwen2's q/k/v bias is in
 * the Linears, qwen3's qk-norm, RoPE scaling and the sliding window in the attention core,
 * MoE routing and the shared expert in the MoE block, GPT-OSS's sinks in the attention core and
 * its clamped SwiGLU in the FFN activation); calibration code never tests for one.
 *
 * Shapes: n rows (tokens), C = hidden, H heads, KV kv heads, D head_dim; h (n, C) residual
 * stream, xn (n, C) a block's normed input.  Rows are independent tokens in every step except
 * the attention core, which reads its n rows as n / seqlen samples of seqlen tokens, each at
 * positions 0..seqlen-1 with a fresh cache (validate: one sample, seqlen = n; calibration: a
 * chunk of whole samples).  A step computes a token's row from that row alone (one operation
 * order per element whatever n), so chunking never changes a bit.  Every Linear reports its
 * input to m->observer (fn NULL: none).  Outputs may alias the inputs where noted.
 *
 * The steps, in order:
 *   qf_model_embed (qf_model.h)  ids -> h: embedding rows
 *   qf_step_attn_norm   h -> xn = input_layernorm(h)
 *   qf_step_attn_core   xn -> att (n, H*D) = causal attention (sliding window if the layer has
 *                       one) of RoPE(qk-norm(q(xn))), RoPE(qk-norm(k(xn))), v(xn): o's input
 *                       (qwen3_next: × sigmoid(gate); its linear_attention layers: the gated
 *                       DeltaNet, model_deltanet.c, whose out_proj is o)
 *                       (MLA: att (n, H*v_head_dim) from the latents of qf_step_mla_latents)
 *   qf_step_attn_out    h, att -> h1 = h + o(att)   (gemma3: h + post-norm(o(att)))
 *   qf_step_ffn_norm    h1 -> xn2 = post_attention_layernorm(h1) (gemma3: pre_feedforward_layernorm)
 *   dense FFN:  qf_step_ffn_act  xn2 -> g = act(gate(xn2)) * up(xn2): down's input (also of
 *                                one expert, or of the shared expert)
 *               qf_step_ffn_out  h1, g -> h1 + down(g)   (gemma3: h1 + post-norm(down(g)))
 *   MoE block:  qf_moe_route     xn2 -> each token's experts and weights (the router)
 *               qf_step_moe      h1, xn2 -> h1 + Σ_k w_k expert_k(xn2) (+ shared expert)
 *   qf_model_logits (qf_model.h) h -> lm_head(final_norm(h)) (soft-capped when the config says)
 * A hybrid family's layer (qf_layer.mixer, nemotron_h) is one block of these: a Mamba-2 or an
 * attention layer is attn_norm -> attn_core -> attn_out (attn_core runs the Mamba mixer, whose
 * in_proj is held in q and out_proj in o), an MLP layer ffn_norm -> ffn_act -> ffn_out (an FFN
 * without a gate Linear is g = act(up(xn)), relu^2).
 */
#ifndef QF_LAYER_STEPS_H
#define QF_LAYER_STEPS_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Which FFN of a layer qf_step_ffn_act / qf_step_ffn_out run: the dense MLP, the shared
 * expert (qwen2_moe), or expert e >= 0 of a MoE layer. */
#define QF_FFN_DENSE (-1)
#define QF_FFN_SHARED (-2)

/* xn (n, C) = input_layernorm(h) (RMSNorm with the layer's attn_norm).  xn may alias h. */
void qf_step_attn_norm(const qf_model *m, const qf_layer *L, const float *h, int64_t n, float *xn);
/* xn (n, C) = post_attention_layernorm(h) (RMSNorm with the layer's ffn_norm).  xn may alias h. */
void qf_step_ffn_norm(const qf_model *m, const qf_layer *L, const float *h, int64_t n, float *xn);

/* The attention core: att (n, H*D) from xn (n, C), n a multiple of seqlen.  q (n, H*D),
 * k, v (n, KV*D) are work buffers (they hold the projections after RoPE on return).
 * q/k/v Linears (+ bias) -> per-head RMSNorm of q and k (qwen3) -> per sample: RoPE of q and
 * k, causal attention within the layer's window (L->attn_window, 0: all earlier tokens). */
qf_status qf_step_attn_core(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, int64_t seqlen,
                            float *q, float *k, float *v, float *att, qf_error *err);

/* MLA (fam->mla): the inputs of q_b_proj and kv_b_proj from xn (n, C): qlat (n, q_lora_rank) =
 * q_a_layernorm(q_a_proj(xn)) (NULL, or no q_a_proj: not computed), kvlat (n, kv_lora_rank) =
 * kv_a_layernorm of kv_a_proj_with_mqa(xn)'s latent rows and kpe (n, qk_rope_head_dim) its
 * shared k_pe rows before RoPE (either may be NULL).  model_mla.c */
qf_status qf_step_mla_latents(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, float *qlat,
                              float *kvlat, float *kpe, qf_error *err);

/* h1 (n, C) = h + o(att) (gemma3: h + post_attention_layernorm(o(att))); tmp (n, C) work.
 * h1 may alias h or tmp. */
qf_status qf_step_attn_out(const qf_model *m, const qf_layer *L, const float *att, int64_t n, const float *h,
                           float *h1, float *tmp, qf_error *err);

/* g (n, F) = act(gate(xn)) * up(xn), the FFN `ffn` selects (QF_FFN_DENSE, QF_FFN_SHARED or
 * an expert index), act = silu or GeLU-tanh (cfg.hidden_act); u (n, F) work.  F = that FFN's
 * width (its down's input; phi3's fused gate_up_proj has 2F rows, gate first). */
qf_status qf_step_ffn_act(const qf_model *m, const qf_layer *L, int ffn, const float *xn, int64_t n, float *g,
                          float *u, qf_error *err);

/* out (n, C) = h + down(g) of FFN `ffn` (gemma3's dense FFN: h + post_feedforward_layernorm(
 * down(g))); tmp (n, C) work.  out may alias h or tmp; h NULL: out = down(g) (no residual). */
qf_status qf_step_ffn_out(const qf_model *m, const qf_layer *L, int ffn, const float *g, int64_t n, const float *h,
                          float *out, float *tmp, qf_error *err);

/* Routing of n tokens (xn: their post-attention-norm rows), as the MoE block routes them:
 * p = softmax(router(xn)) in float32, the top K = n_experts_per_tok by p (ties: lower index),
 * renormalised when norm_topk_prob; m->opt.moe_force_expert overrides.  sel (n, K) expert ids
 * (-1: none), wsel (n, K) their weights; logits (n, n_experts) is scratch.  obs: the router's
 * observer (NULL: none). */
qf_status qf_moe_route(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, float *logits,
                       const qf_linear_observer *obs, int *sel, float *wsel, qf_error *err);

/* The MoE block: out (n, C) = h + Σ_k wsel_k · expert_k(xn) (+ sigmoid(shared_expert_gate(xn))
 * · shared_expert(xn)); tmp (n, C), g, u (n, widest FFN) work.  out may alias h or tmp. */
qf_status qf_step_moe(const qf_model *m, const qf_layer *L, const float *xn, int64_t n, const float *h, float *out,
                      float *tmp, float *g, float *u, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_LAYER_STEPS_H */
