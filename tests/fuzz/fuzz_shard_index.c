/* fuzz_shard_index.c - libFuzzer target: model.safetensors.index.json.
 *
 * The bytes are a shard index; they go through qf_shard_index_read.  Whatever the bytes, it
 * must return with QF_OK or a one-line message naming the file; what it accepts must keep the
 * promise of qf_shard_index.h: shard names sorted, unique, and plain file names (no '/', not
 * "." or ".."), so an index can never point outside its folder; a weight_map object.
 *
 * Build (clang) and run: tests/fuzz/build.sh; build-fuzz/fuzz_shard_index /tmp/scratch tests/fuzz/corpus/index
 * Replayed without libFuzzer by tests/test_fuzz_replay.c in `make test`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qf_shard_index.h"

#include "qf_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = qf_fuzz_file("model.safetensors.index.json", data, size);
    if (!path) return 0;
    char **names = NULL;
    int n = 0;
    json_t *map = NULL;
    qf_error err;
    memset(&err, 0, sizeof err);
    if (qf_shard_index_read(path, &names, &n, &map, &err) != QF_OK) {
        QF_FUZZ_ASSERT(strstr(err.msg, "index.json") && !strchr(err.msg, '\n'));
        return 0;
    }
    QF_FUZZ_ASSERT(json_is_object(map));
    for (int i = 0; i < n; i++) {
        QF_FUZZ_ASSERT(names[i][0] && !strchr(names[i], '/') && strcmp(names[i], ".") && strcmp(names[i], ".."));
        if (i) QF_FUZZ_ASSERT(strcmp(names[i - 1], names[i]) < 0);
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    json_decref(map);
    return 0;
}
