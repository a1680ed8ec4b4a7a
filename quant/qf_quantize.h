/* qf_quantize.h - packing a Linear weight into a scheme: the output plan and RTN.
 *
 * Owns (1) the plan of packed tensors a scheme stores for one Linear of shape [rows, cols]
 * (suffix, dtype, shape, byte size; the caller allocates buffers of those sizes), (2) the
 * per-group parameter rules (scale, zero point) and the per-value rounding shared by RTN and
 * the calibrated methods (GPTQ/AWQ reuse them so that every method writes the same format),
 * dispatched on the scheme's value format to the format files quant/qf_fmt_*.h, where each
 * rule below is written once (the kernels and the validator's dequantizer call the same
 * files), and (3) round-to-nearest quantization of whole tensors, multi-threaded over row
 * blocks.
 *
 * Rules (weights; W is [rows = out, cols = in], groups run along cols):
 *   int4 sym   scale = bf16(absmax / 7); q = clamp(rint(x / scale), -8, 7); stored q + 8
 *   int4 asym  lo = min(x, 0), hi = max(x, 0); scale = bf16((hi - lo) / 15);
 *              zero = clamp(rint(-lo / scale), 0, 15); q = clamp(rint(x / scale) + zero, 0, 15)
 *   fp8        per output channel: scale = bf16(absmax / 448); q = e4m3(x / scale) saturating RNE
 *   int8       per output channel: scale = bf16(absmax / 127); q = clamp(rint(x / scale), -127, 127)
 *   nvfp4      G = 448 * 6 / tensor_amax (F32, "weight_global_scale"); per 16: s = e4m3(amax_b * G / 6)
 *              (code 0 -> 0.125 as compressed-tensors does); q = e2m1(x / (s / G))
 *   mxfp4      per 32: e = e8m0(floor(log2(amax_b)) - 2); q = e2m1(x / 2^(e - 127))
 * rint() is round-half-to-even (the default rounding mode).  Scales are rounded to their
 * stored dtype before use, so dequantization of the stored bytes reproduces exactly the
 * values quantization chose.  The reference README formulas (fixtures) use absmax/7 for
 * symmetric int4, which this follows; compressed-tensors' own observer uses absmax/7.5.
 */
#ifndef QF_QUANTIZE_H
#define QF_QUANTIZE_H

#include <stdint.h>

#include "qf_dtype.h"
#include "qf_error.h"
#include "qf_scheme.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QF_PLAN_MAX 6

typedef enum qf_packed_role {
    QF_ROLE_WEIGHT = 0,       /* weight or weight_packed */
    QF_ROLE_SCALE = 1,        /* weight_scale */
    QF_ROLE_ZERO = 2,         /* weight_zero_point */
    QF_ROLE_SHAPE = 3,        /* weight_shape (I64 [2]) */
    QF_ROLE_GLOBAL = 4,       /* weight_global_scale (F32 [1]) */
    QF_ROLE_INPUT_SCALE = 5,  /* input_scale / input_global_scale (F32 [1]), calibrated schemes */
} qf_packed_role;

typedef struct qf_packed_tensor {
    qf_packed_role role;
    const char *suffix; /* "weight_packed", appended to "<module>." */
    qf_dtype dtype;
    int ndim;
    int64_t shape[2];
    uint64_t nbytes;
} qf_packed_tensor;

typedef struct qf_quant_plan {
    int n;
    qf_packed_tensor t[QF_PLAN_MAX];
} qf_quant_plan;

/* Buffers for one quantized Linear, one per plan entry (index = plan order). */
typedef struct qf_quant_buffers {
    void *data[QF_PLAN_MAX];
} qf_quant_buffers;

/* Fill the plan for a [rows, cols] Linear; QF_ERR_UNSUPPORTED when the shape does not fit
 * the scheme (e.g. cols not a multiple of the group). */
qf_status qf_quant_plan_linear(const qf_scheme *s, int64_t rows, int64_t cols, qf_quant_plan *plan, qf_error *err);
/* Index of a role in the plan, -1 if absent. */
int qf_quant_plan_find(const qf_quant_plan *plan, qf_packed_role role);

/* ---- group-level rules, shared with calibrated methods ------------------------------- */
typedef struct qf_group_params {
    float scale; /* effective step: value = (q - zero) * scale for ints, q_fp * scale for floats */
    float zero;  /* int4 asym zero point (0..15); 0 otherwise */
    uint8_t code; /* stored scale byte for fp8/e8m0 scales (nvfp4, mxfp4) */
} qf_group_params;

/* Parameters for one group x[n] (n = group size, or a whole row for per-channel schemes).
 * global_scale is nvfp4's G (ignored otherwise). */
qf_group_params qf_group_params_from(const qf_scheme *s, const float *x, int n, float global_scale);
/* Parameters from a given range (lo <= 0 <= hi): what clipping searches vary. */
qf_group_params qf_group_params_from_range(const qf_scheme *s, float lo, float hi, float global_scale);
/* Group parameters of x[n] with the range shrunk by ratio (lo = min(x, 0), hi = max(x, 0),
 * symmetric schemes use +-max|x|; then qf_group_params_from_range(ratio * lo, ratio * hi)).
 * ratio == 1 is exactly qf_group_params_from. */
qf_group_params qf_group_params_clipped(const qf_scheme *s, const float *x, int n, float global_scale, float ratio);
/* Clip search: the parameters of the range shrunk by the best of the ratios 1, 1 - d, ...,
 * clip_min (d = (1 - clip_min) / steps), the one whose rounding of v[n] has the least squared
 * error, weighted by w[n] (GPTQ's loss weights, summed in order in double) or unweighted
 * (w NULL: RTN's search, summed in float lanes).  steps <= 0: qf_group_params_from. */
qf_group_params qf_group_params_search(const qf_scheme *s, const float *v, int n, float global_scale,
                                       const double *w, int steps, float clip_min);
/* Quantize one value under p: returns the stored code (int4: 0..15, int8: as uint8 of int8,
 * fp8/fp4: the bit pattern) and writes the dequantized value to *deq (deq may be NULL). */
uint32_t qf_quant_value(const qf_scheme *s, const qf_group_params *p, float x, float *deq);
/* deq[i] = the dequantized value qf_quant_value gives for x[i], i < n (bit for bit), as a
 * per-format loop the compiler vectorizes: for searches that round a group many times. */
void qf_quant_dequant(const qf_scheme *s, const qf_group_params *p, const float *x, int64_t n, float *deq);
/* nvfp4 global scale G = 448 * 6 / amax (1 when amax is 0 or not finite). */
float qf_nvfp4_global_scale(float amax);

/* ---- round to nearest, whole tensors -------------------------------------------------- */
/* Quantize W[rows, cols] given as src (dtype F32, BF16 or F16, row-major) into buffers laid
 * out by the plan (caller-allocated, plan sizes).  tensor_amax is used for nvfp4's global
 * scale (pass the max over fused siblings so they share G; <= 0 computes it from src).
 * Uses all OpenMP threads.  This is the textbook rule the fixtures' reference numbers use
 * (each group's full range); qf_quantize_rtn_clip with clip_search > 0 chooses each group's
 * range by qf_group_params_search instead (unweighted: RTN has no statistics). */
qf_status qf_quantize_rtn(const qf_scheme *s, qf_dtype src_dtype, const void *src, int64_t rows, int64_t cols,
                          float tensor_amax, const qf_quant_plan *plan, qf_quant_buffers *out, qf_error *err);
/* RTN's default clip search steps for a scheme: 10 for int4 (sym, asym) and nvfp4, where the
 * search lowers tiny-llama's mean KLD by 12-28 % (docs/bench.md) and 20 steps gain nothing
 * more; 0 for mxfp4 (a power-of-two scale that shrinking cannot move below the next power
 * gains nothing), fp8 and int8 (8-bit: under 2 %). */
int qf_rtn_clip_default(const qf_scheme *s);
qf_status qf_quantize_rtn_clip(const qf_scheme *s, qf_dtype src_dtype, const void *src, int64_t rows, int64_t cols,
                               float tensor_amax, int clip_search, float clip_min, const qf_quant_plan *plan,
                               qf_quant_buffers *out, qf_error *err);

/* Write quantized row `r` given its per-group params and codes into the packed buffers
 * (used by RTN and by GPTQ after it has chosen codes column by column).  codes[cols]. */
void qf_pack_row(const qf_scheme *s, const qf_quant_plan *plan, qf_quant_buffers *out, int64_t r, int64_t cols,
                 const uint32_t *codes, const qf_group_params *groups);
/* Write one fp8 / int8 weight scale (element i of weight_scale) in the scheme's scale dtype. */
void qf_store_scale(const qf_scheme *s, void *dst, int64_t i, float scale);
/* Store the per-tensor parts (weight_shape, global scale) once per tensor. */
void qf_pack_tensor_info(const qf_scheme *s, const qf_quant_plan *plan, qf_quant_buffers *out, int64_t rows,
                         int64_t cols, float global_scale);

/* Absolute maximum of a tensor given as F32/BF16/F16 (multi-threaded). */
float qf_tensor_absmax(qf_dtype dtype, const void *src, uint64_t n);
/* Convert row r of a [rows, cols] F32/BF16/F16 matrix to float. */
void qf_load_row(qf_dtype dtype, const void *src, int64_t r, int64_t cols, float *out);

#ifdef __cplusplus
}
#endif

#endif /* QF_QUANTIZE_H */
