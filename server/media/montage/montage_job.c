/* montage_job.c: a montage's job in the video lane: its clips' ranges from storage into a
 * montage decoder, the film and poster into storage, progress and facts into the manifest. */
#include "server/media/montage/montage.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/jobs/jobs_config.h"
#include "server/media/manifest.h"
#include "server/media/montage/montage_config.h"
#include "server/media/montage/montage_sandbox.h"
#include "server/media/video/video_config.h"
#include "server/media/video/video_job.h"
#include "server/storage/layout.h"

#define PROGRESS_EVERY_MS 2000

struct me_montage_jobs {
    const me_config_t *cfg;
    const me_photo_config_t *pc;
    me_montage_decoders_t *decoders; /* videos.sandbox: one per video worker */
    atomic_int stopping;
    char tmp_root[PATH_MAX];
};

typedef struct {
    me_montage_jobs_t *mj;
    me_storage_t *st;
    const json_t *manifest;
    const char *album, *id;
    const char *keys[2 * ME_MONTAGE_CLIPS_MAX];
    int64_t last_store;
} job_t;

static int read_storage(void *ctx, int input, uint64_t offset, void *buf, size_t len, size_t *got)
{
    job_t *job = ctx;
    *got = 0;
    if (job->keys[input] == NULL)
        return ME_EIO;
    int ret = me_storage_get(job->st, job->keys[input], offset, len, buf, got);
    return ret == 0 ? 0 : ret == ME_ENOTFOUND ? ME_ENOTFOUND : ME_EIO;
}

static int progress(void *ctx, int done, int total)
{
    job_t *job = ctx;
    int64_t now = me_clock_mono_ms();
    if (atomic_load(&job->mj->stopping))
        return 1;
    if (now - job->last_store >= PROGRESS_EVERY_MS) {
        json_t *m = json_deep_copy(job->manifest);
        job->last_store = now;
        if (m != NULL &&
            (me_manifest_set_progress(m, total > 0 ? (double)done / total : 0, me_clock_wall_ms() / 1000) != 0 ||
             me_manifest_store(job->st, m) != 0))
            me_log_warn(NULL, "montage %s: its progress could not be stored", job->id);
        json_decref(m);
    }
    return 0;
}

static int take(void *ctx, const me_montage_result_t *r, const char *path)
{
    job_t *job = ctx;
    char key[ME_STORAGE_KEY_MAX + 1];
    int fd, ret;
    if (me_layout_variant(key, sizeof(key), job->album, job->id, "film", "mp4") != 0)
        return ME_EINVAL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return ME_EIO;
    ret = me_video_store_file(job->st, key, fd, r->bytes);
    close(fd);
    return ret;
}

/* videos.sandbox off: the film in this process, in a scratch directory of its own. */
static int in_process(me_montage_jobs_t *mj, const me_montage_params_t *mp, const me_montage_clip_t *clips,
                      const me_montage_source_t *src, job_t *job, me_montage_result_t *r, me_photo_result_t *poster)
{
    char dir[PATH_MAX], path[PATH_MAX + 32];
    int ret;
    memset(poster, 0, sizeof(*poster));
    snprintf(dir, sizeof(dir), "%s/mediaedge-montage-XXXXXX", mj->tmp_root);
    if (mkdtemp(dir) == NULL) {
        memset(r, 0, sizeof(*r));
        return ME_EIO;
    }
    snprintf(path, sizeof(path), "%s/" ME_MONTAGE_FILM, dir);
    if ((ret = me_montage_film(mp, clips, src, path, progress, job, r)) == 0 &&
        (ret = me_photo_process_pixels(mj->pc, r->poster, r->poster_width, r->poster_height, poster)) == 0)
        ret = take(job, r, path);
    unlink(path);
    rmdir(dir);
    return ret;
}

static void fail(me_job_failure_t *why, int err, int permanent, const char *message)
{
    why->err = err;
    why->permanent = permanent;
    snprintf(why->message, sizeof(why->message), "%s", message);
}

/* The clips of the manifest, their keys into job. 0 or -1 (a manifest we did not write). */
static int clips_of(const json_t *manifest, job_t *job, me_montage_clip_t *clips, int *n)
{
    const json_t *list = json_object_get(manifest, "clips"), *c;
    size_t i;
    if (!json_is_array(list) || json_array_size(list) < 1 || json_array_size(list) > ME_MONTAGE_CLIPS_MAX)
        return -1;
    json_array_foreach(list, i, c)
    {
        me_montage_clip_t *mc = &clips[i];
        const char *kind = json_string_value(json_object_get(c, "kind"));
        json_t *start = json_object_get(c, "start");
        memset(mc, 0, sizeof(*mc));
        mc->kind = kind != NULL && strcmp(kind, "photo") == 0 ? ME_MONTAGE_PHOTO : ME_MONTAGE_VIDEO;
        mc->width = (int)json_integer_value(json_object_get(c, "width"));
        mc->height = (int)json_integer_value(json_object_get(c, "height"));
        mc->duration = json_number_value(json_object_get(c, "duration"));
        mc->start = json_is_number(start) ? json_number_value(start) : -1;
        mc->bytes = (uint64_t)json_integer_value(json_object_get(c, "bytes"));
        mc->small_bytes = (uint64_t)json_integer_value(json_object_get(c, "small_bytes"));
        snprintf(mc->caption, sizeof(mc->caption), "%s", json_string_value(json_object_get(c, "caption")) ?: "");
        job->keys[2 * i] = json_string_value(json_object_get(c, "key"));
        job->keys[2 * i + 1] = json_string_value(json_object_get(c, "small_key"));
        if (job->keys[2 * i] == NULL || mc->width < 1 || mc->height < 1 || mc->bytes == 0)
            return -1;
        if (job->keys[2 * i + 1] == NULL)
            mc->small_bytes = 0;
    }
    *n = (int)i;
    return 0;
}

/* The result for the manifest: the film's facts, each clip's start, the variants. */
static json_t *montage_manifest(const me_montage_result_t *r, const me_photo_result_t *poster, const json_t *manifest,
                                const char *album, const char *id)
{
    json_t *variants = json_object(), *clips = json_deep_copy(json_object_get(manifest, "clips")), *c;
    json_t *out = json_pack("{s:f,s:i,s:i}", "duration", r->duration, "width", r->width, "height", r->height);
    size_t i;
    int bad =
        variants == NULL || clips == NULL || out == NULL ||
        me_manifest_add_variant(variants, album, id, "film", "mp4", r->width, r->height, r->bytes, "video/mp4") != 0;
    json_t *film = json_object_get(variants, ME_MONTAGE_FILM);
    bad = bad || film == NULL || json_object_set_new(film, "duration", json_real(r->duration)) != 0 ||
          json_object_set_new(film, "video_codec", json_string("h264")) != 0 ||
          json_object_set_new(film, "audio_codec", json_string("aac")) != 0;
    for (int k = 0; !bad && k < poster->noutputs; k++) {
        const me_photo_output_t *o = &poster->outputs[k];
        bad = me_manifest_add_variant(variants, album, id, o->name, o->ext, o->width, o->height, o->len,
                                      o->content_type) != 0;
    }
    json_array_foreach(clips, i, c) if (!bad && json_object_get(c, "start") == NULL) bad =
        json_object_set_new(c, "start", json_real(r->starts[i])) != 0;
    if (!bad) {
        bad = json_object_set_new(out, "variants", variants) != 0;
        variants = NULL;
        bad |= json_object_set_new(out, "clips", clips) != 0;
        clips = NULL;
    }
    json_decref(variants);
    json_decref(clips);
    if (bad) {
        json_decref(out);
        return NULL;
    }
    return out;
}

int me_montage_jobs_process(void *ctx, me_storage_t *st, const json_t *manifest, json_t **result, me_job_failure_t *why)
{
    me_montage_jobs_t *mj = ctx;
    const me_montage_settings_t *ms = me_montage_settings(mj->cfg);
    job_t *job = calloc(1, sizeof(*job));
    me_montage_clip_t *clips = malloc(sizeof(*clips) * ME_MONTAGE_CLIPS_MAX);
    me_montage_params_t mp = {.crf = ms->crf, .audio_kbps = ms->audio_bitrate};
    me_montage_result_t r = {0};
    me_photo_result_t poster = {0};
    char message[256];
    int ret;

    if (job == NULL || clips == NULL) {
        fail(why, ME_ENOMEM, 0, "Out of memory.");
        ret = ME_ENOMEM;
        goto exit;
    }
    *job = (job_t){.mj = mj, .st = st, .manifest = manifest, .last_store = me_clock_mono_ms()};
    job->album = me_manifest_album(manifest);
    job->id = me_manifest_id(manifest);
    snprintf(mp.preset, sizeof(mp.preset), "%s", me_video_presets[ms->preset]);
    if (job->album == NULL || job->id == NULL || clips_of(manifest, job, clips, &mp.nclips) != 0) {
        fail(why, ME_EINTERNAL, 1, "The montage's record is incomplete.");
        ret = ME_EINTERNAL;
        goto exit;
    }
    me_montage_source_t src = {read_storage, job};
    ret = mj->decoders != NULL
              ? me_montage_decoders_process(mj->decoders, &mp, clips, &src, progress, take, job, &r, &poster)
              : in_process(mj, &mp, clips, &src, job, &r, &poster);
    if (ret == 0 && (ret = me_photo_store(st, job->album, job->id, &poster)) != 0)
        fail(why, ME_EIO, 0, "The poster could not be stored.");
    else if (ret == ME_ECORRUPT) {
        const json_t *c =
            json_array_get(json_object_get(manifest, "clips"), r.failed_clip >= 0 ? (size_t)r.failed_clip : 0);
        snprintf(message, sizeof(message), "The clip of media %s could not be read; make the montage without it.",
                 json_string_value(json_object_get(c, "id")) ?: "?");
        me_log_info(NULL, "montage %s: %s (%s)", job->id, message, r.detail);
        fail(why, ME_ECORRUPT, 1, message);
    } else if (ret == ME_EDRAINING)
        fail(why, ret, 0, "Processing was stopped; it starts again shortly.");
    else if (ret == ME_EBUSY) {
        me_log_info(NULL, "montage %s: the decoder failed (%s)", job->id, r.detail);
        fail(why, ME_EBUSY, 0, "The montage could not be made this time.");
    } else if (ret != 0) {
        me_log_info(NULL, "montage %s: %s (%s)", job->id, me_err_code(ret), r.detail);
        fail(why, ret == ME_ENOTFOUND ? ME_EMEDIA_NOT_READY : ret, ret == ME_ENOTFOUND,
             ret == ME_ENOTFOUND ? "A photo or video of this montage was deleted meanwhile."
                                 : "The montage could not be made this time.");
    } else if ((*result = montage_manifest(&r, &poster, manifest, job->album, job->id)) == NULL) {
        fail(why, ME_ENOMEM, 0, "Out of memory.");
        ret = ME_ENOMEM;
    }
exit:
    me_photo_result_free(&poster);
    me_montage_result_free(&r);
    free(clips);
    free(job);
    return ret;
}

me_montage_jobs_t *me_montage_jobs_new(const me_config_t *cfg, const me_photo_config_t *pc, char *err, size_t errlen)
{
    me_montage_jobs_t *mj = calloc(1, sizeof(*mj));
    const char *tmp = getenv("TMPDIR");
    char exe[PATH_MAX];
    ssize_t n;

    if (mj == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    mj->cfg = cfg, mj->pc = pc;
    snprintf(mj->tmp_root, sizeof(mj->tmp_root), "%s", tmp != NULL && *tmp ? tmp : "/tmp");
    if (!me_video_settings(cfg)->sandbox)
        return mj;
    if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) <= 0) {
        snprintf(err, errlen, "videos.sandbox: cannot find this program (/proc/self/exe)");
        free(mj);
        return NULL;
    }
    exe[n] = '\0';
    if ((mj->decoders = me_montage_decoders_new(pc, me_jobs_settings(cfg)->video_workers, exe, mj->tmp_root,
                                                me_video_settings(cfg)->memory, err, errlen)) == NULL) {
        free(mj);
        return NULL;
    }
    return mj;
}

void me_montage_jobs_stop(me_montage_jobs_t *mj)
{
    if (mj != NULL)
        atomic_store(&mj->stopping, 1);
}

void me_montage_jobs_free(me_montage_jobs_t *mj)
{
    if (mj == NULL)
        return;
    me_montage_decoders_free(mj->decoders);
    free(mj);
}
