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
#include "server/media/sandbox/decoder_wire.h"
#include "server/media/sandbox/photo_sandbox.h"

#define MAGIC 0x4d455644u /* "MEVD" */
#define INPUT "input"     /* the original, in the child's scratch directory */
#define MP4_BOXES_MAX 64  /* top-level boxes of a rendition we write: ftyp, moov, free, mdat */

/* ---- the parent's side ---- */

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
static int check_result(const void *params, int ret, void *result, char *why, size_t whylen)
{
    const me_video_params_t *vp = params;
    me_video_result_t *r = result;
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

/* Progress: seconds decoded of the header's total, and the video's weight (its pixels a
 * second in 1080p30s, at least 1). */
static int progress_ok(const void *params, const me_decoder_msg_t *m)
{
    (void)params;
    return isfinite(m->total) && isfinite(m->done) && m->total >= 0 && m->done >= 0 && m->weight >= 1;
}

/* The time allowed, once the child knows how long the video says it is, and longer if its
 * frames run past that (the plan's limit stops them in the child). */
static int64_t deadline(const void *params, int64_t begun, const me_decoder_msg_t *m)
{
    (void)params;
    return begun + ME_VIDEO_SANDBOX_BASE_MS +
           (int64_t)(fmin(fmax(m->total, m->done), 86400) * fmin(m->weight, 1000) * ME_VIDEO_SANDBOX_PER_SECOND * 1000);
}

static void release(void *result)
{
    me_video_result_t *r = result;
    r->poster = NULL; /* whatever came over the socket is no pointer of ours */
    me_video_result_free(r);
}

/* The codes a child may answer with. */
static const int codes[] = {0,      ME_ETOOLARGE, ME_EVIDEO_TOO_LONG, ME_EMEDIA, ME_ECORRUPT, ME_ENOMEM, ME_EINTERNAL,
                            ME_EIO, ME_EDRAINING};

static const me_decoder_wire_t wire = {
    "video",      MAGIC,  sizeof(me_video_result_t), codes, sizeof(codes) / sizeof(codes[0]), 0, progress_ok, deadline,
    check_result, release};

const me_decoder_wire_t *me_video_wire(void)
{
    return &wire;
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

/* Tells the caller's progress function what the child said. */
typedef struct {
    me_video_progress_fn fn;
    void *ctx;
} progress_t;

static int told(void *ctx, const me_decoder_msg_t *m)
{
    const progress_t *p = ctx;
    return p->fn(p->ctx, m->done, m->total);
}

static int process(me_video_decoders_t *d, me_child_t *c, const me_video_params_t *vp, me_video_progress_fn progress,
                   me_video_take_fn take, void *ctx, me_video_result_t *out, me_photo_result_t *poster)
{
    char why[160], path[PATH_MAX + 32];
    progress_t tell = {progress, ctx};
    me_decoder_job_t job = {
        .wire = &wire, .params = vp, .pc = d->pc, .progress = progress != NULL ? told : NULL, .progress_ctx = &tell};
    struct iovec parts[] = {{(void *)vp, sizeof(*vp)}};
    int ret =
        me_decoder_run(c, &job, 0, parts, 1, ME_VIDEO_SANDBOX_BASE_MS, out, poster, out->detail, sizeof(out->detail));

    if (job.stopped) {
        snprintf(out->message, sizeof(out->message), "Processing was stopped.");
        snprintf(out->detail, sizeof(out->detail), "stopped at %.1f s", job.stopped_at);
        return ME_EDRAINING;
    }
    for (int i = 0; ret == 0 && i < out->noutputs; i++) {
        snprintf(path, sizeof(path), "%s/%s.mp4", c->dir, out->outputs[i].name);
        if (me_video_check_mp4(path, out->outputs[i].bytes, why, sizeof(why)) != 0)
            return me_decoder_fail(c, &job, why, sizeof(why), out, poster, out->detail, sizeof(out->detail));
        ret = take(ctx, &out->outputs[i], path);
    }
    return ret;
}

me_video_decoders_t *me_video_decoders_new(const me_photo_config_t *pc, int n, const char *exe, const char *tmp_root,
                                           uint64_t memory_limit, char *err, size_t errlen)
{
    return me_decoders_new(pc, n, exe, "video-decoder", tmp_root, "-video", memory_limit, err, errlen);
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
        me_decoder_hello_t hello = {MAGIC, 0, sizeof(me_video_params_t), 0, d->memory_limit};
        if (me_decoder_start(c, hello, d->pc, ME_VIDEO_SANDBOX_BASE_MS, why, sizeof(why)) != 0)
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
    me_decoders_free(d);
}

/* ---- the child's side ---- */

/* Progress, with the weight of the video the probe has found. */
static int send_progress(void *ctx, double done, double total)
{
    const me_video_facts_t *f = &((const me_video_result_t *)ctx)->facts;
    return me_decoder_child_progress(MAGIC, done, total,
                                     fmax(1, (double)f->width * f->height * f->fps / ME_VIDEO_SANDBOX_UNIT));
}

/* One video: the input in TMPDIR, the renditions there, the result and poster sent. 0, or -1
 * when the socket broke. */
static int answer(const me_photo_config_t *pc, const me_video_params_t *vp)
{
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX + 32];
    me_video_result_t r;
    me_photo_result_t poster = {0};
    int in, ret;

    snprintf(path, sizeof(path), "%s/" INPUT, dir);
    if ((in = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        memset(&r, 0, sizeof(r));
        ret = ME_EIO;
    } else {
        ret = me_video_transcode(vp, in, dir, send_progress, &r, &r);
        close(in);
    }
    if (ret == 0 && (ret = me_video_poster(pc, &r, &poster)) != 0) {
        snprintf(r.detail, sizeof(r.detail), "poster: %s", poster.detail);
        r.noutputs = 0;
    }
    ret = me_decoder_child_result(MAGIC, ret, &r, sizeof(r), &r.poster, pc, &poster);
    me_video_result_free(&r);
    return ret;
}

int me_video_sandbox_child(void)
{
    const me_decoder_hello_t want = {MAGIC, sizeof(me_photo_config_t), sizeof(me_video_params_t), 0, 0};
    me_photo_config_t pc;
    int rc;

    if ((rc = me_decoder_child_setup("video", &want, &pc)) != 0)
        return rc;
    for (;;) {
        me_video_params_t vp;
        uint32_t count;
        if ((rc = me_decoder_child_request(MAGIC, &count)) != 0)
            return rc > 0 ? 0 : 2; /* the server closed: the end */
        if (me_child_xfer(ME_CHILD_FD, &vp, sizeof(vp), 0, 0) != 0 || vp.nrenditions < 1 ||
            vp.nrenditions > ME_VIDEO_RENDITIONS_MAX)
            return 2;
        vp.preset[sizeof(vp.preset) - 1] = vp.plan[sizeof(vp.plan) - 1] = '\0';
        for (int i = 0; i < vp.nrenditions; i++)
            vp.renditions[i].name[sizeof(vp.renditions[i].name) - 1] = '\0';
        if (answer(&pc, &vp) != 0)
            return 2;
    }
}
