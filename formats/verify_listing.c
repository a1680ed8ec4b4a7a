/* verify_listing.c - read a digest listing: sha256sum output or a hub API's file list
 * (see qf_verify_folder.h). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"
#include "verify_listing.h"

void qf_listing_free(qf_listing *l)
{
    if (!l) return;
    for (int i = 0; i < l->n; i++) free(l->e[i].name);
    free(l->e);
    memset(l, 0, sizeof *l);
}

static int qf_listing_add(qf_listing *l, const char *name, size_t nlen)
{
    while (nlen > 2 && name[0] == '.' && name[1] == '/') name += 2, nlen -= 2;
    qf_listing_entry *n = realloc(l->e, sizeof *n * (size_t)(l->n + 1));
    if (!n) return -1;
    l->e = n;
    memset(&n[l->n], 0, sizeof *n);
    n[l->n].name = strndup(name, nlen);
    return n[l->n++].name ? 0 : -1;
}

static const char *qf_js(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static qf_status qf_listing_json(json_t *root, const char *path, qf_listing *l, qf_error *err)
{
    json_t *arr = json_is_array(root) ? root : json_object_get(root, "siblings");
    if (!json_is_array(arr)) return qf_fail(err, QF_ERR_FORMAT, "%s: not a file list (a JSON list, or an object with \"siblings\")", path);
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const char *type = qf_js(e, "type");
        if (type && strcmp(type, "file") != 0) continue; /* "directory" entries of a tree listing */
        const char *name = qf_js(e, "path") ? qf_js(e, "path") : qf_js(e, "rfilename");
        if (!name) return qf_fail(err, QF_ERR_FORMAT, "%s: entry %zu names no file (\"path\" or \"rfilename\")", path, i);
        if (qf_listing_add(l, name, strlen(name))) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
        qf_listing_entry *le = &l->e[l->n - 1];
        json_t *lfs = json_object_get(e, "lfs");
        json_t *size = json_object_get(json_is_object(lfs) ? lfs : e, "size");
        if (json_is_integer(size) && json_integer_value(size) >= 0) le->has_size = 1, le->size = (uint64_t)json_integer_value(size);
        if (json_is_object(lfs)) {
            const char *hex = qf_js(lfs, "sha256") ? qf_js(lfs, "sha256") : qf_js(lfs, "oid");
            if (hex && !strncmp(hex, "sha256:", 7)) hex += 7;
            if (!hex || qf_sha256_parse_hex(hex, &le->sha256) != 0)
                return qf_fail(err, QF_ERR_FORMAT, "%s: %s: the lfs entry has no SHA-256", path, name);
            le->has_sha256 = 1;
        }
    }
    return QF_OK;
}

static qf_status qf_listing_sums(char *text, const char *path, qf_listing *l, qf_error *err)
{
    int line = 0;
    for (char *p = text, *next; p && *p; p = next) {
        line++;
        char *nl = strchr(p, '\n');
        next = nl ? nl + 1 : NULL;
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len && p[len - 1] == '\r') len--;
        if (len == 0 || p[0] == '#') continue;
        /* "HEX  NAME" (text mode) or "HEX *NAME" (binary mode) */
        if (len < QF_SHA256_HEX_LEN + 3 || p[QF_SHA256_HEX_LEN] != ' ' ||
            (p[QF_SHA256_HEX_LEN + 1] != ' ' && p[QF_SHA256_HEX_LEN + 1] != '*'))
            return qf_fail(err, QF_ERR_FORMAT, "%s: line %d is not 'SHA256  NAME'", path, line);
        char hex[QF_SHA256_HEX_LEN + 1];
        memcpy(hex, p, QF_SHA256_HEX_LEN);
        hex[QF_SHA256_HEX_LEN] = 0;
        if (qf_listing_add(l, p + QF_SHA256_HEX_LEN + 2, len - QF_SHA256_HEX_LEN - 2))
            return qf_fail(err, QF_ERR_NOMEM, "out of memory");
        qf_listing_entry *le = &l->e[l->n - 1];
        if (qf_sha256_parse_hex(hex, &le->sha256) != 0)
            return qf_fail(err, QF_ERR_FORMAT, "%s: line %d: not a SHA-256", path, line);
        le->has_sha256 = 1;
    }
    return QF_OK;
}

qf_status qf_listing_read(const char *path, qf_listing *out, qf_error *err)
{
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    QF_TRY(qf_file_read_all(path, 256u << 20, &text, &len, err));
    const char *p = text;
    while (p < text + len && isspace((unsigned char)*p)) p++;
    qf_status s;
    if (p < text + len && (*p == '[' || *p == '{')) {
        json_error_t je;
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        s = root ? qf_listing_json(root, path, out, err)
                 : qf_fail(err, QF_ERR_FORMAT, "%s: invalid JSON at line %d: %s", path, je.line, je.text);
        json_decref(root);
    } else s = qf_listing_sums(text, path, out, err);
    free(text);
    if (s == QF_OK && out->n == 0) s = qf_fail(err, QF_ERR_FORMAT, "%s: lists no files", path);
    for (int i = 0; s == QF_OK && i < out->n; i++) {
        const char *n = out->e[i].name;
        if (!n[0] || n[0] == '/' || strstr(n, "..")) s = qf_fail(err, QF_ERR_FORMAT, "%s: '%s' is not a path inside the folder", path, n);
        for (int k = 0; s == QF_OK && k < i; k++)
            if (!strcmp(out->e[k].name, n)) s = qf_fail(err, QF_ERR_FORMAT, "%s: '%s' is listed twice", path, n);
    }
    if (s) qf_listing_free(out);
    return s;
}
