/* verify_folder.c - structure and digests of a folder without a qforge manifest
 * (see qf_verify_folder.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"
#include "qf_safetensors.h"
#include "qf_shard_index.h"
#include "qf_sign.h"
#include "qf_verify_folder.h"
#include "verify_listing.h"

#define QF_INDEX_NAME "model.safetensors.index.json"

static int qf_ends(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Parse every safetensors file; keep each one's tensor names for the index check. */
typedef struct {
    char *file;
    qf_tensor *t;
    int n, ok;
} qf_shard_parse;

static void qf_check_structure(const char *dir, const qf_file_list *files, qf_verify_report *rep)
{
    int ns = 0;
    qf_shard_parse *sp = calloc((size_t)files->n + 1, sizeof *sp);
    if (!sp) return;
    for (int i = 0; i < files->n; i++) {
        const char *name = files->f[i].name;
        if (!qf_ends(name, ".safetensors")) continue;
        qf_shard_parse *p = &sp[ns++];
        p->file = files->f[i].name;
        char *path = qf_path_join(dir, name);
        qf_mapped_file mf;
        qf_error e;
        qf_status s = qf_file_map(path, &mf, &e);
        free(path);
        if (s == QF_OK) {
            s = qf_safetensors_parse(name, mf.data, mf.size, 0, &p->t, &p->n, NULL, NULL, &e);
            qf_file_unmap(&mf); /* names are copied; the data pointers are not used after this */
        }
        if (s != QF_OK) qf_verify_report_add(rep, strstr(e.msg, "truncated") || strstr(e.msg, "past the end") ? QF_VERIFY_SIZE : QF_VERIFY_STRUCTURE, name, NULL, e.msg);
        else p->ok = 1;
    }
    char *index = qf_path_join(dir, QF_INDEX_NAME);
    if (qf_path_exists(index)) {
        char **names = NULL;
        int n = 0;
        json_t *wm = NULL;
        qf_error e;
        if (qf_shard_index_read(index, &names, &n, &wm, &e) != QF_OK) qf_verify_report_add(rep, QF_VERIFY_STRUCTURE, QF_INDEX_NAME, NULL, e.msg);
        const char *tn;
        json_t *fv;
        json_object_foreach(wm, tn, fv)
        {
            const char *shard = json_string_value(fv);
            qf_shard_parse *p = NULL;
            for (int k = 0; k < ns && shard; k++)
                if (!strcmp(sp[k].file, shard)) p = &sp[k];
            int found = 0;
            for (int k = 0; p && p->ok && k < p->n && !found; k++) found = !strcmp(p->t[k].name, tn);
            if (!p) qf_verify_report_add(rep, QF_VERIFY_MISSING, shard ? shard : QF_INDEX_NAME, tn, "the index maps a tensor to a missing shard");
            else if (p->ok && !found) qf_verify_report_add(rep, QF_VERIFY_STRUCTURE, shard, tn, "the index maps this tensor here but the shard lacks it");
        }
        for (int k = 0; wm && k < ns; k++)
            for (int j = 0; sp[k].ok && j < sp[k].n; j++) {
                json_t *m = json_object_get(wm, sp[k].t[j].name);
                if (!m || !json_is_string(m) || strcmp(json_string_value(m), sp[k].file) != 0)
                    qf_verify_report_add(rep, QF_VERIFY_STRUCTURE, sp[k].file, sp[k].t[j].name, "tensor not mapped to this shard by the index");
            }
        for (int k = 0; k < n; k++) free(names[k]);
        free(names);
        json_decref(wm);
    }
    free(index);
    for (int k = 0; k < ns; k++) qf_tensors_free(sp[k].t, sp[k].n);
    free(sp);
}

static const qf_file_digest *qf_find(const qf_file_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->f[i].name, name)) return &l->f[i];
    return NULL;
}

static void qf_check_listing(const qf_file_list *files, const qf_listing *want, const char *listing, qf_verify_report *rep)
{
    const char *lbase = qf_path_base(listing);
    for (int i = 0; i < want->n; i++) {
        const qf_listing_entry *w = &want->e[i];
        const qf_file_digest *h = qf_find(files, w->name);
        char d[160];
        if (!h) qf_verify_report_add(rep, QF_VERIFY_MISSING, w->name, NULL, "listed file is missing");
        else if (w->has_size && w->size != h->size) {
            snprintf(d, sizeof d, "size %llu, the listing says %llu (%s)", (unsigned long long)h->size,
                     (unsigned long long)w->size, h->size < w->size ? "truncated" : "grown");
            qf_verify_report_add(rep, QF_VERIFY_SIZE, w->name, NULL, d);
        } else if (w->has_sha256 && !qf_sha256_equal(w->sha256, h->sha256))
            qf_verify_report_add(rep, QF_VERIFY_MODIFIED, w->name, NULL, "SHA-256 differs from the listing");
        else rep->files_ok++;
    }
    for (int i = 0; i < files->n; i++) {
        int listed = 0;
        for (int k = 0; k < want->n && !listed; k++) listed = !strcmp(want->e[k].name, files->f[i].name);
        /* the listing itself may sit in the folder it describes */
        if (!listed && strcmp(files->f[i].name, lbase) != 0)
            qf_verify_report_add(rep, QF_VERIFY_EXTRA, files->f[i].name, NULL, "file is not in the listing");
    }
}

static int qf_issue_order(const void *a, const void *b)
{
    const qf_verify_issue *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->tensor, y->tensor);
}

int qf_folder_is_artifact(const char *dir)
{
    char *path = qf_path_join(dir, "README.md"), *text = NULL;
    size_t len = 0;
    qf_error e;
    int yes = qf_file_read_all(path, 1u << 20, &text, &len, &e) == QF_OK && strstr(text, QF_MANIFEST_NAME) != NULL;
    free(text);
    free(path);
    return yes;
}

qf_status qf_verify_folder(const char *dir, const char *listing, qf_verify_report *rep, qf_progress *prog,
                           qf_error *err)
{
    memset(rep, 0, sizeof *rep);
    double t0 = qf_now();
    qf_listing want = {0};
    if (listing) QF_TRY(qf_listing_read(listing, &want, err));
    qf_file_list files;
    /* git's files and a signature are not the model's; everything else is looked at */
    qf_status s = qf_dir_list_files(dir, qf_sign_default_ignore + 1, qf_sign_n_default_ignore - 1, &files, err);
    if (s == QF_OK && listing) s = qf_dir_hash_files(dir, &files, prog, err);
    if (s != QF_OK) {
        qf_listing_free(&want);
        return s;
    }
    for (int i = 0; i < files.n; i++) rep->bytes_hashed += listing ? files.f[i].size : 0;
    rep->files_checked = listing ? want.n : files.n;
    qf_check_structure(dir, &files, rep);
    if (listing) qf_check_listing(&files, &want, listing, rep);
    else rep->files_ok = files.n - rep->n_issues > 0 ? files.n - rep->n_issues : 0;
    qf_file_list_free(&files);
    qf_listing_free(&want);
    rep->seconds = qf_now() - t0;
    if (rep->n_issues > 1) qsort(rep->issues, (size_t)rep->n_issues, sizeof *rep->issues, qf_issue_order);
    if (rep->n_issues) {
        const qf_verify_issue *is = &rep->issues[0];
        return qf_fail(err, QF_ERR_VERIFY, "%s/%s%s%s: %s: %s", dir, is->file, is->tensor[0] ? " tensor " : "", is->tensor,
                       qf_verify_kind_name(is->kind), is->detail);
    }
    return QF_OK;
}
