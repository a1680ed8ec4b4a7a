/* qf_gguf.c - the GGUF writer (streaming, hashing while writing) and the checked reader
 * (see qf_gguf.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_fs.h"
#include "qf_gguf.h"

#define QF_GGUF_WBUF (8u << 20)
#define QF_GGUF_MAX_ARRAY_DEPTH 4

static uint64_t qf_pad(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

/* ==== writer ================================================================================ */

typedef struct qf_bytes {
    uint8_t *b;
    size_t n, cap;
    int oom;
} qf_bytes;

static void qf_bput(qf_bytes *t, const void *p, size_t n)
{
    if (t->oom) return;
    if (t->n + n > t->cap) {
        size_t c = t->cap ? t->cap : 4096;
        while (c < t->n + n) c *= 2;
        uint8_t *nb = realloc(t->b, c);
        if (!nb) {
            t->oom = 1;
            return;
        }
        t->b = nb, t->cap = c;
    }
    memcpy(t->b + t->n, p, n);
    t->n += n;
}
static void qf_ble(qf_bytes *t, uint64_t v, int n)
{
    uint8_t b[8];
    for (int k = 0; k < n; k++) b[k] = (uint8_t)(v >> (8 * k));
    qf_bput(t, b, (size_t)n);
}
static void qf_bstr(qf_bytes *t, const char *s)
{
    size_t l = strlen(s);
    qf_ble(t, l, 8);
    qf_bput(t, s, l);
}

typedef struct qf_gguf_wtensor {
    char *name;
    int type, ndim;
    int64_t ne[QF_GGUF_MAX_DIMS];
    uint64_t nbytes, offset;
} qf_gguf_wtensor;

struct qf_gguf_writer {
    qf_bytes kv;              /* serialized key/value pairs */
    int64_t n_kv;
    char **keys;              /* for the uniqueness check */
    int n_tensors, cap_tensors;
    qf_gguf_wtensor *t;
    int bad;                  /* a kv was malformed or memory ran out: reported at open */
    /* open file */
    char *path;
    int fd;
    int cur;
    uint64_t cur_done, written;
    qf_hash_ctx *file_state, *tensor_state;
    qf_hash128 *hashes;
    uint8_t *buf;
    size_t buf_len;
};

qf_gguf_writer *qf_gguf_writer_new(void)
{
    qf_gguf_writer *w = calloc(1, sizeof *w);
    if (w) w->fd = -1;
    return w;
}

void qf_gguf_writer_free(qf_gguf_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) {
        close(w->fd);
        unlink(w->path);
    }
    for (int64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (int i = 0; i < w->n_tensors; i++) free(w->t[i].name);
    free(w->t);
    free(w->kv.b);
    free(w->path);
    free(w->hashes);
    free(w->buf);
    qf_hash_free(w->file_state);
    qf_hash_free(w->tensor_state);
    free(w);
}

static void qf_kv_key(qf_gguf_writer *w, const char *key, int type)
{
    for (int64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0) w->bad = 1;
    char **nk = realloc(w->keys, sizeof *nk * (size_t)(w->n_kv + 1));
    if (!nk) {
        w->bad = 1;
        return;
    }
    w->keys = nk;
    w->keys[w->n_kv++] = strdup(key);
    qf_bstr(&w->kv, key);
    qf_ble(&w->kv, (uint64_t)type, 4);
}

void qf_gguf_kv_u32(qf_gguf_writer *w, const char *key, uint32_t v) { qf_kv_key(w, key, QF_GGUF_U32), qf_ble(&w->kv, v, 4); }
void qf_gguf_kv_i32(qf_gguf_writer *w, const char *key, int32_t v)
{
    qf_kv_key(w, key, QF_GGUF_I32), qf_ble(&w->kv, (uint32_t)v, 4);
}
void qf_gguf_kv_f32(qf_gguf_writer *w, const char *key, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    qf_kv_key(w, key, QF_GGUF_F32), qf_ble(&w->kv, u, 4);
}
void qf_gguf_kv_bool(qf_gguf_writer *w, const char *key, int v) { qf_kv_key(w, key, QF_GGUF_BOOL), qf_ble(&w->kv, v != 0, 1); }
void qf_gguf_kv_str(qf_gguf_writer *w, const char *key, const char *v) { qf_kv_key(w, key, QF_GGUF_STRING), qf_bstr(&w->kv, v); }
void qf_gguf_kv_str_array(qf_gguf_writer *w, const char *key, const char *const *v, int64_t n)
{
    qf_kv_key(w, key, QF_GGUF_ARRAY);
    qf_ble(&w->kv, QF_GGUF_STRING, 4);
    qf_ble(&w->kv, (uint64_t)n, 8);
    for (int64_t i = 0; i < n; i++) qf_bstr(&w->kv, v[i]);
}
void qf_gguf_kv_i32_array(qf_gguf_writer *w, const char *key, const int32_t *v, int64_t n)
{
    qf_kv_key(w, key, QF_GGUF_ARRAY);
    qf_ble(&w->kv, QF_GGUF_I32, 4);
    qf_ble(&w->kv, (uint64_t)n, 8);
    for (int64_t i = 0; i < n; i++) qf_ble(&w->kv, (uint32_t)v[i], 4);
}

int qf_gguf_writer_add_tensor(qf_gguf_writer *w, const char *name, int type, int ndim, const int64_t *shape, qf_error *err)
{
    int bs = qf_ggml_block_size(type);
    if (!bs || ndim < 1 || ndim > QF_GGUF_MAX_DIMS || strlen(name) > QF_GGUF_MAX_NAME) {
        qf_fail(err, QF_ERR_USAGE, "GGUF tensor '%s': type %d, %d dims or the name length is not writable", name, type, ndim);
        return -1;
    }
    if (shape[ndim - 1] % bs) {
        qf_fail(err, QF_ERR_USAGE, "GGUF tensor '%s': %lld values per row is not a multiple of %s's block of %d", name,
                (long long)shape[ndim - 1], qf_ggml_type_name(type), bs);
        return -1;
    }
    for (int i = 0; i < w->n_tensors; i++)
        if (strcmp(w->t[i].name, name) == 0) {
            qf_fail(err, QF_ERR_USAGE, "GGUF tensor '%s' declared twice", name);
            return -1;
        }
    if (w->n_tensors == w->cap_tensors) {
        int nc = w->cap_tensors ? w->cap_tensors * 2 : 64;
        qf_gguf_wtensor *nt = realloc(w->t, sizeof *nt * (size_t)nc);
        if (!nt) {
            qf_fail(err, QF_ERR_NOMEM, "out of memory");
            return -1;
        }
        w->t = nt, w->cap_tensors = nc;
    }
    qf_gguf_wtensor *t = &w->t[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->type = type;
    t->ndim = ndim;
    uint64_t rows = 1;
    for (int d = 0; d < ndim; d++) {
        t->ne[d] = shape[ndim - 1 - d];
        if (d) rows *= (uint64_t)t->ne[d];
    }
    t->nbytes = qf_ggml_row_bytes(type, t->ne[0]) * rows;
    t->offset = w->n_tensors ? qf_pad(w->t[w->n_tensors - 1].offset + w->t[w->n_tensors - 1].nbytes,
                                      QF_GGUF_DEFAULT_ALIGNMENT)
                             : 0;
    return w->n_tensors++;
}

uint64_t qf_gguf_tensor_bytes(const qf_gguf_writer *w, int i) { return w->t[i].nbytes; }

static qf_status qf_gguf_flush(qf_gguf_writer *w, qf_error *err)
{
    qf_status s = qf_write_all(w->fd, w->buf, w->buf_len, w->path, err);
    w->buf_len = 0;
    return s;
}

static qf_status qf_gguf_put(qf_gguf_writer *w, const void *data, uint64_t n, qf_error *err)
{
    const uint8_t *p = data;
    qf_hash_update(w->file_state, p, (size_t)n);
    w->written += n;
    while (n) {
        size_t room = QF_GGUF_WBUF - w->buf_len, k = n < room ? (size_t)n : room;
        memcpy(w->buf + w->buf_len, p, k);
        w->buf_len += k, p += k, n -= k;
        if (w->buf_len == QF_GGUF_WBUF) QF_TRY(qf_gguf_flush(w, err));
    }
    return QF_OK;
}

static qf_status qf_gguf_zeros(qf_gguf_writer *w, uint64_t n, qf_error *err)
{
    static const uint8_t z[64] = {0};
    while (n) {
        uint64_t k = n < sizeof z ? n : sizeof z;
        QF_TRY(qf_gguf_put(w, z, k, err));
        n -= k;
    }
    return QF_OK;
}

/* Complete zero-byte tensors and pad finished ones. */
static qf_status qf_gguf_advance(qf_gguf_writer *w, qf_error *err)
{
    while (w->cur < w->n_tensors && w->cur_done == w->t[w->cur].nbytes) {
        w->hashes[w->cur] = qf_hash_digest(w->tensor_state);
        qf_hash_reset(w->tensor_state);
        w->cur++;
        w->cur_done = 0;
        if (w->cur < w->n_tensors) QF_TRY(qf_gguf_zeros(w, w->t[w->cur].offset - (w->t[w->cur - 1].offset + w->t[w->cur - 1].nbytes), err));
    }
    return QF_OK;
}

qf_status qf_gguf_writer_open(qf_gguf_writer *w, const char *path, qf_error *err)
{
    if (w->bad || w->kv.oom) return qf_fail(err, QF_ERR_USAGE, "%s: GGUF metadata has a duplicate key or ran out of memory", path);
    w->path = strdup(path);
    w->hashes = calloc((size_t)w->n_tensors + 1, sizeof *w->hashes);
    w->buf = malloc(QF_GGUF_WBUF);
    w->file_state = qf_hash_new();
    w->tensor_state = qf_hash_new();
    qf_bytes h = {0};
    qf_bput(&h, "GGUF", 4);
    qf_ble(&h, 3, 4);
    qf_ble(&h, (uint64_t)w->n_tensors, 8);
    qf_ble(&h, (uint64_t)w->n_kv, 8);
    qf_bput(&h, w->kv.b, w->kv.n);
    for (int i = 0; i < w->n_tensors; i++) {
        const qf_gguf_wtensor *t = &w->t[i];
        qf_bstr(&h, t->name);
        qf_ble(&h, (uint64_t)t->ndim, 4);
        for (int d = 0; d < t->ndim; d++) qf_ble(&h, (uint64_t)t->ne[d], 8);
        qf_ble(&h, (uint64_t)t->type, 4);
        qf_ble(&h, t->offset, 8);
    }
    if (!w->path || !w->hashes || !w->buf || !w->file_state || !w->tensor_state || h.oom) {
        free(h.b);
        return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", path);
    }
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        free(h.b);
        return qf_fail(err, QF_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    qf_hash_reset(w->file_state);
    qf_hash_reset(w->tensor_state);
    qf_status s = qf_gguf_put(w, h.b, h.n, err);
    if (s == QF_OK) s = qf_gguf_zeros(w, qf_pad(h.n, QF_GGUF_DEFAULT_ALIGNMENT) - h.n, err);
    free(h.b);
    if (s == QF_OK) s = qf_gguf_advance(w, err);
    return s;
}

qf_status qf_gguf_writer_write(qf_gguf_writer *w, int i, const void *data, uint64_t n, qf_error *err)
{
    if (w->fd < 0 || i != w->cur || w->cur_done + n > w->t[i].nbytes)
        return qf_fail(err, QF_ERR_USAGE, "%s: GGUF tensor %d written out of order or past its size", w->path, i);
    QF_TRY(qf_gguf_put(w, data, n, err));
    qf_hash_update(w->tensor_state, data, (size_t)n);
    w->cur_done += n;
    return qf_gguf_advance(w, err);
}

qf_status qf_gguf_writer_close(qf_gguf_writer *w, uint64_t *file_size, qf_hash128 *file_hash, qf_hash128 *tensor_hashes,
                               qf_error *err)
{
    qf_status s = QF_OK;
    if (w->fd < 0 || w->cur != w->n_tensors) s = qf_fail(err, QF_ERR_USAGE, "%s: closed before all tensors were written", w->path);
    if (!s) s = qf_gguf_flush(w, err);
    if (!s && fsync(w->fd) != 0) s = qf_fail(err, QF_ERR_IO, "%s: fsync failed: %s", w->path, strerror(errno));
    if (!s && close(w->fd) != 0) s = qf_fail(err, QF_ERR_IO, "%s: close failed: %s", w->path, strerror(errno));
    if (!s) {
        w->fd = -1;
        if (file_size) *file_size = w->written;
        if (file_hash) *file_hash = qf_hash_digest(w->file_state);
        if (tensor_hashes) memcpy(tensor_hashes, w->hashes, sizeof *w->hashes * (size_t)w->n_tensors);
    }
    return s; /* on failure qf_gguf_writer_free deletes the partial file */
}

/* ==== reader ================================================================================ */

typedef struct qf_rd {
    const char *label;
    const uint8_t *d;
    uint64_t size, pos;
    qf_error *err;
} qf_rd;

static qf_status qf_rd_need(qf_rd *r, uint64_t n, const char *what)
{
    if (r->size - r->pos < n)
        return qf_fail(r->err, QF_ERR_FORMAT, "%s: truncated: %s at byte %llu needs %llu bytes, %llu left", r->label, what,
                       (unsigned long long)r->pos, (unsigned long long)n, (unsigned long long)(r->size - r->pos));
    return QF_OK;
}

static qf_status qf_rd_u(qf_rd *r, int n, uint64_t *v, const char *what)
{
    QF_TRY(qf_rd_need(r, (uint64_t)n, what));
    uint64_t x = 0;
    for (int k = n - 1; k >= 0; k--) x = x << 8 | r->d[r->pos + (uint64_t)k];
    r->pos += (uint64_t)n;
    *v = x;
    return QF_OK;
}

static qf_status qf_rd_str(qf_rd *r, const char **s, uint64_t *len, const char *what)
{
    QF_TRY(qf_rd_u(r, 8, len, what));
    QF_TRY(qf_rd_need(r, *len, what));
    *s = (const char *)r->d + r->pos;
    r->pos += *len;
    return QF_OK;
}

static int qf_kv_size(int type) /* bytes of a scalar value; 0 for string / array */
{
    static const int sz[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type >= 0 && type <= 12 ? sz[type] : -1;
}

/* One value of type `type` as JSON (arrays recursively, at most QF_GGUF_MAX_ARRAY_DEPTH deep). */
static qf_status qf_rd_value(qf_rd *r, int type, int depth, const char *key, json_t **out)
{
    *out = NULL;
    uint64_t v;
    if (type == QF_GGUF_STRING) {
        const char *s;
        uint64_t l;
        QF_TRY(qf_rd_str(r, &s, &l, key));
        *out = json_stringn_nocheck(s, (size_t)l);
    } else if (type == QF_GGUF_ARRAY) {
        uint64_t et, n;
        if (depth >= QF_GGUF_MAX_ARRAY_DEPTH)
            return qf_fail(r->err, QF_ERR_FORMAT, "%s: key '%.64s': arrays nested deeper than %d", r->label, key,
                           QF_GGUF_MAX_ARRAY_DEPTH);
        QF_TRY(qf_rd_u(r, 4, &et, key));
        QF_TRY(qf_rd_u(r, 8, &n, key));
        int es = qf_kv_size((int)et);
        if (es < 0) return qf_fail(r->err, QF_ERR_FORMAT, "%s: key '%.64s': unknown array element type %llu", r->label, key,
                                   (unsigned long long)et);
        uint64_t min = es ? (uint64_t)es : et == QF_GGUF_STRING ? 8 : 12;
        if (n > (r->size - r->pos) / min)
            return qf_fail(r->err, QF_ERR_FORMAT, "%s: key '%.64s': %llu elements cannot fit the %llu bytes left", r->label,
                           key, (unsigned long long)n, (unsigned long long)(r->size - r->pos));
        json_t *a = json_array();
        for (uint64_t i = 0; i < n; i++) {
            json_t *e;
            qf_status s = qf_rd_value(r, (int)et, depth + 1, key, &e);
            if (s) {
                json_decref(a);
                return s;
            }
            json_array_append_new(a, e);
        }
        *out = a;
    } else {
        int es = qf_kv_size(type);
        if (es <= 0) return qf_fail(r->err, QF_ERR_FORMAT, "%s: key '%.64s': unknown value type %d", r->label, key, type);
        QF_TRY(qf_rd_u(r, es, &v, key));
        switch (type) {
        case QF_GGUF_I8: *out = json_integer((int8_t)v); break;
        case QF_GGUF_I16: *out = json_integer((int16_t)v); break;
        case QF_GGUF_I32: *out = json_integer((int32_t)v); break;
        case QF_GGUF_I64: *out = json_integer((json_int_t)v); break;
        case QF_GGUF_U64: *out = v > INT64_MAX ? json_real((double)v) : json_integer((json_int_t)v); break;
        case QF_GGUF_F32: {
            float f;
            uint32_t u = (uint32_t)v;
            memcpy(&f, &u, 4);
            *out = json_real(f);
            break;
        }
        case QF_GGUF_F64: {
            double f;
            memcpy(&f, &v, 8);
            *out = json_real(f);
            break;
        }
        case QF_GGUF_BOOL: *out = json_boolean(v != 0); break;
        default: *out = json_integer((json_int_t)v); /* u8, u16, u32 */
        }
    }
    if (!*out) *out = json_null(); /* a NaN real: keep the key */
    return QF_OK;
}

void qf_gguf_free(qf_gguf *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    json_decref(g->kv);
    json_decref(g->kv_types);
    qf_file_unmap(&g->map);
    free(g->label);
    free(g);
}

qf_status qf_gguf_parse(const char *label, const uint8_t *data, uint64_t size, qf_gguf **out, qf_error *err)
{
    *out = NULL;
    qf_rd r = {label, data, size, 0, err};
    uint64_t magic, version, nt, nkv;
    QF_TRY(qf_rd_u(&r, 4, &magic, "magic"));
    if (magic != 0x46554747u) return qf_fail(err, QF_ERR_FORMAT, "%s: not a GGUF file (no 'GGUF' magic)", label);
    QF_TRY(qf_rd_u(&r, 4, &version, "version"));
    if (version != 2 && version != 3)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: GGUF version %llu (2 and 3 are read)", label, (unsigned long long)version);
    QF_TRY(qf_rd_u(&r, 8, &nt, "tensor count"));
    QF_TRY(qf_rd_u(&r, 8, &nkv, "key count"));
    if (nkv > size / 13 || nt > size / 28)
        return qf_fail(err, QF_ERR_FORMAT, "%s: %llu keys and %llu tensors cannot fit %llu bytes", label,
                       (unsigned long long)nkv, (unsigned long long)nt, (unsigned long long)size);
    qf_gguf *g = calloc(1, sizeof *g);
    if (!g) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    g->label = strdup(label);
    g->data = data, g->size = size, g->version = (uint32_t)version;
    g->kv = json_object();
    g->kv_types = json_object();
    g->tensors = calloc(nt + 1, sizeof *g->tensors);
    qf_status s = g->label && g->tensors ? QF_OK : qf_fail(err, QF_ERR_NOMEM, "out of memory");
    char key[256];
    for (uint64_t i = 0; s == QF_OK && i < nkv; i++) {
        const char *k;
        uint64_t kl, type;
        s = qf_rd_str(&r, &k, &kl, "key");
        if (!s && (kl == 0 || kl >= sizeof key || memchr(k, 0, kl)))
            s = qf_fail(err, QF_ERR_FORMAT, "%s: key %llu at byte %llu: empty, NUL or longer than %zu bytes", label,
                        (unsigned long long)i, (unsigned long long)(r.pos - kl), sizeof key - 1);
        if (s) break;
        memcpy(key, k, kl);
        key[kl] = 0;
        if (json_object_get(g->kv, key)) {
            s = qf_fail(err, QF_ERR_FORMAT, "%s: key '%s' appears twice", label, key);
            break;
        }
        s = qf_rd_u(&r, 4, &type, key);
        json_int_t shown = (json_int_t)type;
        if (!s && type == QF_GGUF_ARRAY && r.size - r.pos >= 4) /* arrays: 100 + element type */
            shown = 100 + (json_int_t)(r.d[r.pos] | r.d[r.pos + 1] << 8 | r.d[r.pos + 2] << 16 | (uint32_t)r.d[r.pos + 3] << 24);
        json_t *v = NULL;
        if (!s) s = qf_rd_value(&r, (int)type, 0, key, &v);
        if (s) break;
        json_object_set_new(g->kv, key, v);
        json_object_set_new(g->kv_types, key, json_integer(shown));
    }
    /* alignment */
    g->alignment = QF_GGUF_DEFAULT_ALIGNMENT;
    json_t *al = json_object_get(g->kv, "general.alignment");
    if (s == QF_OK && al) {
        json_int_t a = json_is_integer(al) ? json_integer_value(al) : 0;
        if (a <= 0 || (a & (a - 1)) || a > (1 << 20))
            s = qf_fail(err, QF_ERR_FORMAT, "%s: general.alignment must be a power of two", label);
        else
            g->alignment = (uint64_t)a;
    }
    /* tensor infos */
    uint64_t expect = 0;
    for (uint64_t i = 0; s == QF_OK && i < nt; i++) {
        qf_gguf_tensor *t = &g->tensors[i];
        const char *nm;
        uint64_t nl = 0, nd = 0, type = 0, off = 0;
        s = qf_rd_str(&r, &nm, &nl, "tensor name");
        if (!s && (nl == 0 || nl > QF_GGUF_MAX_NAME || memchr(nm, 0, nl)))
            s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor %llu: name empty, with NUL or longer than %d bytes", label,
                        (unsigned long long)i, QF_GGUF_MAX_NAME);
        if (s) break;
        t->name = strndup(nm, (size_t)nl);
        g->n_tensors = (int)i + 1;
        s = qf_rd_u(&r, 4, &nd, t->name);
        if (!s && nd > QF_GGUF_MAX_DIMS)
            s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': %llu dims (at most %d)", label, t->name, (unsigned long long)nd,
                        QF_GGUF_MAX_DIMS);
        t->ndim = (int)nd;
        unsigned __int128 numel = 1;
        for (int d = 0; d < QF_GGUF_MAX_DIMS; d++) t->ne[d] = 1;
        for (uint64_t d = 0; !s && d < nd; d++) {
            uint64_t v = 0;
            s = qf_rd_u(&r, 8, &v, t->name);
            if (!s && (int64_t)v < 0) s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': ne[%llu] is negative", label, t->name,
                                                 (unsigned long long)d);
            t->ne[d] = (int64_t)v;
            numel *= v;
            if (!s && numel > ((unsigned __int128)1 << 62))
                s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': impossibly many elements", label, t->name);
        }
        if (!s) s = qf_rd_u(&r, 4, &type, t->name);
        if (!s) s = qf_rd_u(&r, 8, &off, t->name);
        if (s) break;
        t->type = (int)type;
        int bs = qf_ggml_block_size(t->type);
        if (!bs) {
            s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s': ggml type %llu is not one qforge knows", label, t->name,
                        (unsigned long long)type);
            break;
        }
        if (t->ne[0] % bs) {
            s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': ne[0] = %lld is not a multiple of %s's block of %d", label,
                        t->name, (long long)t->ne[0], qf_ggml_type_name(t->type), bs);
            break;
        }
        t->nbytes = qf_ggml_row_bytes(t->type, t->ne[0]) * (uint64_t)(numel / (uint64_t)(t->ne[0] ? t->ne[0] : 1));
        if (t->ne[0] == 0) t->nbytes = 0;
        if (off != expect) {
            s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': offset %llu, expected %llu (tensors are contiguous in info "
                        "order, each padded to %llu)",
                        label, t->name, (unsigned long long)off, (unsigned long long)expect, (unsigned long long)g->alignment);
            break;
        }
        t->offset = off;
        expect = qf_pad(off + t->nbytes, g->alignment);
        for (uint64_t k = 0; k < i && !s; k++)
            if (strcmp(g->tensors[k].name, t->name) == 0) s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' appears twice", label, t->name);
    }
    if (s == QF_OK) {
        g->data_offset = qf_pad(r.pos, g->alignment);
        for (int i = 0; i < g->n_tensors && s == QF_OK; i++) {
            qf_gguf_tensor *t = &g->tensors[i];
            if (g->data_offset > size || t->offset > size - g->data_offset || t->nbytes > size - g->data_offset - t->offset)
                s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' (%llu bytes at %llu) runs past the end of the %llu-byte file",
                            label, t->name, (unsigned long long)t->nbytes,
                            (unsigned long long)(g->data_offset + t->offset), (unsigned long long)size);
            t->offset += g->data_offset;
            t->data = t->nbytes ? data + t->offset : NULL;
        }
        /* counts vs offsets: the tensors must account for the data section (up to the last one's
         * padding), so a lowered tensor count cannot hide tensors or shift the reading of others */
        if (s == QF_OK && g->data_offset <= size && size - g->data_offset > expect)
            s = qf_fail(err, QF_ERR_FORMAT, "%s: %llu bytes after the last of its %llu tensors (the tensor count does not "
                        "match the data)", label, (unsigned long long)(size - g->data_offset - expect), (unsigned long long)nt);
    }
    if (s != QF_OK) {
        qf_gguf_free(g);
        return s;
    }
    *out = g;
    return QF_OK;
}

qf_status qf_gguf_open(const char *path, qf_gguf **out, qf_error *err)
{
    *out = NULL;
    qf_mapped_file f;
    QF_TRY(qf_file_map(path, &f, err));
    qf_status s = qf_gguf_parse(path, f.data, f.size, out, err);
    if (s) {
        qf_file_unmap(&f);
        return s;
    }
    (*out)->map = f;
    return QF_OK;
}

int qf_gguf_find(const qf_gguf *g, const char *name)
{
    for (int i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return i;
    return -1;
}

int qf_gguf_get_int(const qf_gguf *g, const char *key, int64_t *v)
{
    json_t *x = json_object_get(g->kv, key);
    if (!json_is_integer(x)) return -1;
    *v = json_integer_value(x);
    return 0;
}

int qf_gguf_get_float(const qf_gguf *g, const char *key, double *v)
{
    json_t *x = json_object_get(g->kv, key);
    if (!json_is_number(x)) return -1;
    *v = json_number_value(x);
    return 0;
}

const char *qf_gguf_get_str(const qf_gguf *g, const char *key)
{
    json_t *x = json_object_get(g->kv, key);
    return json_is_string(x) ? json_string_value(x) : NULL;
}

static qf_dtype qf_ggml_to_dtype(int type)
{
    switch (type) {
    case QF_GGML_F32: return QF_DTYPE_F32;
    case QF_GGML_F16: return QF_DTYPE_F16;
    case QF_GGML_BF16: return QF_DTYPE_BF16;
    case QF_GGML_F64: return QF_DTYPE_F64;
    case QF_GGML_I8: return QF_DTYPE_I8;
    case QF_GGML_I16: return QF_DTYPE_I16;
    case QF_GGML_I32: return QF_DTYPE_I32;
    case QF_GGML_I64: return QF_DTYPE_I64;
    default: return QF_DTYPE_INVALID;
    }
}

qf_status qf_gguf_parse_tensors(const char *label, const uint8_t *data, uint64_t size, qf_tensor **tensors, int *n,
                                qf_error *err)
{
    *tensors = NULL, *n = 0;
    qf_gguf *g;
    QF_TRY(qf_gguf_parse(label, data, size, &g, err));
    qf_tensor *t = calloc((size_t)g->n_tensors + 1, sizeof *t);
    if (!t) {
        qf_gguf_free(g);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < g->n_tensors; i++) {
        const qf_gguf_tensor *gt = &g->tensors[i];
        t[i].name = strdup(gt->name);
        t[i].dtype = qf_ggml_to_dtype(gt->type);
        t[i].ndim = gt->ndim;
        for (int d = 0; d < gt->ndim; d++) t[i].shape[d] = gt->ne[gt->ndim - 1 - d];
        t[i].nbytes = gt->nbytes;
        t[i].data = gt->data;
        t[i].offset = gt->offset;
    }
    *tensors = t;
    *n = g->n_tensors;
    qf_gguf_free(g);
    return QF_OK;
}

qf_status qf_gguf_dequant_tensor(const qf_gguf *g, int i, float *out, qf_error *err)
{
    const qf_gguf_tensor *t = &g->tensors[i];
    if (!qf_ggml_type_support(t->type))
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s': qforge does not decode ggml type %s", g->label, t->name,
                       qf_ggml_type_name(t->type));
    int64_t ne0 = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
    if (!ne0 || !rows) return QF_OK;
    uint64_t rb = qf_ggml_row_bytes(t->type, ne0);
#pragma omp parallel for schedule(static) if (rows * ne0 >= (1 << 16))
    for (int64_t r = 0; r < rows; r++) qf_ggml_dequantize_row(t->type, t->data + (uint64_t)r * rb, ne0, out + r * ne0);
    return QF_OK;
}
