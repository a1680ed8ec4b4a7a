/* qf_cuda_check.h - internal to kernels/: turn CUDA and cuBLAS failures into a qf_error.
 *
 * Every CUDA runtime call, every cuBLAS / cuBLASLt call and every kernel launch in kernels/
 * goes through one of these macros.  On failure they fill the `qf_error *err` that must be in
 * scope with code QF_ERR_CUDA and a message naming the statement, the CUDA error string and
 * the source line, then return that status from the enclosing function (which must return
 * qf_status).  The library never exits on a CUDA error; dev harnesses and tests may abort.
 *
 *   QF_CUDA_TRY(cudaMalloc(&p, n));
 *   kernel<<<grid, block, 0, s>>>(...);
 *   QF_CUDA_LAUNCHED("kernel");            // checks cudaGetLastError() right after a launch
 *   QF_CUBLAS_TRY(cublasLtMatmul(...));
 * Usable from C and C++ (needs the CUDA include directory; only when QF_HAVE_CUDA).
 */
#ifndef QF_CUDA_CHECK_H
#define QF_CUDA_CHECK_H

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "qf_error.h"
#ifdef __cplusplus
}
#endif

#define QF_CUDA_TRY(expr)                                                                                  \
    do {                                                                                                   \
        cudaError_t qf_cuda_e_ = (expr);                                                                   \
        if (qf_cuda_e_ != cudaSuccess)                                                                     \
            return qf_fail(err, QF_ERR_CUDA, "%s failed: %s (%s, %s:%d)", #expr,                          \
                           cudaGetErrorString(qf_cuda_e_), cudaGetErrorName(qf_cuda_e_), __FILE__, __LINE__); \
    } while (0)

#define QF_CUDA_LAUNCHED(name)                                                                             \
    do {                                                                                                   \
        cudaError_t qf_cuda_e_ = cudaGetLastError();                                                       \
        if (qf_cuda_e_ != cudaSuccess)                                                                     \
            return qf_fail(err, QF_ERR_CUDA, "launching %s failed: %s (%s, %s:%d)", name,                  \
                           cudaGetErrorString(qf_cuda_e_), cudaGetErrorName(qf_cuda_e_), __FILE__, __LINE__); \
    } while (0)

#define QF_CUBLAS_TRY(expr)                                                                                \
    do {                                                                                                   \
        cublasStatus_t qf_cublas_s_ = (expr);                                                              \
        if (qf_cublas_s_ != CUBLAS_STATUS_SUCCESS)                                                         \
            return qf_fail(err, QF_ERR_CUDA, "%s failed: %s (cuBLAS status %d, %s:%d)", #expr,            \
                           cublasGetStatusString(qf_cublas_s_), (int)qf_cublas_s_, __FILE__, __LINE__);    \
    } while (0)

#endif /* QF_CUDA_CHECK_H */
