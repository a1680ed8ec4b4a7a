/* qf_sysmem.c - host memory limit, default budget, resident set (see qf_sysmem.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "qf_sysmem.h"

/* A byte count from the first line of a /sys or /proc file; 0 for "max", garbage or no file. */
static uint64_t qf_read_u64(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[64] = {0};
    char *ok = fgets(line, sizeof line, f);
    fclose(f);
    if (!ok) return 0;
    char *end;
    unsigned long long v = strtoull(line, &end, 10);
    return end == line ? 0 : (uint64_t)v;
}

static uint64_t qf_min_known(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

/* The memory limit of this process's cgroup: v2 ("0::/path" -> memory.max) or v1
 * ("N:memory:/path" -> memory.limit_in_bytes), looked up at the cgroup's path and at the
 * mount's root (a container usually sees its own cgroup there).  v1 "no limit" is a huge
 * number, which the caller's min with the physical RAM discards. */
static uint64_t qf_cgroup_limit(void)
{
    uint64_t lim = qf_min_known(qf_read_u64("/sys/fs/cgroup/memory.max"),
                                qf_read_u64("/sys/fs/cgroup/memory/memory.limit_in_bytes"));
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return lim;
    char line[512], path[640];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "0::", 3)) {
            snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", line + 3);
            lim = qf_min_known(lim, qf_read_u64(path));
        } else {
            const char *c = strchr(line, ':');
            if (c && !strncmp(c + 1, "memory:", 7)) {
                snprintf(path, sizeof path, "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", c + 8);
                lim = qf_min_known(lim, qf_read_u64(path));
            }
        }
    }
    fclose(f);
    return lim;
}

uint64_t qf_mem_host_limit(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    uint64_t phys = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    return qf_min_known(phys, qf_cgroup_limit());
}

uint64_t qf_mem_default_budget(void) { return qf_mem_host_limit() / 4 * 3; }

uint64_t qf_mem_rss_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long psz = sysconf(_SC_PAGESIZE);
    return n == 2 && psz > 0 ? (uint64_t)resident * (uint64_t)psz : 0;
}

uint64_t qf_mem_rss_peak(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024u; /* Linux reports kilobytes */
}

const char *qf_mem_format(uint64_t bytes, char *buf, size_t n)
{
    if (bytes >= 1000000000ull) snprintf(buf, n, "%.2f GB", bytes / 1e9);
    else snprintf(buf, n, "%.0f MB", bytes / 1e6);
    return buf;
}
