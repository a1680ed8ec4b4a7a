/* mixed.c - mixed precision to a size budget: measure, then choose (see mixed.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_plan.h"
#include "mixed.h"
#include "qf_budget.h"
#include "qf_fs.h"
#include "qf_sensitivity.h"

#define QF_MIXED_SAMPLES 32 /* sensitivity windows: the ranking it gives is stable from 16 on (docs/bench.md) */

/* The calibration callbacks' shared context: qf_plan_quantizes reads the qf_plan_ctx first. */
typedef struct qf_mixed_run {
    qf_plan_ctx pc;
    qf_mixed *mx;
    char *measured; /* [mx->n] */
} qf_mixed_run;

static int qf_mixed_index(const qf_mixed *mx, const char *module)
{
    int lo = 0, hi = mx->n - 1;
    while (lo <= hi) {
        const int mid = (lo + hi) / 2, c = strcmp(mx->module[mid], module);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

int qf_mixed_find(const qf_mixed *mx, const char *module, const qf_scheme **s)
{
    const int i = qf_mixed_index(mx, module);
    if (i < 0) return 0;
    *s = mx->menu[mx->choice[i]];
    return 1;
}

static qf_status qf_mixed_measure(void *ctx, const char *module, const float *W, int64_t rows, int64_t cols,
                                  const double *hdiag, float sibling_amax, qf_error *err)
{
    qf_mixed_run *run = ctx;
    qf_mixed *mx = run->mx;
    const int i = qf_mixed_index(mx, module);
    if (i < 0) return QF_OK;
    for (int k = 0; k < mx->n_menu; k++) {
        double *e = &mx->err[(size_t)i * mx->n_menu + k];
        *e = mx->cost[(size_t)i * mx->n_menu + k] < 0 ? -1
             : qf_sens_error(mx->menu[k], W, rows, cols, hdiag, sibling_amax, k == 0 ? &mx->energy[i] : NULL);
        if (mx->cost[(size_t)i * mx->n_menu + k] >= 0 && *e < 0)
            return qf_fail(err, QF_ERR_NOMEM, "%s: sensitivity of %s: out of memory", module,
                           mx->menu[k] ? mx->menu[k]->name : "bf16");
    }
    run->measured[i] = 1;
    return QF_OK;
}

void qf_mixed_free(qf_mixed *mx)
{
    for (int i = 0; i < mx->n; i++) free(mx->module[i]);
    free(mx->module), free(mx->choice), free(mx->err), free(mx->energy), free(mx->cost);
    memset(mx, 0, sizeof *mx);
}

static int qf_strcmp_p(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The candidates (the Linears a uniform conversion with o->scheme quantizes) and each menu
 * entry's exact bytes for them. */
static qf_status qf_mixed_candidates(const qf_convert_plan *plan, const qf_checkpoint *ck, qf_mixed *mx, qf_error *err)
{
    int n = 0;
    for (int i = 0; i < plan->n_mods; i++) n += plan->mods[i].quantized;
    if (n == 0) return qf_fail(err, QF_ERR_USAGE, "%s: --target-bits: no Linear is quantized (all kept or ignored)", ck->dir);
    mx->module = calloc((size_t)n, sizeof(char *));
    mx->choice = calloc((size_t)n, sizeof(int));
    mx->energy = calloc((size_t)n, sizeof(double));
    mx->err = calloc((size_t)n * mx->n_menu, sizeof(double));
    mx->cost = calloc((size_t)n * mx->n_menu, sizeof(double));
    if (!mx->module || !mx->choice || !mx->energy || !mx->err || !mx->cost)
        return qf_fail(err, QF_ERR_NOMEM, "out of memory planning --target-bits");
    for (int i = 0; i < plan->n_mods; i++)
        if (plan->mods[i].quantized) {
            const qf_module_plan *m = &plan->mods[i];
            if (m->sliced)
                return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s': --target-bits does not handle fused 3-D experts",
                               ck->dir, ck->tensors[m->src].name);
            mx->module[mx->n++] = strdup(m->module);
        }
    qsort(mx->module, (size_t)mx->n, sizeof(char *), qf_strcmp_p);
    for (int i = 0; i < plan->n_mods; i++) {
        const qf_module_plan *m = &plan->mods[i];
        if (!m->quantized) continue;
        const qf_tensor *t = &ck->tensors[m->src];
        const int64_t rows = t->shape[0], cols = t->shape[1];
        const int j = qf_mixed_index(mx, m->module);
        mx->weights += (double)rows * (double)cols;
        for (int k = 0; k < mx->n_menu; k++) {
            double *c = &mx->cost[(size_t)j * mx->n_menu + k];
            qf_quant_plan qp;
            if (!mx->menu[k]) *c = (double)t->nbytes; /* kept: the source tensor as it is */
            else if (!qf_scheme_fits(mx->menu[k], rows, cols) ||
                     qf_quant_plan_linear(mx->menu[k], rows, cols, &qp, NULL) != QF_OK)
                *c = -1;
            else
                for (int p = 0; p < qp.n; p++) *c += (double)qp.t[p].nbytes;
        }
    }
    return QF_OK;
}

/* Items: fused siblings share one format.  item[i] for module i; returns the item count. */
static int qf_mixed_items(const qf_mixed *mx, int *item)
{
    char (*key)[512] = malloc(sizeof *key * (size_t)mx->n);
    int n_items = 0;
    if (!key) return -1;
    for (int i = 0; i < mx->n; i++) {
        qf_plan_sibling_key(mx->module[i], key[i], sizeof key[i]);
        item[i] = -1;
        for (int j = 0; j < i && item[i] < 0; j++)
            if (strcmp(key[j], key[i]) == 0) item[i] = item[j];
        if (item[i] < 0) item[i] = n_items++;
    }
    free(key);
    return n_items;
}

static qf_status qf_mixed_solve(qf_mixed *mx, qf_error *err)
{
    const int K = mx->n_menu;
    int *item = malloc(sizeof(int) * (size_t)mx->n);
    int n_items = item ? qf_mixed_items(mx, item) : -1;
    double *cost = n_items > 0 ? calloc((size_t)n_items * K, sizeof(double)) : NULL;
    double *e = n_items > 0 ? calloc((size_t)n_items * K, sizeof(double)) : NULL;
    int *choice = n_items > 0 ? calloc((size_t)n_items, sizeof(int)) : NULL;
    qf_status s = QF_OK;
    if (!cost || !e || !choice) s = qf_fail(err, QF_ERR_NOMEM, "out of memory choosing --target-bits formats");
    for (int i = 0; s == QF_OK && i < mx->n; i++)
        for (int k = 0; k < K; k++) {
            const double c = mx->cost[(size_t)i * K + k];
            double *ic = &cost[(size_t)item[i] * K + k];
            if (c < 0 || *ic < 0) *ic = -1, e[(size_t)item[i] * K + k] = 0;
            else *ic += c, e[(size_t)item[i] * K + k] += mx->err[(size_t)i * K + k];
        }
    double used = 0;
    if (s == QF_OK) {
        s = qf_budget_solve(n_items, K, cost, e, mx->target_bits * mx->weights / 8.0, choice, &used, &mx->est_error, err);
        if (s == QF_ERR_USAGE) { /* say it in bits per weight */
            double least = 0;
            for (int it = 0; it < n_items; it++) {
                double m = -1;
                for (int k = 0; k < K; k++)
                    if (cost[(size_t)it * K + k] >= 0 && (m < 0 || cost[(size_t)it * K + k] < m)) m = cost[(size_t)it * K + k];
                least += m;
            }
            s = qf_fail(err, QF_ERR_USAGE, "--target-bits %g is below the smallest mix of %s: %.4f bits per weight",
                        mx->target_bits, QF_MIXED_MENU_NAMES, least * 8.0 / mx->weights);
        }
    }
    if (s == QF_OK) {
        for (int i = 0; i < mx->n; i++) mx->choice[i] = choice[item[i]];
        mx->bytes = used;
        mx->bits = used * 8.0 / mx->weights;
    }
    free(item), free(cost), free(e), free(choice);
    return s;
}

qf_status qf_mixed_choose(const qf_convert_opts *o, const qf_checkpoint *ck, const char *model_type,
                          const char *spill_dir, qf_mixed *mx, qf_error *err)
{
    memset(mx, 0, sizeof *mx);
    if (!(o->target_bits > 0) || !isfinite(o->target_bits))
        return qf_fail(err, QF_ERR_USAGE, "--target-bits must be a number of bits per weight > 0");
    if (!o->scheme || o->scheme->id != QF_SCHEME_W4A16_ASYM)
        return qf_fail(err, QF_ERR_USAGE, "--target-bits chooses among %s: the base scheme must be w4a16-asym",
                       QF_MIXED_MENU_NAMES);
    mx->target_bits = o->target_bits;
    const qf_scheme_id menu[] = {QF_SCHEME_W4A16_ASYM, QF_SCHEME_NVFP4A16, QF_SCHEME_W8A8};
    for (size_t k = 0; k < sizeof menu / sizeof *menu; k++) mx->menu[mx->n_menu++] = qf_scheme_by_id(menu[k]);
    mx->menu[mx->n_menu++] = NULL; /* bf16: kept as it is */

    /* 1. the candidates: what a uniform run with the base scheme quantizes */
    qf_convert_opts bo = *o;
    bo.mixed = NULL;
    bo.layer_first = bo.layer_last = -1;
    qf_convert_plan plan;
    qf_status s = qf_plan_build(&bo, ck, model_type, &plan, err);
    if (s == QF_OK) s = qf_mixed_candidates(&plan, ck, mx, err);

    /* 2. sensitivity: the float model on calibration text, each Linear's rounding error per format */
    qf_mixed_run run = {{&plan, ck}, mx, calloc((size_t)(mx->n ? mx->n : 1), 1)};
    if (s == QF_OK && !run.measured) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    if (s == QF_OK) {
        qf_calib_opts co = o->calib;
        co.method = QF_CALIB_RTN;
        co.float_target = 0;
        co.smooth_alpha = 0;
        co.rotate = QF_ROTATE_NONE;
        co.n_samples = o->sens_samples > 0 ? o->sens_samples : QF_MIXED_SAMPLES;
        co.scheme = o->scheme;
        co.quantize_module = qf_plan_quantizes;
        co.module_scheme = NULL;
        co.measure = qf_mixed_measure;
        co.ctx = &run;
        co.job = o->ctx;
        co.last_layer = -1;
        co.max_memory = o->ctx ? o->ctx->max_memory : 0;
        co.sink = NULL;
        mx->samples = co.n_samples, mx->seqlen = co.seqlen;
        json_t *report = NULL;
        qf_ctx_log(o->ctx, "target-bits", "target-bits: measuring %d Linears on %d x %d calibration tokens", mx->n,
                   co.n_samples, co.seqlen);
        s = qf_calibrate(o->src, &co, spill_dir, &report, NULL, err);
        qf_remove_tree(spill_dir);
        json_decref(report);
        if (s) qf_error_prefix(err, "--target-bits sensitivity pass: ");
    }
    for (int i = 0; s == QF_OK && i < mx->n; i++)
        if (!run.measured[i])
            s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: --target-bits: the sensitivity pass did not reach Linear %s",
                        ck->dir, mx->module[i]);
    free(run.measured);
    qf_plan_free(&plan);

    /* 3. the choice */
    if (s == QF_OK) s = qf_mixed_solve(mx, err);
    if (s) qf_mixed_free(mx);
    return s;
}

json_t *qf_mixed_json(const qf_mixed *mx)
{
    json_t *counts = json_object(), *mods = json_object(), *menu = json_array();
    for (int k = 0; k < mx->n_menu; k++) {
        const char *name = mx->menu[k] ? mx->menu[k]->name : "bf16";
        json_array_append_new(menu, json_string(name));
        int c = 0;
        for (int i = 0; i < mx->n; i++) c += mx->choice[i] == k;
        json_object_set_new(counts, name, json_integer(c));
    }
    for (int i = 0; i < mx->n; i++) {
        const int k = mx->choice[i];
        json_t *errs = json_object();
        for (int j = 0; j < mx->n_menu; j++)
            json_object_set_new(errs, mx->menu[j] ? mx->menu[j]->name : "bf16",
                                mx->cost[(size_t)i * mx->n_menu + j] < 0 ? json_null()
                                                                         : json_real(mx->err[(size_t)i * mx->n_menu + j]));
        json_object_set_new(mods, mx->module[i],
                            json_pack("{s:s, s:I, s:f, s:o}", "format", mx->menu[k] ? mx->menu[k]->name : "bf16", "bytes",
                                      (json_int_t)mx->cost[(size_t)i * mx->n_menu + k], "energy", mx->energy[i], "error",
                                      errs));
    }
    return json_pack("{s:f, s:f, s:I, s:I, s:o, s:s, s:{s:s, s:i, s:i}, s:f, s:o, s:o}", "target_bits", mx->target_bits,
                     "bits_per_weight", mx->bits, "bytes", (json_int_t)mx->bytes, "weights", (json_int_t)mx->weights,
                     "menu", menu, "solver", "convex-hull greedy (qf_budget.h), fused siblings share a format",
                     "sensitivity", "proxy", "sum_ij E[x_j^2] (W_ij - rtn(W)_ij)^2 (qf_sensitivity.h)", "samples",
                     mx->samples, "seqlen", mx->seqlen, "estimated_error", mx->est_error, "counts", counts, "modules",
                     mods);
}
