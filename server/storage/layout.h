/* layout.h: the one place that names storage keys. Every backend holds the same layout:
 *
 *     uploads/<upload-id>.info                 an upload's state document
 *     uploads/<upload-id>/piece-<offset>       bytes waiting to become a part (backends with
 *                                              a minimum part size)
 *     uploads/<upload-id>/data                 a partial upload's bytes (tus concatenation)
 *     originals/<album>/<media-id>             the original, byte for byte
 *     media/<media-id>.json                    the media manifest (media/manifest.h); also a
 *                                              montage's, kind "montage" (montage/montage.h)
 *     jobs/<media-id>.json                     a media still to process (jobs/jobs.h)
 *     variants/<album>/<media-id>/<name>.<ext> what the pipelines make (a montage's film.mp4
 *                                              and poster under its montage id)
 *     webhooks/<event-id>.json                 an event not yet delivered (jobs/webhook.h)
 *     tombstones/<media-id>.json               a deleted media, kept (media/deletion.h)
 *
 * Album first under originals/ and variants/ lets one CloudFront policy with a wildcard on
 * the album cover a whole album. Each function writes the key into key (len bytes, at least
 * ME_STORAGE_KEY_MAX + 1 suffices) and returns 0, or ME_EINVAL when it does not fit or is not
 * a valid storage key (an id or name with '/' or a leading '.'): callers pass ids they have
 * checked, so that is a programming error, never a path out of the layout. */
#ifndef ME_LAYOUT_H
#define ME_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"

/* Listing prefixes of the documents kept one per id. */
#define ME_LAYOUT_UPLOADS "uploads/" /* <id>.info, and <id>/ with an upload's objects */
#define ME_LAYOUT_MANIFESTS "media/"
#define ME_LAYOUT_JOBS "jobs/"
#define ME_LAYOUT_WEBHOOKS "webhooks/"
#define ME_LAYOUT_TOMBSTONES "tombstones/"
#define ME_LAYOUT_DELETIONS "deletions/" /* <media-id>.json: a deletion under way */

int me_layout_upload_info(char *key, size_t len, const char *upload_id) ME_MUST_CHECK;
int me_layout_upload_piece(char *key, size_t len, const char *upload_id, uint64_t offset) ME_MUST_CHECK;
int me_layout_upload_data(char *key, size_t len, const char *upload_id) ME_MUST_CHECK;
/* 1 with *offset set when key is a piece of upload_id (me_layout_upload_piece()'s form exactly),
 * else 0. */
int me_layout_upload_piece_offset(const char *key, const char *upload_id, uint64_t *offset);
/* The prefix of every object of an upload but its state: "uploads/<upload-id>/". */
int me_layout_upload_objects(char *prefix, size_t len, const char *upload_id) ME_MUST_CHECK;
int me_layout_original(char *key, size_t len, const char *album, const char *media_id) ME_MUST_CHECK;
int me_layout_manifest(char *key, size_t len, const char *media_id) ME_MUST_CHECK;
int me_layout_job(char *key, size_t len, const char *media_id) ME_MUST_CHECK;
int me_layout_variant(char *key, size_t len, const char *album, const char *media_id, const char *name,
                      const char *ext) ME_MUST_CHECK;
int me_layout_webhook(char *key, size_t len, const char *event_id) ME_MUST_CHECK;
int me_layout_tombstone(char *key, size_t len, const char *media_id) ME_MUST_CHECK;
int me_layout_deletion(char *key, size_t len, const char *media_id) ME_MUST_CHECK;
/* Listing prefixes (ending in '/'): a media's variants "variants/<album>/<media-id>/", and an
 * album's originals "originals/<album>/" and variants "variants/<album>/". */
int me_layout_media_variants(char *prefix, size_t len, const char *album, const char *media_id) ME_MUST_CHECK;
int me_layout_album_originals(char *prefix, size_t len, const char *album) ME_MUST_CHECK;
int me_layout_album_variants(char *prefix, size_t len, const char *album) ME_MUST_CHECK;

/* The id of a listed "<prefix><id><suffix>" document (prefix one of the ME_LAYOUT_* above,
 * suffix ".json", or ".info" for uploads): 1 with id (idlen bytes with its NUL) filled, or 0
 * when key has another shape (an id with '/' included) or the id does not fit. The id is not
 * otherwise checked. */
int me_layout_doc_id(const char *key, const char *prefix, const char *suffix, char *id, size_t idlen);

#endif
