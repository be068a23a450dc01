/* cgroup.c: reads the container's CPU and memory limits from cgroup v2 files, else v1 ones. */
#include "server/core/cgroup.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UNLIMITED UINT64_MAX

/* Reads the first line of root/name into buf. 1 when read, 0 when missing or unreadable. */
static int read_first_line(const char *root, const char *name, char *buf, size_t len)
{
    char path[PATH_MAX];
    FILE *f;
    int ok;

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", root, name) >= sizeof(path))
        return 0;
    if ((f = fopen(path, "re")) == NULL)
        return 0;
    ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    return ok;
}

/* Parses one limit: decimal bytes or microseconds; "max" (v2), "-1" (v1) and values too
 * large for 64 bits are UNLIMITED. 1 when parsed, 0 for junk. */
static int parse_limit(const char *s, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (!strcmp(s, "max") || !strcmp(s, "-1")) {
        *out = UNLIMITED;
        return 1;
    }
    if (!isdigit((unsigned char)*s))
        return 0;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (*end)
        return 0;
    *out = errno == ERANGE ? UNLIMITED : (uint64_t)v;
    return 1;
}

/* The CPU quota in whole CPUs (rounded up), or UNLIMITED when there is none or it is unknown. */
static uint64_t quota_cpus(const char *root)
{
    char line[128], period_line[64], *save = NULL, *q, *p;
    uint64_t quota, period;

    if (read_first_line(root, "cpu.max", line, sizeof(line))) {
        q = strtok_r(line, " \t\n", &save);
        p = strtok_r(NULL, " \t\n", &save);
    } else if (read_first_line(root, "cpu/cpu.cfs_quota_us", line, sizeof(line)) &&
               read_first_line(root, "cpu/cpu.cfs_period_us", period_line, sizeof(period_line))) {
        q = strtok_r(line, " \t\n", &save);
        p = strtok_r(period_line, " \t\n", &save);
    } else {
        return UNLIMITED;
    }
    if (q == NULL || p == NULL || !parse_limit(q, &quota) || !parse_limit(p, &period) || quota == UNLIMITED ||
        !period || period == UNLIMITED)
        return UNLIMITED;
    return quota / period + (quota % period != 0);
}

/* The CPUs our affinity mask allows, else the online ones. */
static int available_cpus(void)
{
    cpu_set_t set;
    long n;

    if (!sched_getaffinity(0, sizeof(set), &set))
        return CPU_COUNT(&set);
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < INT_MAX ? (int)n : 1;
}

int me_cgroup_cpus(const char *root)
{
    uint64_t quota = quota_cpus(root);
    int n = available_cpus();

    if (quota < (uint64_t)n)
        n = (int)quota;
    return n < 1 ? 1 : n;
}

uint64_t me_cgroup_memory(const char *root)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t physical = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UNLIMITED;
    uint64_t limit = UNLIMITED;
    char line[128];

    if (read_first_line(root, "memory.max", line, sizeof(line)) ||
        read_first_line(root, "memory/memory.limit_in_bytes", line, sizeof(line))) {
        line[strcspn(line, " \t\n")] = '\0';
        if (!parse_limit(line, &limit) || !limit)
            limit = UNLIMITED; /* junk or 0: unknown, not "no memory" */
    }
    return limit < physical ? limit : physical;
}
