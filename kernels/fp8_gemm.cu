/* fp8_gemm.cu - FP8 E4M3 weights on Hopper: W8A8 (fused per-token activation quantization +
 * cuBLASLt FP8 GEMM) and W8A16 (the FP8 instantiation of the weight-only kernels, for small m).
 * CPU reference: fp8_gemm_ref.c.
 *
 * W8A8.  qf_cuda_quant_act_fp8 reads each token row once (kept in registers up to k = 32768),
 * reduces its absmax, and writes E4M3 codes with the hardware saturating round-to-nearest-even
 * conversion (the same rounding as qf_f32_to_e4m3) of x / scale.  The GEMM is cuBLASLt with the
 * Hopper FP8 "TN" layout, which is free for row-major W[n, k] and x[m, k]: A = W (transposed,
 * ld k), B = xq (ld k), D = y^T (column-major [n, m], ld n) = y row-major.  Scales are applied in
 * the epilogue with CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F (A: n per-channel weight scales,
 * B: m per-token scales); when cuBLASLt offers no algorithm for that mode, the GEMM runs unscaled
 * into bf16 and a small kernel applies both vectors.  Accumulation keeps cuBLASLt's default
 * periodic promotion (FAST_ACCUM off).  Plans (descriptors + heuristic algorithm) are cached per
 * (m, n, k) in the context.
 */
#include <string.h>

#include <cuda_fp8.h>

#include "wq_gemm.cuh"

qf_status qf_wq_run_fp8(qf_cuda_ctx *ctx, const qf_wq_call *c, qf_error *err)
{
    return qf_wq_run<QF_WFMT_FP8>(ctx, c, err);
}

/* ---- per-token activation quantization ---------------------------------------------------- */

#define QF_ACT_THREADS 256
#define QF_ACT_ITEMS 16 /* 16-byte vectors per thread held in registers: rows up to 32768 */

__device__ __forceinline__ float qf_block_max(float v)
{
    __shared__ float red[QF_ACT_THREADS / 32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    v = red[0];
#pragma unroll
    for (int i = 1; i < QF_ACT_THREADS / 32; i++) v = fmaxf(v, red[i]);
    return v;
}

__device__ __forceinline__ uint32_t qf_e4m3x2(float a, float b)
{
    return (uint32_t)__nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3);
}

/* 8 bf16 values -> 8 E4M3 codes under scale s (s == 0: zeros, as the reference) */
__device__ __forceinline__ uint2 qf_quant8(uint4 v, float s)
{
    const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&v);
    uint32_t out[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const float2 f0 = __bfloat1622float2(h[2 * i]), f1 = __bfloat1622float2(h[2 * i + 1]);
        const uint32_t lo = s > 0.0f ? qf_e4m3x2(f0.x / s, f0.y / s) : 0u;
        const uint32_t hi = s > 0.0f ? qf_e4m3x2(f1.x / s, f1.y / s) : 0u;
        out[i] = lo | hi << 16;
    }
    return make_uint2(out[0], out[1]);
}

__device__ __forceinline__ float qf_amax8(float m, uint4 v)
{
    const __nv_bfloat162 *h = reinterpret_cast<const __nv_bfloat162 *>(&v);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 f = __bfloat1622float2(h[i]);
        m = qf_amax_update(qf_amax_update(m, f.x), f.y);
    }
    return m;
}

/* One CTA per token row.  vec: k % 8 == 0 and 16-byte aligned rows (else element-wise). */
__global__ void __launch_bounds__(QF_ACT_THREADS) qf_quant_act_fp8_kernel(const __nv_bfloat16 *x, int64_t k,
                                                                         uint8_t *q, float *scale, int vec)
{
    const __nv_bfloat16 *xr = x + (int64_t)blockIdx.x * k;
    uint8_t *qr = q + (int64_t)blockIdx.x * k;
    float amax = 0.0f;
    if (vec && k <= (int64_t)QF_ACT_THREADS * 8 * QF_ACT_ITEMS) {
        uint4 buf[QF_ACT_ITEMS];
#pragma unroll
        for (int i = 0; i < QF_ACT_ITEMS; i++) {
            const int64_t e = ((int64_t)threadIdx.x + (int64_t)i * QF_ACT_THREADS) * 8;
            buf[i] = e < k ? __ldg((const uint4 *)(xr + e)) : make_uint4(0u, 0u, 0u, 0u);
            amax = qf_amax8(amax, buf[i]);
        }
        const float s = qf_fp8_scale(qf_block_max(amax));
#pragma unroll
        for (int i = 0; i < QF_ACT_ITEMS; i++) {
            const int64_t e = ((int64_t)threadIdx.x + (int64_t)i * QF_ACT_THREADS) * 8;
            if (e < k) *(uint2 *)(qr + e) = qf_quant8(buf[i], s);
        }
        if (threadIdx.x == 0) scale[blockIdx.x] = s;
    } else if (vec) {
        for (int64_t e = (int64_t)threadIdx.x * 8; e < k; e += QF_ACT_THREADS * 8)
            amax = qf_amax8(amax, __ldg((const uint4 *)(xr + e)));
        const float s = qf_fp8_scale(qf_block_max(amax));
        for (int64_t e = (int64_t)threadIdx.x * 8; e < k; e += QF_ACT_THREADS * 8)
            *(uint2 *)(qr + e) = qf_quant8(__ldg((const uint4 *)(xr + e)), s);
        if (threadIdx.x == 0) scale[blockIdx.x] = s;
    } else {
        for (int64_t e = threadIdx.x; e < k; e += QF_ACT_THREADS)
            amax = qf_amax_update(amax, __bfloat162float(xr[e]));
        const float s = qf_fp8_scale(qf_block_max(amax));
        for (int64_t e = threadIdx.x; e < k; e += QF_ACT_THREADS) {
            const float v = __bfloat162float(xr[e]);
            qr[e] = s > 0.0f ? (uint8_t)(qf_e4m3x2(v / s, 0.0f) & 0xffu) : 0u;
        }
        if (threadIdx.x == 0) scale[blockIdx.x] = s;
    }
}

extern "C" qf_status qf_cuda_quant_act_fp8(const uint16_t *x, int64_t m, int64_t k, uint8_t *q, float *scale,
                                           void *stream, qf_error *err)
{
    if (m < 0 || k < 1 || m > INT32_MAX || (m > 0 && (!x || !q || !scale)))
        return qf_fail(err, QF_ERR_USAGE, "qf_cuda_quant_act_fp8: bad arguments (m = %lld, k = %lld)", (long long)m,
                       (long long)k);
    if (m == 0) return QF_OK;
    const int vec = k % 8 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)q & 7) == 0;
    qf_quant_act_fp8_kernel<<<(unsigned)m, QF_ACT_THREADS, 0, (cudaStream_t)stream>>>((const __nv_bfloat16 *)x, k, q,
                                                                                     scale, vec);
    QF_CUDA_LAUNCHED("qf_quant_act_fp8_kernel");
    return QF_OK;
}

/* ---- cuBLASLt FP8 GEMM -------------------------------------------------------------------- */

static void qf_fp8_plan_destroy(qf_fp8_plan *p)
{
    if (!p->used) return;
    if (p->op) cublasLtMatmulDescDestroy(p->op);
    if (p->a) cublasLtMatrixLayoutDestroy(p->a);
    if (p->b) cublasLtMatrixLayoutDestroy(p->b);
    if (p->d) cublasLtMatrixLayoutDestroy(p->d);
    memset(p, 0, sizeof *p);
}

/* Heuristic for the descriptors of p with scale mode `mode` on A and B; *found = 0 when none. */
static qf_status qf_fp8_heuristic(qf_cuda_ctx *ctx, qf_fp8_plan *p, int32_t mode, const void *sa, const void *sb,
                                  int *found, qf_error *err)
{
    QF_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode));
    QF_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode));
    QF_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa, sizeof sa));
    QF_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb, sizeof sb));
    cublasLtMatmulPreference_t pref;
    QF_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = ctx->lt_ws.cap;
    cublasStatus_t st =
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasLtMatmulHeuristicResult_t res;
    int count = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(ctx->lt, p->op, p->a, p->b, p->d, p->d, pref, 1, &res, &count);
    cublasLtMatmulPreferenceDestroy(pref);
    *found = st == CUBLAS_STATUS_SUCCESS && count > 0;
    if (*found) p->algo = res.algo;
    return QF_OK;
}

static qf_status qf_fp8_plan_get(qf_cuda_ctx *ctx, int64_t m, int64_t n, int64_t k, const float *sw, const float *sx,
                                 qf_fp8_plan **out, qf_error *err)
{
    qf_fp8_plan *slot = &ctx->plans[0];
    for (int i = 0; i < QF_FP8_ALGO_CACHE; i++) {
        qf_fp8_plan *p = &ctx->plans[i];
        if (p->used && p->m == m && p->n == n && p->k == k) {
            p->used = ++ctx->plan_clock;
            *out = p;
            return QF_OK;
        }
        if (p->used < slot->used) slot = p;
    }
    qf_fp8_plan_destroy(slot);
    qf_fp8_plan p;
    memset(&p, 0, sizeof p);
    p.m = m, p.n = n, p.k = k;
    QF_CUBLAS_TRY(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    qf_status st = QF_OK;
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const int8_t fast = 0;
    cublasStatus_t cs = cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (cs == CUBLAS_STATUS_SUCCESS)
        cs = cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (cs == CUBLAS_STATUS_SUCCESS)
        cs = cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast);
    if (cs == CUBLAS_STATUS_SUCCESS) cs = cublasLtMatrixLayoutCreate(&p.a, CUDA_R_8F_E4M3, (uint64_t)k, (uint64_t)n, k);
    if (cs == CUBLAS_STATUS_SUCCESS) cs = cublasLtMatrixLayoutCreate(&p.b, CUDA_R_8F_E4M3, (uint64_t)k, (uint64_t)m, k);
    if (cs == CUBLAS_STATUS_SUCCESS) cs = cublasLtMatrixLayoutCreate(&p.d, CUDA_R_16BF, (uint64_t)n, (uint64_t)m, n);
    int found = 0;
    if (cs != CUBLAS_STATUS_SUCCESS) {
        st = qf_fail(err, QF_ERR_CUDA, "creating cuBLASLt FP8 descriptors failed: %s", cublasGetStatusString(cs));
    } else {
        st = qf_fp8_heuristic(ctx, &p, CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F, sw, sx, &found, err);
        p.outer = found;
        if (st == QF_OK && !found)
            st = qf_fp8_heuristic(ctx, &p, CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F, NULL, NULL, &found, err);
        if (st == QF_OK && !found)
            st =
                qf_fail(err, QF_ERR_UNSUPPORTED,
                        "cuBLASLt has no FP8 algorithm for m=%lld n=%lld k=%lld (needs k %% 16 == 0, aligned pointers)",
                        (long long)m, (long long)n, (long long)k);
    }
    if (st != QF_OK) {
        p.used = 1;
        qf_fp8_plan_destroy(&p); /* descriptors not created are NULL and skipped */
        return st;
    }
    p.used = ++ctx->plan_clock;
    *slot = p;
    *out = slot;
    return QF_OK;
}

/* cuBLASLt wants float32 weight scales, one per row of W: widen the stored bf16 ones (exact). */
__global__ void qf_widen_scale_kernel(const uint16_t *src, int per_tensor, float *dst, int64_t n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = qf_bf16_to_f32(src[per_tensor ? 0 : i]);
}

/* y[i, j] *= x_scale[i] * w_scale[j]: the epilogue when OUTER_VEC scaling is unavailable. */
__global__ void qf_scale_rows_cols_kernel(__nv_bfloat16 *y, const float *sx, const float *sw, int64_t m, int64_t n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= m * n) return;
    y[i] = __float2bfloat16_rn(__bfloat162float(y[i]) * (sx[i / n] * sw[i % n]));
}

static qf_status qf_fp8_check_weight(const qf_ct_weight *w, qf_error *err)
{
    if (!w || !w->weight || !w->scale) return qf_fail(err, QF_ERR_USAGE, "FP8 GEMM: NULL weight");
    QF_TRY(qf_ct_layout_check(&w->l, NULL, err));
    if (w->l.fmt != QF_WFMT_FP8)
        return qf_fail(err, QF_ERR_USAGE, "FP8 GEMM needs an fp8 weight, not %s", qf_wfmt_name(w->l.fmt));
    if (w->l.k % 16 || ((uintptr_t)w->weight & 15))
        return qf_fail(err, QF_ERR_UNSUPPORTED,
                       "FP8 GEMM [%lld, %lld]: cuBLASLt needs k %% 16 == 0 and 16-byte aligned "
                       "weights",
                       (long long)w->l.n, (long long)w->l.k);
    return QF_OK;
}

extern "C" qf_status qf_cuda_fp8_gemm(qf_cuda_ctx *ctx, const qf_ct_weight *w, const uint8_t *xq,
                                      const float *x_scale, int64_t m, uint16_t *y, void *stream, qf_error *err)
{
    if (!ctx) return qf_fail(err, QF_ERR_USAGE, "qf_cuda_fp8_gemm: NULL context");
    QF_TRY(qf_fp8_check_weight(w, err));
    if (m < 0 || m > INT32_MAX) return qf_fail(err, QF_ERR_USAGE, "qf_cuda_fp8_gemm: m = %lld", (long long)m);
    if (m == 0) return QF_OK;
    if (!xq || !x_scale || !y || ((uintptr_t)xq & 15) || ((uintptr_t)y & 15))
        return qf_fail(err, QF_ERR_USAGE, "qf_cuda_fp8_gemm: xq and y must be non-NULL and 16-byte aligned");
    const int64_t n = w->l.n, k = w->l.k;
    cudaStream_t s = (cudaStream_t)stream;
    QF_CUDA_TRY(cudaSetDevice(ctx->device));
    /* OUTER_VEC wants one float32 value per row of W */
    QF_TRY(qf_dbuf_reserve(&ctx->vec, (size_t)n * sizeof(float), 0, err));
    qf_widen_scale_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>((const uint16_t *)w->scale, w->l.per_tensor,
                                                                      (float *)ctx->vec.p, n);
    QF_CUDA_LAUNCHED("qf_widen_scale_kernel");
    const float *sw = (const float *)ctx->vec.p;
    qf_fp8_plan *p;
    QF_TRY(qf_fp8_plan_get(ctx, m, n, k, sw, x_scale, &p, err));
    if (p->outer) {
        QF_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sw, sizeof sw));
        QF_CUBLAS_TRY(
            cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale, sizeof x_scale));
    }
    const float one = 1.0f, zero = 0.0f;
    QF_CUBLAS_TRY(cublasLtMatmul(ctx->lt, p->op, &one, w->weight, p->a, xq, p->b, &zero, y, p->d, y, p->d, &p->algo,
                                 ctx->lt_ws.p, ctx->lt_ws.cap, s));
    if (!p->outer) {
        qf_scale_rows_cols_kernel<<<(unsigned)((m * n + 255) / 256), 256, 0, s>>>((__nv_bfloat16 *)y, x_scale, sw, m,
                                                                                  n);
        QF_CUDA_LAUNCHED("qf_scale_rows_cols_kernel");
    }
    return QF_OK;
}

extern "C" qf_status qf_cuda_fp8_w8a8_matmul(qf_cuda_ctx *ctx, const qf_ct_weight *w, const uint16_t *x, int64_t m,
                                             uint16_t *y, void *stream, qf_error *err)
{
    if (!ctx) return qf_fail(err, QF_ERR_USAGE, "qf_cuda_fp8_w8a8_matmul: NULL context");
    QF_TRY(qf_fp8_check_weight(w, err));
    if (m <= 0) return m == 0 ? QF_OK : qf_fail(err, QF_ERR_USAGE, "qf_cuda_fp8_w8a8_matmul: m = %lld", (long long)m);
    const int64_t k = w->l.k;
    const size_t codes = ((size_t)m * (size_t)k + 255) & ~(size_t)255;
    QF_CUDA_TRY(cudaSetDevice(ctx->device));
    QF_TRY(qf_dbuf_reserve(&ctx->act, codes + (size_t)m * sizeof(float), 0, err));
    uint8_t *xq = (uint8_t *)ctx->act.p;
    float *xs = (float *)(xq + codes);
    QF_TRY(qf_cuda_quant_act_fp8(x, m, k, xq, xs, stream, err));
    return qf_cuda_fp8_gemm(ctx, w, xq, xs, m, y, stream, err);
}
