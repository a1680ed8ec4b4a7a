/* test_act_store.c - the calibration activation tables (calib/calibrate/qf_act_store.h): a table in RAM
 * and one spilled to a file give back exactly the bits written, whatever the chunking, through
 * the same load / slot / save calls; the file is removed on close; a file that cannot be
 * created is an I/O error naming it, with nothing left behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "qf_test_tmpdir.h"
#include "qf_act_store.h"
#include "qf_test_util.h"


enum { ROWS = 1000, WIDTH = 37 };

/* Fill the table in chunks of `chunk` rows with "slot, fill, save", add 1 to every row with
 * "load, update in place, save" in chunks of `chunk2`, and read it all back. */
static void round_trip(qf_act_store *s, int64_t chunk, int64_t chunk2, const float *want)
{
    qf_error err;
    float *buf = malloc(sizeof(float) * ROWS * WIDTH);
    for (int64_t r0 = 0; r0 < ROWS; r0 += chunk) {
        int64_t n = r0 + chunk < ROWS ? chunk : ROWS - r0;
        float *rows = qf_act_store_slot(s, r0, buf);
        memcpy(rows, want + r0 * WIDTH, sizeof(float) * (size_t)(n * WIDTH));
        assert_int_equal(qf_act_store_save(s, r0, n, rows, &err), QF_OK);
    }
    for (int64_t r0 = 0; r0 < ROWS; r0 += chunk2) {
        int64_t n = r0 + chunk2 < ROWS ? chunk2 : ROWS - r0;
        float *rows;
        assert_int_equal(qf_act_store_load(s, r0, n, buf, &rows, &err), QF_OK);
        for (int64_t i = 0; i < n * WIDTH; i++) rows[i] += 1.0f;
        assert_int_equal(qf_act_store_save(s, r0, n, rows, &err), QF_OK);
    }
    float *all;
    assert_int_equal(qf_act_store_load(s, 0, ROWS, buf, &all, &err), QF_OK);
    for (int64_t i = 0; i < ROWS * WIDTH; i++) {
        float w = want[i] + 1.0f;
        assert_memory_equal(&all[i], &w, sizeof w);
    }
    free(buf);
}

static void test_ram_and_file_give_back_the_bits(void **state)
{
    (void)state;
    float *want = malloc(sizeof(float) * ROWS * WIDTH);
    qf_test_rng rng = qf_test_rng_init(7);
    for (int64_t i = 0; i < ROWS * WIDTH; i++) want[i] = (float)(qf_test_rng_u64(&rng) >> 40) * 1e-3f - 8000.0f;
    want[5] = -0.0f; /* signed zero survives too */
    char path[300];
    snprintf(path, sizeof path, "%s/hidden.f32", qf_test_tmp);
    const int64_t chunks[3][2] = {{ROWS, ROWS}, {7, 300}, {1, 999}};
    for (int spill = 0; spill < 2; spill++)
        for (int c = 0; c < 3; c++) {
            qf_act_store *s = NULL;
            qf_error err;
            assert_int_equal(qf_act_store_open(&s, "hidden states", ROWS, WIDTH, spill ? path : NULL, &err), QF_OK);
            assert_int_equal(qf_act_store_spilled(s), spill);
            assert_int_equal(qf_act_store_bytes(s), (uint64_t)ROWS * WIDTH * 4);
            struct stat sb;
            if (spill) { /* the blocks are there from the start */
                assert_int_equal(stat(path, &sb), 0);
                assert_int_equal((uint64_t)sb.st_size, (uint64_t)ROWS * WIDTH * 4);
            }
            round_trip(s, chunks[c][0], chunks[c][1], want);
            qf_act_store_close(s);
            assert_int_not_equal(stat(path, &sb), 0); /* removed (or never made) */
        }
    qf_act_store_close(NULL);
    free(want);
}

static void test_unwritable_file_is_an_io_error(void **state)
{
    (void)state;
    char path[300];
    snprintf(path, sizeof path, "%s/no-such-dir/act.f32", qf_test_tmp);
    qf_act_store *s = (qf_act_store *)1;
    qf_error err;
    assert_int_equal(qf_act_store_open(&s, "attention outputs", 10, 4, path, &err), QF_ERR_IO);
    assert_null(s);
    assert_non_null(strstr(err.msg, "no-such-dir/act.f32"));
    assert_non_null(strstr(err.msg, "attention outputs"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ram_and_file_give_back_the_bits),
        cmocka_unit_test(test_unwritable_file_is_an_io_error),
    };
    return cmocka_run_group_tests(tests, qf_test_tmp_setup, qf_test_tmp_teardown);
}
