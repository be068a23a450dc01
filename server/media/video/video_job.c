/* video_job.c: a video's job in the server: storage to decoder to storage, and the manifest. */
#include "server/media/video/video_job.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/jobs/jobs_config.h"
#include "server/media/manifest.h"
#include "server/media/sandbox/video_sandbox.h"
#include "server/media/video/video_config.h"
#include "server/storage/layout.h"

#define COPY_CHUNK (4u << 20)  /* bytes of the original read from storage at a time */
#define PROGRESS_EVERY_MS 3000 /* the manifest's progress is rewritten at most this often */
#define STORE_PART (16u << 20) /* bytes of a rendition stored at a time (S3 wants 5 MiB at least) */

ME_COUNTER(
    videos_refused, "mediaedge_videos_refused_total",
    "Videos that failed for good because of the file: video_too_long, too_large, unsupported_media_type, corrupt.",
    "reason")
ME_COUNTER(video_seconds, "mediaedge_video_seconds_processed_total", "Seconds of video decoded by the video lane.",
           NULL)

struct me_video_jobs {
    const me_config_t *cfg;
    const me_photo_config_t *pc;
    me_video_decoders_t *decoders; /* videos.sandbox: one per video worker */
    atomic_int stopping;
    char tmp_root[PATH_MAX];
};

/* One job while it runs. */
typedef struct {
    me_video_jobs_t *v;
    me_storage_t *st;
    const char *key, *album, *id;
    const json_t *manifest;
    int64_t last_store; /* ms, me_clock_mono_ms() of the last progress written */
    double counted;     /* seconds of video counted in the metric */
} job_t;

/* Copies the original from storage into fd, a chunk at a time. */
static int fill(void *ctx, int fd)
{
    job_t *job = ctx;
    me_storage_stat_t stat;
    char *buf = malloc(COPY_CHUNK);
    uint64_t at = 0;
    int ret = buf != NULL ? me_storage_head(job->st, job->key, &stat) : ME_ENOMEM;

    while (ret == 0 && at < stat.size) {
        size_t got = 0;
        if ((ret = me_storage_get(job->st, job->key, at, COPY_CHUNK, buf, &got)) != 0)
            break;
        for (size_t done = 0; done < got;) {
            ssize_t n = write(fd, buf + done, got - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                ret = ME_EIO;
                break;
            }
            done += (size_t)n;
        }
        if (got == 0)
            ret = ME_EIO; /* shorter than it said */
        at += got;
    }
    free(buf);
    return ret == 0 ? 0 : ret == ME_ENOMEM ? ret : ME_EIO;
}

/* The manifest's progress, every few seconds; the seconds decoded into the metric. Non-zero
 * once the lane is stopping: the job hands itself back. */
static int progress(void *ctx, double done, double total)
{
    job_t *job = ctx;
    int64_t now = me_clock_mono_ms();

    if (done > job->counted) {
        me_metric_add(video_seconds, NULL, done - job->counted);
        job->counted = done;
    }
    if (atomic_load(&job->v->stopping))
        return 1;
    if (now - job->last_store >= PROGRESS_EVERY_MS) {
        json_t *m = json_deep_copy(job->manifest);
        job->last_store = now;
        if (m != NULL && (me_manifest_set_progress(m, total > 0 ? done / total : 0, me_clock_wall_ms() / 1000) != 0 ||
                          me_manifest_store(job->st, m) != 0))
            me_log_warn(NULL, "media %s: its progress could not be stored", job->id);
        json_decref(m);
    }
    return 0;
}

/* Reads len bytes of fd from its current offset into buf. 0 or -1. */
static int read_all(int fd, char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n, len -= (size_t)n;
    }
    return 0;
}

int me_video_store_file(me_storage_t *st, const char *key, int fd, uint64_t bytes)
{
    char upload[ME_STORAGE_UPLOAD_ID_MAX + 1];
    size_t part = STORE_PART, nparts = (size_t)((bytes + part - 1) / part);
    me_storage_part_t *parts = NULL;
    char *buf = malloc(bytes < part ? (size_t)bytes + 1 : part);
    int ret = ME_EIO, begun = 0;

    if (buf == NULL)
        return ME_ENOMEM;
    if (bytes <= part) {
        ret = read_all(fd, buf, (size_t)bytes) == 0 && me_storage_put(st, key, buf, (size_t)bytes) == 0 ? 0 : ME_EIO;
        goto exit;
    }
    if (nparts > 10000 || (parts = calloc(nparts, sizeof(*parts))) == NULL ||
        me_storage_multipart_begin(st, key, upload, sizeof(upload)) != 0)
        goto exit;
    begun = 1;
    for (size_t i = 0; i < nparts; i++) {
        size_t len = i + 1 < nparts ? part : (size_t)(bytes - (uint64_t)i * part);
        if (read_all(fd, buf, len) != 0 || me_storage_part_put(st, key, upload, (int)i + 1, buf, len, &parts[i]) != 0)
            goto exit;
    }
    if (me_storage_multipart_complete(st, key, upload, parts, (int)nparts) == 0)
        ret = 0, begun = 0;
exit:
    if (begun && me_storage_multipart_abort(st, key, upload) != 0)
        me_log_warn(NULL, "storage: a multipart upload of %s could not be aborted", key);
    free(parts);
    free(buf);
    return ret;
}

/* Stores a rendition made at path under its variant key. */
static int take(void *ctx, const me_video_output_t *o, const char *path)
{
    job_t *job = ctx;
    char key[ME_STORAGE_KEY_MAX + 1];
    int fd, ret;

    if (me_layout_variant(key, sizeof(key), job->album, job->id, o->name, "mp4") != 0)
        return ME_EINVAL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return ME_EIO;
    ret = me_video_store_file(job->st, key, fd, o->bytes);
    close(fd);
    return ret;
}

/* The job in this process (videos.sandbox off): a scratch directory of its own. */
static int in_process(me_video_jobs_t *v, const me_video_params_t *vp, job_t *job, me_video_result_t *r,
                      me_photo_result_t *poster)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    int fd = -1, ret = ME_EIO;

    memset(r, 0, sizeof(*r));
    memset(poster, 0, sizeof(*poster));
    snprintf(dir, sizeof(dir), "%s/mediaedge-video-XXXXXX", v->tmp_root);
    if (mkdtemp(dir) == NULL)
        return ME_EIO;
    snprintf(path, sizeof(path), "%s/input", dir);
    if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0 || (ret = fill(job, fd)) != 0)
        goto exit;
    if ((ret = me_video_transcode(vp, fd, dir, progress, job, r)) != 0)
        goto exit;
    if ((ret = me_video_poster(v->pc, r, poster)) != 0) {
        snprintf(r->detail, sizeof(r->detail), "poster: %s", poster->detail);
        goto exit;
    }
    for (int i = 0; i < r->noutputs && ret == 0; i++) {
        snprintf(path, sizeof(path), "%s/%s.mp4", dir, r->outputs[i].name);
        ret = take(job, &r->outputs[i], path);
    }
exit:
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < vp->nrenditions; i++) {
        snprintf(path, sizeof(path), "%s/%s.mp4", dir, vp->renditions[i].name);
        unlink(path);
    }
    snprintf(path, sizeof(path), "%s/input", dir);
    unlink(path);
    rmdir(dir);
    return ret;
}

/* The result for the manifest: the facts (the original's record gains format, width,
 * height), and the variants: each rendition with its duration and codecs, the poster's. */
static json_t *video_manifest(const me_video_result_t *r, const me_photo_result_t *poster, const json_t *original,
                              const char *album, const char *id)
{
    json_t *facts = me_video_facts_json(r), *variants = json_object(), *orig = json_deep_copy(original);
    int bad = facts == NULL || variants == NULL || orig == NULL;

    for (int i = 0; !bad && i < r->noutputs; i++) {
        const me_video_output_t *o = &r->outputs[i];
        char name[ME_VIDEO_NAME_MAX + 8];
        snprintf(name, sizeof(name), "%s.mp4", o->name);
        bad = me_manifest_add_variant(variants, album, id, o->name, "mp4", o->width, o->height, o->bytes,
                                      "video/mp4") != 0;
        json_t *entry = json_object_get(variants, name);
        bad = bad || entry == NULL ||
              json_object_set_new(entry, "duration", json_real(round(o->duration * 1000) / 1000)) ||
              json_object_set_new(entry, "video_codec", json_string("h264")) ||
              json_object_set_new(entry, "audio_codec", o->has_audio ? json_string("aac") : json_null());
    }
    for (int i = 0; !bad && i < poster->noutputs; i++) {
        const me_photo_output_t *o = &poster->outputs[i];
        bad = me_manifest_add_variant(variants, album, id, o->name, o->ext, o->width, o->height, o->len,
                                      o->content_type) != 0;
    }
    static const char *const moved[] = {"format", "width", "height"};
    for (size_t i = 0; !bad && i < sizeof(moved) / sizeof(moved[0]); i++)
        bad = json_object_set(orig, moved[i], json_object_get(facts, moved[i])) != 0 ||
              json_object_del(facts, moved[i]) != 0;
    if (!bad) {
        json_object_del(facts, "renditions"); /* the variants say it, with their keys */
        bad = json_object_set_new(facts, "variants", variants);
        variants = NULL;
        bad |= json_object_set_new(facts, "original", orig);
        orig = NULL;
    }
    json_decref(orig);
    json_decref(variants);
    if (bad) {
        json_decref(facts);
        return NULL;
    }
    return facts;
}

static void fail(me_job_failure_t *why, int err, int permanent, const char *message)
{
    why->err = err;
    why->permanent = permanent;
    snprintf(why->message, sizeof(why->message), "%s", message);
}

/* Why the job failed, for the runner: the file's fault for good, else another attempt. */
static int failed(job_t *job, int ret, const me_video_result_t *r, me_job_failure_t *why)
{
    const char *reason = me_err_code(ret);

    me_log_info(NULL, "media %s: video refused: %s (%s)", job->id, reason, r->detail);
    switch (ret) {
    case ME_EVIDEO_TOO_LONG: /* not kept: the plan does not take it */
        if (me_storage_delete(job->st, job->key) != 0)
            me_log_error(NULL, "media %s: the original of a video too long could not be deleted", job->id);
        /* fall through */
    case ME_ETOOLARGE:
    case ME_EMEDIA:
    case ME_ECORRUPT:
        me_metric_add(videos_refused, &reason, 1);
        fail(why, ret, 1, r->message[0] ? r->message : me_err_message(ret));
        break;
    case ME_EBUSY: /* the decoder died or stalled on it: tried again, then set aside */
        fail(why, ME_ECORRUPT, 0, "The video could not be read safely; upload it again from the phone.");
        break;
    case ME_EDRAINING: fail(why, ret, 0, "Processing was stopped; it starts again shortly."); break;
    default: fail(why, ret, 0, "The video could not be processed this time.");
    }
    return ret;
}

int me_video_jobs_process(void *ctx, me_storage_t *st, const json_t *manifest, json_t **result, me_job_failure_t *why)
{
    me_video_jobs_t *v = ctx;
    const json_t *original = json_object_get(manifest, "original");
    job_t job = {.v = v, .st = st, .manifest = manifest, .last_store = me_clock_mono_ms()};
    me_video_params_t vp;
    me_video_result_t r = {0};
    me_photo_result_t poster = {0};
    int ret;

    job.key = json_string_value(json_object_get(original, "key"));
    job.album = me_manifest_album(manifest);
    job.id = me_manifest_id(manifest);
    if (job.key == NULL || job.album == NULL || job.id == NULL) {
        fail(why, ME_EINTERNAL, 1, "The media's record is incomplete.");
        return ME_EINTERNAL;
    }
    me_video_params_init(&vp, v->cfg, json_string_value(json_object_get(manifest, "plan")));
    ret = v->decoders != NULL ? me_video_decoders_process(v->decoders, &vp, fill, progress, take, &job, &r, &poster)
                              : in_process(v, &vp, &job, &r, &poster);
    if (ret == 0 && (ret = me_photo_store(st, job.album, job.id, &poster)) != 0 && ret != ME_ENOSPACE)
        fail(why, ME_EIO, 0, "The poster could not be stored.");
    else if (ret == ME_ENOSPACE) /* not the video's fault: tried again later, without counting (jobs.c) */
        fail(why, ret, 0, "Storage is full; the video is processed again when there is room.");
    else if (ret == ME_EIO)
        fail(why, ME_EIO, 0, "The video could not be read from or written to storage.");
    else if (ret != 0)
        failed(&job, ret, &r, why);
    else if ((*result = video_manifest(&r, &poster, original, job.album, job.id)) == NULL) {
        fail(why, ME_ENOMEM, 0, "Out of memory.");
        ret = ME_ENOMEM;
    }
    me_photo_result_free(&poster);
    me_video_result_free(&r);
    return ret;
}

me_video_jobs_t *me_video_jobs_new(const me_config_t *cfg, const me_photo_config_t *pc, char *err, size_t errlen)
{
    me_video_jobs_t *v = calloc(1, sizeof(*v));
    const char *tmp = getenv("TMPDIR");
    char exe[PATH_MAX];
    ssize_t n;

    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    v->cfg = cfg, v->pc = pc;
    snprintf(v->tmp_root, sizeof(v->tmp_root), "%s", tmp != NULL && *tmp ? tmp : "/tmp");
    if (!me_video_settings(cfg)->sandbox)
        return v;
    if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0) {
        snprintf(err, errlen, "videos.sandbox: cannot find this program (/proc/self/exe)");
        free(v);
        return NULL;
    }
    exe[n] = '\0';
    if ((v->decoders = me_video_decoders_new(pc, me_jobs_settings(cfg)->video_workers, exe, v->tmp_root,
                                             me_video_settings(cfg)->memory, err, errlen)) == NULL) {
        free(v);
        return NULL;
    }
    return v;
}

void me_video_jobs_stop(me_video_jobs_t *v)
{
    if (v != NULL)
        atomic_store(&v->stopping, 1);
}

void me_video_jobs_free(me_video_jobs_t *v)
{
    if (v == NULL)
        return;
    me_video_decoders_free(v->decoders);
    free(v);
}
