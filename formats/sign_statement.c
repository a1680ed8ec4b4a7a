/* sign_statement.c - the in-toto statement model_signing signs: build it, read it back
 * (see qf_sign.h).  Field names and values are model_signing 1.1.1's
 * (_signing/signing.py: Payload, dsse_payload_to_manifest). */
#include <stdlib.h>
#include <string.h>

#include "qf_sign.h"

#define QF_STATEMENT_TYPE "https://in-toto.io/Statement/v1"
#define QF_PREDICATE_TYPE "https://model_signing/signature/v1.0"

/* The subject's digest: SHA-256 over every file's raw digest, in name order. */
static qf_sha256 qf_root_digest(const qf_file_list *l)
{
    qf_sha256_ctx *c = qf_sha256_new();
    qf_sha256 h = {{0}};
    if (!c) return h;
    for (int i = 0; i < l->n; i++) qf_sha256_update(c, l->f[i].sha256.b, sizeof l->f[i].sha256.b);
    return qf_sha256_final(c);
}

static json_t *qf_hex_json(qf_sha256 h)
{
    char hex[QF_SHA256_HEX_LEN + 1];
    qf_sha256_hex(h, hex);
    return json_string(hex);
}

json_t *qf_sign_statement(const char *model_name, const qf_file_list *l, const char *const *ignore, int n_ignore)
{
    json_t *res = json_array(), *ign = json_array();
    for (int i = 0; i < l->n; i++)
        json_array_append_new(res, json_pack("{s:s, s:s, s:o}", "name", l->f[i].name, "algorithm", "sha256", "digest",
                                             qf_hex_json(l->f[i].sha256)));
    for (int i = 0; i < n_ignore; i++) json_array_append_new(ign, json_string(ignore[i]));
    return json_pack("{s:s, s:[{s:s, s:{s:o}}], s:s, s:{s:o, s:{s:s, s:s, s:b, s:o}}}", "_type", QF_STATEMENT_TYPE,
                     "subject", "name", model_name, "digest", "sha256", qf_hex_json(qf_root_digest(l)), "predicateType",
                     QF_PREDICATE_TYPE, "predicate", "resources", res, "serialization", "method", "files", "hash_type",
                     "sha256", "allow_symlinks", 0, "ignore_paths", ign);
}

static const char *qf_str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int qf_streq(const char *a, const char *b) { return a && strcmp(a, b) == 0; }

/* A resource name must stay inside the folder: relative, no "..", no empty parts. */
static int qf_safe_name(const char *n)
{
    if (!n || !n[0] || n[0] == '/') return 0;
    for (const char *p = n; *p;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += l + (e ? 1 : 0);
        if (e && !*p) return 0;
    }
    return 1;
}

qf_status qf_sign_statement_parse(const char *payload, size_t len, const char *sigpath, qf_file_list *out,
                                  json_t **ignore, qf_error *err)
{
    memset(out, 0, sizeof *out);
    *ignore = NULL;
    json_error_t je;
    json_t *st = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &je);
    json_t *pred = json_object_get(st, "predicate"), *ser = json_object_get(pred, "serialization");
    json_t *res = json_object_get(pred, "resources"), *subj = json_object_get(st, "subject");
    const char *why = NULL;
    if (!st) why = "the signed statement is not JSON";
    else if (!qf_streq(qf_str(st, "_type"), QF_STATEMENT_TYPE)) why = "the statement is not an in-toto Statement v1";
    else if (!qf_streq(qf_str(st, "predicateType"), QF_PREDICATE_TYPE))
        why = "the predicate is not model_signing's signature/v1.0";
    else if (!json_is_array(subj) || json_array_size(subj) != 1) why = "the statement needs exactly one subject";
    else if (!qf_streq(qf_str(ser, "method"), "files") || !qf_streq(qf_str(ser, "hash_type"), "sha256"))
        why = "only the 'files' serialization with sha256 is supported";
    else if (!json_is_array(res)) why = "the predicate has no resources list";
    size_t i;
    json_t *r;
    if (!why) {
        out->f = calloc(json_array_size(res) + 1, sizeof *out->f);
        if (!out->f) why = "out of memory";
        json_array_foreach(res, i, r)
        {
            if (why) break;
            const char *name = qf_str(r, "name"), *hex = qf_str(r, "digest");
            if (!qf_safe_name(name) || !qf_streq(qf_str(r, "algorithm"), "sha256") || !hex ||
                qf_sha256_parse_hex(hex, &out->f[i].sha256) != 0) {
                why = "a resource entry is malformed";
                break;
            }
            out->f[i].name = strdup(name);
            out->n++;
            for (int k = 0; k < out->n - 1; k++)
                if (!strcmp(out->f[k].name, name)) why = "a file is listed twice";
        }
    }
    qf_sha256 want;
    if (!why && (qf_sha256_parse_hex(qf_str(json_object_get(json_array_get(subj, 0), "digest"), "sha256"), &want) != 0 ||
                 !qf_sha256_equal(want, qf_root_digest(out))))
        why = "the subject digest does not match the resources listed";
    json_t *ign = json_object_get(ser, "ignore_paths");
    if (!why && ign) {
        json_array_foreach(ign, i, r) if (!json_is_string(r)) why = "ignore_paths is malformed";
        if (!json_is_array(ign)) why = "ignore_paths is malformed";
    }
    if (why) {
        qf_file_list_free(out);
        json_decref(st);
        return qf_fail(err, QF_ERR_BAD_SIGNATURE, "%s: %s", sigpath, why);
    }
    *ignore = ign ? json_incref(ign) : json_array();
    json_decref(st);
    return QF_OK;
}
