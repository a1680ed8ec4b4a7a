/* qf_kernels.h - quantized Linear arithmetic: dequant-matmul and quantize, CPU and CUDA.
 *
 * Owns y[m, n] = x[m, k] . dequant(W)[n, k]^T for every weight format qforge writes, plus the
 * activation and weight quantizers those products need, in two implementations:
 *   - qf_ref_*   scalar C11 references (OpenMP over output columns).  Always built: they are
 *                the CPU path of the product and the ground truth the CUDA kernels are tested
 *                against (tests/test_kernels_ref.c, tests/gpu_test_kernels.c).
 *   - qf_cuda_*  CUDA kernels for Hopper (sm_90a), compiled when nvcc is found.  In a CPU-only
 *                build they still exist and return QF_ERR_UNSUPPORTED (qf_cuda_device_count
 *                returns 0), so an engine links against libqforge either way.
 * A weight is described by qf_ct_weight: borrowed pointers to the tensors exactly as a
 * compressed-tensors checkpoint stores them (host memory for qf_ref_*, device memory for
 * qf_cuda_*).  The weight-only CUDA kernels read a repacked copy made once per weight by
 * qf_cuda_repack into a buffer the caller allocates (size from qf_cuda_repack_bytes); the
 * FP8 W8A8 GEMM reads the checkpoint layout directly.  Nothing here allocates memory the caller
 * must free except qf_cuda_ctx_create (freed by qf_cuda_ctx_free).  Failures return a qf_status
 * with a one-line message in *err (err may be NULL); the library never prints or exits.
 * Threading: qf_ref_* are reentrant.  A qf_cuda_ctx (cuBLAS handles, workspace, split-K
 * counters) serves one host thread and one stream at a time; use one context per stream.
 * CUDA pointers are device pointers; bf16 values travel as uint16_t bit patterns; `stream`
 * is a cudaStream_t passed as void * (NULL = the legacy default stream).
 *
 * Layouts (compressed-tensors; W is [n = out features, k = in features], row-major):
 *   INT4  "pack-quantized"  weight int32 [n, ceil(k/8)]: nibble j of word w is column 8w+j,
 *         stored q+8 (q in [-8,7]); scale bf16 [n, ceil(k/g)]; asymmetric adds zero_point
 *         int32 [ceil(n/8), ceil(k/g)], nibble j of word (r, c) is row 8r+j, stored zp (0..15).
 *         w = (q_u - zp_u) * scale, zp_u = 8 when symmetric.
 *   FP8   "float-quantized" weight E4M3 [n, k]; scale bf16 [n] (per channel) or [1]
 *         (llm-compressor's dtype for bf16 models; the fp8 GEMM widens it to float32 for cuBLASLt).
 *         w = e4m3 * scale.
 *   NVFP4 "nvfp4-pack-quantized" weight u8 [n, k/2]: byte j = column 2j (low nibble) and 2j+1
 *         (high nibble), nibble = sign<<3 | code, code -> {0, .5, 1, 1.5, 2, 3, 4, 6};
 *         scale E4M3 [n, k/16]; global_scale G (float32): w = fp4 * scale / G.
 *   MXFP4 "mxfp4-pack-quantized" same packing, scale E8M0 u8 [n, k/32]: w = fp4 * 2^(e-127).
 *   INT8  "int-quantized"   weight int8 [n, k]; scale bf16 [n] or [1]: w = q * scale.
 */
#ifndef QF_KERNELS_H
#define QF_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "qf_dtype.h"
#include "qf_error.h"

/* ---- weight descriptors ------------------------------------------------------------------ */

/* Weight formats.  Values are pinned (they reach bench JSON): append only. */
typedef enum qf_wfmt {
    QF_WFMT_INT4 = 1,  /* pack-quantized int4, group scales, optional zero points */
    QF_WFMT_FP8 = 2,   /* float-quantized E4M3, bf16 scale per channel or per tensor */
    QF_WFMT_NVFP4 = 3, /* E2M1, E4M3 scale per 16 inputs, float32 global scale */
    QF_WFMT_MXFP4 = 4, /* E2M1, E8M0 scale per 32 inputs */
    QF_WFMT_INT8 = 5,  /* int-quantized int8, bf16 scale per channel or per tensor */
} qf_wfmt;

/* Shape and options of one quantized Linear weight (no data). */
typedef struct qf_ct_layout {
    qf_wfmt fmt;
    int64_t n;          /* output features: rows of W */
    int64_t k;          /* input features: columns of W */
    int64_t group_size; /* INT4: inputs per scale along k (128; k for per-channel).  Others: ignored */
    int asym;           /* INT4: 1 when zero points are stored.  Others: must be 0 */
    int per_tensor;     /* FP8/INT8: 1 = one scale for the tensor ([1]), 0 = per output channel ([n]) */
} qf_ct_layout;

/* The tensors of one quantized Linear as a checkpoint stores them (borrowed, never freed here). */
typedef struct qf_ct_weight {
    qf_ct_layout l;
    const void *weight;     /* INT4 int32 [n, ceil(k/8)]; FP8 E4M3 [n, k]; NVFP4/MXFP4 u8 [n, k/2]; INT8 int8 [n, k] */
    const void *scale;      /* INT4 bf16 [n, ceil(k/g)]; FP8/INT8 bf16 [n] or [1]; NVFP4 E4M3 [n, k/16];
                               MXFP4 E8M0 [n, k/32] */
    const void *zero_point; /* INT4 asym: int32 [ceil(n/8), ceil(k/g)]; NULL otherwise */
    float global_scale;     /* NVFP4: weight_global_scale G, a host value (w = fp4 * scale / G).  Others: ignored */
} qf_ct_weight;

/* Byte sizes of the tensors of a layout (0 for a tensor the layout does not have). */
typedef struct qf_ct_sizes {
    size_t weight, scale, zero_point;
} qf_ct_sizes;

/* Lower-case name of a weight format ("int4", "fp8", "nvfp4", "mxfp4", "int8"); "?" if unknown. */
const char *qf_wfmt_name(qf_wfmt f);

/* Validate a layout (n, k >= 1; INT4 group >= 1; NVFP4 k % 16 == 0; MXFP4 k % 32 == 0;
 * asym only for INT4) and, when sizes is not NULL, fill the tensor byte sizes.
 * Returns QF_OK, QF_ERR_USAGE for a malformed layout. */
qf_status qf_ct_layout_check(const qf_ct_layout *l, qf_ct_sizes *sizes, qf_error *err);

/* ---- CPU references (always built) ------------------------------------------------------- */

/* Dequantize rows [r0, r1) of W into out[(r1 - r0) * k] (float32, row-major), bit-exactly
 * as the layout comment above defines (one float multiply per value; NVFP4 computes
 * fp4 * (scale / G)).  Returns QF_ERR_USAGE for a bad layout or row range. */
qf_status qf_ref_dequant(const qf_ct_weight *w, int64_t r0, int64_t r1, float *out, qf_error *err);

/* y[m, n] = x[m, k] . dequant(W)^T, float32 row-major, accumulation in float32 in order of
 * increasing k (so |error| <= k * 2^-24 * sum_k |x||w| against exact arithmetic).  Parallel over
 * n (OpenMP).  y must not alias x.  Returns QF_ERR_USAGE (bad layout), QF_ERR_NOMEM. */
qf_status qf_ref_matmul(const qf_ct_weight *w, const float *x, int64_t m, float *y, qf_error *err);

/* Dynamic per-token FP8 activation quantization (W8A8 FP8): for each row i of x[m, k],
 * scale[i] = absmax_i / 448 and q[i, j] = e4m3(x[i, j] / scale[i]) (saturating, RNE; a zero row
 * gives scale 0 and zero codes).  NaN inputs are ignored by the absmax. */
void qf_ref_quant_act_fp8(const float *x, int64_t m, int64_t k, uint8_t *q, float *scale);

/* Dynamic per-token int8 activation quantization (W8A8 int8): scale[i] = absmax_i / 127,
 * q[i, j] = clamp(rint(x[i, j] / scale[i]), -127, 127) (round half to even). */
void qf_ref_quant_act_int8(const float *x, int64_t m, int64_t k, int8_t *q, float *scale);

/* NVFP4 activation quantization with a (calibrated) global scale G, the same rule as NVFP4
 * weights: per 16 inputs s = e4m3(amax_b * G / 6) (code 0 -> 0.125), q = e2m1(x / (s / G)).
 * Writes packed[m, k/2] (layout as weights) and scale[m, k/16] E4M3.  k % 16 must be 0. */
void qf_ref_quant_act_nvfp4(const float *x, int64_t m, int64_t k, float global_scale, uint8_t *packed,
                            uint8_t *scale);

/* NVFP4 activation emulation ("fake quantization"): out = dequant(quant(x)) under G, i.e.
 * e2m1 * (s / G) per value.  out may alias x.  k % 16 must be 0. */
void qf_ref_fakequant_act_nvfp4(const float *x, int64_t m, int64_t k, float global_scale, float *out);

/* The NVFP4 global scale for a tensor absmax: 448 * 6 / amax (1 when amax is 0 or not finite). */
float qf_ref_nvfp4_global(float amax);

/* W8A8 product from quantized activations: y[i, j] = (x_scale[i] * w_scale[j]) * sum_k xq * wq,
 * for FP8 weights (xq E4M3 codes, uint8_t [m, k]; float32 accumulation of exact products) and
 * INT8 weights (xq int8_t [m, k]; exact int32 accumulation).  Returns QF_ERR_USAGE for other
 * formats. */
qf_status qf_ref_matmul_a8(const qf_ct_weight *w, const void *xq, const float *x_scale, int64_t m, float *y,
                           qf_error *err);

/* Round-to-nearest quantization of W[n, k] (float32, row-major) into the tensors of layout l,
 * in caller-allocated buffers of qf_ct_layout_check sizes (zero_point only when l->asym).
 * Rules (the project's RTN, quant/qf_quantize.h; each written once in quant/qf_fmt_*.h):
 *   INT4 sym   s = bf16(amax_g / 7); q = clamp(rint(x / s), -8, 7)          (s == 0: q = 0)
 *   INT4 asym  lo = min(x, 0), hi = max(x, 0); s = bf16((hi - lo) / 15);
 *              zp = clamp(rint(-lo / s), 0, 15); q = clamp(rint(x / s) + zp, 0, 15)
 *   FP8        s = bf16(amax / 448) (row, or tensor when per_tensor); q = e4m3(x / s)
 *   INT8       s = bf16(amax / 127); q = clamp(rint(x / s), -127, 127)
 *   NVFP4      G = qf_ref_nvfp4_global(tensor_amax); s = e4m3(amax_16 * G / 6), code 0 -> 0.125;
 *              q = e2m1(x / (s / G)); *global_scale = G
 *   MXFP4      e = e8m0 shared exponent of amax_32 (floor(log2 amax) - 2); q = e2m1(x / 2^(e-127))
 * tensor_amax (NVFP4 only) is the absmax to derive G from (pass the max over fused siblings);
 * <= 0 computes it from w.  global_scale may be NULL for formats without one.
 * Returns QF_ERR_USAGE for a bad layout. */
qf_status qf_ref_quantize(const qf_ct_layout *l, const float *w, float tensor_amax, void *weight, void *scale,
                          void *zero_point, float *global_scale, qf_error *err);

/* ---- CUDA (sm_90a) ----------------------------------------------------------------------- */

typedef struct qf_cuda_ctx qf_cuda_ctx;

/* Number of CUDA devices this build can use: 0 without CUDA support, without a driver, or when
 * cudaGetDeviceCount fails.  Never fails, never prints. */
int qf_cuda_device_count(void);

/* Create a context on `device`: cuBLAS/cuBLASLt handles, a cuBLASLt workspace and a zeroed
 * split-K counter array.  Further workspace grows on demand inside the calls below (cudaMalloc,
 * so those calls are not CUDA-graph-capture safe the first time a larger shape is seen).
 * Returns QF_ERR_UNSUPPORTED without CUDA, QF_ERR_CUDA on a CUDA/cuBLAS failure. */
qf_status qf_cuda_ctx_create(int device, qf_cuda_ctx **out, qf_error *err);
/* Free a context and its workspace (synchronizes the device).  NULL is a no-op. */
void qf_cuda_ctx_free(qf_cuda_ctx *ctx);

/* A weight repacked for the weight-only kernels (qf_cuda_matmul).  Filled by qf_cuda_repack;
 * `data` is the caller's device buffer and stays owned by the caller. */
typedef struct qf_gpu_weight {
    qf_ct_layout l;
    void *data;       /* device, qf_cuda_repack_bytes() bytes */
    size_t bytes;     /* size of data */
    float alpha;      /* per-tensor factor applied in the epilogue (NVFP4 256/G, MXFP4 256, else 1) */
    size_t q_offset;  /* byte offsets of the sections of data: values, */
    size_t s_offset;  /*   block scales (INT4, NVFP4, MXFP4), */
    size_t rs_offset; /*   per-row float32 scales (FP8) */
} qf_gpu_weight;

/* Size in bytes of the repacked form of a layout.  The weight-only kernels take INT4 (group a
 * multiple of 64 dividing k), FP8, NVFP4 and MXFP4 with k % 64 == 0 and any n; anything else
 * returns QF_ERR_UNSUPPORTED (INT8 has no CUDA kernel). */
qf_status qf_cuda_repack_bytes(const qf_ct_layout *l, size_t *bytes, qf_error *err);

/* One-time repack of a checkpoint weight (device pointers; w->global_scale a host value) into
 * dst (device, dst_bytes >= qf_cuda_repack_bytes).  Fills *out.  Synchronizes `stream` to check
 * the scales: returns QF_ERR_UNSUPPORTED for NaN NVFP4/MXFP4 scales and for MXFP4 exponents above
 * 2^9 (the bf16 folding range), QF_ERR_CUDA on a CUDA failure. */
qf_status qf_cuda_repack(qf_cuda_ctx *ctx, const qf_ct_weight *w, void *dst, size_t dst_bytes, qf_gpu_weight *out,
                         void *stream, qf_error *err);

/* Kernel choice for qf_cuda_matmul.  Values pinned (bench JSON): append only. */
typedef enum qf_mm_path {
    QF_MM_AUTO = 0,           /* GEMV for m <= 16, TILED for m <= 512, else DEQUANT_CUBLAS */
    QF_MM_GEMV = 1,           /* memory-bound tensor-core GEMV, m <= 16 only */
    QF_MM_TILED = 2,          /* 128x128x64 tiles, mma.sync with in-register dequant, cp.async pipeline */
    QF_MM_DEQUANT_CUBLAS = 3, /* dequantize row panels to bf16, then cuBLAS bf16 GEMM */
} qf_mm_path;

/* Weight-only product: y[m, n] (bf16) = x[m, k] (bf16) . dequant(W)^T, fp32 accumulation.
 * Asynchronous on `stream`; x and y must not alias; m == 0 is a no-op.  ksplit = 0 picks the
 * split of k over CTAs automatically (GEMV and TILED only; a fixed value is for tests and
 * tuning).  Weights are rounded to bf16 once after scaling (INT4; exact for FP8, NVFP4, MXFP4).
 * Returns QF_ERR_USAGE (m < 0, GEMV with m > 16), QF_ERR_CUDA on launch failure. */
qf_status qf_cuda_matmul(qf_cuda_ctx *ctx, const qf_gpu_weight *w, const uint16_t *x, int64_t m, uint16_t *y,
                         qf_mm_path path, int ksplit, void *stream, qf_error *err);

/* Per-token FP8 activation quantization on the GPU, the rule of qf_ref_quant_act_fp8 applied to
 * the float value of each bf16 x[m, k]; bit-identical to it.  q [m, k], scale [m]. */
qf_status qf_cuda_quant_act_fp8(const uint16_t *x, int64_t m, int64_t k, uint8_t *q, float *scale, void *stream,
                                qf_error *err);

/* FP8 GEMM through cuBLASLt: y[m, n] (bf16) = (x_scale[i] * w_scale[j]) * xq . wq^T, with the
 * checkpoint FP8 weight w (device).  Needs k % 16 == 0 and 16-byte aligned pointers; returns
 * QF_ERR_UNSUPPORTED when cuBLASLt has no algorithm for the shape. */
qf_status qf_cuda_fp8_gemm(qf_cuda_ctx *ctx, const qf_ct_weight *w, const uint8_t *xq, const float *x_scale,
                           int64_t m, uint16_t *y, void *stream, qf_error *err);

/* FP8 W8A8: qf_cuda_quant_act_fp8 into context workspace, then qf_cuda_fp8_gemm. */
qf_status qf_cuda_fp8_w8a8_matmul(qf_cuda_ctx *ctx, const qf_ct_weight *w, const uint16_t *x, int64_t m,
                                  uint16_t *y, void *stream, qf_error *err);

/* Dequantize a checkpoint weight (device, any format but INT8, any layout qf_ct_layout_check
 * accepts) into out[n, k] bf16: the float32 value of qf_ref_dequant rounded to bf16 (RNE). */
qf_status qf_cuda_dequant_bf16(const qf_ct_weight *w, uint16_t *out, void *stream, qf_error *err);

/* GPU round-to-nearest quantization of W[n, k] (src_dtype QF_DTYPE_F32 or QF_DTYPE_BF16, device)
 * into the checkpoint tensors of layout l (device buffers of qf_ct_layout_check sizes), bytes
 * identical to qf_ref_quantize on the same float values.  Formats: INT4 (group % 8 == 0,
 * k % group == 0, asym needs n % 8 == 0), FP8 (per channel or per tensor), NVFP4, MXFP4.
 * tensor_amax as for qf_ref_quantize (<= 0: computed on the device; FP8 per-tensor always
 * computes it).  When global_scale is not NULL the call synchronizes `stream` and stores G
 * there (NVFP4; 1 otherwise).  Returns QF_ERR_UNSUPPORTED for INT8 and unsupported groups. */
qf_status qf_cuda_quantize(qf_cuda_ctx *ctx, const qf_ct_layout *l, qf_dtype src_dtype, const void *src,
                           float tensor_amax, void *weight, void *scale, void *zero_point, float *global_scale,
                           void *stream, qf_error *err);

/* Kernel benchmark (`qforge bench kernels`): Llama-3 shapes N x K = 6144x4096, 4096x14336,
 * 28672x4096, 8192x28672 at M = 1, 16, 128, 1024, 4096, for cuBLAS bf16, W4A16, NVFP4, MXFP4,
 * FP8 W8A8 and FP8 W8A16, plus the device-to-device copy bandwidth, all in one run on device 0.
 * Times are medians of CUDA-event-timed single launches after warm-up, weights rotated across
 * buffers totalling more than 4x the L2.  Writes a table (json = 0) or one JSON document to out.
 * Returns QF_ERR_UNSUPPORTED without a GPU, QF_ERR_CUDA / QF_ERR_NOMEM on failure. */
qf_status qf_bench_kernels(FILE *out, int json, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_KERNELS_H */
