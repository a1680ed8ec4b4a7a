/* qf_linear.h - the Linear layer of the CPU model runner: y = x · Wᵀ (+ bias).
 *
 * Owns one Linear module as the runner sees it, whatever its storage:
 *   - QF_LINEAR_FLOAT: W is a float tensor of a checkpoint (F32, BF16 or F16), borrowed from
 *     the mapping; tiles of rows are converted to float32 on the fly.
 *   - QF_LINEAR_PACKED: W is a quantized Linear of a compressed-tensors artifact (packed
 *     int4, fp8, int8, nvfp4, mxfp4: see qf_scheme.h); tiles of rows are dequantized with
 *     qf_dequant_rows into a thread-local buffer and multiplied.  No float copy of the whole
 *     weight is ever made.
 * The input activations of a packed Linear are quantized and dequantized as the serving
 * kernel would (per-token fp8 / int8, static fp8, nvfp4 per-16 blocks) unless act_enabled is
 * cleared (--act-quant off).  The weight and bias tensors are borrowed from the checkpoint,
 * which must outlive the qf_linear; only the float32 copy of the bias is owned.
 *
 * Seams:
 *   - observer: qf_linear_forward calls obs->fn(obs->user, lin, x, m) with the raw input
 *     (before activation quantization) of every call, so calibration can record absmax,
 *     mean |x|, XᵀX, token counts per expert.
 *   - backend: a non-NULL lin->backend replaces the CPU product (a CUDA Linear later); the
 *     observer still runs first.
 */
#ifndef QF_LINEAR_H
#define QF_LINEAR_H

#include <jansson.h>
#include <stdint.h>

#include "qf_dequant.h"
#include "qf_error.h"
#include "qf_safetensors.h"
#include "qf_scheme.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qf_linear_kind {
    QF_LINEAR_FLOAT = 1,  /* float weight (F32 / BF16 / F16) */
    QF_LINEAR_PACKED = 2, /* quantized weight, dequantized per tile */
} qf_linear_kind;

#define QF_LINEAR_NAME_MAX 160

typedef struct qf_linear qf_linear;

/* Optional replacement of the CPU product (a GPU implementation). */
typedef struct qf_linear_backend {
    qf_status (*forward)(void *ctx, const qf_linear *lin, const float *x, int64_t m, float *y, qf_error *err);
    void *ctx;
} qf_linear_backend;

struct qf_linear {
    char name[QF_LINEAR_NAME_MAX]; /* module name: "model.layers.0.self_attn.q_proj" */
    int layer;                     /* decoder layer index, -1 for lm_head */
    int expert;                    /* expert index, -1 when not an expert (shared expert: -2) */
    qf_linear_kind kind;
    int64_t rows, cols;            /* out_features, in_features (logical) */
    /* QF_LINEAR_FLOAT */
    const void *weight;            /* borrowed (rows, cols) in wdtype */
    qf_dtype wdtype;
    /* QF_LINEAR_PACKED: tensors borrowed; packed.scheme is not used (scheme below is) */
    qf_packed_weight packed;
    qf_scheme scheme;              /* copy of the scheme row, group_size taken from the tensors */
    /* both */
    float *bias;                   /* (rows) fp32, owned; NULL when the module has no bias */
    qf_act_quant act;              /* activation quantization of the serving kernel */
    float act_scale;               /* QF_ACT_FP8_STATIC: input_scale; QF_ACT_NVFP4: input_global_scale */
    int act_enabled;               /* 1: emulate act (default for packed), 0: off */
    const qf_linear_backend *backend; /* NULL: CPU */
};

/* Called with the raw input x (m, cols) of each forward.  A non-QF_OK return aborts the
 * forward pass with that status (fn fills err). */
typedef struct qf_linear_observer {
    qf_status (*fn)(void *user, const qf_linear *lin, const float *x, int64_t m, qf_error *err);
    void *user;
} qf_linear_observer;

/* Resolve module `name` in checkpoint ck: either "<name>.weight" of a float dtype, or the
 * packed tensors of a quantized Linear (dtypes and shapes decide the scheme; the config's
 * quantization_config, may be NULL, decides its activation quantization through the
 * config_groups whose targets match the module).  rows / cols are the expected shape
 * (> 0; a mismatch is QF_ERR_FORMAT).  with_bias: 1 requires "<name>.bias", 0 ignores it,
 * -1 takes it when present.  On failure *lin holds nothing to free; the message names the
 * tensor (missing tensor: QF_ERR_FORMAT; unknown layout or dtype: QF_ERR_UNSUPPORTED). */
qf_status qf_linear_load(qf_linear *lin, const qf_checkpoint *ck, const char *name, int64_t rows, int64_t cols,
                         int with_bias, const json_t *quantization_config, qf_error *err);
/* Release the owned bias; NULL accepted; the struct is zeroed. */
void qf_linear_free(qf_linear *lin);

/* y (m, rows) = x (m, cols) · Wᵀ (+ bias).  Multi-threaded (OpenMP).  obs may be NULL.
 * x is not modified.  Returns QF_OK, QF_ERR_NOMEM, or an observer / backend failure. */
qf_status qf_linear_forward(const qf_linear *lin, const float *x, int64_t m, float *y, const qf_linear_observer *obs,
                            qf_error *err);

/* Write rows [r0, r1) of W as float32 (the exact values the product uses). */
void qf_linear_weight_rows(const qf_linear *lin, int64_t r0, int64_t r1, float *out);

/* Quantize-dequantize x (m, cols) in place as lin's serving kernel quantizes its input
 * (no-op for QF_ACT_NONE).  Exposed for tests and calibration. */
void qf_act_quant_rows(qf_act_quant act, float act_scale, float *x, int64_t m, int64_t cols);

/* Round-trips through the activation formats, as the serving kernels' quantizers round:
 * qf_e4m3_qdq(v) = qf_e4m3_to_f32(qf_f32_to_e4m3(v)) and qf_e2m1_qdq(v) =
 * qf_e2m1_to_f32(qf_f32_to_e2m1(v)) for finite v, computed without table or ldexpf. */
float qf_e4m3_qdq(float v);
float qf_e2m1_qdq(float v);

/* Short description of the storage: "bf16", "w4a16 g128", "fp8-dynamic", ... (static
 * buffer per call site is not used: writes into buf of n bytes and returns it). */
const char *qf_linear_describe(const qf_linear *lin, char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* QF_LINEAR_H */
