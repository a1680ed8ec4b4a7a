/* qf_matmul.h - the float32 matrix product of the CPU model runner: y = x · Wᵀ.
 *
 * Owns the one hot loop of validation and calibration.  Every Linear layer and both products
 * of attention are the "NT" form y[m, n] = Σ_k x[m, k] · w[n, k]: x and w are row-major
 * with k contiguous, as activations and checkpoint weights are.  The weight side is packed
 * into panels of NR output columns ((k, NR) floats, zero-padded) so that a register-blocked
 * micro-kernel can broadcast x and stream the panel: AVX-512 12x32 when the CPU has it
 * (runtime check; qf_matmul_use_kernel disables it: the CLI does for QF_NO_AVX512=1), else AVX2/FMA 6x16, else
 * (no AVX2 at compile time) a portable `#pragma omp simd` kernel.
 *
 * Two entry points:
 *   - qf_matmul_rows: the Linear product.  The weight is never materialised as a whole:
 *     OpenMP threads take blocks of output rows, ask a row source (qf_rows_fn) to write
 *     those rows as float32 into a thread-local tile (dequantize / bf16 -> f32), pack them
 *     and multiply.  Uses all OpenMP threads.
 *   - qf_gemm_nt: a plain single-threaded product of two float matrices with leading
 *     dimensions, for callers that parallelise outside (attention over heads).
 * With a GPU (qf_gpu_calib.h), a qf_matmul_rows product of at least QF_MM_GPU_MIN_M rows and
 * QF_MM_GPU_MIN_MACS multiply-adds goes to cuBLAS SGEMM instead (float32, another summation
 * order): the big products of calibrating and validating a real model; the fixtures' small
 * ones stay here.
 * qf_matmul_rows keeps its weight tiles in per-thread buffers that live from call to call
 * (qf_mm_tls_buffer) and returns QF_ERR_NOMEM when one cannot be allocated.
 */
#ifndef QF_MATMUL_H
#define QF_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QF_MM_GPU_MIN_M 128
#define QF_MM_GPU_MIN_MACS 4e9

/* Writes weight rows [r0, r1) as float32, row-major, into out[(r1 - r0) * k].  Called
 * concurrently from several threads with disjoint row ranges; must not fail. */
typedef void (*qf_rows_fn)(const void *src, int64_t r0, int64_t r1, float *out);

/* y[m, n] (row stride ldy) = x[m, k] (row stride ldx) · W[n, k]ᵀ, where row r of W is what
 * rows(src, r, r + 1, ...) writes.  Parallel over blocks of W rows (OpenMP).  y must not
 * alias x.  Returns QF_OK, or QF_ERR_NOMEM when a thread-local tile cannot be allocated. */
qf_status qf_matmul_rows(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, qf_rows_fn rows,
                         const void *src, float *y, int64_t ldy, qf_error *err);

/* Single-threaded y[m, n] (ldy) = x[m, k] (ldx) · w[n, k]ᵀ (ldw) (+ the old y when
 * accumulate != 0).  wp_scratch must hold qf_gemm_scratch_floats(k) floats (any
 * alignment); it is where panels of w are packed. */
void qf_gemm_nt(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *w, int64_t ldw,
                float *y, int64_t ldy, int accumulate, float *wp_scratch);
int64_t qf_gemm_scratch_floats(int64_t k);

/* Prepacked weights, for a W that many products reuse (attention keys and values).
 * qf_pack_floats(n, k): floats needed for the packing of an (n, k) W.
 * qf_pack_nt: pack W[r][c] = w[r * rs + c * cs] (r < n, c < k) into wp (any strides: rs = 1
 * packs a transposed view).  qf_gemm_prepacked: single-threaded y (m, n) (ldy) (+)= x (m, k)
 * (ldx) · Wᵀ using the first n rows and first k <= kp columns of a packing made with width kp. */
int64_t qf_pack_floats(int64_t n, int64_t k);
void qf_pack_nt(const float *w, int64_t rs, int64_t cs, int64_t n, int64_t k, float *wp);
void qf_gemm_prepacked(int64_t m, int64_t n, int64_t k, const float *x, int64_t ldx, const float *wp, int64_t kp,
                       float *y, int64_t ldy, int accumulate);

/* A per-thread buffer of at least `floats` floats (64-byte aligned), kept for the next call
 * on the same thread; NULL when it cannot be allocated.  Slots 0 and 1 are used by
 * qf_matmul_rows, 2 and 3 are free for callers (attention scores).  The contents are not
 * preserved when the buffer grows.  qf_matmul_release_buffers frees the calling thread's. */
#define QF_MM_TLS_SLOTS 4
float *qf_mm_tls_buffer(int slot, size_t floats);
void qf_matmul_release_buffers(void);

/* Name of the micro-kernel in use ("avx512", "avx2", "portable"), for benchmarks. */
const char *qf_matmul_kernel_name(void);
/* Force a micro-kernel by name (tests, benchmarks); NULL restores the automatic choice.
 * Returns 0, or -1 when that kernel is not compiled in or the CPU lacks it.  Not to be
 * called while a product runs; packings made under another kernel become invalid. */
int qf_matmul_use_kernel(const char *name);

#ifdef __cplusplus
}
#endif

#endif /* QF_MATMUL_H */
