/* qf_torch_fixture.h - internal to tests/: byte emitters for pickles and torch.save zips.
 *
 * Owns the hand-built inputs of the .bin reader tests and the fuzz replay: a growable byte
 * buffer, pickle opcodes written one by one (so a test can say exactly which bytes are
 * hostile), a state_dict emitter shaped like torch.save's (PROTO 2, OrderedDict, REDUCE,
 * MARK ... SETITEMS, _rebuild_tensor_v2 + BINPERSID), and a zip writer that lays entries out
 * as PyTorch's writer does (stored, data 64-byte aligned by an 'FB' extra field) or not.
 * Header-inline, no global state; buffers are freed with tf_free.
 */
#ifndef QF_TORCH_FIXTURE_H
#define QF_TORCH_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tf_buf {
    uint8_t *b;
    size_t n, cap;
} tf_buf;

static inline void tf_put(tf_buf *t, const void *p, size_t n)
{
    if (t->n + n > t->cap) {
        size_t c = t->cap ? t->cap : 256;
        while (c < t->n + n) c *= 2;
        t->b = realloc(t->b, c);
        t->cap = c;
    }
    if (n) memcpy(t->b + t->n, p, n);
    t->n += n;
}
static inline void tf_free(tf_buf *t)
{
    free(t->b);
    memset(t, 0, sizeof *t);
}
static inline void tf_le(tf_buf *t, uint64_t v, int n)
{
    uint8_t b[8];
    for (int k = 0; k < n; k++) b[k] = (uint8_t)(v >> (8 * k));
    tf_put(t, b, (size_t)n);
}
static inline void tf_op(tf_buf *t, uint8_t op) { tf_put(t, &op, 1); }

/* ---- pickle ---------------------------------------------------------------------------- */
static inline void tf_global(tf_buf *t, const char *mod, const char *name)
{
    tf_op(t, 'c');
    tf_put(t, mod, strlen(mod));
    tf_op(t, '\n');
    tf_put(t, name, strlen(name));
    tf_op(t, '\n');
}
static inline void tf_str(tf_buf *t, const char *s) /* BINUNICODE */
{
    tf_op(t, 'X');
    tf_le(t, strlen(s), 4);
    tf_put(t, s, strlen(s));
}
static inline void tf_int(tf_buf *t, int64_t v) /* as pickle chooses: BININT1 / BININT2 / BININT / LONG1 */
{
    if (v >= 0 && v < 256) tf_op(t, 'K'), tf_le(t, (uint64_t)v, 1);
    else if (v >= 0 && v < 65536) tf_op(t, 'M'), tf_le(t, (uint64_t)v, 2);
    else if (v >= INT32_MIN && v <= INT32_MAX) tf_op(t, 'J'), tf_le(t, (uint64_t)(uint32_t)(int32_t)v, 4);
    else tf_op(t, 0x8a), tf_le(t, 8, 1), tf_le(t, (uint64_t)v, 8);
}
static inline void tf_int_tuple(tf_buf *t, int n, const int64_t *v)
{
    tf_op(t, '(');
    for (int k = 0; k < n; k++) tf_int(t, v[k]);
    tf_op(t, 't');
}
/* One "name: tensor" pair as torch.save writes it: _rebuild_tensor_v2 over a typed storage
 * (storage_type "FloatStorage" ...) or, with dtype != NULL, _rebuild_tensor_v3 over an
 * UntypedStorage whose numel counts bytes. */
static inline void tf_tensor(tf_buf *t, const char *name, const char *storage_type, const char *dtype, const char *key,
                             int64_t numel, int64_t offset, int nd, const int64_t *shape, const int64_t *stride)
{
    tf_str(t, name);
    tf_global(t, "torch._utils", dtype ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2");
    tf_op(t, '(');
    tf_op(t, '(');
    tf_str(t, "storage");
    tf_global(t, "torch", dtype ? "UntypedStorage" : storage_type);
    tf_str(t, key);
    tf_str(t, "cpu");
    tf_int(t, numel);
    tf_op(t, 't');
    tf_op(t, 'Q');
    tf_int(t, offset);
    tf_int_tuple(t, nd, shape);
    tf_int_tuple(t, nd, stride);
    tf_op(t, 0x89);
    tf_global(t, "collections", "OrderedDict");
    tf_op(t, ')');
    tf_op(t, 'R');
    if (dtype) tf_global(t, "torch", dtype);
    tf_op(t, 't');
    tf_op(t, 'R');
}
static inline void tf_sd_begin(tf_buf *t)
{
    tf_op(t, 0x80), tf_op(t, 2);
    tf_global(t, "collections", "OrderedDict");
    tf_op(t, ')');
    tf_op(t, 'R');
    tf_op(t, '(');
}
static inline void tf_sd_end(tf_buf *t)
{
    tf_op(t, 'u');
    tf_op(t, '}'); /* _metadata state, applied by BUILD */
    tf_op(t, 'b');
    tf_op(t, '.');
}

/* ---- zip ------------------------------------------------------------------------------- */
static inline uint32_t tf_crc32(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= b[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
    }
    return ~c;
}

typedef struct tf_entry {
    const char *name;
    const void *data;
    size_t n;
} tf_entry;

/* A stored zip of entries; align64 pads each local header's extra field ('FB' record) so
 * that data starts at a multiple of 64, as torch's writer does. */
static inline tf_buf tf_zip(const tf_entry *e, int n, int align64)
{
    tf_buf z = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        size_t lho = z.n, nl = strlen(e[i].name), pad = 0;
        if (align64) pad = (64 - (lho + 30 + nl + 4) % 64) % 64;
        uint32_t crc = tf_crc32(e[i].data, e[i].n);
        tf_le(&z, 0x04034b50, 4), tf_le(&z, 20, 2), tf_le(&z, 0, 2), tf_le(&z, 0, 2), tf_le(&z, 0, 2);
        tf_le(&z, 0x21, 2), tf_le(&z, crc, 4), tf_le(&z, e[i].n, 4), tf_le(&z, e[i].n, 4);
        tf_le(&z, nl, 2), tf_le(&z, align64 ? pad + 4 : 0, 2);
        tf_put(&z, e[i].name, nl);
        if (align64) {
            tf_put(&z, "FB", 2), tf_le(&z, pad, 2);
            for (size_t k = 0; k < pad; k++) tf_op(&z, 'Z');
        }
        tf_put(&z, e[i].data, e[i].n);
        tf_le(&cd, 0x02014b50, 4), tf_le(&cd, 20, 2), tf_le(&cd, 20, 2), tf_le(&cd, 0, 2), tf_le(&cd, 0, 2);
        tf_le(&cd, 0, 2), tf_le(&cd, 0x21, 2), tf_le(&cd, crc, 4), tf_le(&cd, e[i].n, 4), tf_le(&cd, e[i].n, 4);
        tf_le(&cd, nl, 2), tf_le(&cd, 0, 2), tf_le(&cd, 0, 2), tf_le(&cd, 0, 2), tf_le(&cd, 0, 2), tf_le(&cd, 0, 4);
        tf_le(&cd, lho, 4);
        tf_put(&cd, e[i].name, nl);
    }
    size_t cd_off = z.n;
    tf_put(&z, cd.b, cd.n);
    tf_le(&z, 0x06054b50, 4), tf_le(&z, 0, 2), tf_le(&z, 0, 2), tf_le(&z, (uint64_t)n, 2), tf_le(&z, (uint64_t)n, 2);
    tf_le(&z, cd.n, 4), tf_le(&z, cd_off, 4), tf_le(&z, 0, 2);
    tf_free(&cd);
    return z;
}

/* A torch.save-like archive "archive/" of one pickle and storages data/0..n-1. */
static inline tf_buf tf_torch_zip(const tf_buf *pkl, const char *byteorder, int n_storages, const void *const *storage,
                                  const size_t *storage_len, int align64)
{
    tf_entry e[16];
    char names[16][32];
    int k = 0;
    e[k++] = (tf_entry){"archive/data.pkl", pkl->b, pkl->n};
    if (byteorder) e[k++] = (tf_entry){"archive/byteorder", byteorder, strlen(byteorder)};
    for (int i = 0; i < n_storages && k < 15; i++) {
        snprintf(names[i], sizeof names[i], "archive/data/%d", i);
        e[k++] = (tf_entry){names[i], storage[i], storage_len[i]};
    }
    e[k++] = (tf_entry){"archive/version", "3\n", 2};
    return tf_zip(e, k, align64);
}

#endif /* QF_TORCH_FIXTURE_H */
