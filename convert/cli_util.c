/* cli_util.c - error reporting and small helpers shared by the subcommands. */
#include <jansson.h>
#include <stdio.h>
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
