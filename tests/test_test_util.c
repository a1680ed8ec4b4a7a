/* test_test_util.c - the shared test helpers of tests/qf_test_util.h, checked by hand: the
 * metrics (max abs diff, RMSE, NMSE, ulp distance), the format tolerances (half an ulp of
 * E4M3 / E2M1, half a step plus float32 slack), and the first outputs of the seeded RNG
 * that tests/interop reproduces in Python.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <math.h>

#include "qf_test_util.h"

/* ==== tests ========================================================================== */
static void test_metric_and_tolerance_helpers_hand_computed(void **state)
{
    (void)state;
    const float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 6};
    assert_true(qf_max_abs_diff(a, b, 4) == 2.0);
    assert_true(qf_rmse(a, b, 4) == 1.0);             /* sqrt(4 / 4) */
    assert_true(fabs(qf_nmse(a, b, 4) - 4.0 / 30.0) < 1e-15); /* 4 / (1 + 4 + 9 + 16) */
    const float z[2] = {0, 0}, one[2] = {0, 1};
    assert_true(qf_nmse(z, z, 2) == 0.0);
    assert_true(isinf(qf_nmse(z, one, 2)));
    const float u1[3] = {1.0f, -0.0f, 2.0f}, u2[3] = {0x1.000002p0f, 0.0f, 0x1.fffffep0f};
    assert_int_equal(qf_ulp_distance_f32(u1[0], u2[0]), 1);
    assert_int_equal(qf_ulp_distance_f32(u1[1], u2[1]), 0);
    assert_int_equal(qf_ulp_distance_f32(-0x1p-149f, 0x1p-149f), 2);
    assert_int_equal(qf_max_ulp(u1, u2, 3), 1);
    /* E4M3 spacing: 2^-3 on [1, 2), 2^5 on [256, 448], 2^-9 for subnormals */
    assert_true(qf_tol_fp_half_ulp(1.0, 3, -6) == 0x1p-4);
    assert_true(qf_tol_fp_half_ulp(1.99, 3, -6) == 0x1p-4);
    assert_true(qf_tol_fp_half_ulp(448.0, 3, -6) == 16.0);
    assert_true(qf_tol_fp_half_ulp(0.001, 3, -6) == 0x1p-10);
    assert_true(qf_tol_fp_half_ulp(0.0, 3, -6) == 0x1p-10);
    /* E2M1 spacing: 0.5 below 2, 1 on [2, 4), 2 on [4, 6] */
    assert_true(qf_tol_fp_half_ulp(0.3, 1, 0) == 0.25);
    assert_true(qf_tol_fp_half_ulp(1.2, 1, 0) == 0.25);
    assert_true(qf_tol_fp_half_ulp(3.0, 1, 0) == 0.5);
    assert_true(qf_tol_fp_half_ulp(5.0, 1, 0) == 1.0);
    assert_true(qf_tol_half_step(2.0, 0.0) == 1.0 + QF_TOL_F32_SLACK * 2.0);
    /* the RNG is what Python's tests/interop would reproduce: pin its first outputs */
    qf_test_rng r = qf_test_rng_init(0);
    assert_true(qf_test_rng_u64(&r) == 0xe220a8397b1dcdafull);
    assert_true(qf_test_rng_u64(&r) == 0x6e789e6aa1b965f4ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metric_and_tolerance_helpers_hand_computed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
