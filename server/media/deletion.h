/* deletion.h: deleting a media, or an album, and everything stored for it, so that nothing of
 * it comes back, not even from a job processing it at that very moment. Storage has no
 * compare-and-swap, so deletion and jobs follow one rule:
 *
 *   - a deletion stores a tombstone (tombstones/<media-id>.json, kept for good) before it
 *     removes anything, then lists and removes every object of the media;
 *   - a job, after each of its writes (manifest, variants), asks me_media_deleted() and, when
 *     it finds the tombstone, removes everything of the media itself (me_media_purge()).
 *
 * Either the job's check comes after the tombstone, and the job cleans up; or the job's write
 * came before the tombstone, and so before the deletion's listing, which removes it. The
 * origin and the media API read manifests, and the manifest goes with the rest: a deleted
 * media is 404 everywhere once its deletion returns. */
#ifndef ME_DELETION_H
#define ME_DELETION_H

#include <stdint.h>
#include <jansson.h>
#include "server/core/error.h"
#include "server/jobs/webhook.h"
#include "server/storage/storage.h"

/* Deletes the media whose manifest is m (not consumed): its mark (deletions/<media-id>.json)
 * and its tombstone {id, album, owner, upload_id, deleted_at} first, then the media.deleted
 * event on hooks (may be NULL; the event carries the manifest with status "deleted"), then
 * the upload's state document (uploads/<id>.info, when the manifest names its upload_id),
 * the job, the variants, the original and the manifest, then the mark, last, so that a
 * deletion cut short is found and finished by the next, or by the reconciler. Blocks
 * (storage). 0; ME_EINVAL (m has no id or album); ME_EIO (nothing was removed when the
 * tombstone could not be stored; otherwise some objects remain: retry, it is idempotent). */
int me_media_delete(me_storage_t *st, me_webhooks_t *hooks, const json_t *m, int64_t now) ME_MUST_CHECK;

/* Finishes every deletion that was cut short (a crash, a storage failure): me_media_delete()
 * marks each one at deletions/<media-id>.json before anything else and removes the mark
 * last. The reconciler calls it, so a deleted media goes wholly even when its client never
 * asks again. Blocks (storage). Returns how many it finished, or ME_ENOMEM, ME_EIO (listing);
 * one that fails again stays marked for the next call. */
int me_media_finish_deletions(me_storage_t *st, me_webhooks_t *hooks);

/* The tombstone of media_id: 0 with *t set (the caller owns it), ME_ENOTFOUND, ME_EIO. */
int me_media_tombstone(me_storage_t *st, const char *media_id, json_t **t) ME_MUST_CHECK;

/* 1 when media_id has a tombstone, 0 when not, ME_EIO when storage cannot tell. */
int me_media_deleted(me_storage_t *st, const char *media_id);

/* Removes every object of media_id in album but its tombstone: job, variants, original,
 * manifest. Idempotent. 0 or ME_EIO (what could not be removed stays for the next try). */
int me_media_purge(me_storage_t *st, const char *album, const char *media_id) ME_MUST_CHECK;

/* Calls cb(media_id, arg) once for each media that has an original or variants in album (its
 * ids in key order), stopping at cb's first non-zero return, which is returned. 0, cb's
 * value, ME_EINVAL (a bad album), ME_ENOMEM, ME_EIO. */
int me_media_list_album(me_storage_t *st, const char *album, int (*cb)(const char *media_id, void *arg),
                        void *arg) ME_MUST_CHECK;

#endif
