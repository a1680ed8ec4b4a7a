/* qf_convert.h - internal to convert/: the conversion pipeline behind `qforge convert`.
 *
 * Owns the story of one conversion: open the checkpoint and its config, decide which
 * tensors are quantized Linear weights (the rest pass through), plan the output shards,
 * quantize tensor by tensor straight from the memory-mapped input into the shard writers
 * (hashing while writing), copy the tokenizer and other side files, write config.json with
 * the compressed-tensors quantization_config and the sealed manifest, and finally rename the
 * temporary folder "<out>.qforge-tmp" into place.  On any failure or interruption the
 * temporary folder is removed and the destination is never created.
 */
#ifndef QF_CONVERT_H
#define QF_CONVERT_H

#include <stdint.h>

#include "qf_error.h"
#include "qf_scheme.h"

#define QF_MAX_IGNORE 32

typedef struct qf_convert_opts {
    const char *src;             /* hub folder */
    const char *out;             /* destination folder (must not exist unless force) */
    const qf_scheme *scheme;
    const char *method;          /* "rtn" */
    const char *ignore[QF_MAX_IGNORE]; /* extra POSIX extended regexes on module names */
    int n_ignore;
    uint64_t max_shard_bytes;    /* 0 = 5 GB (the Hugging Face default) */
    int force;                   /* replace an existing destination */
    int progress;                /* draw a progress bar on stderr */
    int threads;                 /* 0 = all cores */
} qf_convert_opts;

typedef struct qf_convert_stats {
    uint64_t bytes_in;      /* bytes of input weights read */
    uint64_t bytes_out;     /* bytes of all artifact files written */
    int n_quantized;        /* Linear weights quantized */
    int n_kept;             /* tensors passed through */
    int n_shards;
    double seconds;         /* wall time of the whole conversion */
    double seconds_weights; /* time spent reading, quantizing and writing weights */
    long peak_rss_kb;       /* getrusage maxrss at the end */
} qf_convert_stats;

qf_status qf_convert_run(const qf_convert_opts *o, qf_convert_stats *st, qf_error *err);

/* Set by the SIGINT/SIGTERM handler the CLI installs; the pipeline checks it between tensors. */
extern volatile int qf_convert_interrupted;

#endif /* QF_CONVERT_H */
