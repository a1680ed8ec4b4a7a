/* model_llama4.h - internal to calib/model/: what Llama 4 (llama4_text) adds to the layer steps.
 *
 * Owns the pieces of transformers 5.23's modeling_llama4.py that no other family has (the
 * interleaved RoPE is model_rope.c's, the fused experts model_gptoss.c's loader, the chunk
 * mask qf_attention's):
 *   - which layers are NoPE and which chunked (qf_llama4_layers, from config_llama4.c);
 *   - Llama4TextAttention's q/k treatment after RoPE: the L2 norm (Llama4TextL2Norm, no weight)
 *     of the RoPE layers when use_qk_norm, and the NoPE layers' attention temperature
 *     q · (log1p(floor((pos + 1) / floor_scale)) · attn_scale + 1);
 *   - Llama4Router's choice: the top k router logits, each weighted by sigmoid(logit), a weight
 *     the MoE block applies to the expert's input (Llama4TextMoe), not to its output.
 */
#ifndef QF_MODEL_LLAMA4_H
#define QF_MODEL_LLAMA4_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_model.h"

/* Each layer's RoPE (NULL for a NoPE layer) and attn_chunk from dir/config.json's keys. */
qf_status qf_llama4_layers(qf_model *m, const char *dir, qf_error *err);

/* q (seqlen, H*D), k (seqlen, KV*D) of one sequence at positions 0..seqlen-1, after RoPE:
 * the L2 norm of each head's q and k on a RoPE layer (use_qk_norm), the temperature of q on a
 * NoPE layer (attn_temperature_tuning); nothing otherwise. */
void qf_llama4_qk(const qf_model *m, const qf_layer *L, float *q, float *k, int64_t seqlen);

/* One token's routing: s[0..K) = the K largest of logits[0..E) (ties: lower index first),
 * w[j] = sigmoid(logits[s[j]]) (float32). */
void qf_route_topk_sigmoid(const float *logits, int E, int K, int *s, float *w);

#endif /* QF_MODEL_LLAMA4_H */
