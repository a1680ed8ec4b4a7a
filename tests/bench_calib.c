/* bench_calib.c - timings of the calibrated methods on Linear shapes (dev harness, not a test).
 *
 *   make BUILD=build build/libqforge.a
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -fopenmp -Icommon -Iquant -Icalib/model -Icalib/calibrate -Icalib/tokenizer -Icalib/eval -Iformats -Ikernels -Itests \
 *       tests/bench_calib.c build/libqforge.a -lm -o build/bench_calib
 *   build/bench_calib tiny          # tiny-llama shapes (hidden 384, intermediate 1024)
 *   build/bench_calib 8b            # Llama-3-8B shapes (4096, 14336; minutes)
 *   build/bench_calib ROWS COLS     # one shape
 *
 * Prints, per shape: GPTQ (w4a16 g128, default options) split into the factorization of H
 * and the column sweep, the stats accumulation rate (tokens/s into XᵀX), and for the group
 * shapes the AWQ scale search.  Wall and process CPU seconds are both shown: on a shared
 * machine CPU seconds / threads is the better estimate of an idle machine's wall time.
 * H is a synthetic SPD matrix (rank-256 XᵀX plus a ridge): timings do not depend on it. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qf_awq.h"
#include "qf_calib_fixture.h"
#include "qf_gptq.h"
#include "qf_linalg.h"
#include "qf_stats.h"

static double now_wall(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static double now_cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double *synthetic_h(int64_t cols)
{
    qf_error err = {0};
    const int64_t k = 256;
    float *X = fx_weights(k, cols, 99);
    double *H = calloc((size_t)(cols * cols), sizeof(double));
    if (!X || !H || qf_syrk_acc(k, cols, X, cols, H, cols, &err)) exit(1);
    double mean = 0;
    for (int64_t i = 0; i < cols; i++) mean += H[i * cols + i] / (double)cols;
    for (int64_t i = 0; i < cols; i++) {
        H[i * cols + i] += 0.05 * mean;
        for (int64_t j = i + 1; j < cols; j++) H[i * cols + j] = H[j * cols + i];
    }
    free(X);
    return H;
}

static void bench_gptq(int64_t rows, int64_t cols, const double *H)
{
    qf_error err = {0};
    const qf_scheme *s = qf_scheme_find("w4a16");
    qf_quant_plan plan;
    qf_quant_buffers b;
    if (qf_quant_plan_linear(s, rows, cols, &plan, &err)) return;
    fx_alloc_buffers(&plan, &b);
    float *W = fx_weights(rows, cols, 1);
    /* the factorization alone */
    double *Hw = malloc(sizeof(double) * (size_t)(cols * cols));
    float *U = malloc(sizeof(float) * (size_t)(cols * cols));
    memcpy(Hw, H, sizeof(double) * (size_t)(cols * cols));
    qf_status st;
    double w0 = now_wall(), c0 = now_cpu();
    qf_gptq_factor(Hw, cols, U, &st, &err);
    double fw = now_wall() - w0, fc = now_cpu() - c0;
    free(Hw), free(U);
    /* best of `reps` runs (the first includes page faults; a shared machine adds noise) */
    double gw = 1e30, gc = 1e30;
    const int reps = (double)rows * (double)cols * (double)cols > 1e11 ? 1 : 3;
    for (int rep = 0; rep < reps; rep++) {
        float *Wc = malloc(sizeof(float) * (size_t)(rows * cols));
        memcpy(Wc, W, sizeof(float) * (size_t)(rows * cols));
        w0 = now_wall(), c0 = now_cpu();
        qf_gptq_result r;
        st = qf_gptq_quantize(s, Wc, rows, cols, H, 1000, 0, NULL, &plan, &b, &r, &err);
        double w1 = now_wall() - w0, c1 = now_cpu() - c0;
        if (w1 < gw) gw = w1, gc = c1;
        free(Wc);
    }
    printf("gptq  %6lld x %-6lld  total %8.3f s wall %8.3f s cpu   (factor %7.3f wall %7.3f cpu)%s%s\n",
           (long long)rows, (long long)cols, gw, gc, fw, fc, st ? "  FAILED: " : "", st ? err.msg : "");
    fx_free_buffers(&plan, &b);
    free(W);
}

static void bench_stats(int64_t cols, int64_t tokens)
{
    qf_error err = {0};
    qf_stats st;
    float *X = fx_weights(tokens, cols, 3);
    if (qf_stats_init(&st, cols, QF_STATS_XTX, &err)) return;
    double w0 = now_wall(), c0 = now_cpu();
    qf_stats_add(&st, X, tokens, &err);
    qf_stats_finish(&st, &err);
    double w = now_wall() - w0, c = now_cpu() - c0;
    printf("stats cols %-6lld %6lld tokens: %8.3f s wall %8.3f s cpu  (%.0f tokens/s wall)\n", (long long)cols,
           (long long)tokens, w, c, (double)tokens / w);
    qf_stats_free(&st);
    free(X);
}

static void bench_awq(const int64_t *rows, int n, int64_t cols, const double *H)
{
    qf_error err = {0};
    qf_weight_ref lin[4];
    float *xm = malloc(sizeof(float) * (size_t)cols), *sc = malloc(sizeof(float) * (size_t)cols);
    for (int64_t j = 0; j < cols; j++) xm[j] = 1.0f + (float)(j % 7);
    for (int k = 0; k < n; k++) lin[k] = (qf_weight_ref){fx_weights(rows[k], cols, 10 + (uint64_t)k), rows[k]};
    qf_awq_result r;
    double w0 = now_wall(), c0 = now_cpu();
    qf_status st = qf_awq_search_scales(qf_scheme_find("w4a16"), lin, n, cols, xm, H, NULL, sc, &r, &err);
    double w = now_wall() - w0, c = now_cpu() - c0;
    int64_t tot = 0;
    for (int k = 0; k < n; k++) tot += rows[k];
    printf("awq   %d Linears, %6lld rows x %-6lld: scales %8.3f s wall %8.3f s cpu (%lld rows scored)%s\n", n,
           (long long)tot, (long long)cols, w, c, (long long)r.rows_scored, st ? "  FAILED" : "");
    float *ratios = malloc(sizeof(float) * (size_t)(rows[0] * (cols / 128)));
    w0 = now_wall(), c0 = now_cpu();
    st = qf_awq_search_clip(qf_scheme_find("w4a16"), lin[0].w, rows[0], cols, H, NULL, 0, NULL, ratios, NULL, &err);
    w = now_wall() - w0, c = now_cpu() - c0;
    printf("awq   clip %6lld x %-6lld: %8.3f s wall %8.3f s cpu%s\n", (long long)rows[0], (long long)cols, w, c,
           st ? "  FAILED" : "");
    for (int k = 0; k < n; k++) free((void *)lin[k].w);
    free(xm), free(sc), free(ratios);
}

int main(int argc, char **argv)
{
    printf("threads %d, kernel %s\n", omp_get_max_threads(), qf_linalg_set_isa(0));
    if (argc == 3) {
        int64_t rows = atoll(argv[1]), cols = atoll(argv[2]);
        double *H = synthetic_h(cols);
        bench_gptq(rows, cols, H);
        free(H);
        return 0;
    }
    int big = argc > 1 && !strcmp(argv[1], "8b");
    const int64_t hid = big ? 4096 : 384, inter = big ? 14336 : 1024, q = big ? 4096 : 384, kv = big ? 1024 : 128;
    double *Hh = synthetic_h(hid), *Hi = synthetic_h(inter);
    bench_gptq(q, hid, Hh);     /* q_proj, o_proj */
    bench_gptq(kv, hid, Hh);    /* k_proj, v_proj */
    bench_gptq(inter, hid, Hh); /* gate_proj, up_proj */
    bench_gptq(hid, inter, Hi); /* down_proj */
    bench_stats(hid, big ? 4096 : 16384);
    bench_stats(inter, big ? 2048 : 16384);
    const int64_t qkv[3] = {q, kv, kv}, gu[2] = {inter, inter}, dn[1] = {hid};
    bench_awq(qkv, 3, hid, Hh);
    bench_awq(gu, 2, hid, Hh);
    bench_awq(dn, 1, inter, Hi);
    free(Hh), free(Hi);
    return 0;
}
