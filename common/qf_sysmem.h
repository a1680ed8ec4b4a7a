/* qf_sysmem.h - how much host memory there is, and how much of it this process holds.
 *
 * Owns the numbers a host-memory budget (`qforge convert --max-memory`) is made of: the
 * host's limit (physical RAM, or the memory limit of the cgroup the process runs in when
 * that is lower: a container, a Slurm job with --mem), the default budget taken from it,
 * and the process's current and peak resident set (what `ps` and Slurm count).  Linux only
 * (/proc, /sys); a value that cannot be read is 0.  Also the one way sizes are printed.
 */
#ifndef QF_SYSMEM_H
#define QF_SYSMEM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Physical RAM, or the cgroup (v2 memory.max, v1 memory.limit_in_bytes) limit when lower. */
uint64_t qf_mem_host_limit(void);
/* The budget used when none is given: 3/4 of qf_mem_host_limit() (the rest is left to the
 * page cache, the kernel and whatever else runs); 0 when the limit is unknown. */
uint64_t qf_mem_default_budget(void);
/* Resident set size now (/proc/self/statm), in bytes. */
uint64_t qf_mem_rss_now(void);
/* Peak resident set size since the process started (getrusage ru_maxrss), in bytes. */
uint64_t qf_mem_rss_peak(void);

/* "512 MB", "1.50 GB" (decimal units, as --max-memory's suffixes read): writes into buf of
 * n bytes and returns it. */
const char *qf_mem_format(uint64_t bytes, char *buf, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* QF_SYSMEM_H */
