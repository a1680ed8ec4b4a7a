/* safetensors_write.c - streaming safetensors writer with XXH3-128 and SHA-256 on the fly (see qf_st_writer.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "qf_fs.h"
#include "qf_st_writer.h"

#define QF_WBUF (8u << 20)

struct qf_st_writer {
    char *path;
    int fd;
    int n, cur;
    uint64_t *sizes, cur_done, total;
    qf_hash_ctx *file_state, *tensor_state;
    qf_sha256_ctx *file_sha; /* beside XXH3: the digest hubs and signatures name, at no extra read */
    qf_hash128 *tensor_hashes;
    uint8_t *buf;
    size_t buf_len;
};

uint64_t qf_st_entry_bytes(const qf_st_entry *e)
{
    uint64_t numel = 1;
    for (int d = 0; d < e->ndim; d++) numel *= (uint64_t)e->shape[d];
    return numel * (uint64_t)qf_dtype_bits(e->dtype) / 8;
}

static char *qf_st_header(const qf_st_entry *e, int n, size_t *len)
{
    json_t *root = json_object();
    json_object_set_new(root, "__metadata__", json_pack("{s:s}", "format", "pt"));
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; d < e[i].ndim; d++) json_array_append_new(shape, json_integer(e[i].shape[d]));
        uint64_t b = qf_st_entry_bytes(&e[i]);
        json_object_set_new(root, e[i].name,
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", qf_dtype_name(e[i].dtype), "shape", shape,
                                      "data_offsets", (json_int_t)off, (json_int_t)(off + b)));
        off += b;
    }
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!s) return NULL;
    size_t l = strlen(s), padded = (l + 7) / 8 * 8;
    char *h = malloc(8 + padded);
    if (!h) {
        free(s);
        return NULL;
    }
    for (int k = 0; k < 8; k++) h[k] = (char)((uint64_t)padded >> (8 * k));
    memcpy(h + 8, s, l);
    memset(h + 8 + l, ' ', padded - l);
    free(s);
    *len = 8 + padded;
    return h;
}

uint64_t qf_st_file_bytes(const qf_st_entry *e, int n)
{
    size_t hl = 0;
    char *h = qf_st_header(e, n, &hl);
    free(h);
    uint64_t t = hl;
    for (int i = 0; i < n; i++) t += qf_st_entry_bytes(&e[i]);
    return t;
}

/* Every byte reaches the file through here, in order, so the SHA-256 is taken here: beside
 * the write rather than before it (SHA-256 runs at ~2 GB/s a core, and on a model whose bytes
 * mostly pass through unquantized the writer thread is the bottleneck). */
static qf_status qf_st_flush(qf_st_writer *w, qf_error *err)
{
    qf_status s = QF_OK;
    if (w->buf_len >= (1u << 20)) {
#pragma omp parallel sections num_threads(2)
        {
#pragma omp section
            s = qf_write_all(w->fd, w->buf, w->buf_len, w->path, err);
#pragma omp section
            qf_sha256_update(w->file_sha, w->buf, w->buf_len);
        }
    } else {
        qf_sha256_update(w->file_sha, w->buf, w->buf_len);
        s = qf_write_all(w->fd, w->buf, w->buf_len, w->path, err);
    }
    w->buf_len = 0;
    return s;
}

static qf_status qf_st_put(qf_st_writer *w, const void *data, uint64_t n, qf_error *err)
{
    const uint8_t *p = data;
    qf_hash_update(w->file_state, p, (size_t)n);
    if (n >= QF_WBUF) { /* large piece: write it in place rather than copying it through the buffer */
        QF_TRY(qf_st_flush(w, err));
        size_t saved = w->buf_len;
        uint8_t *saved_buf = w->buf;
        w->buf = (uint8_t *)p;
        w->buf_len = (size_t)n;
        qf_status s = qf_st_flush(w, err);
        w->buf = saved_buf;
        w->buf_len = saved;
        return s;
    }
    while (n) {
        size_t room = QF_WBUF - w->buf_len, k = n < room ? (size_t)n : room;
        memcpy(w->buf + w->buf_len, p, k);
        w->buf_len += k;
        p += k;
        n -= k;
        if (w->buf_len == QF_WBUF) QF_TRY(qf_st_flush(w, err));
    }
    return QF_OK;
}

qf_status qf_st_writer_trim(qf_st_writer *w, qf_error *err)
{
    if (w->buf_len) QF_TRY(qf_st_flush(w, err));
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)w->buf;
    const uintptr_t lo = (a + page - 1) / page * page, hi = (a + QF_WBUF) / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
    return QF_OK;
}

static void qf_st_free(qf_st_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    qf_hash_free(w->file_state);
    qf_hash_free(w->tensor_state);
    qf_sha256_free(w->file_sha);
    free(w->sizes);
    free(w->tensor_hashes);
    free(w->buf);
    free(w->path);
    free(w);
}

void qf_st_writer_abort(qf_st_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    w->fd = -1;
    unlink(w->path);
    qf_st_free(w);
}

qf_status qf_st_writer_open(const char *path, const qf_st_entry *entries, int n, qf_st_writer **out, qf_error *err)
{
    *out = NULL;
    qf_st_writer *w = calloc(1, sizeof *w);
    if (!w) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    w->fd = -1;
    w->path = strdup(path);
    w->n = n;
    w->sizes = calloc((size_t)n + 1, sizeof(uint64_t));
    w->tensor_hashes = calloc((size_t)n + 1, sizeof(qf_hash128));
    w->buf = malloc(QF_WBUF);
    w->file_state = qf_hash_new();
    w->tensor_state = qf_hash_new();
    w->file_sha = qf_sha256_new();
    size_t hl = 0;
    char *header = qf_st_header(entries, n, &hl);
    if (!w->sizes || !w->tensor_hashes || !w->buf || !w->file_state || !w->tensor_state || !w->file_sha || !header) {
        free(header);
        qf_st_free(w);
        return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int i = 0; i < n; i++) w->sizes[i] = qf_st_entry_bytes(&entries[i]);
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        free(header);
        qf_status s = qf_fail(err, QF_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        qf_st_free(w);
        return s;
    }
    qf_hash_reset(w->file_state);
    qf_hash_reset(w->tensor_state);
    qf_status s = qf_st_put(w, header, hl, err);
    free(header);
    if (s) {
        qf_st_writer_abort(w);
        return s;
    }
    /* zero-byte entries complete immediately */
    while (w->cur < w->n && w->sizes[w->cur] == 0) {
        w->tensor_hashes[w->cur++] = qf_hash_digest(w->tensor_state);
        qf_hash_reset(w->tensor_state);
    }
    *out = w;
    return QF_OK;
}

qf_status qf_st_writer_write(qf_st_writer *w, int i, const void *data, uint64_t nbytes, qf_error *err)
{
    /* A zero-element tensor (legal) completed when the writer reached it: its empty write is a no-op. */
    if (nbytes == 0 && i >= 0 && i < w->n && i <= w->cur && w->sizes[i] == 0) return QF_OK;
    if (i != w->cur || w->cur_done + nbytes > w->sizes[i])
        return qf_fail(err, QF_ERR_USAGE, "%s: tensor %d written out of order or past its size", w->path, i);
    QF_TRY(qf_st_put(w, data, nbytes, err));
    qf_hash_update(w->tensor_state, data, (size_t)nbytes);
    w->cur_done += nbytes;
    while (w->cur < w->n && w->cur_done == w->sizes[w->cur]) {
        w->tensor_hashes[w->cur++] = qf_hash_digest(w->tensor_state);
        qf_hash_reset(w->tensor_state);
        w->cur_done = 0;
    }
    return QF_OK;
}

qf_status qf_st_writer_close(qf_st_writer *w, uint64_t *file_size, qf_hash128 *file_hash, qf_sha256 *file_sha256,
                             qf_hash128 *tensor_hashes, qf_error *err)
{
    qf_status s = QF_OK;
    if (w->cur != w->n) s = qf_fail(err, QF_ERR_USAGE, "%s: closed before all tensors were written", w->path);
    if (!s) s = qf_st_flush(w, err);
    if (!s && fsync(w->fd) != 0) s = qf_fail(err, QF_ERR_IO, "%s: fsync failed: %s", w->path, strerror(errno));
    if (!s) {
        off_t end = lseek(w->fd, 0, SEEK_CUR);
        if (file_size) *file_size = (uint64_t)end;
        if (close(w->fd) != 0) s = qf_fail(err, QF_ERR_IO, "%s: close failed: %s", w->path, strerror(errno));
        w->fd = -1;
    }
    if (s) {
        qf_st_writer_abort(w);
        return s;
    }
    if (file_hash) *file_hash = qf_hash_digest(w->file_state);
    if (file_sha256) *file_sha256 = qf_sha256_final(w->file_sha); /* final frees the context */
    else qf_sha256_free(w->file_sha);
    w->file_sha = NULL;
    if (tensor_hashes) memcpy(tensor_hashes, w->tensor_hashes, sizeof(qf_hash128) * (size_t)w->n);
    qf_st_free(w);
    return QF_OK;
}
