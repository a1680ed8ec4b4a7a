/* cmd_inspect_gguf.c - `qforge inspect` of a GGUF file or of a GGUF artifact folder: the file's
 * own view (architecture, metadata, ggml types, tensors as llama.cpp names them), not the
 * dequantized table the runner would load (see convert_output.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert_output.h"
#include "qf_cli.h"
#include "qf_gguf.h"
#include "qf_manifest.h"

int qf_inspect_gguf(const char *path, int json, int list)
{
    char *file = qf_gguf_checkpoint_path(path);
    if (!file) return -1;
    qf_gguf *g;
    qf_error err = {0};
    qf_status s = qf_gguf_open(file, &g, &err);
    free(file);
    if (s) return qf_cli_report_error("inspect", &err, json);
    uint64_t bytes[64] = {0}, count[64] = {0}, params = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        const qf_gguf_tensor *t = &g->tensors[i];
        uint64_t n = 1;
        for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->ne[d];
        params += n;
        if (t->type >= 0 && t->type < 64) bytes[t->type] += t->nbytes, count[t->type]++;
    }
    json_t *manifest = NULL;
    qf_error merr;
    if (qf_path_is_dir(path)) {
        char *mp = qf_path_join(path, QF_MANIFEST_NAME);
        if (qf_path_exists(mp)) qf_manifest_load(path, &manifest, &merr);
        free(mp);
    }
    const char *arch = qf_gguf_get_str(g, "general.architecture");
    char key[128];
    int64_t v;
    if (json) {
        json_t *types = json_object(), *tensors = json_array(), *meta = json_object();
        for (int t = 0; t < 64; t++)
            if (count[t])
                json_object_set_new(types, qf_ggml_type_name(t),
                                    json_pack("{s:I, s:I}", "tensors", (json_int_t)count[t], "bytes", (json_int_t)bytes[t]));
        const char *k;
        json_t *x;
        json_object_foreach(g->kv, k, x) if (!json_is_array(x)) json_object_set(meta, k, x);
        for (int i = 0; list && i < g->n_tensors; i++) {
            const qf_gguf_tensor *t = &g->tensors[i];
            json_t *sh = json_array();
            for (int d = t->ndim - 1; d >= 0; d--) json_array_append_new(sh, json_integer(t->ne[d]));
            json_array_append_new(tensors, json_pack("{s:s, s:s, s:o, s:I}", "name", t->name, "type",
                                                     qf_ggml_type_name(t->type), "shape", sh, "bytes", (json_int_t)t->nbytes));
        }
        json_t *r = json_pack("{s:s, s:s, s:i, s:i, s:I, s:I, s:o, s:o, s:O?, s:o}", "path", path, "format", "gguf",
                              "version", (int)g->version, "tensors", g->n_tensors, "elements", (json_int_t)params, "bytes",
                              (json_int_t)g->size, "ggml_types", types, "metadata", meta, "recipe",
                              manifest ? json_object_get(manifest, "recipe") : NULL, "tensor_list", tensors);
        char *out = json_dumps(r, JSON_COMPACT);
        printf("%s\n", out);
        free(out);
        json_decref(r);
    } else {
        printf("%s\n  GGUF v%u, architecture %s, name %s, %d tensors, %.2f M elements, %.1f MB\n", g->label, g->version,
               arch ? arch : "?", qf_gguf_get_str(g, "general.name") ? qf_gguf_get_str(g, "general.name") : "?",
               g->n_tensors, params / 1e6, g->size / 1e6);
        if (arch) {
            int64_t L = 0, h = 0, hkv = 0, ffn = 0, emb = 0, ctx = 0;
            snprintf(key, sizeof key, "%s.block_count", arch), qf_gguf_get_int(g, key, &L);
            snprintf(key, sizeof key, "%s.embedding_length", arch), qf_gguf_get_int(g, key, &emb);
            snprintf(key, sizeof key, "%s.attention.head_count", arch), qf_gguf_get_int(g, key, &h);
            snprintf(key, sizeof key, "%s.attention.head_count_kv", arch), qf_gguf_get_int(g, key, &hkv);
            snprintf(key, sizeof key, "%s.feed_forward_length", arch), qf_gguf_get_int(g, key, &ffn);
            snprintf(key, sizeof key, "%s.context_length", arch), qf_gguf_get_int(g, key, &ctx);
            printf("  layers %lld, hidden %lld, heads %lld/%lld kv, ffn %lld, context %lld\n", (long long)L, (long long)emb,
                   (long long)h, (long long)hkv, (long long)ffn, (long long)ctx);
        }
        const char *tm = qf_gguf_get_str(g, "tokenizer.ggml.model"), *pre = qf_gguf_get_str(g, "tokenizer.ggml.pre");
        json_t *toks = json_object_get(g->kv, "tokenizer.ggml.tokens");
        if (tm) printf("  tokenizer %s (pre %s), %zu tokens\n", tm, pre ? pre : "-", json_array_size(toks));
        if (!qf_gguf_get_int(g, "general.file_type", &v)) printf("  file_type %lld\n", (long long)v);
        for (int t = 0; t < 64; t++)
            if (count[t])
                printf("  %-8s %5llu tensors %10.2f MB\n", qf_ggml_type_name(t), (unsigned long long)count[t], bytes[t] / 1e6);
        if (manifest) {
            json_t *r = json_object_get(manifest, "recipe");
            printf("  qforge recipe: scheme %s, method %s, layout %s\n", json_string_value(json_object_get(r, "scheme")),
                   json_string_value(json_object_get(r, "method")), json_string_value(json_object_get(r, "layout")));
        }
        for (int i = 0; list && i < g->n_tensors; i++) {
            const qf_gguf_tensor *t = &g->tensors[i];
            char sh[96];
            size_t k = (size_t)snprintf(sh, sizeof sh, "[");
            for (int d = t->ndim - 1; d >= 0 && k < sizeof sh; d--)
                k += (size_t)snprintf(sh + k, sizeof sh - k, d == t->ndim - 1 ? "%lld" : ", %lld", (long long)t->ne[d]);
            if (k < sizeof sh) snprintf(sh + k, sizeof sh - k, "]");
            printf("  %-40s %-6s %-18s %12llu\n", t->name, qf_ggml_type_name(t->type), sh, (unsigned long long)t->nbytes);
        }
    }
    json_decref(manifest);
    qf_gguf_free(g);
    return 0;
}
