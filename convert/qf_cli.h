/* qf_cli.h - internal to convert/: the subcommands of the qforge CLI and their shared helpers.
 *
 * Each subcommand lives in convert/cmd_<name>.c as `int qf_cmd_<name>(int argc, char **argv)`
 * (argv[0] is the subcommand name) and returns the process exit code: 0 on success, else a
 * qf_status value (docs/cli.md).  Only convert/ prints to the user and exits.
 */
#ifndef QF_CLI_H
#define QF_CLI_H

#include <stdint.h>

#include "qf_error.h"

int qf_cmd_convert(int argc, char **argv);
int qf_cmd_verify(int argc, char **argv);
int qf_cmd_inspect(int argc, char **argv);
int qf_cmd_tokenize(int argc, char **argv);
int qf_cmd_validate(int argc, char **argv);
int qf_cmd_synth(int argc, char **argv);
int qf_cmd_merge(int argc, char **argv);
int qf_cmd_bench(int argc, char **argv);
int qf_cmd_sign(int argc, char **argv);
int qf_cmd_hash(int argc, char **argv);

/* Report a failure: "qforge <cmd>: error: <msg>" on stderr, or with json set one object
 * {"ok": false, "error": msg, "code": name, "exit_code": n} on stdout.  Returns err->code
 * (the exit code). */
int qf_cli_report_error(const char *cmd, const qf_error *err, int json);

/* `qforge inspect` of a .gguf file or a folder whose only weights are one: prints the file's
 * own summary and returns the exit code; -1 when path is not GGUF (inspect goes on). */
int qf_inspect_gguf(const char *path, int json, int list);

/* The progress bar the CLI draws for the library's progress callback (qf_ctx.h): user is a
 * qf_cli_bar.  enabled = 0 draws nothing (--quiet, --json); lines = 1 prints the library's
 * information lines (calibration's memory plan and per-layer lines) on stderr. */
typedef struct qf_cli_bar {
    int enabled, lines;
    const char *unit; /* "B" shows bytes with MB/s, anything else is shown as counts */
    double t_start;
    int is_tty, last_decile;
} qf_cli_bar;
void qf_cli_progress(void *user, const char *stage, uint64_t done, uint64_t total, const char *message);

/* True when s is -h or --help. */
int qf_cli_is_help(const char *s);

/* The value v of a numeric option opt: all of v must be the number (no "12abc", no empty
 * string), finite, and for qf_cli_int an integer that fits an int.  Else QF_ERR_USAGE
 * naming the option and the text.  Ranges are the caller's to check. */
qf_status qf_cli_int(const char *opt, const char *v, int *out, qf_error *err);
qf_status qf_cli_float(const char *opt, const char *v, float *out, qf_error *err);
qf_status qf_cli_u64(const char *opt, const char *v, uint64_t *out, qf_error *err);

#endif /* QF_CLI_H */
