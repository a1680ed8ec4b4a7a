/* mixed.c - mixed precision to a size budget: candidates, items, choice (see mixed.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_plan.h"
#include "mixed.h"
#include "qf_budget.h"

#define QF_MIXED_SAMPLES 4 /* sensitivity windows (of --calib-seqlen tokens): docs/bench.md */

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

void qf_mixed_free(qf_mixed *mx)
{
    for (int i = 0; i < mx->n; i++) free(mx->module[i]);
    free(mx->module), free(mx->item), free(mx->choice), free(mx->cost), free(mx->item_cost), free(mx->item_err);
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
    mx->item = calloc((size_t)n, sizeof(int));
    mx->choice = calloc((size_t)n, sizeof(int));
    mx->cost = calloc((size_t)n * mx->n_menu, sizeof(double));
    if (!mx->module || !mx->item || !mx->choice || !mx->cost)
        return qf_fail(err, QF_ERR_NOMEM, "out of memory planning --target-bits");
    for (int i = 0; i < plan->n_mods; i++)
        if (plan->mods[i].quantized) {
            const qf_module_plan *m = &plan->mods[i];
            if (m->sliced)
                return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s': --target-bits does not handle fused 3-D experts",
                               ck->dir, ck->tensors[m->src].name);
            if (!(mx->module[mx->n++] = strdup(m->module))) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
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

/* The item a module belongs to: its fused siblings (q/k/v, gate/up), or for a MoE expert
 * every expert of the model.  vLLM builds one fused MoE kernel per block with one scheme, and
 * transformers 5.23 (integrations/compressed_tensors.py, get_experts_scheme) dequantizes the
 * experts of every block with one scheme for the whole model, so all experts share a format. */
static void qf_mixed_item_key(const char *module, char *key, size_t len)
{
    if (strstr(module, ".experts.")) snprintf(key, len, "experts");
    else qf_plan_sibling_key(module, key, len);
}

/* Items (mx->item, n_items) and their costs: the sums of their members'. */
static qf_status qf_mixed_items(qf_mixed *mx, qf_error *err)
{
    const int K = mx->n_menu;
    char (*key)[512] = malloc(sizeof *key * (size_t)mx->n);
    if (!key) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < mx->n; i++) {
        qf_mixed_item_key(mx->module[i], key[i], sizeof key[i]);
        mx->item[i] = -1;
        for (int j = 0; j < i && mx->item[i] < 0; j++)
            if (strcmp(key[j], key[i]) == 0) mx->item[i] = mx->item[j];
        if (mx->item[i] < 0) mx->item[i] = mx->n_items++;
    }
    free(key);
    mx->item_cost = calloc((size_t)mx->n_items * K, sizeof(double));
    mx->item_err = calloc((size_t)mx->n_items * K, sizeof(double));
    if (!mx->item_cost || !mx->item_err) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (int i = 0; i < mx->n; i++)
        for (int k = 0; k < K; k++) {
            const double c = mx->cost[(size_t)i * K + k];
            double *ic = &mx->item_cost[(size_t)mx->item[i] * K + k];
            *ic = c < 0 || *ic < 0 ? -1 : *ic + c;
        }
    return QF_OK;
}

/* Bits per weight with every item at its cheapest format: the smallest target that can be met. */
static double qf_mixed_least_bits(const qf_mixed *mx)
{
    double least = 0;
    for (int it = 0; it < mx->n_items; it++) {
        double m = -1;
        for (int k = 0; k < mx->n_menu; k++) {
            const double c = mx->item_cost[(size_t)it * mx->n_menu + k];
            if (c >= 0 && (m < 0 || c < m)) m = c;
        }
        least += m;
    }
    return least * 8.0 / mx->weights;
}

static qf_status qf_mixed_solve(qf_mixed *mx, qf_error *err)
{
    int *choice = calloc((size_t)mx->n_items, sizeof(int));
    if (!choice) return qf_fail(err, QF_ERR_NOMEM, "out of memory choosing --target-bits formats");
    double used = 0;
    qf_status s = qf_budget_solve(mx->n_items, mx->n_menu, mx->item_cost, mx->item_err,
                                  mx->target_bits * mx->weights / 8.0, choice, &used, &mx->est_kld, err);
    if (s == QF_OK) {
        for (int i = 0; i < mx->n; i++) mx->choice[i] = choice[mx->item[i]];
        mx->bytes = used;
        mx->bits = used * 8.0 / mx->weights;
    }
    free(choice);
    return s;
}

qf_status qf_mixed_choose(const qf_convert_opts *o, const qf_checkpoint *ck, const char *model_type, qf_mixed *mx,
                          qf_error *err)
{
    memset(mx, 0, sizeof *mx);
    if (!o->target_size && (!(o->target_bits > 0) || !isfinite(o->target_bits)))
        return qf_fail(err, QF_ERR_USAGE, "--target-bits must be a number of bits per weight > 0");
    if (!o->scheme || o->scheme->id != QF_SCHEME_W4A16_ASYM)
        return qf_fail(err, QF_ERR_USAGE, "--target-bits chooses among %s: the base scheme must be w4a16-asym",
                       QF_MIXED_MENU_NAMES);
    mx->target_bits = o->target_bits; /* or from target_size, once the candidates are known */
    const qf_scheme_id menu[] = {QF_SCHEME_W4A16_ASYM, QF_SCHEME_W4A16, QF_SCHEME_NVFP4A16, QF_SCHEME_W8A8};
    for (size_t k = 0; k < sizeof menu / sizeof *menu; k++) mx->menu[mx->n_menu++] = qf_scheme_by_id(menu[k]);
    mx->menu[mx->n_menu++] = NULL; /* bf16: kept as it is */
    mx->samples = o->sens_samples > 0 ? o->sens_samples : QF_MIXED_SAMPLES;
    mx->seqlen = o->calib.seqlen;

    /* 1. the candidates: what a uniform run with the base scheme quantizes; items and costs */
    qf_convert_opts bo = *o;
    bo.mixed = NULL;
    bo.layer_first = bo.layer_last = -1;
    qf_convert_plan plan;
    qf_status s = qf_plan_build(&bo, ck, model_type, &plan, err);
    if (s == QF_OK) s = qf_mixed_candidates(&plan, ck, mx, err);
    qf_plan_free(&plan);
    if (s == QF_OK) s = qf_mixed_items(mx, err);
    if (s == QF_OK && o->target_size) { /* what the tensors kept as they are leave to the Linears */
        double cand = 0, all = 0;
        for (int i = 0; i < ck->n_tensors; i++) all += (double)ck->tensors[i].nbytes;
        for (int i = 0; i < mx->n; i++) cand += mx->cost[(size_t)i * mx->n_menu + mx->n_menu - 1]; /* bf16 = as stored */
        mx->target_size = (double)o->target_size;
        mx->other_bytes = all - cand;
        mx->target_bits = (mx->target_size - mx->other_bytes) * 8.0 / mx->weights;
        if (mx->target_size <= mx->other_bytes)
            s = qf_fail(err, QF_ERR_USAGE, "--target-size %.0f bytes is below the %.0f bytes of the tensors kept as they "
                        "are (embeddings, lm_head, norms, ...)", mx->target_size, mx->other_bytes);
    }
    if (s == QF_OK && qf_mixed_least_bits(mx) > mx->target_bits) { /* before the measurement, not after */
        const double least = qf_mixed_least_bits(mx);
        if (o->target_size)
            s = qf_fail(err, QF_ERR_USAGE, "--target-size %.0f is below the smallest mix of %s: %.0f bytes of tensors",
                        mx->target_size, QF_MIXED_MENU_NAMES, least * mx->weights / 8.0 + mx->other_bytes);
        else
            s = qf_fail(err, QF_ERR_USAGE, "--target-bits %g is below the smallest mix of %s: %.4f bits per weight",
                        mx->target_bits, QF_MIXED_MENU_NAMES, least);
    }
    /* 2. sensitivity: each item alone in each format, KLD on calibration windows */
    if (s == QF_OK) {
        qf_ctx_log(o->ctx, "target-bits", "target-bits: measuring %d items (%d Linears) x %d formats on %d x %d "
                   "calibration tokens", mx->n_items, mx->n, mx->n_menu - 1, mx->samples, mx->seqlen);
        s = qf_mixed_measure_kld(o, mx, err);
        if (s) qf_error_prefix(err, "--target-bits sensitivity: ");
    }
    /* 3. the choice */
    if (s == QF_OK) s = qf_mixed_solve(mx, err);
    if (s) qf_mixed_free(mx);
    return s;
}

json_t *qf_mixed_json(const qf_mixed *mx)
{
    const int K = mx->n_menu;
    json_t *counts = json_object(), *mods = json_object(), *menu = json_array(), *items = json_array();
    for (int k = 0; k < K; k++) {
        const char *name = mx->menu[k] ? mx->menu[k]->name : "bf16";
        json_array_append_new(menu, json_string(name));
        int c = 0;
        for (int i = 0; i < mx->n; i++) c += mx->choice[i] == k;
        json_object_set_new(counts, name, json_integer(c));
    }
    for (int i = 0; i < mx->n; i++) {
        const int k = mx->choice[i];
        json_object_set_new(mods, mx->module[i], json_pack("{s:s, s:I, s:i}", "format", mx->menu[k] ? mx->menu[k]->name : "bf16",
                                                           "bytes", (json_int_t)mx->cost[(size_t)i * K + k], "item",
                                                           mx->item[i]));
    }
    for (int it = 0; it < mx->n_items; it++) {
        json_t *kld = json_object(), *members = json_array();
        int chosen = 0;
        for (int k = 0; k < K; k++)
            json_object_set_new(kld, mx->menu[k] ? mx->menu[k]->name : "bf16",
                                mx->item_cost[(size_t)it * K + k] < 0 ? json_null() : json_real(mx->item_err[(size_t)it * K + k]));
        for (int i = 0; i < mx->n; i++)
            if (mx->item[i] == it) json_array_append_new(members, json_string(mx->module[i])), chosen = mx->choice[i];
        json_array_append_new(items, json_pack("{s:o, s:s, s:o}", "modules", members, "format",
                                               mx->menu[chosen] ? mx->menu[chosen]->name : "bf16", "kld", kld));
    }
    json_t *j = json_pack("{s:f, s:f, s:I, s:I, s:o, s:s, s:{s:s, s:i, s:i}, s:f, s:o, s:o, s:o}", "target_bits",
                     mx->target_bits, "bits_per_weight", mx->bits, "bytes", (json_int_t)mx->bytes, "weights",
                     (json_int_t)mx->weights, "menu", menu, "solver",
                     "convex-hull greedy (qf_budget.h); fused siblings and MoE blocks share a format", "sensitivity",
                     "measure", "mean KL(float || item alone in the format, RTN, activations as served)", "samples",
                     mx->samples, "seqlen", mx->seqlen, "estimated_kld", mx->est_kld, "counts", counts, "modules", mods,
                     "items", items);
    if (j && mx->target_size > 0) { /* --target-size: the tensor bytes asked and reached */
        json_object_set_new(j, "target_size", json_integer((json_int_t)mx->target_size));
        json_object_set_new(j, "tensor_bytes", json_integer((json_int_t)(mx->bytes + mx->other_bytes)));
    }
    return j;
}
