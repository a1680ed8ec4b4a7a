/* qf_rotate_model.h - which tensors of a decoder model a rotation changes, and how.
 *
 * Owns the folding of QuaRot / SpinQuant's two offline rotations into a loaded model's
 * weights (the matrices and products are quant/qf_rotate.h):
 *   R1 [hidden, hidden], the residual stream: h -> h R1.  Every RMSNorm weight is first folded
 *      into the Linears that read its output and set to 1 (a weightless RMSNorm commutes with
 *      an orthogonal map); then the embedding E -> E R1, every reader of the stream W -> W R1
 *      (q, k, v; gate, up or the router and each expert's w1 / w3; lm_head, after the final
 *      norm's fold) and every writer W -> R1ᵀ W, b -> R1ᵀ b (o_proj, down_proj, experts' w2).
 *   R2 [head_dim, head_dim], values and outputs per head: v_proj's rows of every KV head
 *      -> R2ᵀ (bias too), o_proj's columns of every query head -> R2.  One R2 for every head,
 *      so a KV head shared by several query heads (GQA) gets the same rotation on both sides.
 * Both leave the float model's function unchanged up to float rounding (tests/test_rotate.c
 * compares logits).  q/k norms (qwen3) act inside the heads after the projections and are
 * untouched.  Refused (qf_rotation_check): a model whose norms are not plain RMSNorm x weight,
 * a tied embedding under a final norm that is not all ones (E R1 would have to serve as
 * lm_head, and the norm cannot be folded into it), shared experts, and packed Linears.
 *
 * Weights are rotated in place on float32 copies the caller owns (calibration makes them
 * layer by layer: calib/calibrate/calibrate_quant.c); the norm vectors are the model's own
 * float32 copies.  The embedding and lm_head are written rotated into caller buffers in the
 * checkpoint's dtype, since they are what the artifact stores.
 */
#ifndef QF_ROTATE_MODEL_H
#define QF_ROTATE_MODEL_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_model.h"
#include "qf_rotate.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_rotation {
    qf_rotate_kind kind;
    uint64_t seed;     /* R1 from seed, R2 from ~seed */
    int64_t n1;        /* order of R1: the hidden size, or the block of a block-diagonal R1 */
    int64_t n2;        /* order of R2: head_dim, or that block where it divides head_dim */
    float *r1;         /* (n1, n1) fp32, owned; applied to every n1 channels of the stream */
    float *r2;         /* (n2, n2) fp32, owned; applied to every n2 channels of a head */
} qf_rotation;

/* QF_OK when m can be rotated exactly; else QF_ERR_UNSUPPORTED with the one-line reason. */
qf_status qf_rotation_check(const qf_model *m, qf_error *err);

/* Build R1 and R2 for m (qf_rotation_check first).  block 0: R1 over the whole hidden size;
 * block N (dividing hidden, else QF_ERR_USAGE): R1 = diag(Q, Q, ...) of order-N rotations, so
 * each channel is mixed only within its block (a quantization group, e.g. nvfp4's 16), and R2
 * likewise where N divides head_dim.  Free with qf_rotation_free (a zeroed qf_rotation may be
 * freed). */
qf_status qf_rotation_init(qf_rotation *R, const qf_model *m, qf_rotate_kind kind, uint64_t seed, int64_t block,
                           qf_error *err);
void qf_rotation_free(qf_rotation *R);

/* Fold layer L's norms and rotate its Linears (both rotations).  Every Linear of L must be
 * QF_LINEAR_FLOAT over writable F32 weights (a copy the caller owns), else QF_ERR_USAGE.
 * L's norm vectors become 1. */
qf_status qf_rotate_layer(const qf_rotation *R, const qf_model *m, qf_layer *L, qf_error *err);

/* out (vocab_in, hidden) in dtype dt (F32, BF16, F16) = m's embedding times R1. */
qf_status qf_rotate_embedding(const qf_rotation *R, const qf_model *m, qf_dtype dt, void *out, qf_error *err);

/* out (vocab_out, hidden) in dtype dt (F32, BF16, F16) = lm_head diag(final norm) R1, for an
 * untied lm_head; the caller sets the final norm to 1. */
qf_status qf_rotate_lm_head(const qf_rotation *R, const qf_model *m, qf_dtype dt, void *out, qf_error *err);

/* Encode n float32 values into dtype dt (F32, BF16, F16) with round-to-nearest-even; and the
 * values such a tensor decodes to, in place (what a served artifact holds). */
void qf_rotate_encode(const float *x, int64_t n, qf_dtype dt, void *out);
void qf_rotate_round(float *x, int64_t n, qf_dtype dt);

#ifdef __cplusplus
}
#endif

#endif /* QF_ROTATE_MODEL_H */
