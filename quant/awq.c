/* awq.c - AWQ scale and clip searches, RTN with clip ratios (see qf_awq.h). */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "qf_awq.h"
#include "qf_linalg.h"
#include "qf_numfmt.h"

void qf_awq_opts_default(qf_awq_opts *o)
{
    o->n_grid = 20;
    o->duo_scaling = 1;
    o->max_rows = 0;
    o->clip_steps = 10;
    o->clip_min = 0.5f;
}

/* Quantize-dequantize one row x[cols] into q[cols] (groups of gs, parameters from the range
 * times ratios[g] or 1).  per_tensor: every group uses *tp. */
static void qf_qdq_row(const qf_scheme *s, const float *x, int64_t cols, int64_t gs, float G, const float *ratios,
                       const qf_group_params *tp, float *q, uint32_t *codes, qf_group_params *gp_out)
{
    for (int64_t g = 0; g < cols / gs; g++) {
        qf_group_params p = tp ? *tp : qf_group_params_clipped(s, x + g * gs, (int)gs, G, ratios ? ratios[g] : 1.0f);
        if (gp_out) gp_out[g] = p;
        for (int64_t c = g * gs; c < (g + 1) * gs; c++) {
            uint32_t code = qf_quant_value(s, &p, x[c], &q[c]);
            if (s->value == QF_VALUE_INT4 || s->value == QF_VALUE_INT8) q[c] += 0.0f; /* decodes as +0 */
            if (codes) codes[c] = code;
        }
    }
}

static int qf_finite_f(const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return 0;
    return 1;
}

/* ---- scale search ------------------------------------------------------------------------ */
qf_status qf_awq_search_scales(const qf_scheme *s, const qf_weight_ref *lin, int n_lin, int64_t cols,
                               const float *x_mean, const double *H, const qf_awq_opts *o, float *scales,
                               qf_awq_result *res, qf_error *err)
{
    qf_awq_opts def;
    if (!o) {
        qf_awq_opts_default(&def);
        o = &def;
    }
    if (!s || !lin || n_lin <= 0 || cols <= 0 || !x_mean || !H || !scales || o->n_grid < 1)
        return qf_fail(err, QF_ERR_USAGE, "awq: bad arguments (cols %lld, %d Linears, n_grid %d)", (long long)cols,
                       n_lin, o ? o->n_grid : 0);
    int64_t total = 0;
    for (int k = 0; k < n_lin; k++) {
        if (!lin[k].w || lin[k].rows <= 0 || !qf_scheme_fits(s, lin[k].rows, cols))
            return qf_fail(err, QF_ERR_USAGE, "awq: Linear %d ([%lld, %lld]) does not fit scheme %s", k,
                           (long long)lin[k].rows, (long long)cols, s->name);
        total += lin[k].rows;
    }
    if (!qf_finite_f(x_mean, cols)) return qf_fail(err, QF_ERR_FORMAT, "awq: mean |x| is not finite");
    const int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    const int per_tensor = s->act == QF_ACT_FP8_STATIC;

    /* rows scored: every stride-th row of the concatenated weights */
    int64_t want = o->max_rows;
    if (want <= 0) {
        const double budget = 4294967296.0, per_row = (double)cols * (double)cols;
        want = (double)total * per_row <= budget ? total : (int64_t)(budget / per_row);
        if (want < 512) want = 512;
    }
    const int64_t stride = want >= total ? 1 : (total + want - 1) / want;
    const int64_t nsamp = (total + stride - 1) / stride;

    qf_status st = QF_OK;
    float *Hf = malloc(sizeof(float) * (size_t)(cols * cols));
    double *wacc = calloc((size_t)cols, sizeof(double));
    float *rmax = NULL;
    float *D = malloc(sizeof(float) * (size_t)(nsamp * cols));
    int64_t *samp_k = malloc(sizeof(int64_t) * (size_t)nsamp), *samp_r = malloc(sizeof(int64_t) * (size_t)nsamp);
    double *cand = malloc(sizeof(double) * (size_t)cols);
    float *sc = malloc(sizeof(float) * (size_t)cols), *tpa = malloc(sizeof(float) * (size_t)n_lin);
    if (!Hf || !wacc || !D || !samp_k || !samp_r || !cand || !sc || !tpa) {
        st = qf_fail(err, QF_ERR_NOMEM, "awq: out of memory (cols %lld)", (long long)cols);
        goto done;
    }
    int64_t bad = -1;
#pragma omp parallel for schedule(static) reduction(max : bad)
    for (int64_t i = 0; i < cols * cols; i++) {
        Hf[i] = (float)H[i];
        if (!isfinite(H[i]) || !isfinite(Hf[i])) bad = i;
    }
    if (bad >= 0) {
        st = qf_fail(err, QF_ERR_FORMAT, "awq: XᵀX [%lld, %lld] is not finite", (long long)(bad / cols),
                     (long long)(bad % cols));
        goto done;
    }
    for (int64_t t = 0, i = 0, base = 0; t < n_lin; base += lin[t].rows, t++)
        for (int64_t r = (base % stride) ? stride - base % stride : 0; r < lin[t].rows; r += stride, i++) {
            samp_k[i] = t;
            samp_r[i] = r;
        }

    /* w_mean: |W| over each row's group max, averaged over all rows of all Linears */
    if (o->duo_scaling) {
        for (int k = 0; k < n_lin; k++) {
            const int64_t rows = lin[k].rows;
            const float *w = lin[k].w;
            rmax = malloc(sizeof(float) * (size_t)(rows * ng));
            if (!rmax) {
                st = qf_fail(err, QF_ERR_NOMEM, "awq: out of memory");
                goto done;
            }
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t g = 0; g < ng; g++) {
                    float m = 0;
                    for (int64_t c = g * gs; c < (g + 1) * gs; c++) m = qf_fmaxf(m, fabsf(w[r * cols + c]));
                    rmax[r * ng + g] = m + 1e-6f;
                }
#pragma omp parallel
            {
                const int nt = omp_get_num_threads(), id = omp_get_thread_num();
                const int64_t c0 = cols * id / nt, c1 = cols * (id + 1) / nt;
                for (int64_t r = 0; r < rows; r++)
                    for (int64_t c = c0; c < c1; c++)
                        wacc[c] += (double)(fabsf(w[r * cols + c]) / rmax[r * ng + c / gs]);
            }
            free(rmax);
            rmax = NULL;
        }
        for (int64_t c = 0; c < cols; c++) wacc[c] /= (double)total;
    }

    double best_loss = INFINITY, rtn_loss = 0;
    int best = 0;
    for (int k = 0; k < o->n_grid; k++) {
        /* candidate scales */
        if (k == 0) {
            for (int64_t c = 0; c < cols; c++) sc[c] = 1.0f;
        } else {
            const double a = (double)k / (double)o->n_grid;
            double mx = 0, mn = INFINITY;
            for (int64_t c = 0; c < cols; c++) {
                double v = pow((double)x_mean[c], a);
                if (o->duo_scaling) v /= pow(wacc[c], 1.0 - a) + 1e-4;
                if (!(v >= 1e-4)) v = 1e-4; /* also NaN */
                cand[c] = v;
                mx = fmax(mx, v);
                mn = fmin(mn, v);
            }
            const double norm = sqrt(mx * mn);
            for (int64_t c = 0; c < cols; c++) {
                float v = (float)(cand[c] / norm);
                sc[c] = isfinite(v) && v > 0 ? v : 1.0f;
            }
        }
        /* global parameters of the scaled weights */
        float G = 1.0f;
        if (s->has_global_scale || per_tensor) {
            float amax_all = 0;
            for (int t = 0; t < n_lin; t++) {
                const float *w = lin[t].w;
                float am = 0;
#pragma omp parallel for schedule(static) reduction(max : am)
                for (int64_t i = 0; i < lin[t].rows * cols; i++) am = qf_fmaxf(am, fabsf(w[i] * sc[i % cols]));
                tpa[t] = am;
                amax_all = qf_fmaxf(amax_all, am);
            }
            if (s->has_global_scale) G = qf_nvfp4_global_scale(amax_all);
        }
        /* dW rows of the sample */
        int failed = 0;
#pragma omp parallel
        {
            float *x = malloc(sizeof(float) * (size_t)cols), *q = malloc(sizeof(float) * (size_t)cols);
            if (!x || !q) {
#pragma omp atomic write
                failed = 1;
            }
#pragma omp for schedule(static)
            for (int64_t i = 0; i < nsamp; i++) {
                if (!x || !q) continue;
                const float *w = lin[samp_k[i]].w + samp_r[i] * cols;
                for (int64_t c = 0; c < cols; c++) x[c] = w[c] * sc[c];
                qf_group_params tp;
                if (per_tensor) tp = qf_group_params_from_range(s, -tpa[samp_k[i]], tpa[samp_k[i]], G);
                qf_qdq_row(s, x, cols, gs, G, NULL, per_tensor ? &tp : NULL, q, NULL, NULL);
                float *d = D + i * cols;
                for (int64_t c = 0; c < cols; c++) d[c] = q[c] / sc[c] - w[c];
            }
            free(x);
            free(q);
        }
        if (failed) {
            st = qf_fail(err, QF_ERR_NOMEM, "awq: out of memory");
            goto done;
        }
        double loss;
        st = qf_quad_rows(nsamp, cols, D, cols, Hf, cols, &loss, err);
        if (st) goto done;
        if (k == 0) rtn_loss = loss;
        if (loss < best_loss) {
            best_loss = loss;
            best = k;
            memcpy(scales, sc, sizeof(float) * (size_t)cols);
        }
    }
    if (res) {
        res->best = best;
        res->alpha = (float)best / (float)o->n_grid;
        res->loss = best_loss;
        res->loss_rtn = rtn_loss;
        res->rows_scored = nsamp;
    }
done:
    free(Hf);
    free(wacc);
    free(rmax);
    free(D);
    free(samp_k);
    free(samp_r);
    free(cand);
    free(sc);
    free(tpa);
    return st;
}

/* ---- clip search ------------------------------------------------------------------------- */
qf_status qf_awq_search_clip(const qf_scheme *s, const float *W, int64_t rows, int64_t cols, const double *H,
                             const float *scales, float tensor_amax, const qf_awq_opts *o, float *ratios,
                             qf_awq_clip_result *res, qf_error *err)
{
    qf_awq_opts def;
    if (!o) {
        qf_awq_opts_default(&def);
        o = &def;
    }
    if (!s || !W || !H || !ratios || rows <= 0 || cols <= 0 || !qf_scheme_fits(s, rows, cols) || o->clip_steps < 0 ||
        !(o->clip_min > 0.0f && o->clip_min <= 1.0f))
        return qf_fail(err, QF_ERR_USAGE, "awq clip: bad arguments ([%lld, %lld], clip_steps %d, clip_min %g)",
                       (long long)rows, (long long)cols, o->clip_steps, (double)o->clip_min);
    const int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    const int nr = o->clip_steps + 1;
    qf_awq_clip_result r0 = {0};
    if (s->act == QF_ACT_FP8_STATIC || o->clip_steps == 0) { /* per-tensor scale: nothing to clip per group */
        for (int64_t i = 0; i < rows * ng; i++) ratios[i] = 1.0f;
        if (res) *res = r0;
        return QF_OK;
    }
    float G = 1.0f;
    if (s->has_global_scale)
        G = qf_nvfp4_global_scale(tensor_amax > 0 ? tensor_amax
                                                  : qf_tensor_absmax(QF_DTYPE_F32, W, (uint64_t)(rows * cols)));
    float *Hb = malloc(sizeof(float) * (size_t)(ng * gs * gs));
    double *lrow = malloc(sizeof(double) * (size_t)rows), *lrow1 = malloc(sizeof(double) * (size_t)rows);
    if (!Hb || !lrow || !lrow1) {
        free(Hb);
        free(lrow);
        free(lrow1);
        return qf_fail(err, QF_ERR_NOMEM, "awq clip: out of memory (%lld groups of %lld)", (long long)ng,
                       (long long)gs);
    }
    int64_t bad = -1;
#pragma omp parallel for schedule(static) reduction(max : bad)
    for (int64_t g = 0; g < ng; g++)
        for (int64_t i = 0; i < gs; i++)
            for (int64_t j = 0; j < gs; j++) {
                const int64_t a = g * gs + i, b = g * gs + j;
                double h = H[a * cols + b];
                if (scales) h /= (double)scales[a] * (double)scales[b];
                Hb[(g * gs + i) * gs + j] = (float)h;
                if (!isfinite(h)) bad = a;
            }
    if (bad >= 0) {
        free(Hb);
        free(lrow);
        free(lrow1);
        return qf_fail(err, QF_ERR_FORMAT, "awq clip: XᵀX row %lld is not finite", (long long)bad);
    }
    /* Per group g and chunk of rows: E[(r, k), :] = Q_k(v_r) - v_r for every ratio k, then
     * T = E Hb_g with the blocked gemm, loss(r, k) = E[(r, k), :] . T[(r, k), :]. */
    int failed = 0;
    int64_t rc = (int64_t)4194304 / ((int64_t)nr * gs);
    if (rc < 8) rc = 8;
    if (rc > rows) rc = rows;
    float *E = malloc(sizeof(float) * (size_t)(rc * nr * gs)), *T = malloc(sizeof(float) * (size_t)(rc * nr * gs));
    if (!E || !T) failed = 1;
    for (int64_t i = 0; i < rows && !failed; i++) lrow[i] = lrow1[i] = 0;
    for (int64_t g = 0; g < ng && !failed; g++) {
        for (int64_t r0c = 0; r0c < rows && !failed; r0c += rc) {
            const int64_t nrow = rows - r0c < rc ? rows - r0c : rc;
#pragma omp parallel for schedule(static) if (nrow * gs >= 16384)
            for (int64_t ri = 0; ri < nrow; ri++) {
                const float *v = W + (r0c + ri) * cols + g * gs;
                for (int k = 0; k < nr; k++) {
                    const float ratio = 1.0f - (float)k * (1.0f - o->clip_min) / (float)o->clip_steps;
                    qf_group_params p = qf_group_params_clipped(s, v, (int)gs, G, ratio);
                    float *ek = E + (ri * nr + k) * gs;
                    for (int64_t i = 0; i < gs; i++) {
                        float q;
                        qf_quant_value(s, &p, v[i], &q);
                        ek[i] = q - v[i];
                    }
                }
            }
            memset(T, 0, sizeof(float) * (size_t)(nrow * nr * gs));
            qf_status st = qf_sgemm(0, 0, nrow * nr, gs, gs, 1.0f, E, gs, Hb + g * gs * gs, gs, T, gs, 0, err);
            if (st) {
                free(E), free(T), free(Hb), free(lrow), free(lrow1);
                return st;
            }
#pragma omp parallel for schedule(static) if (nrow * gs >= 16384)
            for (int64_t ri = 0; ri < nrow; ri++) {
                double best = INFINITY;
                float best_ratio = 1.0f;
                for (int k = 0; k < nr; k++) {
                    const float *ek = E + (ri * nr + k) * gs, *tk = T + (ri * nr + k) * gs;
                    double l = 0;
                    for (int64_t i = 0; i < gs; i++) l += (double)ek[i] * (double)tk[i];
                    if (k == 0) lrow1[r0c + ri] += l;
                    if (l < best) {
                        best = l;
                        best_ratio = 1.0f - (float)k * (1.0f - o->clip_min) / (float)o->clip_steps;
                    }
                }
                ratios[(r0c + ri) * ng + g] = best_ratio;
                lrow[r0c + ri] += best;
            }
        }
    }
    free(E);
    free(T);
    for (int64_t r = 0; r < rows && !failed; r++) {
        r0.loss += lrow[r];
        r0.loss_noclip += lrow1[r];
    }
    free(Hb);
    free(lrow);
    free(lrow1);
    if (failed) return qf_fail(err, QF_ERR_NOMEM, "awq clip: out of memory");
    if (res) *res = r0;
    return QF_OK;
}

/* ---- RTN with clip ratios ------------------------------------------------------------------ */
qf_status qf_awq_quantize(const qf_scheme *s, float *W, int64_t rows, int64_t cols, float tensor_amax,
                          const float *ratios, const qf_quant_plan *plan, qf_quant_buffers *out, qf_error *err)
{
    if (!s || !W || !plan || !out || rows <= 0 || cols <= 0)
        return qf_fail(err, QF_ERR_USAGE, "awq quantize: bad arguments");
    qf_quant_plan want;
    QF_TRY(qf_quant_plan_linear(s, rows, cols, &want, err));
    if (plan->n != want.n) return qf_fail(err, QF_ERR_USAGE, "awq quantize: plan does not belong to this Linear");
    for (int i = 0; i < want.n; i++)
        if (plan->t[i].nbytes != want.t[i].nbytes || (!out->data[i] && want.t[i].role != QF_ROLE_INPUT_SCALE))
            return qf_fail(err, QF_ERR_USAGE, "awq quantize: plan entry %s does not match", want.t[i].suffix);
    if (!qf_finite_f(W, rows * cols)) return qf_fail(err, QF_ERR_FORMAT, "awq quantize: weight is not finite");
    const int64_t gs = s->group_size ? s->group_size : cols, ng = cols / gs;
    const int per_tensor = s->act == QF_ACT_FP8_STATIC;
    float G = 1.0f;
    qf_group_params tp = {0};
    if (s->has_global_scale || per_tensor) {
        float amax = tensor_amax > 0 ? tensor_amax : qf_tensor_absmax(QF_DTYPE_F32, W, (uint64_t)(rows * cols));
        if (s->has_global_scale) G = qf_nvfp4_global_scale(amax);
        if (per_tensor) tp = qf_group_params_from_range(s, -amax, amax, G);
    }
    const int64_t nblk = (rows + 7) / 8;
    int failed = 0;
#pragma omp parallel
    {
        float *q = malloc(sizeof(float) * (size_t)cols);
        uint32_t *codes = malloc(sizeof(uint32_t) * (size_t)cols);
        qf_group_params *gp = malloc(sizeof(qf_group_params) * (size_t)ng);
        if (!q || !codes || !gp) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nblk; b++) { /* rows of one 8-block share zero-point words */
            if (!q || !codes || !gp) continue;
            for (int64_t r = b * 8; r < rows && r < b * 8 + 8; r++) {
                float *w = W + r * cols;
                qf_qdq_row(s, w, cols, gs, G, ratios ? ratios + r * ng : NULL, per_tensor ? &tp : NULL, q, codes, gp);
                qf_pack_row(s, plan, out, r, cols, codes, gp);
                memcpy(w, q, sizeof(float) * (size_t)cols);
            }
        }
        free(q);
        free(codes);
        free(gp);
    }
    if (failed) return qf_fail(err, QF_ERR_NOMEM, "awq quantize: out of memory");
    if (per_tensor) qf_store_scale(s, out->data[qf_quant_plan_find(plan, QF_ROLE_SCALE)], 0, tp.scale);
    qf_pack_tensor_info(s, plan, out, rows, cols, G);
    return QF_OK;
}
