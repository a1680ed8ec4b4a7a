/* matmul.cu - qf_cuda_matmul: argument checks and the choice between the weight-only kernels
 * (GEMV, TILED in wq_gemm.cuh) and dequantize-then-cuBLAS for large m. */
#include "qf_cuda_internal.cuh"

#define QF_AUTO_GEMV_MAX_M 16    /* GEMV handles up to two n8 token tiles */
#define QF_AUTO_TILED_MAX_M 512  /* above: dequantized bf16 panels through cuBLAS (untuned guess) */
#define QF_DEQ_PANEL_BYTES (64u << 20)

static const char *qf_path_name(qf_mm_path p)
{
    switch (p) {
    case QF_MM_AUTO: return "auto";
    case QF_MM_GEMV: return "gemv";
    case QF_MM_TILED: return "tiled";
    case QF_MM_DEQUANT_CUBLAS: return "dequant+cublas";
    }
    return "?";
}

/* Dequantize panels of rows to bf16 in context workspace and multiply each with cuBLAS. */
static qf_status qf_matmul_dequant_cublas(qf_cuda_ctx *ctx, const qf_gpu_weight *w, const uint16_t *x, int64_t m,
                                          uint16_t *y, cudaStream_t s, qf_error *err)
{
    const int64_t n = w->l.n, k = w->l.k;
    int64_t rows = (int64_t)(QF_DEQ_PANEL_BYTES / ((size_t)k * 2)) / QF_RB_ROWS * QF_RB_ROWS;
    if (rows < QF_RB_ROWS) rows = QF_RB_ROWS;
    if (rows > qf_rl_rowblocks(n) * QF_RB_ROWS) rows = qf_rl_rowblocks(n) * QF_RB_ROWS;
    QF_TRY(qf_dbuf_reserve(&ctx->deq, (size_t)rows * (size_t)k * 2, 0, err));
    for (int64_t r0 = 0; r0 < n; r0 += rows) {
        const int64_t nr = n - r0 < rows ? n - r0 : rows;
        QF_TRY(qf_wq_dequant_panel(w, r0, nr, (uint16_t *)ctx->deq.p, s, err));
        QF_TRY(qf_cuda_bf16_gemm(ctx, x, m, (const uint16_t *)ctx->deq.p, nr, k, y + r0, n, s, err));
    }
    return QF_OK;
}

extern "C" qf_status qf_cuda_matmul(qf_cuda_ctx *ctx, const qf_gpu_weight *w, const uint16_t *x, int64_t m,
                                    uint16_t *y, qf_mm_path path, int ksplit, void *stream, qf_error *err)
{
    if (!ctx || !w || !w->data || (m > 0 && (!x || !y)))
        return qf_fail(err, QF_ERR_USAGE, "qf_cuda_matmul: NULL argument");
    if (m < 0 || m > INT32_MAX / 2) return qf_fail(err, QF_ERR_USAGE, "qf_cuda_matmul: m = %lld", (long long)m);
    if (m == 0) return QF_OK;
    if (((uintptr_t)x | (uintptr_t)y) & 15)
        return qf_fail(err, QF_ERR_USAGE, "qf_cuda_matmul: x and y must be 16-byte aligned");
    size_t need = 0;
    QF_TRY(qf_cuda_repack_bytes(&w->l, &need, err));
    if (w->bytes < need) return qf_fail(err, QF_ERR_USAGE, "qf_cuda_matmul: weight was not repacked for this layout");
    if (path == QF_MM_AUTO)
        path = m <= QF_AUTO_GEMV_MAX_M ? QF_MM_GEMV : m <= QF_AUTO_TILED_MAX_M ? QF_MM_TILED : QF_MM_DEQUANT_CUBLAS;
    if (path == QF_MM_GEMV && m > QF_AUTO_GEMV_MAX_M)
        return qf_fail(err, QF_ERR_USAGE, "qf_cuda_matmul: the gemv path takes m <= %d, got %lld", QF_AUTO_GEMV_MAX_M,
                       (long long)m);
    cudaStream_t s = (cudaStream_t)stream;
    QF_CUDA_TRY(cudaSetDevice(ctx->device));
    if (path == QF_MM_DEQUANT_CUBLAS) return qf_matmul_dequant_cublas(ctx, w, x, m, y, s, err);
    if (path != QF_MM_GEMV && path != QF_MM_TILED)
        return qf_fail(err, QF_ERR_USAGE, "qf_cuda_matmul: unknown path %d", (int)path);
    const qf_wq_call call = {w, x, m, y, path, ksplit, s};
    qf_status st;
    switch (w->l.fmt) {
    case QF_WFMT_INT4: st = qf_wq_run_int4(ctx, &call, err); break;
    case QF_WFMT_NVFP4: st = qf_wq_run_nvfp4(ctx, &call, err); break;
    case QF_WFMT_MXFP4: st = qf_wq_run_mxfp4(ctx, &call, err); break;
    case QF_WFMT_FP8: st = qf_wq_run_fp8(ctx, &call, err); break;
    default: return qf_fail(err, QF_ERR_UNSUPPORTED, "no CUDA kernel for %s weights", qf_wfmt_name(w->l.fmt));
    }
    if (st != QF_OK)
        qf_error_prefix(err, "%s %s [%lld, %lld] m=%lld: ", qf_wfmt_name(w->l.fmt), qf_path_name(path),
                        (long long)w->l.n, (long long)w->l.k, (long long)m);
    return st;
}
