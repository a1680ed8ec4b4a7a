/* float_target.c - the float-path target of calibration (see qf_float_target.h).
 *
 * With A = H + lambda I and U the upper factor of A^-1 = U^T U (GPTQ's own factor,
 * qf_gptq_factor, so a GPU factor can take its place), and M = P - H:
 *     W M A^-1 = ((W M) U^T) U.
 * Two orders: per weight (W M, then U^T, then U: 3 rows cols^2 flops) or once per input
 * (X = (M U^T) U: 2 cols^3, then W X: rows cols^2 per weight); the cheaper is taken.  The
 * factor is float64 (like GPTQ's); the products are float32, ample for an update that is a
 * few % of W, and each is one y = x w^T so a GPU product can take their place.  On the CPU
 * every product is qf_sgemm (fixed order): the result does not depend on the thread count.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qf_float_target.h"
#include "qf_linalg.h"

static int qf_all_finite(const double *a, int64_t n)
{
    int ok = 1;
#pragma omp parallel for reduction(&& : ok) schedule(static)
    for (int64_t i = 0; i < n; i++) ok = ok && isfinite(a[i]);
    return ok;
}

/* The cheaper order: M A^-1 once (2 C^3 + R C^2 flops) when the rows add up to at least C. */
static int qf_m_first(int64_t rsum, int64_t cols) { return rsum >= cols; }

uint64_t qf_float_target_bytes(const int64_t *rows, int n, int64_t cols)
{
    int64_t rmax = 0, rsum = 0;
    for (int i = 0; i < n; i++) rmax = rows[i] > rmax ? rows[i] : rmax, rsum += rows[i];
    const uint64_t c2 = (uint64_t)(cols * cols), rc = (uint64_t)(rmax * cols);
    const uint64_t factor = 12 * c2, /* A (float64) and U */
        products = qf_m_first(rsum, cols) ? 20 * c2 + 4 * rc : 12 * c2 + 12 * rc; /* U Ut M (T1 T2) D */
    return (factor > products ? factor : products) + 4 * (uint64_t)(rsum * cols);
}

/* y (m, n) = x (m, k) w (n, k)^T, y overwritten. */
static qf_status qf_ft_gemm(const qf_float_target_ops *ops, int64_t m, int64_t n, int64_t k, const float *x,
                            const float *w, float *y, qf_error *err)
{
    if (ops && ops->gemm_nt) return ops->gemm_nt(m, n, k, x, k, w, y, n, err);
    memset(y, 0, sizeof(float) * (size_t)(m * n));
    return qf_sgemm(0, 1, m, n, k, 1.0f, x, k, w, k, y, n, 0, err);
}

/* dst (n, n) = src^T */
static void qf_ft_transpose(const float *src, int64_t n, float *dst)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) dst[j * n + i] = src[i * n + j];
}

qf_status qf_float_target(float **W, const int64_t *rows, int n, int64_t cols, const double *H, const double *P,
                          float percdamp, const qf_float_target_ops *ops, double *shift, qf_error *err)
{
    if (shift) *shift = 0;
    if (n <= 0 || cols <= 0 || !(percdamp > 0))
        return qf_fail(err, QF_ERR_USAGE, "float target: bad arguments (n %d, cols %lld, percdamp %g)", n,
                       (long long)cols, (double)percdamp);
    const int64_t C = cols, CC = cols * cols;
    if (!qf_all_finite(H, CC) || !qf_all_finite(P, CC))
        return qf_fail(err, QF_ERR_FORMAT, "float target: the Hessian or the cross product is not finite");
    double mean = 0;
    for (int64_t i = 0; i < C; i++) mean += H[i * C + i];
    mean /= (double)C;
    if (!(mean > 0)) return QF_OK; /* no tokens: nothing to aim at */
    const double lambda = percdamp * mean;
    int64_t rmax = 0, rsum = 0;
    for (int i = 0; i < n; i++) rmax = rows[i] > rmax ? rows[i] : rmax, rsum += rows[i];
    const int m_first = qf_m_first(rsum, C);
    /* the factor's A is freed before the products' buffers are made (qf_float_target_bytes) */
    float *U = malloc(sizeof(float) * (size_t)CC), *Ut = NULL, *Mx = NULL, *T1 = NULL, *T2 = NULL, *D = NULL;
    double *A = malloc(sizeof(double) * (size_t)CC);
    float **out = calloc((size_t)n, sizeof *out);
    qf_status st = QF_OK;
    if (!U || !A || !out) {
        st = qf_fail(err, QF_ERR_NOMEM, "float target: out of memory for a %lld-wide input", (long long)C);
        goto done;
    }
    memcpy(A, H, sizeof(double) * (size_t)CC);
    for (int64_t i = 0; i < C; i++) A[i * C + i] += lambda;
    int64_t bad = (ops && ops->factor ? ops->factor : qf_gptq_factor)(A, C, U, &st, err); /* A^-1 = U^T U */
    free(A), A = NULL;
    if (st) goto done;
    if (bad) {
        st = qf_fail(err, QF_ERR_FORMAT, "float target: H + %g I is not positive definite (minor %lld)", lambda,
                     (long long)bad);
        goto done;
    }
    Ut = malloc(sizeof(float) * (size_t)CC), Mx = malloc(sizeof(float) * (size_t)CC); /* Mx: M (m_first) or M^T */
    const int64_t tn = m_first ? CC : rmax * C;
    T1 = malloc(sizeof(float) * (size_t)tn), T2 = malloc(sizeof(float) * (size_t)tn);
    D = malloc(sizeof(float) * (size_t)(rmax * C));
    if (!Ut || !Mx || !T1 || !T2 || !D) {
        st = qf_fail(err, QF_ERR_NOMEM, "float target: out of memory for a %lld-wide input", (long long)C);
        goto done;
    }
    qf_ft_transpose(U, C, Ut);
#pragma omp parallel for schedule(static)
    for (int64_t a = 0; a < C; a++)
        for (int64_t b = 0; b < C; b++) {
            const float m = (float)(P[a * C + b] - H[a * C + b]);
            if (m_first) Mx[a * C + b] = m;
            else Mx[b * C + a] = m;
        }
    if (m_first) { /* T2 = (M A^-1)^T, the w of W (M A^-1) */
        if ((st = qf_ft_gemm(ops, C, C, C, Mx, U, T1, err))) goto done;  /* M U^T */
        if ((st = qf_ft_gemm(ops, C, C, C, T1, Ut, Mx, err))) goto done; /* (M U^T) U */
        qf_ft_transpose(Mx, C, T2);
    }
    for (int i = 0; i < n; i++) {
        const int64_t R = rows[i], RC = R * C;
        if (!(out[i] = malloc(sizeof(float) * (size_t)RC))) {
            st = qf_fail(err, QF_ERR_NOMEM, "float target: out of memory");
            goto done;
        }
        if (m_first) {
            if ((st = qf_ft_gemm(ops, R, C, C, W[i], T2, D, err))) goto done;
        } else {
            if ((st = qf_ft_gemm(ops, R, C, C, W[i], Mx, T1, err))) goto done; /* W M */
            if ((st = qf_ft_gemm(ops, R, C, C, T1, U, T2, err))) goto done;    /* (W M) U^T */
            if ((st = qf_ft_gemm(ops, R, C, C, T2, Ut, D, err))) goto done;    /* ... U */
        }
        for (int64_t j = 0; j < RC; j++) out[i][j] = W[i][j] + D[j];
    }
    double num = 0, den = 0;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < rows[i] * C; j++) {
            const double d = (double)out[i][j] - W[i][j];
            num += d * d, den += (double)W[i][j] * W[i][j];
        }
    if (!isfinite(num)) {
        st = qf_fail(err, QF_ERR_FORMAT, "float target: the retargeted weights are not finite");
        goto done;
    }
    for (int i = 0; i < n; i++) memcpy(W[i], out[i], sizeof(float) * (size_t)(rows[i] * C));
    if (shift) *shift = den > 0 ? sqrt(num / den) : 0;
done:
    for (int i = 0; out && i < n; i++) free(out[i]);
    free(out), free(A), free(U), free(Ut), free(Mx), free(T1), free(T2), free(D);
    return st;
}
