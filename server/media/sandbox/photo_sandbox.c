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
#include "server/media/sandbox/child.h"

#define MAGIC 0x4d455048u         /* "MEPH" */
#define OUTPUT_MAX (64u << 20)    /* bytes of one encoded variant the parent accepts */
#define CHILD_FD ME_CHILD_FD
#define CORES_FD ME_CHILD_EXTRA_FD /* the shared count of busy cores */

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

struct me_photo_decoders {
    const me_photo_config_t *pc;
    uint64_t timeout_ms;
    int slots;
    me_child_pool_t *children; /* a child's slot is also its index in the shared count of busy cores */
    atomic_int *cores; /* slots counters in shared memory (photo_cores.h) */
    int cores_fd;
};

#define xfer me_child_xfer

/* ---- the parent's side ---- */

/* Starts c's process if it is not running and sends it the configuration. 0, or -1 with
 * why set. */
static int start(pool_t *p, me_child_t *c, char *why, size_t whylen)
{
    unsigned starts = c->starts;

    if (me_child_ensure(c, why, whylen) != 0)
        return -1;
    if (c->starts == starts) /* the same process: configured already */
        return 0;
    atomic_store(&p->cores[c->slot], 0); /* what a dead one held died with it */
    hello_t hello = {MAGIC, sizeof(*p->pc), (uint32_t)p->slots, (uint32_t)c->slot};
    int64_t deadline = me_clock_mono_ms() + (int64_t)p->timeout_ms;
    if (xfer(c->fd, &hello, sizeof(hello), 1, deadline) != 0 ||
        xfer(c->fd, (void *)p->pc, sizeof(*p->pc), 1, deadline) != 0) {
        snprintf(why, whylen, "did not take its configuration");
        me_child_stop(c, why, whylen);
        return -1;
    }
    return 0;
}

int me_photo_wire_recv(int fd, const me_photo_config_t *pc, int64_t deadline, me_photo_result_t *out)
{
    me_photo_result_t r;

    memset(out, 0, sizeof(*out));
    if (xfer(fd, &r, sizeof(r), 0, deadline) != 0 || r.noutputs < 0 || r.noutputs > ME_PHOTO_OUTPUTS_MAX)
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
        if (xfer(fd, &head, sizeof(head), 0, deadline) != 0 || head.variant >= (uint32_t)pc->nvariants ||
            head.webp > 1 || head.len == 0 || head.len > OUTPUT_MAX || o->width < 1 || o->height < 1 ||
            o->width > ME_PHOTO_SIZE_MAX || o->height > ME_PHOTO_SIZE_MAX)
            return -1;
        o->name = pc->variants[head.variant].name;
        o->ext = head.webp ? "webp" : "jpg";
        o->content_type = head.webp ? "image/webp" : "image/jpeg";
        o->len = head.len;
        if ((o->data = g_try_malloc(head.len)) == NULL)
            return -1;
        out->noutputs = i + 1;
        if (xfer(fd, o->data, head.len, 0, deadline) != 0)
            return -1;
    }
    return 0;
}

static int process(pool_t *p, me_child_t *c, const void *data, size_t len, me_photo_result_t *out)
{
    char why[128] = "answered out of protocol";
    reply_t reply;
    int64_t deadline;
    int ret;

    memset(out, 0, sizeof(*out));
    out->orientation = 1;
    if (len > p->pc->max_bytes) {
        snprintf(out->detail, sizeof(out->detail), "%zu bytes, over photos.max_bytes (%llu)", len,
                 (unsigned long long)p->pc->max_bytes);
        return ME_ETOOLARGE;
    }
    if (start(p, c, why, sizeof(why)) != 0)
        goto died;
    deadline = me_clock_mono_ms() + (int64_t)p->timeout_ms;
    request_t req = {MAGIC, 0, len};
    if (xfer(c->fd, &req, sizeof(req), 1, deadline) != 0 || xfer(c->fd, (void *)data, len, 1, deadline) != 0 ||
        xfer(c->fd, &reply, sizeof(reply), 0, deadline) != 0 || reply.magic != MAGIC ||
        me_photo_wire_recv(c->fd, p->pc, deadline, out) != 0)
        goto broke;
    switch (reply.ret) {
    case 0:
        if (out->noutputs == 2 * p->pc->nvariants)
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
        snprintf(why, sizeof(why), "took longer than photos.timeout (%llu ms)", (unsigned long long)p->timeout_ms);
    else if (errno == EPIPE || errno == ECONNRESET)
        snprintf(why, sizeof(why), "closed its socket");
died:
    me_photo_result_free(out);
    ret = me_child_fail(c, why, sizeof(why), out->detail, sizeof(out->detail));
    atomic_store(&p->cores[c->slot], 0); /* what it held died with it */
    return ret;
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
    if ((p->cores_fd = me_child_fd_above(memfd_create("mediaedge-cores", MFD_CLOEXEC))) < 0 ||
        ftruncate(p->cores_fd, (off_t)size) != 0 ||
        (p->cores = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, p->cores_fd, 0)) == MAP_FAILED) {
        snprintf(err, errlen, "photos.sandbox: shared memory for the decoders: %s", strerror(errno));
        goto fail;
    }
    if ((p->children = me_child_pool_new(n, exe, "photo-decoder", tmp_root, "", p->cores_fd, err, errlen)) == NULL)
        goto fail;
    return p;
fail:
    me_photo_decoders_free(p);
    return NULL;
}

int me_photo_decoders_process(me_photo_decoders_t *p, const void *data, size_t len, me_photo_result_t *out)
{
    me_child_t *c = me_child_acquire(p->children);
    int ret = process(p, c, data, len, out);
    me_child_release(c);
    return ret;
}

void me_photo_decoders_free(me_photo_decoders_t *p)
{
    if (p == NULL)
        return;
    me_child_pool_free(p->children);
    if (p->cores != MAP_FAILED)
        munmap(p->cores, (size_t)p->slots * sizeof(atomic_int));
    if (p->cores_fd >= 0)
        close(p->cores_fd);
    free(p);
}

/* ---- the child's side ---- */

int me_photo_wire_send(int fd, const me_photo_config_t *pc, const me_photo_result_t *r)
{
    me_photo_result_t wire = *r;

    for (int i = 0; i < wire.noutputs; i++)
        wire.outputs[i] = (me_photo_output_t){.width = r->outputs[i].width, .height = r->outputs[i].height,
                                              .len = r->outputs[i].len};
    if (xfer(fd, &wire, sizeof(wire), 1, 0) != 0)
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

/* Answers one photo: the reply, then its result. */
static int answer(int fd, const me_photo_config_t *pc, int ret, const me_photo_result_t *r)
{
    reply_t reply = {MAGIC, ret};
    return xfer(fd, &reply, sizeof(reply), 1, 0) != 0 ? -1 : me_photo_wire_send(fd, pc, r);
}

int me_photo_sandbox_child(void)
{
    const int fd = CHILD_FD;
    me_photo_config_t pc;
    hello_t hello;
    int landlock, rc;

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
        return ME_CHILD_EXIT_SETUP;
    if ((rc = me_child_confine(0, &landlock)) != 0)
        return rc;
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
