/* video_sandbox.c: the video decoder process: its wire, the parent's checks, its main loop. */
#include "server/media/sandbox/video_sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/media/sandbox/child.h"
#include "server/media/sandbox/photo_sandbox.h"

#define MAGIC 0x4d455644u /* "MEVD" */
#define INPUT "input"     /* the original, in the child's scratch directory */
#define MP4_BOXES_MAX 64  /* top-level boxes of a rendition we write: ftyp, moov, free, mdat */

typedef struct {
    uint32_t magic, photo_size, params_size, reserved;
    uint64_t memory_limit; /* a me_photo_config_t follows */
} hello_t;

typedef struct {
    uint32_t magic, reserved; /* a me_video_params_t follows */
} request_t;

enum { MSG_PROGRESS = 1, MSG_RESULT = 2 };

typedef struct {
    uint32_t magic, kind;
    int32_t ret, reserved;
    double done, total; /* MSG_PROGRESS; MSG_RESULT: a me_video_result_t, then a photo result, follow */
    double weight;      /* MSG_PROGRESS: the video's pixels a second, in 1080p30s (at least 1) */
} message_t;

struct me_video_decoders {
    const me_photo_config_t *pc;
    uint64_t memory_limit;
    me_child_pool_t *children;
};

/* ---- the parent's side ---- */

/* Starts c's process if it is not running and greets it. 0, or -1 with why set. */
static int start(me_video_decoders_t *d, me_child_t *c, char *why, size_t whylen)
{
    unsigned starts = c->starts;
    hello_t hello = {MAGIC, sizeof(*d->pc), sizeof(me_video_params_t), 0, d->memory_limit};
    int64_t deadline = me_clock_mono_ms() + ME_VIDEO_SANDBOX_BASE_MS;

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

/* Empties c's scratch directory of a job's files (the input, the renditions). */
static void clean(me_child_t *c, const me_video_params_t *vp)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/" INPUT, c->dir);
    unlink(path);
    for (int i = 0; i < vp->nrenditions; i++) {
        snprintf(path, sizeof(path), "%s/%s.mp4", c->dir, vp->renditions[i].name);
        unlink(path);
    }
}

int me_video_check_mp4(const char *path, uint64_t bytes, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), moov = 0, mdat = 0, ok = 0;
    struct stat st;
    uint64_t at = 0;

    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != bytes) {
        snprintf(why, whylen, "a rendition missing or not of the size it said");
        goto exit;
    }
    for (int n = 0; at < bytes && n < MP4_BOXES_MAX; n++) {
        unsigned char h[16];
        uint64_t size;
        if (pread(fd, h, sizeof(h), (off_t)at) < 8)
            break;
        size = (uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 | (uint64_t)h[2] << 8 | h[3];
        if (size == 1)
            for (int i = 8; i < 16; i++)
                size = (i == 8 ? 0 : size << 8) | h[i];
        if (size < 8 || size > bytes - at || (n == 0 && memcmp(h + 4, "ftyp", 4) != 0))
            break;
        moov |= memcmp(h + 4, "moov", 4) == 0;
        if (memcmp(h + 4, "mdat", 4) == 0)
            mdat = 1 + moov; /* 2: after the moov */
        at += size;
    }
    ok = at == bytes && moov && mdat == 2;
    if (!ok)
        snprintf(why, whylen, "a rendition that is not an MP4 with its moov first");
exit:
    if (fd >= 0)
        close(fd);
    return ok ? 0 : -1;
}

/* Checks the result the child sent for vp (strings cut to their arrays). 0 or -1 with why set. */
static int check_result(const me_video_params_t *vp, int ret, me_video_result_t *r, char *why, size_t whylen)
{
    me_video_facts_t *f = &r->facts;
    char *strings[] = {f->container,      f->video_codec, f->audio_codec, f->dynamic_range, f->color_primaries,
                       f->color_transfer, f->taken_at,    r->message,     r->detail};
    size_t sizes[] = {sizeof(f->container),     sizeof(f->video_codec),     sizeof(f->audio_codec),
                      sizeof(f->dynamic_range), sizeof(f->color_primaries), sizeof(f->color_transfer),
                      sizeof(f->taken_at),      sizeof(r->message),         sizeof(r->detail)};

    r->poster = NULL; /* a pointer of the child's */
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        strings[i][sizes[i] - 1] = '\0';
    if (!isfinite(f->duration) || f->duration < 0 || !isfinite(f->fps) || f->width < 0 || f->height < 0 ||
        f->width > ME_VIDEO_SIZE_MAX * 4 || f->height > ME_VIDEO_SIZE_MAX * 4 ||
        r->noutputs != (ret == 0 ? vp->nrenditions : 0)) {
        snprintf(why, whylen, "facts out of range");
        return -1;
    }
    for (int i = 0; i < r->noutputs; i++) {
        me_video_output_t *o = &r->outputs[i];
        o->name[sizeof(o->name) - 1] = '\0';
        if (strcmp(o->name, vp->renditions[i].name) != 0 || o->width < 2 || o->height < 2 ||
            o->width > vp->renditions[i].size || o->height > vp->renditions[i].size || !isfinite(o->duration) ||
            o->duration < 0 || o->bytes == 0 || o->bytes > ME_VIDEO_SANDBOX_OUTPUT_MAX) {
            snprintf(why, whylen, "rendition %d out of range", i);
            return -1;
        }
    }
    return 0;
}

/* The codes a child may answer with. */
static int expected(int ret)
{
    static const int codes[] = {
        0, ME_ETOOLARGE, ME_EVIDEO_TOO_LONG, ME_EMEDIA, ME_ECORRUPT, ME_ENOMEM, ME_EINTERNAL, ME_EIO, ME_EDRAINING};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (codes[i] == ret)
            return 1;
    return 0;
}

/* Writes the original into c's scratch directory with fill. 0 or fill's code. */
static int write_input(me_child_t *c, me_video_fill_fn fill, void *ctx)
{
    char path[PATH_MAX + 32];
    int fd, ret;

    snprintf(path, sizeof(path), "%s/" INPUT, c->dir);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        return ME_EIO;
    ret = fill(ctx, fd);
    if (close(fd) != 0 && ret == 0)
        ret = ME_EIO;
    return ret;
}

static int process(me_video_decoders_t *d, me_child_t *c, const me_video_params_t *vp, me_video_progress_fn progress,
                   me_video_take_fn take, void *ctx, me_video_result_t *out, me_photo_result_t *poster)
{
    char why[160] = "answered out of protocol", path[PATH_MAX + 32];
    int64_t begun = me_clock_mono_ms(), deadline = begun + ME_VIDEO_SANDBOX_BASE_MS;
    request_t req = {MAGIC, 0};
    message_t m;
    int ret;

    if (me_child_xfer(c->fd, &req, sizeof(req), 1, deadline) != 0 ||
        me_child_xfer(c->fd, (void *)vp, sizeof(*vp), 1, deadline) != 0)
        goto broke;
    for (;;) {
        if (me_child_xfer(c->fd, &m, sizeof(m), 0, deadline) != 0)
            goto broke;
        if (m.magic != MAGIC || (m.kind != MSG_PROGRESS && m.kind != MSG_RESULT)) {
            errno = EPROTO;
            goto broke;
        }
        if (m.kind == MSG_RESULT)
            break;
        if (!isfinite(m.total) || !isfinite(m.done) || m.total < 0 || m.done < 0 || !(m.weight >= 1)) {
            errno = EPROTO;
            goto broke;
        }
        /* the time allowed, once the child knows how long the video says it is, and longer
         * if its frames run past that (the plan's limit stops them in the child) */
        deadline =
            begun + ME_VIDEO_SANDBOX_BASE_MS +
            (int64_t)(fmin(fmax(m.total, m.done), 86400) * fmin(m.weight, 1000) * ME_VIDEO_SANDBOX_PER_SECOND * 1000);
        if (progress && progress(ctx, m.done, m.total) != 0) {
            me_child_stop(c, NULL, 0); /* nothing of it is kept: the job starts again elsewhere */
            snprintf(out->message, sizeof(out->message), "Processing was stopped.");
            snprintf(out->detail, sizeof(out->detail), "stopped at %.1f s", m.done);
            return ME_EDRAINING;
        }
    }
    ret = m.ret;
    if (!expected(ret) || me_child_xfer(c->fd, out, sizeof(*out), 0, deadline) != 0 ||
        check_result(vp, ret, out, why, sizeof(why)) != 0 || me_photo_wire_recv(c->fd, d->pc, deadline, poster) != 0 ||
        poster->noutputs != (ret == 0 ? 2 * d->pc->nvariants : 0)) {
        if (errno != ETIMEDOUT && errno != EPIPE)
            errno = EPROTO;
        goto broke;
    }
    for (int i = 0; ret == 0 && i < out->noutputs; i++) {
        snprintf(path, sizeof(path), "%s/%s.mp4", c->dir, out->outputs[i].name);
        if (me_video_check_mp4(path, out->outputs[i].bytes, why, sizeof(why)) != 0) {
            errno = EPROTO;
            goto broke;
        }
        ret = take(ctx, &out->outputs[i], path);
    }
    return ret;
broke:
    if (errno == ETIMEDOUT)
        snprintf(why, sizeof(why), "took longer than its time (%lld ms)", (long long)(deadline - begun));
    else if (errno == EPIPE || errno == ECONNRESET)
        snprintf(why, sizeof(why), "closed its socket");
    out->poster = NULL; /* whatever came over the socket is no pointer of ours */
    me_video_result_free(out);
    me_photo_result_free(poster);
    return me_child_fail(c, why, sizeof(why), out->detail, sizeof(out->detail));
}

me_video_decoders_t *me_video_decoders_new(const me_photo_config_t *pc, int n, const char *exe, const char *tmp_root,
                                           uint64_t memory_limit, char *err, size_t errlen)
{
    me_video_decoders_t *d = calloc(1, sizeof(*d));

    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->pc = pc, d->memory_limit = memory_limit;
    if ((d->children = me_child_pool_new(n, exe, "video-decoder", tmp_root, "-video", -1, err, errlen)) == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

int me_video_decoders_process(me_video_decoders_t *d, const me_video_params_t *vp, me_video_fill_fn fill,
                              me_video_progress_fn progress, me_video_take_fn take, void *ctx, me_video_result_t *out,
                              me_photo_result_t *poster)
{
    me_child_t *c = me_child_acquire(d->children);
    char why[128] = "";
    int ret;

    memset(out, 0, sizeof(*out));
    memset(poster, 0, sizeof(*poster));
    clean(c, vp); /* what a job cut short left */
    if ((ret = write_input(c, fill, ctx)) == 0) {
        if (start(d, c, why, sizeof(why)) != 0)
            ret = me_child_fail(c, why, sizeof(why), out->detail, sizeof(out->detail));
        else
            ret = process(d, c, vp, progress, take, ctx, out, poster);
    }
    clean(c, vp);
    me_child_release(c);
    return ret;
}

void me_video_decoders_free(me_video_decoders_t *d)
{
    if (d == NULL)
        return;
    me_child_pool_free(d->children);
    free(d);
}

/* ---- the child's side ---- */

/* Where progress goes, and the facts the probe has filled. */
typedef struct {
    int fd;
    const me_video_result_t *r;
} progress_t;

static int send_progress(void *ctx, double done, double total)
{
    const progress_t *p = ctx;
    const me_video_facts_t *f = &p->r->facts;
    message_t m = {
        MAGIC, MSG_PROGRESS, 0, 0, done, total, fmax(1, (double)f->width * f->height * f->fps / ME_VIDEO_SANDBOX_UNIT)};
    return me_child_xfer(p->fd, &m, sizeof(m), 1, 0);
}

/* One video: the input in TMPDIR, the renditions there, the result and poster sent. 0, or -1
 * when the socket broke. */
static int answer(int fd, const me_photo_config_t *pc, const me_video_params_t *vp)
{
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX + 32];
    me_video_result_t r;
    me_photo_result_t poster = {0};
    progress_t sink = {fd, &r};
    int in, ret;

    snprintf(path, sizeof(path), "%s/" INPUT, dir);
    if ((in = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        memset(&r, 0, sizeof(r));
        ret = ME_EIO;
    } else {
        ret = me_video_transcode(vp, in, dir, send_progress, &sink, &r);
        close(in);
    }
    if (ret == 0 && (ret = me_video_poster(pc, &r, &poster)) != 0) {
        snprintf(r.detail, sizeof(r.detail), "poster: %s", poster.detail);
        r.noutputs = 0;
    }
    message_t m = {MAGIC, MSG_RESULT, ret, 0, 0, 0};
    me_video_result_t wire = r;
    wire.poster = NULL;
    ret = me_child_xfer(fd, &m, sizeof(m), 1, 0) != 0 || me_child_xfer(fd, &wire, sizeof(wire), 1, 0) != 0 ||
                  me_photo_wire_send(fd, pc, &poster) != 0
              ? -1
              : 0;
    me_photo_result_free(&poster);
    me_video_result_free(&r);
    return ret;
}

int me_video_sandbox_child(void)
{
    const int fd = ME_CHILD_FD;
    me_photo_config_t pc;
    hello_t hello;
    int landlock, rc;

    if (me_child_xfer(fd, &hello, sizeof(hello), 0, 0) != 0 || hello.magic != MAGIC || hello.photo_size != sizeof(pc) ||
        hello.params_size != sizeof(me_video_params_t) || me_child_xfer(fd, &pc, sizeof(pc), 0, 0) != 0 ||
        pc.nvariants < 1 || pc.nvariants > ME_PHOTO_VARIANTS_MAX)
        return 2;
    if (me_photo_init() != 0) /* loads libvips' modules before the file system closes */
        return ME_CHILD_EXIT_SETUP;
    if ((rc = me_child_confine(hello.memory_limit, &landlock)) != 0)
        return rc;
    me_log_debug(NULL, "video decoder %d: confined (seccomp, Landlock ABI %d)", (int)getpid(), landlock);
    for (;;) {
        request_t req;
        me_video_params_t vp;
        if (me_child_xfer(fd, &req, sizeof(req), 0, 0) != 0)
            return errno == EPIPE ? 0 : 2; /* the server closed: the end */
        if (req.magic != MAGIC || me_child_xfer(fd, &vp, sizeof(vp), 0, 0) != 0 || vp.nrenditions < 1 ||
            vp.nrenditions > ME_VIDEO_RENDITIONS_MAX)
            return 2;
        vp.preset[sizeof(vp.preset) - 1] = vp.plan[sizeof(vp.plan) - 1] = '\0';
        for (int i = 0; i < vp.nrenditions; i++)
            vp.renditions[i].name[sizeof(vp.renditions[i].name) - 1] = '\0';
        if (answer(fd, &pc, &vp) != 0)
            return 2;
    }
}
