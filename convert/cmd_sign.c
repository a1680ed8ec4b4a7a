/* cmd_sign.c - `qforge sign`: write a detached OpenSSF model-signing signature (model.sig). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_cli.h"
#include "qf_fs.h"
#include "qf_sign.h"

static void qf_sign_help(void)
{
    printf("usage: qforge sign DIR --key KEY.pem [--json] [-q]\n\n"
           "Sign every file of DIR (SHA-256 of each, read now) with an ECDSA private key (P-256,\n"
           "P-384 or P-521, PEM, unencrypted, mode 600) and write DIR/model.sig: a Sigstore bundle\n"
           "in the OpenSSF model-signing format, which `qforge verify DIR --key PUB.pem` and\n"
           "`model_signing verify key DIR --signature DIR/model.sig --public_key PUB.pem` check.\n"
           "Ignored, as model_signing ignores them: model.sig, .git, .gitattributes, .github, .gitignore.\n"
           "A key readable by group or others is refused (exit 11). No key material is written.\n\n"
           "example:\n  openssl ecparam -genkey -name prime256v1 -noout -out key.pem && chmod 600 key.pem\n"
           "  openssl ec -in key.pem -pubout -out pub.pem\n  qforge sign /tmp/tiny-w4 --key key.pem\n");
}

int qf_cmd_sign(int argc, char **argv)
{
    const char *dir = NULL, *key = NULL;
    int json = 0, quiet = 0;
    qf_error err = {0};
    for (int i = 1; i < argc; i++) {
        if (qf_cli_is_help(argv[i])) {
            qf_sign_help();
            return 0;
        } else if (!strcmp(argv[i], "--key") && i + 1 < argc) key = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) quiet = 1;
        else if (argv[i][0] == '-' || dir) {
            qf_fail(&err, QF_ERR_USAGE, "unexpected argument '%s' (qforge sign --help)", argv[i]);
            return qf_cli_report_error("sign", &err, json);
        } else dir = argv[i];
    }
    if (!dir || !key) {
        qf_fail(&err, QF_ERR_USAGE, "need DIR and --key KEY.pem (qforge sign --help)");
        return qf_cli_report_error("sign", &err, json);
    }
    qf_progress prog;
    qf_cli_bar bar = {.enabled = !quiet && !json, .unit = "B"};
    qf_progress_begin(&prog, qf_cli_progress, &bar, "sign", 1);
    double t0 = qf_now();
    qf_status s = qf_sign_dir(dir, key, NULL, &prog, &err);
    qf_progress_end(&prog);
    if (s != QF_OK) return qf_cli_report_error("sign", &err, json);
    char *sig = qf_path_join(dir, QF_SIGNATURE_NAME);
    if (json) {
        json_t *r = json_pack("{s:b, s:s, s:f}", "ok", 1, "signature", sig, "seconds", qf_now() - t0);
        char *t = json_dumps(r, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
        json_decref(r);
    } else if (!quiet) printf("%s: signed (%.2f s)\n", sig, qf_now() - t0);
    free(sig);
    return 0;
}
