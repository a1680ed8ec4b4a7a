/* manifest.c - build, seal, write and load qforge.manifest.json (see qf_manifest.h). */
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"
#include "qf_manifest.h"
#include "qf_version.h"

#define QF_MANIFEST_FLAGS (JSON_INDENT(1) | JSON_SORT_KEYS)

json_t *qf_manifest_new(void)
{
    return json_pack("{s:s, s:i, s:{s:s, s:s}}", "format", "qforge.manifest", "version", 1, "tool", "name", "qforge",
                     "version", QF_VERSION);
}

static json_t *qf_hash_json(qf_hash128 h)
{
    char hex[QF_HASH_HEX_LEN + 1];
    qf_hash_hex(h, hex);
    return json_string(hex);
}

static json_t *qf_manifest_list(json_t *m, const char *key)
{
    json_t *a = json_object_get(m, key);
    if (!json_is_array(a)) {
        a = json_array();
        json_object_set_new(m, key, a);
    }
    return a;
}

void qf_manifest_add_file(json_t *m, const char *name, uint64_t size, qf_hash128 h, const qf_sha256 *sha)
{
    json_t *f = json_pack("{s:s, s:I, s:o}", "name", name, "size", (json_int_t)size, "xxh3_128", qf_hash_json(h));
    if (sha) {
        char hex[QF_SHA256_HEX_LEN + 1];
        qf_sha256_hex(*sha, hex);
        json_object_set_new(f, "sha256", json_string(hex));
    }
    json_array_append_new(qf_manifest_list(m, "files"), f);
}

void qf_manifest_add_tensor(json_t *m, const char *file, const char *name, qf_dtype dtype, int ndim,
                            const int64_t *shape, qf_hash128 h)
{
    json_t *sh = json_array();
    for (int d = 0; d < ndim; d++) json_array_append_new(sh, json_integer(shape[d]));
    json_array_append_new(qf_manifest_list(m, "tensors"),
                          json_pack("{s:s, s:s, s:s, s:o, s:o}", "name", name, "file", file, "dtype",
                                    qf_dtype_name(dtype), "shape", sh, "xxh3_128", qf_hash_json(h)));
}

/* Canonical text of m without its seal, and the seal over it. */
static char *qf_manifest_unsealed_text(json_t *m, qf_hash128 *seal)
{
    json_t *c = json_copy(m);
    json_object_del(c, "seal");
    char *s = json_dumps(c, QF_MANIFEST_FLAGS);
    json_decref(c);
    if (s && seal) *seal = qf_hash_bytes(s, strlen(s));
    return s;
}

qf_status qf_manifest_write(const char *dir, json_t *m, qf_error *err)
{
    qf_hash128 seal;
    char *body = qf_manifest_unsealed_text(m, &seal);
    if (!body) return qf_fail(err, QF_ERR_NOMEM, "out of memory writing the manifest");
    free(body);
    json_object_set_new(m, "seal", qf_hash_json(seal));
    char *text = json_dumps(m, QF_MANIFEST_FLAGS);
    char *path = qf_path_join(dir, QF_MANIFEST_NAME);
    size_t len = strlen(text);
    char *full = malloc(len + 2);
    memcpy(full, text, len);
    full[len] = '\n';
    qf_status s = qf_file_write_atomic(path, full, len + 1, err);
    free(full);
    free(text);
    free(path);
    return s;
}

qf_status qf_manifest_load(const char *dir, json_t **out, qf_error *err)
{
    *out = NULL;
    char *path = qf_path_join(dir, QF_MANIFEST_NAME), *text = NULL;
    size_t len = 0;
    qf_status s = qf_file_read_all(path, 1u << 30, &text, &len, err);
    if (s) {
        free(path);
        return s;
    }
    json_error_t je;
    json_t *m = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!m || !json_is_object(m) || !json_is_string(json_object_get(m, "format")) ||
        strcmp(json_string_value(json_object_get(m, "format")), "qforge.manifest") != 0) {
        s = qf_fail(err, QF_ERR_VERIFY, "%s: not a valid qforge manifest (%s)", path,
                    m ? "wrong format field" : je.text);
        json_decref(m);
        free(text);
        free(path);
        return s;
    }
    qf_hash128 seal, stored;
    char *body = qf_manifest_unsealed_text(m, &seal);
    char *canon = json_dumps(m, QF_MANIFEST_FLAGS);
    json_t *js = json_object_get(m, "seal");
    int ok = body && canon && json_is_string(js) && qf_hash_parse_hex(json_string_value(js), &stored) == 0 &&
             qf_hash_equal(seal, stored) && strlen(canon) + 1 == len && memcmp(canon, text, len - 1) == 0 &&
             text[len - 1] == '\n';
    free(body);
    free(canon);
    free(text);
    if (!ok) {
        json_decref(m);
        s = qf_fail(err, QF_ERR_VERIFY, "%s: manifest was modified (seal does not match its content)", path);
        free(path);
        return s;
    }
    free(path);
    *out = m;
    return QF_OK;
}

qf_status qf_manifest_update(const char *dir, const char *key, json_t *value, qf_error *err)
{
    json_t *m;
    qf_status s = qf_manifest_load(dir, &m, err);
    if (s) {
        json_decref(value);
        return s;
    }
    json_object_set_new(m, key, value);
    s = qf_manifest_write(dir, m, err);
    json_decref(m);
    return s;
}
