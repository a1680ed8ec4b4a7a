/* qf_budget.h - choose one option per item to minimise the summed error under a byte budget
 * (the solver behind --target-bits; a multiple-choice knapsack).
 *
 * Owns the choice only: each item (a Linear, or fused siblings that must share a format) has
 * n_opts options with an exact cost in bytes and an estimated error; options with a negative
 * cost are not available for that item.  The solver starts every item at its cheapest
 * option, keeps per item the lower convex hull of (cost, error) (an option that costs more
 * and is not better, or that lies above the line between its neighbours, is never worth its
 * bytes), then takes the upgrade steps of all items in one order, steepest error drop per
 * byte first (ties: lower item, then lower step), each when it fits in the bytes left; an
 * item whose step does not fit takes no later step.  This is the greedy of the LP relaxation
 * (Sinha & Zoltners), optimal up to at most one item's step, and deterministic.  No
 * allocation survives the call; choice[] is the caller's.
 */
#ifndef QF_BUDGET_H
#define QF_BUDGET_H

#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cost[i * n_opts + k] (bytes, < 0: not available), err[i * n_opts + k] (>= 0) for item i,
 * option k.  Fills choice[n_items] with option indices whose summed cost is <= budget.
 * *total_cost / *total_err (may be NULL) receive the sums.  QF_ERR_USAGE, naming the
 * smallest cost that is possible, when even the cheapest options do not fit; QF_ERR_USAGE
 * when an item has no option. */
qf_status qf_budget_solve(int n_items, int n_opts, const double *cost, const double *err, double budget, int *choice,
                          double *total_cost, double *total_err, qf_error *e);

#ifdef __cplusplus
}
#endif

#endif /* QF_BUDGET_H */
