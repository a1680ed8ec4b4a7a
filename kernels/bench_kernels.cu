/* bench_kernels.cu - qf_bench_kernels: the shipped kernels against cuBLAS bf16 on Llama-3 shapes.
 *
 * Method (docs/kernels.md "Benchmark traps"): random non-zero data; weights quantized on the GPU
 * by qf_cuda_quantize and repacked by qf_cuda_repack (the production path), then copied into
 * at least 4 rotating buffers totalling >= 4x the L2 size, so no weight is ever L2-resident
 * when read; x and y are the same buffers for every kernel.  Each case: 3 warm-up launches,
 * then QF_BENCH_ITERS launches each bracketed by CUDA events, queued behind a spin kernel so
 * the host is always ahead of the GPU (times are GPU time per launch, not host overhead);
 * the median is reported.  cuBLAS bf16 (the ratio baseline) and the device-to-device copy
 * bandwidth are measured in the same run.
 *   TFLOP/s = 2 m n k / t; weight GB/s = logical checkpoint bytes of W incl. scales / t;
 *   vs_bf16 = t(cuBLAS bf16) / t; copy% = weight GB/s / copy GB/s, copy GB/s = 2 bytes / t.
 * Before a kernel is timed at a shape and m, one launch's output is compared with the CPU
 * reference on sampled rows and columns (bench_check.cu); a mismatch ends the run with an error
 * (non-zero exit), since a timing of wrong output is worse than none.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <vector>

#include "qf_bench_check.cuh"
#include "qf_cuda_internal.cuh"

#define QF_BENCH_ITERS 30
#define QF_BENCH_WARMUP 3
#define QF_BENCH_MAX_BUFS 64

namespace {

/* Device allocations freed when the bench returns, on every path. */
struct DevPool {
    std::vector<void *> ptrs;
    ~DevPool()
    {
        for (void *p : ptrs) cudaFree(p);
    }
    qf_status alloc(void **p, size_t bytes, qf_error *err)
    {
        *p = NULL;
        QF_CUDA_TRY(cudaMalloc(p, bytes));
        ptrs.push_back(*p);
        return QF_OK;
    }
    void release(void *p)
    {
        auto it = std::find(ptrs.begin(), ptrs.end(), p);
        if (it != ptrs.end()) {
            cudaFree(p);
            ptrs.erase(it);
        }
    }
};

struct Events {
    cudaEvent_t a[QF_BENCH_ITERS], b[QF_BENCH_ITERS];
    int n = 0;
    ~Events()
    {
        for (int i = 0; i < n; i++) cudaEventDestroy(a[i]), cudaEventDestroy(b[i]);
    }
};

} /* namespace */

/* Uniform values in [-amp, amp) from a hash of the index: random, reproducible, never all zero. */
__global__ void qf_bench_fill_kernel(__nv_bfloat16 *p, int64_t n, uint32_t seed, float amp)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 0x9E3779B1u ^ (uint32_t)(i >> 32) * 0x85EBCA77u ^ seed;
        h ^= h >> 15, h *= 0x2C1B3C6Du, h ^= h >> 12, h *= 0x297A2D39u, h ^= h >> 15;
        p[i] = __float2bfloat16_rn(amp * ((float)(h >> 8) * (1.0f / 8388608.0f) - 1.0f));
    }
}

/* Keeps the GPU busy for `ns` so that the host can queue a whole timed batch ahead of it. */
__global__ void qf_bench_spin_kernel(uint64_t ns)
{
    uint64_t t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)); while (t - t0 < ns);
}

template <class Op>
static qf_status qf_bench_time(Events &ev, cudaStream_t s, int bufs, Op op, double *median_us, qf_error *err)
{
    for (int i = 0; i < QF_BENCH_WARMUP; i++) QF_TRY(op(i % bufs));
    QF_CUDA_TRY(cudaStreamSynchronize(s));
    qf_bench_spin_kernel<<<1, 1, 0, s>>>(20u * 1000u * 1000u); /* 20 ms */
    QF_CUDA_LAUNCHED("qf_bench_spin_kernel");
    for (int i = 0; i < QF_BENCH_ITERS; i++) {
        QF_CUDA_TRY(cudaEventRecord(ev.a[i], s));
        QF_TRY(op((i + QF_BENCH_WARMUP) % bufs));
        QF_CUDA_TRY(cudaEventRecord(ev.b[i], s));
    }
    QF_CUDA_TRY(cudaStreamSynchronize(s));
    float t[QF_BENCH_ITERS];
    for (int i = 0; i < QF_BENCH_ITERS; i++) QF_CUDA_TRY(cudaEventElapsedTime(&t[i], ev.a[i], ev.b[i]));
    std::sort(t, t + QF_BENCH_ITERS);
    *median_us = 1000.0 * 0.5 * (t[QF_BENCH_ITERS / 2 - 1] + t[QF_BENCH_ITERS / 2]);
    return QF_OK;
}

struct qf_bench_out {
    FILE *f;
    int json;
    int rows;
};

static void qf_bench_emit(qf_bench_out *o, const char *kernel, const char *path, int64_t n, int64_t k, int64_t m,
                          double us, double wbytes, double ref_us, double copy_gbs)
{
    const double tflops = 2.0 * (double)m * (double)n * (double)k / (us * 1e-6) / 1e12;
    const double gbs = wbytes / (us * 1e-6) / 1e9;
    const double ratio = ref_us > 0 ? ref_us / us : 0.0;
    if (o->json) {
        fprintf(o->f,
                "%s\n    {\"kernel\": \"%s\", \"path\": \"%s\", \"n\": %lld, \"k\": %lld, \"m\": %lld, \"us\": %.2f, "
                "\"tflops\": %.2f, \"weight_gbs\": %.1f, \"vs_bf16\": %.3f, \"copy_pct\": %.1f}",
                o->rows ? "," : "", kernel, path, (long long)n, (long long)k, (long long)m, us, tflops, gbs, ratio,
                100.0 * gbs / copy_gbs);
    } else {
        fprintf(o->f, "%-12s %-15s %6lld %6lld %5lld %10.1f %8.1f %8.0f %7.2fx %6.1f%%\n", kernel, path, (long long)n,
                (long long)k, (long long)m, us, tflops, gbs, ratio, 100.0 * gbs / copy_gbs);
    }
    o->rows++;
}

static int qf_bench_bufs(double bytes, size_t l2)
{
    int r = (int)ceil(4.0 * (double)l2 / bytes);
    return r < 4 ? 4 : r > QF_BENCH_MAX_BUFS ? QF_BENCH_MAX_BUFS : r;
}

static qf_status qf_bench_run(qf_cuda_ctx *ctx, cudaStream_t s, qf_bench_out *o, qf_error *err)
{
    DevPool pool;
    Events ev;
    for (; ev.n < QF_BENCH_ITERS; ev.n++) {
        QF_CUDA_TRY(cudaEventCreate(&ev.a[ev.n]));
        if (cudaEventCreate(&ev.b[ev.n]) != cudaSuccess) {
            cudaEventDestroy(ev.a[ev.n]);
            return qf_fail(err, QF_ERR_CUDA, "cudaEventCreate failed");
        }
    }
    cudaDeviceProp prop;
    QF_CUDA_TRY(cudaGetDeviceProperties(&prop, ctx->device));
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    const size_t l2 = (size_t)prop.l2CacheSize;

    /* device-to-device copy bandwidth */
    const size_t cbytes = (size_t)512 << 20;
    void *ca, *cb;
    QF_TRY(pool.alloc(&ca, cbytes, err));
    QF_TRY(pool.alloc(&cb, cbytes, err));
    QF_CUDA_TRY(cudaMemsetAsync(ca, 1, cbytes, s));
    double copy_us = 0.0;
    QF_TRY(qf_bench_time(ev, s, 1, [&](int) -> qf_status {
        QF_CUDA_TRY(cudaMemcpyAsync(cb, ca, cbytes, cudaMemcpyDeviceToDevice, s));
        return QF_OK;
    }, &copy_us, err));
    const double copy_gbs = 2.0 * (double)cbytes / (copy_us * 1e-6) / 1e9;
    pool.release(ca);
    pool.release(cb);

    if (o->json) {
        fprintf(o->f,
                "{\n  \"device\": {\"name\": \"%s\", \"sm_count\": %d, \"l2_bytes\": %zu, \"cc\": \"%d.%d\", "
                "\"driver\": %d, \"runtime\": %d, \"cublaslt\": %zu},\n  \"copy_gbs\": %.1f,\n  \"iters\": %d,\n"
                "  \"results\": [",
                prop.name, prop.multiProcessorCount, l2, prop.major, prop.minor, drv, rt, cublasLtGetVersion(),
                copy_gbs, QF_BENCH_ITERS);
    } else {
        fprintf(o->f, "device: %s, %d SMs, L2 %.0f MB, cc %d.%d, driver %d, runtime %d, cuBLASLt %zu\n", prop.name,
                prop.multiProcessorCount, (double)l2 / 1e6, prop.major, prop.minor, drv, rt, cublasLtGetVersion());
        fprintf(o->f, "device-to-device copy: %.0f GB/s (read + write)\n", copy_gbs);
        fprintf(o->f, "GPU time per launch, median of %d; weights rotated over >= 4 buffers >= 4x L2\n\n",
                QF_BENCH_ITERS);
        fprintf(o->f, "%-12s %-15s %6s %6s %5s %10s %8s %8s %8s %7s\n", "kernel", "path", "N", "K", "M", "us",
                "TFLOP/s", "W GB/s", "vs_bf16", "copy%");
    }

    static const int64_t shapes[][2] = {{6144, 4096}, {4096, 14336}, {28672, 4096}, {8192, 28672}};
    static const int64_t ms[] = {1, 16, 128, 1024, 4096};
    const int64_t mmax = 4096;
    for (const auto &sh : shapes) {
        const int64_t n = sh[0], k = sh[1];
        /* activations and output, shared by every kernel */
        void *x, *y, *wsrc;
        QF_TRY(pool.alloc(&x, (size_t)mmax * k * 2, err));
        QF_TRY(pool.alloc(&y, (size_t)mmax * n * 2, err));
        QF_TRY(pool.alloc(&wsrc, (size_t)n * k * 2, err));
        qf_bench_fill_kernel<<<4096, 256, 0, s>>>((__nv_bfloat16 *)x, mmax * k, 0x1234u + (uint32_t)n, 1.0f);
        qf_bench_fill_kernel<<<4096, 256, 0, s>>>((__nv_bfloat16 *)wsrc, n * k, 0xBEEFu + (uint32_t)k, 0.05f);
        QF_CUDA_LAUNCHED("qf_bench_fill_kernel");

        /* bf16 baseline weights */
        const double bf16_bytes = 2.0 * (double)n * (double)k;
        const int rb16 = qf_bench_bufs(bf16_bytes, l2);
        std::vector<void *> w16(rb16);
        for (int i = 0; i < rb16; i++) {
            QF_TRY(pool.alloc(&w16[i], (size_t)n * k * 2, err));
            QF_CUDA_TRY(cudaMemcpyAsync(w16[i], wsrc, (size_t)n * k * 2, cudaMemcpyDeviceToDevice, s));
        }

        /* quantized weights: checkpoint tensors from the GPU quantizer, then repacked copies */
        struct QW {
            const char *name;
            qf_ct_layout l;
            double bytes; /* logical checkpoint bytes incl. scales */
            qf_ct_weight ct;
            std::vector<qf_gpu_weight> gw;
            std::vector<const void *> ct_copies; /* FP8 checkpoint weight copies for W8A8 */
        };
        QW qw[4];
        qf_bench_ref ref[4];
        const double nk = (double)n * (double)k;
        qw[0].name = "w4a16", qw[0].l = {QF_WFMT_INT4, n, k, 128, 0, 0}, qw[0].bytes = nk / 2 + nk / 128 * 2;
        qw[1].name = "nvfp4", qw[1].l = {QF_WFMT_NVFP4, n, k, 0, 0, 0}, qw[1].bytes = nk / 2 + nk / 16 + 4;
        qw[2].name = "mxfp4", qw[2].l = {QF_WFMT_MXFP4, n, k, 0, 0, 0}, qw[2].bytes = nk / 2 + nk / 32;
        qw[3].name = "fp8", qw[3].l = {QF_WFMT_FP8, n, k, 0, 0, 0}, qw[3].bytes = nk + 4.0 * (double)n;
        for (int qi = 0; qi < 4; qi++) {
            QW &q = qw[qi];
            qf_ct_sizes sz;
            QF_TRY(qf_ct_layout_check(&q.l, &sz, err));
            void *cw, *cs, *cz = NULL;
            QF_TRY(pool.alloc(&cw, sz.weight, err));
            QF_TRY(pool.alloc(&cs, sz.scale, err));
            float G = 1.0f;
            QF_TRY(qf_cuda_quantize(ctx, &q.l, QF_DTYPE_BF16, wsrc, 0.0f, cw, cs, cz, &G, s, err));
            q.ct = {q.l, cw, cs, cz, G};
            QF_CUDA_TRY(cudaStreamSynchronize(s));
            QF_TRY(qf_bench_ref_make(&q.ct, &ref[qi], err));
            size_t rbytes;
            QF_TRY(qf_cuda_repack_bytes(&q.l, &rbytes, err));
            const int r = qf_bench_bufs(q.bytes, l2);
            q.gw.resize(r);
            for (int i = 0; i < r; i++) {
                void *d;
                QF_TRY(pool.alloc(&d, rbytes, err));
                if (i == 0) QF_TRY(qf_cuda_repack(ctx, &q.ct, d, rbytes, &q.gw[0], s, err));
                else {
                    QF_CUDA_TRY(cudaMemcpyAsync(d, q.gw[0].data, rbytes, cudaMemcpyDeviceToDevice, s));
                    q.gw[i] = q.gw[0];
                    q.gw[i].data = d;
                }
            }
            if (q.l.fmt == QF_WFMT_FP8) {
                q.ct_copies.push_back(cw);
                for (int i = 1; i < r; i++) {
                    void *d;
                    QF_TRY(pool.alloc(&d, sz.weight, err));
                    QF_CUDA_TRY(cudaMemcpyAsync(d, cw, sz.weight, cudaMemcpyDeviceToDevice, s));
                    q.ct_copies.push_back(d);
                }
            }
        }
        QF_CUDA_TRY(cudaStreamSynchronize(s));

        for (int64_t m : ms) {
            const uint16_t *xp = (const uint16_t *)x;
            uint16_t *yp = (uint16_t *)y;
            double ref_us = 0.0;
            QF_TRY(qf_bench_time(ev, s, rb16, [&](int i) {
                return qf_cuda_bf16_gemm(ctx, xp, m, (const uint16_t *)w16[i], n, k, yp, n, s, err);
            }, &ref_us, err));
            qf_bench_emit(o, "bf16-cublas", "cublas", n, k, m, ref_us, bf16_bytes, ref_us, copy_gbs);
            for (int qi = 0; qi < 4; qi++) {
                QW &q = qw[qi];
                std::vector<qf_mm_path> paths;
                if (m <= 16) paths = {QF_MM_GEMV};
                else if (q.l.fmt == QF_WFMT_INT4 || q.l.fmt == QF_WFMT_NVFP4)
                    paths = {QF_MM_TILED, QF_MM_DEQUANT_CUBLAS};
                else paths = {QF_MM_TILED};
                for (qf_mm_path p : paths) {
                    const char *pn = p == QF_MM_GEMV ? "gemv" : p == QF_MM_TILED ? "tiled" : "dequant+cublas";
                    char what[64];
                    snprintf(what, sizeof what, "%s %s", q.name, pn);
                    QF_TRY(qf_cuda_matmul(ctx, &q.gw[0], xp, m, yp, p, 0, s, err));
                    QF_CUDA_TRY(cudaStreamSynchronize(s));
                    QF_TRY(qf_bench_check(&ref[qi], xp, m, yp, 0, q.l.fmt == QF_WFMT_NVFP4 && p == QF_MM_DEQUANT_CUBLAS,
                                          what, err));
                    double us = 0.0;
                    QF_TRY(qf_bench_time(ev, s, (int)q.gw.size(), [&](int i) {
                        return qf_cuda_matmul(ctx, &q.gw[i], xp, m, yp, p, 0, s, err);
                    }, &us, err));
                    qf_bench_emit(o, q.l.fmt == QF_WFMT_FP8 ? "fp8-w8a16" : q.name, pn, n, k, m, us, q.bytes, ref_us,
                                  copy_gbs);
                }
                if (q.l.fmt == QF_WFMT_FP8) {
                    QF_TRY(qf_cuda_fp8_w8a8_matmul(ctx, &q.ct, xp, m, yp, s, err));
                    QF_CUDA_TRY(cudaStreamSynchronize(s));
                    QF_TRY(qf_bench_check(&ref[qi], xp, m, yp, 1, 0, "fp8 w8a8", err));
                    double us = 0.0;
                    QF_TRY(qf_bench_time(ev, s, (int)q.ct_copies.size(), [&](int i) {
                        qf_ct_weight w = q.ct;
                        w.weight = q.ct_copies[i];
                        return qf_cuda_fp8_w8a8_matmul(ctx, &w, xp, m, yp, s, err);
                    }, &us, err));
                    qf_bench_emit(o, "fp8-w8a8", "quant+cublaslt", n, k, m, us, q.bytes, ref_us, copy_gbs);
                }
            }
            if (!o->json) fflush(o->f);
        }
        /* free this shape's buffers before the next */
        for (QW &q : qw) {
            for (size_t i = 0; i < q.gw.size(); i++) pool.release(q.gw[i].data);
            for (size_t i = 1; i < q.ct_copies.size(); i++) pool.release((void *)q.ct_copies[i]);
            pool.release((void *)q.ct.weight);
            pool.release((void *)q.ct.scale);
        }
        for (void *p : w16) pool.release(p);
        pool.release(x);
        pool.release(y);
        pool.release(wsrc);
    }
    if (o->json) fprintf(o->f, "\n  ]\n}\n");
    return QF_OK;
}

extern "C" qf_status qf_bench_kernels(FILE *out, int json, qf_error *err)
{
    if (!out) return qf_fail(err, QF_ERR_USAGE, "qf_bench_kernels: NULL output");
    if (qf_cuda_device_count() == 0) return qf_fail(err, QF_ERR_UNSUPPORTED, "kernel benchmark: no CUDA device");
    qf_cuda_ctx *ctx;
    QF_TRY(qf_cuda_ctx_create(0, &ctx, err));
    cudaStream_t s;
    if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess) {
        qf_cuda_ctx_free(ctx);
        return qf_fail(err, QF_ERR_CUDA, "cudaStreamCreate failed");
    }
    qf_bench_out o = {out, json, 0};
    qf_status st = qf_bench_run(ctx, s, &o, err);
    cudaStreamSynchronize(s);
    cudaStreamDestroy(s);
    qf_cuda_ctx_free(ctx);
    return st;
}
