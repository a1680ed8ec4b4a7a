/* qf_fuzz.h - what every libFuzzer target in tests/fuzz/ shares.
 *
 * QF_FUZZ_ASSERT(c): a property the target checks on what the parser accepted.  Under
 * libFuzzer it aborts (a finding); tests/test_fuzz_replay.c defines it before including the
 * targets, to count a failure on a replayed input instead.
 */
#ifndef QF_FUZZ_H
#define QF_FUZZ_H

#include <stdlib.h>

#ifndef QF_FUZZ_ASSERT
#define QF_FUZZ_ASSERT(c)  \
    do {                   \
        if (!(c)) abort(); \
    } while (0)
#endif

#endif
