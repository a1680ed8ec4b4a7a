/* safetensors_read.c - parse and validate safetensors files; open hub folders (see qf_safetensors.h). */
#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qf_gguf.h"
#include "qf_safetensors.h"
#include "qf_shard_index.h"
#include "qf_zip_checkpoint.h"

void qf_tensors_free(qf_tensor *tensors, int n)
{
    if (!tensors) return;
    for (int i = 0; i < n; i++) free(tensors[i].name);
    free(tensors);
}

void qf_st_meta_free(qf_st_meta *meta, int n)
{
    if (!meta) return;
    for (int i = 0; i < n; i++) {
        free(meta[i].key);
        free(meta[i].value);
    }
    free(meta);
}

uint64_t qf_tensor_numel(const qf_tensor *t)
{
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
    return n;
}

typedef struct {
    uint64_t begin, end;
    int index;
} qf_span;

static int qf_span_cmp(const void *a, const void *b)
{
    const qf_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* A JSON integer that is >= 0; jansson stores integers as long long. */
static int qf_json_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

static qf_status qf_parse_entry(const char *label, const char *name, json_t *info, uint64_t data_size,
                                qf_tensor *t, qf_error *err)
{
    if (!json_is_object(info)) return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': entry is not an object", label, name);
    json_t *jd = json_object_get(info, "dtype"), *js = json_object_get(info, "shape"),
           *jo = json_object_get(info, "data_offsets");
    if (!json_is_string(jd)) return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': missing dtype", label, name);
    t->dtype = qf_dtype_from_name(json_string_value(jd));
    if (t->dtype == QF_DTYPE_INVALID)
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", label, name, json_string_value(jd));
    if (!json_is_array(js) || json_array_size(js) > QF_MAX_DIMS)
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': shape must be an array of at most %d dims", label, name,
                       QF_MAX_DIMS);
    t->ndim = (int)json_array_size(js);
    unsigned __int128 bits = (unsigned)qf_dtype_bits(t->dtype);
    for (int d = 0; d < t->ndim; d++) {
        uint64_t dim;
        if (!qf_json_u64(json_array_get(js, (size_t)d), &dim))
            return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", label, name, d);
        t->shape[d] = (int64_t)dim;
        bits *= dim;
        if (bits > ((unsigned __int128)1 << 70))
            return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': shape is impossibly large", label, name);
    }
    if (bits % 8)
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': %s shape does not fill whole bytes", label, name,
                       qf_dtype_name(t->dtype));
    uint64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !qf_json_u64(json_array_get(jo, 0), &b) ||
        !qf_json_u64(json_array_get(jo, 1), &e))
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': data_offsets must be two non-negative integers", label, name);
    if (e < b) return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu < begin %llu", label, name,
                              (unsigned long long)e, (unsigned long long)b);
    if (e > data_size)
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': data_offsets end %llu is past the end of the data (%llu bytes)",
                       label, name, (unsigned long long)e, (unsigned long long)data_size);
    if ((unsigned __int128)(e - b) * 8 != bits)
        return qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': %llu bytes in data_offsets but shape x %s needs %llu", label,
                       name, (unsigned long long)(e - b), qf_dtype_name(t->dtype), (unsigned long long)(bits / 8));
    t->nbytes = e - b;
    t->offset = b; /* relative to the data start until the caller rebases it */
    return QF_OK;
}

qf_status qf_safetensors_parse(const char *label, const uint8_t *data, uint64_t size, int file_index,
                               qf_tensor **tensors, int *n_tensors, qf_st_meta **meta, int *n_meta, qf_error *err)
{
    if (meta) *meta = NULL, *n_meta = 0;
    if (size < 8) return qf_fail(err, QF_ERR_FORMAT, "%s: %llu bytes is too short for a safetensors file", label,
                                 (unsigned long long)size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | data[i];
    if (hlen > QF_ST_MAX_HEADER)
        return qf_fail(err, QF_ERR_FORMAT, "%s: header length %llu exceeds the %llu-byte limit", label,
                       (unsigned long long)hlen, QF_ST_MAX_HEADER);
    if (hlen > size - 8)
        return qf_fail(err, QF_ERR_FORMAT, "%s: header length %llu runs past the end of the %llu-byte file (truncated?)",
                       label, (unsigned long long)hlen, (unsigned long long)size);
    if (hlen < 2 || data[8] != '{') return qf_fail(err, QF_ERR_FORMAT, "%s: header is not a JSON object", label);
    json_error_t je;
    json_t *root = json_loadb((const char *)data + 8, hlen, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root) return qf_fail(err, QF_ERR_FORMAT, "%s: header JSON invalid at byte %d: %s", label, je.position + 8, je.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return qf_fail(err, QF_ERR_FORMAT, "%s: header is not a JSON object", label);
    }
    uint64_t data_start = 8 + hlen, data_size = size - data_start;
    size_t n_new = json_object_size(root);
    qf_tensor *arr = realloc(*tensors, sizeof(qf_tensor) * ((size_t)*n_tensors + n_new + 1));
    qf_span *spans = malloc(sizeof(qf_span) * (n_new + 1));
    if (!arr || !spans) {
        free(spans);
        if (arr) *tensors = arr;
        json_decref(root);
        return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for %zu tensors", label, n_new);
    }
    *tensors = arr;
    int base = *n_tensors, k = 0;
    qf_status st = QF_OK;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                st = qf_fail(err, QF_ERR_FORMAT, "%s: __metadata__ is not an object", label);
                break;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(val, mk, mv) if (!json_is_string(mv))
            {
                st = qf_fail(err, QF_ERR_FORMAT, "%s: __metadata__ value of '%s' is not a string", label, mk);
                break;
            }
            if (st) break;
            if (meta) {
                *meta = calloc(json_object_size(val) + 1, sizeof(qf_st_meta));
                json_object_foreach(val, mk, mv)
                {
                    (*meta)[*n_meta].key = strdup(mk);
                    (*meta)[*n_meta].value = strdup(json_string_value(mv));
                    (*n_meta)++;
                }
            }
            continue;
        }
        qf_tensor *t = &arr[base + k];
        memset(t, 0, sizeof *t);
        st = qf_parse_entry(label, key, val, data_size, t, err);
        if (st) break;
        t->name = strdup(key);
        t->file = file_index;
        spans[k] = (qf_span){t->offset, t->offset + t->nbytes, base + k};
        t->offset += data_start;
        t->data = t->nbytes ? data + t->offset : NULL;
        k++;
    }
    json_decref(root);
    if (st == QF_OK) {
        /* Spans must tile the data section exactly: start at 0, no holes, no overlaps, end at EOF. */
        qsort(spans, (size_t)k, sizeof *spans, qf_span_cmp);
        uint64_t pos = 0;
        for (int i = 0; i < k && st == QF_OK; i++) {
            const char *nm = arr[spans[i].index].name;
            if (spans[i].begin < pos)
                st = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' overlaps the previous tensor (begins at %llu < %llu)",
                             label, nm, (unsigned long long)spans[i].begin, (unsigned long long)pos);
            else if (spans[i].begin > pos)
                st = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' leaves a hole before it (begins at %llu, expected %llu)",
                             label, nm, (unsigned long long)spans[i].begin, (unsigned long long)pos);
            pos = spans[i].end;
        }
        if (st == QF_OK && pos != data_size)
            st = qf_fail(err, QF_ERR_FORMAT, "%s: tensors end at data byte %llu but the file has %llu data bytes (%s)",
                         label, (unsigned long long)pos, (unsigned long long)data_size,
                         pos > data_size ? "truncated" : "trailing bytes");
    }
    free(spans);
    if (st != QF_OK) {
        for (int i = 0; i < k; i++) free(arr[base + i].name);
        if (meta) qf_st_meta_free(*meta, *n_meta), *meta = NULL, *n_meta = 0;
        return st;
    }
    *n_tensors = base + k;
    return QF_OK;
}

static int qf_tensor_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_tensor *)a)->name, ((const qf_tensor *)b)->name);
}

void qf_checkpoint_free(qf_checkpoint *ck)
{
    if (!ck) return;
    for (int i = 0; i < ck->n_files; i++) qf_file_unmap(&ck->files[i]);
    free(ck->files);
    for (int i = 0; i < ck->n_tensors; i++)
        if (ck->tensors[i].decode) free((void *)ck->tensors[i].data); /* acquired and not released */
    qf_tensors_free(ck->tensors, ck->n_tensors);
    qf_st_meta_free(ck->meta, ck->n_meta);
    for (int i = 0; i < ck->n_owned; i++) free(ck->owned[i]);
    free(ck->owned);
    free(ck->dir);
    free(ck);
}

const qf_tensor *qf_checkpoint_find(const qf_checkpoint *ck, const char *name)
{
    qf_tensor key = {.name = (char *)name};
    return bsearch(&key, ck->tensors, (size_t)ck->n_tensors, sizeof(qf_tensor), qf_tensor_cmp);
}

uint64_t qf_checkpoint_bytes(const qf_checkpoint *ck)
{
    uint64_t n = 0;
    for (int i = 0; i < ck->n_files; i++) n += ck->files[i].size;
    return n;
}

static int qf_is_table_tensor(const qf_checkpoint *ck, const qf_tensor *t)
{
    return ck->n_tensors > 0 && t >= ck->tensors && t < ck->tensors + ck->n_tensors;
}

void qf_checkpoint_release(const qf_checkpoint *ck, const qf_tensor *t)
{
    if (t->decode) { /* its bytes are a buffer, not pages of a file */
        if (qf_is_table_tensor(ck, t)) {
            qf_tensor *m = (qf_tensor *)t; /* the table's own entry: ck owns it */
            free((void *)m->data);
            m->data = NULL;
        }
        return;
    }
    qf_file_release(&ck->files[t->file], t->offset, t->nbytes);
}

void *qf_checkpoint_take(const qf_checkpoint *ck, const qf_tensor *t)
{
    if (!t->decode || !qf_is_table_tensor(ck, t)) return NULL;
    qf_tensor *m = (qf_tensor *)t;
    void *b = (void *)m->data;
    m->data = NULL;
    return b;
}

qf_status qf_checkpoint_acquire(const qf_checkpoint *ck, const qf_tensor *t, qf_error *err)
{
    if (!t->decode || t->data || t->nbytes == 0) return QF_OK;
    if (!qf_is_table_tensor(ck, t))
        return qf_fail(err, QF_ERR_USAGE, "%s: tensor '%s': acquire a decoded tensor through its table entry", ck->dir,
                       t->name);
    void *buf = malloc(t->nbytes);
    if (!buf) return qf_fail(err, QF_ERR_NOMEM, "%s: tensor '%s': out of memory for its %llu decoded bytes", ck->dir,
                             t->name, (unsigned long long)t->nbytes);
    qf_status s = t->decode->run(t->decode, buf, err);
    if (s) {
        free(buf);
        return s;
    }
    ((qf_tensor *)t)->data = buf;
    return QF_OK;
}


/* Shard file names of a folder: from the index (sorted, unique) or the single file. */
static qf_status qf_list_shards(const char *dir, char ***names, int *n, json_t **weight_map_out, qf_error *err)
{
    QF_TRY(qf_shard_index_or_single(dir, "model.safetensors.index.json", "model.safetensors", names, n, weight_map_out, err));
    if (*n) return QF_OK;
    DIR *d = opendir(dir);
    if (!d) return qf_fail(err, QF_ERR_IO, "%s: cannot open folder", dir);
    struct dirent *de;
    char *found = NULL;
    int count = 0, has_bin = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l > 12 && strcmp(de->d_name + l - 12, ".safetensors") == 0) {
            count++;
            if (!found) found = strdup(de->d_name);
        }
        if (l > 4 && (strcmp(de->d_name + l - 4, ".bin") == 0 || strcmp(de->d_name + l - 3, ".pt") == 0)) has_bin = 1;
    }
    closedir(d);
    if (count == 1) {
        *names = malloc(sizeof(char *));
        (*names)[0] = found;
        *n = 1;
        return QF_OK;
    }
    free(found);
    if (count > 1)
        return qf_fail(err, QF_ERR_FORMAT, "%s: %d .safetensors files but no model.safetensors.index.json", dir, count);
    if (has_bin)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: only PyTorch .bin/.pt weights found; no .safetensors", dir);
    return qf_fail(err, QF_ERR_IO, "%s: no model.safetensors, index or .safetensors file", dir);
}

/* The index and the shards must agree both ways: an index that lists a subset of a shard's
 * tensors would otherwise give an artifact that silently lacks them and still verifies.
 * (Every tensor the index names was checked by the caller.)  .safetensors files the index
 * does not name are left alone: Mistral's repositories ship consolidated.safetensors beside
 * the indexed shards. */
static qf_status qf_index_covers(const qf_checkpoint *ck, json_t *weight_map, qf_error *err)
{
    if ((size_t)ck->n_tensors != json_object_size(weight_map))
        for (int i = 0; i < ck->n_tensors; i++)
            if (!json_object_get(weight_map, ck->tensors[i].name))
                return qf_fail(err, QF_ERR_FORMAT, "%s/model.safetensors.index.json: tensor '%s' of shard '%s' is not "
                               "in the index's weight_map", ck->dir, ck->tensors[i].name,
                               qf_path_base(ck->files[ck->tensors[i].file].path));
    /* Hub shard names say how many there are: model-00001-of-00003.safetensors. */
    int total = 0, numbered = 0;
    for (int i = 0; i < ck->n_files; i++) {
        const char *b = qf_path_base(ck->files[i].path), *of = strstr(b, "-of-");
        int m = 0, used = 0;
        if (!of || sscanf(of, "-of-%d.safetensors%n", &m, &used) != 1 || of[used] != 0 || m <= 0) continue;
        if (total && m != total)
            return qf_fail(err, QF_ERR_FORMAT, "%s/model.safetensors.index.json: shard '%s' says %d shards, another %d",
                           ck->dir, b, m, total);
        total = m;
        numbered++;
    }
    if (numbered != total)
        return qf_fail(err, QF_ERR_FORMAT, "%s/model.safetensors.index.json: names %d of the %d shards its shard names "
                       "announce (-of-%05d): tensors would be missing", ck->dir, numbered, total, total);
    return QF_OK;
}

/* The spec lets the header length leave the data section at any offset; the readers load
 * elements through typed pointers, so a tensor whose bytes are not aligned to its element
 * size (a header of odd length) is copied into an aligned buffer the checkpoint owns.
 * qforge's and Hugging Face's writers pad the header to 8 bytes: this costs nothing there. */
static qf_status qf_align_tensors(qf_checkpoint *ck, int from, qf_error *err)
{
    for (int i = from; i < ck->n_tensors; i++) {
        qf_tensor *t = &ck->tensors[i];
        size_t es = (size_t)qf_dtype_bits(t->dtype) / 8;
        if (!t->data || es <= 1 || (uintptr_t)t->data % (es < 8 ? es : 8) == 0) continue;
        void **owned = realloc(ck->owned, sizeof *owned * (size_t)(ck->n_owned + 1));
        void *copy = owned ? malloc(t->nbytes) : NULL; /* malloc: aligned for every type */
        if (owned) ck->owned = owned;
        if (!copy)
            return qf_fail(err, QF_ERR_NOMEM, "%s: tensor '%s': out of memory for an aligned copy of %llu bytes",
                           ck->files[t->file].path, t->name, (unsigned long long)t->nbytes);
        memcpy(copy, t->data, t->nbytes);
        ck->owned[ck->n_owned++] = copy;
        t->data = copy;
    }
    return QF_OK;
}

qf_status qf_checkpoint_open(const char *path, qf_checkpoint **out, qf_error *err)
{
    *out = NULL;
    if (qf_zip_checkpoint_applies(path)) return qf_zip_checkpoint_open(path, out, err); /* PyTorch .bin / .pt */
    char *gguf = qf_gguf_checkpoint_path(path); /* a GGUF artifact: dequantized, Hugging Face names */
    if (gguf) {
        free(gguf);
        return qf_gguf_load_checkpoint(path, out, err);
    }
    if (!qf_path_exists(path)) return qf_fail(err, QF_ERR_IO, "%s: no such file or folder", path);
    qf_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    char **names = NULL;
    int n_names = 0;
    json_t *weight_map = NULL;
    qf_status st;
    if (qf_path_is_dir(path)) {
        ck->dir = strdup(path);
        st = qf_list_shards(path, &names, &n_names, &weight_map, err);
    } else {
        const char *b = qf_path_base(path);
        ck->dir = strndup(path, (size_t)(b - path));
        if (!*ck->dir) free(ck->dir), ck->dir = strdup(".");
        names = malloc(sizeof(char *));
        names[0] = strdup(b);
        n_names = 1;
        st = QF_OK;
    }
    if (st == QF_OK) {
        ck->files = calloc((size_t)n_names, sizeof(qf_mapped_file));
        for (int i = 0; i < n_names && st == QF_OK; i++) {
            char *p = qf_path_join(ck->dir, names[i]);
            if (!qf_path_exists(p))
                st = qf_fail(err, QF_ERR_FORMAT, "%s/model.safetensors.index.json: shard '%s' does not exist", ck->dir,
                             names[i]);
            else if (!qf_path_is_dir(path) || (st = qf_model_file_check(ck->dir, p, err)) == QF_OK)
                st = qf_file_map(p, &ck->files[i], err); /* a folder's shards stay inside it (../, symlinks) */
            free(p);
            if (st) break;
            ck->n_files = i + 1;
            int before = ck->n_tensors;
            st = qf_safetensors_parse(ck->files[i].path, ck->files[i].data, ck->files[i].size, i, &ck->tensors,
                                      &ck->n_tensors, i == 0 ? &ck->meta : NULL, i == 0 ? &ck->n_meta : NULL, err);
            if (st == QF_OK) st = qf_align_tensors(ck, before, err);
        }
    }
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    if (st == QF_OK) {
        qsort(ck->tensors, (size_t)ck->n_tensors, sizeof(qf_tensor), qf_tensor_cmp);
        for (int i = 1; i < ck->n_tensors && st == QF_OK; i++)
            if (strcmp(ck->tensors[i - 1].name, ck->tensors[i].name) == 0)
                st = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' appears in two shards (%s and %s)", ck->dir,
                             ck->tensors[i].name, qf_path_base(ck->files[ck->tensors[i - 1].file].path),
                             qf_path_base(ck->files[ck->tensors[i].file].path));
    }
    if (st == QF_OK && weight_map) {
        /* every tensor the index names must be in the shard it names */
        const char *tn;
        json_t *fv;
        json_object_foreach(weight_map, tn, fv)
        {
            const qf_tensor *t = qf_checkpoint_find(ck, tn);
            if (!t || strcmp(qf_path_base(ck->files[t->file].path), json_string_value(fv)) != 0) {
                st = qf_fail(err, QF_ERR_FORMAT, "%s/model.safetensors.index.json: tensor '%s' is not in shard '%s'",
                             ck->dir, tn, json_string_value(fv));
                break;
            }
        }
    }
    if (st == QF_OK && weight_map) st = qf_index_covers(ck, weight_map, err);
    json_decref(weight_map);
    if (st != QF_OK) {
        qf_checkpoint_free(ck);
        return st;
    }
    *out = ck;
    return QF_OK;
}
