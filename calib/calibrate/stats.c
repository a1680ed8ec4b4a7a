/* stats.c - streaming input statistics of a Linear (see qf_stats.h). */
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "qf_linalg.h"
#include "qf_fmt.h"
#include "qf_quantize.h"
#include "qf_stats.h"

qf_status qf_stats_init(qf_stats *st, int64_t cols, unsigned flags, qf_error *err)
{
    memset(st, 0, sizeof *st);
    if (cols <= 0) return qf_fail(err, QF_ERR_USAGE, "stats: bad width %lld", (long long)cols);
    st->cols = cols;
    st->flags = flags;
    st->absmax = calloc((size_t)cols, sizeof(float));
    st->xmin = calloc((size_t)cols, sizeof(float));
    st->xmax = calloc((size_t)cols, sizeof(float));
    st->abssum = calloc((size_t)cols, sizeof(double));
    st->sqsum = calloc((size_t)cols, sizeof(double));
    int ok = st->absmax && st->xmin && st->xmax && st->abssum && st->sqsum;
    if (ok && (flags & QF_STATS_CROSS) && !(flags & QF_STATS_XTX)) {
        qf_stats_free(st);
        return qf_fail(err, QF_ERR_USAGE, "stats: the cross product needs QF_STATS_XTX");
    }
    if (ok && (flags & QF_STATS_XTX)) {
        st->xtx = calloc((size_t)(cols * cols), sizeof(double));
        st->pending = malloc(sizeof(float) * (size_t)(QF_STATS_CHUNK * cols));
        ok = st->xtx && st->pending;
        if (ok && (flags & QF_STATS_CROSS)) {
            st->cross = calloc((size_t)(cols * cols), sizeof(double));
            st->pending_ref = malloc(sizeof(float) * (size_t)(QF_STATS_CHUNK * cols));
            ok = st->cross && st->pending_ref;
        }
        qf_error gerr;
        if (ok && cols >= QF_STATS_GPU_MIN_COLS && qf_gpu_calib_enabled() &&
            qf_gpu_xtx_create(cols, st->cross != NULL, &st->gpu, &gerr) != QF_OK)
            st->gpu = NULL; /* no room on the GPU: this sum stays on the CPU */
    }
    if (!ok) {
        qf_stats_free(st);
        return qf_fail(err, QF_ERR_NOMEM, "stats: out of memory for %lld input channels", (long long)cols);
    }
    return QF_OK;
}

void qf_stats_free(qf_stats *st)
{
    if (!st) return;
    free(st->absmax);
    free(st->xmin);
    free(st->xmax);
    free(st->abssum);
    free(st->sqsum);
    free(st->xtx);
    free(st->pending);
    free(st->cross);
    free(st->pending_ref);
    qf_gpu_xtx_free(st->gpu);
    memset(st, 0, sizeof *st);
}

static qf_status qf_stats_flush(qf_stats *st, qf_error *err)
{
    if (!st->n_pending) return QF_OK;
    qf_status s;
    if (st->gpu)
        s = st->cross ? qf_gpu_xtx_add_pair(st->gpu, st->pending, st->pending_ref, st->n_pending, err)
                      : qf_gpu_xtx_add(st->gpu, st->pending, st->n_pending, err);
    else
        s = qf_syrk_acc(st->n_pending, st->cols, st->pending, st->cols, st->xtx, st->cols, err);
    if (s == QF_OK && st->cross && !st->gpu)
        s = qf_gemm_tn_acc(st->n_pending, st->cols, st->cols, st->pending_ref, st->cols, st->pending, st->cols, st->cross,
                           st->cols, err);
    st->n_pending = 0;
    return s;
}

/* Per-channel statistics of rows X[n] (all finite): columns split between threads, rows in
 * order within a column, so the sums do not depend on the thread count. */
static void qf_stats_channels(qf_stats *st, const float *X, int64_t n, const uint8_t *skip)
{
    const int64_t cols = st->cols;
    const int first = st->count == 0;
#pragma omp parallel
    {
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
        const int64_t c0 = cols * id / nt, c1 = cols * (id + 1) / nt;
        int seen = !first;
        for (int64_t r = 0; r < n; r++) {
            if (skip && skip[r]) continue;
            const float *x = X + r * cols;
            if (!seen) { /* min / max start at the first row */
                for (int64_t c = c0; c < c1; c++) st->xmin[c] = st->xmax[c] = x[c];
                seen = 1;
            }
            for (int64_t c = c0; c < c1; c++) {
                const float v = x[c], a = fabsf(v);
                if (a > st->absmax[c]) st->absmax[c] = a;
                if (v < st->xmin[c]) st->xmin[c] = v;
                if (v > st->xmax[c]) st->xmax[c] = v;
                st->abssum[c] += a;
                st->sqsum[c] += (double)v * (double)v;
            }
        }
    }
}

/* 1 when row x (cols) has a NaN or Inf (the sum of x * 0 is NaN iff so) */
static int qf_row_nonfinite(const float *x, int64_t cols)
{
    float acc = 0;
    for (int64_t c = 0; c < cols; c++) acc += x[c] * 0.0f;
    return acc != 0.0f;
}

static qf_status qf_stats_add_rows(qf_stats *st, const float *X, const float *R, int64_t n, qf_error *err)
{
    if (n <= 0) return QF_OK;
    const int64_t cols = st->cols;
    /* rows with NaN / Inf would poison every sum: skip them, remember it */
    uint8_t *skip = NULL;
    int64_t nbad = 0;
#pragma omp parallel for schedule(static) reduction(+ : nbad)
    for (int64_t r = 0; r < n; r++)
        if (qf_row_nonfinite(X + r * cols, cols) || (R && qf_row_nonfinite(R + r * cols, cols))) nbad++;
    if (nbad) {
        skip = calloc((size_t)n, 1);
        if (!skip) return qf_fail(err, QF_ERR_NOMEM, "stats: out of memory");
        for (int64_t r = 0; r < n; r++)
            skip[r] = (uint8_t)(qf_row_nonfinite(X + r * cols, cols) || (R && qf_row_nonfinite(R + r * cols, cols)));
        st->nonfinite = 1;
    }
    qf_stats_channels(st, X, n, skip);
    st->count += n - nbad;
    qf_status s = QF_OK;
    if (st->xtx) {
        for (int64_t r = 0; r < n && s == QF_OK; r++) {
            if (skip && skip[r]) continue;
            memcpy(st->pending + st->n_pending * cols, X + r * cols, sizeof(float) * (size_t)cols);
            if (R) memcpy(st->pending_ref + st->n_pending * cols, R + r * cols, sizeof(float) * (size_t)cols);
            if (++st->n_pending == QF_STATS_CHUNK) s = qf_stats_flush(st, err);
        }
    }
    free(skip);
    return s;
}

qf_status qf_stats_add(qf_stats *st, const float *X, int64_t n, qf_error *err)
{
    if (st->cross) return qf_fail(err, QF_ERR_USAGE, "stats: this accumulator takes rows in pairs (qf_stats_add_pair)");
    return qf_stats_add_rows(st, X, NULL, n, err);
}

qf_status qf_stats_add_pair(qf_stats *st, const float *X, const float *R, int64_t n, qf_error *err)
{
    if (!st->cross) return qf_fail(err, QF_ERR_USAGE, "stats: qf_stats_add_pair needs QF_STATS_CROSS");
    return qf_stats_add_rows(st, X, R, n, err);
}

qf_status qf_stats_finish(qf_stats *st, qf_error *err)
{
    if (!st->xtx) return QF_OK;
    QF_TRY(qf_stats_flush(st, err));
    if (st->gpu) QF_TRY(qf_gpu_xtx_read(st->gpu, st->xtx, st->cross, err));
    const int64_t cols = st->cols;
    double *h = st->xtx;
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t i = 0; i < cols; i++)
        for (int64_t j = i + 1; j < cols; j++) h[i * cols + j] = h[j * cols + i];
    return QF_OK;
}

void qf_stats_mean_abs(const qf_stats *st, float *out)
{
    for (int64_t c = 0; c < st->cols; c++) out[c] = st->count ? (float)(st->abssum[c] / (double)st->count) : 0.0f;
}

float qf_stats_amax(const qf_stats *st)
{
    float m = 0;
    for (int64_t c = 0; c < st->cols; c++) m = qf_fmaxf(m, st->absmax[c]);
    return m;
}

float qf_stats_input_scale(const qf_stats *st, const qf_scheme *s)
{
    const float amax = qf_stats_amax(st);
    switch (s->act) {
    case QF_ACT_FP8_STATIC: return qf_fp8_act_static_scale(amax);
    case QF_ACT_NVFP4: return qf_nvfp4_global_scale(amax);
    default: return 0.0f;
    }
}
