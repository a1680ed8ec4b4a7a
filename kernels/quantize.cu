/* quantize.cu - GPU round-to-nearest quantization of whole weights into compressed-tensors
 * layouts, byte-identical to qf_ref_quantize (quantize_ref.c): both call the per-format rules of
 * quant/qf_fmt_*.h on the same float values, and the group statistics (absmax, min, max) are
 * exact whatever the reduction order.
 *   INT4   one warp per (row, group), 8 rows per CTA so the asymmetric zero-point word of 8 rows
 *          is packed in shared memory
 *   FP8    one CTA per row (per-channel) or a grid-stride pass after a tensor absmax
 *   NVFP4  one thread per 16-value block; G from the given tensor absmax or a device reduction
 *   MXFP4  one thread per 32-value block
 */
#include "qf_cuda_internal.cuh"

#define QF_SCRATCH_AMAX 1 /* float slots of ctx->scratch (slot 0 is repack's flag) */
#define QF_SCRATCH_G 2

__device__ __forceinline__ float qf_src(const void *src, int64_t i, int bf16)
{
    return bf16 ? __bfloat162float(((const __nv_bfloat16 *)src)[i]) : ((const float *)src)[i];
}

__device__ __forceinline__ float qf_warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float qf_warp_min(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* absmax of n values into *out (float bits, zeroed by the caller; values are >= 0 so their bit
 * patterns order like the floats). */
__global__ void qf_absmax_kernel(const void *src, int bf16, int64_t n, unsigned *out)
{
    float m = 0.0f;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        m = qf_amax_update(m, qf_src(src, i, bf16));
    m = qf_warp_max(m);
    if ((threadIdx.x & 31) == 0) atomicMax(out, __float_as_uint(m));
}

/* grid (groups, ceil(n/8)), 256 threads: warp w quantizes row 8*blockIdx.y + w, group blockIdx.x */
__global__ void qf_quant_int4_kernel(const void *src, int bf16, int64_t n, int64_t k, int64_t g, int asym,
                                     uint32_t *weight, uint16_t *scale, uint32_t *zero_point)
{
    __shared__ uint32_t zs[8];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int64_t row = (int64_t)blockIdx.y * 8 + w, gi = blockIdx.x, ng = k / g, c0 = gi * g;
    if (row < n) {
        const int64_t base = row * k + c0;
        float s, zero = 0.0f;
        if (asym) {
            float lo = 0.0f, hi = 0.0f;
            for (int64_t c = lane; c < g; c += 32) {
                const float x = qf_src(src, base + c, bf16);
                lo = fminf(lo, x);
                hi = fmaxf(hi, x);
            }
            lo = qf_warp_min(lo);
            hi = qf_warp_max(hi);
            s = qf_int4_asym_scale(lo, hi);
            zero = qf_int4_asym_zero(lo, s);
            if (lane == 0) zs[w] = (uint32_t)(int)zero;
        } else {
            float amax = 0.0f;
            for (int64_t c = lane; c < g; c += 32) amax = qf_amax_update(amax, qf_src(src, base + c, bf16));
            s = qf_int4_sym_scale(qf_warp_max(amax));
        }
        if (lane == 0) scale[row * ng + gi] = qf_f32_to_bf16(s);
        for (int64_t wi = lane; wi < g / 8; wi += 32) {
            uint32_t word = 0;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float x = qf_src(src, base + 8 * wi + j, bf16);
                word |= (asym ? qf_int4_asym_code(x, s, zero) : qf_int4_sym_code(x, s)) << (4 * j);
            }
            weight[row * (k / 8) + c0 / 8 + wi] = word;
        }
    } else if (lane == 0) {
        zs[w] = 0;
    }
    if (!asym) return;
    __syncthreads();
    if (threadIdx.x == 0) {
        uint32_t word = 0;
        for (int r = 0; r < 8; r++) word |= (zs[r] & 15u) << (4 * r);
        zero_point[(int64_t)blockIdx.y * ng + gi] = word;
    }
}

/* per-channel: one CTA (256 threads) per row */
__global__ void qf_quant_fp8_row_kernel(const void *src, int bf16, int64_t k, uint8_t *weight, uint16_t *scale)
{
    __shared__ float red[8];
    const int64_t row = blockIdx.x, base = row * k;
    float amax = 0.0f;
    for (int64_t c = threadIdx.x; c < k; c += blockDim.x) amax = qf_amax_update(amax, qf_src(src, base + c, bf16));
    amax = qf_warp_max(amax);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = amax;
    __syncthreads();
    amax = red[0];
    for (int i = 1; i < 8; i++) amax = fmaxf(amax, red[i]);
    const float s = qf_fp8_wscale(amax);
    if (threadIdx.x == 0) scale[row] = qf_f32_to_bf16(s);
    for (int64_t c = threadIdx.x; c < k; c += blockDim.x)
        weight[base + c] = qf_fp8_code(qf_src(src, base + c, bf16), s);
}

/* per-tensor: scale from the device absmax */
__global__ void qf_quant_fp8_tensor_kernel(const void *src, int bf16, int64_t total, const float *amax, uint8_t *weight,
                                           uint16_t *scale)
{
    const float s = qf_fp8_wscale(*amax);
    if (blockIdx.x == 0 && threadIdx.x == 0) scale[0] = qf_f32_to_bf16(s);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        weight[i] = qf_fp8_code(qf_src(src, i, bf16), s);
}

/* one thread per 16-value block; G = qf_nvfp4_global(*amax) when amax is given, else G_host */
__global__ void qf_quant_nvfp4_kernel(const void *src, int bf16, int64_t n, int64_t k, float G_host, const float *amax,
                                      float *G_out, uint8_t *weight, uint8_t *scale)
{
    const float G = amax ? qf_nvfp4_global(*amax) : G_host;
    const int64_t nb = k / QF_NVFP4_BLOCK, i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i == 0 && G_out) *G_out = G;
    if (i >= n * nb) return;
    const int64_t base = i * QF_NVFP4_BLOCK; /* blocks never straddle rows: k % 16 == 0 */
    float x[QF_NVFP4_BLOCK], bmax = 0.0f;
#pragma unroll
    for (int j = 0; j < QF_NVFP4_BLOCK; j++) {
        x[j] = qf_src(src, base + j, bf16);
        bmax = qf_amax_update(bmax, x[j]);
    }
    const uint8_t code = qf_nvfp4_scale_code(bmax, G);
    const float step = qf_nvfp4_step(code, G);
    uint32_t p[2] = {0, 0};
#pragma unroll
    for (int j = 0; j < QF_NVFP4_BLOCK; j++) p[j / 8] |= (uint32_t)qf_fp4_code(x[j], step) << (4 * (j % 8));
    *(uint2 *)(weight + base / 2) = make_uint2(p[0], p[1]);
    scale[i] = code;
}

__global__ void qf_quant_mxfp4_kernel(const void *src, int bf16, int64_t n, int64_t k, uint8_t *weight, uint8_t *scale)
{
    const int64_t nb = k / QF_MXFP4_BLOCK, i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * nb) return;
    const int64_t base = i * QF_MXFP4_BLOCK;
    float bmax = 0.0f;
    for (int j = 0; j < QF_MXFP4_BLOCK; j++) bmax = qf_amax_update(bmax, qf_src(src, base + j, bf16));
    const uint8_t code = qf_mxfp4_scale_code(bmax);
    const float step = qf_mxfp4_step(code);
    uint32_t p[4] = {0, 0, 0, 0};
    for (int j = 0; j < QF_MXFP4_BLOCK; j++)
        p[j / 8] |= (uint32_t)qf_fp4_code(qf_src(src, base + j, bf16), step) << (4 * (j % 8));
    *(uint4 *)(weight + base / 2) = make_uint4(p[0], p[1], p[2], p[3]);
    scale[i] = code;
}

static unsigned qf_grid(int64_t threads, int per_block, int64_t cap)
{
    int64_t b = (threads + per_block - 1) / per_block;
    return (unsigned)(b < 1 ? 1 : b > cap ? cap : b);
}

extern "C" qf_status qf_cuda_quantize(qf_cuda_ctx *ctx, const qf_ct_layout *l, qf_dtype src_dtype, const void *src,
                                      float tensor_amax, void *weight, void *scale, void *zero_point,
                                      float *global_scale, void *stream, qf_error *err)
{
    if (!ctx || !src || !weight || !scale) return qf_fail(err, QF_ERR_USAGE, "qf_cuda_quantize: NULL argument");
    QF_TRY(qf_ct_layout_check(l, NULL, err));
    const char *name = qf_wfmt_name(l->fmt);
    const int64_t n = l->n, k = l->k;
    if (src_dtype != QF_DTYPE_F32 && src_dtype != QF_DTYPE_BF16)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "qf_cuda_quantize: source dtype %s (F32 or BF16 only)",
                       qf_dtype_name(src_dtype));
    const int bf16 = src_dtype == QF_DTYPE_BF16;
    if (l->fmt == QF_WFMT_INT8) return qf_fail(err, QF_ERR_UNSUPPORTED, "int8 weights have no CUDA quantizer");
    if (l->fmt == QF_WFMT_INT4 && (l->group_size % 8 || k % l->group_size || (l->asym && n % 8)))
        return qf_fail(err, QF_ERR_UNSUPPORTED,
                       "int4 [%lld, %lld] group %lld: the CUDA quantizer needs group %% 8 == 0, k %% group == 0 and, "
                       "asymmetric, n %% 8 == 0",
                       (long long)n, (long long)k, (long long)l->group_size);
    if (l->asym && !zero_point) return qf_fail(err, QF_ERR_USAGE, "qf_cuda_quantize: asymmetric int4 needs zero_point");
    if (((uintptr_t)weight & 15) || (bf16 ? ((uintptr_t)src & 1) : ((uintptr_t)src & 3)))
        return qf_fail(err, QF_ERR_USAGE, "qf_cuda_quantize: weight must be 16-byte aligned");
    cudaStream_t s = (cudaStream_t)stream;
    QF_CUDA_TRY(cudaSetDevice(ctx->device));
    float *scratch = (float *)ctx->scratch.p;
    float *d_amax = NULL;
    const int need_amax =
        (l->fmt == QF_WFMT_NVFP4 && !(tensor_amax > 0.0f)) || (l->fmt == QF_WFMT_FP8 && l->per_tensor);
    if (need_amax) {
        d_amax = scratch + QF_SCRATCH_AMAX;
        QF_CUDA_TRY(cudaMemsetAsync(d_amax, 0, sizeof(float), s));
        qf_absmax_kernel<<<qf_grid(n * k, 256, 4096), 256, 0, s>>>(src, bf16, n * k, (unsigned *)d_amax);
        QF_CUDA_LAUNCHED("qf_absmax_kernel");
    }
    float G = 1.0f;
    switch (l->fmt) {
    case QF_WFMT_INT4: {
        dim3 grid((unsigned)(k / l->group_size), (unsigned)((n + 7) / 8));
        if (grid.y > 65535)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "qf_cuda_quantize: int4 with more than 524280 rows");
        qf_quant_int4_kernel<<<grid, 256, 0, s>>>(src, bf16, n, k, l->group_size, l->asym, (uint32_t *)weight,
                                                   (uint16_t *)scale, (uint32_t *)zero_point);
        QF_CUDA_LAUNCHED("qf_quant_int4_kernel");
        break;
    }
    case QF_WFMT_FP8:
        if (l->per_tensor) {
            qf_quant_fp8_tensor_kernel<<<qf_grid(n * k, 256, 8192), 256, 0, s>>>(src, bf16, n * k, d_amax,
                                                                                (uint8_t *)weight, (uint16_t *)scale);
            QF_CUDA_LAUNCHED("qf_quant_fp8_tensor_kernel");
        } else {
            qf_quant_fp8_row_kernel<<<(unsigned)n, 256, 0, s>>>(src, bf16, k, (uint8_t *)weight, (uint16_t *)scale);
            QF_CUDA_LAUNCHED("qf_quant_fp8_row_kernel");
        }
        break;
    case QF_WFMT_NVFP4: {
        G = qf_nvfp4_global(tensor_amax);
        float *g_out = scratch + QF_SCRATCH_G;
        qf_quant_nvfp4_kernel<<<qf_grid(n * (k / 16), 128, INT32_MAX), 128, 0, s>>>(src, bf16, n, k, G, d_amax, g_out,
                                                                                 (uint8_t *)weight, (uint8_t *)scale);
        QF_CUDA_LAUNCHED("qf_quant_nvfp4_kernel");
        if (global_scale && d_amax) {
            QF_CUDA_TRY(cudaMemcpyAsync(&G, g_out, sizeof(float), cudaMemcpyDeviceToHost, s));
            QF_CUDA_TRY(cudaStreamSynchronize(s));
        }
        break;
    }
    case QF_WFMT_MXFP4:
        qf_quant_mxfp4_kernel<<<qf_grid(n * (k / 32), 128, INT32_MAX), 128, 0, s>>>(src, bf16, n, k, (uint8_t *)weight,
                                                                                 (uint8_t *)scale);
        QF_CUDA_LAUNCHED("qf_quant_mxfp4_kernel");
        break;
    default: return qf_fail(err, QF_ERR_UNSUPPORTED, "no CUDA quantizer for %s", name);
    }
    if (global_scale) *global_scale = G;
    return QF_OK;
}
