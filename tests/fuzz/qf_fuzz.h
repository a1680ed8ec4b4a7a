/* qf_fuzz.h - what every libFuzzer target in tests/fuzz/ shares.
 *
 * QF_FUZZ_ASSERT(c): a property the target checks on what the parser accepted.  Under
 * libFuzzer it aborts (a finding); tests/test_fuzz_replay.c defines it before including the
 * targets, to count a failure on a replayed input instead.
 *
 * qf_fuzz_file(name, data, size): for parsers whose entry point takes a path (config.json, the
 * shard index, a manifest folder), writes the input to NAME inside one private scratch folder
 * of this process (mkdtemp under $TMPDIR, else /dev/shm, else /tmp; made on first use) and
 * returns the file's path, or
 * NULL when the write fails (the target then skips the input).  The returned buffer is static:
 * valid until the next call.  qf_fuzz_dir() is that folder.  The old file is unlinked first,
 * not truncated: ext4 flushes a file truncated and rewritten on close (auto_da_alloc), which
 * made each input wait for the disk.  The folder is removed at exit.
 */
#ifndef QF_FUZZ_H
#define QF_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef QF_FUZZ_ASSERT
#define QF_FUZZ_ASSERT(c)  \
    do {                   \
        if (!(c)) abort(); \
    } while (0)
#endif

static char qf_fuzz_scratch[512];

static int qf_fuzz_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* at exit: the scratch folder goes, whatever the targets left in it */
static void qf_fuzz_cleanup(void)
{
    if (qf_fuzz_scratch[0]) nftw(qf_fuzz_scratch, qf_fuzz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static inline const char *qf_fuzz_dir(void)
{
    char *dir = qf_fuzz_scratch;
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !tmp[0]) tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(dir, sizeof qf_fuzz_scratch, "%s/qf-fuzz-XXXXXX", tmp);
        if (!mkdtemp(dir)) {
            dir[0] = 0;
            return NULL;
        }
        atexit(qf_fuzz_cleanup);
    }
    return dir;
}

static inline const char *qf_fuzz_file(const char *name, const uint8_t *data, size_t size)
{
    static char path[1024];
    const char *dir = qf_fuzz_dir();
    if (!dir) return NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    if (fclose(f) != 0 || w != size) return NULL;
    return path;
}

#endif
