/* bench_rtn.c - round-to-nearest quantization rate per scheme (dev harness, not a test).
 *
 *   make BUILD=build build/libqforge.a
 *   gcc -O3 -std=c11 -D_GNU_SOURCE -fopenmp -mavx2 -mfma -mf16c -Icommon -Iquant tests/bench_rtn.c \
 *       build/libqforge.a -lxxhash -lm -o build/bench_rtn
 *   build/bench_rtn                 # every weight-only scheme, its default clip search and 0
 *   build/bench_rtn w4a16 10        # one scheme, one clip search (0 = textbook)
 *
 * Quantizes one Llama-3-8B FFN-shaped bf16 matrix (14336 x 4096, 117 MB, values of a few
 * hundredths as trained weights have) with qf_quantize_rtn_clip, best of 3, and prints GB/s of
 * bf16 read and an XXH3 fingerprint of the packed output, so a faster build can show it wrote
 * the same bytes.  OMP_NUM_THREADS=1 gives the per-core rate. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qf_hash.h"
#include "qf_quantize.h"

static double now_wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* bf16 of a uniform value in [-0.05, 0.05) from a 64-bit LCG (fixed seed: the same matrix every run). */
static uint16_t *make_weights(int64_t n)
{
    uint16_t *w = malloc(sizeof(uint16_t) * (size_t)n);
    if (!w) return NULL;
    uint64_t s = 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        float f = (float)(int32_t)(s >> 32) * (0.05f / 2147483648.0f);
        uint32_t u;
        memcpy(&u, &f, 4);
        w[i] = (uint16_t)(u >> 16);
    }
    return w;
}

static int bench(const char *name, int clip, const uint16_t *w, int64_t rows, int64_t cols)
{
    const qf_scheme *s = qf_scheme_find(name);
    qf_quant_plan plan;
    qf_error err = {0};
    if (!s || qf_quant_plan_linear(s, rows, cols, &plan, &err) != QF_OK) {
        fprintf(stderr, "bench_rtn: scheme %s: %s\n", name, s ? err.msg : "unknown");
        return 1;
    }
    qf_quant_buffers b = {{0}};
    for (int i = 0; i < plan.n; i++)
        if (!(b.data[i] = calloc(1, plan.t[i].nbytes))) return 1;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now_wall();
        if (qf_quantize_rtn_clip(s, QF_DTYPE_BF16, w, rows, cols, 0, clip, 0.75f, &plan, &b, &err) != QF_OK) {
            fprintf(stderr, "bench_rtn: %s: %s\n", name, err.msg);
            return 1;
        }
        double t = now_wall() - t0;
        best = t < best ? t : best;
    }
    qf_hash_ctx *h = qf_hash_new();
    for (int i = 0; i < plan.n; i++) qf_hash_update(h, b.data[i], plan.t[i].nbytes);
    char hex[QF_HASH_HEX_LEN + 1];
    qf_hash_hex(qf_hash_digest(h), hex);
    qf_hash_free(h);
    printf("%-11s clip %2d  %8.1f ms  %5.2f GB/s  (%d threads)  output %s\n", name, clip, best * 1e3,
           (double)(rows * cols * 2) / best / 1e9, omp_get_max_threads(), hex);
    for (int i = 0; i < plan.n; i++) free(b.data[i]);
    return 0;
}

int main(int argc, char **argv)
{
    const int64_t rows = 14336, cols = 4096;
    uint16_t *w = make_weights(rows * cols);
    if (!w) return 1;
    int rc = 0;
    if (argc >= 2) {
        rc = bench(argv[1], argc >= 3 ? atoi(argv[2]) : 0, w, rows, cols);
    } else {
        static const char *const names[] = {"w4a16", "w4a16-asym", "nvfp4a16", "mxfp4a16", "fp8-dynamic", "w8a8"};
        for (size_t i = 0; i < sizeof names / sizeof names[0] && !rc; i++) {
            const int def = qf_rtn_clip_default(qf_scheme_find(names[i]));
            rc = bench(names[i], 0, w, rows, cols);
            if (!rc && def) rc = bench(names[i], def, w, rows, cols);
        }
    }
    free(w);
    return rc;
}
