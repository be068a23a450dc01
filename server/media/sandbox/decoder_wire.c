/* decoder_wire.c: the decoder children's wire (decoder_wire.h): the parent's checks and loop,
 * the child's messages. */
#include "server/media/sandbox/decoder_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/media/sandbox/photo_sandbox.h"

typedef struct {
    uint32_t magic, count; /* the protocol's parts follow */
} request_t;

typedef struct {
    uint32_t magic;
    int32_t ret;
    uint64_t got; /* that many bytes follow */
} reply_t;

/* ---- the parent's side ---- */

struct me_decoders *me_decoders_new(const me_photo_config_t *pc, int n, const char *exe, const char *command,
                                    const char *tmp_root, const char *suffix, uint64_t memory_limit, char *err,
                                    size_t errlen)
{
    struct me_decoders *d = calloc(1, sizeof(*d));

    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->pc = pc, d->memory_limit = memory_limit;
    if ((d->children = me_child_pool_new(n, exe, command, tmp_root, suffix, -1, err, errlen)) == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

void me_decoders_free(struct me_decoders *d)
{
    if (d == NULL)
        return;
    me_child_pool_free(d->children);
    free(d);
}

int me_decoder_start(me_child_t *c, me_decoder_hello_t hello, const me_photo_config_t *pc, int64_t timeout_ms,
                     char *why, size_t whylen)
{
    unsigned starts = c->starts;
    int64_t deadline = me_clock_mono_ms() + timeout_ms;

    if (me_child_ensure(c, why, whylen) != 0)
        return -1;
    if (c->starts == starts) /* the same process: greeted already */
        return 0;
    hello.photo_size = sizeof(*pc);
    if (me_child_xfer(c->fd, &hello, sizeof(hello), 1, deadline) != 0 ||
        me_child_xfer(c->fd, (void *)pc, sizeof(*pc), 1, deadline) != 0) {
        snprintf(why, whylen, "did not take its configuration");
        me_child_stop(c, why, whylen);
        return -1;
    }
    return 0;
}

static int expected(const me_decoder_wire_t *w, int ret)
{
    for (size_t i = 0; i < w->ncodes; i++)
        if (w->codes[i] == ret)
            return 1;
    return 0;
}

int me_decoder_wire_message(const me_decoder_job_t *job, const void *buf, size_t len, me_decoder_msg_t *m)
{
    const me_decoder_wire_t *w = job->wire;

    memset(m, 0, sizeof(*m));
    if (len != sizeof(*m))
        return -1;
    memcpy(m, buf, sizeof(*m));
    if (m->magic != w->magic)
        return -1;
    switch (m->kind) {
    case ME_DECODER_MSG_PROGRESS: return w->progress_ok(job->params, m) ? ME_DECODER_MSG_PROGRESS : -1;
    case ME_DECODER_MSG_READ:
        if (!w->reads || job->read == NULL || m->input < 0 || m->input >= job->ninputs || m->len == 0 ||
            m->len > ME_DECODER_READ_MAX)
            return -1;
        return ME_DECODER_MSG_READ;
    case ME_DECODER_MSG_RESULT: return expected(w, m->ret) ? ME_DECODER_MSG_RESULT : -1;
    }
    return -1;
}

int me_decoder_wire_result(const me_decoder_job_t *job, int ret, void *buf, size_t len, char *why, size_t whylen)
{
    if (len != job->wire->result_size || !expected(job->wire, ret)) {
        snprintf(why, whylen, "a result of the wrong size or code");
        return -1;
    }
    return job->wire->result(job->params, ret, buf, why, whylen);
}

/* Answers a range m asks for with job->read (into *buf, made on first use). 0, or -1 with
 * errno (the socket broke). A source's failure is answered, not fatal. */
static int serve_range(int fd, const me_decoder_job_t *job, const me_decoder_msg_t *m, char **buf)
{
    reply_t r = {job->wire->magic, 0, 0};
    size_t got = 0;

    if (*buf == NULL && (*buf = malloc(ME_DECODER_READ_MAX)) == NULL)
        r.ret = ME_ENOMEM;
    else if ((r.ret = job->read(job->read_ctx, m->input, m->offset, *buf, (size_t)m->len, &got)) != 0 || got > m->len)
        r.ret = r.ret != 0 ? r.ret : ME_EIO;
    r.got = r.ret == 0 ? got : 0;
    if (me_child_xfer(fd, &r, sizeof(r), 1, job->deadline) != 0)
        return -1;
    return r.got > 0 ? me_child_xfer(fd, *buf, (size_t)r.got, 1, job->deadline) : 0;
}

/* Why a conversation broke, from errno (why keeps its own reason otherwise). */
static void describe(const me_decoder_job_t *job, char *why, size_t whylen)
{
    if (errno == ETIMEDOUT)
        snprintf(why, whylen, "took longer than its time (%lld ms)", (long long)(job->deadline - job->begun));
    else if (errno == EPIPE || errno == ECONNRESET)
        snprintf(why, whylen, "closed its socket");
}

int me_decoder_wire_recv(int fd, me_decoder_job_t *job, void *result, me_photo_result_t *poster, int *ret, char *why,
                         size_t whylen)
{
    const me_decoder_wire_t *w = job->wire;
    unsigned char raw[sizeof(me_decoder_msg_t)];
    me_decoder_msg_t m;
    char *buf = NULL;
    int kind;

    memset(poster, 0, sizeof(*poster));
    snprintf(why, whylen, "answered out of protocol");
    for (;;) {
        if (me_child_xfer(fd, raw, sizeof(raw), 0, job->deadline) != 0)
            goto broke;
        if ((kind = me_decoder_wire_message(job, raw, sizeof(raw), &m)) < 0)
            goto protocol;
        if (kind == ME_DECODER_MSG_RESULT)
            break;
        if (kind == ME_DECODER_MSG_READ) {
            if (serve_range(fd, job, &m, &buf) != 0)
                goto broke;
            continue;
        }
        /* the time allowed may grow as the child learns what it is doing */
        if (w->deadline != NULL)
            job->deadline = w->deadline(job->params, job->begun, &m);
        if (job->progress != NULL && job->progress(job->progress_ctx, &m) != 0) {
            job->stopped = 1, job->stopped_at = m.done;
            free(buf);
            w->release(result);
            return 1;
        }
    }
    free(buf), buf = NULL;
    if (me_child_xfer(fd, result, w->result_size, 0, job->deadline) != 0)
        goto broke;
    if (me_decoder_wire_result(job, m.ret, result, w->result_size, why, whylen) != 0)
        goto protocol;
    if (me_photo_wire_recv(fd, job->pc, job->deadline, poster) != 0) {
        if (errno != ETIMEDOUT && errno != EPIPE && errno != ECONNRESET)
            goto protocol;
        goto broke;
    }
    if (poster->noutputs != (m.ret == 0 ? 2 * job->pc->nvariants : 0))
        goto protocol;
    *ret = m.ret;
    return 0;
protocol:
    errno = EPROTO;
broke:
    describe(job, why, whylen);
    free(buf);
    w->release(result);
    me_photo_result_free(poster);
    return -1;
}

int me_decoder_fail(me_child_t *c, const me_decoder_job_t *job, char *why, size_t whylen, void *result,
                    me_photo_result_t *poster, char *detail, size_t dlen)
{
    job->wire->release(result);
    me_photo_result_free(poster);
    return me_child_fail(c, why, whylen, detail, dlen);
}

int me_decoder_run(me_child_t *c, me_decoder_job_t *job, uint32_t count, const struct iovec *parts, int nparts,
                   int64_t base_ms, void *result, me_photo_result_t *poster, char *detail, size_t dlen)
{
    char why[160] = "answered out of protocol";
    request_t req = {job->wire->magic, count};
    int ret;

    job->begun = me_clock_mono_ms(), job->deadline = job->begun + base_ms, job->stopped = 0;
    if (me_child_xfer(c->fd, &req, sizeof(req), 1, job->deadline) != 0)
        goto broke;
    for (int i = 0; i < nparts; i++)
        if (me_child_xfer(c->fd, parts[i].iov_base, parts[i].iov_len, 1, job->deadline) != 0)
            goto broke;
    switch (me_decoder_wire_recv(c->fd, job, result, poster, &ret, why, sizeof(why))) {
    case 0: return ret;
    case 1:
        me_child_stop(c, NULL, 0); /* nothing of it is kept: the job starts again elsewhere */
        return ME_EDRAINING;
    }
    return me_child_fail(c, why, sizeof(why), detail, dlen);
broke:
    describe(job, why, sizeof(why));
    return me_decoder_fail(c, job, why, sizeof(why), result, poster, detail, dlen);
}

/* ---- the child's side ---- */

int me_decoder_child_setup(const char *name, const me_decoder_hello_t *want, me_photo_config_t *pc)
{
    me_decoder_hello_t hello;
    int landlock, rc;

    if (me_child_xfer(ME_CHILD_FD, &hello, sizeof(hello), 0, 0) != 0 || hello.magic != want->magic ||
        hello.photo_size != sizeof(*pc) || hello.params_size != want->params_size ||
        hello.item_size != want->item_size || me_child_xfer(ME_CHILD_FD, pc, sizeof(*pc), 0, 0) != 0 ||
        pc->nvariants < 1 || pc->nvariants > ME_PHOTO_VARIANTS_MAX)
        return 2;
    if (me_photo_init() != 0) /* loads libvips' modules before the file system closes */
        return ME_CHILD_EXIT_SETUP;
    if ((rc = me_child_confine(hello.memory_limit, &landlock)) != 0)
        return rc;
    me_log_debug(NULL, "%s decoder %d: confined (seccomp, Landlock ABI %d)", name, (int)getpid(), landlock);
    return 0;
}

int me_decoder_child_request(uint32_t magic, uint32_t *count)
{
    request_t req;

    if (me_child_xfer(ME_CHILD_FD, &req, sizeof(req), 0, 0) != 0)
        return errno == EPIPE ? 1 : -1; /* the server closed: the end */
    if (req.magic != magic)
        return -1;
    *count = req.count;
    return 0;
}

int me_decoder_child_progress(uint32_t magic, double done, double total, double weight)
{
    me_decoder_msg_t m = {
        .magic = magic, .kind = ME_DECODER_MSG_PROGRESS, .done = done, .total = total, .weight = weight};
    return me_child_xfer(ME_CHILD_FD, &m, sizeof(m), 1, 0);
}

int me_decoder_child_read(uint32_t magic, int input, uint64_t offset, void *buf, size_t len, size_t *got)
{
    me_decoder_msg_t m = {.magic = magic,
                          .kind = ME_DECODER_MSG_READ,
                          .input = input,
                          .offset = offset,
                          .len = len > ME_DECODER_READ_MAX ? ME_DECODER_READ_MAX : len};
    reply_t r;

    *got = 0;
    if (me_child_xfer(ME_CHILD_FD, &m, sizeof(m), 1, 0) != 0 || me_child_xfer(ME_CHILD_FD, &r, sizeof(r), 0, 0) != 0 ||
        r.magic != magic || r.got > m.len)
        _exit(2); /* the parent is gone or mad: nothing to save */
    if (r.ret != 0)
        return r.ret;
    if (r.got > 0 && me_child_xfer(ME_CHILD_FD, buf, (size_t)r.got, 0, 0) != 0)
        _exit(2);
    *got = (size_t)r.got;
    return 0;
}

int me_decoder_child_result(uint32_t magic, int ret, void *result, size_t result_size, uint8_t **pixels,
                            const me_photo_config_t *pc, me_photo_result_t *poster)
{
    me_decoder_msg_t m = {.magic = magic, .kind = ME_DECODER_MSG_RESULT, .ret = ret};
    uint8_t *kept = *pixels;

    *pixels = NULL; /* no pointer of ours crosses */
    ret = me_child_xfer(ME_CHILD_FD, &m, sizeof(m), 1, 0) != 0 ||
                  me_child_xfer(ME_CHILD_FD, result, result_size, 1, 0) != 0 ||
                  me_photo_wire_send(ME_CHILD_FD, pc, poster) != 0
              ? -1
              : 0;
    *pixels = kept;
    me_photo_result_free(poster);
    return ret;
}
