/* act_store.c - calibration activations in RAM or in a file (see qf_act_store.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_act_store.h"

struct qf_act_store {
    const char *what;   /* borrowed: a string literal naming the contents */
    int64_t rows, width;
    float *mem;         /* RAM: (rows, width), owned; NULL when spilled */
    int fd;             /* spilled: the open file, else -1 */
    char *path;         /* spilled: owned copy, removed by close */
};

qf_status qf_act_store_open(qf_act_store **out, const char *what, int64_t rows, int64_t width, const char *spill_path,
                            qf_error *err)
{
    *out = NULL;
    qf_act_store *s = calloc(1, sizeof *s);
    if (!s) return qf_fail(err, QF_ERR_NOMEM, "out of memory for the %s", what);
    s->what = what, s->rows = rows, s->width = width, s->fd = -1;
    const uint64_t bytes = qf_act_store_bytes(s);
    if (!spill_path) {
        s->mem = aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
        if (!s->mem) {
            free(s);
            return qf_fail(err, QF_ERR_NOMEM, "out of memory for the %s (%.0f MB)", what, bytes / 1e6);
        }
        *out = s;
        return QF_OK;
    }
    s->path = strdup(spill_path);
    s->fd = s->path ? open(spill_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
    if (s->fd < 0) {
        qf_status st = qf_fail(err, QF_ERR_IO, "%s: cannot create the file for the %s: %s", spill_path, what,
                               strerror(errno));
        free(s->path);
        free(s);
        return st;
    }
    /* reserve the blocks now, so a full disk fails here and not in the middle of a layer;
     * a filesystem without fallocate gets a sparse file instead */
    int rc = bytes ? posix_fallocate(s->fd, 0, (off_t)bytes) : 0;
    if (rc == EOPNOTSUPP || rc == EINVAL) rc = ftruncate(s->fd, (off_t)bytes) == 0 ? 0 : errno;
    if (rc) {
        qf_status st = qf_fail(err, QF_ERR_IO, "%s: cannot reserve %.0f MB for the %s: %s", spill_path, bytes / 1e6,
                               what, strerror(rc));
        qf_act_store_close(s);
        return st;
    }
    *out = s;
    return QF_OK;
}

void qf_act_store_close(qf_act_store *s)
{
    if (!s) return;
    free(s->mem);
    if (s->fd >= 0) {
        close(s->fd);
        unlink(s->path);
    }
    free(s->path);
    free(s);
}

int qf_act_store_spilled(const qf_act_store *s) { return s->fd >= 0; }

uint64_t qf_act_store_bytes(const qf_act_store *s) { return (uint64_t)s->rows * (uint64_t)s->width * sizeof(float); }

qf_status qf_act_store_load(qf_act_store *s, int64_t r0, int64_t n, float *buf, float **rows, qf_error *err)
{
    if (s->mem) {
        *rows = s->mem + r0 * s->width;
        return QF_OK;
    }
    *rows = buf;
    uint8_t *p = (uint8_t *)buf;
    uint64_t left = (uint64_t)n * (uint64_t)s->width * sizeof(float);
    off_t off = (off_t)r0 * s->width * (off_t)sizeof(float);
    while (left) {
        ssize_t k = pread(s->fd, p, left, off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return qf_fail(err, QF_ERR_IO, "%s: cannot read the %s back (rows %lld..%lld): %s", s->path, s->what,
                           (long long)r0, (long long)(r0 + n - 1), k < 0 ? strerror(errno) : "file too short");
        p += k, left -= (uint64_t)k, off += k;
    }
    return QF_OK;
}

float *qf_act_store_slot(qf_act_store *s, int64_t r0, float *buf) { return s->mem ? s->mem + r0 * s->width : buf; }

qf_status qf_act_store_save(qf_act_store *s, int64_t r0, int64_t n, const float *rows, qf_error *err)
{
    const uint64_t bytes = (uint64_t)n * (uint64_t)s->width * sizeof(float);
    if (s->mem) {
        float *dst = s->mem + r0 * s->width;
        if (dst != rows) memcpy(dst, rows, bytes);
        return QF_OK;
    }
    const uint8_t *p = (const uint8_t *)rows;
    uint64_t left = bytes;
    off_t off = (off_t)r0 * s->width * (off_t)sizeof(float);
    while (left) {
        ssize_t k = pwrite(s->fd, p, left, off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return qf_fail(err, QF_ERR_IO, "%s: cannot write the %s (rows %lld..%lld): %s", s->path, s->what,
                           (long long)r0, (long long)(r0 + n - 1), k < 0 ? strerror(errno) : "nothing written");
        p += k, left -= (uint64_t)k, off += k;
    }
    return QF_OK;
}
