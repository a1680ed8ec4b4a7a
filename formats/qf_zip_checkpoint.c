/* qf_zip_checkpoint.c - torch.save zip archives into the tensor table (see qf_zip_checkpoint.h). */
#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "qf_pickle.h"
#include "qf_shard_index.h"
#include "qf_zip_checkpoint.h"

#define QF_ZIP_MAX_PICKLE (1ull << 30)  /* data.pkl larger than this is not a state_dict */
#define QF_ZIP_MAX_RATIO 1032ull        /* deflate cannot expand by more than this */

typedef struct qf_zip_entry {
    const char *name;      /* inside the image, not NUL-terminated */
    uint32_t name_len;
    uint16_t method;       /* 0 stored, 8 deflated */
    uint16_t flags;
    uint64_t csize, usize;
    uint64_t data_off;     /* absolute offset of the entry's data in the image */
    uint32_t index;        /* central directory position (= libzip index) */
} qf_zip_entry;

typedef struct qf_zip {
    const char *label;
    const uint8_t *data;
    uint64_t size;
    uint32_t n;
    qf_zip_entry *e;       /* sorted by name after parsing */
    zip_t *za;             /* libzip view of the same image, for inflating */
} qf_zip;

static uint64_t rd(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int k = n - 1; k >= 0; k--) v = v << 8 | p[k];
    return v;
}

/* ---- central directory ------------------------------------------------------------------ */

static qf_status qf_zip_parse_cd(qf_zip *z, qf_error *err)
{
    const uint8_t *d = z->data;
    uint64_t size = z->size;
    if (size < 22) return qf_fail(err, QF_ERR_FORMAT, "%s: %llu bytes is too short for a zip archive", z->label,
                                  (unsigned long long)size);
    uint64_t eocd = UINT64_MAX, stop = size > 22 + 65535 ? size - 22 - 65535 : 0;
    for (uint64_t p = size - 22 + 1; p-- > stop;)
        if (rd(d + p, 4) == 0x06054b50 && p + 22 + rd(d + p + 20, 2) == size) {
            eocd = p;
            break;
        }
    if (eocd == UINT64_MAX) return qf_fail(err, QF_ERR_FORMAT, "%s: no zip end-of-central-directory record", z->label);
    uint64_t n = rd(d + eocd + 10, 2), cd_size = rd(d + eocd + 12, 4), cd_off = rd(d + eocd + 16, 4);
    uint64_t cd_end_limit = eocd;
    if (n == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) { /* ZIP64 */
        if (eocd < 20 || rd(d + eocd - 20, 4) != 0x07064b50)
            return qf_fail(err, QF_ERR_FORMAT, "%s: ZIP64 fields without a ZIP64 locator", z->label);
        uint64_t z64 = rd(d + eocd - 20 + 8, 8);
        if (z64 > eocd - 20 || eocd - 20 - z64 < 56 || rd(d + z64, 4) != 0x06064b50)
            return qf_fail(err, QF_ERR_FORMAT, "%s: ZIP64 end-of-central-directory record is out of place", z->label);
        n = rd(d + z64 + 32, 8), cd_size = rd(d + z64 + 40, 8), cd_off = rd(d + z64 + 48, 8);
        cd_end_limit = z64;
    }
    if (cd_off > cd_end_limit || cd_size > cd_end_limit - cd_off)
        return qf_fail(err, QF_ERR_FORMAT, "%s: central directory (%llu bytes at %llu) lies outside the file", z->label,
                       (unsigned long long)cd_size, (unsigned long long)cd_off);
    if (n > cd_size / 46) return qf_fail(err, QF_ERR_FORMAT, "%s: %llu entries cannot fit a %llu-byte central directory",
                                         z->label, (unsigned long long)n, (unsigned long long)cd_size);
    z->e = calloc(n + 1, sizeof *z->e);
    if (!z->e) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", z->label);
    uint64_t p = cd_off, end = cd_off + cd_size;
    for (uint64_t i = 0; i < n; i++) {
        if (end - p < 46 || rd(d + p, 4) != 0x02014b50)
            return qf_fail(err, QF_ERR_FORMAT, "%s: central directory entry %llu is malformed", z->label, (unsigned long long)i);
        qf_zip_entry *e = &z->e[i];
        uint64_t nl = rd(d + p + 28, 2), el = rd(d + p + 30, 2), cl = rd(d + p + 32, 2);
        if (end - p - 46 < nl + el + cl)
            return qf_fail(err, QF_ERR_FORMAT, "%s: central directory entry %llu runs past the directory", z->label,
                           (unsigned long long)i);
        e->flags = (uint16_t)rd(d + p + 8, 2);
        e->method = (uint16_t)rd(d + p + 10, 2);
        e->csize = rd(d + p + 20, 4);
        e->usize = rd(d + p + 24, 4);
        uint64_t lho = rd(d + p + 42, 4);
        e->name = (const char *)d + p + 46;
        e->name_len = (uint32_t)nl;
        e->index = (uint32_t)i;
        /* ZIP64 extra field: the 0xffffffff fields, in the order usize, csize, offset */
        const uint8_t *x = d + p + 46 + nl, *xe = x + el;
        while (xe - x >= 4) {
            uint64_t id = rd(x, 2), len = rd(x + 2, 2);
            if ((uint64_t)(xe - x - 4) < len) break;
            if (id == 1) {
                const uint8_t *f = x + 4, *fe = x + 4 + len;
                if (e->usize == 0xffffffff && fe - f >= 8) e->usize = rd(f, 8), f += 8;
                if (e->csize == 0xffffffff && fe - f >= 8) e->csize = rd(f, 8), f += 8;
                if (lho == 0xffffffff && fe - f >= 8) lho = rd(f, 8), f += 8;
            }
            x += 4 + len;
        }
        char nm[80];
        snprintf(nm, sizeof nm, "%.*s", (int)(nl < 60 ? nl : 60), e->name);
        if (e->flags & 1) return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: entry '%s' is encrypted", z->label, nm);
        /* the local header decides where the data really starts */
        if (lho > size || size - lho < 30 || rd(d + lho, 4) != 0x04034b50)
            return qf_fail(err, QF_ERR_FORMAT, "%s: entry '%s': local header at %llu is missing", z->label, nm,
                           (unsigned long long)lho);
        uint64_t lnl = rd(d + lho + 26, 2), lel = rd(d + lho + 28, 2);
        if (lnl != nl || size - lho - 30 < lnl + lel || memcmp(d + lho + 30, e->name, nl) != 0)
            return qf_fail(err, QF_ERR_FORMAT, "%s: entry '%s': local header disagrees with the central directory",
                           z->label, nm);
        e->data_off = lho + 30 + lnl + lel;
        if (e->csize > size - e->data_off)
            return qf_fail(err, QF_ERR_FORMAT, "%s: entry '%s' (%llu bytes at %llu) runs past the end of the archive",
                           z->label, nm, (unsigned long long)e->csize, (unsigned long long)e->data_off);
        if (e->method == 0 && e->csize != e->usize)
            return qf_fail(err, QF_ERR_FORMAT, "%s: stored entry '%s' has sizes %llu and %llu", z->label, nm,
                           (unsigned long long)e->csize, (unsigned long long)e->usize);
        if (e->method != 0 && e->method != 8)
            return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: entry '%s' uses zip compression method %u (stored or deflate)",
                           z->label, nm, e->method);
        if (e->method == 8 && e->usize / QF_ZIP_MAX_RATIO > e->csize + 1)
            return qf_fail(err, QF_ERR_FORMAT, "%s: entry '%s' claims to inflate %llu bytes to %llu", z->label, nm,
                           (unsigned long long)e->csize, (unsigned long long)e->usize);
        p += 46 + nl + el + cl;
        z->n = (uint32_t)(i + 1);
    }
    return QF_OK;
}

static int qf_zip_entry_cmp(const void *a, const void *b)
{
    const qf_zip_entry *x = a, *y = b;
    uint32_t m = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, m);
    if (c) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}

static const qf_zip_entry *qf_zip_find(const qf_zip *z, const char *name)
{
    qf_zip_entry key = {.name = name, .name_len = (uint32_t)strlen(name)};
    return bsearch(&key, z->e, z->n, sizeof *z->e, qf_zip_entry_cmp);
}

/* libzip's opinion of the same bytes: the archive must open with consistency checks and list
 * the same entries in the same order. */
static qf_status qf_zip_libzip_open(qf_zip *z, qf_error *err)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(z->data, z->size, 0, &ze);
    if (src) z->za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
    if (!z->za) {
        if (src) zip_source_free(src);
        qf_status s = qf_fail(err, QF_ERR_FORMAT, "%s: not a valid zip archive: %s", z->label, zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return s;
    }
    zip_error_fini(&ze);
    if ((uint64_t)zip_get_num_entries(z->za, 0) != z->n)
        return qf_fail(err, QF_ERR_FORMAT, "%s: libzip sees %lld entries, the central directory %u", z->label,
                       (long long)zip_get_num_entries(z->za, 0), z->n);
    for (uint32_t i = 0; i < z->n; i++) {
        const char *nm = zip_get_name(z->za, z->e[i].index, ZIP_FL_ENC_RAW);
        if (!nm || strlen(nm) != z->e[i].name_len || memcmp(nm, z->e[i].name, z->e[i].name_len) != 0)
            return qf_fail(err, QF_ERR_FORMAT, "%s: entry %u is named differently by libzip", z->label, i);
    }
    return QF_OK;
}

/* The bytes of an entry: in place when stored, else inflated into *owned (caller frees). */
static qf_status qf_zip_entry_bytes(qf_zip *z, const qf_zip_entry *e, uint64_t max, const uint8_t **out, void **owned,
                                    qf_error *err)
{
    *owned = NULL;
    if (e->method == 0) {
        *out = z->data + e->data_off;
        return QF_OK;
    }
    if (e->usize > max)
        return qf_fail(err, QF_ERR_FORMAT, "%s: entry '%.*s' inflates to %llu bytes (at most %llu expected)", z->label,
                       (int)e->name_len, e->name, (unsigned long long)e->usize, (unsigned long long)max);
    uint8_t *buf = malloc(e->usize ? e->usize : 1);
    if (!buf) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory inflating %llu bytes", z->label, (unsigned long long)e->usize);
    zip_file_t *f = zip_fopen_index(z->za, e->index, 0);
    zip_int64_t got = f ? zip_fread(f, buf, e->usize) : -1;
    /* one more read reaches the end, where libzip checks the CRC */
    uint8_t extra;
    zip_int64_t more = f && got >= 0 ? zip_fread(f, &extra, 1) : -1;
    if (f) zip_fclose(f);
    if (got < 0 || (uint64_t)got != e->usize || more != 0) {
        free(buf);
        return qf_fail(err, QF_ERR_FORMAT, "%s: entry '%.*s' does not inflate to its %llu bytes (corrupt or CRC mismatch)",
                       z->label, (int)e->name_len, e->name, (unsigned long long)e->usize);
    }
    *out = buf;
    *owned = buf;
    return QF_OK;
}

/* ---- tensors ------------------------------------------------------------------------------ */

static qf_status qf_ck_own(qf_checkpoint *ck, void *buf, qf_error *err)
{
    void **n = realloc(ck->owned, sizeof *n * (size_t)(ck->n_owned + 1));
    if (!n) {
        free(buf);
        return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    }
    ck->owned = n;
    ck->owned[ck->n_owned++] = buf;
    return QF_OK;
}

/* Copy view t of storage bytes base into dst (row-major, contiguous), byte-swapping each
 * element when swap is set.  No recursion: an index counter runs over the dims. */
static void qf_gather(const qf_pickle_tensor *t, const uint8_t *base, uint8_t *dst, int swap)
{
    size_t es = (size_t)qf_dtype_bits(t->dtype) / 8;
    int64_t idx[QF_PICKLE_MAX_DIMS] = {0};
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)t->shape[d];
    uint64_t src = t->offset;
    for (uint64_t i = 0; i < numel; i++) {
        const uint8_t *s = base + src * es;
        uint8_t *o = dst + i * es;
        if (swap)
            for (size_t k = 0; k < es; k++) o[k] = s[es - 1 - k];
        else
            memcpy(o, s, es);
        for (int d = t->ndim - 1; d >= 0; d--) { /* next index, row-major */
            src += (uint64_t)t->stride[d];
            if (++idx[d] < t->shape[d]) break;
            src -= (uint64_t)t->stride[d] * (uint64_t)t->shape[d];
            idx[d] = 0;
        }
    }
}

typedef struct qf_storage_bytes {
    const uint8_t *p;      /* NULL until first needed */
    uint64_t file_off;     /* where they are in the file (size of the file when inflated) */
} qf_storage_bytes;

static qf_status qf_zip_tensors(qf_zip *z, const char *prefix, int big_endian, const qf_state_dict *sd, int file_index,
                                qf_checkpoint *ck, qf_error *err)
{
    qf_storage_bytes *sb = calloc((size_t)sd->n_storages + 1, sizeof *sb);
    qf_tensor *arr = realloc(ck->tensors, sizeof *arr * ((size_t)ck->n_tensors + (size_t)sd->n_tensors + 1));
    if (!sb || !arr) {
        free(sb);
        if (arr) ck->tensors = arr;
        return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", z->label);
    }
    ck->tensors = arr;
    qf_status s = QF_OK;
    char rec[QF_PICKLE_KEY_MAX + 300];
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    int swap = !big_endian;
#else
    int swap = big_endian;
#endif
    for (int i = 0; i < sd->n_tensors && s == QF_OK; i++) {
        const qf_pickle_tensor *pt = &sd->tensors[i];
        const qf_pickle_storage *ps = &sd->storages[pt->storage];
        qf_storage_bytes *b = &sb[pt->storage];
        if (!b->p) {
            snprintf(rec, sizeof rec, "%s/data/%s", prefix, ps->key);
            const qf_zip_entry *e = qf_zip_find(z, rec);
            if (!e) {
                s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': storage '%s' has no record %s in the archive", z->label,
                            pt->name, ps->key, rec);
                break;
            }
            if (e->usize < ps->nbytes) {
                s = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s': storage '%s' needs %llu bytes but record %s holds %llu",
                            z->label, pt->name, ps->key, (unsigned long long)ps->nbytes, rec, (unsigned long long)e->usize);
                break;
            }
            void *owned = NULL;
            s = qf_zip_entry_bytes(z, e, ps->nbytes + 64, &b->p, &owned, err);
            if (s == QF_OK && owned) s = qf_ck_own(ck, owned, err);
            if (s) break;
            b->file_off = owned ? z->size : e->data_off;
        }
        uint64_t es = (uint64_t)qf_dtype_bits(pt->dtype) / 8, numel = 1;
        for (int d = 0; d < pt->ndim; d++) numel *= (uint64_t)pt->shape[d];
        qf_tensor *t = &arr[ck->n_tensors];
        memset(t, 0, sizeof *t);
        t->dtype = pt->dtype;
        t->ndim = pt->ndim;
        memcpy(t->shape, pt->shape, sizeof(int64_t) * (size_t)pt->ndim);
        t->nbytes = numel * es;
        t->file = file_index;
        const uint8_t *start = b->p + pt->offset * es;
        int aligned = ((uintptr_t)start % (es < 8 ? es : 8)) == 0;
        if (t->nbytes && (!qf_pickle_view_contiguous(pt) || (swap && es > 1) || !aligned)) {
            uint8_t *copy = malloc(t->nbytes);
            if (!copy) {
                s = qf_fail(err, QF_ERR_NOMEM, "%s: tensor '%s': out of memory for %llu bytes", z->label, pt->name,
                            (unsigned long long)t->nbytes);
                break;
            }
            qf_gather(pt, b->p, copy, swap && es > 1);
            if ((s = qf_ck_own(ck, copy, err))) break;
            t->data = copy;
            t->offset = b->file_off;
        } else {
            t->data = t->nbytes ? start : NULL;
            t->offset = b->file_off == z->size ? z->size : b->file_off + pt->offset * es;
        }
        if (pt->fp4x2) { /* torch float4_e2m1fn_x2 [.., n] bytes -> safetensors F4 [.., 2n] values */
            if (t->ndim == 0) {
                s = qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tensor '%s': a rank-0 float4_e2m1fn_x2 tensor", z->label, pt->name);
                break;
            }
            t->dtype = QF_DTYPE_F4;
            t->shape[t->ndim - 1] *= 2;
        }
        t->name = strdup(pt->name);
        if (!t->name) {
            s = qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", z->label);
            break;
        }
        ck->n_tensors++;
    }
    free(sb);
    return s;
}

/* ---- one archive ---------------------------------------------------------------------------- */

static qf_status qf_zip_not_zip(const char *label, const uint8_t *d, uint64_t size, qf_error *err)
{
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8};
    if (size >= sizeof legacy && memcmp(d, legacy, sizeof legacy) == 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED,
                       "%s: legacy torch.save format (before torch 1.6); re-save it with a newer torch or as safetensors",
                       label);
    if (size >= 262 && memcmp(d + 257, "ustar", 5) == 0)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: tar-based torch.save format (torch 0.x) is not read", label);
    if (size >= 2 && d[0] == 0x80)
        return qf_fail(err, QF_ERR_UNSUPPORTED, "%s: a bare pickle, not a torch.save zip archive", label);
    return QF_OK;
}

qf_status qf_zip_archive_read(const char *label, const uint8_t *data, uint64_t size, int file_index, qf_checkpoint *ck,
                              qf_error *err)
{
    if (size < 4 || rd(data, 4) != 0x04034b50) {
        QF_TRY(qf_zip_not_zip(label, data, size, err));
        return qf_fail(err, QF_ERR_FORMAT, "%s: not a zip archive (torch.save format) and not safetensors", label);
    }
    qf_zip z = {.label = label, .data = data, .size = size};
    qf_state_dict sd = {0};
    void *pkl_owned = NULL;
    char prefix[256], rec[300], plabel[1024];
    qf_status s = qf_zip_parse_cd(&z, err);
    if (s == QF_OK) qsort(z.e, z.n, sizeof *z.e, qf_zip_entry_cmp);
    if (s == QF_OK) s = qf_zip_libzip_open(&z, err);
    /* the prefix: the first central-directory entry's name up to its first '/' */
    const qf_zip_entry *first = NULL;
    for (uint32_t i = 0; s == QF_OK && i < z.n; i++)
        if (z.e[i].index == 0) first = &z.e[i];
    if (s == QF_OK) {
        const char *slash = first ? memchr(first->name, '/', first->name_len) : NULL;
        if (!slash || slash == first->name || (size_t)(slash - first->name) >= sizeof prefix)
            s = qf_fail(err, QF_ERR_FORMAT, "%s: entries are not under one top-level folder (not a torch.save archive)", label);
        else
            snprintf(prefix, sizeof prefix, "%.*s", (int)(slash - first->name), first->name);
    }
    int big = 0;
    if (s == QF_OK) {
        snprintf(rec, sizeof rec, "%s/byteorder", prefix);
        const qf_zip_entry *e = qf_zip_find(&z, rec);
        if (e) {
            const uint8_t *bo;
            void *own;
            s = qf_zip_entry_bytes(&z, e, 16, &bo, &own, err);
            if (s == QF_OK) {
                if (e->usize == 3 && memcmp(bo, "big", 3) == 0) big = 1;
                else if (!(e->usize == 6 && memcmp(bo, "little", 6) == 0))
                    s = qf_fail(err, QF_ERR_FORMAT, "%s: record %s is neither 'little' nor 'big'", label, rec);
                free(own);
            }
        }
    }
    if (s == QF_OK) {
        snprintf(rec, sizeof rec, "%s/data.pkl", prefix);
        const qf_zip_entry *e = qf_zip_find(&z, rec);
        if (!e) {
            snprintf(rec, sizeof rec, "%s/constants.pkl", prefix);
            s = qf_zip_find(&z, rec) ? qf_fail(err, QF_ERR_UNSUPPORTED, "%s: a TorchScript archive, not a state_dict", label)
                                     : qf_fail(err, QF_ERR_FORMAT, "%s: no %s/data.pkl record", label, prefix);
        } else {
            const uint8_t *pkl;
            s = qf_zip_entry_bytes(&z, e, QF_ZIP_MAX_PICKLE, &pkl, &pkl_owned, err);
            if (s == QF_OK && e->usize > QF_ZIP_MAX_PICKLE)
                s = qf_fail(err, QF_ERR_FORMAT, "%s: data.pkl of %llu bytes is too large", label, (unsigned long long)e->usize);
            snprintf(plabel, sizeof plabel, "%s: data.pkl", label);
            if (s == QF_OK) s = qf_pickle_load_state_dict(plabel, pkl, (size_t)e->usize, &sd, err);
        }
    }
    if (s == QF_OK) s = qf_zip_tensors(&z, prefix, big, &sd, file_index, ck, err);
    qf_state_dict_free(&sd);
    free(pkl_owned);
    if (z.za) zip_discard(z.za);
    free(z.e);
    return s;
}

/* ---- folders ----------------------------------------------------------------------------------- */

static int qf_has_suffix(const char *s, const char *suf)
{
    size_t l = strlen(s), k = strlen(suf);
    return l >= k && strcmp(s + l - k, suf) == 0;
}

static int qf_is_torch_file(const char *name)
{
    return qf_has_suffix(name, ".bin") || qf_has_suffix(name, ".pt") || qf_has_suffix(name, ".pth");
}

/* Files of a training run that are pickles but never weights. */
static int qf_is_not_weights(const char *name)
{
    return strcmp(name, "training_args.bin") == 0 || strcmp(name, "optimizer.pt") == 0 ||
           strcmp(name, "scheduler.pt") == 0 || strcmp(name, "scaler.pt") == 0 || strncmp(name, "rng_state", 9) == 0;
}

/* Weight files of a folder: how many, and the first one found (malloc'd). */
static int qf_scan_dir(const char *dir, int *n_safetensors, char **only)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    *n_safetensors = 0;
    *only = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (qf_has_suffix(de->d_name, ".safetensors") || strcmp(de->d_name, "model.safetensors.index.json") == 0)
            (*n_safetensors)++;
        else if (qf_is_torch_file(de->d_name) && !qf_is_not_weights(de->d_name)) {
            if (!n++) *only = strdup(de->d_name);
        }
    }
    closedir(d);
    return n;
}

int qf_zip_checkpoint_applies(const char *path)
{
    if (!qf_path_is_dir(path)) return qf_is_torch_file(qf_path_base(path)) && !qf_is_not_weights(qf_path_base(path));
    int nst = 0;
    char *only = NULL;
    int n = qf_scan_dir(path, &nst, &only);
    free(only);
    if (nst > 0) return 0;
    char *idx = qf_path_join(path, "pytorch_model.bin.index.json");
    int has_index = qf_path_exists(idx);
    free(idx);
    return has_index || n > 0;
}

static int qf_tensor_name_cmp(const void *a, const void *b)
{
    return strcmp(((const qf_tensor *)a)->name, ((const qf_tensor *)b)->name);
}

/* Shard names of a folder; *weight_map set (a new reference) when read from the index. */
static qf_status qf_torch_shards(const char *dir, char ***names, int *n, json_t **weight_map, qf_error *err)
{
    QF_TRY(qf_shard_index_or_single(dir, "pytorch_model.bin.index.json", "pytorch_model.bin", names, n, weight_map, err));
    if (*n) return QF_OK;
    int nst;
    char *only = NULL;
    int count = qf_scan_dir(dir, &nst, &only);
    if (count < 0) return qf_fail(err, QF_ERR_IO, "%s: cannot open folder", dir);
    if (count != 1) {
        free(only);
        return count ? qf_fail(err, QF_ERR_FORMAT, "%s: %d PyTorch weight files but no pytorch_model.bin.index.json", dir, count)
                     : qf_fail(err, QF_ERR_IO, "%s: no PyTorch weights (.bin, .pt, .pth)", dir);
    }
    *names = malloc(sizeof(char *));
    (*names)[0] = only;
    *n = 1;
    return QF_OK;
}

qf_status qf_zip_checkpoint_open(const char *path, qf_checkpoint **out, qf_error *err)
{
    *out = NULL;
    qf_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    char **names = NULL;
    int n_names = 0;
    json_t *weight_map = NULL;
    qf_status st = QF_OK;
    if (qf_path_is_dir(path)) {
        ck->dir = strdup(path);
        st = qf_torch_shards(path, &names, &n_names, &weight_map, err);
    } else {
        const char *b = qf_path_base(path);
        ck->dir = strndup(path, (size_t)(b - path));
        if (!*ck->dir) free(ck->dir), ck->dir = strdup(".");
        names = malloc(sizeof(char *));
        names[0] = strdup(b);
        n_names = 1;
    }
    if (st == QF_OK) ck->files = calloc((size_t)n_names + 1, sizeof(qf_mapped_file));
    for (int i = 0; st == QF_OK && i < n_names; i++) {
        char *p = qf_path_join(ck->dir, names[i]);
        if (!qf_path_exists(p))
            st = qf_fail(err, QF_ERR_FORMAT, "%s/pytorch_model.bin.index.json: shard '%s' does not exist", ck->dir, names[i]);
        else
            st = qf_file_map(p, &ck->files[i], err);
        free(p);
        if (st) break;
        ck->n_files = i + 1;
        st = qf_zip_archive_read(ck->files[i].path, ck->files[i].data, ck->files[i].size, i, ck, err);
    }
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    if (st == QF_OK) {
        qsort(ck->tensors, (size_t)ck->n_tensors, sizeof(qf_tensor), qf_tensor_name_cmp);
        for (int i = 1; i < ck->n_tensors && st == QF_OK; i++)
            if (strcmp(ck->tensors[i - 1].name, ck->tensors[i].name) == 0)
                st = qf_fail(err, QF_ERR_FORMAT, "%s: tensor '%s' appears in two shards (%s and %s)", ck->dir,
                             ck->tensors[i].name, qf_path_base(ck->files[ck->tensors[i - 1].file].path),
                             qf_path_base(ck->files[ck->tensors[i].file].path));
        if (st == QF_OK && ck->n_tensors == 0) st = qf_fail(err, QF_ERR_FORMAT, "%s: the state_dict holds no tensors", path);
    }
    if (st == QF_OK && weight_map) {
        const char *tn;
        json_t *fv;
        json_object_foreach(weight_map, tn, fv)
        {
            const qf_tensor *t = qf_checkpoint_find(ck, tn);
            if (!t || strcmp(qf_path_base(ck->files[t->file].path), json_string_value(fv)) != 0) {
                st = qf_fail(err, QF_ERR_FORMAT, "%s/pytorch_model.bin.index.json: tensor '%s' is not in shard '%s'", ck->dir,
                             tn, json_string_value(fv));
                break;
            }
        }
    }
    json_decref(weight_map);
    if (st != QF_OK) {
        qf_checkpoint_free(ck);
        return st;
    }
    *out = ck;
    return QF_OK;
}
