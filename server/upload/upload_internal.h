/* upload_internal.h: what the files of the upload module (upload.c, and the concatenation in
 * upload_concat.c) share: the service, an upload's whole state document, the in-process lock
 * table and completion. Not for other modules: they use upload.h. */
#ifndef ME_UPLOAD_INTERNAL_H
#define ME_UPLOAD_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include "server/upload/upload.h"
#include "server/upload/upload_hash.h"

#define ME_UPLOAD_MAX_PARTS 10000

/* open: taking appends; completing: every byte acknowledged, the original (or a partial's
 * data object) being made; joining: a final being built from its partials; completed. */
typedef enum { ME_UPLOAD_OPEN, ME_UPLOAD_COMPLETING, ME_UPLOAD_JOINING, ME_UPLOAD_COMPLETED } me_upload_state_t;

/* A piece: bytes acknowledged but too few for a part yet (S3 wants 5 MiB per part). */
typedef struct {
    uint64_t offset, size;
} me_upload_piece_t;

/* The whole state document of one upload (uploads/<id>.info). */
typedef struct {
    me_upload_t pub;
    char owner[ME_TOKEN_ID_MAX + 1];
    char album[ME_TOKEN_ID_MAX + 1];
    char ref[ME_TOKEN_REF_MAX + 1];
    char plan[16], client[16];
    char multipart[ME_STORAGE_UPLOAD_ID_MAX + 1];
    int64_t created;
    me_upload_state_t state;
    me_storage_part_t *parts;   /* malloc'd, freed by me_upload_info_free() */
    int nparts;
    int next_part;              /* the number the next part put gets; 0: not known (a document older than it) */
    me_upload_piece_t *pieces;  /* malloc'd, freed by me_upload_info_free() */
    int npieces;
    char used_by[ME_UPLOAD_ID_LEN + 1]; /* a partial's final, once one claimed it */
} me_upload_info_t;

struct me_uploads {
    me_storage_t *st;
    uint64_t max_size;
    int64_t expire_after; /* seconds */
    uint64_t join_part;   /* bytes a final is built with at a time: a PATCH's at most */
    void (*on_job)(void *ctx, const char *media_id);
    void *on_job_ctx;
    me_locks_t *locks;     /* an upload's lock is named by its id */
    me_locks_t *own_locks; /* locks when made here (none given), freed with u */
    me_upload_hashes_t *hashes; /* running SHA-256 of uploads arriving here in order */
};

/* Takes the lock of upload id without waiting (lock.h): 0, ME_ELOCKED when another request
 * holds it (or no room is left), ME_ELOCK_UNAVAILABLE when the lock backend does not answer,
 * ME_EIO. */
int me_upload_lock(me_uploads_t *u, const char *id) ME_MUST_CHECK;
void me_upload_unlock(me_uploads_t *u, const char *id);

/* The key of the object an upload's parts complete into: originals/<album>/<media-id>, or
 * for a partial upload its data object, uploads/<id>/data (me_upload_data_key()). */
void me_upload_target_key(char *key, size_t len, const me_upload_info_t *in);
void me_upload_data_key(char *key, size_t len, const char *id);

/* Fills *in for a new upload of kind by who of length bytes (ids, owner claims, size cap,
 * expiry) and begins its multipart upload; saves nothing. 0, ME_EUPLOAD_SIZE (over the cap),
 * ME_EMEDIA (length 0), ME_EIO; on error nothing is left in storage. */
int me_upload_info_init(me_uploads_t *u, const me_token_claims_t *who, me_upload_kind_t kind, uint64_t length,
                        const char *metadata, int64_t now, me_upload_info_t *in) ME_MUST_CHECK;

/* Loads the upload id for who into *in (free with me_upload_info_free()): 0, ME_ENOTFOUND
 * unless it exists, is theirs and is not expired (finished uploads do not expire), ME_EIO. */
int me_upload_info_load(me_uploads_t *u, const me_token_claims_t *who, const char *id, int64_t now,
                        me_upload_info_t *in) ME_MUST_CHECK;

/* Stores the state document durably (the moment a change counts). 0, ME_ENOMEM, ME_EIO. */
int me_upload_info_save(me_uploads_t *u, const me_upload_info_t *in) ME_MUST_CHECK;

/* Brings *in, an open upload's state as loaded, up to what storage holds, which is what its
 * offset is: the parts a PATCH put after the document was last saved (numbers from its
 * next_part on, without a gap) join in->parts; in->pieces become the pieces stored one after
 * the other from the parts' end (a piece's key says its offset), and in->pub.offset their end;
 * in->next_part goes past every part listed. *stale gets the count of pieces left behind
 * (merged into a part, their deletion cut short). Costs one listing of the upload's parts
 * past its document's and one of its objects, at once when locked (the caller holds the
 * upload's lock: nothing changes meanwhile), else one after the other. 0, ME_ENOMEM, ME_EIO
 * (storage fails, does not hold a part the document names, or holds more than the upload may
 * have). */
int me_upload_derive(me_uploads_t *u, me_upload_info_t *in, int locked, int *stale) ME_MUST_CHECK;

/* Frees what *in holds (not in itself); safe twice. */
void me_upload_info_free(me_upload_info_t *in);

/* Turns an upload whose bytes are all acknowledged (state completing) into its original,
 * manifest and job (a partial upload: into its data object only), and saves it completed;
 * idempotent, so that a crash anywhere inside is finished by a later call. 0, ME_EMEDIA (not
 * a photo or video: everything of the upload is removed), ME_ELOCKED (the lock was lost
 * meanwhile: lock.h), ME_EIO. Call it holding the
 * upload's lock. */
int me_upload_finish(me_uploads_t *u, me_upload_info_t *in) ME_MUST_CHECK;

/* Removes everything an unfinished upload, or a partial one, stored (parts, pieces, data
 * object, state). Best effort. */
void me_upload_discard(me_uploads_t *u, me_upload_info_t *in);

/* Aborts the multipart uploads under originals/ and uploads/ that began before every live
 * upload could have (now - expire_after, less a grace for a completion in flight): begun by S3
 * for a request whose answer was lost, or left by a state removed without its abort. *aborted
 * counts them. 0 or what me_storage_multipart_list() returns (upload_orphans.c). */
int me_upload_sweep_orphans(me_uploads_t *u, int64_t now, int *aborted) ME_MUST_CHECK;

#endif
