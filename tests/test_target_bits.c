/* test_target_bits.c - the byte-budget solver behind --target-bits (qf_budget.h), checked
 * against brute-force enumeration of every assignment (the independent optimum) and a
 * hand-solved case.  The whole flag is checked end to end by tests/interop/mixed.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qf_budget.h"

static uint64_t lcg_state;
static double lcg(void) /* uniform in [0, 1) */
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) / 9007199254740992.0;
}

/* Hand-solved: the hull drops item 2's middle option, and the greedy takes item 1's first
 * step (0.6 per byte), item 0's (0.4), item 1's second (0.1), and then nothing fits. */
static void test_budget_hand(void **state)
{
    (void)state;
    const double cost[] = {10, 20, 40, 10, 20, 40, 10, 20, 40};
    const double err[] = {5, 1, 0, 8, 2, 0, 1, 0.9, 0};
    int choice[3];
    double tc, te;
    qf_error e = {0};
    assert_int_equal(qf_budget_solve(3, 3, cost, err, 70, choice, &tc, &te, &e), QF_OK);
    assert_int_equal(choice[0], 1);
    assert_int_equal(choice[1], 2);
    assert_int_equal(choice[2], 0);
    assert_true(tc == 70 && te == 2); /* the optimum: brute force over the 27 assignments gives 2 at 70 bytes */
    /* the whole budget: everything at its best */
    assert_int_equal(qf_budget_solve(3, 3, cost, err, 120, choice, &tc, &te, &e), QF_OK);
    assert_true(choice[0] == 2 && choice[1] == 2 && choice[2] == 2 && te == 0);
    /* exactly the cheapest */
    assert_int_equal(qf_budget_solve(3, 3, cost, err, 30, choice, &tc, &te, &e), QF_OK);
    assert_true(choice[0] == 0 && choice[1] == 0 && choice[2] == 0 && tc == 30 && te == 14);
}

/* Random instances against brute force: always within budget, never an unavailable option,
 * never better than the optimum (that would be a bookkeeping bug), and worse by at most one
 * item's largest error drop (the greedy's bound); most instances are solved exactly. */
static void test_budget_vs_bruteforce(void **state)
{
    (void)state;
    enum { NI = 5, NO = 4, TRIALS = 400 };
    lcg_state = 7;
    int exact = 0;
    for (int t = 0; t < TRIALS; t++) {
        double cost[NI * NO], err[NI * NO], lo = 0, hi = 0, bound = 0;
        for (int i = 0; i < NI; i++) {
            double cmin = 1e300, cmax = 0, emax = 0, emin = 1e300;
            for (int k = 0; k < NO; k++) {
                cost[i * NO + k] = k > 0 && lcg() < 0.2 ? -1 : floor(1 + 100 * lcg());
                err[i * NO + k] = 10 * lcg();
                if (cost[i * NO + k] < 0) continue;
                if (cost[i * NO + k] < cmin || (cost[i * NO + k] == cmin && err[i * NO + k] < emax)) cmin = cost[i * NO + k], emax = err[i * NO + k];
                cmax = cost[i * NO + k] > cmax ? cost[i * NO + k] : cmax;
                emin = err[i * NO + k] < emin ? err[i * NO + k] : emin;
            }
            lo += cmin, hi += cmax;
            bound = emax - emin > bound ? emax - emin : bound;
        }
        const double budget = lo + (hi - lo) * lcg();
        int choice[NI];
        double tc, te;
        qf_error e = {0};
        assert_int_equal(qf_budget_solve(NI, NO, cost, err, budget, choice, &tc, &te, &e), QF_OK);
        double c = 0, r = 0;
        for (int i = 0; i < NI; i++) {
            assert_true(cost[i * NO + choice[i]] >= 0);
            c += cost[i * NO + choice[i]], r += err[i * NO + choice[i]];
        }
        assert_true(c <= budget && fabs(c - tc) < 1e-9 && fabs(r - te) < 1e-9);
        double best = 1e300;
        for (int a = 0; a < NO * NO * NO * NO * NO; a++) {
            double bc = 0, be = 0;
            int ok = 1;
            for (int i = 0, x = a; i < NI; i++, x /= NO) {
                const int k = x % NO;
                if (cost[i * NO + k] < 0) ok = 0;
                bc += cost[i * NO + k], be += err[i * NO + k];
            }
            if (ok && bc <= budget && be < best) best = be;
        }
        assert_true(te >= best - 1e-9);
        assert_true(te <= best + bound + 1e-9);
        exact += te <= best + 1e-9;
    }
    assert_true(exact >= TRIALS / 2);
}

static void test_budget_refuses(void **state)
{
    (void)state;
    const double cost[] = {10, 20, -1, -1};
    const double err[] = {1, 0, 0, 0};
    int choice[2];
    qf_error e = {0};
    assert_int_equal(qf_budget_solve(1, 2, cost, err, 9, choice, NULL, NULL, &e), QF_ERR_USAGE);
    assert_non_null(strstr(e.msg, "10 bytes"));
    assert_int_equal(qf_budget_solve(2, 2, cost, err, 100, choice, NULL, NULL, &e), QF_ERR_USAGE); /* item 1: none */
    assert_non_null(strstr(e.msg, "item 1"));
}

int main(void)
{
    omp_set_num_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_hand),         cmocka_unit_test(test_budget_vs_bruteforce),
        cmocka_unit_test(test_budget_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
