/* write_queue.c - a bounded queue feeding one shard writer thread (see write_queue.h). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "write_queue.h"

typedef struct qf_piece {
    int entry;
    const void *data;
    uint64_t n;
    void *owned;
    const qf_tensor *release;
    struct qf_piece *next;
} qf_piece;

struct qf_write_queue {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    qf_piece *head, *tail;
    uint64_t in_flight, max_bytes;
    int done;
    qf_status status;
    qf_error err;
    qf_st_writer *w;
    const qf_checkpoint *ck;
    int lean; /* qf_wq_set_lean */
};

#ifdef QF_TESTING
/* Fault injection for the resume tests, compiled only into the test build (build/qforge-testing,
 * tests/qf_test_hooks.c sets these from QF_TEST_KILL_AFTER_BYTES / QF_TEST_INTERRUPT_AFTER_BYTES):
 * once N bytes of tensor data have been written, SIGKILL (no cleanup, as a power loss would)
 * or SIGINT (the Ctrl-C path).  -1: off. */
long long qf_wq_test_kill_at = -1, qf_wq_test_interrupt_at = -1;
static _Atomic unsigned long long qf_bytes_written;

static void qf_maybe_die(uint64_t n)
{
    unsigned long long total = atomic_fetch_add(&qf_bytes_written, n) + n;
    if (qf_wq_test_kill_at >= 0 && (long long)total >= qf_wq_test_kill_at) raise(SIGKILL);
    if (qf_wq_test_interrupt_at >= 0 && (long long)total >= qf_wq_test_interrupt_at) {
        qf_wq_test_interrupt_at = -1;
        raise(SIGINT);
    }
}
#else
#define qf_maybe_die(n) ((void)(n)) /* the shipped library has no fault hooks */
#endif

static void *qf_wq_main(void *arg)
{
    qf_write_queue *q = arg;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!q->head && !q->done) pthread_cond_wait(&q->cv, &q->mu);
        qf_piece *p = q->head;
        if (!p) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        q->head = p->next;
        if (!q->head) q->tail = NULL;
        qf_status st = q->status;
        pthread_mutex_unlock(&q->mu);
        qf_error e;
        if (p->entry < 0) { /* qf_wq_trim */
            if (st == QF_OK) st = qf_st_writer_trim(q->w, &e);
            pthread_mutex_lock(&q->mu);
            if (st != QF_OK && q->status == QF_OK) q->status = st, q->err = e;
            pthread_mutex_unlock(&q->mu);
            free(p);
            continue;
        }
        /* pieces straight from the input mapping go in 64 MiB steps, dropping each step's
         * pages once written, so a 1 GB embedding never sits in resident memory whole */
        const uint64_t step = p->release && !p->owned ? (q->lean ? 1ull << 20 : 64ull << 20) : p->n;
        for (uint64_t off = 0; st == QF_OK && off < p->n; off += step) {
            uint64_t k = p->n - off < step ? p->n - off : step;
            st = qf_st_writer_write(q->w, p->entry, (const uint8_t *)p->data + off, k, &e);
            qf_maybe_die(k);
            if (p->release && !p->owned)
                qf_file_release(&q->ck->files[p->release->file], p->release->offset + off, k);
        }
        if (st == QF_OK && p->n == 0) st = qf_st_writer_write(q->w, p->entry, p->data, 0, &e);
        if (st == QF_OK && q->lean) st = qf_st_writer_trim(q->w, &e);
        if (p->release) qf_checkpoint_release(q->ck, p->release);
        pthread_mutex_lock(&q->mu);
        if (st != QF_OK && q->status == QF_OK) {
            q->status = st;
            q->err = e;
        }
        if (p->owned) q->in_flight -= p->n;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        free(p->owned);
        free(p);
    }
}

qf_status qf_wq_start(qf_write_queue **out, qf_st_writer *w, uint64_t max_bytes, const qf_checkpoint *ck, qf_error *err)
{
    qf_write_queue *q = calloc(1, sizeof *q);
    if (!q) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->w = w;
    q->ck = ck;
    q->max_bytes = max_bytes;
    if (pthread_create(&q->thread, NULL, qf_wq_main, q) != 0) {
        free(q);
        return qf_fail(err, QF_ERR_GENERIC, "cannot start the writer thread");
    }
    *out = q;
    return QF_OK;
}

qf_status qf_wq_push(qf_write_queue *q, int entry, const void *data, uint64_t n, void *owned, const qf_tensor *release)
{
    qf_piece *p = calloc(1, sizeof *p);
    if (!p) {
        free(owned);
        return QF_ERR_NOMEM;
    }
    *p = (qf_piece){entry, data, n, owned, release, NULL};
    pthread_mutex_lock(&q->mu);
    while (owned && q->in_flight > 0 && q->in_flight + n > q->max_bytes && q->status == QF_OK)
        pthread_cond_wait(&q->cv, &q->mu);
    qf_status st = q->status;
    if (owned) q->in_flight += n;
    if (q->tail) q->tail->next = p;
    else q->head = p;
    q->tail = p;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return st;
}

qf_status qf_wq_trim(qf_write_queue *q) { return qf_wq_push(q, -1, NULL, 0, NULL, NULL); }

void qf_wq_set_lean(qf_write_queue *q, int lean)
{
    pthread_mutex_lock(&q->mu);
    q->lean = lean;
    pthread_mutex_unlock(&q->mu);
}

qf_status qf_wq_finish(qf_write_queue *q, qf_error *err)
{
    pthread_mutex_lock(&q->mu);
    q->done = 1;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    qf_status st = q->status;
    if (st != QF_OK && err) *err = q->err;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
    return st;
}
