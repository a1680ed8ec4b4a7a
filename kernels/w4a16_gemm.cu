/* w4a16_gemm.cu - W4A16 (int4 "pack-quantized", group scales, optional zero points) GEMV and
 * tiled dequant-matmul: the INT4 instantiation of the kernels in wq_gemm.cuh.
 * Dequantization per pair of values: one LOP3 builds bf16 128 + q_u from two nibbles, one
 * bf16x2 subtract removes 128 + zp_u exactly, one bf16x2 multiply applies the group scale
 * (the only rounding).  CPU reference: w4a16_gemm_ref.c. */
#include "wq_gemm.cuh"

qf_status qf_wq_run_int4(qf_cuda_ctx *ctx, const qf_wq_call *c, qf_error *err)
{
    return qf_wq_run<QF_WFMT_INT4>(ctx, c, err);
}
