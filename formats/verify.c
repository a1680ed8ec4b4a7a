/* verify.c - recompute every hash of an artifact against its manifest (see qf_manifest.h). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_fs.h"
#include "qf_gguf.h"
#include "qf_manifest.h"
#include "qf_safetensors.h"

const char *qf_verify_kind_name(qf_verify_kind k)
{
    switch (k) {
    case QF_VERIFY_MISSING: return "missing";
    case QF_VERIFY_EXTRA: return "extra";
    case QF_VERIFY_SIZE: return "size";
    case QF_VERIFY_MODIFIED: return "modified";
    case QF_VERIFY_TENSOR: return "tensor";
    case QF_VERIFY_MANIFEST: return "manifest";
    case QF_VERIFY_STRUCTURE: return "structure";
    }
    return "?";
}

void qf_verify_report_free(qf_verify_report *rep)
{
    if (!rep) return;
    free(rep->issues);
    memset(rep, 0, sizeof *rep);
}

static void qf_copy_cut(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) n = cap - 1;
    if (n) memcpy(dst, src, n);
    dst[n] = 0;
}

void qf_verify_report_add(qf_verify_report *rep, qf_verify_kind kind, const char *file, const char *tensor,
                          const char *detail)
{
#pragma omp critical(qf_verify_issue)
    {
        qf_verify_issue *n = realloc(rep->issues, sizeof(qf_verify_issue) * (size_t)(rep->n_issues + 1));
        if (n) {
            rep->issues = n;
            qf_verify_issue *is = &n[rep->n_issues++];
            memset(is, 0, sizeof *is);
            is->kind = kind;
            /* cut to fit: details quote reader messages longer than a report field */
            qf_copy_cut(is->file, sizeof is->file, file);
            qf_copy_cut(is->tensor, sizeof is->tensor, tensor);
            qf_copy_cut(is->detail, sizeof is->detail, detail);
        }
    }
}

static void qf_issue(qf_verify_report *rep, qf_verify_kind kind, const char *file, const char *tensor, const char *fmt,
                     const char *a)
{
    char detail[2048]; /* a is at most a qf_error message; the report keeps what fits */
    snprintf(detail, sizeof detail, fmt, a ? a : "");
    qf_verify_report_add(rep, kind, file, tensor, detail);
}

static int qf_issue_cmp(const void *a, const void *b)
{
    const qf_verify_issue *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    if (c) return c;
    if (x->kind != y->kind) return (int)x->kind - (int)y->kind;
    return strcmp(x->tensor, y->tensor);
}

/* Hash a mapped region in 16 MiB steps so progress moves on big files; the SHA-256 too
 * when sha is not NULL (the same pass over the pages: one read for both). */
static qf_hash128 qf_hash_region(const uint8_t *p, uint64_t n, qf_progress *prog, qf_sha256 *sha)
{
    qf_hash_ctx *st = qf_hash_new();
    qf_hash128 h = {{0}}; /* no context (out of memory): a digest nothing matches */
    qf_sha256_ctx *sc = sha ? qf_sha256_new() : NULL;
    const uint64_t step = 16u << 20;
    for (uint64_t off = 0; off < n; off += step) {
        uint64_t k = n - off < step ? n - off : step;
        if (st) qf_hash_update(st, p + off, (size_t)k);
        if (sc) qf_sha256_update(sc, p + off, (size_t)k);
        qf_progress_add(prog, k);
    }
    if (sha) {
        memset(sha, 0, sizeof *sha); /* no context (out of memory): a digest nothing matches */
        if (sc) *sha = qf_sha256_final(sc);
    }
    if (st) h = qf_hash_digest(st);
    qf_hash_free(st);
    return h;
}

static const char *qf_jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Check the tensors of one safetensors (or GGUF) file against the manifest entries naming it. */
static void qf_verify_tensors(const char *fname, const qf_mapped_file *mf, json_t *tensors, qf_verify_report *rep)
{
    qf_tensor *tt = NULL;
    int nt = 0;
    qf_error e;
    size_t fl = strlen(fname);
    int gguf = fl > 5 && strcmp(fname + fl - 5, ".gguf") == 0; /* block types have no qf_dtype: the file hash covers them */
    qf_status ps = gguf ? qf_gguf_parse_tensors(fname, mf->data, mf->size, &tt, &nt, &e)
                        : qf_safetensors_parse(fname, mf->data, mf->size, 0, &tt, &nt, NULL, NULL, &e);
    if (ps != QF_OK) {
        size_t i;
        json_t *t;
        json_array_foreach(tensors, i, t)
        {
            const char *tf = qf_jstr(t, "file");
            if (tf && strcmp(tf, fname) == 0) {
#pragma omp atomic
                rep->tensors_checked++;
                qf_issue(rep, QF_VERIFY_TENSOR, fname, qf_jstr(t, "name"), "unreadable header: %s", e.msg);
            }
        }
        return;
    }
    size_t n = json_array_size(tensors);
#pragma omp parallel for schedule(dynamic, 8)
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(tensors, i);
        const char *tf = qf_jstr(t, "file"), *name = qf_jstr(t, "name"), *hex = qf_jstr(t, "xxh3_128");
        if (!tf || strcmp(tf, fname) != 0) continue;
#pragma omp atomic
        rep->tensors_checked++;
        const qf_tensor *found = NULL;
        for (int k = 0; k < nt && name; k++)
            if (strcmp(tt[k].name, name) == 0) found = &tt[k];
        if (!found) {
            qf_issue(rep, QF_VERIFY_TENSOR, fname, name, "%sabsent from the file", "");
            continue;
        }
        qf_hash128 want, got = qf_hash_bytes(found->data ? (const void *)found->data : "", found->nbytes);
        const char *dt = qf_jstr(t, "dtype");
        if (!hex || qf_hash_parse_hex(hex, &want) != 0 || !qf_hash_equal(want, got) || !dt ||
            ((!gguf || found->dtype != QF_DTYPE_INVALID) && strcmp(dt, qf_dtype_name(found->dtype)) != 0)) {
            qf_issue(rep, QF_VERIFY_TENSOR, fname, name, "%sbytes or dtype differ from the manifest", "");
            continue;
        }
#pragma omp atomic
        rep->tensors_ok++;
    }
    qf_tensors_free(tt, nt);
}

qf_status qf_verify_dir(const char *dir, qf_verify_report *rep, qf_progress *prog, qf_error *err)
{
    memset(rep, 0, sizeof *rep);
    double t0 = qf_now();
    if (!qf_path_is_dir(dir)) return qf_fail(err, QF_ERR_IO, "%s: not a folder", dir);
    json_t *m = NULL;
    qf_error merr;
    if (qf_manifest_load(dir, &m, &merr) != QF_OK) {
        qf_issue(rep, QF_VERIFY_MANIFEST, QF_MANIFEST_NAME, NULL, "%s", merr.msg);
        return qf_fail(err, QF_ERR_VERIFY, "%s", merr.msg);
    }
    json_t *files = json_object_get(m, "files"), *tensors = json_object_get(m, "tensors");
    if (!json_is_array(files) || !json_is_array(tensors)) {
        json_decref(m);
        return qf_fail(err, QF_ERR_VERIFY, "%s/%s: no files or tensors list", dir, QF_MANIFEST_NAME);
    }
    size_t nf = json_array_size(files);
    uint64_t total = 0;
    for (size_t i = 0; i < nf; i++) {
        json_t *sz = json_object_get(json_array_get(files, i), "size");
        if (json_is_integer(sz)) total += (uint64_t)json_integer_value(sz);
    }
    if (prog) prog->total = total ? total : 1;
    rep->files_checked = (int)nf;
#pragma omp parallel for schedule(dynamic, 1)
    for (size_t i = 0; i < nf; i++) {
        json_t *f = json_array_get(files, i);
        const char *name = qf_jstr(f, "name"), *hex = qf_jstr(f, "xxh3_128");
        json_t *jsz = json_object_get(f, "size");
        if (!name || !hex || !json_is_integer(jsz) || strchr(name, '/')) {
            qf_issue(rep, QF_VERIFY_MANIFEST, QF_MANIFEST_NAME, NULL, "%sa files entry is malformed", "");
            continue;
        }
        char *path = qf_path_join(dir, name);
        struct stat st;
        if (stat(path, &st) != 0) {
            qf_issue(rep, QF_VERIFY_MISSING, name, NULL, "%sfile is missing", "");
            free(path);
            continue;
        }
        char detail[96];
        if ((uint64_t)st.st_size != (uint64_t)json_integer_value(jsz)) {
            snprintf(detail, sizeof detail, "size %lld, manifest says %lld", (long long)st.st_size,
                     (long long)json_integer_value(jsz));
            qf_issue(rep, QF_VERIFY_SIZE, name, NULL, "%s", detail);
            free(path);
            continue;
        }
        qf_mapped_file mf;
        qf_error e;
        if (qf_file_map(path, &mf, &e) != QF_OK) {
            qf_issue(rep, QF_VERIFY_MISSING, name, NULL, "%s", e.msg);
            free(path);
            continue;
        }
        free(path);
        /* "sha256" is optional (older manifests lack it) but, when present, must be well formed */
        const char *shex = qf_jstr(f, "sha256");
        qf_sha256 want_sha, got_sha;
        int has_sha = json_object_get(f, "sha256") != NULL;
        int sha_ok = !has_sha || (shex && qf_sha256_parse_hex(shex, &want_sha) == 0);
        qf_hash128 want, got = qf_hash_region(mf.data, mf.size, prog, has_sha ? &got_sha : NULL);
#pragma omp atomic
        rep->bytes_hashed += mf.size;
        if (qf_hash_parse_hex(hex, &want) != 0 || !qf_hash_equal(want, got))
            qf_issue(rep, QF_VERIFY_MODIFIED, name, NULL, "%scontent differs from the manifest hash", "");
        else if (!sha_ok || (has_sha && !qf_sha256_equal(want_sha, got_sha)))
            qf_issue(rep, QF_VERIFY_MODIFIED, name, NULL, "%scontent differs from the manifest's SHA-256", "");
        else {
#pragma omp atomic
            rep->files_ok++;
        }
        size_t l = strlen(name);
        if ((l > 12 && strcmp(name + l - 12, ".safetensors") == 0) || (l > 5 && strcmp(name + l - 5, ".gguf") == 0))
            qf_verify_tensors(name, &mf, tensors, rep);
        qf_file_unmap(&mf);
    }
    /* tensors whose file is not a listed safetensors file that could be read */
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 || strcmp(de->d_name, QF_MANIFEST_NAME) == 0 ||
            strcmp(de->d_name, QF_SIGNATURE_NAME) == 0) /* the signature covers the manifest: it is never listed */
            continue;
        int listed = 0;
        for (size_t i = 0; i < nf && !listed; i++) {
            const char *n = qf_jstr(json_array_get(files, i), "name");
            listed = n && strcmp(n, de->d_name) == 0;
        }
        if (!listed) qf_issue(rep, QF_VERIFY_EXTRA, de->d_name, NULL, "%snot listed in the manifest", "");
    }
    if (d) closedir(d);
    int n_tensor_entries = (int)json_array_size(tensors);
    if (rep->tensors_checked < n_tensor_entries && rep->n_issues == 0)
        qf_issue(rep, QF_VERIFY_TENSOR, "", NULL, "%ssome tensors name files that are not safetensors files", "");
    rep->tensors_checked = n_tensor_entries;
    json_decref(m);
    rep->seconds = qf_now() - t0;
    /* threads append in any order: sort so reports are deterministic */
    if (rep->n_issues > 1) qsort(rep->issues, (size_t)rep->n_issues, sizeof *rep->issues, qf_issue_cmp);
    if (rep->n_issues) {
        qf_verify_issue *is = &rep->issues[0];
        return qf_fail(err, QF_ERR_VERIFY, "%s/%s%s%s: %s: %s", dir, is->file, is->tensor[0] ? " tensor " : "", is->tensor,
                       qf_verify_kind_name(is->kind), is->detail);
    }
    return QF_OK;
}
