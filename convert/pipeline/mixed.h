/* mixed.h - internal to convert/: mixed precision to a size budget (--target-bits).
 *
 * Owns the choice of a format per Linear before the plan is made.  The candidates are the
 * Linears a uniform conversion with the menu's first scheme would quantize (the default and
 * --ignore rules apply unchanged); each may take any menu entry it fits: w4a16-asym (int4 g128
 * with zero points), w4a16 (int4 g128 symmetric), nvfp4a16, w8a8 (int8 per channel, int8
 * activations per token) or kept bf16.  Fused siblings (q/k/v, gate/up) form one item that takes
 * one format, because vLLM fuses them into one kernel with one scheme; so do all the MoE
 * experts of the model (vLLM: one scheme per block; transformers 5.23: one for all blocks).
 * Sensitivity (mixed_kld.c): the mean KL divergence from the float model that rounding the
 * item alone into each format adds, measured with the model runner on a few calibration
 * windows, activations quantized as served.  The cost of a format is the exact bytes its
 * packed tensors take (weights, scales, zero points, shape / global-scale tensors).
 * qf_budget_solve then minimises the summed KLD (additivity is the model: docs/bench.md
 * measures how well it holds) with total bytes <= target_bits / 8 x the candidates' weight
 * count (bits per weight counted over the candidate Linears only: embeddings and lm_head stay
 * as they are in every run and are not part of the budget).
 */
#ifndef QF_MIXED_H
#define QF_MIXED_H

#include <jansson.h>

#include "qf_convert.h"
#include "qf_safetensors.h"

#define QF_MIXED_MENU_MAX 8

typedef struct qf_mixed {
    int n;                      /* candidate Linears, sorted by module name */
    char **module;              /* [n] owned */
    int *item;                  /* [n] the item each belongs to */
    int *choice;                /* [n] index into menu */
    double *cost;               /* [n * n_menu] bytes, -1: does not fit */
    int n_items;
    double *item_cost;          /* [n_items * n_menu] bytes, -1: some member does not fit */
    double *item_err;           /* [n_items * n_menu] measured mean KLD, -1: not available */
    int n_menu;
    const qf_scheme *menu[QF_MIXED_MENU_MAX]; /* NULL entry: kept as it is (bf16) */
    double target_bits, bits;   /* asked (or from target_size); achieved (8 x bytes / weights) */
    double target_size, other_bytes; /* --target-size (0: not given); bytes of the tensors not chosen for */
    double bytes, weights, est_kld;
    int samples, seqlen;        /* of the sensitivity pass */
} qf_mixed;

/* The default menu's names, for help and messages. */
#define QF_MIXED_MENU_NAMES "w4a16-asym, w4a16, nvfp4a16, w8a8, bf16"

/* Measure and choose (above); o->target_bits > 0 or o->target_size > 0.  Refusals are QF_ERR_USAGE /
 * QF_ERR_UNSUPPORTED with one line naming the thing. */
qf_status qf_mixed_choose(const qf_convert_opts *o, const qf_checkpoint *ck, const char *model_type, qf_mixed *mx,
                          qf_error *err);
/* mixed_kld.c: fill mx->item_err (mx->samples windows of mx->seqlen calibration tokens). */
qf_status qf_mixed_measure_kld(const qf_convert_opts *o, qf_mixed *mx, qf_error *err);
/* 1 when module is a candidate (then *s is its scheme, NULL = kept as it is); 0 otherwise. */
int qf_mixed_find(const qf_mixed *mx, const char *module, const qf_scheme **s);
/* The choice as JSON (manifest "mixed_precision"): target, achieved bits, bytes, per-format
 * counts, per-module format and bytes, per-item measured KLD per format.  New reference. */
json_t *qf_mixed_json(const qf_mixed *mx);
void qf_mixed_free(qf_mixed *mx);

#endif /* QF_MIXED_H */
