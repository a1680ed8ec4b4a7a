/* gptq.c - GPTQ column sweep over the inverse-Hessian factor (see qf_gptq.h). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "qf_awq.h"
#include "qf_gptq.h"
#include "qf_gptq_descent.h"
#include "qf_gptq_refit.h"
#include "qf_linalg.h"

void qf_gptq_opts_default(qf_gptq_opts *o)
{
    o->percdamp = 0.01f;
    o->block_size = 128;
    o->act_order = 0;
    o->static_groups = 0;
    o->clip_search = 0;
    o->clip_min = 0.75f;
    o->refit = 0;
    o->descent = 0;
    o->factor = NULL;
    o->clip = NULL;
}

/* Check that plan is what qf_quant_plan_linear gives for (s, rows, cols). */
static qf_status qf_check_plan(const qf_scheme *s, int64_t rows, int64_t cols, const qf_quant_plan *plan,
                               const qf_quant_buffers *out, qf_error *err)
{
    qf_quant_plan want;
    QF_TRY(qf_quant_plan_linear(s, rows, cols, &want, err));
    if (!plan || plan->n != want.n)
        return qf_fail(err, QF_ERR_USAGE, "quant plan does not belong to a [%lld, %lld] %s Linear", (long long)rows,
                       (long long)cols, s->name);
    for (int i = 0; i < want.n; i++) {
        if (plan->t[i].role != want.t[i].role || plan->t[i].nbytes != want.t[i].nbytes)
            return qf_fail(err, QF_ERR_USAGE, "quant plan entry %s does not belong to a [%lld, %lld] %s Linear",
                           want.t[i].suffix, (long long)rows, (long long)cols, s->name);
        if (!out->data[i] && want.t[i].role != QF_ROLE_INPUT_SCALE)
            return qf_fail(err, QF_ERR_USAGE, "no buffer for packed tensor %s", want.t[i].suffix);
    }
    return QF_OK;
}

/* The working Hessian of one attempt: 2/n * H, dead diagonal set to 1, permuted, damped.
 * (H is read through perm; the dead flags are indexed by original column.) */
static void qf_gptq_build_h(const double *H, int64_t n, double scale, const int64_t *perm, const uint8_t *dead,
                              double damp, double *Hw)
{
#pragma omp parallel for schedule(static) if (n >= 256)
    for (int64_t i = 0; i < n; i++) {
        const int64_t pi = perm ? perm[i] : i;
        double *dst = Hw + i * n;
        const double *src = H + pi * n;
        if (perm)
            for (int64_t j = 0; j < n; j++) dst[j] = src[perm[j]] * scale;
        else
            for (int64_t j = 0; j < n; j++) dst[j] = src[j] * scale;
        if (dead[pi]) dst[i] = 1.0;
        dst[i] += damp;
    }
}

/* Sort key for act_order: decreasing diagonal, ties by increasing index (stable). */
typedef struct qf_diag_key {
    double d;
    int64_t i;
} qf_diag_key;
static int qf_diag_cmp(const void *a, const void *b)
{
    const qf_diag_key *x = a, *y = b;
    if (x->d > y->d) return -1;
    if (x->d < y->d) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* ---- the prepared inverse Hessian ------------------------------------------------------- */
struct qf_gptq_hinv {
    int64_t cols;
    const double *H;  /* the caller's Hessian (borrowed: the refit reads it) */
    float *U;         /* (cols, cols) upper factor of the damped H^-1, in processing order */
    int64_t *perm;    /* (cols) processing position -> original column; NULL without act_order */
    int64_t *invperm; /* (cols) original column -> processing position; NULL without act_order */
    uint8_t *dead;    /* (cols) 1 where H_ii == 0 */
    int64_t dead_cols;
    double damp;
    int damp_retries;
};

void qf_gptq_hinv_free(qf_gptq_hinv *hv)
{
    if (!hv) return;
    free(hv->U);
    free(hv->perm);
    free(hv->invperm);
    free(hv->dead);
    free(hv);
}

qf_status qf_gptq_hinv_init(qf_gptq_hinv **out, const double *H, int64_t cols, int64_t n_samples,
                            const qf_gptq_opts *o, qf_error *err)
{
    qf_gptq_opts def;
    if (!o) {
        qf_gptq_opts_default(&def);
        o = &def;
    }
    *out = NULL;
    if (!H || cols <= 0 || n_samples <= 0)
        return qf_fail(err, QF_ERR_USAGE, "gptq: bad Hessian arguments (cols %lld, n_samples %lld)", (long long)cols,
                       (long long)n_samples);
    if (!(o->percdamp >= 0.0f) || !isfinite(o->percdamp))
        return qf_fail(err, QF_ERR_USAGE, "gptq: bad percdamp %g", (double)o->percdamp);
    int64_t bad_h = -1;
#pragma omp parallel for schedule(static) reduction(max : bad_h) if (cols >= 256)
    for (int64_t i = 0; i < cols * cols; i++)
        if (!isfinite(H[i])) bad_h = i > bad_h ? i : bad_h;
    if (bad_h >= 0)
        return qf_fail(err, QF_ERR_FORMAT, "gptq: Hessian [%lld, %lld] is not finite", (long long)(bad_h / cols),
                       (long long)(bad_h % cols));

    qf_status st = QF_OK;
    qf_gptq_hinv *hv = calloc(1, sizeof *hv);
    double *Hw = malloc(sizeof(double) * (size_t)(cols * cols));
    qf_diag_key *keys = o->act_order ? malloc(sizeof(qf_diag_key) * (size_t)cols) : NULL;
    if (hv) {
        hv->cols = cols;
        hv->H = H;
        hv->dead = calloc((size_t)cols, 1);
        hv->U = malloc(sizeof(float) * (size_t)(cols * cols));
        if (o->act_order) {
            hv->perm = malloc(sizeof(int64_t) * (size_t)cols);
            hv->invperm = malloc(sizeof(int64_t) * (size_t)cols);
        }
    }
    if (!hv || !Hw || !hv->dead || !hv->U || (o->act_order && (!keys || !hv->perm || !hv->invperm))) {
        st = qf_fail(err, QF_ERR_NOMEM, "gptq: out of memory for a %lld x %lld Hessian", (long long)cols,
                     (long long)cols);
        goto done;
    }

    /* dead inputs, ordering */
    double diag_sum = 0;
    const double hscale = 2.0 / (double)n_samples;
    for (int64_t i = 0; i < cols; i++) {
        double d = H[i * cols + i] * hscale;
        if (d < 0.0) {
            st = qf_fail(err, QF_ERR_FORMAT, "gptq: Hessian diagonal [%lld] is negative (%g): not a sum of x x^T",
                         (long long)i, H[i * cols + i]);
            goto done;
        }
        if (d == 0.0) {
            hv->dead[i] = 1;
            d = 1.0;
            hv->dead_cols++;
        }
        diag_sum += d;
        if (keys) keys[i] = (qf_diag_key){d, i};
    }
    if (o->act_order) {
        qsort(keys, (size_t)cols, sizeof *keys, qf_diag_cmp);
        for (int64_t p = 0; p < cols; p++) {
            hv->perm[p] = keys[p].i;
            hv->invperm[keys[p].i] = p;
        }
    }

    /* U = chol(H^-1, upper), with growing dampening on failure */
    double damp = (double)o->percdamp * diag_sum / (double)cols;
    for (int attempt = 0;; attempt++) {
        qf_gptq_build_h(H, cols, hscale, hv->perm, hv->dead, damp, Hw);
        int64_t f = (o->factor ? o->factor : qf_gptq_factor)(Hw, cols, hv->U, &st, err);
        if (st) goto done;
        if (!f) break;
        if (attempt == 6) {
            st = qf_fail(err, QF_ERR_FORMAT,
                         "gptq: Hessian [%lld x %lld] is not positive definite (column %lld) even with dampening %g",
                         (long long)cols, (long long)cols, (long long)(f - 1), damp);
            goto done;
        }
        damp = damp > 0 ? damp * 10.0 : 1e-4 * (diag_sum > 0 ? diag_sum / (double)cols : 1.0);
        hv->damp_retries++;
    }
    hv->damp = damp;
done:
    free(Hw);
    free(keys);
    if (st) {
        qf_gptq_hinv_free(hv);
        hv = NULL;
    }
    *out = hv;
    return st;
}

qf_status qf_gptq_quantize(const qf_scheme *s, float *W, int64_t rows, int64_t cols, const double *H,
                           int64_t n_samples, float tensor_amax, const qf_gptq_opts *o, const qf_quant_plan *plan,
                           qf_quant_buffers *out, qf_gptq_result *res, qf_error *err)
{
    if (!s || !W || rows <= 0 || cols <= 0)
        return qf_fail(err, QF_ERR_USAGE, "gptq: bad arguments (rows %lld, cols %lld)", (long long)rows,
                       (long long)cols);
    /* the cheap checks first: no factorization for a call that cannot succeed */
    QF_TRY(qf_check_plan(s, rows, cols, plan, out, err));
    if (o && o->block_size <= 0) return qf_fail(err, QF_ERR_USAGE, "gptq: bad block_size %d", o->block_size);
    qf_gptq_hinv *hv;
    QF_TRY(qf_gptq_hinv_init(&hv, H, cols, n_samples, o, err));
    qf_status st = qf_gptq_quantize_hinv(s, W, rows, cols, hv, tensor_amax, o, plan, out, res, err);
    qf_gptq_hinv_free(hv);
    return st;
}

/* A group's parameters: from AWQ's clip ratio when given; else, with clip_search, from the
 * range shrunk by the ratio that rounds the group's values v[gs] with the least error
 * weighted by w[gs] (GPTQ's per-column loss weights); else from the plain range. */
static qf_group_params qf_gptq_group_params(const qf_scheme *s, const qf_gptq_opts *o, const float *v, int64_t gs,
                                            float G, const double *w, const float *clip)
{
    if (clip || o->clip_search <= 0) return qf_group_params_clipped(s, v, (int)gs, G, clip ? *clip : 1.0f);
    return qf_group_params_search(s, v, (int)gs, G, w, o->clip_search, o->clip_min);
}

/* One GPTQ column sweep over Wp (rows, cols; processing order): chooses codes[] (original
 * column order) and, when lazy, each group's parameters gp[] as the sweep reaches the group
 * (else gp[] is read as given); Wp ends as the dequantized weights; loss_row[] += the rows'
 * GPTQ loss.  Returns 0, or 1 when a thread ran out of memory. */
static int qf_gptq_sweep(const qf_scheme *s, const qf_gptq_hinv *hv, const qf_gptq_opts *o, int lazy, float G,
                         const int64_t *first_pos, const double *colw, int64_t rows, int64_t cols, int par,
                         float *Wp, uint8_t *codes, qf_group_params *gp, float *Err, double *loss_row)
{
    const int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    const int64_t bs = o->block_size < cols ? o->block_size : cols;
    const int int_fmt = s->value == QF_VALUE_INT4 || s->value == QF_VALUE_INT8;
    const int64_t *perm = hv->perm, *invperm = hv->invperm;
    const float *U = hv->U;
    /* Rows are independent given U: each thread takes a contiguous range of rows through all
     * blocks (in-block sweep, then the lazy update of the remaining columns of its rows as a
     * single-threaded blocked matmul), so there is no synchronisation at all.  Each element
     * is computed by the same operations whatever the range, so the result does not depend on
     * the number of threads. */
    int failed = 0;
#pragma omp parallel if (par)
    {
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
        const int64_t ra = rows * id / nt, rb = rows * (id + 1) / nt;
        float *vbuf = lazy ? malloc(sizeof(float) * (size_t)gs) : NULL;
        qf_error terr = {0};
        int ok = !lazy || vbuf;
        for (int64_t i1 = 0; i1 < cols && ok && rb > ra; i1 += bs) {
            const int64_t i2 = i1 + bs < cols ? i1 + bs : cols, cnt = i2 - i1;
            for (int64_t r = ra; r < rb; r++) {
                float *w = Wp + r * cols, *e = Err + r * bs;
                uint8_t *cd = codes + r * cols;
                qf_group_params *gr = gp + r * ng;
                double lsum = 0;
                for (int64_t i = 0; i < cnt; i++) {
                    const int64_t c = i1 + i, oc = perm ? perm[c] : c, g = oc / gs;
                    if (lazy && first_pos[g] == c) {
                        /* the group's current weights: in-block columns are up to date, later
                         * ones still miss this block's updates (applied lazily): add them */
                        for (int64_t t = 0; t < gs; t++) {
                            const int64_t pos = invperm ? invperm[g * gs + t] : g * gs + t;
                            float v = w[pos];
                            if (pos >= i2)
                                for (int64_t k = 0; k < i; k++) v -= e[k] * U[(i1 + k) * cols + pos];
                            vbuf[t] = v;
                        }
                        gr[g] = qf_gptq_group_params(s, o, vbuf, gs, G, colw + g * gs,
                                                     o->clip ? o->clip + r * ng + g : NULL);
                    }
                    float deq;
                    cd[oc] = (uint8_t)qf_quant_value(s, &gr[g], w[c], &deq);
                    const float *urow = U + c * cols;
                    const float d = urow[c], diff = w[c] - deq, ec = diff / d;
                    lsum += (double)ec * (double)ec;
                    w[c] = int_fmt ? deq + 0.0f : deq; /* integer codes decode -0 as +0 */
                    for (int64_t j = c + 1; j < i2; j++) w[j] -= ec * urow[j];
                    e[i] = ec;
                }
                loss_row[r] += lsum * 0.5;
            }
            if (i2 < cols) /* W[ra:rb, i2:] -= Err[ra:rb] U[i1:i2, i2:] */
                ok = qf_sgemm(0, 0, rb - ra, cols - i2, cnt, -1.0f, Err + ra * bs, bs, U + i1 * cols + i2, cols,
                              Wp + ra * cols + i2, cols, QF_GEMM_SERIAL, &terr) == QF_OK;
        }
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
        free(vbuf);
    }
    return failed;
}

/* Coordinate-descent sweeps inside one scale refit (it settles in 2-3). */
#define QF_REFIT_SWEEPS 4

/* The refit rounds after the first sweep (W: its dequantized weights, original order; codes,
 * gp: its choices): refit the scales; then, up to o->refit - 1 times, sweep again from W0
 * under the refit scales (so the codes are re-chosen for them) and refit again, keeping the
 * round with the lowest output error.  *gain = 1 - final error / error of the first sweep. */
static qf_status qf_gptq_refit_rounds(const qf_scheme *s, const qf_gptq_hinv *hv, const qf_gptq_opts *o, float G,
                                      const int64_t *first_pos, const double *colw, int64_t rows, int64_t cols, int par, const float *W0,
                                      float *W, float *Wp, uint8_t *codes, qf_group_params *gp, float *Err,
                                      double *loss_row, double *gain, qf_error *err)
{
    const int64_t ng = cols / (s->group_size ? s->group_size : cols), n = rows * cols;
    const int64_t *perm = hv->perm;
    qf_refit_result rr;
    QF_TRY(qf_gptq_refit(s, W0, rows, cols, hv->H, codes, gp, G, QF_REFIT_SWEEPS, W, &rr, err));
    const double first = rr.loss_before;
    double best = rr.loss_after;
    qf_status st = QF_OK;
    uint8_t *bc = NULL;
    qf_group_params *bg = NULL;
    float *bw = NULL;
    if (o->refit > 1) {
        bc = malloc((size_t)n);
        bg = malloc(sizeof *bg * (size_t)(rows * ng));
        bw = malloc(sizeof(float) * (size_t)n);
        if (!bc || !bg || !bw) st = qf_fail(err, QF_ERR_NOMEM, "gptq: out of memory for the refit rounds");
    }
    for (int round = 1; st == QF_OK && round < o->refit; round++) {
        memcpy(bc, codes, (size_t)n);
        memcpy(bg, gp, sizeof *bg * (size_t)(rows * ng));
        memcpy(bw, W, sizeof(float) * (size_t)n);
        if (perm) {
#pragma omp parallel for schedule(static) if (par)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t p = 0; p < cols; p++) Wp[r * cols + p] = W0[r * cols + perm[p]];
        } else {
            memcpy(W, W0, sizeof(float) * (size_t)n); /* Wp is W */
        }
        memset(loss_row, 0, sizeof(double) * (size_t)rows);
        if (qf_gptq_sweep(s, hv, o, 0, G, first_pos, colw, rows, cols, par, Wp, codes, gp, Err, loss_row)) {
            st = qf_fail(err, QF_ERR_NOMEM, "gptq: out of memory in the column sweep");
            break;
        }
        if (perm) {
#pragma omp parallel for schedule(static) if (par)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t p = 0; p < cols; p++) W[r * cols + perm[p]] = Wp[r * cols + p];
        }
        st = qf_gptq_refit(s, W0, rows, cols, hv->H, codes, gp, G, QF_REFIT_SWEEPS, W, &rr, err);
        if (st == QF_OK && rr.loss_after < best) {
            best = rr.loss_after;
            continue;
        }
        memcpy(codes, bc, (size_t)n); /* no better: back to the previous round, stop */
        memcpy(gp, bg, sizeof *bg * (size_t)(rows * ng));
        memcpy(W, bw, sizeof(float) * (size_t)n);
        break;
    }
    free(bc), free(bg), free(bw);
    *gain = first > 0 ? 1.0 - best / first : 0.0;
    return st;
}

qf_status qf_gptq_quantize_hinv(const qf_scheme *s, float *W, int64_t rows, int64_t cols, const qf_gptq_hinv *hv,
                                float tensor_amax, const qf_gptq_opts *o, const qf_quant_plan *plan,
                                qf_quant_buffers *out, qf_gptq_result *res, qf_error *err)
{
    qf_gptq_opts def;
    if (!o) {
        qf_gptq_opts_default(&def);
        o = &def;
    }
    if (!s || !W || !hv || !out || rows <= 0 || cols <= 0 || hv->cols != cols)
        return qf_fail(err, QF_ERR_USAGE, "gptq: bad arguments (rows %lld, cols %lld, Hessian of %lld)",
                       (long long)rows, (long long)cols, hv ? (long long)hv->cols : -1LL);
    if (o->block_size <= 0) return qf_fail(err, QF_ERR_USAGE, "gptq: bad block_size %d", o->block_size);
    QF_TRY(qf_check_plan(s, rows, cols, plan, out, err));

    const int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    const int64_t bs = o->block_size < cols ? o->block_size : cols;
    const int per_tensor = s->act == QF_ACT_FP8_STATIC; /* one weight scale for the tensor */
    const int lazy = !o->static_groups && !per_tensor;
    const int64_t *perm = hv->perm, *invperm = hv->invperm;
    /* threads only when the sweep is big enough to pay for them */
    const int par = (double)rows * (double)cols * (double)(cols < 256 ? cols : 256) >= 4194304.0;
    qf_gptq_result r0 = {0};
    r0.damp = hv->damp;
    r0.damp_retries = hv->damp_retries;
    r0.dead_cols = hv->dead_cols;

    int64_t bad_w = -1;
#pragma omp parallel for schedule(static) reduction(max : bad_w) if (par)
    for (int64_t i = 0; i < rows * cols; i++)
        if (!isfinite(W[i])) bad_w = i > bad_w ? i : bad_w;
    if (bad_w >= 0)
        return qf_fail(err, QF_ERR_FORMAT, "gptq: weight [%lld, %lld] is not finite", (long long)(bad_w / cols),
                       (long long)(bad_w % cols));

    /* ---- global parameters from the weights as given ---- */
    float G = 1.0f;
    qf_group_params tparams = {0};
    if (s->has_global_scale || per_tensor) {
        float amax = tensor_amax > 0 ? tensor_amax : qf_tensor_absmax(QF_DTYPE_F32, W, (uint64_t)(rows * cols));
        if (s->has_global_scale) G = qf_nvfp4_global_scale(amax);
        if (per_tensor) tparams = qf_group_params_from_range(s, -amax, amax, G);
    }
    r0.global_scale = G;

    /* ---- workspace ---- */
    qf_status st = QF_OK;
    int64_t *first_pos = malloc(sizeof(int64_t) * (size_t)ng);
    double *colw = malloc(sizeof(double) * (size_t)cols); /* GPTQ's loss weight of each column */
    float *Wp = perm ? malloc(sizeof(float) * (size_t)(rows * cols)) : W;
    uint8_t *codes = malloc((size_t)(rows * cols));
    qf_group_params *gp = malloc(sizeof(qf_group_params) * (size_t)(rows * ng));
    float *Err = malloc(sizeof(float) * (size_t)(rows * bs));
    double *loss_row = calloc((size_t)rows, sizeof(double));
    float *W0 = o->refit > 0 || o->descent > 0 ? malloc(sizeof(float) * (size_t)(rows * cols)) : NULL;
    if (!first_pos || !colw || !Wp || !codes || !gp || !Err || !loss_row || ((o->refit > 0 || o->descent > 0) && !W0)) {
        st = qf_fail(err, QF_ERR_NOMEM, "gptq: out of memory for a [%lld, %lld] Linear", (long long)rows,
                     (long long)cols);
        goto done;
    }

    /* ---- dead inputs, processing order ---- */
    if (hv->dead_cols) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < cols; i++)
                if (hv->dead[i]) W[r * cols + i] = 0.0f;
    }
    if (W0) memcpy(W0, W, sizeof(float) * (size_t)(rows * cols));
    if (perm) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t p = 0; p < cols; p++) Wp[r * cols + p] = W[r * cols + perm[p]];
    }
    for (int64_t g = 0; g < ng; g++) {
        int64_t f = g * gs;
        if (invperm) {
            f = cols;
            for (int64_t t = 0; t < gs; t++)
                if (invperm[g * gs + t] < f) f = invperm[g * gs + t];
        }
        first_pos[g] = f;
    }
    for (int64_t c = 0; c < cols; c++) {
        const int64_t p = invperm ? invperm[c] : c;
        const double u = hv->U[p * cols + p];
        colw[c] = 1.0 / (u * u);
    }

    /* ---- group parameters known up front ---- */
    if (!lazy) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t g = 0; g < ng; g++)
                gp[r * ng + g] = per_tensor ? tparams
                                            : qf_gptq_group_params(s, o, W + r * cols + g * gs, gs, G, colw + g * gs,
                                                                   o->clip ? o->clip + r * ng + g : NULL);
    }

    int failed = qf_gptq_sweep(s, hv, o, lazy, G, first_pos, colw, rows, cols, par, Wp, codes, gp, Err, loss_row);
    if (failed) {
        st = qf_fail(err, QF_ERR_NOMEM, "gptq: out of memory in the column sweep");
        goto done;
    }

    /* ---- results in the original column order, packed ---- */
    if (perm) {
#pragma omp parallel for schedule(static) if (par)
        for (int64_t r = 0; r < rows; r++)
            for (int64_t p = 0; p < cols; p++) W[r * cols + perm[p]] = Wp[r * cols + p];
    }
    for (int64_t r = 0; r < rows; r++) r0.loss += loss_row[r];
    if (W0 && o->refit > 0 && o->descent <= 0) {
        st = qf_gptq_refit_rounds(s, hv, o, G, first_pos, colw, rows, cols, par, W0, W, Wp, codes, gp, Err, loss_row,
                                  &r0.refit_gain, err);
        if (st) goto done;
    }
    if (W0 && o->descent > 0) {
        /* code descent; with refit R, R rounds of (refit the scales for the codes, descend
         * under the new scales): each step only lowers the output error.  The gain counts
         * from GPTQ's sweep. */
        qf_descent_result dr;
        st = qf_gptq_descent(s, W0, rows, cols, hv->H, codes, gp, o->descent, W, &dr, err);
        const double first = dr.loss_before;
        for (int round = 0; !st && round < o->refit; round++) {
            qf_refit_result rr;
            const double last = dr.loss_after;
            st = qf_gptq_refit(s, W0, rows, cols, hv->H, codes, gp, G, QF_REFIT_SWEEPS, W, &rr, err);
            if (!st) st = qf_gptq_descent(s, W0, rows, cols, hv->H, codes, gp, o->descent, W, &dr, err);
            if (!st && !(dr.loss_after < last * (1 - 1e-6))) break; /* settled */
        }
        if (st) goto done;
        r0.descent_gain = first > 0 ? 1.0 - dr.loss_after / first : 0.0;
        if (o->refit > 0) r0.refit_gain = r0.descent_gain; /* one figure for the pair */
    }
    const int64_t nblk = (rows + 7) / 8;
#pragma omp parallel if (par)
    {
        uint32_t *c32 = malloc(sizeof(uint32_t) * (size_t)cols);
        if (!c32) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nblk; b++) { /* rows of one 8-block share zero-point words */
            if (!c32) continue;
            for (int64_t r = b * 8; r < rows && r < b * 8 + 8; r++) {
                for (int64_t c = 0; c < cols; c++) c32[c] = codes[r * cols + c];
                qf_pack_row(s, plan, out, r, cols, c32, gp + r * ng);
            }
        }
        free(c32);
    }
    if (failed) {
        st = qf_fail(err, QF_ERR_NOMEM, "gptq: out of memory");
        goto done;
    }
    if (per_tensor) {
        int i = qf_quant_plan_find(plan, QF_ROLE_SCALE);
        qf_store_scale(s, out->data[i], 0, tparams.scale);
    }
    qf_pack_tensor_info(s, plan, out, rows, cols, G);
    if (res) *res = r0;

done:
    free(first_pos);
    free(colw);
    if (Wp != W) free(Wp);
    free(codes);
    free(gp);
    free(Err);
    free(loss_row);
    free(W0);
    return st;
}
