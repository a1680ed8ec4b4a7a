/* cmd_verify.c - `qforge verify`: recompute every hash of an artifact. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_cli.h"
#include "qf_fs.h"
#include "qf_manifest.h"
#include "qf_sign.h"
#include "qf_verify_folder.h"

static void qf_verify_help(void)
{
    printf("usage: qforge verify DIR [--key PUB.pem] [--sha256 LISTING] [--json] [-q]\n\n"
           "Recompute the XXH3-128 (and SHA-256, when recorded) of every file and every tensor listed\n"
           "in ARTIFACT_DIR/qforge.manifest.json (all cores) and check the manifest's own seal.\n"
           "Reports missing, extra, truncated (size) and modified files, and modified tensors.\n"
           "Exit 0 only when everything matches; 6 when anything differs.\n\n"
           "--key PUB.pem  first check ARTIFACT_DIR/model.sig (OpenSSF model-signing, as written by\n"
           "               qforge sign or model_signing sign key) with this public key, then every\n"
           "               file's SHA-256 against it, then the manifest when there is one.  Exit 13:\n"
           "               no signature, 14: bad signature, 15: signed with another key, 16: a file\n"
           "               added or removed, 6: a file changed.\n"
           "Without a qforge manifest (any hub folder), or with --sha256: check every safetensors\n"
           "file's structure and the index's weight_map; --sha256 LISTING (sha256sum output, or a\n"
           "hub API file list with lfs.sha256 / lfs.oid) also checks every digest and reports\n"
           "missing, extra, truncated and different files (exit 6).\n\n"
           "examples:\n  qforge verify /tmp/tiny-w4\n  qforge verify /tmp/tiny-w4 --key pub.pem\n"
           "  qforge verify ~/models/Llama-3-8B --sha256 Llama-3-8B.sha256\n");
}

int qf_cmd_verify(int argc, char **argv)
{
    const char *dir = NULL, *key = NULL, *listing = NULL;
    int json = 0, quiet = 0;
    qf_error err = {0};
    for (int i = 1; i < argc; i++) {
        if (qf_cli_is_help(argv[i])) {
            qf_verify_help();
            return 0;
        } else if (!strcmp(argv[i], "--key") && i + 1 < argc) key = argv[++i];
        else if (!strcmp(argv[i], "--sha256") && i + 1 < argc) listing = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) quiet = 1;
        else if (argv[i][0] == '-' || dir) {
            qf_fail(&err, QF_ERR_USAGE, "unexpected argument '%s' (qforge verify --help)", argv[i]);
            return qf_cli_report_error("verify", &err, json);
        } else dir = argv[i];
    }
    if (!dir) {
        qf_fail(&err, QF_ERR_USAGE, "need ARTIFACT_DIR (qforge verify --help)");
        return qf_cli_report_error("verify", &err, json);
    }
    qf_progress prog;
    qf_cli_bar bar = {.enabled = !quiet && !json, .unit = "B"};
    qf_progress_begin(&prog, qf_cli_progress, &bar, "verify", 1);
    qf_verify_report rep;
    qf_status s;
    /* the signature first: with it checked, the manifest it covers can be trusted; a folder
     * signed without a qforge manifest (model_signing on any model) ends there */
    char *mp = qf_path_join(dir, QF_MANIFEST_NAME);
    /* an artifact whose manifest was deleted is checked (and fails) as an artifact */
    int has_manifest = qf_path_exists(mp) || (!listing && qf_folder_is_artifact(dir));
    free(mp);
    int sig_ok = 0;
    if (key) {
        s = qf_sign_verify_dir(dir, key, &rep, &prog, &err);
        sig_ok = s == QF_OK;
        if (s == QF_OK && (has_manifest || listing)) {
            qf_verify_report_free(&rep);
            s = has_manifest && !listing ? qf_verify_dir(dir, &rep, &prog, &err)
                                         : qf_verify_folder(dir, listing, &rep, &prog, &err);
        }
    } else if (has_manifest && !listing) s = qf_verify_dir(dir, &rep, &prog, &err);
    else s = qf_verify_folder(dir, listing, &rep, &prog, &err); /* a hub folder qforge did not make */
    qf_progress_end(&prog);
    int listed = s == QF_OK || s == QF_ERR_VERIFY || s == QF_ERR_FILESET;
    if (!listed) {
        qf_verify_report_free(&rep);
        return qf_cli_report_error("verify", &err, json);
    }
    if (json) {
        json_t *issues = json_array();
        for (int i = 0; i < rep.n_issues; i++)
            json_array_append_new(issues, json_pack("{s:s, s:s, s:s, s:s}", "kind", qf_verify_kind_name(rep.issues[i].kind),
                                                    "file", rep.issues[i].file, "tensor", rep.issues[i].tensor, "detail",
                                                    rep.issues[i].detail));
        json_t *r = json_pack("{s:b, s:i, s:i, s:i, s:i, s:I, s:f, s:o}", "ok", s == QF_OK, "files", rep.files_checked,
                              "files_ok", rep.files_ok, "tensors", rep.tensors_checked, "tensors_ok", rep.tensors_ok,
                              "bytes", (json_int_t)rep.bytes_hashed, "seconds", rep.seconds, "issues", issues);
        /* "signature": whether model.sig verified with --key (absent without --key) */
        if (key) json_object_set_new(r, "signature", json_boolean(sig_ok));
        char *t = json_dumps(r, JSON_COMPACT);
        printf("%s\n", t);
        free(t);
        json_decref(r);
    } else {
        for (int i = 0; i < rep.n_issues; i++)
            fprintf(stderr, "qforge verify: %s: %s%s%s: %s\n", qf_verify_kind_name(rep.issues[i].kind), rep.issues[i].file,
                    rep.issues[i].tensor[0] ? " tensor " : "", rep.issues[i].tensor, rep.issues[i].detail);
        char tensors[64] = ""; /* a folder without a manifest lists no tensors to count */
        if (rep.tensors_checked) snprintf(tensors, sizeof tensors, ", %d/%d tensors", rep.tensors_ok, rep.tensors_checked);
        printf("%s: %s%s - %d/%d files%s match (%.1f MB hashed in %.2f s)\n", dir, s == QF_OK ? "OK" : "FAILED",
               sig_ok ? " (signature verified)" : "", rep.files_ok, rep.files_checked, tensors,
               rep.bytes_hashed / 1e6, rep.seconds);
    }
    qf_verify_report_free(&rep);
    return s == QF_OK ? 0 : (int)s;
}
