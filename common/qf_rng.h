/* qf_rng.h - SplitMix64, the one deterministic random generator of the tree.
 *
 * Owns the generator behind everything qforge draws at random: synthetic checkpoints
 * (qforge synth), calibration sample offsets (--seed), and every seeded test input.  One
 * definition, so a seed means the same numbers in the tool, the tests and their Python
 * mirrors (tests/interop), on every platform and thread count.  SplitMix64 (Steele, Lea,
 * Flood 2014): full period, well mixed, one add and three xor-multiplies per draw; a state
 * per stream (for example per (tensor, row)) keeps parallel generation deterministic.
 * Header-only; no global state.
 */
#ifndef QF_RNG_H
#define QF_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Advance *state and return the next 64 random bits. */
static inline uint64_t qf_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#ifdef __cplusplus
}
#endif

#endif /* QF_RNG_H */
