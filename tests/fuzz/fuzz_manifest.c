/* fuzz_manifest.c - libFuzzer target: qforge.manifest.json, through `qforge verify`.
 *
 * The bytes are a manifest for a small fixed artifact folder (one safetensors file with two
 * tensors and a config.json, written once into this process's scratch folder).  Bytes that
 * parse as a JSON object are sealed first (qf_manifest_write), so the mutations reach the
 * listing checks behind the seal instead of stopping at it; anything else is written as is,
 * for the loader.  Then qf_verify_dir runs on the folder.  Whatever the bytes it must return
 * (no crash, no leak, no read outside the folder), with QF_OK only when every file and tensor
 * checked is intact and no issue was reported, and otherwise a one-line message; the
 * artifact's own files are never modified.
 *
 * The committed seed (tests/fuzz/corpus/manifest/valid.json) is a manifest that verifies this
 * folder: tests/test_fuzz_replay.c checks that it still does, so the seed stays deep.
 *
 * Build (clang) and run: tests/fuzz/build.sh; build-fuzz/fuzz_manifest /tmp/scratch tests/fuzz/corpus/manifest
 * Replayed without libFuzzer by tests/test_fuzz_replay.c in `make test`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "qf_manifest.h"

#include "qf_fuzz.h"

/* The artifact: model.safetensors holding "a" (F32 [2]) and "b" (BF16 [2]), and config.json. */
static const uint8_t qf_fuzz_st[] =
    "\x78\x00\x00\x00\x00\x00\x00\x00"
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]}}           "
    "\x00\x00\x80\x3f\x00\x00\x00\x40\x80\x3f\x00\x40";
#define QF_FUZZ_ST_SIZE (sizeof qf_fuzz_st - 1)
static const char qf_fuzz_cfg[] = "{\"model_type\": \"llama\"}\n";

/* The folder, made on first use; NULL when it cannot be written. */
static const char *qf_fuzz_artifact(void)
{
    static char dir[600];
    if (dir[0]) return dir;
    const char *base = qf_fuzz_dir();
    if (!base) return NULL;
    char path[700];
    snprintf(dir, sizeof dir, "%s/artifact", base);
    if (mkdir(dir, 0700) != 0) return dir[0] = 0, NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(qf_fuzz_st, 1, QF_FUZZ_ST_SIZE, f) != QF_FUZZ_ST_SIZE || fclose(f)) return dir[0] = 0, NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    f = fopen(path, "wb");
    if (!f || fwrite(qf_fuzz_cfg, 1, strlen(qf_fuzz_cfg), f) != strlen(qf_fuzz_cfg) || fclose(f)) return dir[0] = 0, NULL;
    return dir;
}

static off_t qf_fuzz_size(const char *dir, const char *name)
{
    char path[700];
    struct stat sb;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = qf_fuzz_artifact();
    if (!dir) return 0;
    qf_error err;
    memset(&err, 0, sizeof err);
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, QF_MANIFEST_NAME);
    unlink(path); /* a rename or a rewrite over it would wait for the disk (ext4 auto_da_alloc) */
    json_t *m = json_loadb((const char *)data, size, 0, NULL);
    if (json_is_object(m)) {
        if (qf_manifest_write(dir, m, &err) != QF_OK) {
            json_decref(m);
            return 0;
        }
    } else {
        FILE *f = fopen(path, "wb");
        size_t w = f && size ? fwrite(data, 1, size, f) : 0;
        if (!f || fclose(f) || w != size) {
            json_decref(m);
            return 0;
        }
    }
    json_decref(m);

    qf_verify_report rep;
    memset(&rep, 0, sizeof rep);
    memset(&err, 0, sizeof err);
    qf_status st = qf_verify_dir(dir, &rep, NULL, &err);
    if (st == QF_OK) {
        QF_FUZZ_ASSERT(rep.n_issues == 0 && rep.files_ok == rep.files_checked && rep.tensors_ok == rep.tensors_checked);
    } else {
        QF_FUZZ_ASSERT(err.msg[0] && !strchr(err.msg, '\n'));
    }
    for (int i = 0; i < rep.n_issues; i++) QF_FUZZ_ASSERT(qf_verify_kind_name(rep.issues[i].kind) != NULL);
    qf_verify_report_free(&rep);
    QF_FUZZ_ASSERT(qf_fuzz_size(dir, "model.safetensors") == (off_t)QF_FUZZ_ST_SIZE);
    QF_FUZZ_ASSERT(qf_fuzz_size(dir, "config.json") == (off_t)strlen(qf_fuzz_cfg));
    return 0;
}
