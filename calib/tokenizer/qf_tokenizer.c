/* qf_tokenizer.c - loading tokenizer.json / tokenizer_config.json into a qf_tokenizer, the
 * accessors, and freeing.  Encoding is in tokenizer_encode.c, the tables in
 * tokenizer_table.c. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"
#include "qf_tokenizer.h"
#include "tokenizer_internal.h"

#define QF_TK_MAX_ID (1 << 24)        /* ids beyond 16M are refused as corrupt */
#define QF_TK_MAX_FILE (1ull << 31)   /* 2 GiB: no tokenizer.json is near this */

/* ---- small JSON helpers (shared with tokenizer_pipeline.c) ------------------------------- */

qf_status qf_tk_get_bool(const json_t *obj, const char *key, int def, int *out, const char *name, const char *where,
                         qf_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return QF_OK;
    }
    if (!json_is_boolean(v))
        return qf_fail(err, QF_ERR_FORMAT, "%s: %s.%s is not a boolean", name, where, key);
    *out = json_is_true(v);
    return QF_OK;
}

qf_status qf_tk_get_str(const json_t *obj, const char *key, int optional, const char **out, size_t *len,
                        const char *name, const char *where, qf_error *err)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = NULL;
        if (len) *len = 0;
        if (optional) return QF_OK;
        return qf_fail(err, QF_ERR_FORMAT, "%s: %s has no \"%s\" string", name, where, key);
    }
    if (!json_is_string(v)) return qf_fail(err, QF_ERR_FORMAT, "%s: %s.%s is not a string", name, where, key);
    *out = json_string_value(v);
    if (len) *len = json_string_length(v);
    return QF_OK;
}

char *qf_tk_memdup(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (!d) return NULL;
    memcpy(d, s, len);
    d[len] = 0;
    return d;
}

static qf_status qf_tk_read_file(const char *path, char **out, size_t *len, qf_error *err)
{
    return qf_file_read_all(path, QF_TK_MAX_FILE, out, len, err);
}

/* ---- model -------------------------------------------------------------------------- */

static qf_status qf_tk_vocab_id(const qf_tokenizer *tok, const char *s, size_t len, int32_t *id)
{
    const qf_tk_slot *e = qf_tk_strmap_find(&tok->vocab, s, len, qf_tk_hash(s, len));
    *id = e ? e->a : -1;
    return e ? QF_OK : QF_ERR_FORMAT;
}

static qf_status qf_tk_parse_vocab(qf_tokenizer *tok, const json_t *vocab, qf_error *err)
{
    const char *name = tok->name, *key;
    const json_t *v;
    if (!json_is_object(vocab)) return qf_fail(err, QF_ERR_FORMAT, "%s: model has no \"vocab\" object", name);
    json_object_foreach((json_t *)vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= QF_TK_MAX_ID)
            return qf_fail(err, QF_ERR_FORMAT, "%s: vocab entry \"%.64s\" has no id in [0, %d)", name, key,
                           QF_TK_MAX_ID);
        int32_t id = (int32_t)json_integer_value(v);
        size_t len = strlen(key);
        qf_tk_slot *slot;
        int is_new;
        if (qf_tk_strmap_put(&tok->vocab, key, len, qf_tk_hash(key, len), &slot, &is_new) != QF_OK)
            return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory building the vocabulary", name);
        slot->a = id;
        if (id >= tok->n_ids) tok->n_ids = id + 1;
    }
    return QF_OK;
}

/* One merge: "left right" or ["left", "right"]. */
static qf_status qf_tk_parse_merge(qf_tokenizer *tok, const json_t *m, size_t rank, char **buf, size_t *cap,
                                   qf_error *err)
{
    const char *name = tok->name, *l, *r;
    size_t ll, rl;
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        if (!sp) return qf_fail(err, QF_ERR_FORMAT, "%s: merge %zu \"%.64s\" is not \"left right\"", name, rank, s);
        l = s, ll = (size_t)(sp - s), r = sp + 1, rl = strlen(sp + 1);
    } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
               json_is_string(json_array_get(m, 1))) {
        l = json_string_value(json_array_get(m, 0)), ll = json_string_length(json_array_get(m, 0));
        r = json_string_value(json_array_get(m, 1)), rl = json_string_length(json_array_get(m, 1));
    } else {
        return qf_fail(err, QF_ERR_FORMAT, "%s: merge %zu is neither a string nor a pair of strings", name, rank);
    }
    if (ll + rl + 1 > *cap) {
        *cap = (ll + rl + 1) * 2;
        free(*buf);
        if (!(*buf = malloc(*cap))) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", name);
    }
    memcpy(*buf, l, ll);
    memcpy(*buf + ll, r, rl);
    int32_t a, b, c;
    if (qf_tk_vocab_id(tok, l, ll, &a) != QF_OK || qf_tk_vocab_id(tok, r, rl, &b) != QF_OK ||
        qf_tk_vocab_id(tok, *buf, ll + rl, &c) != QF_OK)
        return qf_fail(err, QF_ERR_FORMAT, "%s: merge %zu (\"%.*s\" \"%.*s\") uses a token missing from the vocab",
                       name, rank, (int)(ll < 64 ? ll : 64), l, (int)(rl < 64 ? rl : 64), r);
    qf_tk_pairmap_put(&tok->merges, a, b, (int32_t)rank, c);
    tok->merge_pairs[2 * rank] = a;
    tok->merge_pairs[2 * rank + 1] = b;
    return QF_OK;
}

static qf_status qf_tk_parse_model(qf_tokenizer *tok, const json_t *model, qf_error *err)
{
    const char *name = tok->name, *type = NULL, *s = NULL;
    if (!json_is_object(model)) return qf_fail(err, QF_ERR_FORMAT, "%s: no \"model\" object", name);
    QF_TRY(qf_tk_get_str(model, "type", 1, &type, NULL, name, "model", err));
    const json_t *merges = json_object_get(model, "merges");
    if (type ? strcmp(type, "BPE") != 0 : !merges)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tokenizer model type \"%s\" is not supported (only BPE)", name,
                       type ? type : "(none)");
    const json_t *dropout = json_object_get(model, "dropout");
    if (json_is_number(dropout) && json_number_value(dropout) > 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: BPE dropout %g is not supported (encoding would be random)", name,
                       json_number_value(dropout));
    static const char *const unsupported_strs[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (size_t i = 0; i < 2; i++) {
        size_t len = 0;
        QF_TRY(qf_tk_get_str(model, unsupported_strs[i], 1, &s, &len, name, "model", err));
        if (s && len) return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: BPE %s is not supported", name, unsupported_strs[i]);
    }
    QF_TRY(qf_tk_get_bool(model, "byte_fallback", 0, &tok->byte_fallback, name, "model", err));
    QF_TRY(qf_tk_get_bool(model, "fuse_unk", 0, &tok->fuse_unk, name, "model", err));
    QF_TRY(qf_tk_get_bool(model, "ignore_merges", 0, &tok->ignore_merges, name, "model", err));
    QF_TRY(qf_tk_parse_vocab(tok, json_object_get(model, "vocab"), err));

    size_t len = 0;
    QF_TRY(qf_tk_get_str(model, "unk_token", 1, &s, &len, name, "model", err));
    tok->unk_id = -1;
    if (s) (void)qf_tk_vocab_id(tok, s, len, &tok->unk_id); /* an unk outside the vocab acts as none */

    if (!json_is_array(merges)) return qf_fail(err, QF_ERR_FORMAT, "%s: model has no \"merges\" array", name);
    tok->n_merges = json_array_size(merges);
    if (qf_tk_pairmap_init(&tok->merges, tok->n_merges) != QF_OK ||
        !(tok->merge_pairs = malloc((tok->n_merges ? tok->n_merges : 1) * 2 * sizeof *tok->merge_pairs)))
        return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory for %zu merges", name, tok->n_merges);
    char *buf = NULL;
    size_t cap = 0;
    qf_status st = QF_OK;
    for (size_t r = 0; r < tok->n_merges && st == QF_OK; r++)
        st = qf_tk_parse_merge(tok, json_array_get(merges, r), r, &buf, &cap, err);
    free(buf);
    return st;
}

/* ---- added tokens --------------------------------------------------------------------- */

static qf_status qf_tk_parse_added(qf_tokenizer *tok, const json_t *list, qf_error *err)
{
    const char *name = tok->name;
    if (!list || json_is_null(list)) return QF_OK;
    if (!json_is_array(list)) return qf_fail(err, QF_ERR_FORMAT, "%s: \"added_tokens\" is not an array", name);
    size_t n = json_array_size(list);
    if (!(tok->added = calloc(n ? n : 1, sizeof *tok->added)))
        return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(list, i);
        char where[48];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        const json_t *id = json_object_get(t, "id");
        if (!json_is_object(t) || !json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) >= QF_TK_MAX_ID)
            return qf_fail(err, QF_ERR_FORMAT, "%s: %s has no id in [0, %d)", name, where, QF_TK_MAX_ID);
        const char *content = NULL;
        size_t len = 0;
        int lstrip = 0, rstrip = 0, single_word = 0, normalized = 0, special = 0;
        QF_TRY(qf_tk_get_str(t, "content", 0, &content, &len, name, where, err));
        QF_TRY(qf_tk_get_bool(t, "special", 0, &special, name, where, err));
        QF_TRY(qf_tk_get_bool(t, "lstrip", 0, &lstrip, name, where, err));
        QF_TRY(qf_tk_get_bool(t, "rstrip", 0, &rstrip, name, where, err));
        QF_TRY(qf_tk_get_bool(t, "single_word", 0, &single_word, name, where, err));
        QF_TRY(qf_tk_get_bool(t, "normalized", !special, &normalized, name, where, err));
        if (len == 0) continue; /* HF ignores empty added tokens */
        qf_tk_added *a = &tok->added[tok->n_added];
        if (!(a->content = qf_tk_memdup(content, len))) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", name);
        tok->n_added++;
        a->len = len;
        a->match = a->content;
        a->match_len = len;
        a->id = (int32_t)json_integer_value(id);
        a->lstrip = (unsigned char)lstrip, a->rstrip = (unsigned char)rstrip;
        a->single_word = (unsigned char)single_word, a->special = (unsigned char)special;
        a->normalized = (unsigned char)normalized;
        if (a->id >= tok->n_ids) tok->n_ids = a->id + 1;
    }
    return QF_OK;
}

static int qf_tk_cmp_pattern(const void *x, const void *y)
{
    const qf_tk_added *a = *(const qf_tk_added *const *)x, *b = *(const qf_tk_added *const *)y;
    unsigned char ca = (unsigned char)a->match[0], cb = (unsigned char)b->match[0];
    if (ca != cb) return ca < cb ? -1 : 1;
    if (a->match_len != b->match_len) return a->match_len > b->match_len ? -1 : 1;
    return a < b ? -1 : a > b; /* file order among equal strings: the first wins */
}

static qf_status qf_tk_build_matcher(qf_tokenizer *tok, qf_tk_matcher *m, int normalized, qf_error *err)
{
    m->pat = malloc((tok->n_added ? tok->n_added : 1) * sizeof *m->pat);
    if (!m->pat) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", tok->name);
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].normalized == normalized && tok->added[i].match_len) m->pat[m->n++] = &tok->added[i];
    qsort(m->pat, m->n, sizeof *m->pat, qf_tk_cmp_pattern);
    size_t k = 0;
    for (int c = 0; c <= 256; c++) {
        while (k < m->n && (unsigned char)m->pat[k]->match[0] < c) k++;
        m->first[c] = (uint32_t)k;
    }
    return QF_OK;
}

/* ---- putting it together -------------------------------------------------------------- */

static qf_status qf_tk_finish(qf_tokenizer *tok, qf_error *err)
{
    const char *name = tok->name;
    int32_t n = tok->n_ids > 0 ? tok->n_ids : 1;
    tok->texts = calloc((size_t)n, sizeof *tok->texts);
    tok->flags = calloc((size_t)n, 1);
    if (!tok->texts || !tok->flags) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", name);
    for (size_t i = 0; i < tok->vocab.cap; i++) {
        const qf_tk_slot *e = &tok->vocab.slots[i];
        if (e->hash) tok->texts[e->a] = tok->vocab.blob + e->off;
    }
    for (size_t i = 0; i < tok->n_added; i++) {
        qf_tk_added *a = &tok->added[i];
        if (!tok->texts[a->id]) tok->texts[a->id] = a->content;
        tok->flags[a->id] |= QF_TOKEN_FLAG_ADDED | (a->special ? QF_TOKEN_FLAG_SPECIAL : 0);
        if (a->normalized && tok->n_norm) { /* matched against the normalized text */
            QF_TRY(qf_tk_normalize(tok, a->content, a->len, &a->match, &a->match_len, err));
        }
        if (a->single_word && !tok->word_re)
            QF_TRY(qf_tk_regex_compile(QF_TK_WORD_CLASS, PCRE2_ZERO_TERMINATED, 0, name, "word", &tok->word_re, err));
    }
    QF_TRY(qf_tk_build_matcher(tok, &tok->match_raw, 0, err));
    QF_TRY(qf_tk_build_matcher(tok, &tok->match_norm, 1, err));

    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        (void)qf_tk_vocab_id(tok, s, 6, &tok->byte_id[b]);
        char c = (char)b;
        (void)qf_tk_vocab_id(tok, &c, 1, &tok->char1_id[b]);
        if (tok->byte_fallback && tok->byte_id[b] >= 0) tok->flags[tok->byte_id[b]] |= QF_TOKEN_FLAG_BYTE;
    }
    if (tok->unk_id >= 0) tok->flags[tok->unk_id] |= QF_TOKEN_FLAG_UNK;

    tok->kind = QF_TOKENIZER_KIND_PLAIN_BPE;
    for (size_t i = 0; i < tok->n_pre; i++)
        if (tok->pre[i].type == QF_TK_PRE_BYTE_LEVEL) tok->kind = QF_TOKENIZER_KIND_BYTE_BPE;
    if (tok->kind == QF_TOKENIZER_KIND_PLAIN_BPE) {
        int spm = tok->byte_fallback;
        for (size_t i = 0; i < tok->n_pre; i++) spm |= tok->pre[i].type == QF_TK_PRE_METASPACE;
        for (size_t i = 0; i < tok->n_norm; i++)
            spm |= tok->norm[i].type != QF_TK_NORM_NFC && tok->norm[i].str_len == 3 &&
                   memcmp(tok->norm[i].str, "\xe2\x96\x81", 3) == 0;
        if (spm) tok->kind = QF_TOKENIZER_KIND_SPM_BPE;
    }
    tok->specials = (qf_tokenizer_specials){.bos = -1, .eos = -1, .unk = tok->unk_id, .pad = -1, .add_bos = -1,
                                            .add_eos = -1};
    return QF_OK;
}

qf_status qf_tokenizer_load_json(const char *json, size_t len, const char *name, qf_tokenizer **out,
                                 qf_error *err)
{
    *out = NULL;
    qf_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok || !(tok->name = qf_tk_memdup(name, strlen(name)))) {
        free(tok);
        return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", name);
    }
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    qf_status st = QF_OK;
    if (!root)
        st = qf_fail(err, QF_ERR_FORMAT, "%s: malformed JSON at line %d column %d: %s", name, jerr.line, jerr.column,
                     jerr.text);
    else if (!json_is_object(root))
        st = qf_fail(err, QF_ERR_FORMAT, "%s: top level is not a JSON object", name);
    if (st == QF_OK) st = qf_tk_parse_model(tok, json_object_get(root, "model"), err);
    if (st == QF_OK) st = qf_tk_parse_normalizer(tok, json_object_get(root, "normalizer"), 0, err);
    if (st == QF_OK) st = qf_tk_parse_pre(tok, json_object_get(root, "pre_tokenizer"), 0, err);
    if (st == QF_OK) st = qf_tk_parse_added(tok, json_object_get(root, "added_tokens"), err);
    if (st == QF_OK) st = qf_tk_finish(tok, err);
    json_decref(root);
    if (st != QF_OK) {
        qf_tokenizer_free(tok);
        return st;
    }
    *out = tok;
    return QF_OK;
}

qf_status qf_tokenizer_load(const char *path, qf_tokenizer **out, qf_error *err)
{
    char *buf;
    size_t len;
    *out = NULL;
    QF_TRY(qf_tk_read_file(path, &buf, &len, err));
    qf_status st = qf_tokenizer_load_json(buf, len, path, out, err);
    free(buf);
    return st;
}

/* bos_token etc. are a string or an AddedToken object {"content": ...}; absent gives -1. */
static qf_status qf_tk_config_token(const qf_tokenizer *tok, const json_t *root, const char *key, int32_t *id,
                                    const char *path, qf_error *err)
{
    const json_t *v = json_object_get(root, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    *id = -1;
    if (!v || json_is_null(v)) return QF_OK;
    if (!json_is_string(v)) return qf_fail(err, QF_ERR_FORMAT, "%s: \"%s\" is not a string or token object", path, key);
    *id = qf_tokenizer_token_id(tok, json_string_value(v), json_string_length(v));
    return QF_OK;
}

qf_status qf_tokenizer_load_config(qf_tokenizer *tok, const char *path, qf_error *err)
{
    char *buf;
    size_t len;
    QF_TRY(qf_tk_read_file(path, &buf, &len, err));
    json_error_t jerr;
    /* INT_AS_REAL: configs carry integers beyond int64 ("model_max_length": 1e30 written out) */
    json_t *root = json_loadb(buf, len, JSON_DECODE_INT_AS_REAL, &jerr);
    free(buf);
    if (!root || !json_is_object(root)) {
        json_decref(root);
        return qf_fail(err, QF_ERR_FORMAT, "%s: malformed JSON at line %d column %d: %s", path, jerr.line, jerr.column,
                       root ? "top level is not an object" : jerr.text);
    }
    qf_tokenizer_specials s = tok->specials;
    qf_status st = qf_tk_config_token(tok, root, "bos_token", &s.bos, path, err);
    if (st == QF_OK) st = qf_tk_config_token(tok, root, "eos_token", &s.eos, path, err);
    if (st == QF_OK) st = qf_tk_config_token(tok, root, "pad_token", &s.pad, path, err);
    int add_bos = -1, add_eos = -1;
    if (st == QF_OK && json_object_get(root, "add_bos_token"))
        st = qf_tk_get_bool(root, "add_bos_token", -1, &add_bos, path, "config", err);
    if (st == QF_OK && json_object_get(root, "add_eos_token"))
        st = qf_tk_get_bool(root, "add_eos_token", -1, &add_eos, path, "config", err);
    json_decref(root);
    if (st != QF_OK) return st;
    s.add_bos = add_bos;
    s.add_eos = add_eos;
    tok->specials = s;
    return QF_OK;
}

void qf_tokenizer_free(qf_tokenizer *tok)
{
    if (!tok) return;
    qf_tk_strmap_free(&tok->vocab);
    qf_tk_pairmap_free(&tok->merges);
    free(tok->merge_pairs);
    free(tok->texts);
    free(tok->flags);
    for (size_t i = 0; i < tok->n_added; i++) {
        if (tok->added[i].match != tok->added[i].content) free(tok->added[i].match);
        free(tok->added[i].content);
    }
    free(tok->added);
    free(tok->match_raw.pat);
    free(tok->match_norm.pat);
    for (size_t i = 0; i < tok->n_norm; i++) {
        free(tok->norm[i].pattern);
        free(tok->norm[i].str);
        pcre2_code_free(tok->norm[i].re);
    }
    free(tok->norm);
    for (size_t i = 0; i < tok->n_pre; i++) pcre2_code_free(tok->pre[i].re);
    free(tok->pre);
    pcre2_code_free(tok->word_re);
    free(tok->name);
    free(tok);
}

/* ---- accessors ------------------------------------------------------------------------ */

int32_t qf_tokenizer_vocab_size(const qf_tokenizer *tok) { return tok->n_ids; }

const char *qf_tokenizer_token_text(const qf_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_ids ? tok->texts[id] : NULL;
}

int32_t qf_tokenizer_token_id(const qf_tokenizer *tok, const char *s, size_t len)
{
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].len == len && memcmp(tok->added[i].content, s, len) == 0) return tok->added[i].id;
    int32_t id;
    (void)qf_tk_vocab_id(tok, s, len, &id);
    return id;
}

unsigned qf_tokenizer_token_flags(const qf_tokenizer *tok, int32_t id)
{
    return id >= 0 && id < tok->n_ids ? tok->flags[id] : 0;
}

qf_tokenizer_kind qf_tokenizer_kind_of(const qf_tokenizer *tok) { return tok->kind; }

size_t qf_tokenizer_merge_count(const qf_tokenizer *tok) { return tok->n_merges; }

int qf_tokenizer_merge(const qf_tokenizer *tok, size_t rank, int32_t *left, int32_t *right)
{
    if (rank >= tok->n_merges) return -1;
    *left = tok->merge_pairs[2 * rank];
    *right = tok->merge_pairs[2 * rank + 1];
    return 0;
}

qf_tokenizer_specials qf_tokenizer_special_ids(const qf_tokenizer *tok) { return tok->specials; }
