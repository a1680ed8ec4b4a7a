/* test_fuzz_replay.c - the fuzz targets as a regression test, without libFuzzer.
 *
 * Replays every seed of tests/fuzz/corpus/pickle through fuzz_pickle.c's target, every seed
 * of tests/fuzz/corpus/safetensors through fuzz_safetensors_header.c's, tests/fuzz/corpus/gguf
 * through fuzz_gguf.c's, corpus/config through fuzz_config.c's, corpus/index through
 * fuzz_shard_index.c's and corpus/manifest through fuzz_manifest.c's (whose seed must still
 * verify its folder, or the target would only ever test the seal check), plus seeds built here
 * (tests/qf_torch_fixture.h, a GGUF from qforge's own writer), then keeps mutating them (bit flips, byte overwrites with
 * boundary values, truncations, insertions, chunk copies) with a fixed-seed generator for a
 * bounded time: QF_FUZZ_SECONDS (default 2 per target) or QF_FUZZ_RUNS mutations per target
 * (default 200000), whichever ends first.  Any crash or consistency failure (the targets
 * abort) fails the test; the seed and iteration are printed first so a failure reproduces.
 * Run from the repository root (the corpus paths are relative).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "qf_torch_fixture.h"

#define LLVMFuzzerTestOneInput qf_fuzz_pickle_one
#include "fuzz/fuzz_pickle.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput qf_fuzz_safetensors_one
#include "fuzz/fuzz_safetensors_header.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput qf_fuzz_gguf_one
#include "fuzz/fuzz_gguf.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput qf_fuzz_config_one
#include "fuzz/fuzz_config.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput qf_fuzz_shard_index_one
#include "fuzz/fuzz_shard_index.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput qf_fuzz_manifest_one
#include "fuzz/fuzz_manifest.c"
#undef LLVMFuzzerTestOneInput

typedef int (*qf_fuzz_target)(const uint8_t *, size_t);

typedef struct seed_set {
    int n;
    tf_buf s[64];
} seed_set;

static void add_seed(seed_set *set, const void *p, size_t n)
{
    if (set->n == 64) return;
    tf_buf b = {0};
    tf_put(&b, p, n);
    set->s[set->n++] = b;
}

static int load_dir(seed_set *set, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    int n = 0;
    char path[1024];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        tf_buf b = {0};
        uint8_t chunk[4096];
        size_t k;
        while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) tf_put(&b, chunk, k);
        fclose(f);
        add_seed(set, b.b, b.n);
        tf_free(&b);
        n++;
    }
    closedir(d);
    return n;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One mutation of src into dst (dst reallocated). */
static void mutate(const tf_buf *src, tf_buf *dst, uint64_t *rng)
{
    static const uint8_t boundary[] = {0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, '(', '.', 'R', 'c', 'q', 'h', 'u', 'X'};
    dst->n = 0;
    tf_put(dst, src->b, src->n);
    int rounds = 1 + (int)(rng_next(rng) % 4);
    for (int r = 0; r < rounds; r++) {
        size_t n = dst->n, at = n ? (size_t)(rng_next(rng) % n) : 0;
        switch (rng_next(rng) % 6) {
        case 0: if (n) dst->b[at] ^= (uint8_t)(1u << (rng_next(rng) % 8)); break;
        case 1: if (n) dst->b[at] = boundary[rng_next(rng) % sizeof boundary]; break;
        case 2: dst->n = at; break; /* truncate */
        case 3: { /* insert a byte */
            uint8_t c = (uint8_t)rng_next(rng);
            tf_put(dst, &c, 1);
            memmove(dst->b + at + 1, dst->b + at, dst->n - at - 1);
            dst->b[at] = c;
            break;
        }
        case 4: if (n > 8) { /* copy a chunk over another place */
                size_t len = 1 + (size_t)(rng_next(rng) % 16), from = (size_t)(rng_next(rng) % n);
                if (from + len > n) len = n - from;
                if (at + len > n) len = n - at;
                memmove(dst->b + at, dst->b + from, len);
            }
            break;
        default: if (n >= 4) { /* a 32-bit little-endian field set to a boundary value */
                static const uint32_t v[] = {0, 1, 0x7fffffff, 0x80000000u, 0xffffffffu, 64, 0xffff};
                uint32_t x = v[rng_next(rng) % 7];
                size_t p = at + 4 <= n ? at : n - 4;
                memcpy(dst->b + p, &x, 4);
            }
        }
    }
}

static void replay(const char *what, qf_fuzz_target fn, seed_set *set)
{
    const char *es = getenv("QF_FUZZ_SECONDS"), *er = getenv("QF_FUZZ_RUNS");
    double budget = es ? atof(es) : 2.0;
    long runs = er ? atol(er) : 200000;
    for (int i = 0; i < set->n; i++) fn(set->s[i].b, set->s[i].n);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    tf_buf m = {0};
    double t0 = now_s();
    long it = 0;
    for (; it < runs && set->n; it++) {
        if ((it & 255) == 0 && now_s() - t0 > budget) break;
        const tf_buf *src = &set->s[rng_next(&rng) % (uint64_t)set->n];
        uint64_t before = rng;
        mutate(src, &m, &rng);
        if (getenv("QF_FUZZ_VERBOSE")) fprintf(stderr, "%s: iteration %ld rng %llu\n", what, it, (unsigned long long)before);
        fn(m.b ? m.b : (const uint8_t *)"", m.n);
    }
    printf("%s: %d seeds, %ld mutations in %.1f s\n", what, set->n, it, now_s() - t0);
    tf_free(&m);
    for (int i = 0; i < set->n; i++) tf_free(&set->s[i]);
    set->n = 0;
}

static void test_replay_pickle(void **state)
{
    (void)state;
    seed_set set = {0};
    int from_disk = load_dir(&set, "tests/fuzz/corpus/pickle");
    assert_true(from_disk > 0); /* run from the repository root */
    /* seeds built here: a state_dict with views over one storage, as a stream and an archive */
    tf_buf p = {0};
    tf_sd_begin(&p);
    tf_tensor(&p, "w", "FloatStorage", NULL, "0", 6, 0, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
    tf_tensor(&p, "t", "FloatStorage", NULL, "0", 6, 0, 2, (int64_t[]){3, 2}, (int64_t[]){1, 3});
    tf_tensor(&p, "e", NULL, "float8_e4m3fn", "1", 4, 0, 1, (int64_t[]){4}, (int64_t[]){1});
    tf_sd_end(&p);
    add_seed(&set, p.b, p.n);
    float f[6] = {0, 1, 2, 3, 4, 5};
    uint8_t e[4] = {1, 2, 3, 4};
    const void *st[2] = {f, e};
    size_t sl[2] = {24, 4};
    tf_buf z = tf_torch_zip(&p, "big", 2, st, sl, 1);
    add_seed(&set, z.b, z.n);
    tf_free(&z);
    tf_free(&p);
    replay("fuzz_pickle", qf_fuzz_pickle_one, &set);
}

static void test_replay_safetensors(void **state)
{
    (void)state;
    seed_set set = {0};
    assert_true(load_dir(&set, "tests/fuzz/corpus/safetensors") > 0);
    replay("fuzz_safetensors_header", qf_fuzz_safetensors_one, &set);
}

static void test_replay_gguf(void **state)
{
    (void)state;
    seed_set set = {0};
    load_dir(&set, "tests/fuzz/corpus/gguf");
    /* a seed from qforge's writer: metadata of several kinds, a Q8_0, a Q4_K and an F32 tensor */
    char dir[] = "/tmp/qf-fuzz-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/seed.gguf", dir);
    qf_gguf_writer *w = qf_gguf_writer_new();
    qf_error err;
    const char *toks[] = {"x", "yy"};
    qf_gguf_kv_str(w, "general.architecture", "llama");
    qf_gguf_kv_u32(w, "llama.attention.head_count", 1);
    qf_gguf_kv_str_array(w, "tokenizer.ggml.tokens", toks, 2);
    qf_gguf_kv_f32(w, "f", 0.5f);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "a", QF_GGML_Q8_0, 2, (int64_t[]){2, 32}, &err), 0);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "b", QF_GGML_Q4_K, 1, (int64_t[]){256}, &err), 1);
    assert_int_equal(qf_gguf_writer_add_tensor(w, "c", QF_GGML_F32, 1, (int64_t[]){3}, &err), 2);
    float x[256];
    for (int i = 0; i < 256; i++) x[i] = (float)(i % 17) - 8.0f;
    uint8_t qa[68], qb[144];
    qf_ggml_quantize_row(QF_GGML_Q8_0, x, 64, qa);
    qf_ggml_quantize_row(QF_GGML_Q4_K, x, 256, qb);
    assert_int_equal(qf_gguf_writer_open(w, path, &err), QF_OK);
    assert_int_equal(qf_gguf_writer_write(w, 0, qa, sizeof qa, &err), QF_OK);
    assert_int_equal(qf_gguf_writer_write(w, 1, qb, sizeof qb, &err), QF_OK);
    assert_int_equal(qf_gguf_writer_write(w, 2, x, 12, &err), QF_OK);
    assert_int_equal(qf_gguf_writer_close(w, NULL, NULL, NULL, &err), QF_OK);
    qf_gguf_writer_free(w);
    FILE *f = fopen(path, "rb");
    tf_buf b = {0};
    uint8_t chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) tf_put(&b, chunk, k);
    fclose(f);
    unlink(path);
    rmdir(dir);
    add_seed(&set, b.b, b.n);
    tf_free(&b);
    replay("fuzz_gguf", qf_fuzz_gguf_one, &set);
}

static void test_replay_config(void **state)
{
    (void)state;
    seed_set set = {0};
    assert_true(load_dir(&set, "tests/fuzz/corpus/config") >= 5);
    replay("fuzz_config", qf_fuzz_config_one, &set);
}

static void test_replay_shard_index(void **state)
{
    (void)state;
    seed_set set = {0};
    assert_true(load_dir(&set, "tests/fuzz/corpus/index") >= 2);
    replay("fuzz_shard_index", qf_fuzz_shard_index_one, &set);
}

static void test_replay_manifest(void **state)
{
    (void)state;
    seed_set set = {0};
    assert_true(load_dir(&set, "tests/fuzz/corpus/manifest") >= 1);
    /* the committed seed is a manifest of the target's folder that verifies: every file and
     * tensor checked, no issue */
    for (int i = 0; i < set.n; i++) {
        qf_fuzz_manifest_one(set.s[i].b, set.s[i].n);
        qf_verify_report rep;
        memset(&rep, 0, sizeof rep);
        qf_error err;
        int st = qf_verify_dir(qf_fuzz_artifact(), &rep, NULL, &err);
        if (st != QF_OK) fail_msg("seed %d of tests/fuzz/corpus/manifest no longer verifies: %s", i, err.msg);
        assert_int_equal(rep.files_checked, 2);
        assert_int_equal(rep.tensors_checked, 2);
        assert_int_equal(rep.n_issues, 0);
        qf_verify_report_free(&rep);
    }
    /* and one changed byte of the artifact is found behind that seed */
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", qf_fuzz_artifact());
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fputc('[', f), '[');
    assert_int_equal(fclose(f), 0);
    qf_verify_report rep;
    memset(&rep, 0, sizeof rep);
    qf_error err;
    assert_int_equal(qf_verify_dir(qf_fuzz_artifact(), &rep, NULL, &err), QF_ERR_VERIFY);
    assert_int_equal(rep.n_issues, 1);
    assert_int_equal(rep.issues[0].kind, QF_VERIFY_MODIFIED);
    assert_string_equal(rep.issues[0].file, "config.json");
    qf_verify_report_free(&rep);
    f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fputc('{', f), '{');
    assert_int_equal(fclose(f), 0);
    replay("fuzz_manifest", qf_fuzz_manifest_one, &set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replay_pickle),
        cmocka_unit_test(test_replay_safetensors),
        cmocka_unit_test(test_replay_gguf),
        cmocka_unit_test(test_replay_config),
        cmocka_unit_test(test_replay_shard_index),
        cmocka_unit_test(test_replay_manifest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
