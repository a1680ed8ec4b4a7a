/* cmd_hash.c - `qforge hash`: the SHA-256 of every file of a folder, as sha256sum prints it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_cli.h"
#include "qf_sign.h"

static void qf_hash_help(void)
{
    printf("usage: qforge hash DIR [--json]\n\n"
           "Read every regular file under DIR (all cores) and print its SHA-256 in `sha256sum`\n"
           "format (\"HEX  NAME\", names relative to DIR, sorted), so `cd DIR && sha256sum -c`\n"
           "checks the listing; the digests are those model hubs show for large files.  Skipped:\n"
           ".git, .gitattributes, .github, .gitignore.  --json: [{\"path\", \"size\", \"sha256\"}].\n\n"
           "example:\n  qforge hash /tmp/tiny-w4 > /tmp/tiny-w4.sha256\n");
}

int qf_cmd_hash(int argc, char **argv)
{
    const char *dir = NULL;
    int json = 0;
    qf_error err = {0};
    for (int i = 1; i < argc; i++) {
        if (qf_cli_is_help(argv[i])) {
            qf_hash_help();
            return 0;
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-' || dir) {
            qf_fail(&err, QF_ERR_USAGE, "unexpected argument '%s' (qforge hash --help)", argv[i]);
            return qf_cli_report_error("hash", &err, json);
        } else dir = argv[i];
    }
    if (!dir) {
        qf_fail(&err, QF_ERR_USAGE, "need DIR (qforge hash --help)");
        return qf_cli_report_error("hash", &err, json);
    }
    /* git's files only: model.sig is a file of the folder like any other here */
    qf_file_list l;
    qf_status s = qf_dir_list_files(dir, qf_sign_default_ignore + 1, qf_sign_n_default_ignore - 1, &l, &err);
    if (s == QF_OK) s = qf_dir_hash_files(dir, &l, NULL, &err);
    if (s != QF_OK) {
        qf_file_list_free(&l);
        return qf_cli_report_error("hash", &err, json);
    }
    json_t *arr = json ? json_array() : NULL;
    for (int i = 0; i < l.n; i++) {
        char hex[QF_SHA256_HEX_LEN + 1];
        qf_sha256_hex(l.f[i].sha256, hex);
        if (json)
            json_array_append_new(arr, json_pack("{s:s, s:I, s:s}", "path", l.f[i].name, "size", (json_int_t)l.f[i].size,
                                                 "sha256", hex));
        else printf("%s  %s\n", hex, l.f[i].name);
    }
    if (json) {
        char *t = json_dumps(arr, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
        json_decref(arr);
    }
    qf_file_list_free(&l);
    return 0;
}
