/* qf_linalg.h - dense linear algebra for the calibrated quantizers (GPTQ, AWQ, statistics).
 *
 * Owns the few O(n^3) kernels calibration needs, written once and tuned for CPUs:
 *   - qf_sgemm / qf_dgemm: C (+)= alpha * op(A) * op(B), row-major, optional transposes, with
 *     two structure hints (C lower triangle only; A lower triangular) so that SYRK- and
 *     TRMM-shaped products skip the tiles that are zero or unwanted;
 *   - qf_syrk_acc: C (float64, lower triangle) += X^T X for float32 rows X (the Hessian);
 *     qf_gemm_tn_acc: C (float64) += A^T B, the cross product of two inputs;
 *   - Cholesky (lower) and the inverse of a lower-triangular matrix, float64;
 *   - qf_gptq_factor: the upper Cholesky factor U of H^-1 (H^-1 = U^T U) that GPTQ sweeps with,
 *     computed with one Cholesky and one triangular inverse (no explicit H^-1);
 *   - qf_quad_rows: sum_r d_r H d_r^T, the output error of a weight perturbation D.
 *
 * How: operands are packed into cache blocks (KC = 256 deep) and multiplied by a
 * register-blocked micro-kernel: AVX-512 (12x32 float, 12x16 double) when the CPU has it
 * (runtime check; qf_linalg_set_isa() disables it: the CLI does for QF_NO_AVX512=1),
 * else AVX2/FMA (6x16 / 6x8) when the CPU has it, else portable C.  All kernels accumulate
 * with fused multiply-adds in the same order, so every ISA gives bit-identical results.
 * OpenMP threads share the work by tiles of C; each element of C is computed by one thread
 * with a fixed operation order, so results do not depend on the number of threads.
 *
 * Matrices are row-major with explicit leading dimensions (elements, not bytes).  Nothing is
 * printed; the functions that allocate workspace return QF_ERR_NOMEM through err.
 */
#ifndef QF_LINALG_H
#define QF_LINALG_H

#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Structure hints for the gemm family (bit flags). */
#define QF_GEMM_C_LOWER 1u /* only C[i][j] with i >= j is updated (SYRK-shaped products) */
#define QF_GEMM_A_LOWER 2u /* op(A)[i][k] == 0 for k > i: those blocks are skipped (TRMM) */
#define QF_GEMM_SERIAL 4u  /* run on the calling thread only (callers that split work themselves) */

/* C[m, n] (ldc) += alpha * op(A)[m, k] * op(B)[k, n].
 * op(A) = A (row-major m x k, lda) when ta == 0, else A^T (A stored k x m, lda); same for B.
 * C must not alias A or B.  Multi-threaded (OpenMP) when m * n * k is large enough to pay for
 * the synchronisation (>= 2^22 multiply-adds), unless QF_GEMM_SERIAL is given or the call is
 * made inside a parallel region.
 * Returns QF_OK or QF_ERR_NOMEM (packing buffers, about 1 MB). */
qf_status qf_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *A, int64_t lda,
                   const float *B, int64_t ldb, float *C, int64_t ldc, unsigned flags, qf_error *err);
qf_status qf_dgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, double alpha, const double *A, int64_t lda,
                   const double *B, int64_t ldb, double *C, int64_t ldc, unsigned flags, qf_error *err);

/* C[n, n] (ldc, float64) lower triangle incl. diagonal += X^T X, X [m, n] float32 (ldx).
 * Products and sums over the m rows are float32 (fused multiply-adds in row order); each
 * call's result is added to the float64 C.  The strict upper triangle is not touched. */
qf_status qf_syrk_acc(int64_t m, int64_t n, const float *X, int64_t ldx, double *C, int64_t ldc, qf_error *err);

/* C[n1, n2] (ldc, float64) += A^T B for float32 rows A [m, n1] (lda) and B [m, n2] (ldb):
 * the cross product sum_r a_r^T b_r of two inputs seen for the same rows (calibration's
 * float-path / quantized-path pairs).  Products and sums over the m rows are float32 (fused
 * multiply-adds in row order); the call's result is added to the float64 C. */
qf_status qf_gemm_tn_acc(int64_t m, int64_t n1, int64_t n2, const float *A, int64_t lda, const float *B, int64_t ldb,
                         double *C, int64_t ldc, qf_error *err);

/* In-place Cholesky A = L L^T of the symmetric positive definite A[n, n] (lda, only the lower
 * triangle is read).  L overwrites the lower triangle; the strict upper triangle is set to 0.
 * Returns 0 on success, or j + 1 when the leading minor of order j + 1 is not positive
 * definite (or not finite): A is then partly overwritten.  *status receives QF_ERR_NOMEM
 * (with err filled) if workspace could not be allocated, else QF_OK. */
int64_t qf_cholesky_lower(double *A, int64_t n, int64_t lda, qf_status *status, qf_error *err);

/* In-place inverse of the lower-triangular L[n, n] (lda; nonzero diagonal; the strict upper
 * triangle must be 0 and stays 0). */
qf_status qf_trtri_lower(double *L, int64_t n, int64_t lda, qf_error *err);

/* GPTQ's factor: given H[n, n] (symmetric positive definite, float64, overwritten as
 * workspace), write U[n, n] (float32, upper triangular, lower part 0) with H^-1 = U^T U, i.e.
 * torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True).
 * Computed as U = J L^-1 J where L L^T = J H J and J reverses the index order.
 * Returns 0, or the Cholesky failure index (see qf_cholesky_lower) when H is not positive
 * definite; *status as for qf_cholesky_lower. */
int64_t qf_gptq_factor(double *H, int64_t n, float *U, qf_status *status, qf_error *err);

/* out = sum_r D[r, :] H D[r, :]^T over the m rows of D[m, n] (ldd), H[n, n] float32 symmetric
 * (ldh).  Float32 products, float64 sum over rows (in row order).  Allocates m * n floats. */
qf_status qf_quad_rows(int64_t m, int64_t n, const float *D, int64_t ldd, const float *H, int64_t ldh, double *out,
                       qf_error *err);

/* Micro-kernel selection, a test and benchmark knob: 0 = automatic (default), 1 = portable C,
 * 2 = at most AVX2, 3 = AVX-512 allowed.  Returns the name of the kernel now in use
 * ("avx512", "avx2", "generic").  Not thread-safe against concurrent gemm calls. */
const char *qf_linalg_set_isa(int level);

#ifdef __cplusplus
}
#endif

#endif /* QF_LINALG_H */
