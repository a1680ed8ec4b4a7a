/* qf_test_tmpdir.h - internal to tests/: one scratch directory per test program.
 *
 * Owns the group fixture that makes /tmp/qf_test.XXXXXX before a cmocka group runs and
 * removes it (with everything the tests wrote) after:
 *     cmocka_run_group_tests(tests, qf_test_tmp_setup, qf_test_tmp_teardown);
 * Tests build paths under qf_test_tmp.  Include in one translation unit only (a test program).
 */
#ifndef QF_TEST_TMPDIR_H
#define QF_TEST_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

#include "qf_fs.h"

static char qf_test_tmp[256];

static int qf_test_tmp_setup(void **state)
{
    (void)state;
    snprintf(qf_test_tmp, sizeof qf_test_tmp, "/tmp/qf_test.XXXXXX");
    return mkdtemp(qf_test_tmp) ? 0 : -1;
}

static int qf_test_tmp_teardown(void **state)
{
    (void)state;
    qf_remove_tree(qf_test_tmp);
    return 0;
}

#endif /* QF_TEST_TMPDIR_H */
