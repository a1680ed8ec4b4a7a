/* smooth.c - SmoothQuant scales and scale folding (see qf_smooth.h). */
#include <math.h>
#include <omp.h>

#include "qf_smooth.h"

qf_status qf_smooth_scales(const float *act_absmax, int64_t cols, const qf_weight_ref *lin, int n_lin, float alpha,
                           float *s, qf_error *err)
{
    if (!act_absmax || !s || !lin || n_lin <= 0 || cols <= 0 || !(alpha >= 0.0f && alpha <= 1.0f))
        return qf_fail(err, QF_ERR_USAGE, "smoothquant: bad arguments (cols %lld, %d Linears, alpha %g)",
                       (long long)cols, n_lin, (double)alpha);
    for (int k = 0; k < n_lin; k++)
        if (!lin[k].w || lin[k].rows <= 0) return qf_fail(err, QF_ERR_USAGE, "smoothquant: Linear %d has no weight", k);
    for (int64_t j = 0; j < cols; j++)
        if (!isfinite(act_absmax[j]) || act_absmax[j] < 0)
            return qf_fail(err, QF_ERR_USAGE, "smoothquant: activation absmax of channel %lld is %g", (long long)j,
                           (double)act_absmax[j]);
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < cols; j++) s[j] = 0.0f;
    /* column maxima: rows in parallel per Linear would race on s; columns in parallel instead */
    for (int k = 0; k < n_lin; k++) {
        const float *w = lin[k].w;
        const int64_t rows = lin[k].rows;
#pragma omp parallel
        {
            const int nt = omp_get_num_threads(), id = omp_get_thread_num();
            const int64_t j0 = cols * id / nt, j1 = cols * (id + 1) / nt;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t j = j0; j < j1; j++) {
                    float a = fabsf(w[r * cols + j]);
                    if (a > s[j]) s[j] = a;
                }
        }
    }
    for (int64_t j = 0; j < cols; j++) {
        float wmax = s[j], amax = act_absmax[j];
        if (!(wmax > 0.0f) || !(amax > 0.0f)) {
            s[j] = 1.0f;
            continue;
        }
        if (wmax < 1e-5f) wmax = 1e-5f;
        float v = (float)(pow((double)amax, (double)alpha) / pow((double)wmax, 1.0 - (double)alpha));
        s[j] = v < 1e-5f ? 1e-5f : v;
    }
    return QF_OK;
}

void qf_smooth_scale_columns(float *W, int64_t rows, int64_t cols, const float *s)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) W[r * cols + j] *= s[j];
}

void qf_smooth_div_rows(float *W, int64_t rows, int64_t cols, const float *s)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) W[r * cols + j] /= s[r];
}

void qf_smooth_stats(double *H, float *v, int64_t cols, const float *s)
{
    if (H) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < cols; i++)
            for (int64_t j = 0; j < cols; j++) H[i * cols + j] /= (double)s[i] * (double)s[j];
    }
    if (v)
        for (int64_t j = 0; j < cols; j++) v[j] /= s[j];
}
