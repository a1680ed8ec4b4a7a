/* sign_files.c - list a folder's files as model_signing does, and hash them (see qf_sign.h). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_fs.h"
#include "qf_sign.h"

const char *const qf_sign_default_ignore[] = {QF_SIGNATURE_NAME, ".git", ".gitattributes", ".github", ".gitignore"};
const int qf_sign_n_default_ignore = 5;

static int qf_ignored(const char *rel, const char *const *ignore, int n)
{
    for (int i = 0; i < n; i++) {
        size_t l = strlen(ignore[i]);
        if (strncmp(rel, ignore[i], l) == 0 && (rel[l] == 0 || rel[l] == '/')) return 1;
    }
    return 0;
}

static qf_status qf_list_add(qf_file_list *l, const char *rel, uint64_t size, qf_error *err)
{
    qf_file_digest *n = realloc(l->f, sizeof *n * (size_t)(l->n + 1));
    if (!n) return qf_fail(err, QF_ERR_NOMEM, "out of memory listing files");
    l->f = n;
    memset(&n[l->n], 0, sizeof *n);
    n[l->n].name = strdup(rel);
    n[l->n].size = size; /* from lstat: progress totals before anything is read */
    if (!n[l->n].name) return qf_fail(err, QF_ERR_NOMEM, "out of memory listing files");
    l->n++;
    return QF_OK;
}

static qf_status qf_walk(const char *root, const char *rel, const char *const *ignore, int n_ignore, qf_file_list *l,
                         int depth, qf_error *err)
{
    char *path = rel[0] ? qf_path_join(root, rel) : strdup(root);
    DIR *d = opendir(path);
    if (!d) {
        qf_status s = qf_fail(err, QF_ERR_IO, "%s: cannot list: %s", path, strerror(errno));
        free(path);
        return s;
    }
    qf_status s = QF_OK;
    struct dirent *de;
    while (s == QF_OK && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        size_t need = strlen(rel) + strlen(de->d_name) + 2;
        char *r = malloc(need);
        if (!r) {
            s = qf_fail(err, QF_ERR_NOMEM, "out of memory listing %s", path);
            break;
        }
        snprintf(r, need, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        if (!qf_ignored(r, ignore, n_ignore)) {
            char *full = qf_path_join(root, r);
            struct stat st;
            if (lstat(full, &st) != 0) s = qf_fail(err, QF_ERR_IO, "%s: %s", full, strerror(errno));
            else if (S_ISLNK(st.st_mode))
                s = qf_fail(err, QF_ERR_SECURITY, "%s: is a symbolic link (signatures cover regular files only)", full);
            else if (S_ISDIR(st.st_mode))
                s = depth > 64 ? qf_fail(err, QF_ERR_SECURITY, "%s: folders nested too deep", full)
                               : qf_walk(root, r, ignore, n_ignore, l, depth + 1, err);
            else if (S_ISREG(st.st_mode)) s = qf_list_add(l, r, (uint64_t)st.st_size, err);
            else s = qf_fail(err, QF_ERR_SECURITY, "%s: not a regular file", full);
            free(full);
        }
        free(r);
    }
    closedir(d);
    free(path);
    return s;
}

static int qf_digest_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_file_digest *)a)->name, ((const qf_file_digest *)b)->name);
}

qf_status qf_dir_list_files(const char *dir, const char *const *ignore, int n_ignore, qf_file_list *out, qf_error *err)
{
    memset(out, 0, sizeof *out);
    if (!qf_path_is_dir(dir)) return qf_fail(err, QF_ERR_IO, "%s: not a folder", dir);
    qf_status s = qf_walk(dir, "", ignore, n_ignore, out, 0, err);
    if (s) {
        qf_file_list_free(out);
        return s;
    }
    if (out->n > 1) qsort(out->f, (size_t)out->n, sizeof *out->f, qf_digest_cmp);
    return QF_OK;
}

qf_status qf_dir_hash_files(const char *dir, qf_file_list *l, qf_progress *prog, qf_error *err)
{
    qf_status first = QF_OK;
    qf_error ferr = {0};
    int n = l->n;
    if (prog) {
        prog->total = 0;
        for (int i = 0; i < n; i++) prog->total += l->f[i].size;
        if (!prog->total) prog->total = 1;
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        char *path = qf_path_join(dir, l->f[i].name);
        qf_error e;
        qf_status s = qf_sha256_file(path, &l->f[i].sha256, &l->f[i].size, &e);
        free(path);
        if (s == QF_OK) qf_progress_add(prog, l->f[i].size);
#pragma omp critical(qf_hash_files_err)
        if (s != QF_OK && first == QF_OK) {
            first = s;
            ferr = e;
        }
    }
    if (first != QF_OK && err) *err = ferr;
    return first;
}

void qf_file_list_free(qf_file_list *l)
{
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->f[i].name);
    free(l->f);
    memset(l, 0, sizeof *l);
}
