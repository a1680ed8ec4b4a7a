/* qf_progress.h - progress reporting for long work (conversion, hashing, validation).
 *
 * On a terminal it redraws one bar line on stderr; otherwise (a pipe, CI log) it prints a
 * plain line at each 10 % step, so logs stay short.  A NULL qf_progress pointer is accepted
 * by every function and does nothing: library code takes an optional qf_progress * and the
 * CLI decides whether to show anything.  Updates are thread-safe (callers may report from
 * OpenMP workers); drawing is rate-limited to ~10 Hz.
 */
#ifndef QF_PROGRESS_H
#define QF_PROGRESS_H

#include <stdint.h>

typedef struct qf_progress {
    char label[64];
    uint64_t total, done;
    double t_start, t_last_draw;
    int is_tty, last_decile, enabled;
    const char *unit; /* "B" shows bytes with MB/s, anything else is shown as counts */
} qf_progress;

/* Start a bar.  enabled = 0 makes every call a no-op (for --quiet / --json runs). */
void qf_progress_begin(qf_progress *p, int enabled, const char *label, uint64_t total, const char *unit);
/* Add n units of finished work. */
void qf_progress_add(qf_progress *p, uint64_t n);
/* Finish: draws 100 % and a newline. */
void qf_progress_end(qf_progress *p);

/* Monotonic seconds, for timing and rates. */
double qf_now(void);

#endif /* QF_PROGRESS_H */
