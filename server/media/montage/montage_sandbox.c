/* montage_sandbox.c: the montage decoder process: its wire, ranges served to it, the checks. */
#include "server/media/montage/montage_sandbox.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/media/sandbox/child.h"
#include "server/media/sandbox/photo_sandbox.h"
#include "server/media/sandbox/video_sandbox.h"

#define MAGIC 0x4d454d4fu /* "MEMO" */
#define FILM "film.mp4"   /* in the child's scratch directory */

typedef struct {
    uint32_t magic, photo_size, clip_size, params_size;
    uint64_t memory_limit; /* a me_photo_config_t follows */
} hello_t;

typedef struct {
    uint32_t magic, nclips; /* a me_montage_params_t and nclips me_montage_clip_t follow */
} request_t;

enum { MSG_READ = 1, MSG_PROGRESS = 2, MSG_RESULT = 3 };

typedef struct {
    uint32_t magic, kind;
    int32_t ret, input;   /* MSG_RESULT: ret; MSG_READ: the input */
    uint64_t offset, len; /* MSG_READ */
    int32_t done, total;  /* MSG_PROGRESS */
} message_t;

typedef struct {
    uint32_t magic;
    int32_t ret;
    uint64_t got; /* that many bytes follow */
} reply_t;

struct me_montage_decoders {
    const me_photo_config_t *pc;
    uint64_t memory_limit;
    me_child_pool_t *children;
};

/* ---- the parent's side ---- */

static int start(me_montage_decoders_t *d, me_child_t *c, char *why, size_t whylen)
{
    unsigned starts = c->starts;
    hello_t hello = {MAGIC, sizeof(*d->pc), sizeof(me_montage_clip_t), sizeof(me_montage_params_t), d->memory_limit};
    int64_t deadline = me_clock_mono_ms() + ME_MONTAGE_SANDBOX_BASE_MS;

    if (me_child_ensure(c, why, whylen) != 0)
        return -1;
    if (c->starts == starts)
        return 0;
    if (me_child_xfer(c->fd, &hello, sizeof(hello), 1, deadline) != 0 ||
        me_child_xfer(c->fd, (void *)d->pc, sizeof(*d->pc), 1, deadline) != 0) {
        snprintf(why, whylen, "did not take its configuration");
        me_child_stop(c, why, whylen);
        return -1;
    }
    return 0;
}

static void clean(me_child_t *c)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/" FILM, c->dir);
    unlink(path);
}

/* Answers a range the child asks for, from src. 0, or -1 with errno (the socket broke, or a
 * request out of bounds: EPROTO). A source failure is answered, not fatal. */
static int serve_range(me_child_t *c, const message_t *m, int nclips, const me_montage_source_t *src, char *buf,
                       int64_t deadline)
{
    reply_t r = {MAGIC, 0, 0};
    size_t got = 0;
    if (m->input < 0 || m->input >= 2 * nclips || m->len == 0 || m->len > ME_MONTAGE_READ_MAX) {
        errno = EPROTO;
        return -1;
    }
    r.ret = src->read(src->ctx, m->input, m->offset, buf, (size_t)m->len, &got);
    if (r.ret != 0 || got > m->len)
        got = 0, r.ret = r.ret != 0 ? r.ret : ME_EIO;
    r.got = got;
    if (me_child_xfer(c->fd, &r, sizeof(r), 1, deadline) != 0)
        return -1;
    return got > 0 ? me_child_xfer(c->fd, buf, got, 1, deadline) : 0;
}

static int expected(int ret)
{
    static const int codes[] = {0, ME_ECORRUPT, ME_EIO, ME_ENOMEM, ME_EDRAINING, ME_EINTERNAL};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i] == ret)
            return 1;
    return 0;
}

static int check_result(const me_montage_params_t *mp, int ret, me_montage_result_t *r, char *why, size_t whylen)
{
    r->poster = NULL; /* a pointer of the child's */
    r->detail[sizeof(r->detail) - 1] = '\0';
    if (r->failed_clip < -1 || r->failed_clip >= mp->nclips) {
        snprintf(why, whylen, "a failed clip out of range");
        return -1;
    }
    if (ret != 0)
        return 0;
    if ((r->width != 1280 || r->height != 720) && (r->width != 720 || r->height != 1280)) {
        snprintf(why, whylen, "a film of %dx%d", r->width, r->height);
        return -1;
    }
    if (!isfinite(r->duration) || fabs(r->duration - mp->nclips) > 0.5 || r->bytes == 0 ||
        r->bytes > (uint64_t)mp->nclips << 24) {
        snprintf(why, whylen, "a film out of range");
        return -1;
    }
    for (int i = 0; i < mp->nclips; i++)
        if (!isfinite(r->starts[i]) || r->starts[i] < 0 || r->starts[i] > 86400)
            r->starts[i] = 0;
    return 0;
}

static int process(me_montage_decoders_t *d, me_child_t *c, const me_montage_params_t *mp,
                   const me_montage_clip_t *clips, const me_montage_source_t *src, me_montage_progress_fn progress,
                   me_montage_take_fn take, void *ctx, me_montage_result_t *out, me_photo_result_t *poster)
{
    char why[160] = "answered out of protocol", path[PATH_MAX + 32];
    int64_t begun = me_clock_mono_ms();
    int64_t deadline = begun + ME_MONTAGE_SANDBOX_BASE_MS + (int64_t)mp->nclips * ME_MONTAGE_SANDBOX_PER_CLIP_MS;
    request_t req = {MAGIC, (uint32_t)mp->nclips};
    char *buf = malloc(ME_MONTAGE_READ_MAX);
    message_t m;
    int ret;

    if (buf == NULL)
        return ME_ENOMEM;
    if (me_child_xfer(c->fd, &req, sizeof(req), 1, deadline) != 0 ||
        me_child_xfer(c->fd, (void *)mp, sizeof(*mp), 1, deadline) != 0 ||
        me_child_xfer(c->fd, (void *)clips, sizeof(*clips) * (size_t)mp->nclips, 1, deadline) != 0)
        goto broke;
    for (;;) {
        if (me_child_xfer(c->fd, &m, sizeof(m), 0, deadline) != 0)
            goto broke;
        if (m.magic != MAGIC) {
            errno = EPROTO;
            goto broke;
        }
        if (m.kind == MSG_RESULT)
            break;
        if (m.kind == MSG_READ) {
            if (serve_range(c, &m, mp->nclips, src, buf, deadline) != 0)
                goto broke;
        } else if (m.kind == MSG_PROGRESS) {
            if (m.done < 0 || m.done > mp->nclips) {
                errno = EPROTO;
                goto broke;
            }
            if (progress != NULL && progress(ctx, m.done, mp->nclips) != 0) {
                me_child_stop(c, NULL, 0);
                snprintf(out->detail, sizeof(out->detail), "stopped after %d clips", m.done);
                free(buf);
                return ME_EDRAINING;
            }
        } else {
            errno = EPROTO;
            goto broke;
        }
    }
    free(buf), buf = NULL;
    ret = m.ret;
    if (!expected(ret) || me_child_xfer(c->fd, out, sizeof(*out), 0, deadline) != 0 ||
        check_result(mp, ret, out, why, sizeof(why)) != 0 || me_photo_wire_recv(c->fd, d->pc, deadline, poster) != 0 ||
        poster->noutputs != (ret == 0 ? 2 * d->pc->nvariants : 0)) {
        if (errno != ETIMEDOUT && errno != EPIPE)
            errno = EPROTO;
        goto broke;
    }
    if (ret == 0) {
        snprintf(path, sizeof(path), "%s/" FILM, c->dir);
        if (me_video_check_mp4(path, out->bytes, why, sizeof(why)) != 0) {
            errno = EPROTO;
            goto broke;
        }
        ret = take(ctx, out, path);
    }
    return ret;
broke:
    free(buf);
    if (errno == ETIMEDOUT)
        snprintf(why, sizeof(why), "took longer than its time (%lld ms)", (long long)(deadline - begun));
    else if (errno == EPIPE || errno == ECONNRESET)
        snprintf(why, sizeof(why), "closed its socket");
    out->poster = NULL;
    me_montage_result_free(out);
    me_photo_result_free(poster);
    return me_child_fail(c, why, sizeof(why), out->detail, sizeof(out->detail));
}

me_montage_decoders_t *me_montage_decoders_new(const me_photo_config_t *pc, int n, const char *exe,
                                               const char *tmp_root, uint64_t memory_limit, char *err, size_t errlen)
{
    me_montage_decoders_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->pc = pc, d->memory_limit = memory_limit;
    if ((d->children = me_child_pool_new(n, exe, "montage-decoder", tmp_root, "-montage", -1, err, errlen)) == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

int me_montage_decoders_process(me_montage_decoders_t *d, const me_montage_params_t *mp, const me_montage_clip_t *clips,
                                const me_montage_source_t *src, me_montage_progress_fn progress,
                                me_montage_take_fn take, void *ctx, me_montage_result_t *out, me_photo_result_t *poster)
{
    me_child_t *c = me_child_acquire(d->children);
    char why[128] = "";
    int ret;

    memset(out, 0, sizeof(*out));
    memset(poster, 0, sizeof(*poster));
    out->failed_clip = -1;
    clean(c);
    if (start(d, c, why, sizeof(why)) != 0)
        ret = me_child_fail(c, why, sizeof(why), out->detail, sizeof(out->detail));
    else
        ret = process(d, c, mp, clips, src, progress, take, ctx, out, poster);
    clean(c);
    me_child_release(c);
    return ret;
}

void me_montage_decoders_free(me_montage_decoders_t *d)
{
    if (d == NULL)
        return;
    me_child_pool_free(d->children);
    free(d);
}

/* ---- the child's side ---- */

/* Ranges from the parent, over the socket. */
static int read_remote(void *ctx, int input, uint64_t offset, void *buf, size_t len, size_t *got)
{
    int fd = *(int *)ctx;
    message_t m = {MAGIC, MSG_READ, 0, input, offset, len > ME_MONTAGE_READ_MAX ? ME_MONTAGE_READ_MAX : len, 0, 0};
    reply_t r;
    *got = 0;
    if (me_child_xfer(fd, &m, sizeof(m), 1, 0) != 0 || me_child_xfer(fd, &r, sizeof(r), 0, 0) != 0 ||
        r.magic != MAGIC || r.got > m.len)
        _exit(2); /* the parent is gone or mad: nothing to save */
    if (r.ret != 0)
        return r.ret;
    if (r.got > 0 && me_child_xfer(fd, buf, (size_t)r.got, 0, 0) != 0)
        _exit(2);
    *got = (size_t)r.got;
    return 0;
}

static int send_progress(void *ctx, int done, int total)
{
    int fd = *(int *)ctx;
    message_t m = {MAGIC, MSG_PROGRESS, 0, 0, 0, 0, done, total};
    return me_child_xfer(fd, &m, sizeof(m), 1, 0);
}

static int answer(int fd, const me_photo_config_t *pc, const me_montage_params_t *mp, const me_montage_clip_t *clips)
{
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX + 32];
    int sock = fd;
    me_montage_source_t src = {read_remote, &sock};
    me_montage_result_t r;
    me_photo_result_t poster = {0};
    int ret;

    snprintf(path, sizeof(path), "%s/" FILM, dir != NULL ? dir : ".");
    ret = me_montage_film(mp, clips, &src, path, send_progress, &sock, &r);
    if (ret == 0 && (ret = me_photo_process_pixels(pc, r.poster, r.poster_width, r.poster_height, &poster)) != 0) {
        snprintf(r.detail, sizeof(r.detail), "poster: %s", poster.detail);
        ret = ME_EINTERNAL;
        me_photo_result_free(&poster);
        unlink(path);
    }
    message_t m = {MAGIC, MSG_RESULT, ret, 0, 0, 0, 0, 0};
    me_montage_result_t wire = r;
    wire.poster = NULL;
    ret = me_child_xfer(fd, &m, sizeof(m), 1, 0) != 0 || me_child_xfer(fd, &wire, sizeof(wire), 1, 0) != 0 ||
                  me_photo_wire_send(fd, pc, &poster) != 0
              ? -1
              : 0;
    me_photo_result_free(&poster);
    me_montage_result_free(&r);
    return ret;
}

int me_montage_sandbox_child(void)
{
    const int fd = ME_CHILD_FD;
    me_photo_config_t pc;
    hello_t hello;
    int landlock, rc;
    me_montage_clip_t *clips = malloc(sizeof(*clips) * ME_MONTAGE_CLIPS_MAX);

    if (clips == NULL)
        return ME_CHILD_EXIT_SETUP;
    if (me_child_xfer(fd, &hello, sizeof(hello), 0, 0) != 0 || hello.magic != MAGIC || hello.photo_size != sizeof(pc) ||
        hello.clip_size != sizeof(me_montage_clip_t) || hello.params_size != sizeof(me_montage_params_t) ||
        me_child_xfer(fd, &pc, sizeof(pc), 0, 0) != 0 || pc.nvariants < 1 || pc.nvariants > ME_PHOTO_VARIANTS_MAX)
        return 2;
    if (me_photo_init() != 0)
        return ME_CHILD_EXIT_SETUP;
    if ((rc = me_child_confine(hello.memory_limit, &landlock)) != 0)
        return rc;
    me_log_debug(NULL, "montage decoder %d: confined (seccomp, Landlock ABI %d)", (int)getpid(), landlock);
    for (;;) {
        request_t req;
        me_montage_params_t mp;
        if (me_child_xfer(fd, &req, sizeof(req), 0, 0) != 0) {
            free(clips);
            return errno == EPIPE ? 0 : 2;
        }
        if (req.magic != MAGIC || req.nclips < 1 || req.nclips > ME_MONTAGE_CLIPS_MAX ||
            me_child_xfer(fd, &mp, sizeof(mp), 0, 0) != 0 ||
            me_child_xfer(fd, clips, sizeof(*clips) * req.nclips, 0, 0) != 0 || mp.nclips != (int)req.nclips)
            return 2;
        mp.preset[sizeof(mp.preset) - 1] = '\0';
        for (int i = 0; i < mp.nclips; i++)
            clips[i].caption[sizeof(clips[i].caption) - 1] = '\0';
        if (answer(fd, &pc, &mp, clips) != 0)
            return 2;
    }
}
