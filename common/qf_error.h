/* qf_error.h - the one error type of qforge.
 *
 * Every library function that can fail returns a qf_status and, when it fails, fills a
 * caller-owned qf_error with a one-line message that names the thing at fault (file,
 * tensor, byte offset, expected vs found).  Library code never prints and never exits;
 * only convert/ (the CLI) turns a qf_error into a line on stderr and an exit code.
 * Status values reach users as exit codes (docs/cli.md), so they are pinned: append only.
 */
#ifndef QF_ERROR_H
#define QF_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum qf_status {
    QF_OK              = 0,
    QF_ERR_GENERIC     = 1,  /* reserved for "something failed" where nothing finer applies */
    QF_ERR_USAGE       = 2,  /* bad command-line arguments or API misuse by the caller */
    QF_ERR_IO          = 3,  /* a file could not be opened, read, written, renamed (disk full too) */
    QF_ERR_FORMAT      = 4,  /* input is malformed, truncated or lies about itself */
    QF_ERR_UNSUPPORTED = 5,  /* valid input that qforge does not handle (architecture, dtype, scheme) */
    QF_ERR_VERIFY      = 6,  /* integrity check failed: a hash, size or file list differs */
    QF_ERR_THRESHOLD   = 7,  /* validate: a quality threshold (--max-kld, --max-ppl-drift) exceeded */
    QF_ERR_NOMEM       = 8,  /* an allocation failed */
    QF_ERR_CUDA        = 9,  /* a CUDA / cuBLAS call failed */
    QF_ERR_INTERRUPTED = 10, /* SIGINT / SIGTERM: work so far is kept for a later resume */
    QF_ERR_SECURITY    = 11, /* refused: input asks for something unsafe (pickle global not allowed) */
    QF_ERR_NONFINITE   = 12, /* validate: a metric is NaN or infinite, so no threshold can pass */
    QF_ERR_NO_SIGNATURE  = 13, /* verify --key: the folder has no signature (model.sig) */
    QF_ERR_BAD_SIGNATURE = 14, /* verify --key: the signature is malformed or does not verify */
    QF_ERR_WRONG_KEY     = 15, /* verify --key: signed, but with a different key */
    QF_ERR_FILESET       = 16, /* verify --key: a signed file is missing or an unsigned one present */
} qf_status;

#define QF_ERROR_MSG_MAX 1024

typedef struct qf_error {
    qf_status code;
    char msg[QF_ERROR_MSG_MAX]; /* one line, no trailing newline */
} qf_error;

/* Record a failure: formats the message into err (err may be NULL: then only the code is
 * returned).  Returns code, so call sites read `return qf_fail(err, QF_ERR_IO, "...", ...);`.
 * Control characters in the formatted text are replaced by '?', so hostile bytes echoed
 * from an input file cannot break the one-line contract. */
qf_status qf_fail(qf_error *err, qf_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prefix an existing message with more context ("reading X: " + old message). */
void qf_error_prefix(qf_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Stable short name of a status ("io", "format", ...), for --json output. */
const char *qf_status_name(qf_status code);

/* Forward a failure unchanged: QF_TRY(qf_something(..., err)); */
#define QF_TRY(expr)                          \
    do {                                      \
        qf_status qf_try_s_ = (expr);         \
        if (qf_try_s_ != QF_OK) return qf_try_s_; \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* QF_ERROR_H */
