/* fp4_gemm.cu - NVFP4 and MXFP4 weight-only GEMV and tiled dequant-matmul on Hopper, which has
 * no FP4 tensor cores: E2M1 values are placed into bf16 bit fields (fp4 * 2^-126) and one bf16x2
 * multiply by the folded block scale makes them exact bf16 operands of mma.sync (see
 * qf_cuda_internal.cuh); the per-tensor remainder (NVFP4 256/G, MXFP4 256) is applied in the
 * fp32 epilogue.  CPU reference: fp4_gemm_ref.c.
 *
 * Blackwell block-scaled FP4 (cuBLASLt CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3 / tcgen05) is not
 * built: sm_100 is not in the default architecture list and it cannot be tested here. */
#include "wq_gemm.cuh"

qf_status qf_wq_run_nvfp4(qf_cuda_ctx *ctx, const qf_wq_call *c, qf_error *err)
{
    return qf_wq_run<QF_WFMT_NVFP4>(ctx, c, err);
}

qf_status qf_wq_run_mxfp4(qf_cuda_ctx *ctx, const qf_wq_call *c, qf_error *err)
{
    return qf_wq_run<QF_WFMT_MXFP4>(ctx, c, err);
}
