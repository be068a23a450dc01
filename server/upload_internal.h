/* upload_internal.h: what the files of the upload module (upload.c, and the concatenation in
 * upload_concat.c) share: the service, an upload's whole state document, the in-process lock
 * table and completion. Not for other modules: they use upload.h. */
#ifndef ME_UPLOAD_INTERNAL_H
#define ME_UPLOAD_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include "server/upload.h"

#define ME_UPLOAD_LOCKS 300 /* uploads being written at once: at most the pool threads (<= 256) and the janitor */
#define ME_UPLOAD_MAX_PARTS 10000

typedef enum { ME_UPLOAD_OPEN, ME_UPLOAD_COMPLETING, ME_UPLOAD_COMPLETED } me_upload_state_t;

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
    me_upload_piece_t *pieces;  /* malloc'd, freed by me_upload_info_free() */
    int npieces;
} me_upload_info_t;

struct me_uploads {
    me_storage_t *st;
    uint64_t max_size;
    int64_t expire_after; /* seconds */
    pthread_mutex_t lock;
    char locked[ME_UPLOAD_LOCKS][ME_UPLOAD_ID_LEN + 1];
};

/* Takes the in-process lock of upload id without waiting: 0, or ME_ELOCKED when another
 * request holds it (or the table is full). Several instances: Redis later. */
int me_upload_lock(me_uploads_t *u, const char *id) ME_MUST_CHECK;
void me_upload_unlock(me_uploads_t *u, const char *id);

/* The key of the object an upload's parts complete into: originals/<album>/<media-id>. */
void me_upload_original_key(char *key, size_t len, const me_upload_info_t *in);

/* Loads the upload id for who into *in (free with me_upload_info_free()): 0, ME_ENOTFOUND
 * unless it exists, is theirs and is not expired (finished uploads do not expire), ME_EIO. */
int me_upload_info_load(me_uploads_t *u, const me_token_claims_t *who, const char *id, int64_t now,
                        me_upload_info_t *in) ME_MUST_CHECK;

/* Stores the state document durably (the moment a change counts). 0, ME_ENOMEM, ME_EIO. */
int me_upload_info_save(me_uploads_t *u, const me_upload_info_t *in) ME_MUST_CHECK;

/* Frees what *in holds (not in itself); safe twice. */
void me_upload_info_free(me_upload_info_t *in);

/* Turns an upload whose bytes are all acknowledged (state completing) into its original,
 * manifest and job, and saves it completed; idempotent, so that a crash anywhere inside is
 * finished by a later call. 0, ME_EMEDIA (not a photo or video: everything of the upload is
 * removed), ME_EIO. Call it holding the upload's lock. */
int me_upload_finish(me_uploads_t *u, me_upload_info_t *in) ME_MUST_CHECK;

/* Removes everything an unfinished upload stored (parts, pieces, state). Best effort. */
void me_upload_discard(me_uploads_t *u, me_upload_info_t *in);

#endif
