/* journal.c - resume journal of a conversion (see journal.h). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "journal.h"
#include "qf_fs.h"
#include "qf_version.h"

void qf_journal_key(json_t *recipe, const char *src_dir, char *hex)
{
    json_t *k = json_pack("{s:s, s:O, s:[]}", "tool", QF_VERSION, "recipe", recipe, "source");
    json_t *files = json_object_get(k, "source");
    DIR *d = opendir(src_dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char *p = qf_path_join(src_dir, de->d_name);
        struct stat st;
        if (de->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode))
            json_array_append_new(files, json_pack("{s:s, s:I, s:I, s:I}", "name", de->d_name, "size",
                                                   (json_int_t)st.st_size, "mtime", (json_int_t)st.st_mtim.tv_sec,
                                                   "mtime_ns", (json_int_t)st.st_mtim.tv_nsec));
        free(p);
    }
    if (d) closedir(d);
    /* readdir order is arbitrary: the key must not depend on it */
    size_t n = json_array_size(files);
    for (size_t i = 0; i + 1 < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(json_string_value(json_object_get(json_array_get(files, i), "name")),
                       json_string_value(json_object_get(json_array_get(files, j), "name"))) > 0) {
                json_t *a = json_incref(json_array_get(files, i)), *b = json_incref(json_array_get(files, j));
                json_array_set_new(files, i, b);
                json_array_set_new(files, j, a);
            }
    char *text = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
    qf_hash_hex(qf_hash_bytes(text, strlen(text)), hex);
    free(text);
    json_decref(k);
}

json_t *qf_journal_load(const char *tmp, const char *key)
{
    char *p = qf_path_join(tmp, QF_JOURNAL_NAME);
    json_t *j = json_load_file(p, 0, NULL);
    free(p);
    json_t *k = json_object_get(j, "key");
    if (!json_is_string(k) || strcmp(json_string_value(k), key) != 0 || !json_is_array(json_object_get(j, "shards"))) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *qf_journal_new(const char *key) { return json_pack("{s:s, s:[]}", "key", key, "shards"); }

json_t *qf_journal_shard(json_t *j, const char *tmp, const char *name)
{
    json_t *shards = json_object_get(j, "shards"), *e;
    size_t i;
    json_array_foreach(shards, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) != 0) continue;
        char *p = qf_path_join(tmp, name);
        qf_mapped_file f;
        qf_error err;
        json_t *found = NULL;
        qf_hash128 want;
        if (qf_file_map(p, &f, &err) == QF_OK) {
            if (f.size == (uint64_t)json_integer_value(json_object_get(e, "size")) &&
                qf_hash_parse_hex(json_string_value(json_object_get(e, "xxh3_128")), &want) == 0 &&
                qf_hash_equal(want, qf_hash_bytes(f.data ? (const void *)f.data : "", f.size)))
                found = e;
            qf_file_unmap(&f);
        }
        free(p);
        return found;
    }
    return NULL;
}

qf_status qf_journal_add(json_t *j, const char *tmp, const char *name, uint64_t size, qf_hash128 h,
                         const qf_sha256 *sha, const qf_hash128 *tensor_hashes, int n, qf_error *err)
{
    char hex[QF_HASH_HEX_LEN + 1];
    json_t *th = json_array();
    for (int i = 0; i < n; i++) {
        qf_hash_hex(tensor_hashes[i], hex);
        json_array_append_new(th, json_string(hex));
    }
    qf_hash_hex(h, hex);
    char shex[QF_SHA256_HEX_LEN + 1];
    qf_sha256_hex(*sha, shex);
    json_array_append_new(json_object_get(j, "shards"),
                          json_pack("{s:s, s:I, s:s, s:s, s:o}", "name", name, "size", (json_int_t)size, "xxh3_128", hex,
                                    "sha256", shex, "tensors", th));
    char *text = json_dumps(j, JSON_COMPACT);
    char *p = qf_path_join(tmp, QF_JOURNAL_NAME);
    qf_status s = qf_file_write_atomic(p, text, strlen(text), err);
    free(p);
    free(text);
    return s;
}
