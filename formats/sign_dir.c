/* sign_dir.c - sign a folder, and check a folder against its signature (see qf_sign.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"
#include "qf_sign.h"

qf_status qf_sign_dir(const char *dir, const char *key_path, const char *model_name, qf_progress *prog, qf_error *err)
{
    qf_sign_key *key = NULL;
    QF_TRY(qf_sign_key_load_private(key_path, &key, err)); /* before reading gigabytes: a bad key fails fast */
    qf_file_list l;
    qf_status s = qf_dir_list_files(dir, qf_sign_default_ignore, qf_sign_n_default_ignore, &l, err);
    if (s == QF_OK) s = qf_dir_hash_files(dir, &l, prog, err);
    json_t *bundle = NULL;
    char *payload = NULL;
    if (s == QF_OK) {
        char *real = qf_path_canonical(dir);
        json_t *st = qf_sign_statement(model_name ? model_name : qf_path_base(real ? real : dir), &l,
                                       qf_sign_default_ignore, qf_sign_n_default_ignore);
        free(real);
        payload = st ? json_dumps(st, JSON_INDENT(2)) : NULL;
        json_decref(st);
        s = payload ? qf_sign_bundle(key, payload, strlen(payload), &bundle, err)
                    : qf_fail(err, QF_ERR_NOMEM, "out of memory building the statement");
    }
    if (s == QF_OK) {
        char *text = json_dumps(bundle, JSON_COMPACT);
        char *path = qf_path_join(dir, QF_SIGNATURE_NAME);
        s = text ? qf_file_write_atomic(path, text, strlen(text), err) : qf_fail(err, QF_ERR_NOMEM, "out of memory");
        free(path);
        free(text);
    }
    free(payload);
    json_decref(bundle);
    qf_file_list_free(&l);
    qf_sign_key_free(key);
    return s;
}

static const qf_file_digest *qf_find(const qf_file_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->f[i].name, name)) return &l->f[i];
    return NULL;
}

/* Compare what is on disk with what was signed; the worst finding decides the status. */
static qf_status qf_compare(const char *dir, const qf_file_list *have, const qf_file_list *want, qf_verify_report *rep,
                            qf_error *err)
{
    qf_status s = QF_OK;
    char first[600] = "";
    for (int i = 0; i < want->n; i++) {
        const qf_file_digest *h = qf_find(have, want->f[i].name);
        if (!h) qf_verify_report_add(rep, QF_VERIFY_MISSING, want->f[i].name, NULL, "signed file is missing");
        else if (!qf_sha256_equal(h->sha256, want->f[i].sha256))
            qf_verify_report_add(rep, QF_VERIFY_MODIFIED, want->f[i].name, NULL, "content differs from the signed SHA-256");
        else rep->files_ok++;
    }
    for (int i = 0; i < have->n; i++)
        if (!qf_find(want, have->f[i].name)) qf_verify_report_add(rep, QF_VERIFY_EXTRA, have->f[i].name, NULL, "file is not signed");
    rep->files_checked = want->n;
    for (int i = 0; i < rep->n_issues; i++) {
        const qf_verify_issue *is = &rep->issues[i];
        qf_status k = is->kind == QF_VERIFY_MODIFIED ? QF_ERR_VERIFY : QF_ERR_FILESET;
        if (s == QF_OK || (k == QF_ERR_FILESET && s != QF_ERR_FILESET)) {
            s = k;
            snprintf(first, sizeof first, "%s/%s: %s: %s", dir, is->file, qf_verify_kind_name(is->kind), is->detail);
        }
    }
    return s ? qf_fail(err, s, "%s", first) : QF_OK;
}

qf_status qf_sign_verify_dir(const char *dir, const char *pub_path, qf_verify_report *rep, qf_progress *prog,
                             qf_error *err)
{
    memset(rep, 0, sizeof *rep);
    double t0 = qf_now();
    if (!qf_path_is_dir(dir)) return qf_fail(err, QF_ERR_IO, "%s: not a folder", dir);
    qf_sign_key *pub = NULL;
    QF_TRY(qf_sign_key_load_public(pub_path, &pub, err));
    char *sigpath = qf_path_join(dir, QF_SIGNATURE_NAME), *text = NULL, *payload = NULL;
    size_t tl = 0, pl = 0;
    qf_status s = QF_OK;
    if (!qf_path_exists(sigpath)) s = qf_fail(err, QF_ERR_NO_SIGNATURE, "%s: no signature (qforge sign DIR --key KEY.pem)", sigpath);
    else s = qf_file_read_all(sigpath, 64u << 20, &text, &tl, err);
    json_t *bundle = NULL, *ignore = NULL;
    if (s == QF_OK) {
        json_error_t je;
        bundle = json_loadb(text, tl, JSON_REJECT_DUPLICATES, &je);
        if (!bundle) s = qf_fail(err, QF_ERR_BAD_SIGNATURE, "%s: not JSON (%s)", sigpath, je.text);
    }
    if (s == QF_OK) s = qf_sign_bundle_open(bundle, pub, sigpath, &payload, &pl, err);
    qf_file_list want = {0}, have = {0};
    if (s == QF_OK) s = qf_sign_statement_parse(payload, pl, sigpath, &want, &ignore, err);
    if (s == QF_OK) {
        /* the signer's ignore list (it is signed), plus the signature file itself, as
         * `model_signing verify` adds the signature path it is given */
        size_t ni = json_array_size(ignore);
        const char **ig = calloc(ni + 1, sizeof *ig);
        for (size_t i = 0; ig && i < ni; i++) ig[i] = json_string_value(json_array_get(ignore, i));
        if (ig) ig[ni] = QF_SIGNATURE_NAME;
        s = ig ? qf_dir_list_files(dir, ig, (int)ni + 1, &have, err) : qf_fail(err, QF_ERR_NOMEM, "out of memory");
        free(ig);
    }
    if (s == QF_OK) s = qf_dir_hash_files(dir, &have, prog, err);
    for (int i = 0; s == QF_OK && i < have.n; i++) rep->bytes_hashed += have.f[i].size;
    if (s == QF_OK) s = qf_compare(dir, &have, &want, rep, err);
    rep->seconds = qf_now() - t0;
    qf_file_list_free(&want);
    qf_file_list_free(&have);
    json_decref(ignore);
    json_decref(bundle);
    free(payload);
    free(text);
    free(sigpath);
    qf_sign_key_free(pub);
    return s;
}
