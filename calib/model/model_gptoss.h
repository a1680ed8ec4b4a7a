/* model_gptoss.h - internal to calib/model/: what GPT-OSS (gpt_oss) adds to the layer steps.
 *
 * Owns the three pieces of transformers 5.23's modeling_gpt_oss.py that no other family has
 * (the attention sinks live in qf_attention, a per-head term of its softmax):
 *   - the experts, stored fused: mlp.experts.gate_up_proj (E, C, 2F), gate in the even and up
 *     in the odd columns, + gate_up_proj_bias (E, 2F); down_proj (E, F, C) + down_proj_bias
 *     (E, C).  They are read once at load into per-expert float Linears (gate, up, down: the
 *     runner's expert layout), so every step, the observer and calibration see them as they
 *     see any MoE's experts;
 *   - the router's choice: the top k of the router logits (Linear with a bias), then a softmax
 *     over those k alone (GptOssTopKRouter);
 *   - the experts' clamped SwiGLU (GptOssExperts._apply_gate).
 */
#ifndef QF_MODEL_GPTOSS_H
#define QF_MODEL_GPTOSS_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_model.h"

/* L->experts (3 E Linears, gate / up / down per expert, named
 * "model.layers.<l>.<blk>.experts.<e>.{gate,up,down}_proj", blk = fam->ffn_block or "mlp") and
 * L->expert_w (the block they borrow: each expert's weight transposed to [out, in] in the
 * checkpoint's float dtype) from layer l's fused tensors in fam->fused_experts' layout (also
 * Llama 4's: gate the first half, no biases); with GPT-OSS's biases each Linear owns its
 * float32 bias.  QF_ERR_FORMAT naming the
 * tensor when one is missing or of another shape than the config's, QF_ERR_NOMEM. */
qf_status qf_load_fused_experts(const qf_checkpoint *ck, const qf_family *fam, const qf_model_config *cfg, int l,
                                qf_layer *L, qf_error *err);

/* One token's routing: s[0..K) = the K largest of logits[0..E) (ties: lower index first),
 * w = softmax of those K logits (float32, as torch). */
void qf_route_topk_softmax(const float *logits, int E, int K, int *s, float *w);

/* g[i] = (clamp(u[i], -limit, limit) + 1) · x · sigmoid(alpha · x), x = min(g[i], limit), for
 * i < n (float32). */
void qf_swiglu_clamped(float *g, const float *u, int64_t n, float alpha, float limit);

#endif /* QF_MODEL_GPTOSS_H */
