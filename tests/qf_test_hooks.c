/* qf_test_hooks.c - linked only into build/qforge-testing (the Makefile): the fault injection
 * the resume tests drive (tests/cli/resume.sh), read from the environment here because the
 * library reads none.  QF_TEST_KILL_AFTER_BYTES=N: SIGKILL once N bytes of tensor data are
 * written; QF_TEST_INTERRUPT_AFTER_BYTES=N: SIGINT then (convert/pipeline/write_queue.c). */
#include <stdlib.h>

extern long long qf_wq_test_kill_at, qf_wq_test_interrupt_at;

__attribute__((constructor)) static void qf_test_hooks_init(void)
{
    const char *k = getenv("QF_TEST_KILL_AFTER_BYTES"), *i = getenv("QF_TEST_INTERRUPT_AFTER_BYTES");
    if (k) qf_wq_test_kill_at = atoll(k);
    if (i) qf_wq_test_interrupt_at = atoll(i);
}
