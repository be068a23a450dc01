/* video_job.h: a video's job in the server, for processing.c's video lane: the original
 * from storage into a decoder (video_sandbox.h, or this process with videos.sandbox off),
 * the renditions and the poster's variants into storage (storage/layout.h's keys), the
 * facts into the manifest, and `progress` in the manifest while it runs. */
#ifndef ME_VIDEO_JOB_H
#define ME_VIDEO_JOB_H

#include <jansson.h>
#include "server/core/config.h"
#include "server/jobs/jobs.h"
#include "server/media/photo/photo.h"
#include "server/storage/storage.h"

typedef struct me_video_jobs me_video_jobs_t;

/* The video lane's pipeline, for cfg (videos and plans sections, jobs.video_workers
 * decoders; kept by pointer) and pc (the poster's photo settings; kept by pointer). NULL
 * with err set when out of memory or the decoders' directories could not be made. */
me_video_jobs_t *me_video_jobs_new(const me_config_t *cfg, const me_photo_config_t *pc, char *err, size_t errlen);

/* A me_job_process_fn for video manifests (ctx: the me_video_jobs_t): 0 with *result the
 * facts, the original's record and the variants (renditions "<name>.mp4" with duration and
 * codecs, and the poster's "<name>.<ext>"), or the failure in *why: video_too_long (the
 * original is deleted), too_large, unsupported_media_type, corrupt for good; a decoder that
 * died or stalled, or storage, for another attempt; ME_EDRAINING (handed back) once
 * me_video_jobs_stop() was called. */
int me_video_jobs_process(void *ctx, me_storage_t *st, const json_t *manifest, json_t **result, me_job_failure_t *why);

/* Stores the bytes bytes of fd (read from its offset) at key: in one put when they fit in a
 * part, else as a multipart object, one part in memory at a time (a 10-minute rendition is
 * hundreds of MB). 0, ME_ENOMEM or ME_EIO (nothing stored). */
int me_video_store_file(me_storage_t *st, const char *key, int fd, uint64_t bytes) ME_MUST_CHECK;

/* Makes the jobs running now stop at once (their decoders killed) and hand themselves back;
 * call it before stopping the lane. Thread-safe. */
void me_video_jobs_stop(me_video_jobs_t *v);

/* Frees v (its decoders ended). Call it when no job runs. NULL is a no-op. */
void me_video_jobs_free(me_video_jobs_t *v);

#endif
