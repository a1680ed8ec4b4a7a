/* shard_index.c - read a sharded checkpoint's index (see qf_shard_index.h). */
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"
#include "qf_shard_index.h"

static int qf_strcmp_p(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

qf_status qf_shard_index_read(const char *index, char ***names, int *n, json_t **weight_map, qf_error *err)
{
    *names = NULL, *n = 0, *weight_map = NULL;
    json_error_t je;
    json_t *root = json_load_file(index, JSON_REJECT_DUPLICATES, &je);
    if (!root) return qf_fail(err, QF_ERR_FORMAT, "%s: invalid JSON at line %d: %s", index, je.line, je.text);
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        json_decref(root);
        return qf_fail(err, QF_ERR_FORMAT, "%s: no weight_map object", index);
    }
    char **list = malloc(sizeof(char *) * json_object_size(wm));
    int k = 0;
    const char *tn;
    json_t *fv;
    qf_status s = QF_OK;
    json_object_foreach(wm, tn, fv)
    {
        const char *fn = json_is_string(fv) ? json_string_value(fv) : NULL;
        if (!fn || !*fn || strchr(fn, '/') || strcmp(fn, "..") == 0 || strcmp(fn, ".") == 0) {
            s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' maps to an invalid shard name", index, tn);
            break;
        }
        list[k++] = (char *)fn;
    }
    if (s == QF_OK) {
        qsort(list, (size_t)k, sizeof *list, qf_strcmp_p);
        *names = malloc(sizeof(char *) * (size_t)(k + 1));
        for (int i = 0; i < k; i++)
            if (*n == 0 || strcmp((*names)[*n - 1], list[i]) != 0) (*names)[(*n)++] = strdup(list[i]);
        *weight_map = json_incref(wm);
    }
    free(list);
    json_decref(root);
    return s;
}

qf_status qf_shard_index_or_single(const char *dir, const char *index_name, const char *single_name, char ***names,
                                   int *n, json_t **weight_map, qf_error *err)
{
    *names = NULL, *n = 0, *weight_map = NULL;
    char *index = qf_path_join(dir, index_name);
    if (!index) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    if (qf_path_exists(index)) {
        qf_status s = qf_shard_index_read(index, names, n, weight_map, err);
        free(index);
        return s;
    }
    free(index);
    char *single = qf_path_join(dir, single_name);
    int have = single && qf_path_exists(single);
    free(single);
    if (!have) return QF_OK;
    if (!(*names = malloc(sizeof(char *))) || !((*names)[0] = strdup(single_name))) {
        free(*names), *names = NULL;
        return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    }
    *n = 1;
    return QF_OK;
}
