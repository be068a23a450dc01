/* test_cgroup.c: unit tests of server/core/cgroup.c against fake cgroup v2 and v1 trees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/core/cgroup.c"

static char root[64]; /* a fresh fake cgroup mount for each test */
static int cpus;      /* what the affinity mask allows */
static uint64_t physical;

static void put(const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", root, name);
    if (strchr(name, '/')) {
        char sub[256];
        snprintf(sub, sizeof(sub), "%s/%.*s", root, (int)(strchr(name, '/') - name), name);
        assert_true(mkdir(sub, 0700) == 0 || errno == EEXIST);
    }
    assert_non_null(f = fopen(path, "w"));
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof(root), "/tmp/test_cgroup.XXXXXX");
    return mkdtemp(root) ? 0 : 1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(root, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int group_setup(void **state)
{
    cpu_set_t set;
    (void)state;
    cpus = sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    physical = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    return cpus >= 1 && physical > 0 ? 0 : 1;
}

static void test_v2_cpu(void **state)
{
    static const struct { const char *cpu_max; int quota; } cases[] = {
        {"50000 100000\n", 1},    /* half a CPU still needs one thread */
        {"100000 100000\n", 1},
        {"100001 100000\n", 2},   /* rounded up */
        {"150000 100000\n", 2},
        {"200000 100000", 2},     /* no newline */
        {"1 100000\n", 1},
        {"max 100000\n", 0},      /* 0: no quota, the affinity mask decides */
        {"garbage\n", 0},
        {"100000\n", 0},          /* no period */
        {"100000 0\n", 0},
        {"-5 100000\n", 0},
        {"\n", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %zu\n", i);
        put("cpu.max", cases[i].cpu_max);
        assert_int_equal(me_cgroup_cpus(root), cases[i].quota ? min_int(cases[i].quota, cpus) : cpus);
    }
}

static void test_v2_memory(void **state)
{
    (void)state;
    put("memory.max", "268435456\n");
    assert_int_equal(me_cgroup_memory(root), 268435456);
    put("memory.max", "max\n");
    assert_int_equal(me_cgroup_memory(root), physical);
    put("memory.max", "0\n");
    assert_int_equal(me_cgroup_memory(root), physical);
    put("memory.max", "12abc\n");
    assert_int_equal(me_cgroup_memory(root), physical);
    put("memory.max", "99999999999999999999999\n");
    assert_int_equal(me_cgroup_memory(root), physical);
}

static void test_memory_capped_by_physical(void **state)
{
    char text[32];
    (void)state;
    snprintf(text, sizeof(text), "%llu\n", (unsigned long long)(physical + 4096));
    put("memory.max", text);
    assert_int_equal(me_cgroup_memory(root), physical);
}

static void test_v1(void **state)
{
    (void)state;
    put("cpu/cpu.cfs_quota_us", "50000\n");
    put("cpu/cpu.cfs_period_us", "100000\n");
    put("memory/memory.limit_in_bytes", "134217728\n");
    assert_int_equal(me_cgroup_cpus(root), 1);
    assert_int_equal(me_cgroup_memory(root), 134217728);

    put("cpu/cpu.cfs_quota_us", "250000\n");
    assert_int_equal(me_cgroup_cpus(root), min_int(3, cpus));
}

static void test_v1_unlimited(void **state)
{
    char period[128];
    (void)state;
    put("cpu/cpu.cfs_quota_us", "-1\n");
    put("cpu/cpu.cfs_period_us", "100000\n");
    put("memory/memory.limit_in_bytes", "9223372036854771712\n"); /* v1's "no limit" */
    assert_int_equal(me_cgroup_cpus(root), cpus);
    assert_int_equal(me_cgroup_memory(root), physical);

    /* a quota without its period is no quota */
    put("cpu/cpu.cfs_quota_us", "50000\n");
    snprintf(period, sizeof(period), "%s/cpu/cpu.cfs_period_us", root);
    assert_int_equal(remove(period), 0);
    assert_int_equal(me_cgroup_cpus(root), cpus);
}

static void test_v2_before_v1(void **state)
{
    (void)state;
    put("cpu.max", "max 100000\n");
    put("memory.max", "max\n");
    put("cpu/cpu.cfs_quota_us", "50000\n");
    put("cpu/cpu.cfs_period_us", "100000\n");
    put("memory/memory.limit_in_bytes", "134217728\n");
    assert_int_equal(me_cgroup_cpus(root), cpus);
    assert_int_equal(me_cgroup_memory(root), physical);
}

static void test_missing(void **state)
{
    char absent[128];
    (void)state;
    assert_int_equal(me_cgroup_cpus(root), cpus);
    assert_int_equal(me_cgroup_memory(root), physical);
    snprintf(absent, sizeof(absent), "%s/absent", root);
    assert_int_equal(me_cgroup_cpus(absent), cpus);
    assert_int_equal(me_cgroup_memory(absent), physical);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v2_cpu, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_capped_by_physical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v1_unlimited, setup, teardown),
        cmocka_unit_test_setup_teardown(test_v2_before_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
