/* qf_test_gpu.h - internal to tests/: may a GPU test program run, skip, or must it fail?
 *
 * "No GPU here" and "a GPU that does not start" used to look the same (both printed a skip and
 * exited 0), so a broken driver or a device in a bad state passed the GPU checks.  Now:
 *   - CPU-only build, no device (cudaErrorNoDevice, or no driver at all and no /dev/nvidiactl):
 *     prints "SKIP NAME: reason", returns 77 (the automake "skipped" code);
 *   - a device or driver is there but cudaGetDeviceCount fails: prints the CUDA error,
 *     returns 1;
 *   - otherwise returns 0 (run the tests).
 */
#ifndef QF_TEST_GPU_H
#define QF_TEST_GPU_H

#include <stdio.h>
#include <unistd.h>

#ifdef QF_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

static inline int qf_test_gpu_presence(const char *name)
{
#ifdef QF_HAVE_CUDA
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    const int driver_here = access("/dev/nvidiactl", F_OK) == 0;
    if (e == cudaSuccess && n > 0) return 0;
    if (e == cudaSuccess || e == cudaErrorNoDevice || (e == cudaErrorInsufficientDriver && !driver_here)) {
        printf("SKIP %s: no CUDA device on this machine (%s)\n", name,
               e == cudaSuccess ? "0 devices" : cudaGetErrorString(e));
        return 77;
    }
    printf("FAIL %s: the GPU did not start: cudaGetDeviceCount: %s (%s)\n", name, cudaGetErrorName(e),
           cudaGetErrorString(e));
    return 1;
#else
    printf("SKIP %s: CPU-only build (no nvcc when it was built)\n", name);
    return 77;
#endif
}

#endif
