/* qf_calib_fixture.h - internal to tests/test_gptq.c and tests/test_awq.c: seeded random
 * matrices with correlated inputs, naive float64 references (XᵀX, output error), and
 * helpers to allocate a quant plan's buffers and view them as a qf_packed_weight. */
#ifndef QF_CALIB_FIXTURE_H
#define QF_CALIB_FIXTURE_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qf_dequant.h"
#include "qf_quantize.h"
#include "qf_rng.h"

/* splitmix64 -> uniform (0, 1) -> normal (Box-Muller): the same numbers on every platform. */
typedef struct fx_rng {
    uint64_t s;
} fx_rng;
static inline uint64_t fx_next(fx_rng *r)
{
    return qf_splitmix64(&r->s);
}
static inline double fx_unif(fx_rng *r) { return ((double)(fx_next(r) >> 11) + 0.5) / 9007199254740992.0; }
static inline double fx_normal(fx_rng *r)
{
    double u = fx_unif(r), v = fx_unif(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* W [rows, cols]: N(0, 1) * 0.02 (a typical Linear init scale). */
static inline float *fx_weights(int64_t rows, int64_t cols, uint64_t seed)
{
    fx_rng r = {seed};
    float *w = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) w[i] = (float)(0.02 * fx_normal(&r));
    return w;
}

/* X [n, cols] = Z A with Z ~ N(0, 1) [n, cols] and a random mixing A = 0.3 I + G / sqrt(cols),
 * G ~ N(0, 1): every input channel is correlated with every other, so XᵀX is far from
 * diagonal (as LLM activations are).  n_outliers channels (every cols / n_outliers-th, from
 * 3) are then multiplied by outlier_gain. */
static inline float *fx_inputs(int64_t n, int64_t cols, uint64_t seed, int n_outliers, float outlier_gain)
{
    fx_rng r = {seed};
    double *A = malloc(sizeof(double) * (size_t)(cols * cols));
    for (int64_t i = 0; i < cols * cols; i++) A[i] = fx_normal(&r) / sqrt((double)cols);
    for (int64_t i = 0; i < cols; i++) A[i * cols + i] += 0.3;
    double *z = malloc(sizeof(double) * (size_t)cols);
    float *X = malloc(sizeof(float) * (size_t)(n * cols));
    for (int64_t t = 0; t < n; t++) {
        for (int64_t k = 0; k < cols; k++) z[k] = fx_normal(&r);
        for (int64_t j = 0; j < cols; j++) {
            double s = 0;
            for (int64_t k = 0; k < cols; k++) s += z[k] * A[k * cols + j];
            X[t * cols + j] = (float)s;
        }
    }
    for (int o = 0; o < n_outliers; o++) {
        int64_t j = (3 + (int64_t)o * (cols / n_outliers)) % cols;
        for (int64_t t = 0; t < n; t++) X[t * cols + j] *= outlier_gain;
    }
    free(A);
    free(z);
    return X;
}

/* H = XᵀX in float64, naive. */
static inline double *fx_xtx(const float *X, int64_t n, int64_t cols)
{
    double *H = calloc((size_t)(cols * cols), sizeof(double));
    for (int64_t t = 0; t < n; t++) {
        const float *x = X + t * cols;
        for (int64_t i = 0; i < cols; i++) {
            const double xi = x[i];
            double *h = H + i * cols;
            for (int64_t j = 0; j < cols; j++) h[j] += xi * (double)x[j];
        }
    }
    return H;
}

/* ||(W - Q) X^T||_F^2 in float64: the squared output error over the n inputs.
 * Qeff[r, j] = Q[r, j] / (qdiv ? qdiv[j] : 1) (AWQ: the stored weights see x / s). */
static inline double fx_out_err(const float *W, const float *Q, const float *qdiv, const float *X, int64_t rows,
                                int64_t cols, int64_t n)
{
    double *d = malloc(sizeof(double) * (size_t)cols), tot = 0;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t j = 0; j < cols; j++)
            d[j] = (double)W[r * cols + j] - (double)Q[r * cols + j] / (qdiv ? (double)qdiv[j] : 1.0);
        for (int64_t t = 0; t < n; t++) {
            const float *x = X + t * cols;
            double s = 0;
            for (int64_t j = 0; j < cols; j++) s += d[j] * (double)x[j];
            tot += s * s;
        }
    }
    free(d);
    return tot;
}

/* Buffers for a plan (zeroed), freed by fx_free_buffers. */
static inline void fx_alloc_buffers(const qf_quant_plan *plan, qf_quant_buffers *b)
{
    memset(b, 0, sizeof *b);
    for (int i = 0; i < plan->n; i++) b->data[i] = calloc(1, (size_t)plan->t[i].nbytes);
}
static inline void fx_free_buffers(const qf_quant_plan *plan, qf_quant_buffers *b)
{
    for (int i = 0; i < plan->n; i++) free(b->data[i]);
    memset(b, 0, sizeof *b);
}
/* 1 when every buffer of the plan is byte-identical. */
static inline int fx_same_buffers(const qf_quant_plan *plan, const qf_quant_buffers *a, const qf_quant_buffers *b)
{
    for (int i = 0; i < plan->n; i++)
        if (memcmp(a->data[i], b->data[i], (size_t)plan->t[i].nbytes)) return 0;
    return 1;
}

/* Decode the packed tensors of a plan into Q [rows, cols]. */
static inline void fx_dequant(const qf_scheme *s, const qf_quant_plan *plan, const qf_quant_buffers *b, int64_t rows,
                              int64_t cols, float *Q)
{
    qf_packed_weight w = {0};
    w.scheme = s;
    w.rows = rows;
    w.cols = cols;
    w.weight = b->data[qf_quant_plan_find(plan, QF_ROLE_WEIGHT)];
    w.scale = b->data[qf_quant_plan_find(plan, QF_ROLE_SCALE)];
    w.scale_dtype = plan->t[qf_quant_plan_find(plan, QF_ROLE_SCALE)].dtype;
    int z = qf_quant_plan_find(plan, QF_ROLE_ZERO), g = qf_quant_plan_find(plan, QF_ROLE_GLOBAL);
    w.zero = z >= 0 ? b->data[z] : NULL;
    w.global_scale = 1.0f;
    if (g >= 0) memcpy(&w.global_scale, b->data[g], sizeof(float));
    qf_dequant_rows(&w, 0, rows, Q);
}

#endif /* QF_CALIB_FIXTURE_H */
