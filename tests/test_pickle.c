/* test_pickle.c - the restricted unpickler and the torch.save archive reader, on hand-built
 * bytes: a valid state_dict is described exactly; every hostile input is refused with the
 * right code and a message naming what was refused; views, shared storages, strides and
 * big-endian archives come back as the values the test wrote.
 *
 * Hostile inputs (one test each): GLOBAL os system, STACK_GLOBAL builtins eval, REDUCE on a
 * storage class and on a string, INST / OBJ, BUILD on a list, NEWOBJ on a tensor rebuild,
 * a huge memo index, an unset memo slot, deep MARK nesting, deep container nesting, a flood
 * of stack values, every truncation of a valid stream, a view past its storage, a storage
 * past its archive record, a record past the end of the archive, a missing record, legacy
 * and bare-pickle files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "qf_pickle.h"
#include "qf_safetensors.h"
#include "qf_torch_fixture.h"
#include "qf_zip_checkpoint.h"

/* Run a pickle; return the status and keep the message. */
static qf_status run(const tf_buf *b, qf_error *err, qf_state_dict *sd)
{
    qf_state_dict local;
    memset(err, 0, sizeof *err);
    qf_status s = qf_pickle_load_state_dict("x.bin: data.pkl", b->b, b->n, sd ? sd : &local, err);
    if (!sd) qf_state_dict_free(&local);
    return s;
}

static void expect(const tf_buf *b, qf_status code, const char *needle)
{
    qf_error err;
    qf_status s = run(b, &err, NULL);
    if (s != code || !strstr(err.msg, needle)) fprintf(stderr, "got %d '%s', want %d '%s'\n", s, err.msg, code, needle);
    assert_int_equal(s, code);
    assert_non_null(strstr(err.msg, needle));
    assert_non_null(strstr(err.msg, "x.bin: data.pkl: "));
}

/* A two-tensor state_dict: w (2x3 f32 on storage 0) and b (3 bf16 on storage 1). */
static tf_buf valid_pickle(void)
{
    tf_buf b = {0};
    tf_sd_begin(&b);
    tf_tensor(&b, "w", "FloatStorage", NULL, "0", 6, 0, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
    tf_tensor(&b, "b", "BFloat16Storage", NULL, "1", 3, 0, 1, (int64_t[]){3}, (int64_t[]){1});
    tf_sd_end(&b);
    return b;
}

static void test_valid_state_dict(void **state)
{
    (void)state;
    tf_buf b = valid_pickle();
    qf_error err;
    qf_state_dict sd;
    assert_int_equal(run(&b, &err, &sd), QF_OK);
    assert_int_equal(sd.n_tensors, 2);
    assert_int_equal(sd.n_storages, 2);
    assert_string_equal(sd.tensors[0].name, "w");
    assert_int_equal(sd.tensors[0].dtype, QF_DTYPE_F32);
    assert_int_equal(sd.tensors[0].ndim, 2);
    assert_int_equal(sd.tensors[0].shape[1], 3);
    assert_int_equal(sd.tensors[0].stride[0], 3);
    assert_string_equal(sd.storages[0].key, "0");
    assert_int_equal(sd.storages[0].nbytes, 24);
    assert_int_equal(sd.tensors[1].dtype, QF_DTYPE_BF16);
    assert_int_equal(sd.storages[1].nbytes, 6);
    assert_true(qf_pickle_view_contiguous(&sd.tensors[0]));
    qf_state_dict_free(&sd);
    tf_free(&b);
}

static void test_global_os_system(void **state)
{
    (void)state;
    tf_buf b = {0};
    tf_op(&b, 0x80), tf_op(&b, 2);
    tf_global(&b, "os", "system");
    tf_str(&b, "echo pwned");
    tf_op(&b, 0x85), tf_op(&b, 'R'), tf_op(&b, '.');
    expect(&b, QF_ERR_SECURITY, "global 'os system' is not allowed");
    tf_free(&b);
}

static void test_stack_global_refused(void **state)
{
    (void)state;
    tf_buf b = {0};
    tf_op(&b, 0x80), tf_op(&b, 4);
    tf_op(&b, 0x8c), tf_op(&b, 8), tf_put(&b, "builtins", 8);
    tf_op(&b, 0x8c), tf_op(&b, 4), tf_put(&b, "eval", 4);
    tf_op(&b, 0x93), tf_op(&b, '.');
    expect(&b, QF_ERR_SECURITY, "global 'builtins eval' is not allowed");
    tf_free(&b);
    /* torch-looking names that are not on the list are refused too */
    tf_global(&b, "torch", "load");
    expect(&b, QF_ERR_SECURITY, "global 'torch load' is not allowed");
    tf_free(&b);
}

static void test_reduce_not_callable(void **state)
{
    (void)state;
    tf_buf b = {0};
    tf_op(&b, 0x80), tf_op(&b, 2);
    tf_global(&b, "torch", "FloatStorage"); /* allow-listed, but only as a persistent-id type */
    tf_op(&b, ')'), tf_op(&b, 'R'), tf_op(&b, '.');
    expect(&b, QF_ERR_SECURITY, "REDUCE on 'torch FloatStorage' is not allowed");
    tf_free(&b);
    tf_str(&b, "os.system");
    tf_op(&b, ')'), tf_op(&b, 'R'), tf_op(&b, '.');
    expect(&b, QF_ERR_SECURITY, "REDUCE on a str is not allowed");
    tf_free(&b);
    tf_global(&b, "torch._utils", "_rebuild_tensor_v2");
    tf_op(&b, ')'), tf_op(&b, 0x81), tf_op(&b, '.');
    expect(&b, QF_ERR_SECURITY, "NEWOBJ on 'torch._utils _rebuild_tensor_v2' is not allowed");
    tf_free(&b);
}

static void test_code_opcodes_refused(void **state)
{
    (void)state;
    tf_buf b = {0};
    tf_op(&b, '('), tf_op(&b, 'i'), tf_put(&b, "os\nsystem\n", 10), tf_op(&b, '.');
    expect(&b, QF_ERR_SECURITY, "INST");
    tf_free(&b);
    tf_op(&b, '('), tf_op(&b, 'o'), tf_op(&b, '.');
    expect(&b, QF_ERR_SECURITY, "OBJ");
    tf_free(&b);
    tf_op(&b, ']'), tf_op(&b, '}'), tf_op(&b, 'b'), tf_op(&b, '.');
    expect(&b, QF_ERR_SECURITY, "BUILD on a list is not allowed");
    tf_free(&b);
}

static void test_memo_bounds(void **state)
{
    (void)state;
    tf_buf b = {0};
    tf_op(&b, ']'), tf_op(&b, 'r'), tf_le(&b, 0xfffffff0u, 4), tf_op(&b, '.');
    expect(&b, QF_ERR_FORMAT, "memo index 4294967280 is out of range");
    tf_free(&b);
    tf_op(&b, 'j'), tf_le(&b, 7, 4), tf_op(&b, '.');
    expect(&b, QF_ERR_FORMAT, "memo index 7 was never stored");
    tf_free(&b);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    tf_buf b = {0};
    for (int i = 0; i < 100000; i++) tf_op(&b, '(');
    tf_op(&b, '.');
    expect(&b, QF_ERR_FORMAT, "nested MARKs");
    tf_free(&b);
    tf_op(&b, ']');
    for (int i = 0; i < 100000; i++) tf_op(&b, 0x85); /* TUPLE1: ((((([],),),),) ... */
    tf_op(&b, '.');
    expect(&b, QF_ERR_FORMAT, "nested deeper than");
    tf_free(&b);
    for (int i = 0; i < QF_PICKLE_MAX_STACK + 10; i++) tf_op(&b, 'N');
    tf_op(&b, '.');
    expect(&b, QF_ERR_FORMAT, "values on the stack");
    tf_free(&b);
}

static void test_truncated(void **state)
{
    (void)state;
    tf_buf b = valid_pickle();
    for (size_t n = 0; n < b.n; n++) {
        tf_buf cut = {b.b, n, n};
        qf_error err;
        qf_status s = run(&cut, &err, NULL);
        assert_int_equal(s, QF_ERR_FORMAT);
    }
    /* a length that runs past the end is caught before anything is read or allocated */
    tf_buf c = {0};
    tf_op(&c, 'X'), tf_le(&c, 0xffffffffu, 4), tf_put(&c, "ab", 2);
    expect(&c, QF_ERR_FORMAT, "truncated: BINUNICODE needs 4294967295 bytes");
    tf_free(&c);
    tf_free(&b);
}

static void test_view_outside_storage(void **state)
{
    (void)state;
    tf_buf b = {0};
    tf_sd_begin(&b);
    tf_tensor(&b, "w", "FloatStorage", NULL, "0", 4, 0, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
    tf_sd_end(&b);
    expect(&b, QF_ERR_FORMAT, "reaches byte 24 of storage '0' which has 16 bytes");
    tf_free(&b);
    tf_sd_begin(&b);
    tf_tensor(&b, "w", "FloatStorage", NULL, "0", INT64_C(1) << 62, 0, 1, (int64_t[]){1}, (int64_t[]){1});
    tf_sd_end(&b);
    expect(&b, QF_ERR_FORMAT, "impossible element count");
    tf_free(&b);
    tf_sd_begin(&b);
    tf_tensor(&b, "w", "FloatStorage", NULL, "../etc", 4, 0, 1, (int64_t[]){4}, (int64_t[]){1});
    tf_sd_end(&b);
    expect(&b, QF_ERR_FORMAT, "outside [A-Za-z0-9_.-]");
    tf_free(&b);
}

static void test_unsupported_and_not_a_dict(void **state)
{
    (void)state;
    tf_buf b = {0};
    tf_sd_begin(&b);
    tf_tensor(&b, "w", "ComplexFloatStorage", NULL, "0", 4, 0, 1, (int64_t[]){4}, (int64_t[]){1});
    tf_sd_end(&b);
    expect(&b, QF_ERR_UNSUPPORTED, "storage type 'torch ComplexFloatStorage' is not supported");
    tf_free(&b);
    tf_op(&b, 0x80), tf_op(&b, 2), tf_op(&b, ']'), tf_op(&b, '.');
    qf_error err;
    assert_int_equal(run(&b, &err, NULL), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "not a state_dict"));
    tf_free(&b);
    tf_sd_begin(&b);
    tf_str(&b, "step"), tf_int(&b, 3);
    tf_sd_end(&b);
    assert_int_equal(run(&b, &err, NULL), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "'step' is a int, not a tensor"));
    tf_free(&b);
}

/* ---- archives ----------------------------------------------------------------------------- */

static qf_status read_zip(const tf_buf *z, qf_checkpoint *ck, qf_error *err)
{
    memset(ck, 0, sizeof *ck);
    memset(err, 0, sizeof *err);
    return qf_zip_archive_read("x.bin", z->b, z->n, 0, ck, err);
}

static void ck_clear(qf_checkpoint *ck)
{
    qf_tensors_free(ck->tensors, ck->n_tensors);
    for (int i = 0; i < ck->n_owned; i++) free(ck->owned[i]);
    free(ck->owned);
    memset(ck, 0, sizeof *ck);
}

static const qf_tensor *find(const qf_checkpoint *ck, const char *name)
{
    for (int i = 0; i < ck->n_tensors; i++)
        if (strcmp(ck->tensors[i].name, name) == 0) return &ck->tensors[i];
    return NULL;
}

static void test_archive_views(void **state)
{
    (void)state;
    /* storage 0: 6 floats 0..5.  "t" = its transpose viewed as [3, 2] (stride (1, 3));
     * "s" = elements 2..3 (offset 2); "w" = the whole [2, 3] contiguous; storage 1: int64 */
    for (int big = 0; big < 2; big++)
        for (int align = 0; align < 2; align++) {
            float f[6] = {0, 1, 2, 3, 4, 5};
            int64_t l[2] = {-7, 1234567890123};
            uint8_t fb[24], lb[16];
            for (int i = 0; i < 24; i++) fb[i] = ((uint8_t *)f)[big ? (i / 4) * 4 + 3 - i % 4 : i];
            for (int i = 0; i < 16; i++) lb[i] = ((uint8_t *)l)[big ? (i / 8) * 8 + 7 - i % 8 : i];
            tf_buf p = {0};
            tf_sd_begin(&p);
            tf_tensor(&p, "w", "FloatStorage", NULL, "0", 6, 0, 2, (int64_t[]){2, 3}, (int64_t[]){3, 1});
            tf_tensor(&p, "t", "FloatStorage", NULL, "0", 6, 0, 2, (int64_t[]){3, 2}, (int64_t[]){1, 3});
            tf_tensor(&p, "s", "FloatStorage", NULL, "0", 6, 2, 1, (int64_t[]){2}, (int64_t[]){1});
            tf_tensor(&p, "l", "LongStorage", NULL, "1", 2, 0, 1, (int64_t[]){2}, (int64_t[]){1});
            tf_sd_end(&p);
            const void *st[2] = {fb, lb};
            size_t sl[2] = {24, 16};
            tf_buf z = tf_torch_zip(&p, big ? "big" : "little", 2, st, sl, align);
            qf_checkpoint ck;
            qf_error err;
            qf_status s = read_zip(&z, &ck, &err);
            if (s) fprintf(stderr, "%s\n", err.msg);
            assert_int_equal(s, QF_OK);
            assert_int_equal(ck.n_tensors, 4);
            const qf_tensor *w = find(&ck, "w"), *t = find(&ck, "t"), *sv = find(&ck, "s"), *lt = find(&ck, "l");
            assert_non_null(w), assert_non_null(t), assert_non_null(sv), assert_non_null(lt);
            const float *wd = (const float *)w->data, *td = (const float *)t->data, *sd = (const float *)sv->data;
            for (int i = 0; i < 6; i++) assert_true(wd[i] == (float)i);
            float want_t[6] = {0, 3, 1, 4, 2, 5};
            for (int i = 0; i < 6; i++) assert_true(td[i] == want_t[i]);
            assert_true(sd[0] == 2.0f && sd[1] == 3.0f);
            assert_int_equal(w->nbytes, 24);
            assert_int_equal(t->shape[0], 3);
            int64_t lv[2];
            memcpy(lv, lt->data, 16);
            assert_true(lv[0] == -7 && lv[1] == 1234567890123);
            /* aligned little-endian contiguous views are used in place, others are copies */
            int in_place = w->data >= z.b && w->data < z.b + z.n;
            if (!big && align) assert_true(in_place);
            if (big) assert_false(in_place);
            assert_int_equal((uintptr_t)w->data % 4, 0);
            assert_true(t->data < z.b || t->data >= z.b + z.n);
            ck_clear(&ck);
            tf_free(&z);
            tf_free(&p);
        }
}

static void test_archive_fp8_and_fp4(void **state)
{
    (void)state;
    uint8_t bytes[8] = {0x38, 0xb8, 0x00, 0x7e, 0x21, 0x43, 0x65, 0x87};
    tf_buf p = {0};
    tf_sd_begin(&p);
    tf_tensor(&p, "e4", NULL, "float8_e4m3fn", "0", 4, 0, 2, (int64_t[]){2, 2}, (int64_t[]){2, 1});
    tf_tensor(&p, "f4", NULL, "float4_e2m1fn_x2", "1", 4, 0, 2, (int64_t[]){2, 2}, (int64_t[]){2, 1});
    tf_sd_end(&p);
    const void *st[2] = {bytes, bytes + 4};
    size_t sl[2] = {4, 4};
    tf_buf z = tf_torch_zip(&p, "little", 2, st, sl, 1);
    qf_checkpoint ck;
    qf_error err;
    assert_int_equal(read_zip(&z, &ck, &err), QF_OK);
    const qf_tensor *e4 = find(&ck, "e4"), *f4 = find(&ck, "f4");
    assert_int_equal(e4->dtype, QF_DTYPE_F8_E4M3);
    assert_int_equal(e4->nbytes, 4);
    assert_memory_equal(e4->data, bytes, 4);
    assert_int_equal(f4->dtype, QF_DTYPE_F4);
    assert_int_equal(f4->shape[1], 4); /* two values per byte */
    assert_int_equal(f4->nbytes, 4);
    ck_clear(&ck);
    tf_free(&z);
    tf_free(&p);
}

static void test_archive_hostile(void **state)
{
    (void)state;
    float f[4] = {1, 2, 3, 4};
    const void *st[1] = {f};
    size_t sl[1] = {16};
    qf_checkpoint ck;
    qf_error err;
    /* a storage that needs more bytes than its record has */
    tf_buf p = {0};
    tf_sd_begin(&p);
    tf_tensor(&p, "w", "FloatStorage", NULL, "0", 100, 0, 1, (int64_t[]){100}, (int64_t[]){1});
    tf_sd_end(&p);
    tf_buf z = tf_torch_zip(&p, NULL, 1, st, sl, 1);
    assert_int_equal(read_zip(&z, &ck, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "storage '0' needs 400 bytes but record archive/data/0 holds 16"));
    ck_clear(&ck);
    tf_free(&z);
    /* a storage with no record */
    z = tf_torch_zip(&p, NULL, 0, st, sl, 1);
    assert_int_equal(read_zip(&z, &ck, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "has no record archive/data/0"));
    ck_clear(&ck);
    tf_free(&z);
    tf_free(&p);
    /* a record whose size runs past the end of the file (central directory lies) */
    tf_sd_begin(&p);
    tf_tensor(&p, "w", "FloatStorage", NULL, "0", 4, 0, 1, (int64_t[]){4}, (int64_t[]){1});
    tf_sd_end(&p);
    z = tf_torch_zip(&p, NULL, 1, st, sl, 1);
    uint8_t *cd = NULL;
    for (size_t i = z.n - 22; i-- > 0;)
        if (memcmp(z.b + i, "PK\1\2", 4) == 0 && memcmp(z.b + i + 46, "archive/data/0", 14) == 0) cd = z.b + i;
    assert_non_null(cd);
    cd[20] = cd[24] = 0xff, cd[21] = cd[25] = 0xff, cd[22] = cd[26] = 0xff; /* csize = usize = 0x00ffffff */
    assert_int_equal(read_zip(&z, &ck, &err), QF_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "runs past the end of the archive"));
    ck_clear(&ck);
    tf_free(&z);
    /* a pickle calling os.system inside a real archive */
    tf_free(&p);
    tf_op(&p, 0x80), tf_op(&p, 2), tf_global(&p, "os", "system"), tf_str(&p, "id"), tf_op(&p, 0x85), tf_op(&p, 'R'),
        tf_op(&p, '.');
    z = tf_torch_zip(&p, NULL, 0, st, sl, 1);
    assert_int_equal(read_zip(&z, &ck, &err), QF_ERR_SECURITY);
    assert_string_equal(err.msg, "x.bin: data.pkl: global 'os system' is not allowed (opcode at byte 2)");
    ck_clear(&ck);
    tf_free(&z);
    tf_free(&p);
    /* not a zip: legacy torch.save, a bare pickle, garbage */
    static const uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    tf_put(&z, legacy, sizeof legacy);
    assert_int_equal(read_zip(&z, &ck, &err), QF_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "legacy torch.save format"));
    tf_free(&z);
    tf_put(&z, "\x80\x02}.", 4);
    assert_int_equal(read_zip(&z, &ck, &err), QF_ERR_UNSUPPORTED);
    tf_free(&z);
    tf_put(&z, "hello, world", 12);
    assert_int_equal(read_zip(&z, &ck, &err), QF_ERR_FORMAT);
    tf_free(&z);
}

/* every truncation of an archive is refused, never read out of bounds */
static void test_archive_truncated(void **state)
{
    (void)state;
    float f[4] = {1, 2, 3, 4};
    const void *st[1] = {f};
    size_t sl[1] = {16};
    tf_buf p = {0};
    tf_sd_begin(&p);
    tf_tensor(&p, "w", "FloatStorage", NULL, "0", 4, 0, 1, (int64_t[]){4}, (int64_t[]){1});
    tf_sd_end(&p);
    tf_buf z = tf_torch_zip(&p, "little", 1, st, sl, 1);
    for (size_t n = 0; n < z.n; n++) {
        uint8_t *cut = malloc(n ? n : 1);
        memcpy(cut, z.b, n);
        tf_buf c = {cut, n, n};
        qf_checkpoint ck;
        qf_error err;
        assert_int_not_equal(read_zip(&c, &ck, &err), QF_OK);
        ck_clear(&ck);
        free(cut);
    }
    tf_free(&z);
    tf_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_state_dict),
        cmocka_unit_test(test_global_os_system),
        cmocka_unit_test(test_stack_global_refused),
        cmocka_unit_test(test_reduce_not_callable),
        cmocka_unit_test(test_code_opcodes_refused),
        cmocka_unit_test(test_memo_bounds),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_view_outside_storage),
        cmocka_unit_test(test_unsupported_and_not_a_dict),
        cmocka_unit_test(test_archive_views),
        cmocka_unit_test(test_archive_fp8_and_fp4),
        cmocka_unit_test(test_archive_hostile),
        cmocka_unit_test(test_archive_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
