/* qf_progress.h - progress reporting for long work (conversion, hashing, validation).
 *
 * Library code reports through a qf_progress_fn (qf_ctx.h) and draws nothing: the CLI's
 * callback (convert/cli_progress.c) redraws one bar line on a terminal, or prints a plain line
 * at each 10 % step into a pipe or a CI log.  A NULL qf_progress pointer, or one begun without
 * a callback, is accepted by every function and does nothing.  Updates are thread-safe
 * (callers may report from OpenMP workers); steps reach the callback at most ~10 times a
 * second.
 */
#ifndef QF_PROGRESS_H
#define QF_PROGRESS_H

#include <stdint.h>

#include "qf_ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qf_progress {
    char label[64];
    uint64_t total, done;
    double t_last_draw;
    qf_progress_fn fn;
    void *user;
} qf_progress;

/* Start a stage: fn(user, label, 0, total, NULL).  fn NULL makes every call a no-op. */
void qf_progress_begin(qf_progress *p, qf_progress_fn fn, void *user, const char *label, uint64_t total);
/* The same with ctx's callback (ctx may be NULL: silent). */
void qf_progress_begin_ctx(qf_progress *p, const qf_ctx *ctx, const char *label, uint64_t total);
/* Add n units of finished work. */
void qf_progress_add(qf_progress *p, uint64_t n);
/* Finish: fn(user, label, total, total, QF_PROGRESS_END). */
void qf_progress_end(qf_progress *p);

/* Monotonic seconds, for timing and rates. */
double qf_now(void);

#ifdef __cplusplus
}
#endif

#endif /* QF_PROGRESS_H */
