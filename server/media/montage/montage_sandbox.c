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
#include "server/media/sandbox/decoder_wire.h"
#include "server/media/sandbox/photo_sandbox.h"
#include "server/media/sandbox/video_sandbox.h"

#define MAGIC 0x4d454d4fu /* "MEMO" */
#define FILM "film.mp4"   /* in the child's scratch directory */

/* ---- the parent's side ---- */

static void clean(me_child_t *c)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/" FILM, c->dir);
    unlink(path);
}

/* Checks the result the child sent for mp, in place. 0 or -1 with why set. */
static int check_result(const void *params, int ret, void *result, char *why, size_t whylen)
{
    const me_montage_params_t *mp = params;
    me_montage_result_t *r = result;

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

/* Progress: clips done, a whole number of them. */
static int progress_ok(const void *params, const me_decoder_msg_t *m)
{
    const me_montage_params_t *mp = params;
    return m->done >= 0 && m->done <= mp->nclips && m->done == (int)m->done;
}

static void release(void *result)
{
    me_montage_result_t *r = result;
    r->poster = NULL; /* whatever came over the socket is no pointer of ours */
    me_montage_result_free(r);
}

static const int codes[] = {0, ME_ECORRUPT, ME_EIO, ME_ENOMEM, ME_EDRAINING, ME_EINTERNAL};

static const me_decoder_wire_t wire = {
    "montage",    MAGIC,  sizeof(me_montage_result_t), codes, sizeof(codes) / sizeof(codes[0]), 1, progress_ok, NULL,
    check_result, release};

const me_decoder_wire_t *me_montage_wire(void)
{
    return &wire;
}

/* Tells the caller's progress function what the child said. */
typedef struct {
    me_montage_progress_fn fn;
    void *ctx;
    int total;
} progress_t;

static int told(void *ctx, const me_decoder_msg_t *m)
{
    const progress_t *p = ctx;
    return p->fn(p->ctx, (int)m->done, p->total);
}

static int process(me_montage_decoders_t *d, me_child_t *c, const me_montage_params_t *mp,
                   const me_montage_clip_t *clips, const me_montage_source_t *src, me_montage_progress_fn progress,
                   me_montage_take_fn take, void *ctx, me_montage_result_t *out, me_photo_result_t *poster)
{
    char why[160], path[PATH_MAX + 32];
    progress_t tell = {progress, ctx, mp->nclips};
    me_decoder_job_t job = {.wire = &wire,
                            .params = mp,
                            .pc = d->pc,
                            .ninputs = 2 * mp->nclips,
                            .read = src->read,
                            .read_ctx = src->ctx,
                            .progress = progress != NULL ? told : NULL,
                            .progress_ctx = &tell};
    struct iovec parts[] = {{(void *)mp, sizeof(*mp)}, {(void *)clips, sizeof(*clips) * (size_t)mp->nclips}};
    int ret = me_decoder_run(c, &job, (uint32_t)mp->nclips, parts, 2,
                             ME_MONTAGE_SANDBOX_BASE_MS + (int64_t)mp->nclips * ME_MONTAGE_SANDBOX_PER_CLIP_MS, out,
                             poster, out->detail, sizeof(out->detail));

    if (job.stopped) {
        snprintf(out->detail, sizeof(out->detail), "stopped after %d clips", (int)job.stopped_at);
        return ME_EDRAINING;
    }
    if (ret == 0) {
        snprintf(path, sizeof(path), "%s/" FILM, c->dir);
        if (me_video_check_mp4(path, out->bytes, why, sizeof(why)) != 0)
            return me_decoder_fail(c, &job, why, sizeof(why), out, poster, out->detail, sizeof(out->detail));
        ret = take(ctx, out, path);
    }
    return ret;
}

me_montage_decoders_t *me_montage_decoders_new(const me_photo_config_t *pc, int n, const char *exe,
                                               const char *tmp_root, uint64_t memory_limit, char *err, size_t errlen)
{
    return me_decoders_new(pc, n, exe, "montage-decoder", tmp_root, "-montage", memory_limit, err, errlen);
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
    me_decoder_hello_t hello = {MAGIC, 0, sizeof(me_montage_params_t), sizeof(me_montage_clip_t), d->memory_limit};
    if (me_decoder_start(c, hello, d->pc, ME_MONTAGE_SANDBOX_BASE_MS, why, sizeof(why)) != 0)
        ret = me_child_fail(c, why, sizeof(why), out->detail, sizeof(out->detail));
    else
        ret = process(d, c, mp, clips, src, progress, take, ctx, out, poster);
    clean(c);
    me_child_release(c);
    return ret;
}

void me_montage_decoders_free(me_montage_decoders_t *d)
{
    me_decoders_free(d);
}

/* ---- the child's side ---- */

/* Ranges from the parent, over the socket. */
static int read_remote(void *ctx, int input, uint64_t offset, void *buf, size_t len, size_t *got)
{
    (void)ctx;
    return me_decoder_child_read(MAGIC, input, offset, buf, len, got);
}

static int send_progress(void *ctx, int done, int total)
{
    (void)ctx;
    return me_decoder_child_progress(MAGIC, done, total, 1);
}

static int answer(const me_photo_config_t *pc, const me_montage_params_t *mp, const me_montage_clip_t *clips)
{
    const char *dir = getenv("TMPDIR");
    char path[PATH_MAX + 32];
    me_montage_source_t src = {read_remote, NULL};
    me_montage_result_t r;
    me_photo_result_t poster = {0};
    int ret;

    snprintf(path, sizeof(path), "%s/" FILM, dir != NULL ? dir : ".");
    ret = me_montage_film(mp, clips, &src, path, send_progress, NULL, &r);
    if (ret == 0 && (ret = me_photo_process_pixels(pc, r.poster, r.poster_width, r.poster_height, &poster)) != 0) {
        snprintf(r.detail, sizeof(r.detail), "poster: %s", poster.detail);
        ret = ME_EINTERNAL;
        me_photo_result_free(&poster);
        unlink(path);
    }
    ret = me_decoder_child_result(MAGIC, ret, &r, sizeof(r), &r.poster, pc, &poster);
    me_montage_result_free(&r);
    return ret;
}

int me_montage_sandbox_child(void)
{
    const me_decoder_hello_t want = {MAGIC, sizeof(me_photo_config_t), sizeof(me_montage_params_t),
                                     sizeof(me_montage_clip_t), 0};
    me_photo_config_t pc;
    me_montage_clip_t *clips = malloc(sizeof(*clips) * ME_MONTAGE_CLIPS_MAX);
    int rc = clips == NULL ? ME_CHILD_EXIT_SETUP : me_decoder_child_setup("montage", &want, &pc);

    while (rc == 0) {
        me_montage_params_t mp;
        uint32_t nclips;
        if ((rc = me_decoder_child_request(MAGIC, &nclips)) != 0) {
            rc = rc > 0 ? 0 : 2; /* the server closed: the end */
            break;
        }
        if (nclips < 1 || nclips > ME_MONTAGE_CLIPS_MAX || me_child_xfer(ME_CHILD_FD, &mp, sizeof(mp), 0, 0) != 0 ||
            me_child_xfer(ME_CHILD_FD, clips, sizeof(*clips) * nclips, 0, 0) != 0 || mp.nclips != (int)nclips) {
            rc = 2;
            break;
        }
        mp.preset[sizeof(mp.preset) - 1] = '\0';
        for (int i = 0; i < mp.nclips; i++)
            clips[i].caption[sizeof(clips[i].caption) - 1] = '\0';
        if (answer(&pc, &mp, clips) != 0)
            rc = 2;
    }
    free(clips);
    return rc;
}
