/* test_safetensors.c - the safetensors reader and writer: real fixtures, round trips, and
 * one generated file per defect class (each must be refused with a message naming it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_fs.h"
#include "qf_safetensors.h"
#include "qf_st_writer.h"

/* Build a file image: 8-byte length + header text + data_len bytes of 0xAB. */
static uint8_t *image(const char *header, uint64_t data_len, uint64_t *size)
{
    uint64_t n = strlen(header);
    *size = 8 + n + data_len;
    uint8_t *b = malloc(*size);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(n >> (8 * i));
    memcpy(b + 8, header, n);
    memset(b + 8 + n, 0xAB, data_len);
    return b;
}

static qf_status parse(const uint8_t *b, uint64_t size, qf_error *err, int *n_out)
{
    qf_tensor *t = NULL;
    int n = 0;
    qf_status s = qf_safetensors_parse("x.safetensors", b, size, 0, &t, &n, NULL, NULL, err);
    if (n_out) *n_out = n;
    qf_tensors_free(t, n);
    return s;
}

static void expect_defect(const char *header, uint64_t data_len, const char *needle)
{
    uint64_t size;
    uint8_t *b = image(header, data_len, &size);
    qf_error err = {0};
    qf_status s = parse(b, size, &err, NULL);
    if (s != QF_ERR_FORMAT || !strstr(err.msg, needle) || !strstr(err.msg, "x.safetensors"))
        fail_msg("header %s: got status %d message '%s', wanted a format error mentioning '%s'", header, s, err.msg, needle);
    free(b);
}

static void test_valid_all_dtypes(void **state)
{
    (void)state;
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[8,14]},"
                    "\"c\":{\"dtype\":\"F16\",\"shape\":[1,1],\"data_offsets\":[14,16]},"
                    "\"d\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[16,20]},"
                    "\"e\":{\"dtype\":\"F8_E5M2\",\"shape\":[1],\"data_offsets\":[20,21]},"
                    "\"f\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[21,22]},"
                    "\"g\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[22,23]},"
                    "\"h\":{\"dtype\":\"BOOL\",\"shape\":[1],\"data_offsets\":[23,24]},"
                    "\"i\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[24,26]},"
                    "\"j\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[26,30]},"
                    "\"k\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[30,38]},"
                    "\"l\":{\"dtype\":\"F4\",\"shape\":[2,2],\"data_offsets\":[38,40]},"
                    "\"m\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[40,40]}}";
    uint64_t size;
    uint8_t *b = image(h, 40, &size);
    qf_tensor *t = NULL;
    int n = 0;
    qf_st_meta *meta = NULL;
    int nm = 0;
    qf_error err;
    assert_int_equal(qf_safetensors_parse("x.safetensors", b, size, 3, &t, &n, &meta, &nm, &err), QF_OK);
    assert_int_equal(n, 13);
    assert_int_equal(nm, 1);
    assert_string_equal(meta[0].key, "format");
    assert_string_equal(meta[0].value, "pt");
    assert_int_equal(t[10].dtype, QF_DTYPE_I64);
    assert_int_equal(t[10].ndim, 0);
    assert_int_equal(t[11].dtype, QF_DTYPE_F4);
    assert_int_equal(t[11].nbytes, 2);
    assert_int_equal(t[12].nbytes, 0);
    assert_null(t[12].data);
    assert_int_equal(t[1].offset, 8 + strlen(h) + 8);
    assert_int_equal(t[1].file, 3);
    qf_tensors_free(t, n);
    qf_st_meta_free(meta, nm);
    free(b);
}

static void test_defects(void **state)
{
    (void)state;
    const char *one = "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";
    char h[512];
    /* offsets past the end of the data (the file is shorter than the header claims) */
    snprintf(h, sizeof h, "{%s}", one);
    expect_defect(h, 4, "past the end");
    /* trailing bytes after the last tensor */
    expect_defect(h, 12, "trailing bytes");
    /* shape x dtype != span */
    expect_defect("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12");
    /* unknown dtype */
    expect_defect("{\"a\":{\"dtype\":\"F7\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8, "unknown dtype");
    /* duplicate names (jansson rejects them while parsing) */
    snprintf(h, sizeof h, "{%s,%s}", one, one);
    expect_defect(h, 8, "duplicate");
    /* overlap and hole */
    expect_defect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlaps");
    expect_defect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16, "hole");
    /* begin > end, negative dims, too many dims, non-object entries and header */
    expect_defect("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, "< begin");
    expect_defect("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape[0]");
    expect_defect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1, "at most 8");
    expect_defect("{\"a\":[1,2]}", 0, "not an object");
    expect_defect("[1,2]", 0, "not a JSON object");
    expect_defect("{\"a\":", 0, "invalid");
    expect_defect("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
    /* shapes whose byte count overflows 64 bits */
    expect_defect("{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8,
                  "impossibly large");
    /* F4 with an odd element count does not fill whole bytes */
    expect_defect("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2, "whole bytes");
}

static void test_header_length_lies(void **state)
{
    (void)state;
    qf_error err;
    uint8_t small[4] = {1, 2, 3, 4};
    assert_int_equal(parse(small, 4, &err, NULL), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "too short"));
    uint64_t size;
    uint8_t *b = image("{}", 0, &size);
    b[0] = 0xff, b[1] = 0xff, b[2] = 0xff, b[3] = 0x7f; /* ~2 GB header */
    assert_int_equal(parse(b, size, &err, NULL), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "exceeds"));
    b[0] = 200, b[1] = b[2] = b[3] = 0; /* past EOF but under the limit */
    assert_int_equal(parse(b, size, &err, NULL), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "truncated"));
    free(b);
}

static void test_fixture_checkpoint(void **state)
{
    (void)state;
    qf_checkpoint *ck;
    qf_error err;
    assert_int_equal(qf_checkpoint_open("tests/data/tiny-llama", &ck, &err), QF_OK);
    assert_int_equal(ck->n_files, 3);
    assert_int_equal(ck->n_tensors, 57);
    const qf_tensor *t = qf_checkpoint_find(ck, "model.embed_tokens.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, QF_DTYPE_BF16);
    assert_int_equal(t->shape[0], 8192);
    assert_int_equal(t->shape[1], 384);
    /* first two bf16 values, read independently with Python: 8a bb 10 bd */
    assert_int_equal(t->data[0], 0x8a);
    assert_int_equal(t->data[3], 0xbd);
    assert_null(qf_checkpoint_find(ck, "model.nope"));
    for (int i = 1; i < ck->n_tensors; i++) assert_true(strcmp(ck->tensors[i - 1].name, ck->tensors[i].name) < 0);
    qf_checkpoint_free(ck);
    assert_int_equal(qf_checkpoint_open("tests/data/tiny-moe", &ck, &err), QF_OK);
    assert_non_null(qf_checkpoint_find(ck, "model.layers.0.block_sparse_moe.experts.3.w2.weight"));
    qf_checkpoint_free(ck);
}

/* Copy a fixture into a scratch folder, then break its index in several ways. */
static void copy_fixture(const char *dst)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -r tests/data/tiny-llama %s && chmod -R u+w %s", dst, dst, dst);
    assert_int_equal(system(cmd), 0);
}

static void test_index_defects(void **state)
{
    (void)state;
    const char *d = "build/tmp-st-index";
    qf_checkpoint *ck;
    qf_error err;
    copy_fixture(d);
    char cmd[512];
    /* index names a shard that is not there */
    snprintf(cmd, sizeof cmd, "rm %s/model-00002-of-00003.safetensors", d);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(qf_checkpoint_open(d, &ck, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "model-00002-of-00003.safetensors"));
    assert_non_null(strstr(err.msg, "does not exist"));
    /* index maps a tensor to the wrong shard */
    copy_fixture(d);
    snprintf(cmd, sizeof cmd,
             "sed -i 's/\"model.embed_tokens.weight\": \"model-00001-of-00003/\"model.embed_tokens.weight\": "
             "\"model-00003-of-00003/' %s/model.safetensors.index.json",
             d);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(qf_checkpoint_open(d, &ck, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "model.embed_tokens.weight"));
    /* a shard name that escapes the folder */
    copy_fixture(d);
    snprintf(cmd, sizeof cmd, "sed -i 's#\"model-00003-of-00003.safetensors\"#\"../x.safetensors\"#' %s/model.safetensors.index.json", d);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(qf_checkpoint_open(d, &ck, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "invalid shard name"));
    /* a truncated shard */
    copy_fixture(d);
    snprintf(cmd, sizeof cmd, "truncate -s 1000000 %s/model-00001-of-00003.safetensors", d);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(qf_checkpoint_open(d, &ck, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "model-00001-of-00003.safetensors"));
    /* index that is not JSON */
    copy_fixture(d);
    snprintf(cmd, sizeof cmd, "echo '{oops' > %s/model.safetensors.index.json", d);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(qf_checkpoint_open(d, &ck, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "model.safetensors.index.json"));
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(qf_checkpoint_open("build/definitely-missing", &ck, &err), QF_ERR_IO);
}

static void test_writer_round_trip(void **state)
{
    (void)state;
    const char *path = "build/tmp-rt.safetensors";
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[3] = {0x3f80, 0x4000, 0xbf80};
    qf_st_entry e[3] = {{"w.a", QF_DTYPE_F32, 2, {2, 3}}, {"w.b", QF_DTYPE_BF16, 1, {3}}, {"z", QF_DTYPE_I64, 1, {0}}};
    qf_st_writer *w;
    qf_error err;
    assert_int_equal(qf_st_writer_open(path, e, 3, &w, &err), QF_OK);
    assert_int_equal(qf_st_writer_write(w, 0, a, 8, &err), QF_OK); /* in pieces */
    assert_int_equal(qf_st_writer_write(w, 1, b, 2, &err), QF_ERR_USAGE); /* out of order */
    assert_int_equal(qf_st_writer_write(w, 0, (uint8_t *)a + 8, 16, &err), QF_OK);
    assert_int_equal(qf_st_writer_write(w, 1, b, 6, &err), QF_OK);
    uint64_t size;
    qf_hash128 fh, th[3];
    assert_int_equal(qf_st_writer_close(w, &size, &fh, NULL, th, &err), QF_OK);
    assert_int_equal(size, qf_st_file_bytes(e, 3));
    assert_int_equal(size % 1, 0);
    qf_checkpoint *ck;
    assert_int_equal(qf_checkpoint_open(path, &ck, &err), QF_OK);
    assert_int_equal(ck->n_tensors, 3);
    const qf_tensor *t = qf_checkpoint_find(ck, "w.a");
    assert_memory_equal(t->data, a, sizeof a);
    assert_true(qf_hash_equal(th[0], qf_hash_bytes(a, sizeof a)));
    assert_true(qf_hash_equal(fh, qf_hash_bytes(ck->files[0].data, ck->files[0].size)));
    /* header is padded to 8 bytes, so the data section starts 8-aligned */
    assert_int_equal((t->offset) % 8, 0);
    qf_checkpoint_free(ck);
    unlink(path);
    /* closing early is an error and deletes the partial file */
    assert_int_equal(qf_st_writer_open(path, e, 3, &w, &err), QF_OK);
    assert_int_equal(qf_st_writer_close(w, NULL, NULL, NULL, NULL, &err), QF_ERR_USAGE);
    assert_false(qf_path_exists(path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_all_dtypes),   cmocka_unit_test(test_defects),
        cmocka_unit_test(test_header_length_lies), cmocka_unit_test(test_fixture_checkpoint),
        cmocka_unit_test(test_index_defects),      cmocka_unit_test(test_writer_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
