/* gptq_descent.c - coordinate descent on GPTQ's codes (see qf_gptq_descent.h).
 *
 * With e = w0 - q and u = H e, changing one weight q_j by d changes the row's output error
 *     f = e^T H e   by   -2 d u_j + d^2 H_jj,
 * which is smallest at d = u_j / H_jj: the best code for weight j, the others fixed, is the
 * one whose value is nearest to t = q_j + u_j / H_jj, i.e. exactly what rounding t under the
 * group's parameters gives (qf_quant_value: nearest value, clamped to the code range).  A move
 * is kept when it lowers f; then u -= d H[:, j] (cols multiply-adds).  A sweep visits every
 * column once in order; rows are independent, so threads take rows.  When a sweep moves
 * nothing (int4 / int8), a pair pass tries each weight one level up or down together with the
 * best value of one of its most correlated columns (qf_pair_pass), and sweeps resume.
 *
 * Cost per row: one row of E H (a float64 gemm over all rows, cols^2 each), then per sweep
 * cols checks plus cols multiply-adds per accepted move.  Memory: two rows x cols float64
 * tables (E, E H).
 */
#include <stdlib.h>
#include <string.h>

#include "qf_gptq_descent.h"
#include "qf_linalg.h"

/* Partners of each column for the pair moves: the QF_PAIRS columns most correlated with it
 * (largest H_jk^2 / (H_jj H_kk)), where one-weight moves get stuck: a pair of correlated
 * columns can trade one level between them when neither can move alone. */
#define QF_PAIRS 8
static int64_t *qf_pair_partners(const double *H, int64_t cols)
{
    if (cols <= QF_PAIRS) return NULL;
    int64_t *p = malloc(sizeof(int64_t) * (size_t)(cols * QF_PAIRS));
    if (!p) return NULL;
    for (int64_t j = 0; j < cols; j++) {
        double best[QF_PAIRS];
        int64_t *pj = p + j * QF_PAIRS;
        for (int k = 0; k < QF_PAIRS; k++) best[k] = -1, pj[k] = j;
        const double hjj = H[j * cols + j];
        for (int64_t k = 0; k < cols; k++) {
            const double hkk = H[k * cols + k];
            if (k == j || !(hjj > 0) || !(hkk > 0)) continue;
            const double c = H[j * cols + k] * H[j * cols + k] / (hjj * hkk);
            if (!(c > best[QF_PAIRS - 1])) continue;
            int at = QF_PAIRS - 1;
            while (at > 0 && c > best[at - 1]) best[at] = best[at - 1], pj[at] = pj[at - 1], at--;
            best[at] = c, pj[at] = k;
        }
    }
    return p;
}

/* One pass of pair moves over a row (integer formats: one level is the scale): weight j one
 * level up or down, then its partner k to its best value given that; kept when the two
 * together lower f.  Returns 1 when something moved. */
static int qf_pair_pass(const qf_scheme *s, const qf_group_params *gr, int64_t gs, const double *H, int64_t cols,
                        const int64_t *partners, double *u, float *q, uint8_t *cd, double *f, int64_t *moves)
{
    int changed = 0;
    for (int64_t j = 0; j < cols; j++) {
        const double hjj = H[j * cols + j];
        if (!(hjj > 0)) continue;
        for (int sg = -1; sg <= 1; sg += 2) {
            float dqj;
            const uint32_t cj = qf_quant_value(s, &gr[j / gs], q[j] + (float)sg * gr[j / gs].scale, &dqj);
            dqj += 0.0f;
            const double dj = (double)dqj - (double)q[j];
            if (dj == 0.0) continue;
            const double delta_j = -2.0 * dj * u[j] + dj * dj * hjj;
            double best = -1e-12 * (*f > 0 ? *f : 0), bdk = 0;
            int64_t bk = -1;
            uint32_t bck = 0;
            float bqk = 0;
            for (int p = 0; p < QF_PAIRS; p++) {
                const int64_t k = partners[j * QF_PAIRS + p];
                if (k == j) continue;
                const double hkk = H[k * cols + k], uk = u[k] - dj * H[j * cols + k];
                float dqk;
                const uint32_t ck = qf_quant_value(s, &gr[k / gs], (float)((double)q[k] + uk / hkk), &dqk);
                dqk += 0.0f;
                const double dk = (double)dqk - (double)q[k];
                if (dk == 0.0) continue;
                const double delta = delta_j - 2.0 * dk * uk + dk * dk * hkk;
                if (delta < best) best = delta, bk = k, bdk = dk, bck = ck, bqk = dqk;
            }
            if (bk < 0) continue;
            const double *hj = H + j * cols, *hk = H + bk * cols;
            for (int64_t i = 0; i < cols; i++) u[i] -= dj * hj[i] + bdk * hk[i];
            q[j] = dqj, cd[j] = (uint8_t)cj;
            q[bk] = bqk, cd[bk] = (uint8_t)bck;
            *f += best;
            *moves += 2;
            changed = 1;
            break; /* j moved: its other direction is no longer a pair move from here */
        }
    }
    return changed;
}

qf_status qf_gptq_descent(const qf_scheme *s, const float *W0, int64_t rows, int64_t cols, const double *H,
                          uint8_t *codes, const qf_group_params *gp, int sweeps, float *Wq, qf_descent_result *res,
                          qf_error *err)
{
    const int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    const int int_fmt = s->value == QF_VALUE_INT4 || s->value == QF_VALUE_INT8;
    if (res) memset(res, 0, sizeof *res);
    if (sweeps <= 0) return QF_OK;

    /* float64 throughout: u = H e cancels heavily where inputs are correlated, and a float32
     * u misjudges moves worth 1e-5 of the row's error */
    double *EH = calloc((size_t)(rows * cols), sizeof(double)); /* qf_dgemm adds into it */
    double *E = malloc(sizeof(double) * (size_t)(rows * cols));
    if (!EH || !E) {
        free(EH), free(E);
        return qf_fail(err, QF_ERR_NOMEM, "gptq descent: out of memory for a [%lld, %lld] Linear", (long long)rows,
                       (long long)cols);
    }
    for (int64_t i = 0; i < rows * cols; i++) E[i] = (double)W0[i] - (double)Wq[i];
    qf_status st = qf_dgemm(0, 0, rows, cols, cols, 1.0, E, cols, H, cols, EH, cols, 0, err);
    free(E);
    if (st) {
        free(EH);
        return st;
    }

    /* pair moves where one level is one step of the scale (int4, int8) */
    int64_t *partners = int_fmt ? qf_pair_partners(H, cols) : NULL;
    if (int_fmt && cols > QF_PAIRS && !partners) {
        free(EH);
        return qf_fail(err, QF_ERR_NOMEM, "gptq descent: out of memory for the pair table");
    }
    double before = 0, after = 0;
    int64_t moves = 0;
    int failed = 0;
    const int par = (double)rows * (double)cols >= 65536.0;
#pragma omp parallel reduction(+ : before, after, moves) if (par)
    {
        double *u = malloc(sizeof(double) * (size_t)cols); /* H e, e = w0 - q */
        if (!u) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp barrier /* every thread's allocation is settled before failed is read */
#pragma omp for schedule(dynamic, 4)
        for (int64_t r = 0; r < rows; r++) {
            if (failed) continue;
            uint8_t *cd = codes + r * cols;
            float *q = Wq + r * cols;
            const float *w0 = W0 + r * cols;
            const qf_group_params *gr = gp + r * ng;
            double f0 = 0;
            for (int64_t j = 0; j < cols; j++) {
                u[j] = EH[r * cols + j];
                f0 += (double)(w0[j] - q[j]) * u[j];
            }
            double f = f0;
            for (int sw = 0; sw < sweeps; sw++) {
                int changed = 0;
                for (int64_t j = 0; j < cols; j++) {
                    const double hjj = H[j * cols + j];
                    if (!(hjj > 0)) continue;
                    const float t = (float)((double)q[j] + u[j] / hjj);
                    float deq;
                    const uint32_t c = qf_quant_value(s, &gr[j / gs], t, &deq);
                    if (int_fmt) deq += 0.0f; /* integer codes decode -0 as +0 */
                    const double d = (double)deq - (double)q[j];
                    if (d == 0.0) continue;
                    const double delta = -2.0 * d * u[j] + d * d * hjj;
                    if (!(delta < -1e-12 * (f > 0 ? f : 0))) continue; /* only clear improvements move */
                    const double *hj = H + j * cols; /* H symmetric: column j = row j */
                    for (int64_t i = 0; i < cols; i++) u[i] -= d * hj[i];
                    q[j] = deq;
                    cd[j] = (uint8_t)c;
                    f += delta;
                    changed = 1;
                    moves++;
                }
                if (!changed && partners) changed = qf_pair_pass(s, gr, gs, H, cols, partners, u, q, cd, &f, &moves);
                if (!changed) break;
            }
            before += f0;
            after += f;
        }
        free(u);
    }
    free(EH);
    free(partners);
    if (failed) return qf_fail(err, QF_ERR_NOMEM, "gptq descent: out of memory");
    if (res) res->loss_before = before, res->loss_after = after, res->moves = moves;
    return QF_OK;
}
