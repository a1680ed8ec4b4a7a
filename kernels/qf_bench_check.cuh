/* qf_bench_check.cuh - internal to kernels/: the kernel benchmark's output check.
 *
 * A benchmark that times a kernel writing wrong numbers reports a speed for nothing (an earlier
 * run timed kernels with unwritten scale registers), so bench_kernels.cu compares each
 * kernel's output with the CPU reference (qf_ref_dequant, the same rule the tests use) on
 * sampled output columns and rows before it times the kernel, and fails on a mismatch.
 */
#ifndef QF_BENCH_CHECK_CUH
#define QF_BENCH_CHECK_CUH

#include <vector>

#include "qf_kernels.h"

#define QF_BENCH_CHECK_COLS 48 /* output columns (rows of W) checked per weight */
#define QF_BENCH_CHECK_ROWS 24 /* output rows (tokens) checked per launch */

/* The reference side of one weight: sampled rows of W, dequantized on the CPU; INT4 values
 * rounded to bf16 as every INT4 kernel path does (FP4 and FP8 values are exact in bf16, their
 * per-tensor or per-row rest is applied in float32), so the check can be tight. */
struct qf_bench_ref {
    int64_t n = 0, k = 0;
    std::vector<int64_t> cols;
    std::vector<float> w; /* cols.size() x k */
};

/* Copy the checkpoint tensors of a device weight to the host and dequantize sampled rows. */
qf_status qf_bench_ref_make(const qf_ct_weight *dev, qf_bench_ref *r, qf_error *err);

/* y (device, bf16 [m, n]) against x (device, bf16 [m, k]) . dequant(W)^T on the sampled
 * columns and rows; act_fp8: x is first quantized per token to E4M3 (qf_ref_quant_act_fp8), as
 * the W8A8 path does; w_bf16: the path rounds W to bf16 where the reference does not
 * (NVFP4 through dequant+cuBLAS).  QF_ERR_CUDA with the first mismatch (what, row, column). */
qf_status qf_bench_check(const qf_bench_ref *r, const uint16_t *x, int64_t m, const uint16_t *y, int act_fp8,
                         int w_bf16, const char *what, qf_error *err);

#endif
