/* qf_fused_experts.h - Hugging Face's fused 3-D expert tensors, read one expert's Linear at a time.
 *
 * Some families store all experts of a MoE layer in two 3-D tensors instead of one 2-D Linear
 * weight per expert and projection:
 *   <prefix>.experts.gate_up_proj  [E, H, 2I]   x @ gate_up_proj[e] gives gate and up side by side
 *   <prefix>.experts.down_proj     [E, I, H]    act @ down_proj[e] gives the expert's output
 * Llama 4 (llama4, llama4_text) puts gate in the first I columns and up in the last I
 * (QF_FUSED_HALVES); GPT-OSS interleaves them, gate in the even columns and up in the odd ones
 * (QF_FUSED_INTERLEAVED), and adds gate_up_proj_bias [E, 2I] and down_proj_bias [E, H].
 * The matrices are stored input-major (x @ W), so the Linear weight of an expert, [out, in], is
 * the transpose of its columns: gate_proj.weight [I, H] = gate_up_proj[e][:, gate columns]^T,
 * down_proj.weight [H, I] = down_proj[e]^T.
 *
 * Nothing here copies a whole tensor: qf_expert_slice_read writes one expert's Linear weight
 * into a buffer the caller owns (rows * cols elements of the source dtype), read from the
 * borrowed mapping, so a converter holds one expert matrix at a time whatever the model size.
 */
#ifndef QF_FUSED_EXPERTS_H
#define QF_FUSED_EXPERTS_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The projection a per-expert Linear is (its name in "<prefix>.experts.<e>.<name>.weight"). */
typedef enum qf_expert_part { QF_EXPERT_GATE = 0, QF_EXPERT_UP = 1, QF_EXPERT_DOWN = 2 } qf_expert_part;

/* Where gate and up sit in gate_up_proj's last dimension. */
typedef enum qf_fused_layout { QF_FUSED_HALVES = 1, QF_FUSED_INTERLEAVED = 2 } qf_fused_layout;

/* Kinds of fused tensor, by name. */
typedef enum qf_fused_kind { QF_FUSED_NOT = 0, QF_FUSED_GATE_UP = 1, QF_FUSED_DOWN = 2 } qf_fused_kind;

typedef struct qf_expert_slice {
    const qf_tensor *t;      /* the fused tensor (borrowed from the checkpoint) */
    int expert;              /* e in [0, E) */
    qf_expert_part part;
    qf_fused_layout layout;  /* gate_up only */
    int64_t rows, cols;      /* the Linear weight [out, in] this slice is */
} qf_expert_slice;

/* QF_FUSED_GATE_UP or QF_FUSED_DOWN when t is named "<prefix>.experts.gate_up_proj" or
 * "<prefix>.experts.down_proj" (any rank or dtype: qf_fused_experts_check judges those). */
qf_fused_kind qf_fused_kind_of(const char *name);

/* Length of "<prefix>.experts" in a fused tensor's name (the module the 3-D tensors belong to). */
size_t qf_fused_module_len(const char *name);

/* The layer's pair must agree: both 3-D floating point, gate_up [E, H, 2I] with an even last
 * dimension, down [E, I, H] with the same E, I and H.  down may be NULL (then only gate_up's
 * own shape is judged), gate_up likewise.  QF_ERR_FORMAT naming dir and the tensor otherwise. */
qf_status qf_fused_experts_check(const char *dir, const qf_tensor *gate_up, const qf_tensor *down, qf_error *err);

/* Describe expert e's part of t (a checked fused tensor): rows and cols of its Linear weight. */
qf_expert_slice qf_expert_slice_of(const qf_tensor *t, int expert, qf_expert_part part, qf_fused_layout layout);

/* Write the slice's Linear weight, row-major [rows, cols], in t's dtype, into dst. */
void qf_expert_slice_read(const qf_expert_slice *s, void *dst);

/* The bytes of expert e inside t ([e] of the 3-D tensor, contiguous): a view of t (same file)
 * whose pages can be measured or released on their own. */
qf_tensor qf_expert_block(const qf_tensor *t, int expert);

#ifdef __cplusplus
}
#endif

#endif /* QF_FUSED_EXPERTS_H */
