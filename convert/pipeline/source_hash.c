/* source_hash.c - background hashing of the input shards (see source_hash.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "qf_fs.h"
#include "source_hash.h"

struct qf_source_hasher {
    pthread_t thread;
    const qf_checkpoint *ck;
    qf_hash128 *hashes;
    qf_status status;
    qf_error err;
};

/* Each shard is hashed through its own mapping, not read(): reading would copy every input
 * byte once more (16 GB for an 8B model, seconds of a core).  The hasher runs ahead of the
 * quantizer in file order, so it is also what keeps the disk busy on a cold cache: it asks
 * for the next window of pages before it needs them (MADV_WILLNEED starts the reads), and
 * drops the pages it has hashed from this process (they stay in the page cache for the
 * quantizer), so its resident memory stays at a window. */
static void *qf_source_hash_main(void *arg)
{
    qf_source_hasher *h = arg;
    const uint64_t step = 16u << 20, ahead = 64u << 20; /* multiples of the page size */
    qf_hash_ctx *st = qf_hash_new();
    if (!st) h->status = qf_fail(&h->err, QF_ERR_NOMEM, "out of memory hashing the source");
    for (int i = 0; i < h->ck->n_files && h->status == QF_OK; i++) {
        qf_mapped_file mf;
        if (qf_file_map(h->ck->files[i].path, &mf, &h->err) != QF_OK) {
            h->status = h->err.code;
            break;
        }
        qf_hash_reset(st);
        if (mf.data) {
            madvise((void *)mf.data, mf.size, MADV_SEQUENTIAL);
            madvise((void *)mf.data, mf.size < ahead ? mf.size : ahead, MADV_WILLNEED);
        }
        for (uint64_t off = 0; off < mf.size; off += step) {
            uint64_t k = mf.size - off < step ? mf.size - off : step;
            if (off + ahead < mf.size) {
                uint64_t w = mf.size - (off + ahead) < step ? mf.size - (off + ahead) : step;
                madvise((void *)(mf.data + off + ahead), w, MADV_WILLNEED);
            }
            qf_hash_update(st, mf.data + off, (size_t)k);
            qf_file_release(&mf, off, k);
        }
        h->hashes[i] = qf_hash_digest(st);
        qf_file_unmap(&mf);
    }
    qf_hash_free(st);
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
