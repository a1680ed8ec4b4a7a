/* qf_modelopt.h - the NVIDIA ModelOpt / TensorRT-LLM layout of a quantized artifact.
 *
 * Owns the re-layout of a quantized Linear from the compressed-tensors tensors qforge's
 * quantizers produce (qf_quantize.h plans) into the tensors ModelOpt's export_hf_checkpoint
 * writes, the two JSON records that announce it, and a decoder of the ModelOpt tensors
 * written from ModelOpt's own formulas (so the two layouts can be checked against each
 * other).  Nothing is re-quantized: codes and block scales are moved, not recomputed.
 *
 * Per quantized Linear "<module>", W = [out, in] (docs/formats.md section 4.2):
 *   scheme        quant_algo                  tensors (ModelOpt names)
 *   fp8-dynamic   FP8_PER_CHANNEL_PER_TOKEN   weight F8_E4M3 [out,in]; weight_scale F32 [out] (CT bf16, widened)
 *   fp8           FP8                         weight F8_E4M3 [out,in]; weight_scale F32 [];
 *                                             input_scale F32 []
 *   nvfp4a16      NVFP4                       weight U8 [out,in/2] (CT weight_packed, same bytes);
 *   nvfp4                                     weight_scale F8_E4M3 [out,in/16] (same bytes);
 *                                             weight_scale_2 F32 [] = 1 / CT weight_global_scale;
 *                                             nvfp4 adds input_scale F32 [] = 1 / input_global_scale
 *   w4a16         W4A16_AWQ                   weight U8 [out/2,in]: packed along the OUTPUT dim,
 *                                             byte (r, c) = q[2r][c] & 15 | (q[2r+1][c] & 15) << 4,
 *                                             q signed two's-complement nibbles in [-8, 7];
 *                                             weight_scale F32 [out,in/128] (the CT bf16 scale,
 *                                             exact: both use amax/7); pre_quant_scale [in] in the
 *                                             source weight dtype, all ones (no AWQ smoothing)
 * w4a16-asym, mxfp4a16 and w8a8 (dynamic per-token int8; ModelOpt's W8A8_SQ_PER_CHANNEL wants
 * static activation scales) have no ModelOpt form: QF_ERR_UNSUPPORTED.
 * Decoding: fp8 w = e4m3(q) * weight_scale; nvfp4 w = e2m1(q) * e4m3(weight_scale) *
 * weight_scale_2; w4a16 w = q * weight_scale * pre_quant_scale[c] (the effective weight the
 * runtime's (x * pre_quant_scale) . W^T multiplies by).  Because weight_scale_2 is stored as
 * a reciprocal, nvfp4 values can differ from the compressed-tensors decode (which divides by
 * the global scale) in the last bit; codes and block scales are byte-identical.
 */
#ifndef QF_MODELOPT_H
#define QF_MODELOPT_H

#include <jansson.h>
#include <stdint.h>

#include "qf_dtype.h"
#include "qf_error.h"
#include "qf_quantize.h"
#include "qf_scheme.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Role of pre_quant_scale in a ModelOpt plan (after the roles of qf_quantize.h). */
#define QF_ROLE_PRE_QUANT_SCALE ((qf_packed_role)16)

/* Plan of the ModelOpt tensors of one [rows, cols] Linear (suffixes "weight", "weight_scale",
 * "weight_scale_2", "input_scale", "pre_quant_scale"; roles as qf_quantize.h).  src_dtype is
 * the source weight's dtype (pre_quant_scale is stored in it).  QF_ERR_UNSUPPORTED naming the
 * scheme when it has no ModelOpt form, or the shape when it does not fit (odd rows for AWQ). */
qf_status qf_modelopt_plan(const qf_scheme *s, qf_dtype src_dtype, int64_t rows, int64_t cols, qf_quant_plan *out,
                           qf_error *err);

/* Fill the ModelOpt buffers mo_buf (caller-allocated, mo plan sizes) from the compressed-
 * tensors buffers ct_buf of plan ct, for the same scheme and shape. */
qf_status qf_modelopt_relayout(const qf_scheme *s, int64_t rows, int64_t cols, const qf_quant_plan *ct,
                               const qf_quant_buffers *ct_buf, const qf_quant_plan *mo, qf_quant_buffers *mo_buf,
                               qf_error *err);

/* hf_quant_config.json: {"producer": {"name": "modelopt", "version": ...}, "quantization":
 * {"quant_algo", "kv_cache_quant_algo": null, "group_size", "exclude_modules", ...}}.
 * producer.name must be "modelopt" for vLLM / SGLang / TensorRT-LLM to recognise the layout;
 * the version says "qforge <version>".  New reference; NULL when the scheme has no form. */
json_t *qf_modelopt_hf_quant_config(const qf_scheme *s, char *const *excluded, int n_excluded);
/* config.json["quantization_config"]: quant_method "modelopt", quant_algo, ignore (=
 * exclude_modules), producer, kv_cache_scheme, group_size and, for FP8 / NVFP4, the
 * llm-compressor-style config_groups ModelOpt's export writes.  New reference or NULL. */
json_t *qf_modelopt_quant_config(const qf_scheme *s, char *const *excluded, int n_excluded);

/* One ModelOpt Linear as stored (pointers borrowed). */
typedef struct qf_modelopt_weight {
    const qf_scheme *scheme;
    int64_t rows, cols;
    const void *weight;          /* F8_E4M3 [rows,cols] | U8 [rows,cols/2] (nvfp4) | U8 [rows/2,cols] (awq) */
    const void *weight_scale;    /* F32 [rows] or [] | F8_E4M3 [rows,cols/16] | F32 [rows,cols/group] */
    float weight_scale_2;        /* nvfp4; 1 otherwise */
    const void *pre_quant_scale; /* awq: [cols] in pqs_dtype; NULL = ones */
    qf_dtype pqs_dtype;
} qf_modelopt_weight;

/* Rows [r0, r1) of the effective weight, float32, into out[(r1 - r0) * cols]. */
void qf_modelopt_dequant_rows(const qf_modelopt_weight *w, int64_t r0, int64_t r1, float *out);

#ifdef __cplusplus
}
#endif

#endif /* QF_MODELOPT_H */
