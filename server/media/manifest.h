/* manifest.h: the media manifest (media/<media-id>.json), its one owner. A manifest is made
 * when an upload completes (status "uploaded"), marked "processing" when a job starts on it,
 * and ends "ready" (with the pipeline's facts and variants) or "failed" (with an error); a
 * media whose kind has no pipeline in this process goes back to "uploaded" for one that has.
 * It is replaced whole at each step, so a reader sees one state or the next. Its fields are
 * documented in the README ("The media manifest"). Times are seconds since the epoch. */
#ifndef ME_MANIFEST_H
#define ME_MANIFEST_H

#include <stdint.h>
#include <jansson.h>
#include "server/core/error.h"
#include "server/storage/storage.h"

#define ME_MANIFEST_MAX (1 << 20) /* a larger document is not one of ours */

/* What an upload knows of the media it completed. */
typedef struct {
    const char *media_id, *album, *owner, *ref, *plan, *client;
    const char *original_key; /* originals/<album>/<media-id> */
    uint64_t bytes;
    const char *sha256;       /* hex */
    const char *content_type; /* sniffed (sniff.h) */
    int64_t created_at;
    const char *upload_id; /* the upload that made it: its state document goes with the media */
} me_manifest_origin_t;

/* A new manifest, status "uploaded", kind from the content type. NULL when out of memory or
 * the content type is not a photo or video. The caller owns it. */
json_t *me_manifest_new(const me_manifest_origin_t *o);

/* The manifest of media_id: 0 with *m set (the caller owns it), ME_ENOTFOUND, ME_EINVAL (not
 * a JSON object: a document we did not write), or ME_EIO. */
int me_manifest_load(me_storage_t *st, const char *media_id, json_t **m) ME_MUST_CHECK;

/* Stores m (not consumed) at its media id's key, durably: 0, ME_EINVAL (no valid id), ME_EIO. */
int me_manifest_store(me_storage_t *st, const json_t *m) ME_MUST_CHECK;

/* Members as strings (NULL when missing); owned by m. */
const char *me_manifest_id(const json_t *m);
const char *me_manifest_album(const json_t *m);
const char *me_manifest_kind(const json_t *m);
const char *me_manifest_status(const json_t *m);

/* 1 when the media is ready or failed: no job has anything left to do with it. */
int me_manifest_is_final(const json_t *m);

/* When the media entered its current state: processing_at while processing (or its last
 * progress_at, when later), created_at before. 0 when unknown. */
int64_t me_manifest_since(const json_t *m);

/* State changes; ME_ENOMEM leaves m as it was where it matters (status unchanged). */
int me_manifest_set_processing(json_t *m, int64_t now) ME_MUST_CHECK;
int me_manifest_set_waiting(json_t *m) ME_MUST_CHECK; /* back to uploaded: no pipeline here */
/* result: the pipeline's members (facts, original, variants), merged in (not consumed). */
int me_manifest_set_ready(json_t *m, const json_t *result, int64_t now) ME_MUST_CHECK;
/* While processing: "progress", the part done (0..0.999, three decimals), for an app's
 * progress bar, and "progress_at" (now), which me_manifest_since() takes as the media's
 * last sign of life; the pipeline stores copies with them, so the state changes above drop
 * them. */
int me_manifest_set_progress(json_t *m, double fraction, int64_t now) ME_MUST_CHECK;
/* code: me_err_code() of the failure; message: for people. */
int me_manifest_set_failed(json_t *m, const char *code, const char *message, int64_t now) ME_MUST_CHECK;

/* Adds to variants (a JSON object, the "variants" of a pipeline's result) the entry
 * "<name>.<ext>": {key, width, height, bytes, content_type}, its key under the album's
 * variants. 0, ME_EINVAL (a name that makes no key), ME_ENOMEM. */
int me_manifest_add_variant(json_t *variants, const char *album, const char *media_id, const char *name,
                            const char *ext, int width, int height, uint64_t bytes,
                            const char *content_type) ME_MUST_CHECK;

#endif
