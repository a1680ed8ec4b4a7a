/* source_hash.c - background hashing of the input shards (see source_hash.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_fs.h"
#include "source_hash.h"

struct qf_source_hasher {
    pthread_t thread;
    const qf_checkpoint *ck;
    qf_hash128 *hashes;
    qf_status status;
    qf_error err;
};

static void *qf_source_hash_main(void *arg)
{
    qf_source_hasher *h = arg;
    const size_t chunk = 16u << 20;
    uint8_t *buf = malloc(chunk);
    XXH3_state_t *st = XXH3_createState();
    if (!buf || !st) h->status = qf_fail(&h->err, QF_ERR_NOMEM, "out of memory hashing the source");
    for (int i = 0; i < h->ck->n_files && h->status == QF_OK; i++) {
        const char *path = h->ck->files[i].path;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            h->status = qf_fail(&h->err, QF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
            break;
        }
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        XXH3_128bits_reset(st);
        for (;;) {
            ssize_t r = read(fd, buf, chunk);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                h->status = qf_fail(&h->err, QF_ERR_IO, "%s: read error: %s", path, strerror(errno));
                break;
            }
            if (r == 0) break;
            XXH3_128bits_update(st, buf, (size_t)r);
        }
        close(fd);
        h->hashes[i] = qf_hash_digest(st);
    }
    XXH3_freeState(st);
    free(buf);
    return NULL;
}

qf_status qf_source_hash_start(const qf_checkpoint *ck, qf_source_hasher **out, qf_error *err)
{
    qf_source_hasher *h = calloc(1, sizeof *h);
    if (!h) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    h->ck = ck;
    h->hashes = calloc((size_t)ck->n_files + 1, sizeof(qf_hash128));
    if (!h->hashes || pthread_create(&h->thread, NULL, qf_source_hash_main, h) != 0) {
        free(h->hashes);
        free(h);
        return qf_fail(err, QF_ERR_GENERIC, "cannot start the source hashing thread");
    }
    *out = h;
    return QF_OK;
}

qf_status qf_source_hash_finish(qf_source_hasher *h, qf_hash128 *hashes, qf_error *err)
{
    pthread_join(h->thread, NULL);
    qf_status s = h->status;
    if (s == QF_OK) memcpy(hashes, h->hashes, sizeof(qf_hash128) * (size_t)h->ck->n_files);
    else if (err) *err = h->err;
    free(h->hashes);
    free(h);
    return s;
}

json_t *qf_source_files_json(const qf_checkpoint *ck, const qf_hash128 *hashes)
{
    json_t *files = json_array();
    for (int i = 0; i < ck->n_files; i++) {
        char hex[QF_HASH_HEX_LEN + 1];
        qf_hash_hex(hashes[i], hex);
        json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", qf_path_base(ck->files[i].path), "size",
                                               (json_int_t)ck->files[i].size, "xxh3_128", hex));
    }
    return files;
}
