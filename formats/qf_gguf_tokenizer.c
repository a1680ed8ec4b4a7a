/* qf_gguf_tokenizer.c - tokenizer.json (+ tokenizer_config.json, config.json) as llama.cpp's
 * tokenizer.ggml.* metadata (see qf_gguf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_gguf.h"

/* Split regexes llama.cpp implements, as tokenizer.json spells them (llama.cpp's llama-vocab.cpp
 * quotes each "original regex from tokenizer.json" beside its own rewrite).  Matched whole and
 * exactly: a regex that differs by one character splits some text differently, and llama.cpp
 * would then tokenize the GGUF unlike the Hugging Face tokenizer, with no warning. */
static const struct {
    const char *regex, *pre;
} qf_known_splits[] = {
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
     "\\s+(?!\\S)|\\s+",
     "llama-bpe"}, /* Llama 3 */
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
     "\\s+(?!\\S)|\\s+",
     "qwen2"}, /* Qwen2, Qwen2.5, Qwen3 */
    {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+", "gpt-2"}, /* spelled out */
};

static int qf_is_type(const json_t *p, const char *type)
{
    const char *t = json_string_value(json_object_get(p, "type"));
    return t && strcmp(t, type) == 0;
}

/* ByteLevel that only maps bytes to characters: no prefix space (llama.cpp adds none), and with
 * use_regex as wanted (GPT-2's own split when it stands alone, none after a Split). */
static int qf_plain_bytelevel(const json_t *p, int use_regex)
{
    return qf_is_type(p, "ByteLevel") && !json_is_true(json_object_get(p, "add_prefix_space")) &&
           json_is_false(json_object_get(p, "use_regex")) == !use_regex;
}

const char *qf_gguf_pre_name(const json_t *pre, const char **regex)
{
    *regex = NULL;
    /* GPT-2: ByteLevel alone splits with its built-in regex (use_regex defaults to true) */
    if (qf_plain_bytelevel(pre, 1)) return "gpt-2";
    /* Sequence [Split(regex, Isolated), ByteLevel(use_regex false)]: Llama 3, Qwen2, ... */
    const json_t *seq = json_object_get(pre, "pretokenizers"), *split = json_array_get(seq, 0);
    if (!qf_is_type(pre, "Sequence") || json_array_size(seq) != 2 || !qf_is_type(split, "Split")) return NULL;
    *regex = json_string_value(json_object_get(json_object_get(split, "pattern"), "Regex"));
    const char *behavior = json_string_value(json_object_get(split, "behavior"));
    if (!*regex || !behavior || strcmp(behavior, "Isolated") != 0 || json_is_true(json_object_get(split, "invert")) ||
        !qf_plain_bytelevel(json_array_get(seq, 1), 0))
        return NULL;
    for (size_t i = 0; i < sizeof qf_known_splits / sizeof *qf_known_splits; i++)
        if (strcmp(*regex, qf_known_splits[i].regex) == 0) return qf_known_splits[i].pre;
    return NULL;
}

/* tokenizer_config.json's bos_token / eos_token ...: a string, or {"content": ...}. */
static const char *qf_tc_token(const json_t *tc, const char *key)
{
    const json_t *v = json_object_get(tc, key);
    return json_is_object(v) ? json_string_value(json_object_get(v, "content")) : json_string_value(v);
}

static int qf_streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

void qf_gguf_add_special(const json_t *post, const json_t *tc, int *add_bos, int *add_eos)
{
    /* Nothing said: the Hugging Face tokenizer adds nothing.  Written out even then, because
     * llama.cpp's default without the key depends on the pre-tokenizer (llama-bpe: BOS). */
    *add_bos = *add_eos = 0;
    const char *bos = qf_tc_token(tc, "bos_token"), *eos = qf_tc_token(tc, "eos_token"), *cls = qf_tc_token(tc, "cls_token");
    if (!bos) bos = cls;
    if (!eos) eos = qf_tc_token(tc, "sep_token");
    const json_t *list = json_object_get(post, "processors"), *p;
    size_t n = list ? json_array_size(list) : post != NULL, i;
    for (i = 0; i < n; i++) {
        p = list ? json_array_get(list, i) : post;
        if (qf_is_type(p, "RobertaProcessing")) *add_bos = *add_eos = 1; /* <s> A </s> */
        if (!qf_is_type(p, "TemplateProcessing")) continue;
        /* the single-sequence template, e.g. [<|begin_of_text|>, $A]: a leading special token is
         * BOS when it is tokenizer_config.json's (any, without one); a trailing one is EOS
         * (gguf-py's SpecialVocab makes it the EOS token when it is another) */
        const json_t *single = json_object_get(p, "single");
        size_t k = json_array_size(single);
        if (k < 2) continue;
        const char *first = json_string_value(json_object_get(json_object_get(json_array_get(single, 0), "SpecialToken"), "id"));
        const char *last = json_string_value(json_object_get(json_object_get(json_array_get(single, k - 1), "SpecialToken"), "id"));
        if (first) *add_bos = !tc || qf_streq(first, bos) || qf_streq(first, cls);
        if (last) *add_eos = 1;
    }
    /* tokenizer_config.json's own flags win, as in the converter */
    const json_t *ab = json_object_get(tc, "add_bos_token"), *ae = json_object_get(tc, "add_eos_token");
    if (json_is_boolean(ab)) *add_bos = json_is_true(ab);
    if (json_is_boolean(ae)) *add_eos = json_is_true(ae);
}

/* Byte-level at all: ByteLevel, alone or in a Sequence (else the tokenizer is not GPT-2 style:
 * SentencePiece's Metaspace, WordPiece, ...). */
static int qf_has_bytelevel(const json_t *pt)
{
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(pt, "pretokenizers"), i, x) if (qf_is_type(x, "ByteLevel")) return 1;
    return qf_is_type(pt, "ByteLevel");
}

/* An unrecognised pre-tokenizer in a few words for the refusal: its regex, else its type. */
static void qf_pre_describe(const json_t *pt, const char *regex, char *buf, size_t len)
{
    const char *type = json_string_value(json_object_get(pt, "type"));
    if (regex) snprintf(buf, len, "Split regex '%.300s'", regex);
    else if (qf_is_type(pt, "ByteLevel")) snprintf(buf, len, "ByteLevel with add_prefix_space or without its regex");
    else snprintf(buf, len, "'%.40s'", type ? type : "(none)");
}

static int qf_json_id(const json_t *v, int64_t *out)
{
    if (json_is_array(v)) v = json_array_get(v, 0);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = json_integer_value(v);
    return 0;
}

qf_status qf_gguf_tokenizer(qf_gguf_writer *w, const char *dir, const qf_model_config *cfg, qf_error *err)
{
    char *path = qf_path_join(dir, "tokenizer.json");
    json_error_t je;
    json_t *tok = json_load_file(path, 0, &je);
    qf_status s = QF_OK;
    if (!tok) {
        s = qf_fail(err, qf_path_exists(path) ? QF_ERR_FORMAT : QF_ERR_IO, "%s: %s (GGUF needs the tokenizer)", path,
                    qf_path_exists(path) ? je.text : "missing");
        free(path);
        return s;
    }
    json_t *model = json_object_get(tok, "model"), *vocab = json_object_get(model, "vocab");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    const json_t *pt = json_object_get(tok, "pre_tokenizer");
    const char *regex, *pre = qf_gguf_pre_name(pt, &regex);
    if (!mtype || strcmp(mtype, "BPE") != 0 || !json_is_object(vocab) || !qf_has_bytelevel(pt))
        s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: GGUF export reads byte-level BPE tokenizers (model type '%s')", path,
                    mtype ? mtype : "?");
    else if (!pre) { /* llama.cpp would split text its own way and tokenize unlike Hugging Face: refuse */
        char what[400];
        qf_pre_describe(pt, regex, what, sizeof what);
        s = qf_fail(err, QF_ERR_UNSUPPORTED,
                    "%s: pre-tokenizer %s is not one llama.cpp splits alike (known: ByteLevel alone = gpt-2, the "
                    "Llama 3 and Qwen2 Split regexes); no GGUF written",
                    path, what);
    }
    int64_t n = cfg->vocab_size > 0 ? cfg->vocab_size : 0;
    const char *k;
    json_t *v;
    if (s == QF_OK) json_object_foreach(vocab, k, v)
        {
            int64_t id;
            if (qf_json_id(v, &id) || id > 10000000) {
                s = qf_fail(err, QF_ERR_FORMAT, "%s: vocab entry '%.40s' has no valid id", path, k);
                break;
            }
            if (id + 1 > n) n = id + 1;
        }
    size_t i;
    json_array_foreach(json_object_get(tok, "added_tokens"), i, v)
    {
        int64_t id;
        if (s == QF_OK && !qf_json_id(json_object_get(v, "id"), &id) && id < 10000000 && id + 1 > n) n = id + 1;
    }
    const char **tokens = calloc((size_t)n + 1, sizeof *tokens);
    int32_t *types = calloc((size_t)n + 1, sizeof *types);
    char **pads = calloc((size_t)n + 1, sizeof *pads);
    if (s == QF_OK && (!tokens || !types || !pads)) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
    if (s == QF_OK) {
        json_object_foreach(vocab, k, v)
        {
            int64_t id = 0;
            qf_json_id(v, &id);
            tokens[id] = k, types[id] = 1; /* NORMAL */
        }
        json_array_foreach(json_object_get(tok, "added_tokens"), i, v)
        {
            int64_t id;
            const char *c = json_string_value(json_object_get(v, "content"));
            if (!c || qf_json_id(json_object_get(v, "id"), &id) || id >= n) continue;
            tokens[id] = c;
            types[id] = json_is_true(json_object_get(v, "special")) ? 3 : 4; /* CONTROL : USER_DEFINED */
        }
        for (int64_t id = 0; id < n; id++)
            if (!tokens[id]) {
                char b[32];
                snprintf(b, sizeof b, "[PAD%lld]", (long long)id);
                tokens[id] = pads[id] = strdup(b);
                types[id] = 5; /* UNUSED */
            }
        /* merges: "a b" strings, or [a, b] pairs in newer tokenizer.json */
        json_t *mj = json_object_get(model, "merges");
        size_t nm = json_array_size(mj);
        char **merges = calloc(nm + 1, sizeof *merges);
        for (i = 0; merges && i < nm; i++) {
            json_t *m = json_array_get(mj, i);
            if (json_is_string(m)) merges[i] = strdup(json_string_value(m));
            else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
                     json_is_string(json_array_get(m, 1))) {
                const char *a = json_string_value(json_array_get(m, 0)), *b = json_string_value(json_array_get(m, 1));
                const size_t ml = strlen(a) + strlen(b) + 2;
                merges[i] = malloc(ml);
                if (merges[i]) snprintf(merges[i], ml, "%s %s", a, b);
            }
            if (!merges[i]) {
                s = qf_fail(err, QF_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [a, b]", path, i);
                break;
            }
        }
        if (!merges) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
        if (s == QF_OK) {
            qf_gguf_kv_str(w, "tokenizer.ggml.model", "gpt2");
            qf_gguf_kv_str(w, "tokenizer.ggml.pre", pre);
            qf_gguf_kv_str_array(w, "tokenizer.ggml.tokens", tokens, n);
            qf_gguf_kv_i32_array(w, "tokenizer.ggml.token_type", types, n);
            qf_gguf_kv_str_array(w, "tokenizer.ggml.merges", (const char *const *)merges, (int64_t)nm);
            int64_t id;
            if (!qf_json_id(json_object_get(cfg->json, "bos_token_id"), &id) && id < n)
                qf_gguf_kv_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)id);
            if (!qf_json_id(json_object_get(cfg->json, "eos_token_id"), &id) && id < n)
                qf_gguf_kv_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)id);
            if (!qf_json_id(json_object_get(cfg->json, "pad_token_id"), &id) && id < n)
                qf_gguf_kv_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)id);
            char *tcp = qf_path_join(dir, "tokenizer_config.json");
            json_t *tc = json_load_file(tcp, 0, NULL);
            free(tcp);
            int add_bos, add_eos;
            qf_gguf_add_special(json_object_get(tok, "post_processor"), tc, &add_bos, &add_eos);
            qf_gguf_kv_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
            qf_gguf_kv_bool(w, "tokenizer.ggml.add_eos_token", add_eos);
            const char *tmpl = json_string_value(json_object_get(tc, "chat_template"));
            if (tmpl) qf_gguf_kv_str(w, "tokenizer.chat_template", tmpl);
            json_decref(tc);
        }
        for (i = 0; merges && i < nm; i++) free(merges[i]);
        free(merges);
    }
    for (int64_t id = 0; pads && id < n; id++) free(pads[id]);
    free(pads);
    free(tokens);
    free(types);
    json_decref(tok);
    free(path);
    return s;
}
