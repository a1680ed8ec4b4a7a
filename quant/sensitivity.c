/* sensitivity.c - Hessian-diagonal rounding error of one Linear per scheme (qf_sensitivity.h). */
#include <math.h>
#include <stdlib.h>

#include "qf_quantize.h"
#include "qf_sensitivity.h"

double qf_sens_error(const qf_scheme *s, const float *W, int64_t rows, int64_t cols, const double *hdiag,
                     float tensor_amax, double *energy)
{
    if (energy) {
        double e = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < cols; j++) e += hdiag[j] * (double)W[r * cols + j] * (double)W[r * cols + j];
        *energy = e;
    }
    if (!s) return 0;
    if (!qf_scheme_fits(s, rows, cols)) return -1;
    float amax = tensor_amax;
    if (!(amax > 0)) {
        amax = 0;
        for (int64_t i = 0; i < rows * cols; i++) amax = fabsf(W[i]) > amax ? fabsf(W[i]) : amax;
    }
    const float G = s->has_global_scale ? qf_nvfp4_global_scale(amax) : 1.0f;
    const int64_t gs = s->group_size ? s->group_size : cols;
    const int steps = qf_rtn_clip_default(s);
    /* rows are summed into per-row slots, then in row order: the same total for any thread count */
    double *row_err = calloc((size_t)rows, sizeof *row_err);
    if (!row_err) return -1;
#pragma omp parallel
    {
        float *deq = malloc(sizeof(float) * (size_t)gs);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            double e = 0;
            for (int64_t g0 = 0; deq && g0 < cols; g0 += gs) {
                const float *x = W + r * cols + g0;
                const qf_group_params p = qf_group_params_search(s, x, (int)gs, G, NULL, steps, 0.75f);
                qf_quant_dequant(s, &p, x, gs, deq);
                for (int64_t j = 0; j < gs; j++) {
                    const double d = (double)deq[j] - (double)x[j];
                    e += hdiag[g0 + j] * d * d;
                }
            }
            row_err[r] = deq ? e : NAN;
        }
        free(deq);
    }
    double total = 0;
    for (int64_t r = 0; r < rows; r++) total += row_err[r];
    free(row_err);
    return isfinite(total) ? total : -1;
}
