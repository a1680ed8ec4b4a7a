/* qf_rotate.h - orthogonal rotations folded offline into weights (QuaRot / SpinQuant style).
 *
 * Owns the matrices and the two products a rotation needs; which tensors get which product
 * is the model's business (calib/calibrate/qf_rotate_model.h).  Why rotate: an orthogonal Q
 * on the residual stream (x -> x Q, every reader W -> W Q, every writer W -> Qᵀ W) leaves the
 * float model's function unchanged, but spreads each outlier channel over all channels, so
 * weights and activations become easier to round at 4 bits.
 *
 * Matrices, deterministic by (kind, n, seed), float64, row-major, Qᵀ Q = I:
 *   QF_ROTATE_HADAMARD   diag(s) H / sqrt(n), s random signs, H a Hadamard matrix of order n.
 *                        Orders built here: 2^k (Sylvester) times 1 or q + 1 for a prime
 *                        q = 3 (mod 4) (Paley's first construction), e.g. 12 · 32 = 384,
 *                        20 · 256 = 5120, 224 · 16 = 3584.  Other orders: QF_ERR_UNSUPPORTED.
 *   QF_ROTATE_ORTHOGONAL a random orthogonal matrix (Haar): Householder QR of a Gaussian
 *                        matrix, columns signed so that R has a positive diagonal.  Any n;
 *                        O(n^3) (about a minute at n = 4096).
 * The random numbers are SplitMix64 (qf_rng.h) from the seed, so a seed means one matrix.
 */
#ifndef QF_ROTATE_H
#define QF_ROTATE_H

#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Values reach the manifest by name only (qf_rotate_kind_name), never by number. */
typedef enum qf_rotate_kind {
    QF_ROTATE_NONE = 0,
    QF_ROTATE_HADAMARD = 1,
    QF_ROTATE_ORTHOGONAL = 2,
} qf_rotate_kind;

/* "none", "hadamard", "orthogonal" -> kind; -1 when unknown. */
int qf_rotate_kind_from_name(const char *name);
const char *qf_rotate_kind_name(qf_rotate_kind kind);

/* 1 when a Hadamard matrix of order n can be built here (see above), else 0. */
int qf_rotate_hadamard_order(int64_t n);

/* Q [n, n] (float64, caller-allocated) = the rotation of the given kind and seed.
 * Errors: QF_ERR_UNSUPPORTED (no Hadamard of order n), QF_ERR_USAGE (n < 1, kind none),
 * QF_ERR_NOMEM (workspace). */
qf_status qf_rotate_matrix(qf_rotate_kind kind, int64_t n, uint64_t seed, double *Q, qf_error *err);

/* Which side of W a block-diagonal rotation diag(Q, Q, ...) multiplies (Q [n, n]). */
typedef enum qf_rotate_side {
    QF_ROTATE_COLS = 1, /* W [rows, cols] <- W diag(Q, ...): cols = b·n, a reader of the rotated input */
    QF_ROTATE_ROWS = 2, /* W [rows, cols] <- diag(Q, ...)ᵀ W: rows = b·n, a writer of the rotated output
                         * (a bias is a [rows, 1] W) */
} qf_rotate_side;

/* W (float32, in place) rotated on `side` by the float32 Q [n, n].  Products are float32
 * (qf_sgemm: deterministic for any thread count), a few ulps from the exact rotation.
 * Errors: QF_ERR_USAGE (cols or rows not a multiple of n), QF_ERR_NOMEM (a copy of one block
 * of W). */
qf_status qf_rotate_apply(float *W, int64_t rows, int64_t cols, const float *Q, int64_t n, qf_rotate_side side,
                          qf_error *err);

/* W [rows, cols] <- W diag(g): an RMSNorm weight g (cols) folded into a Linear that reads the
 * norm's output, so the norm's own weight can become 1 (a weightless RMSNorm commutes with an
 * orthogonal map; a weighted one does not). */
void qf_rotate_fold_norm(float *W, int64_t rows, int64_t cols, const float *g);

#ifdef __cplusplus
}
#endif

#endif /* QF_ROTATE_H */
