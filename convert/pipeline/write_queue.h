/* write_queue.h - internal to convert/pipeline: overlap quantizing with writing.
 *
 * Owns one writer thread per output shard.  The converter pushes (entry, bytes) pieces in
 * entry order and goes on quantizing the next module while the thread writes and hashes;
 * pushes block while more than max_bytes of owned buffers are in flight, which bounds
 * memory.  A pushed piece may own its buffer (freed once written) and may name a source
 * tensor whose mapped pages are dropped once written.
 */
#ifndef QF_WRITE_QUEUE_H
#define QF_WRITE_QUEUE_H

#include "qf_safetensors.h"
#include "qf_st_writer.h"

typedef struct qf_write_queue qf_write_queue;

qf_status qf_wq_start(qf_write_queue **q, qf_st_writer *w, uint64_t max_bytes, const qf_checkpoint *ck, qf_error *err);
/* Returns the writer's failure (if it already failed) so the producer can stop early; the
 * piece is then freed without being written. */
qf_status qf_wq_push(qf_write_queue *q, int entry, const void *data, uint64_t n, void *owned, const qf_tensor *release);
/* Once the pieces pushed so far are written, the writer's buffer is trimmed
 * (qf_st_writer_trim): before the producer waits a while for more. */
qf_status qf_wq_trim(qf_write_queue *q);
/* Lean mode, for a writer working beside calibration: mapped input goes in 1 MiB steps (its
 * pages dropped after each) and the writer's buffer is trimmed after each piece, so what the
 * writer holds resident stays around 1 MiB instead of up to 8 MiB + 64 MiB. */
void qf_wq_set_lean(qf_write_queue *q, int lean);
/* Waits for every piece, stops the thread, frees q.  Returns the first write error (in err);
 * the writer itself stays open for the caller to close or abort. */
qf_status qf_wq_finish(qf_write_queue *q, qf_error *err);

#endif
