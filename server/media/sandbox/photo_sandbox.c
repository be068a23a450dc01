/* photo_sandbox.c: the photo decoder process: starting it, the wire, its main loop. */
#include "server/media/sandbox/photo_sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/media/photo/photo_cores.h"
#include "server/media/sandbox/sandbox.h"

#define MAGIC 0x4d455048u         /* "MEPH" */
#define OUTPUT_MAX (64u << 20)    /* bytes of one encoded variant the parent accepts */
#define CHILD_FD 3 /* the socket */
#define CORES_FD 4 /* the shared count of busy cores */
#define EXIT_SETUP 3   /* the child's exit status when libvips could not be set up */
#define EXIT_CONFINE 4 /* ... when it could not confine itself */

typedef struct {
    uint32_t magic, size;  /* size: of the me_photo_config_t that follows */
    uint32_t slots, slot;  /* the shared count of busy cores: its length, the child's own */
} hello_t;

typedef struct {
    uint32_t magic, reserved;
    uint64_t len; /* the file's bytes follow */
} request_t;

typedef struct {
    uint32_t magic;
    int32_t ret; /* a me_photo_result_t follows (its pointers zero), then each output */
} reply_t;

typedef struct {
    uint32_t variant, webp; /* the index in the configuration; 0: JPEG, 1: WebP */
    uint64_t len;           /* the bytes follow */
} output_t;

typedef struct me_photo_decoders pool_t;

typedef struct {
    pool_t *pool;
    int slot;  /* its index, also in the shared count of busy cores */
    pid_t pid; /* 0: none running */
    int fd;    /* its socket */
    char dir[PATH_MAX];
} decoder_t;

struct me_photo_decoders {
    const me_photo_config_t *pc;
    uint64_t timeout_ms;
    int slots, n, nidle; /* slots: the decoders asked for; n: made so far */
    decoder_t *all, **idle;
    atomic_int *cores; /* n counters in shared memory (photo_cores.h) */
    int cores_fd;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    char exe[PATH_MAX], scratch[PATH_MAX]; /* scratch: the decoders' directories are in it */
};

/* Moves len bytes over fd, sending when out is set, before deadline (me_clock_mono_ms(); 0: blocks as
 * long as it takes). 0, or -1 with errno: ETIMEDOUT, EPIPE (the other end closed), ... */
static int xfer(int fd, void *buf, size_t len, int out, int64_t deadline)
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

/* fd, moved to a number above the child's own fds when it is one of them (dup2 onto itself
 * would keep close-on-exec, and an action could overwrite another's source). -1 on failure. */
static int above_child_fds(int fd)
{
    int moved;
    if (fd < 0 || fd > CORES_FD)
        return fd;
    moved = fcntl(fd, F_DUPFD_CLOEXEC, CORES_FD + 1);
    close(fd);
    return moved;
}

/* Ends the child, if any, and collects it; says how it ended into why (when given). Returns
 * its exit status when it exited by itself, else -1. */
static int stop(decoder_t *d, char *why, size_t whylen)
{
    int status = 0, exited = -1;

    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        while (waitpid(d->pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (why != NULL && WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
            snprintf(why, whylen, "died of signal %d", WTERMSIG(status));
        else if (why != NULL && WIFEXITED(status))
            snprintf(why, whylen, "exited with status %d", WEXITSTATUS(status));
        exited = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    if (d->fd >= 0)
        close(d->fd);
    d->pid = 0;
    d->fd = -1;
    atomic_store(&d->pool->cores[d->slot], 0); /* what it held died with it */
    return exited;
}

/* The child's environment: nothing of ours (no MEDIAEDGE_* setting, no secret), its scratch
 * directory for every temp file, and the sanitizers' options in sanitizer builds. */
static void child_env(const decoder_t *d, char bufs[][PATH_MAX + 32], char **envp)
{
    const char *asan = getenv("ASAN_OPTIONS"), *ubsan = getenv("UBSAN_OPTIONS");
    int n = 0;

    snprintf(bufs[n], PATH_MAX + 32, "HOME=%s", d->dir), envp[n] = bufs[n], n++;
    snprintf(bufs[n], PATH_MAX + 32, "TMPDIR=%s", d->dir), envp[n] = bufs[n], n++;
    snprintf(bufs[n], PATH_MAX + 32, "XDG_RUNTIME_DIR=%s", d->dir), envp[n] = bufs[n], n++;
    /* the leak checker stops the world with ptrace, which the sandbox forbids */
    snprintf(bufs[n], PATH_MAX + 32, "ASAN_OPTIONS=%s%sdetect_leaks=0", asan != NULL ? asan : "",
             asan != NULL ? ":" : ""),
        envp[n] = bufs[n], n++;
    if (ubsan != NULL)
        snprintf(bufs[n], PATH_MAX + 32, "UBSAN_OPTIONS=%s", ubsan), envp[n] = bufs[n], n++;
    envp[n] = NULL;
}

/* Starts the child and sends it the configuration. 0, or -1 with why set. */
static int start(decoder_t *d, char *why, size_t whylen)
{
    char bufs[5][PATH_MAX + 32], *envp[6], *argv[] = {"mediaedge", "photo-decoder", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int sv[2], rc;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        snprintf(why, whylen, "socketpair: %s", strerror(errno));
        return -1;
    }
    sv[1] = above_child_fds(sv[1]);
    child_env(d, bufs, envp);
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
    rc = sv[1] < 0 ? errno : posix_spawn_file_actions_adddup2(&fa, sv[1], CHILD_FD);
    if (rc == 0)
        rc = posix_spawn_file_actions_adddup2(&fa, d->pool->cores_fd, CORES_FD);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (rc == 0)
        rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (rc == 0)
        rc = posix_spawn(&d->pid, d->pool->exe, &fa, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (sv[1] >= 0)
        close(sv[1]);
    d->fd = sv[0];
    if (rc != 0) {
        d->pid = 0;
        snprintf(why, whylen, "could not start %s: %s", d->pool->exe, strerror(rc));
        stop(d, NULL, 0);
        return -1;
    }
    hello_t hello = {MAGIC, sizeof(*d->pool->pc), (uint32_t)d->pool->slots, (uint32_t)d->slot};
    int64_t deadline = me_clock_mono_ms() + (int64_t)d->pool->timeout_ms;
    if (xfer(d->fd, &hello, sizeof(hello), 1, deadline) != 0 ||
        xfer(d->fd, (void *)d->pool->pc, sizeof(*d->pool->pc), 1, deadline) != 0) {
        snprintf(why, whylen, "did not take its configuration");
        stop(d, why, whylen);
        return -1;
    }
    me_log_debug(NULL, "photo decoder %d started", (int)d->pid);
    return 0;
}

/* Reads a reply's result into out, checking every field; outputs' pointers are ours. 0 or -1. */
static int read_result(decoder_t *d, int64_t deadline, me_photo_result_t *out)
{
    me_photo_result_t r;

    if (xfer(d->fd, &r, sizeof(r), 0, deadline) != 0 || r.noutputs < 0 || r.noutputs > ME_PHOTO_OUTPUTS_MAX)
        return -1;
    memcpy(out, &r, sizeof(r));
    out->noutputs = 0;
    out->format[sizeof(out->format) - 1] = '\0';
    out->content_type[sizeof(out->content_type) - 1] = '\0';
    out->taken_at[sizeof(out->taken_at) - 1] = '\0';
    out->detail[sizeof(out->detail) - 1] = '\0';
    for (int i = 0; i < r.noutputs; i++) {
        me_photo_output_t *o = &out->outputs[i];
        output_t head;
        if (xfer(d->fd, &head, sizeof(head), 0, deadline) != 0 || head.variant >= (uint32_t)d->pool->pc->nvariants ||
            head.webp > 1 || head.len == 0 || head.len > OUTPUT_MAX || o->width < 1 || o->height < 1 ||
            o->width > ME_PHOTO_SIZE_MAX || o->height > ME_PHOTO_SIZE_MAX)
            return -1;
        o->name = d->pool->pc->variants[head.variant].name;
        o->ext = head.webp ? "webp" : "jpg";
        o->content_type = head.webp ? "image/webp" : "image/jpeg";
        o->len = head.len;
        if ((o->data = g_try_malloc(head.len)) == NULL)
            return -1;
        out->noutputs = i + 1;
        if (xfer(d->fd, o->data, head.len, 0, deadline) != 0)
            return -1;
    }
    return 0;
}

static int process(decoder_t *d, const void *data, size_t len, me_photo_result_t *out)
{
    char why[128] = "answered out of protocol";
    reply_t reply;
    int64_t deadline;
    int exited;

    memset(out, 0, sizeof(*out));
    out->orientation = 1;
    if (len > d->pool->pc->max_bytes) {
        snprintf(out->detail, sizeof(out->detail), "%zu bytes, over photos.max_bytes (%llu)", len,
                 (unsigned long long)d->pool->pc->max_bytes);
        return ME_ETOOLARGE;
    }
    if (d->pid > 0 && waitpid(d->pid, NULL, WNOHANG) == d->pid) /* it died since its last photo */
        d->pid = 0, stop(d, NULL, 0);
    if (d->pid == 0 && start(d, why, sizeof(why)) != 0)
        goto died;
    deadline = me_clock_mono_ms() + (int64_t)d->pool->timeout_ms;
    request_t req = {MAGIC, 0, len};
    if (xfer(d->fd, &req, sizeof(req), 1, deadline) != 0 || xfer(d->fd, (void *)data, len, 1, deadline) != 0 ||
        xfer(d->fd, &reply, sizeof(reply), 0, deadline) != 0 || reply.magic != MAGIC ||
        read_result(d, deadline, out) != 0)
        goto broke;
    switch (reply.ret) {
    case 0:
        if (out->noutputs == 2 * d->pool->pc->nvariants)
            return 0;
        break;
    case ME_ETOOLARGE:
    case ME_EMEDIA:
    case ME_ECORRUPT:
    case ME_ENOMEM:
    case ME_EINTERNAL:
        if (out->noutputs == 0)
            return reply.ret;
        break;
    }
    errno = EPROTO;
broke:
    if (errno == ETIMEDOUT)
        snprintf(why, sizeof(why), "took longer than photos.timeout (%llu ms)",
                 (unsigned long long)d->pool->timeout_ms);
    else if (errno == EPIPE || errno == ECONNRESET)
        snprintf(why, sizeof(why), "closed its socket");
    exited = stop(d, why, sizeof(why));
    if (exited == EXIT_SETUP || exited == EXIT_CONFINE) { /* this machine's fault, not the photo's */
        me_photo_result_free(out);
        snprintf(out->detail, sizeof(out->detail), "photo decoder: %s",
                 exited == EXIT_SETUP ? "libvips could not be set up"
                                      : "could not confine itself (seccomp refused; see the decoder's log line)");
        me_log_error(NULL, "%s", out->detail);
        return ME_EINTERNAL;
    }
died:
    me_photo_result_free(out);
    snprintf(out->detail, sizeof(out->detail), "photo decoder %s", why);
    me_log_warn(NULL, "photo decoder: %s; a new one starts with the next photo", why);
    return ME_EBUSY;
}

#define SCRATCH_PREFIX "mediaedge-decoders-" /* + the server's pid: one directory per server */

/* Removes dir and what is in it, depth levels down (libvips and Orc make files only). */
static void remove_tree(int at, const char *dir, int depth)
{
    int fd = openat(at, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (e->d_type == DT_DIR && depth > 0)
            remove_tree(dirfd(d), e->d_name, depth - 1);
        else
            unlinkat(dirfd(d), e->d_name, 0);
    }
    if (d != NULL)
        closedir(d);
    else if (fd >= 0)
        close(fd);
    unlinkat(at, dir, AT_REMOVEDIR);
}

/* Removes the scratch directories of servers that are gone (a kill -9 leaves them). */
static void sweep(const char *tmp_root)
{
    DIR *d = opendir(tmp_root);
    struct dirent *e;
    int pid;

    while (d != NULL && (e = readdir(d)) != NULL)
        if (sscanf(e->d_name, SCRATCH_PREFIX "%d", &pid) == 1 && pid > 0 && kill(pid, 0) != 0 && errno == ESRCH)
            remove_tree(dirfd(d), e->d_name, 1);
    if (d != NULL)
        closedir(d);
}

me_photo_decoders_t *me_photo_decoders_new(const me_photo_config_t *pc, int n, const char *exe,
                                           const char *tmp_root, uint64_t timeout_ms, char *err, size_t errlen)
{
    pool_t *p = calloc(1, sizeof(*p));
    size_t size = (size_t)n * sizeof(atomic_int);

    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->pc = pc, p->timeout_ms = timeout_ms, p->slots = n, p->cores = MAP_FAILED, p->cores_fd = -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    snprintf(p->exe, sizeof(p->exe), "%s", exe);
    if ((p->all = calloc((size_t)n, sizeof(*p->all))) == NULL || (p->idle = calloc((size_t)n, sizeof(*p->idle))) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((p->cores_fd = above_child_fds(memfd_create("mediaedge-cores", MFD_CLOEXEC))) < 0 ||
        ftruncate(p->cores_fd, (off_t)size) != 0 ||
        (p->cores = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, p->cores_fd, 0)) == MAP_FAILED) {
        snprintf(err, errlen, "photos.sandbox: shared memory for the decoders: %s", strerror(errno));
        goto fail;
    }
    sweep(tmp_root);
    snprintf(p->scratch, sizeof(p->scratch), "%s/" SCRATCH_PREFIX "%d", tmp_root, (int)getpid());
    remove_tree(AT_FDCWD, p->scratch, 1); /* a server before us with our pid (a container's pid 1) */
    if (mkdir(p->scratch, 0700) != 0) {
        snprintf(err, errlen, "photos.sandbox: cannot make %s: %s", p->scratch, strerror(errno));
        goto fail;
    }
    for (; p->n < n; p->n++) {
        decoder_t *d = &p->all[p->n];
        *d = (decoder_t){.pool = p, .slot = p->n, .fd = -1};
        if ((size_t)snprintf(d->dir, sizeof(d->dir), "%s/%d", p->scratch, p->n) >= sizeof(d->dir) ||
            mkdir(d->dir, 0700) != 0) {
            snprintf(err, errlen, "photos.sandbox: cannot make a scratch directory in %s", tmp_root);
            goto fail;
        }
        p->idle[p->nidle++] = d;
    }
    return p;
fail:
    me_photo_decoders_free(p);
    return NULL;
}

int me_photo_decoders_process(me_photo_decoders_t *p, const void *data, size_t len, me_photo_result_t *out)
{
    decoder_t *d;
    int ret;

    pthread_mutex_lock(&p->lock);
    while (p->nidle == 0)
        pthread_cond_wait(&p->wake, &p->lock);
    d = p->idle[--p->nidle];
    pthread_mutex_unlock(&p->lock);
    ret = process(d, data, len, out);
    pthread_mutex_lock(&p->lock);
    p->idle[p->nidle++] = d;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    return ret;
}

void me_photo_decoders_free(me_photo_decoders_t *p)
{
    if (p == NULL)
        return;
    for (int i = 0; i < p->n; i++)
        stop(&p->all[i], NULL, 0);
    if (p->scratch[0])
        remove_tree(AT_FDCWD, p->scratch, 1);
    if (p->cores != MAP_FAILED)
        munmap(p->cores, (size_t)p->slots * sizeof(atomic_int));
    if (p->cores_fd >= 0)
        close(p->cores_fd);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->idle);
    free(p->all);
    free(p);
}

/* ---- the child's side ---- */

/* Answers one photo: its result with pointers zeroed, then each output's index and bytes. */
static int answer(int fd, const me_photo_config_t *pc, int ret, const me_photo_result_t *r)
{
    me_photo_result_t wire = *r;
    reply_t reply = {MAGIC, ret};

    for (int i = 0; i < wire.noutputs; i++)
        wire.outputs[i] = (me_photo_output_t){.width = r->outputs[i].width, .height = r->outputs[i].height,
                                              .len = r->outputs[i].len};
    if (xfer(fd, &reply, sizeof(reply), 1, 0) != 0 || xfer(fd, &wire, sizeof(wire), 1, 0) != 0)
        return -1;
    for (int i = 0; i < r->noutputs; i++) {
        const me_photo_output_t *o = &r->outputs[i];
        output_t head = {0, strcmp(o->ext, "webp") == 0, o->len};
        while (head.variant < (uint32_t)pc->nvariants && o->name != pc->variants[head.variant].name)
            head.variant++;
        if (xfer(fd, &head, sizeof(head), 1, 0) != 0 || xfer(fd, o->data, o->len, 1, 0) != 0)
            return -1;
    }
    return 0;
}

int me_photo_sandbox_child(void)
{
    const int fd = CHILD_FD;
    static const char *const read_dirs[] = {"/usr", "/lib", "/lib64", "/etc/ld.so.cache", NULL};
    me_photo_config_t pc;
    hello_t hello;
    int landlock;

    close_range(CORES_FD + 1, ~0u, 0); /* whatever the server had open stays there */
    if (xfer(fd, &hello, sizeof(hello), 0, 0) != 0 || hello.magic != MAGIC || hello.size != sizeof(pc) ||
        hello.slots < 1 || hello.slots > 4096 || hello.slot >= hello.slots || xfer(fd, &pc, sizeof(pc), 0, 0) != 0 ||
        pc.nvariants < 1 || pc.nvariants > ME_PHOTO_VARIANTS_MAX)
        return 2;
    atomic_int *cores = mmap(NULL, hello.slots * sizeof(atomic_int), PROT_READ | PROT_WRITE, MAP_SHARED, CORES_FD, 0);
    if (cores == MAP_FAILED)
        return 2;
    close(CORES_FD); /* the mapping stays */
    me_photo_cores_share(cores, (int)hello.slots, (int)hello.slot);
    if (me_photo_init() != 0)
        return EXIT_SETUP;
    if (me_sandbox_enter(read_dirs, getenv("TMPDIR"), &landlock) != 0)
        return EXIT_CONFINE;
    me_log_debug(NULL, "photo decoder %d: confined (seccomp, Landlock ABI %d)", (int)getpid(), landlock);
    for (;;) {
        request_t req;
        me_photo_result_t r;
        void *data;
        if (xfer(fd, &req, sizeof(req), 0, 0) != 0)
            return errno == EPIPE ? 0 : 2; /* the server closed: the end */
        if (req.magic != MAGIC || req.len > pc.max_bytes || (data = malloc(req.len ? req.len : 1)) == NULL)
            return 2;
        int ret = xfer(fd, data, req.len, 0, 0) != 0 ? ME_EIO : me_photo_process(&pc, data, req.len, &r);
        free(data);
        if (ret == ME_EIO)
            return 2;
        ret = answer(fd, &pc, ret, &r);
        me_photo_result_free(&r);
        if (ret != 0)
            return 2;
    }
}
