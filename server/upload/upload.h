/* upload.h: the resumable-upload state machine over storage: create, append (one PATCH),
 * inspect, terminate, complete into an original + manifest + processing job, concatenate
 * partial uploads into a final one, and sweep expired uploads. Protocol-neutral: handlers
 * map tus 1.0 and the IETF resumable-upload draft onto it (handlers/uploads.c,
 * handlers/uploads_draft.c).
 *
 * State lives in storage (uploads/<id>.info, JSON), so any instance can continue any upload
 * and a crash loses nothing acknowledged: data is stored durably first, the state that
 * counts it second, and only then is the client answered.
 * Every function blocks on storage: call them from pool threads. */
#ifndef ME_UPLOAD_H
#define ME_UPLOAD_H

#include <stddef.h>
#include <stdint.h>
#include "server/upload/checksum.h"
#include "server/core/config.h"
#include "server/storage/storage.h"
#include "server/upload/lock.h"
#include "server/auth/token.h"

#define ME_UPLOAD_ID_LEN 22            /* 128 random bits in base64url */
#define ME_UPLOAD_METADATA_MAX 4096    /* Upload-Metadata, bytes */
#define ME_UPLOAD_LENGTH_DEFERRED UINT64_MAX
#define ME_UPLOAD_CONCAT_MAX 16        /* partial uploads in one final (error.c's message names it) */

typedef struct me_uploads me_uploads_t;

/* Uploads being written at once in one instance: the pool threads' (<= 256; a final's
 * request holds its partials' and its own) and the sweeper's. When it is full, requests get
 * ME_ELOCKED (423) and clients retry. The size of a local lock set (lock.h). */
#define ME_UPLOAD_LOCKS 1024

/* Concatenation (tus): a partial upload's bytes only ever become part of final uploads; a
 * final upload is made of complete partial uploads and takes no bytes of its own. */
typedef enum { ME_UPLOAD_PLAIN, ME_UPLOAD_PARTIAL, ME_UPLOAD_FINAL } me_upload_kind_t;

/* What a client may learn of an upload. */
typedef struct {
    char id[ME_UPLOAD_ID_LEN + 1];
    char media_id[ME_UPLOAD_ID_LEN + 1]; /* empty for a partial upload */
    uint64_t offset;
    uint64_t length;                  /* ME_UPLOAD_LENGTH_DEFERRED until known */
    uint64_t max_size;                /* the cap recorded at creation */
    int64_t expires;                  /* seconds since the epoch */
    int completed;                    /* the original and its manifest are stored */
    char content_type[32];            /* once completed */
    char metadata[ME_UPLOAD_METADATA_MAX + 1];
    me_upload_kind_t kind;
    int npartials;                    /* a final's partial uploads, in their order */
    char partials[ME_UPLOAD_CONCAT_MAX][ME_UPLOAD_ID_LEN + 1];
} me_upload_t;

/* Makes the upload service over st and locks (neither owned; locks NULL: in-process locks of
 * its own, for one instance) with cfg's limits. NULL on allocation failure. */
me_uploads_t *me_uploads_new(me_storage_t *st, me_locks_t *locks, const me_config_t *cfg);
void me_uploads_free(me_uploads_t *u);

/* Calls cb(ctx, media_id) each time a completion has stored a media's processing job
 * (jobs/<media-id>.json), from the thread that completed it. Set before serving. */
void me_uploads_on_job(me_uploads_t *u, void (*cb)(void *ctx, const char *media_id), void *ctx);

/* 1 when id has the form of an upload id (so that anything else is a 404 unread). */
int me_upload_id_valid(const char *id, size_t len);

/* 1 when metadata is a valid tus Upload-Metadata value of at most ME_UPLOAD_METADATA_MAX bytes. */
int me_upload_metadata_valid(const char *metadata, size_t len);

/* Creates an upload for the token's user and album with length bytes (or
 * ME_UPLOAD_LENGTH_DEFERRED) and metadata (validated by the caller). The plan, client, ref
 * and the size cap (uploads.max_size lowered by the token's max_bytes) are recorded and rule
 * the upload from now on. Returns 0 with *out filled, ME_EUPLOAD_SIZE (length over the cap),
 * ME_EMEDIA (length 0), ME_ENOSPACE (storage full), ME_EIO. */
int me_upload_create(me_uploads_t *u, const me_token_claims_t *who, uint64_t length, const char *metadata,
                     int64_t now, me_upload_t *out) ME_MUST_CHECK;

/* Creates a partial upload, as me_upload_create() an upload (same arguments and returns).
 * It is appended to like any upload, but completing it only keeps its bytes for a final
 * upload (me_upload_concat()): no media check, no original, manifest or job. It expires
 * like an unfinished upload unless a final uses it. */
int me_upload_create_partial(me_uploads_t *u, const me_token_claims_t *who, uint64_t length, const char *metadata,
                             int64_t now, me_upload_t *out) ME_MUST_CHECK;

/* Parses a final upload's list of partial upload URLs (tus: Upload-Concat after "final;"):
 * URLs separated by spaces, each prefix + an upload id, or an absolute URL (any scheme and
 * authority) whose path is that, optionally with one trailing '/'. Fills ids[0..*n).
 * Returns 0, or ME_ECONCAT: no URL, one that is not an upload URL of ours, more than
 * ME_UPLOAD_CONCAT_MAX, or one id twice. */
int me_upload_concat_parse(const char *list, size_t len, const char *prefix, char (*ids)[ME_UPLOAD_ID_LEN + 1],
                           int *n) ME_MUST_CHECK;

/* Creates the final upload of who made of the partial uploads ids[0..n) in that order and
 * completes it like the last append of an upload: its original (the partials' bytes joined),
 * manifest and job are stored, and the partials' bytes removed (their state stays until they
 * expire, marked used). metadata as for me_upload_create(); the plan, client, ref and cap are
 * the token's. Returns 0 with *out filled (completed); ME_ECONCAT (n not 1..ME_UPLOAD_CONCAT_MAX,
 * an id twice, an upload that is not a partial one or of another album), ME_ENOTFOUND (a
 * partial that does not exist, is another user's or expired), ME_EPARTIAL_INCOMPLETE,
 * ME_EPARTIAL_USED (part of another final), ME_EUPLOAD_SIZE (their sum over the cap),
 * ME_ELOCKED (another request is writing one of them), ME_EMEDIA (the joined bytes are no
 * photo or video: the final and its partials are removed), ME_ENOMEM, ME_EIO.
 * Idempotent and crash-safe: the final is recorded first, then the partials are marked used
 * by it, then it is built; the same call again (a retry after a lost answer, an error or a
 * crash, on any instance) carries on with the same final and answers it. */
int me_upload_concat(me_uploads_t *u, const me_token_claims_t *who, const char (*ids)[ME_UPLOAD_ID_LEN + 1], int n,
                     const char *metadata, int64_t now, me_upload_t *out) ME_MUST_CHECK;

/* Reads the upload id for who. Returns 0, ME_ENOTFOUND (no such upload, another user's, or
 * expired), ME_EIO. An upload whose last bytes were acknowledged but whose completion was cut
 * short (a crash) is completed here first. A final upload whose building was cut short is
 * reported incomplete until me_upload_concat() is called again. */
int me_upload_head(me_uploads_t *u, const me_token_claims_t *who, const char *id, int64_t now,
                   me_upload_t *out) ME_MUST_CHECK;

/* Appends len bytes at offset (must equal the upload's offset). new_length sets a deferred
 * length (ME_UPLOAD_LENGTH_DEFERRED: none given). ck, when not NULL, is verified before
 * anything is stored. When the upload reaches its length it is completed: the original is
 * stored at originals/<album>/<media-id>, the manifest at media/<media-id>.json (status
 * "uploaded") and a processing job at jobs/<media-id>.json.
 * Returns 0 with *out filled; ME_ENOTFOUND, ME_EOFFSET, ME_ECONFLICT (a length that
 * contradicts the recorded one, or set twice), ME_EUPLOAD_SIZE (past the length or the cap),
 * ME_ECHECKSUM, ME_ELOCKED (another append on this upload is running, or, with Redis locks,
 * this one stalled past its lock's TTL and must not write: lock.h), ME_EMEDIA (completed
 * but not a photo or video: the upload is removed), ME_EFINAL (a final upload), ME_ENOSPACE (storage full), ME_EIO. On
 * any error nothing the client can see has changed (the offset is as before). */
int me_upload_append(me_uploads_t *u, const me_token_claims_t *who, const char *id, uint64_t offset,
                     uint64_t new_length, const void *data, size_t len, const me_checksum_t *ck, int64_t now,
                     me_upload_t *out) ME_MUST_CHECK;

/* Terminates an unfinished upload, or a complete partial upload no final uses, and removes
 * what it stored. Returns 0, ME_ENOTFOUND, ME_ELOCKED, ME_ECONFLICT (already completed: the
 * media is deleted through its own API; a final, or a partial a final uses), ME_EIO. */
int me_upload_delete(me_uploads_t *u, const me_token_claims_t *who, const char *id) ME_MUST_CHECK;

/* Removes every upload past its expiry (unfinished ones and partial ones with their data;
 * finished ones only their state), then aborts the multipart uploads the store holds that no
 * live upload can own (upload_internal.h). *removed counts both. Returns 0 or ME_EIO (the
 * sweep stops; run it again). */
int me_upload_sweep(me_uploads_t *u, int64_t now, int *removed) ME_MUST_CHECK;

#endif
