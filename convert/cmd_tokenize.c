/* cmd_tokenize.c - `qforge tokenize MODEL_DIR FILE [--out IDS.i32] [--json]`: encode a text
 * file with MODEL_DIR/tokenizer.json, optionally write the ids as little-endian int32. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_cli.h"
#include "qf_fs.h"
#include "qf_tokenizer.h"

static const char qf_tokenize_usage[] =
    "usage: qforge tokenize MODEL_DIR FILE [--out IDS.i32] [--json]\n"
    "\n"
    "Encode FILE (read whole, bytes as-is, must be UTF-8) with MODEL_DIR/tokenizer.json the way\n"
    "Hugging Face `tokenizer.encode(text, add_special_tokens=False)` does: added tokens such as\n"
    "<|endoftext|> found in the text become their ids, no BOS/EOS is added.\n"
    "\n"
    "options:\n"
    "  --out PATH  write the ids to PATH as little-endian int32 (4 bytes per token); the file\n"
    "              appears only when complete (written beside it, then renamed)\n"
    "  --json      print {\"tokens\": N} instead of \"N tokens\" (errors as a JSON object too)\n"
    "  -h, --help  this text\n"
    "\n"
    "example:\n"
    "  qforge tokenize tests/data/tiny-llama tests/data/eval.txt --out /tmp/ids.i32\n"
    "  263069 tokens\n";

/* Temporary output file, removed if a signal interrupts the run (see qf_tokenize_on_signal). */
static char qf_tokenize_tmp[4096];
static volatile sig_atomic_t qf_tokenize_tmp_live;

static void qf_tokenize_on_signal(int sig)
{
    if (qf_tokenize_tmp_live) unlink(qf_tokenize_tmp);
    signal(sig, SIG_DFL);
    _exit(QF_ERR_INTERRUPTED);
}

static qf_status qf_tokenize_read(const char *path, char **out, size_t *len, qf_error *err)
{
    return qf_file_read_all(path, (size_t)1 << 34, out, len, err);
}

/* Write ids as little-endian int32 to path.tmp-<pid>, fsync, rename onto path. */
static qf_status qf_tokenize_write(const char *path, const int32_t *ids, size_t n, qf_error *err)
{
    if ((size_t)snprintf(qf_tokenize_tmp, sizeof qf_tokenize_tmp, "%s.tmp-%ld", path, (long)getpid()) >=
        sizeof qf_tokenize_tmp)
        return qf_fail(err, QF_ERR_USAGE, "%s: path too long", path);
    FILE *f = fopen(qf_tokenize_tmp, "wb");
    if (!f) return qf_fail(err, QF_ERR_IO, "%s: cannot create: %s", qf_tokenize_tmp, strerror(errno));
    qf_tokenize_tmp_live = 1;
    unsigned char chunk[4096];
    size_t i = 0;
    int ok = 1;
    while (ok && i < n) {
        size_t k = 0;
        for (; k < sizeof chunk / 4 && i < n; k++, i++) {
            uint32_t v = (uint32_t)ids[i];
            chunk[4 * k] = (unsigned char)v, chunk[4 * k + 1] = (unsigned char)(v >> 8);
            chunk[4 * k + 2] = (unsigned char)(v >> 16), chunk[4 * k + 3] = (unsigned char)(v >> 24);
        }
        ok = fwrite(chunk, 4, k, f) == k;
    }
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int saved = errno;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(qf_tokenize_tmp, path) == 0) {
        qf_tokenize_tmp_live = 0;
        return QF_OK;
    }
    saved = errno ? errno : saved;
    unlink(qf_tokenize_tmp);
    qf_tokenize_tmp_live = 0;
    return qf_fail(err, QF_ERR_IO, "%s: cannot write: %s", path, strerror(saved));
}

int qf_cmd_tokenize(int argc, char **argv)
{
    const char *dir = NULL, *file = NULL, *out = NULL;
    int json = 0;
    qf_error err = {0};
    for (int i = 1; i < argc; i++) {
        if (qf_cli_is_help(argv[i])) {
            fputs(qf_tokenize_usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--out") == 0) {
            if (++i >= argc) {
                qf_fail(&err, QF_ERR_USAGE, "--out needs a path (qforge tokenize --help)");
                return qf_cli_report_error("tokenize", &err, json);
            }
            out = argv[i];
        } else if (argv[i][0] == '-' && argv[i][1]) {
            qf_fail(&err, QF_ERR_USAGE, "unknown option '%s' (qforge tokenize --help)", argv[i]);
            return qf_cli_report_error("tokenize", &err, json);
        } else if (!dir) {
            dir = argv[i];
        } else if (!file) {
            file = argv[i];
        } else {
            qf_fail(&err, QF_ERR_USAGE, "unexpected argument '%s' (qforge tokenize --help)", argv[i]);
            return qf_cli_report_error("tokenize", &err, json);
        }
    }
    if (!dir || !file) {
        qf_fail(&err, QF_ERR_USAGE, "need MODEL_DIR and FILE (qforge tokenize --help)");
        return qf_cli_report_error("tokenize", &err, json);
    }

    char tok_path[4096];
    if ((size_t)snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", dir) >= sizeof tok_path) {
        qf_fail(&err, QF_ERR_USAGE, "%s: path too long", dir);
        return qf_cli_report_error("tokenize", &err, json);
    }
    qf_tokenizer *tok = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0, n = 0;
    qf_status st = qf_tokenizer_load(tok_path, &tok, &err);
    if (st == QF_OK) st = qf_tokenize_read(file, &text, &len, &err);
    if (st == QF_OK && (st = qf_tokenizer_encode(tok, text, len, &ids, &n, &err)) != QF_OK)
        qf_error_prefix(&err, "%s: ", file);
    if (st == QF_OK && out) {
        signal(SIGINT, qf_tokenize_on_signal);
        signal(SIGTERM, qf_tokenize_on_signal);
        st = qf_tokenize_write(out, ids, n, &err);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
    }
    free(ids);
    free(text);
    qf_tokenizer_free(tok);
    if (st != QF_OK) return qf_cli_report_error("tokenize", &err, json);
    if (json) printf("{\"tokens\": %zu}\n", n);
    else printf("%zu tokens\n", n);
    return 0;
}
