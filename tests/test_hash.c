/* test_hash.c - XXH3-128 digests (common/qf_hash.h) and the hash-while-writing safetensors
 * writer (formats/qf_st_writer.h): every path to a digest gives the same answer.
 *
 * Expected digests are pinned from an independent implementation: the Python `xxhash`
 * package 4.1.0 (libxxhash 0.8.4), `xxhash.xxh3_128(data).hexdigest()`, which prints the
 * canonical big-endian form that `xxh128sum` prints.  The data of the length vectors is
 * pattern(n)[i] = (i * 31 + 7) % 251, reproducible in one line of Python:
 *     bytes((i * 31 + 7) % 251 for i in range(n))
 * Then (xxHash's sanity_test.c pattern): one-shot, streaming in random chunks, byte by byte
 * and from unaligned addresses must all agree; a safetensors file written in random chunk
 * sizes must hash (as a whole and per tensor) exactly like the bytes read back from disk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h> /* the shared library: an independent check of qf_hash.c's inlined build */

#include <cmocka.h>

#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qf_test_tmpdir.h"
#include "qf_hash.h"
#include "qf_st_writer.h"
#include "qf_test_util.h"

static uint8_t *pattern(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * 31 + 7) % 251);
    return p;
}

static const struct { size_t len; const char *hex; } VECTORS[] = {
    /* lengths chosen at XXH3's internal path boundaries: 0, 1-3, 4-8, 9-16, 17-128, 129-240, >240 */
    {0, "99aa06d3014798d86001c324468d497f"},      {1, "495b62073ef70ca44c5cca45d0f4811f"},
    {3, "46f66cb93538156515f7093b173d005c"},      {4, "7fefeeffb4d0eab3b987ca5d9241572a"},
    {8, "803c675a846cc6c256bb836ceb6d4baa"},      {9, "365644c233ffe5c213af585c9bf5827d"},
    {16, "da917c385cc874c00d463cb04ceffbaf"},     {17, "d443578f2c4e2fb495c34448580e19c8"},
    {128, "22c34350373a38ae5b77925b2c683a12"},    {129, "c4a7d8f7893f2090d6d9e73553568be1"},
    {240, "e29d70b8920fd24bc6ed4333f79384f8"},    {241, "f91b3cb8ed0fa91a07525dbc14902c7f"},
    {1024, "f53a1b1e9f1efedfe2898655db7bc9ee"},   {100003, "c05363f4601a015fe449a420f68908db"},
};
#define N_VECTORS (sizeof VECTORS / sizeof VECTORS[0])

static void expect_hex(qf_hash128 h, const char *want, const char *what)
{
    char hex[QF_HASH_HEX_LEN + 1];
    qf_hash_hex(h, hex);
    if (strcmp(hex, want) != 0) fail_msg("%s: got %s, expected %s", what, hex, want);
}

static void test_known_vectors_canonical_hex(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_VECTORS; i++) {
        uint8_t *p = pattern(VECTORS[i].len);
        char what[64];
        snprintf(what, sizeof what, "pattern(%zu)", VECTORS[i].len);
        expect_hex(qf_hash_bytes(p, VECTORS[i].len), VECTORS[i].hex, what);
        free(p);
    }
    expect_hex(qf_hash_bytes("abc", 3), "06b05ab6733a618578af5f94892f3950", "abc");
    const char *fox = "The quick brown fox jumps over the lazy dog";
    expect_hex(qf_hash_bytes(fox, strlen(fox)), "ddd650205ca3e7fa24a1cc2e3a8a7651", "fox");
    /* canonical = big-endian: byte 0 is the top byte of the high 64-bit half */
    XXH128_hash_t raw = XXH3_128bits("abc", 3);
    qf_hash128 h = qf_hash_bytes("abc", 3);
    for (int k = 0; k < 8; k++) {
        assert_int_equal(h.b[k], (uint8_t)(raw.high64 >> (56 - 8 * k)));
        assert_int_equal(h.b[8 + k], (uint8_t)(raw.low64 >> (56 - 8 * k)));
    }
    assert_true(raw.high64 == 481984899792396677ull); /* python: xxh3_128(b'abc').intdigest() >> 64 */
}

static void test_hex_round_trip_and_malformed(void **state)
{
    (void)state;
    qf_test_rng r = qf_test_rng_init(3);
    for (int i = 0; i < 1000; i++) {
        qf_hash128 h, back;
        for (int k = 0; k < 16; k++) h.b[k] = (uint8_t)qf_test_rng_u32(&r);
        char hex[QF_HASH_HEX_LEN + 1];
        qf_hash_hex(h, hex);
        assert_int_equal(strlen(hex), 32);
        for (int k = 0; k < 32; k++) assert_true((hex[k] >= '0' && hex[k] <= '9') || (hex[k] >= 'a' && hex[k] <= 'f'));
        assert_int_equal(qf_hash_parse_hex(hex, &back), 0);
        assert_true(qf_hash_equal(h, back));
        assert_memory_equal(h.b, back.b, 16);
        for (int k = 0; k < 32; k++) hex[k] = (char)(hex[k] >= 'a' ? hex[k] - 32 : hex[k]); /* upper case */
        assert_int_equal(qf_hash_parse_hex(hex, &back), 0);
        assert_true(qf_hash_equal(h, back));
        back.b[i % 16] ^= (uint8_t)(1u << (i % 8));
        assert_false(qf_hash_equal(h, back));
    }
    qf_hash128 out;
    assert_int_equal(qf_hash_parse_hex("06b05ab6733a618578af5f94892f3950", &out), 0);
    assert_true(qf_hash_equal(out, qf_hash_bytes("abc", 3)));
    const char *bad[] = {"", "06b05ab6733a618578af5f94892f395", "06b05ab6733a618578af5f94892f39500",
                         "06b05ab6733a618578af5f94892f395g", " 6b05ab6733a618578af5f94892f3950",
                         "06b05ab6733a618578af5f94892f39-0", "0x06b05ab6733a618578af5f94892f39"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (qf_hash_parse_hex(bad[i], &out) != -1) fail_msg("parse_hex accepted \"%s\"", bad[i]);
    assert_int_equal(qf_hash_parse_hex(NULL, &out), -1);
}

/* Streaming in random chunks, byte by byte and from unaligned addresses equals one-shot. */
static void test_streaming_equals_one_shot(void **state)
{
    (void)state;
    qf_test_rng r = qf_test_rng_init(0x5eed);
    qf_hash_ctx *st = qf_hash_new();
    assert_non_null(st);
    for (size_t i = 0; i < N_VECTORS; i++) {
        size_t n = VECTORS[i].len;
        uint8_t *p = pattern(n);
        uint8_t *unaligned = malloc(n + 8);
        assert_non_null(unaligned);
        for (int rep = 0; rep < 20; rep++) {
            qf_hash_reset(st);
            size_t done = 0;
            while (done < n) {
                size_t k = (size_t)qf_test_rng_below(&r, rep < 10 ? 64 : 5000);
                if (k > n - done) k = n - done;
                qf_hash_update(st, p + done, k); /* k may be 0 */
                done += k;
            }
            expect_hex(qf_hash_digest(st), VECTORS[i].hex, "random chunks");
        }
        if (n <= 4096) {
            qf_hash_reset(st);
            for (size_t k = 0; k < n; k++) qf_hash_update(st, p + k, 1);
            expect_hex(qf_hash_digest(st), VECTORS[i].hex, "byte by byte");
        }
        for (int off = 1; off < 8; off++) {
            memcpy(unaligned + off, p, n);
            expect_hex(qf_hash_bytes(unaligned + off, n), VECTORS[i].hex, "unaligned one-shot");
        }
        free(unaligned);
        free(p);
    }
    qf_hash_free(st);
}

/* ---- the safetensors writer ------------------------------------------------------------ */

static uint8_t *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

/* Write `n` entries with random contents in random chunk sizes; check the digests. */
static void write_and_check(const qf_st_entry *e, int n, qf_test_rng *r, int max_chunk, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", qf_test_tmp, name);
    uint8_t **data = calloc((size_t)n, sizeof *data);
    uint64_t *sizes = calloc((size_t)n, sizeof *sizes);
    qf_hash128 *th = calloc((size_t)n, sizeof *th);
    assert_non_null(data);
    assert_non_null(sizes);
    assert_non_null(th);
    for (int i = 0; i < n; i++) {
        sizes[i] = qf_st_entry_bytes(&e[i]);
        data[i] = malloc(sizes[i] ? sizes[i] : 1);
        assert_non_null(data[i]);
        for (uint64_t k = 0; k < sizes[i]; k++) data[i][k] = (uint8_t)qf_test_rng_u32(r);
    }
    qf_st_writer *w = NULL;
    qf_error err = {0};
    assert_int_equal(qf_st_writer_open(path, e, n, &w, &err), QF_OK);
    for (int i = 0; i < n; i++) {
        uint64_t done = 0;
        while (done < sizes[i]) {
            uint64_t k = qf_test_rng_below(r, (uint64_t)max_chunk + 1);
            if (k > sizes[i] - done) k = sizes[i] - done;
            qf_status s = qf_st_writer_write(w, i, data[i] + done, k, &err);
            if (s != QF_OK) fail_msg("%s: write of tensor %d failed: %s", name, i, err.msg);
            done += k;
        }
    }
    uint64_t fsize = 0;
    qf_hash128 fh;
    assert_int_equal(qf_st_writer_close(w, &fsize, &fh, NULL, th, &err), QF_OK);

    size_t len = 0;
    uint8_t *file = read_file(path, &len);
    assert_int_equal(len, fsize);
    assert_int_equal(fsize, qf_st_file_bytes(e, n));
    if (!qf_hash_equal(fh, qf_hash_bytes(file, len))) fail_msg("%s: streamed file hash != hash of the file", name);

    /* locate every tensor through the header, as a reader would */
    uint64_t hl = 0;
    for (int k = 0; k < 8; k++) hl |= (uint64_t)file[k] << (8 * k);
    assert_int_equal(hl % 8, 0);
    json_error_t jerr;
    json_t *hdr = json_loadb((const char *)file + 8, (size_t)hl, 0, &jerr);
    if (!hdr) fail_msg("%s: header does not parse: %s", name, jerr.text);
    for (int i = 0; i < n; i++) {
        json_t *t = json_object_get(hdr, e[i].name);
        assert_non_null(t);
        json_t *off = json_object_get(t, "data_offsets");
        uint64_t b = (uint64_t)json_integer_value(json_array_get(off, 0));
        uint64_t end = (uint64_t)json_integer_value(json_array_get(off, 1));
        assert_int_equal(end - b, sizes[i]);
        assert_true(8 + hl + end <= len);
        const uint8_t *bytes = file + 8 + hl + b;
        assert_memory_equal(bytes, data[i], sizes[i]);
        qf_hash128 want = qf_hash_bytes(bytes, sizes[i]);
        if (!qf_hash_equal(th[i], want)) fail_msg("%s: tensor %s streamed hash != hash of its bytes", name, e[i].name);
        assert_true(qf_hash_equal(th[i], qf_hash_bytes(data[i], sizes[i])));
    }
    json_decref(hdr);
    free(file);
    for (int i = 0; i < n; i++) free(data[i]);
    free(data);
    free(sizes);
    free(th);
}

static void test_writer_digests_equal_one_shot_for_random_chunkings(void **state)
{
    (void)state;
    qf_test_rng r = qf_test_rng_init(0xf11e);
    const qf_st_entry small[] = {
        {"a.weight", QF_DTYPE_BF16, 2, {3, 5}},
        {"empty", QF_DTYPE_F32, 1, {0}},
        {"b.weight_packed", QF_DTYPE_I32, 2, {7, 3}},
        {"b.weight_shape", QF_DTYPE_I64, 1, {2}},
        {"c.scale", QF_DTYPE_F8_E4M3, 2, {1, 1}},
    };
    for (int rep = 0; rep < 20; rep++) write_and_check(small, 5, &r, rep % 2 ? 1 : 17, "small.safetensors");
    /* larger than the writer's 8 MiB buffer, so flushes happen mid-tensor */
    const qf_st_entry big[] = {
        {"model.layers.0.mlp.down_proj.weight_packed", QF_DTYPE_I32, 2, {1024, 1536}}, /* 6 MiB */
        {"model.layers.0.mlp.down_proj.weight_scale", QF_DTYPE_BF16, 2, {1024, 96}},
        {"model.layers.0.mlp.down_proj.weight_shape", QF_DTYPE_I64, 1, {2}},
        {"model.layers.0.mlp.gate_proj.weight", QF_DTYPE_F8_E4M3, 2, {2048, 3000}}, /* 5.9 MB */
        {"tail", QF_DTYPE_U8, 1, {1}},
    };
    write_and_check(big, 5, &r, 1 << 20, "big1.safetensors");
    write_and_check(big, 5, &r, 100000, "big2.safetensors");
    write_and_check(big, 5, &r, 3 << 22, "big3.safetensors");
    /* the empty tensor hashes like empty input: the pinned vector */
    const qf_st_entry only_empty[] = {{"e", QF_DTYPE_F16, 2, {0, 4}}};
    char path[512];
    snprintf(path, sizeof path, "%s/empty.safetensors", qf_test_tmp);
    qf_st_writer *w = NULL;
    qf_error err = {0};
    qf_hash128 th;
    assert_int_equal(qf_st_writer_open(path, only_empty, 1, &w, &err), QF_OK);
    assert_int_equal(qf_st_writer_close(w, NULL, NULL, NULL, &th, &err), QF_OK);
    expect_hex(th, "99aa06d3014798d86001c324468d497f", "empty tensor");
}

static void test_writer_misuse_is_refused_and_leaves_no_file(void **state)
{
    (void)state;
    const qf_st_entry e[] = {{"x", QF_DTYPE_U8, 1, {4}}, {"y", QF_DTYPE_U8, 1, {4}}};
    char path[512];
    snprintf(path, sizeof path, "%s/misuse.safetensors", qf_test_tmp);
    qf_st_writer *w = NULL;
    qf_error err = {0};
    const uint8_t bytes[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(qf_st_writer_open(path, e, 2, &w, &err), QF_OK);
    assert_int_equal(qf_st_writer_write(w, 1, bytes, 4, &err), QF_ERR_USAGE); /* out of order */
    assert_int_equal(qf_st_writer_write(w, 0, bytes, 5, &err), QF_ERR_USAGE); /* past its size */
    assert_int_equal(qf_st_writer_write(w, 0, bytes, 4, &err), QF_OK);
    assert_int_equal(qf_st_writer_close(w, NULL, NULL, NULL, NULL, &err), QF_ERR_USAGE); /* y never written */
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0); /* the partial file is gone */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_vectors_canonical_hex),
        cmocka_unit_test(test_hex_round_trip_and_malformed),
        cmocka_unit_test(test_streaming_equals_one_shot),
        cmocka_unit_test(test_writer_digests_equal_one_shot_for_random_chunkings),
        cmocka_unit_test(test_writer_misuse_is_refused_and_leaves_no_file),
    };
    return cmocka_run_group_tests(tests, qf_test_tmp_setup, qf_test_tmp_teardown);
}
