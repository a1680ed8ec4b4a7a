/* convert_output.c - artifact folder steps shared by --to safetensors and --layout gguf
 * (see convert_output.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "convert_output.h"
#include "journal.h"
#include "qf_fs.h"
#include "qf_manifest.h"
#include "source_hash.h"
#include "qf_model_card.h"

int qf_layout_parse(const char *name, qf_layout *out)
{
    static const struct {
        const char *name;
        qf_layout l;
    } t[] = {{"compressed-tensors", QF_LAYOUT_COMPRESSED_TENSORS}, {"ct", QF_LAYOUT_COMPRESSED_TENSORS},
             {"modelopt", QF_LAYOUT_MODELOPT}, {"gguf", QF_LAYOUT_GGUF}, {"safetensors", QF_LAYOUT_SAFETENSORS}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        if (strcmp(name, t[i].name) == 0) {
            *out = t[i].l;
            return 0;
        }
    return -1;
}

const char *qf_layout_name(qf_layout l)
{
    switch (l) {
    case QF_LAYOUT_COMPRESSED_TENSORS: return "compressed-tensors";
    case QF_LAYOUT_MODELOPT: return "modelopt";
    case QF_LAYOUT_GGUF: return "gguf";
    case QF_LAYOUT_SAFETENSORS: return "safetensors";
    }
    return "?";
}

/* Whether dir is something --force may delete: a previous qforge output (its manifest, or the
 * journal of an interrupted run) or an empty folder. */
static int qf_replaceable(const char *dir)
{
    if (!qf_path_is_dir(dir)) return 0;
    char *m = qf_path_join(dir, QF_MANIFEST_NAME);
    int ours = m && qf_path_exists(m);
    free(m);
    if (ours) return 1;
    DIR *d = opendir(dir);
    struct dirent *de;
    int empty = d != NULL;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) empty = 0;
    if (d) closedir(d);
    return empty;
}

qf_status qf_output_guard(const qf_convert_opts *o, qf_error *err)
{
    char *out = qf_path_canonical(o->out);
    if (!out) return qf_fail(err, QF_ERR_USAGE, "-o %s: cannot resolve the output path", o->out);
    size_t tl = strlen(out) + 16;
    char *tmp = malloc(tl);
    if (!tmp) {
        free(out);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    }
    snprintf(tmp, tl, "%s.qforge-tmp", out);
    qf_status s = QF_OK;
    int n = o->n_parts > 0 ? o->n_parts : 1;
    for (int i = 0; i < n && s == QF_OK; i++) {
        const char *src = o->n_parts > 0 ? o->merge_parts[i] : o->src;
        char *in = src ? qf_path_canonical(src) : NULL;
        if (!in) continue; /* a missing source fails later with its own message */
        if (qf_path_within(out, in))
            s = qf_fail(err, QF_ERR_USAGE, "-o %s is inside the input %s: qforge never writes into its input", o->out, src);
        else if (qf_path_within(in, out) || qf_path_within(in, tmp))
            s = qf_fail(err, QF_ERR_USAGE, "-o %s holds the input %s: replacing it would delete the input", o->out, src);
        free(in);
    }
    if (s == QF_OK && qf_path_exists(o->out)) {
        if (!o->force)
            s = qf_fail(err, QF_ERR_USAGE, "%s already exists (use --force to replace it)", o->out);
        else if (!qf_replaceable(o->out))
            s = qf_fail(err, QF_ERR_USAGE, "%s exists and is not a qforge output (no %s): --force replaces only "
                        "qforge's own artifacts and empty folders", o->out, QF_MANIFEST_NAME);
    }
    free(out);
    free(tmp);
    return s;
}

qf_status qf_output_begin(const qf_convert_opts *o, char **tmp, qf_error *err)
{
    *tmp = NULL;
    QF_TRY(qf_output_guard(o, err));
    size_t tl = strlen(o->out) + 16;
    *tmp = malloc(tl);
    if (!*tmp) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    snprintf(*tmp, tl, "%s.qforge-tmp", o->out);
    qf_remove_tree(*tmp);
    qf_status s = qf_mkdirs(*tmp, err);
    if (s) free(*tmp), *tmp = NULL;
    return s;
}

/* Weights, indexes and files qforge writes itself are never copied from the source. */
int qf_output_skip(const char *name)
{
    static const char *const suffixes[] = {".safetensors", ".bin", ".pt", ".pth", ".gguf", ".index.json", ".tmp"};
    size_t l = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof *suffixes; i++) {
        size_t k = strlen(suffixes[i]);
        if (l >= k && strcmp(name + l - k, suffixes[i]) == 0) return 1;
    }
    return strcmp(name, "config.json") == 0 || strcmp(name, QF_MANIFEST_NAME) == 0 ||
           strcmp(name, QF_JOURNAL_NAME) == 0 || strcmp(name, "hf_quant_config.json") == 0 || name[0] == '.';
}

static int qf_strcmp_pp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

qf_status qf_output_hash_file(json_t *m, const char *dir, const char *name, uint64_t *bytes_out, qf_error *err)
{
    char *path = qf_path_join(dir, name);
    qf_mapped_file f;
    qf_status s = qf_file_map(path, &f, err);
    free(path);
    if (s) return s;
    const void *data = f.data ? (const void *)f.data : "";
    qf_sha256 sha = qf_sha256_bytes(data, f.size);
    qf_manifest_add_file(m, name, f.size, qf_hash_bytes(data, f.size), &sha);
    *bytes_out += f.size;
    qf_file_unmap(&f);
    return QF_OK;
}

qf_status qf_output_list_side_files(const char *src, int spare, char ***names_out, int *n_out, qf_error *err)
{
    *names_out = NULL;
    *n_out = 0;
    DIR *d = opendir(src);
    if (!d) return qf_fail(err, QF_ERR_IO, "%s: cannot list folder: %s", src, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    qf_status s = QF_OK;
    struct dirent *de;
    while (s == QF_OK && (de = readdir(d))) {
        if (qf_output_skip(de->d_name)) continue;
        char *p = qf_path_join(src, de->d_name);
        struct stat st;
        if (!p) {
            s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
        } else if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            /* sub-folders are not part of a model's files */
        } else if ((s = qf_model_file_check(src, p, err)) == QF_OK) {
            if (stat(p, &st) != 0 || !S_ISREG(st.st_mode))
                s = qf_fail(err, QF_ERR_FORMAT, "%s: not a regular file (a FIFO, socket or device): refused", p);
            else if (n + spare + 1 > cap) {
                cap = cap ? cap * 2 : 16 + spare;
                char **nn = realloc(names, sizeof *names * (size_t)cap);
                if (!nn) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
                else names = nn;
            }
            if (s == QF_OK && !(names[n++] = strdup(de->d_name))) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
        }
        free(p);
    }
    closedir(d);
    if (s == QF_OK && !names) { /* callers append their own names: always give them room */
        names = calloc((size_t)spare + 1, sizeof *names);
        if (!names) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    }
    if (s != QF_OK) {
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
        return s;
    }
    *names_out = names;
    *n_out = n;
    return QF_OK;
}

qf_status qf_output_side_files(const char *src, const char *tmp, const json_t *config, json_t *manifest,
                               uint64_t *bytes_out, qf_error *err)
{
    qf_status s = QF_OK;
    int have_config = 0;
    char *cdst = qf_path_join(tmp, "config.json");
    if (config) {
        char *text = json_dumps(config, JSON_INDENT(2));
        size_t len = text ? strlen(text) : 0;
        char *full = text ? realloc(text, len + 2) : NULL;
        if (!full) {
            free(text);
            free(cdst);
            return qf_fail(err, QF_ERR_NOMEM, "out of memory writing config.json");
        }
        full[len] = '\n';
        s = qf_file_write_atomic(cdst, full, len + 1, err);
        free(full);
        have_config = 1;
    } else if (qf_path_is_dir(src)) {
        char *csrc = qf_path_join(src, "config.json");
        if (qf_path_exists(csrc)) s = qf_file_copy(csrc, cdst, err), have_config = 1;
        free(csrc);
    }
    free(cdst);
    if (s) return s;
    char **names = NULL;
    int n = 0;
    if (qf_path_is_dir(src)) s = qf_output_list_side_files(src, 2, &names, &n, err);
    for (int i = 0; i < n && s == QF_OK; i++) {
        char *a = qf_path_join(src, names[i]), *b = qf_path_join(tmp, names[i]);
        s = qf_file_copy(a, b, err);
        free(a);
        free(b);
    }
    if (have_config && names) names[n++] = strdup("config.json");
    if (n) qsort(names, (size_t)n, sizeof *names, qf_strcmp_pp);
    for (int i = 0; i < n; i++) {
        if (s == QF_OK) s = qf_output_hash_file(manifest, tmp, names[i], bytes_out, err);
        free(names[i]);
    }
    free(names);
    return s;
}

/* Names, sizes and hashes of the source files (in parallel), and the config's hash. */
static json_t *qf_output_source_json(const qf_checkpoint *ck, const char *src)
{
    qf_hash128 *h = calloc((size_t)ck->n_files + 1, sizeof *h);
    if (!h) return NULL;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < ck->n_files; i++) {
        h[i] = qf_hash_bytes(ck->files[i].data ? (const void *)ck->files[i].data : "", ck->files[i].size);
        qf_file_release(&ck->files[i], 0, ck->files[i].size);
    }
    json_t *files = qf_source_files_json(ck, h);
    free(h);
    const char *dir = qf_path_is_dir(src) ? src : ck->dir;
    char *real = realpath(dir, NULL);
    json_t *out = json_pack("{s:s, s:o}", "name", qf_path_base(real ? real : dir), "files", files);
    free(real);
    char *cpath = qf_path_join(dir, "config.json"), *ctext = NULL;
    size_t clen = 0;
    qf_error e;
    if (qf_path_exists(cpath) && qf_file_read_all(cpath, 64u << 20, &ctext, &clen, &e) == QF_OK) {
        char hex[QF_HASH_HEX_LEN + 1];
        qf_hash_hex(qf_hash_bytes(ctext, clen), hex);
        json_object_set_new(out, "config_xxh3_128", json_string(hex));
    }
    free(ctext);
    free(cpath);
    return out;
}

qf_status qf_output_finish(const qf_convert_opts *o, const qf_checkpoint *ck, char *tmp, json_t *manifest, qf_status s,
                           uint64_t *bytes_out, qf_error *err)
{
    if (s == QF_OK && qf_ctx_cancelled(o->ctx))
        s = qf_fail(err, QF_ERR_INTERRUPTED, "interrupted; nothing was written to %s", o->out);
    if (s == QF_OK) {
        json_t *source = qf_output_source_json(ck, o->src);
        if (!source) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
        else json_object_set_new(manifest, "source", source);
    }
    if (s == QF_OK) s = qf_model_card_write(tmp, manifest, err);
    if (s == QF_OK) {
        json_t *f, *files = json_object_get(manifest, "files");
        size_t i;
        json_array_foreach(files, i, f) if (json_is_string(json_object_get(f, "name")) &&
                                            strcmp(json_string_value(json_object_get(f, "name")), "README.md") == 0)
            *bytes_out += (uint64_t)json_integer_value(json_object_get(f, "size"));
        s = qf_manifest_write(tmp, manifest, err);
    }
    if (s == QF_OK && o->force && qf_path_exists(o->out)) qf_remove_tree(o->out);
    if (s == QF_OK && rename(tmp, o->out) != 0)
        s = qf_fail(err, QF_ERR_IO, "cannot rename %s to %s: %s", tmp, o->out, strerror(errno));
    if (s != QF_OK) qf_remove_tree(tmp);
    free(tmp);
    return s;
}
