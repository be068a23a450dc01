/* montage.h: one-second montages (premium): a request checked and made durable, its id, its
 * status as the API shows it, and its job in the video lane.
 *
 * A montage is kept as a manifest of kind "montage" at the media manifest's key
 * (media/<montage-id>.json: storage/layout.h), so that the job runner (jobs.h: durable jobs,
 * retries, the reconciler, deletion's tombstones), the origin and signed URLs (delivery/)
 * treat it as they treat media; its film is the variant film.mp4 and its poster the photo
 * variants beside it. Its fields beyond a media's: period, caption, request_sha256, clips
 * (each media's capture time, date caption, the renditions or JPEG it is cut from), and once
 * ready duration, width, height.
 *
 * The id is derived from the request: the first 128 bits of SHA-256 over its canonical form
 * (album, period, caption, and the media ids sorted with their starts), or over album and
 * Idempotency-Key when the request has one: the same request again finds the same montage
 * and makes nothing twice. */
#ifndef ME_MONTAGE_H
#define ME_MONTAGE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "server/auth/token.h"
#include "server/core/config.h"
#include "server/core/error.h"
#include "server/delivery/delivery.h"
#include "server/jobs/jobs.h"
#include "server/media/montage/montage_film.h"
#include "server/media/photo/photo.h"
#include "server/storage/storage.h"

#define ME_MONTAGE_ID_LEN 22     /* as media ids: 128 bits in base64url */
#define ME_MONTAGE_PERIOD_MAX 32 /* "2026-11", "2026", "2026-summer": [A-Za-z0-9_-] */
#define ME_MONTAGE_KEY_MAX 255   /* Idempotency-Key: printable ASCII */
#define ME_MONTAGE_FILM "film.mp4"

typedef struct {
    char id[ME_TOKEN_ID_MAX + 1];
    double start; /* < 0: none given */
} me_montage_item_t;

typedef struct {
    char period[ME_MONTAGE_PERIOD_MAX + 1];
    int caption_date; /* "caption": "date" */
    int n;
    me_montage_item_t items[ME_MONTAGE_CLIPS_MAX];
} me_montage_request_t;

/* Reads a request body {"period","media":[{"id","start"?},...],"caption":"date"|"none"?} of
 * len bytes, at most max_media media, each id once. 0, or ME_EINVAL with message (for
 * people) filled. */
int me_montage_parse(const char *body, size_t len, int max_media, me_montage_request_t *req, char *message,
                     size_t mlen) ME_MUST_CHECK;

/* The montage id (ME_MONTAGE_ID_LEN + 1 bytes into id) and the request's hex SHA-256 (65
 * bytes into sha): of album and key when key is not NULL, else of the canonical request. */
void me_montage_id(const char *album, const me_montage_request_t *req, const char *key, char *id, char *sha);

/* 1 when key is an acceptable Idempotency-Key: 1..ME_MONTAGE_KEY_MAX printable ASCII. */
int me_montage_key_valid(const char *key, size_t len);

/* Makes the montage id of req for who (its album), on a pool thread: every media is read;
 * when any is missing, of another album, not ready or not a photo or video, nothing is
 * stored and ME_EMEDIA_NOT_READY comes back with *problems a JSON array of {"id","reason"}
 * (reason not_found, not_ready, failed, not_a_photo_or_video; the caller owns it). Else the
 * montage's manifest and its job are stored unless the montage exists already (*created 0):
 * then 0 as well, or ME_ECONFLICT when key was given with another request (or the montage
 * was deleted: message says). *status gets the montage's status. Also ME_EIO, ME_ENOMEM. */
int me_montage_create(me_storage_t *st, const me_token_claims_t *who, const me_montage_request_t *req, const char *id,
                      const char *sha, int64_t now, json_t **problems, int *created, const char **message, char *status,
                      size_t slen) ME_MUST_CHECK;

/* The montage of manifest m as the API shows it at now (the caller owns it; NULL when out of
 * memory or a URL could not be signed): {"id","album","period","caption","status" (queued,
 * processing, ready, failed),"progress","clips","created_at"[,"processed_at"][,"duration",
 * "width","height","film":{"url","bytes",...},"poster":{"<name>.<ext>":{"url",...}},
 * "urls_expire_at"][,"error"]}. */
json_t *me_montage_view(me_delivery_t *d, const json_t *m, int64_t now);

/* The API's name of a manifest status: uploaded is "queued". */
const char *me_montage_status_name(const char *status);

/* ---- the job (montage_job.c) ---- */

typedef struct me_montage_jobs me_montage_jobs_t;

/* The montage pipeline for cfg (montages and videos sections; jobs.video_workers decoders,
 * confined when videos.sandbox) and pc (the poster's photo settings; kept by pointer). NULL
 * with err set on failure. */
me_montage_jobs_t *me_montage_jobs_new(const me_config_t *cfg, const me_photo_config_t *pc, char *err, size_t errlen);

/* A me_job_process_fn for montage manifests (ctx: the me_montage_jobs_t): the film from the
 * clips' renditions and JPEGs into variants/<album>/<id>/film.mp4, the poster's variants
 * beside it, progress in the manifest as it goes; 0 with *result (duration, width, height,
 * clips, variants), or *why: a clip that cannot be read fails the montage for good
 * (corrupt, naming the media); a decoder that died, or storage, tries again; ME_EDRAINING
 * once me_montage_jobs_stop() was called. */
int me_montage_jobs_process(void *ctx, me_storage_t *st, const json_t *manifest, json_t **result,
                            me_job_failure_t *why);

/* Makes running montages hand themselves back (a shutdown). Thread-safe. */
void me_montage_jobs_stop(me_montage_jobs_t *m);

void me_montage_jobs_free(me_montage_jobs_t *m);

#endif
