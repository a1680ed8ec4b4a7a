/* qf_model_card.c - render README.md from the manifest (see qf_model_card.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_fs.h"
#include "qf_manifest.h"
#include "qf_model_card.h"
#include "qf_version.h"

static const char *qf_js(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- what is carried over from the previous README / config ---------------------------- */

typedef struct qf_card_carry {
    char license[128], license_name[128], license_link[256], base_model[256];
} qf_card_carry;

/* Value of "key:" on a front-matter line (or the first "- item" after it), unquoted. */
static void qf_fm_value(const char *fm, size_t len, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *p = fm; p < fm + len;) {
        const char *eol = memchr(p, '\n', (size_t)(fm + len - p));
        if (!eol) eol = fm + len;
        if ((size_t)(eol - p) > kl && strncmp(p, key, kl) == 0 && p[kl] == ':') {
            const char *v = p + kl + 1, *e = eol;
            while (v < e && (*v == ' ' || *v == '\t')) v++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\r' || e[-1] == '\t')) e--;
            if (v == e && eol < fm + len) { /* a list: take its first item */
                const char *q = eol + 1, *qe = memchr(q, '\n', (size_t)(fm + len - q));
                if (!qe) qe = fm + len;
                while (q < qe && *q == ' ') q++;
                if (q < qe && *q == '-') {
                    v = q + 1, e = qe;
                    while (v < e && *v == ' ') v++;
                    while (e > v && (e[-1] == ' ' || e[-1] == '\r')) e--;
                }
            }
            if (e - v >= 2 && (*v == '"' || *v == '\'') && e[-1] == *v) v++, e--;
            size_t n = (size_t)(e - v) < cap - 1 ? (size_t)(e - v) : cap - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return;
        }
        p = eol + 1;
    }
}

static void qf_card_carry_read(const char *dir, qf_card_carry *c)
{
    memset(c, 0, sizeof *c);
    char *path = qf_path_join(dir, QF_MODEL_CARD_NAME), *text = NULL;
    size_t len = 0;
    qf_error e;
    if (qf_path_exists(path) && qf_file_read_all(path, 16u << 20, &text, &len, &e) == QF_OK && len > 4 &&
        strncmp(text, "---", 3) == 0) {
        const char *start = strchr(text, '\n'), *end = start ? strstr(start, "\n---") : NULL;
        if (start && end) {
            start++;
            size_t fl = (size_t)(end - start) + 1;
            qf_fm_value(start, fl, "license", c->license, sizeof c->license);
            qf_fm_value(start, fl, "license_name", c->license_name, sizeof c->license_name);
            qf_fm_value(start, fl, "license_link", c->license_link, sizeof c->license_link);
            qf_fm_value(start, fl, "base_model", c->base_model, sizeof c->base_model);
        }
    }
    free(text);
    free(path);
    path = qf_path_join(dir, "config.json");
    json_t *cfg = json_load_file(path, 0, NULL);
    free(path);
    const char *lic = qf_js(cfg, "license"), *name = qf_js(cfg, "_name_or_path");
    if (!c->license[0] && lic) snprintf(c->license, sizeof c->license, "%s", lic);
    /* only a hub id ("org/name"), not a local path, names a base model */
    if (!c->base_model[0] && name && strchr(name, '/') == strrchr(name, '/') && strchr(name, '/') && name[0] != '/' &&
        name[0] != '.')
        snprintf(c->base_model, sizeof c->base_model, "%s", name);
    json_decref(cfg);
}

/* ---- rendering --------------------------------------------------------------------------- */

/* A YAML scalar: bare when it is plainly safe, else double-quoted with escapes. */
static void qf_yaml(FILE *f, const char *s)
{
    int plain = *s != 0;
    for (const char *p = s; *p && plain; p++)
        plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                *p == '_' || *p == '.' || *p == '/';
    if (plain && strcmp(s, "true") && strcmp(s, "false") && strcmp(s, "null")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f);
        if ((unsigned char)*p < 0x20) fprintf(f, "\\x%02x", (unsigned char)*p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

/* Markdown table cell text: pipes and newlines would break the row. */
static void qf_md(FILE *f, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '|') fputs("\\|", f);
        else if (*p == '\n' || *p == '\r') fputc(' ', f);
        else fputc(*p, f);
    }
}

static void qf_size(FILE *f, double bytes)
{
    if (bytes >= 1e9) fprintf(f, "%.2f GB", bytes / 1e9);
    else if (bytes >= 1e6) fprintf(f, "%.2f MB", bytes / 1e6);
    else if (bytes >= 1e3) fprintf(f, "%.1f kB", bytes / 1e3);
    else fprintf(f, "%.0f B", bytes);
}

static int qf_is_weight_file(const char *n)
{
    size_t l = strlen(n);
    return (l > 12 && strcmp(n + l - 12, ".safetensors") == 0) || (l > 5 && strcmp(n + l - 5, ".gguf") == 0);
}

/* The validation record: known metrics first, in a fixed order and with units, then any other
 * scalar the record holds. */
static void qf_card_validation(FILE *f, const json_t *v)
{
    static const struct {
        const char *key, *label, *fmt;
        double mul;
    } known[] = {
        {"ppl", "base perplexity", "%.4f", 1},
        {"quant_ppl", "quantized perplexity", "%.4f", 1},
        {"ppl_drift_pct", "perplexity drift", "%+.3f %%", 1},
        {"mean_kld", "mean KL divergence", "%.5f", 1},
        {"p99_kld", "99th percentile KL divergence", "%.5f", 1},
        {"top1_agreement", "top-1 agreement", "%.2f %%", 100},
        {"scored_tokens", "scored tokens", "%.0f", 1},
        {"ctx", "context (tokens per window)", "%.0f", 1},
        {"windows", "windows", "%.0f", 1},
    };
    fprintf(f, "| metric | value |\n|---|---|\n");
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) {
        const json_t *x = json_object_get(v, known[i].key);
        if (!json_is_number(x)) continue;
        fprintf(f, "| %s | ", known[i].label);
        fprintf(f, known[i].fmt, json_number_value(x) * known[i].mul);
        fprintf(f, " |\n");
    }
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        int seen = 0;
        for (size_t i = 0; i < sizeof known / sizeof *known && !seen; i++) seen = strcmp(k, known[i].key) == 0;
        if (seen || json_is_object(x) || json_is_array(x) || json_is_null(x) || !strcmp(k, "text") || !strcmp(k, "protocol"))
            continue;
        fprintf(f, "| ");
        qf_md(f, k);
        fprintf(f, " | ");
        if (json_is_string(x)) fprintf(f, "`"), qf_md(f, json_string_value(x)), fprintf(f, "`");
        else if (json_is_integer(x)) fprintf(f, "%lld", (long long)json_integer_value(x));
        else if (json_is_real(x)) fprintf(f, "%.6g", json_real_value(x));
        else fprintf(f, "%s", json_is_true(x) ? "yes" : "no");
        fprintf(f, " |\n");
    }
}

static void qf_card_render(FILE *f, const json_t *m, const qf_card_carry *c)
{
    const json_t *recipe = json_object_get(m, "recipe"), *source = json_object_get(m, "source");
    const char *scheme = qf_js(recipe, "scheme"), *method = qf_js(recipe, "method"), *layout = qf_js(recipe, "layout");
    const char *src_name = qf_js(source, "name");
    if (!layout) layout = "compressed-tensors";
    if (!scheme) scheme = "none";
    int gguf = strcmp(layout, "gguf") == 0, modelopt = strcmp(layout, "modelopt") == 0;
    int passthrough = strcmp(layout, "safetensors") == 0;
    const char *base = c->base_model[0] ? c->base_model : src_name;

    /* front matter */
    fprintf(f, "---\n");
    if (base) fprintf(f, "base_model: "), qf_yaml(f, base), fprintf(f, "\n");
    fprintf(f, "library_name: %s\n", gguf ? "gguf" : "transformers");
    if (c->license[0]) fprintf(f, "license: "), qf_yaml(f, c->license), fprintf(f, "\n");
    if (c->license_name[0]) fprintf(f, "license_name: "), qf_yaml(f, c->license_name), fprintf(f, "\n");
    if (c->license_link[0]) fprintf(f, "license_link: "), qf_yaml(f, c->license_link), fprintf(f, "\n");
    fprintf(f, "pipeline_tag: text-generation\ntags:\n- qforge\n");
    if (!passthrough) fprintf(f, "- "), qf_yaml(f, scheme), fprintf(f, "\n");
    fprintf(f, "- "), qf_yaml(f, layout), fprintf(f, "\n");
    if (!passthrough) fprintf(f, "- quantized\n");
    fprintf(f, "---\n\n");

    /* title and provenance */
    fprintf(f, "# ");
    qf_md(f, base ? base : "model");
    if (passthrough) fprintf(f, " (safetensors)\n\n");
    else fprintf(f, " — %s (%s)\n\n", scheme, layout);
    fprintf(f, "%s `", passthrough ? "The weights of" : "A quantized copy of");
    qf_md(f, src_name ? src_name : "the source checkpoint");
    fprintf(f, "`, written by qforge %s. ", QF_VERSION);
    fprintf(f, "Every file and every tensor is listed with its XXH3-128 in `%s`.\n\n", QF_MANIFEST_NAME);

    /* recipe */
    const json_t *sf = json_object_get(m, "source_format"); /* an already-quantized source (qf_quant_source.h) */
    const char *src_fmt = qf_js(sf, "format"), *src_from = qf_js(sf, "from");
    fprintf(f, "## Recipe\n\n| | |\n|---|---|\n| scheme | `%s` |\n", scheme);
    if (method) fprintf(f, "| method | `%s` |\n", method);
    fprintf(f, "| layout | `%s` |\n", layout);
    if (!passthrough) {
        const char *dflt = qf_js(recipe, "default_ignore");
        fprintf(f, "| kept in full precision | ");
        qf_md(f, dflt ? dflt : "lm_head, embeddings, norms");
        const json_t *ign = json_object_get(recipe, "ignore");
        size_t i;
        json_t *x;
        json_array_foreach(ign, i, x) if (json_is_string(x)) fprintf(f, "; `"), qf_md(f, json_string_value(x)), fprintf(f, "`");
        fprintf(f, " |\n");
        /* fused 3-D experts the scheme would quantize but no engine loads per expert (GPT-OSS) */
        const json_t *dense = json_object_get(m, "dense_experts");
        if (json_array_size(dense)) {
            fprintf(f, "| fused experts kept in full precision (%zu)%s | ", json_array_size(dense),
                    src_fmt && strcmp(src_fmt, "mxfp4") == 0 ? ", bf16 dequantized from the source's MXFP4" : "");
            json_array_foreach(dense, i, x) if (json_is_string(x)) fprintf(f, "%s`", i ? ", " : ""), qf_md(f, json_string_value(x)), fprintf(f, "`");
            fprintf(f, " |\n");
        }
    }
    /* an already-quantized source: what the weights were read from (qf_quant_source.h) */
    if (src_fmt) {
        fprintf(f, "| source weights | `");
        qf_md(f, src_fmt);
        fprintf(f, "`, dequantized to bf16 on read (");
        qf_md(f, src_from ? src_from : "?");
        fprintf(f, ") |\n");
    }
    size_t i_menu;
    json_t *x_menu;
    /* --target-bits: what the budget bought, per format (the per-Linear list is in the manifest) */
    const json_t *mixed = json_object_get(m, "mixed_precision");
    if (json_is_object(mixed)) {
        fprintf(f, "| mixed precision | %.4f bits per weight over the quantized Linears (target %g): ",
                json_number_value(json_object_get(mixed, "bits_per_weight")),
                json_number_value(json_object_get(mixed, "target_bits")));
        const json_t *counts = json_object_get(mixed, "counts");
        json_array_foreach(json_object_get(mixed, "menu"), i_menu, x_menu) if (json_is_string(x_menu))
        {
            fprintf(f, "%s%lld `", i_menu ? ", " : "",
                    (long long)json_integer_value(json_object_get(counts, json_string_value(x_menu))));
            qf_md(f, json_string_value(x_menu));
            fprintf(f, "`");
        }
        fprintf(f, "; each Linear's format: `%s` \"mixed_precision\" |\n", QF_MANIFEST_NAME);
    }
    const json_t *cal = json_object_get(recipe, "calibration");
    if (json_is_object(cal)) {
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)cal, k, x) if (json_is_string(x) || json_is_number(x))
        {
            fprintf(f, "| calibration %s | ", k);
            if (json_is_string(x)) qf_md(f, json_string_value(x));
            else fprintf(f, "%g", json_number_value(x));
            fprintf(f, " |\n");
        }
    }

    /* files */
    double total = 0, src_total = 0;
    fprintf(f, "\n## Files\n\n| file | size |\n|---|---|\n");
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(m, "files"), i, x)
    {
        const char *n = qf_js(x, "name");
        json_t *sz = json_object_get(x, "size");
        if (!n || !json_is_integer(sz) || !qf_is_weight_file(n)) continue;
        fprintf(f, "| `");
        qf_md(f, n);
        fprintf(f, "` | ");
        qf_size(f, (double)json_integer_value(sz));
        fprintf(f, " |\n");
        total += (double)json_integer_value(sz);
    }
    fprintf(f, "| **weights in total** | **");
    qf_size(f, total);
    fprintf(f, "** |\n");
    json_array_foreach(json_object_get(source, "files"), i, x)
    {
        json_t *sz = json_object_get(x, "size");
        if (json_is_integer(sz)) src_total += (double)json_integer_value(sz);
    }
    if (src_total > 0 && total > 0) {
        fprintf(f, "\nThe source weights take ");
        qf_size(f, src_total);
        fprintf(f, "; this artifact's take %.1f %% of that.\n", 100.0 * total / src_total);
    }

    /* how to load */
    fprintf(f, "\n## How to load\n\n");
    if (gguf) {
        fprintf(f, "**llama.cpp** (the GGUF file is self-contained: weights, hyper-parameters, tokenizer):\n\n"
                   "```sh\nllama-cli -m model.gguf -p \"Hello\"\nllama-server -m model.gguf\n```\n\n"
                   "**vLLM** (experimental GGUF support; pass the original tokenizer):\n\n"
                   "```sh\nvllm serve ./model.gguf --tokenizer <base model>\n```\n\n"
                   "TensorRT-LLM does not read GGUF; convert with `--layout modelopt` for it.\n");
    } else if (modelopt) {
        fprintf(f, "`config.json` carries `quantization_config` with `quant_method: modelopt` and "
                   "`hf_quant_config.json` the ModelOpt export record.\n\n"
                   "**TensorRT-LLM**:\n\n```sh\ntrtllm-serve ./THIS_FOLDER\n```\n\n"
                   "**vLLM** (reads the ModelOpt layout):\n\n```sh\nvllm serve ./THIS_FOLDER --quantization modelopt\n```\n\n"
                   "llama.cpp does not read this layout; convert with `--layout gguf` for it.\n");
    } else if (passthrough) {
        fprintf(f, "Plain safetensors: any loader reads it.\n\n"
                   "```python\nfrom transformers import AutoModelForCausalLM\n"
                   "model = AutoModelForCausalLM.from_pretrained(\"./THIS_FOLDER\")\n```\n\n"
                   "```sh\nvllm serve ./THIS_FOLDER\n```\n");
    } else {
        fprintf(f, "`config.json` carries a compressed-tensors `quantization_config`.\n\n"
                   "**vLLM** / **SGLang**:\n\n```sh\nvllm serve ./THIS_FOLDER\n```\n\n"
                   "```python\nfrom vllm import LLM\nllm = LLM(model=\"./THIS_FOLDER\")\n"
                   "print(llm.generate(\"Hello\")[0].outputs[0].text)\n```\n\n"
                   "**Transformers** (needs `pip install compressed-tensors`):\n\n"
                   "```python\nfrom transformers import AutoModelForCausalLM\n"
                   "model = AutoModelForCausalLM.from_pretrained(\"./THIS_FOLDER\")\n```\n\n"
                   "TensorRT-LLM: convert with `--layout modelopt`; llama.cpp: with `--layout gguf`.\n");
    }

    /* validation */
    fprintf(f, "\n## Validation\n\n");
    const json_t *val = json_object_get(m, "validation");
    if (json_is_object(val)) {
        const char *text = qf_js(val, "text"), *proto = qf_js(val, "protocol");
        fprintf(f, "Recorded by `qforge validate --record`: the source and this artifact on the same text");
        if (text) fprintf(f, " (`"), qf_md(f, text), fprintf(f, "`)");
        if (proto) fprintf(f, ", protocol `"), qf_md(f, proto), fprintf(f, "`");
        fprintf(f, ".\n\n");
        qf_card_validation(f, val);
    } else {
        fprintf(f, "Not validated yet. `qforge validate --base SOURCE --quant THIS_FOLDER --text FILE --record` "
                   "measures perplexity drift, KL divergence and top-1 agreement against the source and "
                   "fills this section.\n");
    }

    /* integrity */
    fprintf(f, "\n## Integrity\n\n```sh\nqforge verify ./THIS_FOLDER\n```\n\nrecomputes the XXH3-128 of "
               "every file and tensor against `%s` (whose own seal detects edits).\n",
            QF_MANIFEST_NAME);
}

qf_status qf_model_card_write(const char *dir, json_t *manifest, qf_error *err)
{
    qf_card_carry carry;
    qf_card_carry_read(dir, &carry);
    char *text = NULL;
    size_t len = 0;
    /* render from the manifest with its keys sorted, as it is stored: the card is then the
     * same whether the manifest was just built (insertion order) or read back (merge, --record) */
    char *canon = json_dumps(manifest, JSON_SORT_KEYS | JSON_COMPACT);
    json_t *sorted = canon ? json_loads(canon, 0, NULL) : NULL;
    free(canon);
    FILE *f = sorted ? open_memstream(&text, &len) : NULL;
    if (!f) {
        json_decref(sorted);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory rendering %s", QF_MODEL_CARD_NAME);
    }
    qf_card_render(f, sorted, &carry);
    json_decref(sorted);
    if (fclose(f) != 0 || !text) {
        free(text);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory rendering %s", QF_MODEL_CARD_NAME);
    }
    char *path = qf_path_join(dir, QF_MODEL_CARD_NAME);
    qf_status s = qf_file_write_atomic(path, text, len, err);
    free(path);
    if (s == QF_OK) {
        /* the card's entry is always the last one, so every path to the same artifact (fresh,
         * resumed, merged, re-rendered) lists files in the same order */
        json_t *files = json_object_get(manifest, "files");
        for (size_t i = json_array_size(files); i-- > 0;) {
            const char *n = qf_js(json_array_get(files, i), "name");
            if (n && strcmp(n, QF_MODEL_CARD_NAME) == 0) json_array_remove(files, i);
        }
        qf_sha256 sha = qf_sha256_bytes(text, len);
        qf_manifest_add_file(manifest, QF_MODEL_CARD_NAME, len, qf_hash_bytes(text, len), &sha);
    }
    free(text);
    return s;
}

qf_status qf_model_card_refresh(const char *dir, qf_error *err)
{
    json_t *m = NULL;
    QF_TRY(qf_manifest_load(dir, &m, err));
    qf_status s = qf_model_card_write(dir, m, err);
    if (s == QF_OK) s = qf_manifest_write(dir, m, err);
    json_decref(m);
    return s;
}
