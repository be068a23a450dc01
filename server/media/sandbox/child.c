/* child.c: decoder processes: the pool, starting and ending them, the socket, confinement. */
#include "server/media/sandbox/child.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/reaper.h"
#include "server/media/sandbox/sandbox.h"

#define SCRATCH_PREFIX "mediaedge-decoders-" /* + the server's pid (+ a pool's suffix) */

struct me_child_pool {
    int slots, n, nidle; /* slots: asked for; n: made so far */
    me_child_t *all, **idle;
    int extra_fd;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    char exe[PATH_MAX], command[32], scratch[PATH_MAX];
};

int me_child_xfer(int fd, void *buf, size_t len, int out, int64_t deadline)
{
    char *p = buf;

    while (len > 0) {
        if (deadline) {
            struct pollfd pfd = {.fd = fd, .events = out ? POLLOUT : POLLIN};
            int64_t left = deadline - me_clock_mono_ms();
            int r = left > 0 ? poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left) : 0;
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                errno = r == 0 ? ETIMEDOUT : errno;
                return -1;
            }
        }
        int flags = MSG_NOSIGNAL | (deadline ? MSG_DONTWAIT : 0);
        ssize_t n = out ? send(fd, p, len, flags) : recv(fd, p, len, flags);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            errno = n == 0 ? EPIPE : errno;
            return -1;
        }
        p += n, len -= (size_t)n;
    }
    return 0;
}

/* ---- the parent's side ---- */

int me_child_fd_above(int fd)
{
    int moved;
    /* dup2 onto itself would keep close-on-exec, and a spawn action could overwrite another's source */
    if (fd < 0 || fd > ME_CHILD_EXTRA_FD)
        return fd;
    moved = fcntl(fd, F_DUPFD_CLOEXEC, ME_CHILD_EXTRA_FD + 1);
    close(fd);
    return moved;
}

int me_child_stop(me_child_t *c, char *why, size_t whylen)
{
    int status = 0, exited = -1;

    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
            ;
        me_reaper_forget(c->pid);
        if (why && WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
            snprintf(why, whylen, "died of signal %d", WTERMSIG(status));
        else if (why && WIFEXITED(status))
            snprintf(why, whylen, "exited with status %d", WEXITSTATUS(status));
        exited = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->pid = 0;
    c->fd = -1;
    return exited;
}

/* The child's environment: nothing of ours (no MEDIAEDGE_* setting, no secret), its scratch
 * directory for every temp file, and the sanitizers' options in sanitizer builds. */
static void child_env(const me_child_t *c, char bufs[][PATH_MAX + 32], char **envp)
{
    const char *asan = getenv("ASAN_OPTIONS"), *ubsan = getenv("UBSAN_OPTIONS");
    int n = 0;

    snprintf(bufs[n], PATH_MAX + 32, "HOME=%s", c->dir), envp[n] = bufs[n], n++;
    snprintf(bufs[n], PATH_MAX + 32, "TMPDIR=%s", c->dir), envp[n] = bufs[n], n++;
    snprintf(bufs[n], PATH_MAX + 32, "XDG_RUNTIME_DIR=%s", c->dir), envp[n] = bufs[n], n++;
    /* the leak checker stops the world with ptrace, which the sandbox forbids */
    snprintf(bufs[n], PATH_MAX + 32, "ASAN_OPTIONS=%s%sdetect_leaks=0", asan ? asan : "", asan ? ":" : ""),
        envp[n] = bufs[n], n++;
    if (ubsan)
        snprintf(bufs[n], PATH_MAX + 32, "UBSAN_OPTIONS=%s", ubsan), envp[n] = bufs[n], n++;
    envp[n] = NULL;
}

/* Starts c's process. 0, or -1 with why set. */
static int spawn(me_child_t *c, char *why, size_t whylen)
{
    me_child_pool_t *p = c->pool;
    char bufs[5][PATH_MAX + 32], *envp[6], *argv[] = {"mediaedge", p->command, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int sv[2], rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(why, whylen, "socketpair: %s", strerror(errno));
        return -1;
    }
    sv[1] = me_child_fd_above(sv[1]);
    child_env(c, bufs, envp);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGTERM), sigaddset(&defaults, SIGINT), sigaddset(&defaults, SIGHUP);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    /* its own process group (a terminal's Ctrl-C is for the server, which ends it), no
     * signal blocked (the server blocks the ones it waits for) */
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    /* the server's stdin and stdout (a pipe its supervisor reads) are not the child's */
    rc = sv[1] < 0 ? errno : posix_spawn_file_actions_adddup2(&fa, sv[1], ME_CHILD_FD);
    if (rc == 0 && p->extra_fd >= 0)
        rc = posix_spawn_file_actions_adddup2(&fa, p->extra_fd, ME_CHILD_EXTRA_FD);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    /* registered before the reaper (PID 1's, for orphans) can see it: ours to wait for */
    me_reaper_lock();
    if (rc == 0 && (rc = posix_spawn(&c->pid, p->exe, &fa, &attr, argv, envp)) == 0 && me_reaper_watch(c->pid) != 0)
        me_log_warn(NULL, "%s: out of memory registering child %d", p->command, (int)c->pid);
    me_reaper_unlock();
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (sv[1] >= 0)
        close(sv[1]);
    c->fd = sv[0];
    if (rc != 0) {
        c->pid = 0;
        snprintf(why, whylen, "could not start %s: %s", p->exe, strerror(rc));
        me_child_stop(c, NULL, 0);
        return -1;
    }
    c->starts++;
    me_log_debug(NULL, "%s %d started", p->command, (int)c->pid);
    return 0;
}

int me_child_ensure(me_child_t *c, char *why, size_t whylen)
{
    if (c->pid > 0 && waitpid(c->pid, NULL, WNOHANG) == c->pid) /* it died since its last use */
        me_reaper_forget(c->pid), c->pid = 0, me_child_stop(c, NULL, 0);
    return c->pid > 0 ? 0 : spawn(c, why, whylen);
}

int me_child_fail(me_child_t *c, char *why, size_t whylen, char *detail, size_t dlen)
{
    const char *name = c->pool->command;
    int exited = me_child_stop(c, why, whylen);

    if (exited == ME_CHILD_EXIT_SETUP || exited == ME_CHILD_EXIT_CONFINE) {
        snprintf(detail, dlen, "%s: %s", name,
                 exited == ME_CHILD_EXIT_SETUP ? "could not set itself up"
                                               : "could not confine itself (seccomp refused; see its log line)");
        me_log_error(NULL, "%s", detail);
        return ME_EINTERNAL;
    }
    snprintf(detail, dlen, "%s %s", name, why);
    me_log_warn(NULL, "%s: %s; a new one starts with the next file", name, why);
    return ME_EBUSY;
}

/* Removes dir and what is in it, depth levels down (decoders make files only). */
static void remove_tree(int at, const char *dir, int depth)
{
    int fd = openat(at, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;

    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (e->d_type == DT_DIR && depth > 0)
            remove_tree(dirfd(d), e->d_name, depth - 1);
        else
            unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d)
        closedir(d);
    else if (fd >= 0)
        close(fd);
    unlinkat(at, dir, AT_REMOVEDIR);
}

/* Removes the scratch directories of servers that are gone. */
static void sweep(const char *tmp_root)
{
    DIR *d = opendir(tmp_root);
    struct dirent *e;
    int pid;

    while (d && (e = readdir(d)) != NULL)
        if (sscanf(e->d_name, SCRATCH_PREFIX "%d", &pid) == 1 && pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
            remove_tree(dirfd(d), e->d_name, 1);
    if (d)
        closedir(d);
}

me_child_pool_t *me_child_pool_new(int n, const char *exe, const char *command, const char *tmp_root,
                                   const char *suffix, int extra_fd, char *err, size_t errlen)
{
    me_child_pool_t *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->slots = n, p->extra_fd = extra_fd;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    snprintf(p->exe, sizeof(p->exe), "%s", exe);
    snprintf(p->command, sizeof(p->command), "%s", command);
    if ((p->all = calloc((size_t)n, sizeof(*p->all))) == NULL ||
        (p->idle = calloc((size_t)n, sizeof(*p->idle))) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    sweep(tmp_root);
    snprintf(p->scratch, sizeof(p->scratch), "%s/" SCRATCH_PREFIX "%d%s", tmp_root, (int)getpid(), suffix);
    remove_tree(AT_FDCWD, p->scratch, 1); /* a server before us with our pid (a container's pid 1) */
    if (mkdir(p->scratch, 0700) != 0) {
        snprintf(err, errlen, "%s: cannot make %s: %s", command, p->scratch, strerror(errno));
        goto fail;
    }
    for (; p->n < n; p->n++) {
        me_child_t *c = &p->all[p->n];
        *c = (me_child_t){.pool = p, .slot = p->n, .fd = -1};
        if ((size_t)snprintf(c->dir, sizeof(c->dir), "%s/%d", p->scratch, p->n) >= sizeof(c->dir) ||
            mkdir(c->dir, 0700) != 0) {
            snprintf(err, errlen, "%s: cannot make a scratch directory in %s", command, tmp_root);
            goto fail;
        }
        p->idle[p->nidle++] = c;
    }
    return p;
fail:
    me_child_pool_free(p);
    return NULL;
}

me_child_t *me_child_acquire(me_child_pool_t *p)
{
    me_child_t *c;
    pthread_mutex_lock(&p->lock);
    while (p->nidle == 0)
        pthread_cond_wait(&p->wake, &p->lock);
    c = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->lock);
    return c;
}

void me_child_release(me_child_t *c)
{
    me_child_pool_t *p = c->pool;
    pthread_mutex_lock(&p->lock);
    p->idle[p->nidle++] = c;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void me_child_pool_free(me_child_pool_t *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->n; i++)
        me_child_stop(&p->all[i], NULL, 0);
    if (p->scratch[0])
        remove_tree(AT_FDCWD, p->scratch, 1);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->idle);
    free(p->all);
    free(p);
}

/* ---- the child's side ---- */

int me_child_confine(uint64_t memory_limit, int *landlock)
{
    static const char *const read_dirs[] = {"/usr", "/lib", "/lib64", "/etc/ld.so.cache", NULL};

    close_range(ME_CHILD_EXTRA_FD + 1, ~0u, 0); /* whatever the server had open stays there */
    if (me_sandbox_enter(read_dirs, getenv("TMPDIR"), landlock) != 0)
        return ME_CHILD_EXIT_CONFINE;
#if !defined(__SANITIZE_ADDRESS__)
    if (memory_limit > 0) { /* a bomb becomes a failed allocation, not pressure on the pod (after
                             * confining, which needs memory of its own) */
        struct rlimit rl = {.rlim_cur = memory_limit, .rlim_max = memory_limit};
        if (setrlimit(RLIMIT_DATA, &rl) != 0)
            return ME_CHILD_EXIT_SETUP;
    }
#endif
    return 0;
}
