/* cgroup.h: the CPU and memory limits of the container we run in (cgroup v2, then v1). */
#ifndef ME_CGROUP_H
#define ME_CGROUP_H

#include <stdint.h>

/* CPUs this process may use: cpu.max quota/period rounded up, else the affinity mask,
 * else online CPUs. root is the cgroup mount ("/sys/fs/cgroup" in production; tests pass a
 * directory of fake files). Never returns less than 1. */
int me_cgroup_cpus(const char *root);

/* Bytes of memory this process may use: memory.max (v2) or memory.limit_in_bytes (v1),
 * capped by physical memory; physical memory when unlimited or unknown. Never 0. */
uint64_t me_cgroup_memory(const char *root);

#endif
