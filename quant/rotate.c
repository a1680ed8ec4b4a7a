/* rotate.c - rotation matrices and their products with weights (see qf_rotate.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qf_linalg.h"
#include "qf_rng.h"
#include "qf_rotate.h"

static const char *const qf_rotate_names[] = {[QF_ROTATE_NONE] = "none", [QF_ROTATE_HADAMARD] = "hadamard",
                                              [QF_ROTATE_ORTHOGONAL] = "orthogonal"};

int qf_rotate_kind_from_name(const char *name)
{
    for (int k = QF_ROTATE_NONE; k <= QF_ROTATE_ORTHOGONAL; k++)
        if (strcmp(name, qf_rotate_names[k]) == 0) return k;
    return -1;
}

const char *qf_rotate_kind_name(qf_rotate_kind kind)
{
    return kind >= QF_ROTATE_NONE && kind <= QF_ROTATE_ORTHOGONAL ? qf_rotate_names[kind] : "?";
}

/* ---- Hadamard matrices ---------------------------------------------------------------------- */
static int qf_is_prime(int64_t q)
{
    if (q < 2) return 0;
    for (int64_t d = 2; d * d <= q; d++)
        if (q % d == 0) return 0;
    return 1;
}

/* The order p of the non-Sylvester factor of n = p · 2^k (1 when n is a power of two), or 0
 * when no factorisation into a Sylvester and a Paley order exists.  The smallest p wins: the
 * Paley matrix is built in O(p^2) and its products are dense. */
static int64_t qf_hadamard_factor(int64_t n)
{
    if (n < 1) return 0;
    int64_t p = n;
    while (p % 2 == 0) p /= 2;
    for (; p <= n; p *= 2) {
        if (p == 1) return 1;
        const int64_t q = p - 1;
        if (q % 4 == 3 && qf_is_prime(q)) return p;
        if (n % (2 * p) != 0) break;
    }
    return 0;
}

int qf_rotate_hadamard_order(int64_t n)
{
    return qf_hadamard_factor(n) != 0;
}

/* Paley's first construction: for a prime q = 3 (mod 4), H = I + S of order p = q + 1 with
 * S = [[0, 1ᵀ], [-1, J]], J[i][j] = chi(j - i) the quadratic character mod q.  S is skew and
 * S Sᵀ = q I, so H Hᵀ = p I.  H [p, p] as +-1 bytes. */
static void qf_paley(int64_t p, signed char *H)
{
    const int64_t q = p - 1;
    signed char *chi = calloc((size_t)q, 1);
    for (int64_t a = 1; a < q; a++) chi[(a * a) % q] = 1;
    for (int64_t a = 1; a < q; a++)
        if (!chi[a]) chi[a] = -1;
    for (int64_t i = 0; i < p; i++)
        for (int64_t j = 0; j < p; j++) {
            signed char s;
            if (i == 0) s = j == 0 ? 0 : 1;
            else if (j == 0) s = -1;
            else s = chi[((j - i) % q + q) % q];
            H[i * p + j] = (signed char)(s + (i == j));
        }
    free(chi);
}

static int qf_popcount64(uint64_t x)
{
    int c = 0;
    for (; x; x &= x - 1) c++;
    return c;
}

static qf_status qf_hadamard(int64_t n, uint64_t seed, double *Q, qf_error *err)
{
    const int64_t p = qf_hadamard_factor(n);
    if (!p)
        return qf_fail(err, QF_ERR_UNSUPPORTED,
                       "rotation: no Hadamard matrix of order %lld is built here (orders 2^k times 1 or q+1, q a prime "
                       "= 3 mod 4): use --rotate orthogonal",
                       (long long)n);
    const int64_t m = n / p; /* the Sylvester factor, 2^k */
    signed char *Hp = malloc((size_t)(p * p));
    if (!Hp) return qf_fail(err, QF_ERR_NOMEM, "rotation: out of memory for a Hadamard matrix of order %lld", (long long)n);
    if (p == 1) Hp[0] = 1;
    else qf_paley(p, Hp);
    uint64_t st = seed;
    const double inv = 1.0 / sqrt((double)n);
    /* Q = diag(s) (Hp ⊗ Hm) / sqrt(n): the random signs make the transform data-independent
     * (a plain Hadamard maps some inputs, e.g. a constant row, onto a single channel) */
    for (int64_t i = 0; i < n; i++) {
        const double s = (qf_splitmix64(&st) >> 63) ? -inv : inv;
        const int64_t i1 = i / m, i2 = i % m;
        for (int64_t j = 0; j < n; j++) {
            const int64_t j1 = j / m, j2 = j % m;
            const int h = Hp[i1 * p + j1] * ((qf_popcount64((uint64_t)(i2 & j2)) & 1) ? -1 : 1);
            Q[i * n + j] = h * s;
        }
    }
    free(Hp);
    return QF_OK;
}

/* ---- random orthogonal ---------------------------------------------------------------------- */
/* One standard normal draw (Box-Muller on two 53-bit uniforms in (0, 1]). */
static double qf_gauss(uint64_t *st)
{
    const double u1 = ((double)(qf_splitmix64(st) >> 11) + 1.0) * 0x1p-53;
    const double u2 = (double)(qf_splitmix64(st) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2) /* 2 pi */;
}

/* Q = the Q factor of a Gaussian matrix A = QR (Householder, float64), columns times sign(R_kk):
 * with that sign convention Q is Haar distributed (Mezzadri 2007); without it, it is not. */
static qf_status qf_random_orthogonal(int64_t n, uint64_t seed, double *Q, qf_error *err)
{
    double *A = malloc(sizeof(double) * (size_t)(n * n)), *V = calloc((size_t)(n * n), sizeof(double)),
           *w = malloc(sizeof(double) * (size_t)n), *sg = malloc(sizeof(double) * (size_t)n);
    if (!A || !V || !w || !sg) {
        free(A), free(V), free(w), free(sg);
        return qf_fail(err, QF_ERR_NOMEM, "rotation: out of memory for an orthogonal matrix of order %lld", (long long)n);
    }
    uint64_t st = seed;
    for (int64_t i = 0; i < n * n; i++) A[i] = qf_gauss(&st);
    for (int64_t k = 0; k < n; k++) {
        double nx = 0;
        for (int64_t i = k; i < n; i++) nx += A[i * n + k] * A[i * n + k];
        nx = sqrt(nx);
        const double x0 = A[k * n + k], alpha = x0 >= 0 ? -nx : nx; /* R_kk; the sign avoids cancellation */
        sg[k] = alpha >= 0 ? 1.0 : -1.0;
        double *v = V + k * n; /* v = x - alpha e1, normalised; rows k.. of column k */
        double nv = 0;
        for (int64_t i = k; i < n; i++) v[i] = A[i * n + k] - (i == k ? alpha : 0), nv += v[i] * v[i];
        nv = sqrt(nv);
        if (nv == 0) continue; /* x is already alpha e1: the reflector is the identity */
        for (int64_t i = k; i < n; i++) v[i] /= nv;
        /* A[k:, k:] -= 2 v (vᵀ A[k:, k:]), row by row so that every access is contiguous */
        for (int64_t j = k; j < n; j++) w[j] = 0;
        for (int64_t i = k; i < n; i++)
            for (int64_t j = k; j < n; j++) w[j] += v[i] * A[i * n + j];
        for (int64_t i = k; i < n; i++)
            for (int64_t j = k; j < n; j++) A[i * n + j] -= 2 * v[i] * w[j];
    }
    /* Q = H_0 H_1 ... H_{n-1} I, applied from the last reflector back */
    for (int64_t i = 0; i < n * n; i++) Q[i] = 0;
    for (int64_t i = 0; i < n; i++) Q[i * n + i] = 1;
    for (int64_t k = n - 1; k >= 0; k--) {
        const double *v = V + k * n;
        for (int64_t j = k; j < n; j++) w[j] = 0;
        for (int64_t i = k; i < n; i++)
            for (int64_t j = k; j < n; j++) w[j] += v[i] * Q[i * n + j];
        for (int64_t i = k; i < n; i++)
            for (int64_t j = k; j < n; j++) Q[i * n + j] -= 2 * v[i] * w[j];
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) Q[i * n + j] *= sg[j];
    free(A), free(V), free(w), free(sg);
    return QF_OK;
}

qf_status qf_rotate_matrix(qf_rotate_kind kind, int64_t n, uint64_t seed, double *Q, qf_error *err)
{
    if (n < 1) return qf_fail(err, QF_ERR_USAGE, "rotation: order %lld", (long long)n);
    if (kind == QF_ROTATE_HADAMARD) return qf_hadamard(n, seed, Q, err);
    if (kind == QF_ROTATE_ORTHOGONAL) return qf_random_orthogonal(n, seed, Q, err);
    return qf_fail(err, QF_ERR_USAGE, "rotation: no matrix for kind '%s'", qf_rotate_kind_name(kind));
}

/* ---- products ------------------------------------------------------------------------------- */
#define QF_ROTATE_CHUNK 4096 /* rows of W per product: bounds the copy for an lm_head-sized W */

qf_status qf_rotate_apply(float *W, int64_t rows, int64_t cols, const float *Q, int64_t n, qf_rotate_side side,
                          qf_error *err)
{
    if (n < 1 || (side == QF_ROTATE_COLS ? cols % n : rows % n) != 0)
        return qf_fail(err, QF_ERR_USAGE, "rotation: a [%lld, %lld] weight has no %s blocks of %lld", (long long)rows,
                       (long long)cols, side == QF_ROTATE_COLS ? "column" : "row", (long long)n);
    const int64_t tr = side == QF_ROTATE_COLS ? (rows < QF_ROTATE_CHUNK ? rows : QF_ROTATE_CHUNK) : n;
    const int64_t tc = side == QF_ROTATE_COLS ? n : cols;
    float *T = malloc(sizeof(float) * (size_t)(tr * tc > 0 ? tr * tc : 1));
    if (!T) return qf_fail(err, QF_ERR_NOMEM, "rotation: out of memory for a [%lld, %lld] block", (long long)tr, (long long)tc);
    qf_status s = QF_OK;
    if (side == QF_ROTATE_COLS) {
        for (int64_t r0 = 0; r0 < rows && s == QF_OK; r0 += tr) {
            const int64_t nr = rows - r0 < tr ? rows - r0 : tr;
            for (int64_t c0 = 0; c0 < cols && s == QF_OK; c0 += n) {
                float *blk = W + r0 * cols + c0;
                memset(T, 0, sizeof(float) * (size_t)(nr * n));
                s = qf_sgemm(0, 0, nr, n, n, 1.0f, blk, cols, Q, n, T, n, 0, err);
                for (int64_t r = 0; s == QF_OK && r < nr; r++) memcpy(blk + r * cols, T + r * n, sizeof(float) * (size_t)n);
            }
        }
    } else {
        for (int64_t r0 = 0; r0 < rows && s == QF_OK; r0 += n) {
            float *blk = W + r0 * cols;
            memset(T, 0, sizeof(float) * (size_t)(n * cols));
            s = qf_sgemm(1, 0, n, cols, n, 1.0f, Q, n, blk, cols, T, cols, 0, err);
            if (s == QF_OK) memcpy(blk, T, sizeof(float) * (size_t)(n * cols));
        }
    }
    free(T);
    return s;
}

void qf_rotate_fold_norm(float *W, int64_t rows, int64_t cols, const float *g)
{
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < cols; j++) W[r * cols + j] *= g[j];
}
