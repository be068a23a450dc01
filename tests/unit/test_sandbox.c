/* test_sandbox.c: what a confined process can no longer do, and what it still can. Each
 * case confines a forked child, which reports what it saw through a pipe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
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
#include "server/core/clock.h"
#include "server/media/montage/montage_sandbox.h"
#include "server/media/sandbox/decoder_wire.h"
#include "server/media/sandbox/photo_sandbox.h"
#include "server/media/sandbox/video_sandbox.h"
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

/* ---- the decoders' wire (decoder_wire.h): what a hostile child sends back ---- */

static me_photo_config_t wire_pc;
static me_video_params_t wire_vp;
static me_montage_params_t wire_mp = {.nclips = 2};

static void wire_job(me_decoder_job_t *job, int montage)
{
    me_config_t cfg;
    assert_int_equal(me_config_defaults(&cfg), 0);
    me_photo_config_init(&wire_pc, &cfg);
    me_config_free(&cfg);
    me_video_params_default(&wire_vp);
    memset(job, 0, sizeof(*job));
    job->pc = &wire_pc;
    job->wire = montage ? me_montage_wire() : me_video_wire();
    job->params = montage ? (const void *)&wire_mp : (const void *)&wire_vp;
    job->ninputs = montage ? 2 * wire_mp.nclips : 0;
}

static int msg_kind(const me_decoder_job_t *job, me_decoder_msg_t m)
{
    me_decoder_msg_t out;
    return me_decoder_wire_message(job, &m, sizeof(m), &out);
}

static int no_read(void *ctx, int input, uint64_t offset, void *buf, size_t len, size_t *got)
{
    (void)ctx, (void)input, (void)offset, (void)buf, (void)len;
    *got = 0;
    return 0;
}

static void test_a_child_message_out_of_protocol_is_refused(void **state)
{
    me_decoder_job_t video, montage;
    me_decoder_msg_t out;
    (void)state;
    wire_job(&video, 0);
    wire_job(&montage, 1);
    montage.read = no_read;
    const uint32_t vm = video.wire->magic, mm = montage.wire->magic;
    const me_decoder_msg_t progress = {
        .magic = vm, .kind = ME_DECODER_MSG_PROGRESS, .done = 1, .total = 2, .weight = 1};
    const me_decoder_msg_t read = {.magic = mm, .kind = ME_DECODER_MSG_READ, .input = 3, .offset = 7, .len = 4096};
    me_decoder_msg_t m;

    assert_int_equal(msg_kind(&video, progress), ME_DECODER_MSG_PROGRESS);
    assert_int_equal(msg_kind(&montage, read), ME_DECODER_MSG_READ);
    m = progress, m.magic = mm; /* another protocol's */
    assert_int_equal(msg_kind(&video, m), -1);
    m = progress, m.kind = 9;
    assert_int_equal(msg_kind(&video, m), -1);
    m = progress, m.done = NAN;
    assert_int_equal(msg_kind(&video, m), -1);
    m = progress, m.total = -1;
    assert_int_equal(msg_kind(&video, m), -1);
    m = progress, m.weight = 0.5;
    assert_int_equal(msg_kind(&video, m), -1);
    m = progress, m.magic = mm, m.done = 1.5; /* a montage counts whole clips, at most its own */
    assert_int_equal(msg_kind(&montage, m), -1);
    m.done = 3;
    assert_int_equal(msg_kind(&montage, m), -1);
    m.done = 2;
    assert_int_equal(msg_kind(&montage, m), ME_DECODER_MSG_PROGRESS);
    m = read, m.magic = vm; /* a video child reads nothing of ours */
    assert_int_equal(msg_kind(&video, m), -1);
    m = read, m.input = 4; /* 2 clips: inputs 0 to 3 */
    assert_int_equal(msg_kind(&montage, m), -1);
    m.input = -1;
    assert_int_equal(msg_kind(&montage, m), -1);
    m = read, m.len = 0;
    assert_int_equal(msg_kind(&montage, m), -1);
    m.len = ME_DECODER_READ_MAX + 1;
    assert_int_equal(msg_kind(&montage, m), -1);
    m = (me_decoder_msg_t){.magic = vm, .kind = ME_DECODER_MSG_RESULT, .ret = ME_EVIDEO_TOO_LONG};
    assert_int_equal(msg_kind(&video, m), ME_DECODER_MSG_RESULT);
    m.ret = ME_EBUSY; /* the parent's code, never a child's */
    assert_int_equal(msg_kind(&video, m), -1);
    m.magic = mm, m.ret = ME_EVIDEO_TOO_LONG; /* a video's code from a montage */
    assert_int_equal(msg_kind(&montage, m), -1);
    assert_int_equal(me_decoder_wire_message(&video, &progress, sizeof(progress) - 1, &out), -1); /* short */
}

static void test_a_child_result_is_cut_to_its_arrays_and_held_to_the_job(void **state)
{
    me_decoder_job_t video, montage;
    me_video_result_t v;
    me_montage_result_t m;
    char why[160];
    (void)state;
    wire_job(&video, 0);
    wire_job(&montage, 1);

    memset(&v, 'x', sizeof(v)); /* every string unterminated, the pointer wild */
    v.facts.duration = 3, v.facts.fps = 30, v.facts.width = 640, v.facts.height = 360;
    v.noutputs = 0;
    assert_int_equal(me_decoder_wire_result(&video, ME_EMEDIA, &v, sizeof(v), why, sizeof(why)), 0);
    assert_null(v.poster);
    assert_int_equal(strlen(v.facts.container), sizeof(v.facts.container) - 1);
    assert_int_equal(strlen(v.detail), sizeof(v.detail) - 1);
    v.noutputs = 1; /* outputs for a failure */
    assert_int_equal(me_decoder_wire_result(&video, ME_EMEDIA, &v, sizeof(v), why, sizeof(why)), -1);
    assert_string_equal(why, "facts out of range");
    v.noutputs = wire_vp.nrenditions;
    for (int i = 0; i < v.noutputs; i++) {
        snprintf(v.outputs[i].name, sizeof(v.outputs[i].name), "%s", wire_vp.renditions[i].name);
        v.outputs[i].width = v.outputs[i].height = 2, v.outputs[i].duration = 3, v.outputs[i].bytes = 100;
    }
    assert_int_equal(me_decoder_wire_result(&video, 0, &v, sizeof(v), why, sizeof(why)), 0);
    v.outputs[0].width = wire_vp.renditions[0].size + 2; /* larger than asked */
    assert_int_equal(me_decoder_wire_result(&video, 0, &v, sizeof(v), why, sizeof(why)), -1);
    assert_string_equal(why, "rendition 0 out of range");
    v.outputs[0].width = 2, v.facts.duration = INFINITY;
    assert_int_equal(me_decoder_wire_result(&video, 0, &v, sizeof(v), why, sizeof(why)), -1);
    v.facts.duration = 3;
    assert_int_equal(me_decoder_wire_result(&video, 0, &v, sizeof(v) - 1, why, sizeof(why)), -1);

    memset(&m, 0, sizeof(m));
    m.width = 1280, m.height = 720, m.duration = 2, m.bytes = 1000, m.failed_clip = -1, m.starts[0] = NAN;
    assert_int_equal(me_decoder_wire_result(&montage, 0, &m, sizeof(m), why, sizeof(why)), 0);
    assert_true(m.starts[0] == 0); /* a start that is no number is none */
    m.failed_clip = 2;
    assert_int_equal(me_decoder_wire_result(&montage, ME_ECORRUPT, &m, sizeof(m), why, sizeof(why)), -1);
    assert_string_equal(why, "a failed clip out of range");
    m.failed_clip = -1, m.width = 1920;
    assert_int_equal(me_decoder_wire_result(&montage, 0, &m, sizeof(m), why, sizeof(why)), -1);
    assert_string_equal(why, "a film of 1920x720");
}

static const char source_bytes[] = "0123456789abcdefghij";

static int source_read(void *ctx, int input, uint64_t offset, void *buf, size_t len, size_t *got)
{
    (void)ctx;
    *got = 0;
    if (input != 1)
        return ME_EIO;
    if (offset < sizeof(source_bytes) - 1) {
        *got = len < sizeof(source_bytes) - 1 - offset ? len : sizeof(source_bytes) - 1 - offset;
        memcpy(buf, source_bytes + offset, *got);
    }
    return 0;
}

static int told_done(void *ctx, const me_decoder_msg_t *m)
{
    *(double *)ctx = m->done;
    return 0;
}

/* A montage child, on fd 3 as the real one: reads a range (and one the source refuses), says
 * whether it got the right bytes as its progress, then answers a film of 2 clips. */
static int wire_child(void)
{
    char buf[16];
    size_t got;
    me_montage_result_t r;
    me_photo_result_t poster = {0};
    int right = me_decoder_child_read(me_montage_wire()->magic, 1, 10, buf, 5, &got) == 0 && got == 5 &&
                memcmp(buf, "abcde", 5) == 0 &&
                me_decoder_child_read(me_montage_wire()->magic, 0, 0, buf, 5, &got) == ME_EIO && got == 0;
    if (me_decoder_child_progress(me_montage_wire()->magic, right ? 2 : 0, 2, 1) != 0)
        return 1;
    memset(&r, 0, sizeof(r));
    r.failed_clip = 1;
    snprintf(r.detail, sizeof(r.detail), "clip 1: unreadable");
    r.poster = malloc(3); /* a pointer that must not cross */
    int ret =
        me_decoder_child_result(me_montage_wire()->magic, ME_ECORRUPT, &r, sizeof(r), &r.poster, &wire_pc, &poster);
    free(r.poster);
    return ret != 0;
}

static void test_a_conversation_serves_ranges_and_takes_the_result(void **state)
{
    me_decoder_job_t job;
    me_montage_result_t r;
    me_photo_result_t poster;
    double done = -1;
    char why[160];
    int sv[2], ret = 0, status;
    (void)state;
    wire_job(&job, 1);
    job.read = source_read, job.progress = told_done, job.progress_ctx = &done;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(sv[1]);
        _exit(dup2(sv[0], ME_CHILD_FD) != ME_CHILD_FD || wire_child() != 0);
    }
    close(sv[0]);
    memset(&r, 0, sizeof(r));
    job.begun = me_clock_mono_ms(), job.deadline = job.begun + 10000;
    assert_int_equal(me_decoder_wire_recv(sv[1], &job, &r, &poster, &ret, why, sizeof(why)), 0);
    assert_int_equal(ret, ME_ECORRUPT);
    assert_true(done == 2); /* the child got the source's bytes, and its refusal */
    assert_int_equal(r.failed_clip, 1);
    assert_string_equal(r.detail, "clip 1: unreadable");
    assert_null(r.poster);
    assert_int_equal(poster.noutputs, 0);
    me_photo_result_free(&poster);
    close(sv[1]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void test_a_child_that_stops_halfway_is_named(void **state)
{
    me_decoder_job_t job;
    me_video_result_t r;
    me_photo_result_t poster;
    me_decoder_msg_t m = {.kind = ME_DECODER_MSG_RESULT, .ret = 0};
    char why[160];
    int sv[2], ret = 0;
    (void)state;
    wire_job(&job, 0);
    m.magic = job.wire->magic;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[0], &m, sizeof(m)), sizeof(m));
    assert_int_equal(write(sv[0], "half a result", 13), 13);
    close(sv[0]);
    memset(&r, 0, sizeof(r));
    job.begun = me_clock_mono_ms(), job.deadline = job.begun + 10000;
    assert_int_equal(me_decoder_wire_recv(sv[1], &job, &r, &poster, &ret, why, sizeof(why)), -1);
    assert_string_equal(why, "closed its socket");
    close(sv[1]);

    m.ret = ME_EBUSY; /* a code no child answers with */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[0], &m, sizeof(m)), sizeof(m));
    assert_int_equal(me_decoder_wire_recv(sv[1], &job, &r, &poster, &ret, why, sizeof(why)), -1);
    assert_string_equal(why, "answered out of protocol");
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_network_exec_processes_or_signals_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_the_file_system_shrinks_to_the_given_directories, setup, teardown),
        cmocka_unit_test(test_refused_with_threads),
        cmocka_unit_test_setup_teardown(test_a_runtime_refusing_landlock_is_named, setup, teardown),
        cmocka_unit_test(test_a_child_message_out_of_protocol_is_refused),
        cmocka_unit_test(test_a_child_result_is_cut_to_its_arrays_and_held_to_the_job),
        cmocka_unit_test(test_a_conversation_serves_ranges_and_takes_the_result),
        cmocka_unit_test(test_a_child_that_stops_halfway_is_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
