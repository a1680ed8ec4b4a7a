/* calib_data.c - calibration text to token windows (see qf_calib_data.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_calib_data.h"
#include "qf_fs.h"
#include "qf_rng.h"

const char *qf_calib_default(size_t *len);

/* JSON Lines: every non-empty line an object with a string "text"; texts joined by "\n\n". */
static qf_status qf_jsonl_texts(const char *path, const char *buf, size_t len, char **out, size_t *out_len, qf_error *err)
{
    char *text = malloc(len + 1);
    size_t n = 0;
    int line_no = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        line_no++;
        size_t a = pos;
        while (a < end && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r')) a++;
        if (a < end) {
            json_error_t je;
            json_t *o = json_loadb(buf + a, end - a, 0, &je);
            json_t *t = json_object_get(o, "text");
            if (!json_is_string(t)) {
                json_decref(o);
                free(text);
                return qf_fail(err, QF_ERR_FORMAT, "%s: line %d: not a JSON object with a string \"text\"", path, line_no);
            }
            size_t tl = json_string_length(t);
            if (n) memcpy(text + n, "\n\n", 2), n += 2;
            memcpy(text + n, json_string_value(t), tl); /* a JSON string never decodes longer than its line */
            n += tl;
            json_decref(o);
        }
        pos = end + 1;
    }
    text[n] = 0;
    *out = text;
    *out_len = n;
    return QF_OK;
}

qf_status qf_calib_data_load(const char *path, const qf_tokenizer *tok, int n_samples, int seqlen, uint64_t seed,
                             qf_calib_data *d, qf_error *err)
{
    memset(d, 0, sizeof *d);
    if (n_samples <= 0 || seqlen < 2)
        return qf_fail(err, QF_ERR_USAGE, "calibration needs samples > 0 and seqlen >= 2 (got %d x %d)", n_samples, seqlen);
    char *raw = NULL, *text = NULL;
    size_t raw_len = 0, text_len = 0;
    if (path) {
        QF_TRY(qf_file_read_all(path, (size_t)4 << 30, &raw, &raw_len, err));
        snprintf(d->source, sizeof d->source, "%s", qf_path_base(path));
    } else {
        const char *b = qf_calib_default(&raw_len);
        raw = malloc(raw_len + 1);
        memcpy(raw, b, raw_len);
        raw[raw_len] = 0;
        snprintf(d->source, sizeof d->source, "bundled:default-calib.txt");
    }
    d->text_bytes = raw_len;
    d->text_hash = qf_hash_bytes(raw, raw_len);
    size_t l = path ? strlen(path) : 0;
    size_t first = 0;
    while (first < raw_len && (raw[first] == ' ' || raw[first] == '\n' || raw[first] == '\r' || raw[first] == '\t')) first++;
    int jsonl = path && ((l > 6 && strcmp(path + l - 6, ".jsonl") == 0) || (first < raw_len && raw[first] == '{'));
    if (jsonl) {
        qf_status s = qf_jsonl_texts(path, raw, raw_len, &text, &text_len, err);
        free(raw);
        if (s) return s;
    } else {
        text = raw, text_len = raw_len;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    qf_status s = qf_tokenizer_encode(tok, text, text_len, &ids, &n, err);
    free(text);
    if (s) return s;
    d->text_tokens = (int64_t)n;
    if (n < (size_t)seqlen) {
        free(ids);
        return qf_fail(err, QF_ERR_USAGE, "%s: %zu tokens is shorter than one calibration window of %d", d->source, n,
                       seqlen);
    }
    d->ids = malloc(sizeof(int32_t) * (size_t)n_samples * (size_t)seqlen);
    if (!d->ids) {
        free(ids);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory for %d x %d calibration tokens", n_samples, seqlen);
    }
    uint64_t state = seed, span = (uint64_t)(n - (size_t)seqlen) + 1;
    for (int i = 0; i < n_samples; i++) {
        uint64_t start = qf_splitmix64(&state) % span;
        memcpy(d->ids + (size_t)i * (size_t)seqlen, ids + start, sizeof(int32_t) * (size_t)seqlen);
    }
    free(ids);
    d->n_samples = n_samples;
    d->seqlen = seqlen;
    d->seed = seed;
    return QF_OK;
}

void qf_calib_data_free(qf_calib_data *d)
{
    if (!d) return;
    free(d->ids);
    memset(d, 0, sizeof *d);
}
