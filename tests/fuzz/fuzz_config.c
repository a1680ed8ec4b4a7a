/* fuzz_config.c - libFuzzer target: config.json.
 *
 * The bytes are a config.json; they go through qf_config_load (required keys, types, rope
 * parameters, MoE counts, each family's keys), then, for what loads, qf_config_runnable, the
 * per-layer attention windows (layer_types, sliding_window, use_sliding_window,
 * max_window_layers) and Llama 4's layer kinds (no_rope_layers, chunked_attention).
 * Whatever the bytes, each must return with QF_OK or a one-line message naming the file; what
 * loads must be usable: positive dimensions, heads dividing evenly as the runner assumes, and a
 * window per layer that is 0 (full) or positive.
 *
 * Build (clang) and run: tests/fuzz/build.sh; build-fuzz/fuzz_config /tmp/scratch tests/fuzz/corpus/config
 * Replayed without libFuzzer by tests/test_fuzz_replay.c in `make test`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qf_config.h"

#include "qf_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = qf_fuzz_file("config.json", data, size);
    if (!path) return 0;
    qf_model_config cfg;
    qf_error err;
    memset(&err, 0, sizeof err);
    qf_status st = qf_config_load(path, &cfg, &err);
    if (st != QF_OK) {
        QF_FUZZ_ASSERT(strstr(err.msg, "config.json") && !strchr(err.msg, '\n'));
        return 0;
    }
    QF_FUZZ_ASSERT(cfg.n_layers > 0 && cfg.hidden_size > 0 && cfg.n_heads > 0 && cfg.vocab_size > 0);
    if (qf_config_runnable(&cfg, &err) == QF_OK && cfg.n_layers <= 4096) {
        int *window = malloc(sizeof(int) * (size_t)cfg.n_layers);
        if (window && qf_config_attn_windows(path, &cfg, window, &err) == QF_OK)
            for (int l = 0; l < cfg.n_layers; l++) QF_FUZZ_ASSERT(window[l] >= 0);
        int *rope = malloc(sizeof(int) * (size_t)cfg.n_layers), *chunk = malloc(sizeof(int) * (size_t)cfg.n_layers);
        if (rope && chunk && strcmp(cfg.model_type, "llama4_text") == 0 &&
            qf_config_llama4_layers(path, &cfg, rope, chunk, &err) == QF_OK)
            for (int l = 0; l < cfg.n_layers; l++) QF_FUZZ_ASSERT((rope[l] == 0 || rope[l] == 1) && chunk[l] >= 0);
        free(rope);
        free(chunk);
        free(window);
    }
    qf_config_free(&cfg);
    return 0;
}
