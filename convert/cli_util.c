/* cli_util.c - error reporting and small helpers shared by the subcommands. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_cli.h"

int qf_cli_report_error(const char *cmd, const qf_error *err, int json)
{
    int code = err->code ? (int)err->code : 1;
    if (json) {
        json_t *o = json_pack("{s:b, s:s, s:s, s:i}", "ok", 0, "error", err->msg, "code",
                              qf_status_name(err->code), "exit_code", code);
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    }
    fprintf(stderr, "qforge %s: error: %s\n", cmd, err->msg);
    return code;
}

int qf_cli_is_help(const char *s) { return strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0; }

qf_status qf_cli_int(const char *opt, const char *v, int *out, qf_error *err)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < INT_MIN || x > INT_MAX)
        return qf_fail(err, QF_ERR_USAGE, "%s '%s' is not an integer", opt, v);
    *out = (int)x;
    return QF_OK;
}

qf_status qf_cli_float(const char *opt, const char *v, float *out, qf_error *err)
{
    char *end;
    float x = strtof(v, &end);
    if (end == v || *end || !isfinite(x)) return qf_fail(err, QF_ERR_USAGE, "%s '%s' is not a number", opt, v);
    *out = x;
    return QF_OK;
}

qf_status qf_cli_u64(const char *opt, const char *v, uint64_t *out, qf_error *err)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || errno || v[0] == '-')
        return qf_fail(err, QF_ERR_USAGE, "%s '%s' is not a non-negative integer", opt, v);
    *out = (uint64_t)x;
    return QF_OK;
}
