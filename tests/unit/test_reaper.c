/* test_reaper.c: unit tests of server/core/reaper.c: orphans are collected, our own children
 * are left to their owners (with their exit status), nothing blocks. The test process makes
 * itself a child subreaper, so that orphans come to it as they come to a container's PID 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server/core/reaper.c"

/* 1 once pid is a zombie (exited, not collected), 0 after 5 s. */
static int becomes_zombie(pid_t pid)
{
    char name[32];
    snprintf(name, sizeof(name), "%d", (int)pid);
    for (int i = 0; i < 5000; i++) {
        char state = 0;
        if (parent_of(name, &state) > 0 && state == 'Z')
            return 1;
        usleep(1000);
    }
    return 0;
}

/* A child that exits with status, registered as ours the way decoder children are. */
static pid_t own_child(int status)
{
    pid_t pid;
    me_reaper_lock();
    if ((pid = fork()) == 0)
        _exit(status);
    assert_true(pid > 0);
    assert_int_equal(me_reaper_watch(pid), 0);
    me_reaper_unlock();
    return pid;
}

/* An orphan: a grandchild whose parent exits first; it comes to us (the subreaper) and exits.
 * Returns its pid, once it is a zombie of ours. */
static pid_t orphan(void)
{
    int fds[2];
    pid_t mid, grandchild = 0;

    assert_int_equal(pipe(fds), 0);
    if ((mid = fork()) == 0) {
        pid_t g = fork();
        if (g == 0) {
            usleep(20 * 1000); /* outlives its parent */
            _exit(0);
        }
        (void)!write(fds[1], &g, sizeof(g));
        _exit(0);
    }
    assert_true(mid > 0);
    assert_int_equal(read(fds[0], &grandchild, sizeof(grandchild)), sizeof(grandchild));
    close(fds[0]), close(fds[1]);
    assert_int_equal(waitpid(mid, NULL, 0), mid); /* the parent is ours to wait for here */
    assert_true(becomes_zombie(grandchild));
    return grandchild;
}

static void test_orphans_collected_own_children_left(void **state)
{
    int status = 0;
    pid_t mine = own_child(7), stray = orphan();

    assert_true(becomes_zombie(mine));
    assert_int_equal(me_reaper_reap(), 1);
    /* the orphan is gone for good: no zombie left, nothing to wait for */
    assert_int_equal(kill(stray, 0), -1);
    assert_int_equal(errno, ESRCH);
    /* ours kept its exit status for its owner */
    assert_int_equal(waitpid(mine, &status, WNOHANG), mine);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 7);
    me_reaper_forget(mine);
    assert_int_equal(me_reaper_reap(), 0);
}

static void test_forgotten_child_is_collected(void **state)
{
    /* an owner that forgets a child it never waited for leaves it to the reaper */
    pid_t pid = own_child(0);
    assert_true(becomes_zombie(pid));
    assert_int_equal(me_reaper_reap(), 0);
    me_reaper_forget(pid);
    assert_int_equal(me_reaper_reap(), 1);
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void test_many_watched_and_running_children(void **state)
{
    pid_t pids[40];
    int status;

    /* more than the first allocation; running children are never waited for (no blocking) */
    for (int i = 0; i < 40; i++) {
        me_reaper_lock();
        if ((pids[i] = fork()) == 0) {
            pause();
            _exit(0);
        }
        assert_int_equal(me_reaper_watch(pids[i]), 0);
        me_reaper_unlock();
    }
    pid_t runner = fork();
    if (runner == 0) {
        pause();
        _exit(0);
    }
    assert_int_equal(me_reaper_reap(), 0);
    for (int i = 0; i < 40; i++) {
        kill(pids[i], SIGKILL);
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFSIGNALED(status));
        me_reaper_forget(pids[i]);
    }
    me_reaper_forget(12345678); /* unknown: ignored */
    kill(runner, SIGKILL);
    assert_true(becomes_zombie(runner));
    assert_int_equal(me_reaper_reap(), 1);
    assert_int_equal(nwatched, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orphans_collected_own_children_left),
        cmocka_unit_test(test_forgotten_child_is_collected),
        cmocka_unit_test(test_many_watched_and_running_children),
    };
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("prctl(PR_SET_CHILD_SUBREAPER)");
        return 1;
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
