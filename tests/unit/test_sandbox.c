/* test_sandbox.c: what a confined process can no longer do, and what it still can. Each
 * case confines a forked child, which reports what it saw through a pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "server/core/log.h"
#include "server/media/sandbox/sandbox.h"

typedef struct {
    int entered, landlock;
    int inet_socket, unix_socket, exec, fork, signal_parent, signal_self, thread; /* errno, 0: it worked */
    int read_usr, read_etc, write_tmp, read_outside_tmp;
} seen_t;

static char tmp[64], outside[80];

static void *nothing(void *arg)
{
    return arg;
}

static void *sleeper(void *arg)
{
    pause();
    return arg;
}

/* -1 / errno as a number: 0 when the call worked. */
static int err_of(int rc)
{
    return rc < 0 ? errno : 0;
}

static int try_open(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static void confined(seen_t *s)
{
    static const char *const read_dirs[] = {"/usr", "/no/such/dir", NULL};
    char path[128];
    pthread_t t;

    s->entered = me_sandbox_enter(read_dirs, tmp, &s->landlock);
    s->inet_socket = err_of(socket(AF_INET, SOCK_STREAM, 0));
    s->unix_socket = err_of(socket(AF_UNIX, SOCK_STREAM, 0));
    char *argv[] = {"/bin/true", NULL}, *envp[] = {NULL};
    s->exec = err_of(execve("/bin/true", argv, envp));
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    s->fork = pid < 0 ? errno : (waitpid(pid, NULL, 0), 0);
    s->signal_parent = err_of(kill(getppid(), 0));
    s->signal_self = err_of(kill(getpid(), 0));
    s->thread = pthread_create(&t, NULL, nothing, NULL);
    if (s->thread == 0)
        pthread_join(t, NULL);
    s->read_usr = try_open("/usr/lib/os-release", O_RDONLY);
    s->read_etc = try_open("/etc/hostname", O_RDONLY);
    snprintf(path, sizeof(path), "%s/scratch", tmp);
    s->write_tmp = try_open(path, O_WRONLY | O_CREAT | O_TRUNC);
    s->read_outside_tmp = try_open(outside, O_RDONLY);
}

/* Runs confined() in a child; its findings come back whole or the test fails. */
static seen_t run_confined(void)
{
    seen_t s;
    int p[2];

    memset(&s, 0, sizeof(s));
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        confined(&s);
        _exit(write(p[1], &s, sizeof(s)) == (ssize_t)sizeof(s) ? 0 : 1); /* _exit: no leak scan */
    }
    close(p[1]);
    assert_int_equal(read(p[0], &s, sizeof(s)), sizeof(s));
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return s;
}

static int setup(void **state)
{
    (void)state;
    strcpy(tmp, "/tmp/me-sandbox-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    /* a file beside the writable directory: not readable once confined */
    snprintf(outside, sizeof(outside), "%s-outside", tmp);
    int fd = open(outside, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    char path[128];
    (void)state;
    snprintf(path, sizeof(path), "%s/scratch", tmp);
    unlink(path);
    rmdir(tmp);
    unlink(outside);
    return 0;
}

static void test_no_network_exec_processes_or_signals_out(void **state)
{
    (void)state;
    seen_t s = run_confined();
    assert_int_equal(s.entered, 0);
    assert_int_equal(s.inet_socket, EPERM);
    assert_int_equal(s.unix_socket, EPERM);
    assert_int_equal(s.exec, EPERM);
    assert_int_equal(s.fork, EPERM);
    assert_int_equal(s.signal_parent, EPERM);
    assert_int_equal(s.signal_self, 0);
    assert_int_equal(s.thread, 0); /* libvips needs its threads */
}

static void test_the_file_system_shrinks_to_the_given_directories(void **state)
{
    (void)state;
    seen_t s = run_confined();
    assert_int_equal(s.entered, 0);
    if (s.landlock == 0) {
        print_message("no Landlock in this kernel: file system not confined\n");
        skip();
    }
    assert_int_equal(s.read_usr, 0);
    assert_int_equal(s.write_tmp, 0);
    assert_int_equal(s.read_etc, EACCES); /* where a config or a secret file could be */
    assert_int_equal(s.read_outside_tmp, EACCES);
}

/* Confining a process with threads would leave them free: refused. */
static void test_refused_with_threads(void **state)
{
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t t;
        int landlock = -1, rc = -1;
        if (pthread_create(&t, NULL, sleeper, NULL) == 0)
            rc = me_sandbox_enter(NULL, NULL, &landlock);
        _exit(write(p[1], &rc, sizeof(rc)) == (ssize_t)sizeof(rc) ? 0 : 1);
    }
    close(p[1]);
    int rc = 0;
    assert_int_equal(read(p[0], &rc, sizeof(rc)), sizeof(rc));
    close(p[0]);
    assert_int_equal(rc, ME_EINTERNAL);
    waitpid(pid, NULL, 0);
}

/* A container runtime whose seccomp profile lacks Landlock's calls (Docker's before 23.0,
 * custom profiles): they fail with EPERM. */
static void refuse_landlock(void)
{
    struct sock_filter ins[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_landlock_create_ruleset, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(ins) / sizeof(ins[0]), .filter = ins};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(3);
}

/* Where the runtime refuses Landlock, the decoder still confines itself with seccomp and says
 * which step was refused and what to allow. */
static void test_a_runtime_refusing_landlock_is_named(void **state)
{
    (void)state;
    int p[2], logp[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(pipe(logp), 0);
    pid_t pid = fork();
    if (pid == 0) {
        int r[3] = {-1, -1, -1};
        me_log_init(ME_LOG_INFO, 0, logp[1]);
        refuse_landlock();
        r[0] = me_sandbox_enter(NULL, tmp, &r[1]);
        r[2] = err_of(socket(AF_INET, SOCK_STREAM, 0));
        me_log_flush();
        _exit(write(p[1], r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(p[1]);
    close(logp[1]);
    int r[3] = {0};
    char log[2048] = {0};
    assert_int_equal(read(p[0], r, sizeof(r)), sizeof(r));
    assert_true(read(logp[0], log, sizeof(log) - 1) > 0);
    close(p[0]);
    close(logp[0]);
    waitpid(pid, NULL, 0);
    assert_int_equal(r[0], 0);     /* confined all the same */
    assert_int_equal(r[1], 0);     /* without Landlock */
    assert_int_equal(r[2], EPERM); /* seccomp holds */
    assert_non_null(strstr(log, "no Landlock (Operation not permitted)"));
    assert_non_null(strstr(log, "allow landlock_create_ruleset, landlock_add_rule and landlock_restrict_self"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_network_exec_processes_or_signals_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_file_system_shrinks_to_the_given_directories, setup, teardown),
        cmocka_unit_test(test_refused_with_threads),
        cmocka_unit_test_setup_teardown(test_a_runtime_refusing_landlock_is_named, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
