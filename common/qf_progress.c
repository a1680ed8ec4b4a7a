/* qf_progress.c - progress steps to a callback (see qf_progress.h; drawing is the CLI's). */
#include "qf_progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

double qf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void qf_progress_begin(qf_progress *p, qf_progress_fn fn, void *user, const char *label, uint64_t total)
{
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->fn = fn, p->user = user;
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total ? total : 1;
    p->t_last_draw = qf_now();
    if (fn) fn(user, p->label, 0, p->total, NULL);
}

void qf_progress_begin_ctx(qf_progress *p, const qf_ctx *ctx, const char *label, uint64_t total)
{
    qf_progress_begin(p, ctx ? ctx->progress : NULL, ctx ? ctx->user : NULL, label, total);
}

void qf_progress_add(qf_progress *p, uint64_t n)
{
    if (!p || !p->fn) return;
#pragma omp critical(qf_progress)
    {
        p->done += n;
        double t = qf_now();
        if (t - p->t_last_draw > 0.1) {
            p->t_last_draw = t;
            p->fn(p->user, p->label, p->done, p->total, NULL);
        }
    }
}

void qf_progress_end(qf_progress *p)
{
    if (!p || !p->fn) return;
    p->done = p->total;
    p->fn(p->user, p->label, p->total, p->total, QF_PROGRESS_END);
}

void qf_ctx_log(const qf_ctx *ctx, const char *stage, const char *fmt, ...)
{
    if (!ctx || !ctx->progress) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    ctx->progress(ctx->user, stage, 0, 0, line);
}
