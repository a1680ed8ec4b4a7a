/* qf_validate.h - the measurement behind `qforge validate` (docs/validate.md): perplexity of a
 * base model on a text under the ppl-512 protocol and, with an artifact, its drift (KLD,
 * top-1, PPL drift) against the base, both through the CPU model runner.
 *
 * Story: load the base model -> tokenize the text with its tokenizer.json -> cut windows ->
 * load the artifact (same runner) -> for each window: base logits -> log-probs, NLL; quant
 * logits -> NLL, KLD, top-1 -> metrics.  Progress ("validate", in tokens) and the facts of the
 * run (tokens, windows, sliding windows, the artifact's packing) go to ctx's callback; the
 * caller prints, records (qf_manifest_update) and applies thresholds.
 */
#ifndef QF_VALIDATE_H
#define QF_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "qf_ctx.h"
#include "qf_error.h"
#include "qf_eval.h"
#include "qf_hash.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_validate_opts {
    const char *base;    /* float model folder (its tokenizer.json tokenizes the text) */
    const char *quant;   /* artifact folder, or NULL: the base's perplexity only */
    const char *text;    /* text file */
    int window;          /* tokens per window (the CLI's --ctx; 512 for ppl-512) */
    long long chunks;    /* > 0: only the first chunks windows */
    int act_quant;       /* emulate the artifact's activation quantization */
    const qf_ctx *ctx;   /* threads, progress, information lines (NULL: defaults, silent) */
} qf_validate_opts;

typedef struct qf_validate_result {
    qf_eval_result r;     /* the metrics (qf_eval.h) */
    int64_t windows;      /* windows evaluated */
    size_t n_tokens;      /* tokens of the whole text */
    qf_hash128 text_hash; /* XXH3-128 of the text file */
    double seconds;       /* of the forward passes */
    double tokens_per_s;  /* windows x window / seconds */
    int threads;
} qf_validate_result;

/* QF_ERR_USAGE for a text shorter than one window, a token outside the vocabulary, vocabularies
 * that differ; load and runner errors name the file / module. */
qf_status qf_validate(const qf_validate_opts *o, qf_validate_result *res, qf_error *err);

#ifdef __cplusplus
}
#endif

#endif /* QF_VALIDATE_H */
