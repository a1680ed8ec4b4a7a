/* qf_ctx.h - what a caller of the library decides for a whole job: threads, device, memory
 * budget, where progress and messages go, and how to stop early (docs/library.md).
 *
 * The library reads no environment variable and prints nothing: everything the CLI used to
 * print from inside the pipeline (the progress bar, calibration's per-layer lines and memory
 * plan) goes to ctx->progress; the CLI's callback draws the bar.  A NULL ctx, or a zeroed one,
 * means: all cores, device auto, automatic memory budget, silent, never cancelled.
 *
 * Owned by the caller; the library only reads it (and polls *cancel) during the call it was
 * passed to, so one ctx may serve several jobs one after another.
 */
#ifndef QF_CTX_H
#define QF_CTX_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where calibration's big float products run; the values are qf_device_mode's (qf_gpu_calib.h). */
enum { QF_CTX_DEVICE_AUTO = 0, QF_CTX_DEVICE_CPU = 1, QF_CTX_DEVICE_GPU = 2 };

/* Progress and messages of a job, called on the thread that runs the job (or, for a progress
 * step, on one of its workers, never two at a time):
 *   message NULL        a progress step of stage ("convert", "verify", ...): done of total
 *                       units; a stage starts with done = 0, steps come at most ~10 per second
 *                       with done increasing;
 *   message "end"       the stage is finished (done == total): QF_PROGRESS_END;
 *   any other message   one line of information (calibration's memory plan, a layer done),
 *                       without a trailing newline; done and total are 0. */
typedef void (*qf_progress_fn)(void *user, const char *stage, uint64_t done, uint64_t total, const char *message);
#define QF_PROGRESS_END "end"

typedef struct qf_ctx {
    int threads;              /* worker threads; 0: all cores */
    int device;               /* QF_CTX_DEVICE_*: calibration's products on the GPU (auto: when there is one) */
    uint64_t max_memory;      /* host-memory budget in bytes; 0: 3/4 of the host's */
    qf_progress_fn progress;  /* NULL: silent */
    void *user;               /* passed to progress */
    volatile int *cancel;     /* NULL, or a flag the job polls between tensors and layers: once it is
                               * non-zero the job stops with QF_ERR_INTERRUPTED (a signal handler may
                               * set it) */
} qf_ctx;

/* 1 when ctx asks the running job to stop. */
static inline int qf_ctx_cancelled(const qf_ctx *ctx) { return ctx && ctx->cancel && *ctx->cancel; }

/* An information line through ctx->progress (printf format); nothing when there is no callback. */
void qf_ctx_log(const qf_ctx *ctx, const char *stage, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif

#endif /* QF_CTX_H */
