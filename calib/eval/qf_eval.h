/* qf_eval.h - the "ppl-512" evaluation protocol and its metrics (perplexity, KL divergence,
 * top-1 agreement), accumulated window by window.
 *
 * Owns the arithmetic of `qforge validate` so that tests and calibration use the same code:
 *   windows      consecutive non-overlapping windows of ctx tokens, the tail dropped;
 *                each window is evaluated on its own (fresh cache, positions 0..ctx-1).
 *   scored       tokens 1..ctx-1 of each window, predicted from the logits at 0..ctx-2.
 *   log-softmax  logp_v = z_v - (max z + log Σ_u exp(z_u - max z)), sum in float64.
 *   NLL          -logp[target]; PPL = exp(Σ NLL / scored) (float64 sums).
 *   KLD          per position KL(base || quant) = Σ_v p_v (logp_v - logq_v), p_v = exp(logp_v),
 *                accumulated in float64 over the full vocabulary; mean over positions, and
 *                p99 = the 0.99 quantile with linear interpolation at 0.99 · (N - 1) of the
 *                sorted values (numpy / torch.quantile "linear").
 *   top-1        share of positions where argmax_v logp_v == argmax_v logq_v (first index on
 *                ties).
 *   drift %      100 · (PPL_quant / PPL_base - 1).
 * Memory: only one window's base log-probabilities live at a time (the caller's buffer);
 * the per-position KLD values (8 bytes per scored token) are kept for the percentile.
 */
#ifndef QF_EVAL_H
#define QF_EVAL_H

#include <stdint.h>

#include "qf_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_eval {
    int ctx;             /* window length in tokens */
    int64_t vocab;       /* logits per position */
    int with_quant;      /* quant metrics are accumulated */
    int64_t windows;     /* windows added */
    int64_t scored;      /* positions scored */
    double base_nll;     /* Σ NLL of the base model */
    double quant_nll;    /* Σ NLL of the quantized model */
    double kld_sum;      /* Σ KLD */
    int64_t top1_same;   /* positions where the argmaxes agree */
    double *kld;         /* (cap) per-position KLD, owned */
    int64_t kld_cap;
    int64_t *base_arg;   /* (ctx) argmax of the current window's base rows, owned */
} qf_eval;

typedef struct qf_eval_result {
    double ppl, quant_ppl, ppl_drift_pct;
    double mean_kld, p99_kld, top1_agreement;
    int64_t scored_tokens, windows;
} qf_eval_result;

/* Number of windows of ctx tokens in n_tokens (tail dropped), capped at chunks when > 0. */
int64_t qf_eval_window_count(int64_t n_tokens, int ctx, int64_t chunks);

/* Start an evaluation of up to max_windows windows.  with_quant != 0 allocates room for
 * the per-position KLD values.  QF_ERR_USAGE for ctx < 2 or vocab < 1, QF_ERR_NOMEM. */
qf_status qf_eval_init(qf_eval *ev, int ctx, int64_t vocab, int64_t max_windows, int with_quant, qf_error *err);
void qf_eval_free(qf_eval *ev); /* NULL accepted */

/* One window: logits (ctx, vocab) of the base model for ids[0..ctx).  Rows 0..ctx-2 are
 * turned into log-probabilities in place (the base log-probs the quant pass compares with)
 * and the NLL of ids[1..ctx-1] is added (and each row's argmax kept for the quant pass).
 * Multi-threaded over positions. */
void qf_eval_add_base(qf_eval *ev, const int32_t *ids, float *logits);

/* The same window under the quantized model: quant_logits (ctx, vocab) (rows 0..ctx-2 are
 * overwritten with log-probabilities), base_logprobs from the qf_eval_add_base call of the
 * same window (immediately before).  Adds quant NLL,
 * KLD per position and top-1 agreement. */
void qf_eval_add_quant(qf_eval *ev, const int32_t *ids, const float *base_logprobs, float *quant_logits);

/* Finish: the metrics so far (quant fields 0 when with_quant is 0).  Sorts a copy of the
 * KLD values for p99; QF_ERR_NOMEM when that copy cannot be made, QF_ERR_USAGE when
 * nothing was scored. */
qf_status qf_eval_finish(const qf_eval *ev, qf_eval_result *res, qf_error *err);

/* In place: log-softmax of row x[v] (float64 sum); returns the log-sum-exp. */
double qf_log_softmax(float *x, int64_t v);

/* KL(p || q) = Σ p_v (logp_v - logq_v) for two log-probability rows, float64 accumulation. */
double qf_kld_row(const float *logp, const float *logq, int64_t v);

/* The q-quantile (0 <= q <= 1) of sorted[n] with linear interpolation at q · (n - 1). */
double qf_quantile_sorted(const double *sorted, int64_t n, double q);

#ifdef __cplusplus
}
#endif

#endif /* QF_EVAL_H */
