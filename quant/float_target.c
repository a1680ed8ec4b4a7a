/* float_target.c - the float-path target of calibration (see qf_float_target.h).
 *
 * With A = H + lambda I = L L^T (Cholesky) and M = P - H, W M A^-1 = ((W M) L^-T) L^-1.
 * Two orders: per weight (W M, then the two triangular factors: 3 rows cols^2 flops) or
 * once per input (M A^-1: 2 cols^3, then W (M A^-1): rows cols^2 per weight).  The cheaper
 * is taken; both are float64 products in a fixed order, so the result does not depend on
 * the number of threads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qf_float_target.h"
#include "qf_linalg.h"

/* dst (rows, cols) double = src float */
static void qf_widen(const float *src, int64_t n, double *dst)
{
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}

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
    const uint64_t c2 = (uint64_t)(cols * cols);
    return 8 * c2 + (qf_m_first(rsum, cols) ? 16 * c2 + 16 * (uint64_t)(rmax * cols) : 24 * (uint64_t)(rmax * cols)) +
           4 * (uint64_t)(rsum * cols);
}

qf_status qf_float_target(float **W, const int64_t *rows, int n, int64_t cols, const double *H, double *P,
                          float percdamp, double *shift, qf_error *err)
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
    double *Lf = malloc(sizeof(double) * (size_t)CC), *M = P, /* P - H, in place */
           *T = malloc(sizeof(double) * (size_t)(m_first ? CC : rmax * C)),
           *X = m_first ? malloc(sizeof(double) * (size_t)CC) : NULL, *Wd = malloc(sizeof(double) * (size_t)(rmax * C)),
           *D = malloc(sizeof(double) * (size_t)(rmax * C));
    float **out = calloc((size_t)n, sizeof *out);
    qf_status st = QF_OK;
    if (!Lf || !T || (m_first && !X) || !Wd || !D || !out) {
        st = qf_fail(err, QF_ERR_NOMEM, "float target: out of memory for a %lld-wide input", (long long)C);
        goto done;
    }
    memcpy(Lf, H, sizeof(double) * (size_t)CC);
    for (int64_t i = 0; i < C; i++) Lf[i * C + i] += lambda;
    int64_t bad = qf_cholesky_lower(Lf, C, C, &st, err);
    if (st) goto done;
    if (bad) {
        st = qf_fail(err, QF_ERR_FORMAT, "float target: H + %g I is not positive definite (minor %lld)", lambda,
                     (long long)bad);
        goto done;
    }
    if ((st = qf_trtri_lower(Lf, C, C, err))) goto done; /* Lf = L^-1 */
    for (int64_t i = 0; i < CC; i++) M[i] = P[i] - H[i];
    if (m_first) { /* X = (M L^-T) L^-1 */
        memset(T, 0, sizeof(double) * (size_t)CC);
        if ((st = qf_dgemm(0, 1, C, C, C, 1.0, M, C, Lf, C, T, C, 0, err))) goto done;
        memset(X, 0, sizeof(double) * (size_t)CC);
        if ((st = qf_dgemm(0, 0, C, C, C, 1.0, T, C, Lf, C, X, C, 0, err))) goto done;
    }
    for (int i = 0; i < n; i++) {
        const int64_t R = rows[i], RC = R * C;
        if (!(out[i] = malloc(sizeof(float) * (size_t)RC))) {
            st = qf_fail(err, QF_ERR_NOMEM, "float target: out of memory");
            goto done;
        }
        qf_widen(W[i], RC, Wd);
        memset(D, 0, sizeof(double) * (size_t)RC); /* the update W M A^-1 */
        if (m_first) {
            if ((st = qf_dgemm(0, 0, R, C, C, 1.0, Wd, C, X, C, D, C, 0, err))) goto done;
        } else {
            memset(T, 0, sizeof(double) * (size_t)RC);
            if ((st = qf_dgemm(0, 0, R, C, C, 1.0, Wd, C, M, C, T, C, 0, err))) goto done;  /* W M */
            memset(Wd, 0, sizeof(double) * (size_t)RC);
            if ((st = qf_dgemm(0, 1, R, C, C, 1.0, T, C, Lf, C, Wd, C, 0, err))) goto done; /* (W M) L^-T */
            if ((st = qf_dgemm(0, 0, R, C, C, 1.0, Wd, C, Lf, C, D, C, 0, err))) goto done;  /* ... L^-1 */
        }
        for (int64_t j = 0; j < RC; j++) out[i][j] = (float)((double)W[i][j] + D[j]);
    }
    double num = 0, den = 0;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < rows[i] * C; j++) {
            const double d = (double)out[i][j] - W[i][j];
            num += d * d, den += (double)W[i][j] * W[i][j];
        }
    if (!qf_all_finite(&num, 1)) {
        st = qf_fail(err, QF_ERR_FORMAT, "float target: the retargeted weights are not finite");
        goto done;
    }
    for (int i = 0; i < n; i++) memcpy(W[i], out[i], sizeof(float) * (size_t)(rows[i] * C));
    if (shift) *shift = den > 0 ? sqrt(num / den) : 0;
done:
    for (int i = 0; out && i < n; i++) free(out[i]);
    free(out), free(Lf), free(T), free(X), free(Wd), free(D);
    return st;
}
