/* processing.c: the pipelines by kind behind the job runner, and their wiring. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/jobs/jobs.h"
#include "server/core/log.h"
#include "server/core/failpoint.h"
#include "server/core/metrics.h"
#include "server/media/photo/photo.h"
#include "server/media/photo/photo_config.h"
#include "server/jobs/jobs_config.h"
#include "server/media/sandbox/photo_sandbox.h"
#include "server/media/manifest.h"
#include "server/media/montage/montage.h"
#include "server/media/processing.h"
#include "server/media/video/video_job.h"
#include "server/jobs/webhook.h"

ME_COUNTER(photos_refused, "mediaedge_photos_refused_total",
           "Photos that failed for good because of the file: too_large, unsupported_media_type, corrupt.", "reason")

struct me_processing {
    me_photo_config_t photos;
    me_photo_decoders_t *decoders; /* photos.sandbox: one per job worker */
    me_jobq_t *jobs_q, *hooks_q;
    me_webhooks_t *hooks;
    me_jobs_t *jobs;
    /* the video lane: its own queue and threads (jobs.video_workers), so that long videos
     * never hold up photos; each lane lists every job and runs only its kind's */
    me_video_jobs_t *videos;
    me_jobq_t *videos_q;
    me_jobs_t *video_jobs;
    me_montage_jobs_t *montages; /* montages run in the video lane too */
};

static void fail(me_job_failure_t *why, int err, int permanent, const char *message)
{
    why->err = err;
    why->permanent = permanent;
    snprintf(why->message, sizeof(why->message), "%s", message);
}

/* The photo's facts for the manifest: the original's record gains format, width and
 * height; the variants are keyed "<name>.<ext>" with their storage key. */
static json_t *photo_manifest(const me_photo_result_t *r, const json_t *original, const char *album, const char *id)
{
    json_t *facts = me_photo_facts_json(r), *variants = json_object(), *orig = json_deep_copy(original), *v;
    size_t i;
    if (facts == NULL || variants == NULL || orig == NULL)
        goto fail;
    json_array_foreach(json_object_get(facts, "variants"), i, v) {
        if (me_manifest_add_variant(variants, album, id, json_string_value(json_object_get(v, "name")),
                                    json_string_value(json_object_get(v, "format")),
                                    (int)json_integer_value(json_object_get(v, "width")),
                                    (int)json_integer_value(json_object_get(v, "height")),
                                    (uint64_t)json_integer_value(json_object_get(v, "bytes")),
                                    json_string_value(json_object_get(v, "content_type"))) != 0)
            goto fail;
    }
    static const char *const moved[] = {"format", "width", "height"};
    for (i = 0; i < sizeof(moved) / sizeof(moved[0]); i++)
        if (json_object_set(orig, moved[i], json_object_get(facts, moved[i])) != 0 ||
            json_object_del(facts, moved[i]) != 0)
            goto fail;
    int bad = json_object_set_new(facts, "variants", variants);
    variants = NULL;
    bad |= json_object_set_new(facts, "original", orig);
    orig = NULL;
    if (bad)
        goto fail;
    return facts;
fail:
    json_decref(orig);
    json_decref(variants);
    json_decref(facts);
    return NULL;
}

/* The file is at fault: the photo fails at once, with this message for people. */
typedef struct {
    int err;
    const char *message;
} refusal_t;

static const refusal_t *refusal_of(int err)
{
    static const refusal_t refusals[] = {
        {ME_ETOOLARGE, "The photo has more pixels than this server processes."},
        {ME_EMEDIA, "This file is not a photo we can read (JPEG, PNG, HEIC, WebP or GIF)."},
        {ME_ECORRUPT, "The photo is damaged or cut short; upload it again from the phone."},
    };
    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++)
        if (refusals[i].err == err)
            return &refusals[i];
    return NULL;
}

static int process_photo(me_processing_t *p, me_storage_t *st, const json_t *manifest, json_t **result,
                         me_job_failure_t *why)
{
    const json_t *original = json_object_get(manifest, "original");
    const char *key = json_string_value(json_object_get(original, "key"));
    const char *album = me_manifest_album(manifest);
    const char *id = me_manifest_id(manifest);
    me_photo_result_t r;
    char *data = NULL;
    size_t len = 0;
    int ret;

    memset(&r, 0, sizeof(r));
    if (key == NULL || album == NULL || id == NULL) {
        fail(why, ME_EINTERNAL, 1, "The media's record is incomplete.");
        return ME_EINTERNAL;
    }
    if ((ret = me_storage_get_all(st, key, p->photos.max_bytes, &data, &len)) != 0) {
        if (ret == ME_ETOOLARGE)
            fail(why, ret, 1, "The photo is larger than this server processes.");
        else
            fail(why, ME_EIO, 0, "The original could not be read from storage.");
        return ret;
    }
    ret = p->decoders != NULL ? me_photo_decoders_process(p->decoders, data, len, &r)
                              : me_photo_process(&p->photos, data, len, &r);
    free(data);
    if (ret == 0)
        me_failpoint("photo.decoded");
    if (ret != 0) {
        me_log_info(NULL, "media %s: photo refused: %s (%s)", id, me_err_code(ret), r.detail);
        const refusal_t *refused = refusal_of(ret);
        if (refused != NULL) {
            const char *reason = me_err_code(ret);
            me_metric_add(photos_refused, &reason, 1);
            fail(why, ret, 1, refused->message);
        } else if (ret == ME_EBUSY) /* the decoder died or stalled on it: tried again, then set aside */
            fail(why, ME_ECORRUPT, 0, "The photo could not be read safely; upload it again, or share it as a JPEG.");
        else
            fail(why, ret, 0, "The photo could not be processed this time.");
        goto exit;
    }
    if ((ret = me_photo_store(st, album, id, &r)) != 0) {
        if (ret == ME_ENOSPACE) /* not the photo's fault: tried again later, without counting */
            fail(why, ME_ENOSPACE, 0, "Storage is full; the photo is processed again when there is room.");
        else
            fail(why, ME_EIO, 0, "The variants could not be stored.");
        goto exit;
    }
    if ((*result = photo_manifest(&r, original, album, id)) == NULL) {
        fail(why, ME_ENOMEM, 0, "Out of memory.");
        ret = ME_ENOMEM;
    }
exit:
    me_photo_result_free(&r);
    return ret;
}

/* The photo lane's process function (it runs only photos: me_jobs_lane()). */
static int process(void *ctx, me_storage_t *st, const json_t *manifest, json_t **result, me_job_failure_t *why)
{
    const char *kind = me_manifest_kind(manifest);
    if (kind != NULL && strcmp(kind, "photo") == 0)
        return process_photo(ctx, st, manifest, result, why);
    fail(why, ME_EUNSUPPORTED, 0, "No pipeline for this kind of media here.");
    return ME_EUNSUPPORTED;
}

/* The video lane's process function: videos, and montages (cut from videos' renditions). */
static int process_video_lane(void *ctx, me_storage_t *st, const json_t *manifest, json_t **result,
                              me_job_failure_t *why)
{
    me_processing_t *p = ctx;
    const char *kind = me_manifest_kind(manifest);
    if (kind != NULL && strcmp(kind, "montage") == 0)
        return me_montage_jobs_process(p->montages, st, manifest, result, why);
    return me_video_jobs_process(p->videos, st, manifest, result, why);
}

/* One decoder per job worker (their processes start with their first photo). */
static int start_decoders(me_processing_t *p, const me_config_t *cfg, char *err, size_t errlen)
{
    char exe[PATH_MAX];
    const char *tmp = getenv("TMPDIR");
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n <= 0) {
        snprintf(err, errlen, "photos.sandbox: cannot find this program (/proc/self/exe)");
        return -1;
    }
    exe[n] = '\0';
    p->decoders =
        me_photo_decoders_new(&p->photos, me_jobs_settings(cfg)->workers, exe, tmp != NULL && *tmp ? tmp : "/tmp",
                              me_photo_settings(cfg)->timeout, err, errlen);
    return p->decoders != NULL ? 0 : -1;
}

/* A queue from queues, or a local one when there is no maker. */
static me_jobq_t *make_queue(const me_jobq_maker_t *queues, const char *name, char *err, size_t errlen)
{
    me_jobq_t *q = queues != NULL ? queues->make(queues->ctx, name, err, errlen) : me_jobq_local_new();
    if (q == NULL && queues == NULL)
        snprintf(err, errlen, "out of memory");
    return q;
}

me_processing_t *me_processing_start(const me_config_t *cfg, me_storage_t *st, const me_jobq_maker_t *queues, char *err,
                                     size_t errlen)
{
    me_processing_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    me_photo_config_init(&p->photos, cfg); /* libvips itself is set up by the first photo:
                                             * loading its modules would double the start-up */
    if (me_photo_settings(cfg)->sandbox && start_decoders(p, cfg, err, errlen) != 0)
        goto fail;
    if ((p->videos = me_video_jobs_new(cfg, &p->photos, err, errlen)) == NULL ||
        (p->montages = me_montage_jobs_new(cfg, &p->photos, err, errlen)) == NULL)
        goto fail;
    if ((p->jobs_q = make_queue(queues, "photo", err, errlen)) == NULL ||
        (p->hooks_q = make_queue(queues, "hooks", err, errlen)) == NULL ||
        (p->videos_q = make_queue(queues, "video", err, errlen)) == NULL)
        goto fail;
    if ((p->hooks = me_webhooks_new(cfg, st, p->hooks_q, err, errlen)) == NULL)
        goto fail;
    if ((p->jobs = me_jobs_new(cfg, st, p->jobs_q, process, p, p->hooks)) == NULL ||
        (p->video_jobs = me_jobs_new(cfg, st, p->videos_q, process_video_lane, p, p->hooks)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (queues != NULL && queues->lead != NULL) {
        me_jobs_leader(p->jobs, queues->lead, queues->ctx);
        me_jobs_leader(p->video_jobs, queues->lead, queues->ctx);
    }
    me_jobs_lane(p->jobs, "photo", 0);
    me_jobs_lane(p->video_jobs, "video,montage", me_jobs_settings(cfg)->video_workers);
    if (me_webhooks_start(p->hooks) != 0 || me_jobs_start(p->jobs) != 0 || me_jobs_start(p->video_jobs) != 0) {
        snprintf(err, errlen, "the jobs and webhooks found in storage could not be read");
        goto fail;
    }
    return p;
fail:
    me_processing_stop(p);
    return NULL;
}

void me_processing_queue(void *processing, const char *media_id)
{
    me_processing_t *p = processing;
    /* both lanes: the one not of its kind drops it after one look at the manifest */
    me_jobs_queue(p->jobs, media_id);
    me_jobs_queue(p->video_jobs, media_id);
}

me_webhooks_t *me_processing_webhooks(me_processing_t *p)
{
    return p->hooks;
}

void me_processing_stop(me_processing_t *p)
{
    if (p == NULL)
        return;
    me_video_jobs_stop(p->videos); /* a video at work is handed back rather than finished */
    me_montage_jobs_stop(p->montages);
    me_jobs_free(p->video_jobs);
    me_jobs_free(p->jobs); /* running photo jobs finish, and may still raise webhooks */
    me_webhooks_free(p->hooks);
    me_jobq_free(p->videos_q);
    me_video_jobs_free(p->videos);
    me_montage_jobs_free(p->montages);
    me_jobq_free(p->jobs_q);
    me_jobq_free(p->hooks_q);
    me_photo_decoders_free(p->decoders);
    free(p);
}
