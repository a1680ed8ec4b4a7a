/* qf_gguf_tokenizer.c - tokenizer.json (+ tokenizer_config.json, config.json) as llama.cpp's
 * tokenizer.ggml.* metadata (see qf_gguf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_gguf.h"

/* A ByteLevel pre-tokenizer anywhere in the (possibly Sequence) pre_tokenizer. */
static int qf_has_bytelevel(const json_t *p, int depth)
{
    if (!json_is_object(p) || depth > 4) return 0;
    const char *t = json_string_value(json_object_get(p, "type"));
    if (t && strcmp(t, "ByteLevel") == 0) return 1;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(p, "pretokenizers"), i, x) if (qf_has_bytelevel(x, depth + 1)) return 1;
    return 0;
}

/* llama.cpp's pre-tokenizer name, from the split regex when it is one llama.cpp knows. */
static const char *qf_pre_name(const json_t *p)
{
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(p, "pretokenizers"), i, x)
    {
        const char *re = json_string_value(json_object_get(json_object_get(x, "pattern"), "Regex"));
        if (!re || strncmp(re, "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+", 45) != 0) continue;
        if (strstr(re, "\\p{N}{1,3}")) return "llama-bpe";
        if (strstr(re, "|\\p{N}|")) return "qwen2";
    }
    return "default";
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
    if (!mtype || strcmp(mtype, "BPE") != 0 || !json_is_object(vocab) || !qf_has_bytelevel(json_object_get(tok, "pre_tokenizer"), 0))
        s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: GGUF export reads byte-level BPE tokenizers (model type '%s')", path,
                    mtype ? mtype : "?");
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
                merges[i] = malloc(strlen(a) + strlen(b) + 2);
                if (merges[i]) sprintf(merges[i], "%s %s", a, b);
            }
            if (!merges[i]) {
                s = qf_fail(err, QF_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [a, b]", path, i);
                break;
            }
        }
        if (!merges) s = qf_fail(err, QF_ERR_NOMEM, "out of memory");
        if (s == QF_OK) {
            qf_gguf_kv_str(w, "tokenizer.ggml.model", "gpt2");
            qf_gguf_kv_str(w, "tokenizer.ggml.pre", qf_pre_name(json_object_get(tok, "pre_tokenizer")));
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
            json_t *ab = json_object_get(tc, "add_bos_token"), *ae = json_object_get(tc, "add_eos_token");
            if (json_is_boolean(ab)) qf_gguf_kv_bool(w, "tokenizer.ggml.add_bos_token", json_is_true(ab));
            if (json_is_boolean(ae)) qf_gguf_kv_bool(w, "tokenizer.ggml.add_eos_token", json_is_true(ae));
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
