/* cuda_ctx.cu - the CUDA context of qf_kernels.h: device query, cuBLAS handles, workspace,
 * and the cuBLAS bf16 GEMM used as the baseline and by the DEQUANT_CUBLAS path. */
#include <stdlib.h>
#include <string.h>

#include "qf_cuda_internal.cuh"

#define QF_LT_WORKSPACE (32u << 20) /* cuBLASLt workspace: what TransformerEngine uses on Hopper */

extern "C" int qf_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
        return 0;
    }
    return n > 0 ? n : 0;
}

qf_status qf_dbuf_reserve(qf_dbuf *b, size_t bytes, int zero, qf_error *err)
{
    if (bytes <= b->cap) return QF_OK;
    size_t want = bytes + bytes / 4; /* headroom so slowly growing shapes do not reallocate each call */
    want = (want + 255) & ~(size_t)255;
    if (b->p) {
        QF_CUDA_TRY(cudaDeviceSynchronize()); /* kernels in flight may still read the old buffer */
        QF_CUDA_TRY(cudaFree(b->p));
        b->p = NULL;
        b->cap = 0;
    }
    QF_CUDA_TRY(cudaMalloc(&b->p, want));
    if (zero) { /* cudaMemset runs on the legacy stream, which a non-blocking user stream does not
                 * wait for: finish it before any kernel can read the buffer */
        QF_CUDA_TRY(cudaMemset(b->p, 0, want));
        QF_CUDA_TRY(cudaDeviceSynchronize());
    }
    b->cap = want;
    return QF_OK;
}

extern "C" void qf_cuda_ctx_free(qf_cuda_ctx *ctx)
{
    if (!ctx) return;
    cudaSetDevice(ctx->device);
    cudaDeviceSynchronize();
    for (int i = 0; i < QF_FP8_ALGO_CACHE; i++) {
        qf_fp8_plan *p = &ctx->plans[i];
        if (!p->used) continue;
        if (p->op) cublasLtMatmulDescDestroy(p->op);
        if (p->a) cublasLtMatrixLayoutDestroy(p->a);
        if (p->b) cublasLtMatrixLayoutDestroy(p->b);
        if (p->d) cublasLtMatrixLayoutDestroy(p->d);
    }
    qf_dbuf *bufs[] = {&ctx->lt_ws, &ctx->part, &ctx->cnt, &ctx->deq, &ctx->act, &ctx->vec, &ctx->scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]->p) cudaFree(bufs[i]->p);
    if (ctx->lt) cublasLtDestroy(ctx->lt);
    if (ctx->blas) cublasDestroy(ctx->blas);
    free(ctx);
}

static qf_status qf_ctx_init(qf_cuda_ctx *ctx, int device, qf_error *err)
{
    QF_CUDA_TRY(cudaSetDevice(device));
    QF_CUDA_TRY(cudaDeviceGetAttribute(&ctx->sm_count, cudaDevAttrMultiProcessorCount, device));
    QF_CUBLAS_TRY(cublasCreate(&ctx->blas));
    QF_CUBLAS_TRY(cublasLtCreate(&ctx->lt));
    QF_TRY(qf_dbuf_reserve(&ctx->lt_ws, QF_LT_WORKSPACE, 0, err));
    QF_TRY(qf_dbuf_reserve(&ctx->cnt, 1 << 16, 1, err));
    QF_TRY(qf_dbuf_reserve(&ctx->scratch, 256, 1, err));
    return QF_OK;
}

extern "C" qf_status qf_cuda_ctx_create(int device, qf_cuda_ctx **out, qf_error *err)
{
    if (!out) return qf_fail(err, QF_ERR_USAGE, "qf_cuda_ctx_create: out is NULL");
    *out = NULL;
    int count = qf_cuda_device_count();
    if (device < 0 || device >= count)
        return qf_fail(err, count ? QF_ERR_USAGE : QF_ERR_UNSUPPORTED, "CUDA device %d requested, %d available",
                       device, count);
    qf_cuda_ctx *ctx = (qf_cuda_ctx *)calloc(1, sizeof *ctx);
    if (!ctx) return qf_fail(err, QF_ERR_NOMEM, "out of memory for a CUDA context");
    ctx->device = device;
    qf_status st = qf_ctx_init(ctx, device, err);
    if (st != QF_OK) {
        qf_cuda_ctx_free(ctx);
        return st;
    }
    *out = ctx;
    return QF_OK;
}

qf_status qf_cuda_bf16_gemm(qf_cuda_ctx *ctx, const uint16_t *x, int64_t m, const uint16_t *w, int64_t n, int64_t k,
                            uint16_t *y, int64_t ldy, cudaStream_t s, qf_error *err)
{
    if (m == 0 || n == 0) return QF_OK;
    if (m > INT32_MAX || n > INT32_MAX || k > INT32_MAX || ldy > INT32_MAX)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "bf16 GEMM dimensions exceed cuBLAS int range");
    const float one = 1.0f, zero = 0.0f;
    QF_CUBLAS_TRY(cublasSetStream(ctx->blas, s));
    /* column-major view: Y^T[n, m] (ld ldy) = W (k x n col-major, transposed) . X^T (k x m col-major) */
    QF_CUBLAS_TRY(cublasGemmEx(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, w, CUDA_R_16BF,
                               (int)k, x, CUDA_R_16BF, (int)k, &zero, y, CUDA_R_16BF, (int)ldy, CUBLAS_COMPUTE_32F,
                               CUBLAS_GEMM_DEFAULT));
    return QF_OK;
}
