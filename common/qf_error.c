/* qf_error.c - formatting of qf_error messages (see qf_error.h). */
#include "qf_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void qf_sanitize_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

qf_status qf_fail(qf_error *err, qf_status code, const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    qf_sanitize_line(err->msg);
    return code;
}

void qf_error_prefix(qf_error *err, const char *fmt, ...)
{
    if (!err) return;
    char prefix[QF_ERROR_MSG_MAX], old[QF_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t lp = strnlen(prefix, sizeof err->msg - 1);
    memcpy(err->msg, prefix, lp);
    size_t lo = strnlen(old, sizeof err->msg - 1 - lp);
    memcpy(err->msg + lp, old, lo);
    err->msg[lp + lo] = 0;
    qf_sanitize_line(err->msg);
}

const char *qf_status_name(qf_status code)
{
    switch (code) {
    case QF_OK: return "ok";
    case QF_ERR_GENERIC: return "error";
    case QF_ERR_USAGE: return "usage";
    case QF_ERR_IO: return "io";
    case QF_ERR_FORMAT: return "format";
    case QF_ERR_UNSUPPORTED: return "unsupported";
    case QF_ERR_VERIFY: return "verify";
    case QF_ERR_THRESHOLD: return "threshold";
    case QF_ERR_NOMEM: return "nomem";
    case QF_ERR_CUDA: return "cuda";
    case QF_ERR_INTERRUPTED: return "interrupted";
    case QF_ERR_SECURITY: return "security";
    case QF_ERR_NONFINITE: return "nonfinite";
    case QF_ERR_NO_SIGNATURE: return "nosignature";
    case QF_ERR_BAD_SIGNATURE: return "badsignature";
    case QF_ERR_WRONG_KEY: return "wrongkey";
    case QF_ERR_FILESET: return "fileset";
    }
    return "error";
}
