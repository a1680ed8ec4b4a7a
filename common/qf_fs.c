/* qf_fs.c - mappings, whole-file reads, atomic writes, paths (see qf_fs.h). */
#include "qf_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

qf_status qf_file_map(const char *path, qf_mapped_file *f, qf_error *err)
{
    memset(f, 0, sizeof *f);
    /* O_NONBLOCK: opening a FIFO put in place of a file must not wait for a writer; the
     * regular-file check below then refuses it.  (No effect on regular files.) */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return qf_fail(err, QF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qf_fail(err, QF_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return qf_fail(err, QF_ERR_IO, "%s: cannot map %lld bytes: %s", path, (long long)st.st_size,
                           strerror(errno));
        }
        f->data = p;
    }
    close(fd);
    f->size = (uint64_t)st.st_size;
    f->path = strdup(path);
    return QF_OK;
}

void qf_file_unmap(qf_mapped_file *f)
{
    if (!f) return;
    if (f->data) munmap((void *)f->data, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

void qf_file_release(const qf_mapped_file *f, uint64_t off, uint64_t len)
{
    if (!f || !f->data || off >= f->size) return;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t a = (off + page - 1) / page * page, b = off + len;
    if (b > f->size) b = f->size;
    b = b / page * page;
    if (b > a) madvise((void *)(f->data + a), b - a, MADV_DONTNEED);
}

qf_status qf_file_read_all(const char *path, size_t max_size, char **out, size_t *len, qf_error *err)
{
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return qf_fail(err, QF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || S_ISDIR(st.st_mode)) {
        fclose(fp);
        return qf_fail(err, QF_ERR_IO, "%s: not a file", path);
    }
    /* regular files are read in one go; pipes and devices grow the buffer as they stream */
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : (size_t)1 << 16, n = 0;
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max_size) {
        fclose(fp);
        return qf_fail(err, QF_ERR_FORMAT, "%s: %lld bytes is larger than the %zu allowed", path, (long long)st.st_size,
                       max_size);
    }
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fclose(fp);
            return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory reading the file", path);
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (got == 0 || ferror(fp)) break;
        if (n == cap - 1) {
            if (cap - 1 >= max_size) {
                free(buf);
                fclose(fp);
                return qf_fail(err, QF_ERR_FORMAT, "%s: larger than the %zu bytes allowed", path, max_size);
            }
            char *b = realloc(buf, cap * 2);
            if (!b) free(buf);
            buf = b;
            cap *= 2;
        }
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return qf_fail(err, QF_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (len) *len = n;
    return QF_OK;
}

qf_status qf_write_all(int fd, const void *buf, size_t len, const char *path, qf_error *err)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return qf_fail(err, QF_ERR_IO, "%s: write failed: %s", path, w < 0 ? strerror(errno) : "short write");
        p += w;
        len -= (size_t)w;
    }
    return QF_OK;
}

qf_status qf_file_write_atomic(const char *path, const void *buf, size_t len, qf_error *err)
{
    size_t plen = strlen(path) + 8;
    char *tmp = malloc(plen);
    if (!tmp) return qf_fail(err, QF_ERR_NOMEM, "%s: out of memory", path);
    snprintf(tmp, plen, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        qf_status s = qf_fail(err, QF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        free(tmp);
        return s;
    }
    qf_status ws = qf_write_all(fd, buf, len, path, err);
    if (ws) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return ws;
    }
    if (close(fd) != 0 || rename(tmp, path) != 0) {
        qf_status s = qf_fail(err, QF_ERR_IO, "%s: cannot finish write: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return s;
    }
    free(tmp);
    return QF_OK;
}

qf_status qf_file_copy(const char *src, const char *dst, qf_error *err)
{
    qf_mapped_file f;
    QF_TRY(qf_file_map(src, &f, err));
    qf_status s = qf_file_write_atomic(dst, f.data ? (const void *)f.data : "", f.size, err);
    qf_file_unmap(&f);
    return s;
}

int qf_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

int qf_path_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

char *qf_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    size_t k = la;
    if (la && a[la - 1] != '/') s[k++] = '/';
    memcpy(s + k, b, lb + 1);
    return s;
}

char *qf_path_canonical(const char *path)
{
    size_t l = strlen(path);
    char *full = malloc(l + 3);
    if (!full) return NULL;
    snprintf(full, l + 3, "%s%s", path[0] == '/' ? "" : "./", path); /* relative: the walk ends at "." */
    for (size_t k = strlen(full); k > 1 && full[k - 1] == '/'; k--) full[k - 1] = 0;
    char *p = strdup(full), *out = NULL;
    while (p) {
        char *real = realpath(p, NULL);
        if (real) {
            const char *rest = strcmp(p, "/") == 0 ? full : full + strlen(p); /* "" or "/not/yet/there" */
            /* ".." after a missing folder cannot be resolved without guessing: refuse it */
            if (!strstr(rest, "/../") && (strlen(rest) < 3 || strcmp(rest + strlen(rest) - 3, "/..") != 0)) {
                size_t n = strlen(real) + strlen(rest) + 1;
                out = malloc(n);
                if (out) snprintf(out, n, "%s%s", strcmp(real, "/") == 0 && rest[0] == '/' ? "" : real, rest);
            }
            free(real);
            break;
        }
        char *slash = strrchr(p, '/');
        if (!slash) break;
        slash[slash == p] = 0; /* "/a" shortens to "/" */
    }
    free(p);
    free(full);
    return out;
}

int qf_path_within(const char *inner, const char *outer)
{
    size_t lo = strlen(outer);
    if (strcmp(outer, "/") == 0) return inner[0] == '/';
    return strncmp(inner, outer, lo) == 0 && (inner[lo] == 0 || inner[lo] == '/');
}

qf_status qf_model_file_check(const char *model_dir, const char *path, qf_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0) return qf_fail(err, QF_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    char *root = realpath(model_dir, NULL), *target = realpath(path, NULL);
    qf_status s = QF_OK;
    if (!root || !target) {
        s = qf_fail(err, QF_ERR_IO, "%s: cannot resolve: %s", path, strerror(errno));
    } else if (!qf_path_within(target, root)) {
        /* The Hugging Face hub cache: models--ORG--NAME/snapshots/REV/FILE -> ../../blobs/HASH. */
        char *snap = strrchr(root, '/');
        int hub = 0;
        if (snap && snap > root) {
            *snap = 0;
            char *snaps = strrchr(root, '/');
            if (snaps && strcmp(snaps, "/snapshots") == 0) {
                *snaps = 0;
                const char *repo = strrchr(root, '/');
                hub = repo && strncmp(repo, "/models--", 9) == 0 && qf_path_within(target, root);
            }
        }
        if (!hub)
            s = qf_fail(err, QF_ERR_SECURITY, "%s: %s %s, outside the model folder %s: refused (an artifact "
                        "must hold only the model's own files)", path, S_ISLNK(st.st_mode) ? "symbolic link to" : "resolves to",
                        target, model_dir);
    }
    free(root);
    free(target);
    return s;
}

const char *qf_path_base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

qf_status qf_mkdirs(const char *path, qf_error *err)
{
    char *p = strdup(path);
    if (!p) return qf_fail(err, QF_ERR_NOMEM, "out of memory");
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) break;
        *s = '/';
    }
    int rc = mkdir(p, 0755);
    int e = errno;
    free(p);
    if (rc != 0 && e != EEXIST) return qf_fail(err, QF_ERR_IO, "%s: cannot create folder: %s", path, strerror(e));
    return QF_OK;
}

static int qf_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void qf_remove_tree(const char *path) { nftw(path, qf_rm_entry, 16, FTW_DEPTH | FTW_PHYS); }
