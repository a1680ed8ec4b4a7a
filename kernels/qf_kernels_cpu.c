/* qf_kernels_cpu.c - the CUDA entry points of qf_kernels.h in a CPU-only build.
 *
 * When nvcc is not found the CUDA sources of kernels/ are not compiled; these definitions keep every
 * qf_cuda_* symbol (and qf_bench_kernels) present so that engines and tests link unchanged.
 * They report no device and return QF_ERR_UNSUPPORTED.  With QF_HAVE_CUDA this file is empty.
 */
#include "qf_kernels.h"

#ifndef QF_HAVE_CUDA

#define QF_NO_CUDA(what) qf_fail(err, QF_ERR_UNSUPPORTED, "%s: qforge was built without CUDA", what)

int qf_cuda_device_count(void) { return 0; }

qf_status qf_cuda_ctx_create(int device, qf_cuda_ctx **out, qf_error *err)
{
    (void)device;
    if (out) *out = NULL;
    return QF_NO_CUDA("qf_cuda_ctx_create");
}

void qf_cuda_ctx_free(qf_cuda_ctx *ctx) { (void)ctx; }

qf_status qf_cuda_repack_bytes(const qf_ct_layout *l, size_t *bytes, qf_error *err)
{
    (void)l, (void)bytes;
    return QF_NO_CUDA("qf_cuda_repack_bytes");
}

qf_status qf_cuda_repack(qf_cuda_ctx *ctx, const qf_ct_weight *w, void *dst, size_t dst_bytes, qf_gpu_weight *out,
                         void *stream, qf_error *err)
{
    (void)ctx, (void)w, (void)dst, (void)dst_bytes, (void)out, (void)stream;
    return QF_NO_CUDA("qf_cuda_repack");
}

qf_status qf_cuda_matmul(qf_cuda_ctx *ctx, const qf_gpu_weight *w, const uint16_t *x, int64_t m, uint16_t *y,
                         qf_mm_path path, int ksplit, void *stream, qf_error *err)
{
    (void)ctx, (void)w, (void)x, (void)m, (void)y, (void)path, (void)ksplit, (void)stream;
    return QF_NO_CUDA("qf_cuda_matmul");
}

qf_status qf_cuda_quant_act_fp8(const uint16_t *x, int64_t m, int64_t k, uint8_t *q, float *scale, void *stream,
                                qf_error *err)
{
    (void)x, (void)m, (void)k, (void)q, (void)scale, (void)stream;
    return QF_NO_CUDA("qf_cuda_quant_act_fp8");
}

qf_status qf_cuda_fp8_gemm(qf_cuda_ctx *ctx, const qf_ct_weight *w, const uint8_t *xq, const float *x_scale,
                           int64_t m, uint16_t *y, void *stream, qf_error *err)
{
    (void)ctx, (void)w, (void)xq, (void)x_scale, (void)m, (void)y, (void)stream;
    return QF_NO_CUDA("qf_cuda_fp8_gemm");
}

qf_status qf_cuda_fp8_w8a8_matmul(qf_cuda_ctx *ctx, const qf_ct_weight *w, const uint16_t *x, int64_t m,
                                  uint16_t *y, void *stream, qf_error *err)
{
    (void)ctx, (void)w, (void)x, (void)m, (void)y, (void)stream;
    return QF_NO_CUDA("qf_cuda_fp8_w8a8_matmul");
}

qf_status qf_cuda_dequant_bf16(const qf_ct_weight *w, uint16_t *out, void *stream, qf_error *err)
{
    (void)w, (void)out, (void)stream;
    return QF_NO_CUDA("qf_cuda_dequant_bf16");
}

qf_status qf_cuda_quantize(qf_cuda_ctx *ctx, const qf_ct_layout *l, qf_dtype src_dtype, const void *src,
                           float tensor_amax, void *weight, void *scale, void *zero_point, float *global_scale,
                           void *stream, qf_error *err)
{
    (void)ctx, (void)l, (void)src_dtype, (void)src, (void)tensor_amax, (void)weight, (void)scale, (void)zero_point,
        (void)global_scale, (void)stream;
    return QF_NO_CUDA("qf_cuda_quantize");
}

qf_status qf_bench_kernels(FILE *out, int json, qf_error *err)
{
    (void)out, (void)json;
    return QF_NO_CUDA("qf_bench_kernels");
}

#else
typedef int qf_kernels_cpu_empty_unit; /* ISO C forbids an empty translation unit */
#endif
