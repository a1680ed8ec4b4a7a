/* budget.c - multiple-choice knapsack by convex-hull greedy (qf_budget.h). */
#include <stdlib.h>

#include "qf_budget.h"

typedef struct {
    double slope; /* error removed per byte */
    double dcost;
    int item, step, to;
} qf_budget_step;

static int qf_budget_step_cmp(const void *a, const void *b)
{
    const qf_budget_step *x = a, *y = b;
    if (x->slope != y->slope) return x->slope > y->slope ? -1 : 1;
    if (x->item != y->item) return x->item - y->item;
    return x->step - y->step;
}

/* The options of one item on its lower convex hull, cheapest first, into hull[] (returns
 * how many). */
static int qf_budget_hull(int n_opts, const double *cost, const double *err, int *hull)
{
    int order[64], n = 0;
    for (int k = 0; k < n_opts && n < 64; k++)
        if (cost[k] >= 0) order[n++] = k;
    for (int a = 1; a < n; a++) /* insertion sort: by cost, then error, then index */
        for (int b = a; b > 0; b--) {
            const int p = order[b - 1], q = order[b];
            if (cost[p] < cost[q] || (cost[p] == cost[q] && (err[p] < err[q] || (err[p] == err[q] && p < q)))) break;
            order[b - 1] = q, order[b] = p;
        }
    int h = 0;
    for (int a = 0; a < n; a++) {
        const int k = order[a];
        if (h && err[k] >= err[hull[h - 1]]) continue; /* costs as much or more, not better */
        /* drop the last hull point while it lies on or above the line from the one before it to k */
        while (h >= 2) {
            const int i = hull[h - 2], j = hull[h - 1];
            const double s1 = (err[i] - err[j]) / (cost[j] - cost[i]), s2 = (err[j] - err[k]) / (cost[k] - cost[j]);
            if (s2 < s1) break;
            h--;
        }
        hull[h++] = k;
    }
    return h;
}

qf_status qf_budget_solve(int n_items, int n_opts, const double *cost, const double *err, double budget, int *choice,
                          double *total_cost, double *total_err, qf_error *e)
{
    if (n_opts > 64) return qf_fail(e, QF_ERR_USAGE, "budget: at most 64 options per item (%d given)", n_opts);
    int *hull = malloc(sizeof(int) * (size_t)(n_items ? n_items : 1) * (size_t)n_opts);
    int *nh = malloc(sizeof(int) * (size_t)(n_items ? n_items : 1));
    qf_budget_step *steps = malloc(sizeof *steps * (size_t)(n_items ? n_items : 1) * (size_t)n_opts);
    int *at = calloc((size_t)(n_items ? n_items : 1), sizeof(int)), *blocked = calloc((size_t)(n_items ? n_items : 1), sizeof(int));
    qf_status st = QF_OK;
    if (!hull || !nh || !steps || !at || !blocked) st = qf_fail(e, QF_ERR_NOMEM, "budget: out of memory");
    double used = 0;
    int ns = 0;
    for (int i = 0; st == QF_OK && i < n_items; i++) {
        const double *c = cost + (size_t)i * n_opts, *r = err + (size_t)i * n_opts;
        int *hi = hull + (size_t)i * n_opts;
        nh[i] = qf_budget_hull(n_opts, c, r, hi);
        if (nh[i] == 0) {
            st = qf_fail(e, QF_ERR_USAGE, "budget: item %d has no available option", i);
            break;
        }
        used += c[hi[0]];
        for (int s = 1; s < nh[i]; s++) {
            const double dc = c[hi[s]] - c[hi[s - 1]];
            steps[ns++] = (qf_budget_step){(r[hi[s - 1]] - r[hi[s]]) / dc, dc, i, s, hi[s]};
        }
    }
    if (st == QF_OK && used > budget)
        st = qf_fail(e, QF_ERR_USAGE, "budget of %.0f bytes is below the smallest possible size, %.0f bytes", budget, used);
    if (st == QF_OK) {
        qsort(steps, (size_t)ns, sizeof *steps, qf_budget_step_cmp);
        for (int k = 0; k < ns; k++) {
            const qf_budget_step *s = &steps[k];
            if (blocked[s->item] || at[s->item] != s->step - 1) continue;
            if (used + s->dcost > budget) {
                blocked[s->item] = 1;
                continue;
            }
            used += s->dcost;
            at[s->item] = s->step;
        }
        double te = 0, tc = 0;
        for (int i = 0; i < n_items; i++) {
            choice[i] = hull[(size_t)i * n_opts + at[i]];
            tc += cost[(size_t)i * n_opts + choice[i]];
            te += err[(size_t)i * n_opts + choice[i]];
        }
        if (total_cost) *total_cost = tc;
        if (total_err) *total_err = te;
    }
    free(hull), free(nh), free(steps), free(at), free(blocked);
    return st;
}
