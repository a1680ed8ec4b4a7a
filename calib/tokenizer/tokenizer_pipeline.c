/* tokenizer_pipeline.c - the normalizer and pre-tokenizer steps of a tokenizer.json: parsing
 * them into qf_tk_norm / qf_tk_pre rows (Sequence nesting flattened), and applying the
 * normalizer to a string.  Pre-tokenizer steps are applied in tokenizer_encode.c, where the
 * piece buffers live. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

/* ---- parsing ---------------------------------------------------------------------------- */

/* pattern: {"String": "..."} or {"Regex": "..."}. */
static qf_status qf_tk_get_pattern(const json_t *obj, const char **s, size_t *len, int *is_regex,
                                   const char *name, const char *where, qf_error *err)
{
    const json_t *p = json_object_get(obj, "pattern");
    if (!json_is_object(p)) return qf_fail(err, QF_ERR_FORMAT, "%s: %s has no \"pattern\" object", name, where);
    const json_t *v;
    if ((v = json_object_get(p, "Regex")) && json_is_string(v)) *is_regex = 1;
    else if ((v = json_object_get(p, "String")) && json_is_string(v)) *is_regex = 0;
    else return qf_fail(err, QF_ERR_FORMAT, "%s: %s.pattern has neither \"String\" nor \"Regex\"", name, where);
    *s = json_string_value(v);
    *len = json_string_length(v);
    return QF_OK;
}

static qf_status qf_tk_add_norm(qf_tokenizer *tok, qf_tk_norm *n, qf_error *err)
{
    qf_tk_norm *a = realloc(tok->norm, (tok->n_norm + 1) * sizeof *a);
    if (!a) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", tok->name);
    tok->norm = a;
    a[tok->n_norm++] = *n;
    return QF_OK;
}

qf_status qf_tk_parse_normalizer(qf_tokenizer *tok, const json_t *j, int depth, qf_error *err)
{
    const char *name = tok->name, *type = NULL;
    if (!j || json_is_null(j)) return QF_OK;
    if (!json_is_object(j) || depth > 8) return qf_fail(err, QF_ERR_FORMAT, "%s: normalizer is not an object", name);
    QF_TRY(qf_tk_get_str(j, "type", 0, &type, NULL, name, "normalizer", err));
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(j, "normalizers");
        if (!json_is_array(list))
            return qf_fail(err, QF_ERR_FORMAT, "%s: Sequence normalizer has no \"normalizers\" array", name);
        for (size_t i = 0; i < json_array_size(list); i++)
            QF_TRY(qf_tk_parse_normalizer(tok, json_array_get(list, i), depth + 1, err));
        return QF_OK;
    }
    qf_tk_norm n = {0};
    const char *s = NULL;
    size_t len = 0;
    if (strcmp(type, "Prepend") == 0) {
        QF_TRY(qf_tk_get_str(j, "prepend", 0, &s, &len, name, "Prepend normalizer", err));
        n.type = QF_TK_NORM_PREPEND;
    } else if (strcmp(type, "Replace") == 0) {
        const char *pat;
        size_t pat_len;
        int is_regex;
        QF_TRY(qf_tk_get_pattern(j, &pat, &pat_len, &is_regex, name, "Replace normalizer", err));
        QF_TRY(qf_tk_get_str(j, "content", 0, &s, &len, name, "Replace normalizer", err));
        if (is_regex) {
            n.type = QF_TK_NORM_REPLACE_RE;
            QF_TRY(qf_tk_regex_compile(pat, pat_len, 0, name, "Replace normalizer", &n.re, err));
        } else {
            if (pat_len == 0) return qf_fail(err, QF_ERR_FORMAT, "%s: Replace normalizer has an empty pattern", name);
            n.type = QF_TK_NORM_REPLACE_STR;
            if (!(n.pattern = qf_tk_memdup(pat, pat_len))) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", name);
            n.pattern_len = pat_len;
        }
    } else if (strcmp(type, "NFC") == 0) {
        n.type = QF_TK_NORM_NFC;
        s = "";
        len = 0;
    } else {
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: normalizer type \"%s\" is not supported", name, type);
    }
    n.str = qf_tk_memdup(s, len);
    n.str_len = len;
    qf_status st = n.str ? qf_tk_add_norm(tok, &n, err) : qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", name);
    if (st != QF_OK) {
        free(n.str);
        free(n.pattern);
        pcre2_code_free(n.re);
    }
    return st;
}

static qf_status qf_tk_add_pre(qf_tokenizer *tok, qf_tk_pre *p, qf_error *err)
{
    qf_tk_pre *a = realloc(tok->pre, (tok->n_pre + 1) * sizeof *a);
    if (!a) {
        pcre2_code_free(p->re);
        return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", tok->name);
    }
    tok->pre = a;
    a[tok->n_pre++] = *p;
    return QF_OK;
}

static const struct {
    const char *name;
    qf_tk_split_behavior value;
} qf_tk_behaviors[] = {
    {"Removed", QF_TK_SPLIT_REMOVED},
    {"Isolated", QF_TK_SPLIT_ISOLATED},
    {"MergedWithPrevious", QF_TK_SPLIT_MERGED_WITH_PREVIOUS},
    {"MergedWithNext", QF_TK_SPLIT_MERGED_WITH_NEXT},
    {"Contiguous", QF_TK_SPLIT_CONTIGUOUS},
};

qf_status qf_tk_parse_pre(qf_tokenizer *tok, const json_t *j, int depth, qf_error *err)
{
    const char *name = tok->name, *type = NULL;
    if (!j || json_is_null(j)) return QF_OK;
    if (!json_is_object(j) || depth > 8)
        return qf_fail(err, QF_ERR_FORMAT, "%s: pre_tokenizer is not an object", name);
    QF_TRY(qf_tk_get_str(j, "type", 0, &type, NULL, name, "pre_tokenizer", err));
    qf_tk_pre p = {0};
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(j, "pretokenizers");
        if (!json_is_array(list))
            return qf_fail(err, QF_ERR_FORMAT, "%s: Sequence pre_tokenizer has no \"pretokenizers\" array", name);
        for (size_t i = 0; i < json_array_size(list); i++)
            QF_TRY(qf_tk_parse_pre(tok, json_array_get(list, i), depth + 1, err));
        return QF_OK;
    }
    if (strcmp(type, "Split") == 0) {
        const char *pat, *beh;
        size_t pat_len;
        int is_regex;
        QF_TRY(qf_tk_get_pattern(j, &pat, &pat_len, &is_regex, name, "Split pre_tokenizer", err));
        QF_TRY(qf_tk_get_str(j, "behavior", 0, &beh, NULL, name, "Split pre_tokenizer", err));
        QF_TRY(qf_tk_get_bool(j, "invert", 0, &p.invert, name, "Split pre_tokenizer", err));
        for (size_t i = 0; i < sizeof qf_tk_behaviors / sizeof qf_tk_behaviors[0]; i++)
            if (strcmp(beh, qf_tk_behaviors[i].name) == 0) p.behavior = qf_tk_behaviors[i].value;
        if (!p.behavior)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: Split behavior \"%s\" is not supported", name, beh);
        if (pat_len == 0) return qf_fail(err, QF_ERR_FORMAT, "%s: Split pre_tokenizer has an empty pattern", name);
        p.type = QF_TK_PRE_SPLIT;
        QF_TRY(qf_tk_regex_compile(pat, pat_len, !is_regex, name, "Split pre_tokenizer", &p.re, err));
    } else if (strcmp(type, "ByteLevel") == 0) {
        int use_regex = 1;
        /* each ByteLevel step maps every byte >= 0x80 (and the space) to a 2-byte character, so a
         * chain of them doubles the text per step (a 100-step Sequence took 3 GB and minutes on
         * one line); real tokenizers have one */
        for (size_t k = 0; k < tok->n_pre; k++)
            if (tok->pre[k].type == QF_TK_PRE_BYTE_LEVEL)
                return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: more than one ByteLevel pre_tokenizer is not supported", name);
        QF_TRY(qf_tk_get_bool(j, "add_prefix_space", 1, &p.add_prefix_space, name, "ByteLevel", err));
        QF_TRY(qf_tk_get_bool(j, "use_regex", 1, &use_regex, name, "ByteLevel", err));
        p.type = QF_TK_PRE_BYTE_LEVEL;
        if (use_regex)
            QF_TRY(qf_tk_regex_compile(QF_TK_GPT2_PATTERN, PCRE2_ZERO_TERMINATED, 0, name, "GPT-2", &p.re, err));
    } else if (strcmp(type, "Metaspace") == 0) {
        const char *rep = NULL, *scheme = NULL;
        size_t rep_len = 0;
        int add_prefix = 1;
        QF_TRY(qf_tk_get_str(j, "replacement", 1, &rep, &rep_len, name, "Metaspace", err));
        QF_TRY(qf_tk_get_str(j, "prepend_scheme", 1, &scheme, NULL, name, "Metaspace", err));
        QF_TRY(qf_tk_get_bool(j, "add_prefix_space", 1, &add_prefix, name, "Metaspace", err));
        QF_TRY(qf_tk_get_bool(j, "split", 1, &p.split, name, "Metaspace", err));
        if (!rep) rep = "\xe2\x96\x81", rep_len = 3; /* U+2581 "▁" */
        size_t n;
        if (rep_len == 0 || rep_len >= sizeof p.replacement || qf_tk_utf8_len((unsigned char)rep[0]) != rep_len ||
            qf_tk_utf8_valid_prefix(rep, rep_len) != rep_len || (qf_tk_utf8_decode(rep, &n), n != rep_len))
            return qf_fail(err, QF_ERR_FORMAT, "%s: Metaspace replacement must be one character", name);
        memcpy(p.replacement, rep, rep_len);
        p.replacement_len = rep_len;
        if (!scheme) p.prepend = add_prefix ? QF_TK_PREPEND_ALWAYS : QF_TK_PREPEND_NEVER;
        else if (strcmp(scheme, "always") == 0) p.prepend = QF_TK_PREPEND_ALWAYS;
        else if (strcmp(scheme, "first") == 0) p.prepend = QF_TK_PREPEND_FIRST;
        else if (strcmp(scheme, "never") == 0) p.prepend = QF_TK_PREPEND_NEVER;
        else
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: Metaspace prepend_scheme \"%s\" is not supported", name,
                           scheme);
        p.type = QF_TK_PRE_METASPACE;
    } else {
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: pre_tokenizer type \"%s\" is not supported", name, type);
    }
    return qf_tk_add_pre(tok, &p, err);
}

/* ---- applying the normalizer ------------------------------------------------------------- */

static int qf_tk_append(char **buf, size_t *len, size_t *cap, const char *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 64;
        while (c < *len + n + 1) c *= 2;
        char *b = realloc(*buf, c);
        if (!b) return 0;
        *buf = b;
        *cap = c;
    }
    if (n) memcpy(*buf + *len, p, n);
    *len += n;
    return 1;
}

qf_status qf_tk_normalize(const qf_tokenizer *tok, const char *in, size_t len, char **out, size_t *out_len,
                          qf_error *err)
{
    /* Each step reads cur[0..cl) and builds nxt[0..nl), which then becomes cur. */
    char *cur = malloc(len + 1), *nxt = NULL;
    size_t cl = len, nl = 0, ncap = 0;
    if (!cur) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory normalizing", tok->name);
    memcpy(cur, in, len);
    pcre2_match_data *md = NULL;
    qf_status st = QF_OK;
    /* Real normalizers (NFC, Prepend, Replace " " -> "\u2581") grow text by a few times at most;
     * a chain of Replace steps in a hostile tokenizer.json multiplies it per step (3.6 KB of
     * JSON grew one byte past 12 GB).  Every step's output is bounded by the input's size. */
    const size_t limit = QF_TK_NORM_GROWTH * len + 4096;
#define QF_TK_PUT(p, n)                                                    \
    do {                                                                   \
        if (nl + (n) > limit) goto toolong;                                \
        if (!qf_tk_append(&nxt, &nl, &ncap, (p), (n))) goto nomem;         \
    } while (0)
    for (size_t k = 0; k < tok->n_norm; k++) {
        const qf_tk_norm *n = &tok->norm[k];
        nxt = NULL, nl = 0, ncap = 0;
        if (n->type == QF_TK_NORM_NFC) {
            st = qf_tk_nfc(cur, cl, &nxt, &nl, err);
            if (st != QF_OK) goto done;
        } else if (n->type == QF_TK_NORM_PREPEND) {
            if (cl) QF_TK_PUT(n->str, n->str_len);
            QF_TK_PUT(cur, cl);
        } else if (n->type == QF_TK_NORM_REPLACE_STR) {
            for (size_t i = 0; i < cl;) {
                const char *hit = memmem(cur + i, cl - i, n->pattern, n->pattern_len);
                size_t upto = hit ? (size_t)(hit - cur) : cl;
                QF_TK_PUT(cur + i, upto - i);
                if (!hit) break;
                QF_TK_PUT(n->str, n->str_len);
                i = upto + n->pattern_len;
            }
        } else { /* QF_TK_NORM_REPLACE_RE */
            if (!md && !(md = pcre2_match_data_create(64, NULL))) goto nomem;
            size_t i = 0, at = 0;
            while (at <= cl) {
                int rc = pcre2_match(n->re, (PCRE2_SPTR)cur, cl, at, PCRE2_NO_UTF_CHECK, md, NULL);
                if (rc == PCRE2_ERROR_NOMATCH) break;
                if (rc < 0) {
                    st = qf_fail(err, QF_ERR_GENERIC, "%s: Replace normalizer regex failed (%d)", tok->name, rc);
                    goto done;
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                if (ov[1] == ov[0]) { /* empty match: skip one character */
                    if (ov[0] >= cl) break;
                    at = ov[0] + qf_tk_utf8_len((unsigned char)cur[ov[0]]);
                    continue;
                }
                QF_TK_PUT(cur + i, ov[0] - i);
                QF_TK_PUT(n->str, n->str_len);
                i = at = ov[1];
            }
            QF_TK_PUT(cur + i, cl - i);
        }
        if (!nxt && !(nxt = malloc(1))) goto nomem;
        free(cur);
        cur = nxt, cl = nl, nxt = NULL;
    }
#undef QF_TK_PUT
    *out = cur;
    *out_len = cl;
    cur = NULL;
    goto done;
nomem:
    st = qf_fail(err, QF_ERR_NOMEM, "%s: out of memory normalizing", tok->name);
    goto done;
toolong:
    st = qf_fail(err, QF_ERR_FORMAT, "%s: the normalizers grow %zu bytes of text past %zu (%dx + 4 KiB): refused as "
                 "hostile", tok->name, len, limit, QF_TK_NORM_GROWTH);
done:
    free(cur);
    free(nxt);
    pcre2_match_data_free(md);
    return st;
}

