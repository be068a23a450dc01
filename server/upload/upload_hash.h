/* upload_hash.h: the running SHA-256 of the uploads this process receives in order, so that
 * completing one need not read its original back from storage to hash it (on S3 that is the
 * whole file downloaded again). Only a cache: a miss (another instance took a PATCH, a
 * restart, an eviction, a final made of partials) makes completion read the object instead. */
#ifndef ME_UPLOAD_HASH_H
#define ME_UPLOAD_HASH_H

#include <stddef.h>
#include <stdint.h>

#define ME_UPLOAD_HASHES_MAX 1024 /* uploads hashed at once; the least recently used goes */

typedef struct me_upload_hashes me_upload_hashes_t;

/* NULL when out of memory. */
me_upload_hashes_t *me_upload_hashes_new(void);
void me_upload_hashes_free(me_upload_hashes_t *h);

/* Bytes [offset, offset + len) of upload id were acknowledged: its hash takes them when it
 * holds [0, offset) (a new one starts at offset 0); otherwise it is forgotten. The caller
 * holds the upload's lock, so calls for one id never overlap. */
void me_upload_hashes_add(me_upload_hashes_t *h, const char *id, uint64_t offset, const void *data, size_t len);

/* The same in steps, so that hashing an append's bytes runs beside their storage: begin while
 * holding the upload's lock, before the bytes count (step->ctx: a copy of id's hash when it
 * holds exactly [0, offset), a new one at offset 0, else NULL and the steps do nothing);
 * update in any one thread; keep once the bytes count (the hash then holds [0, offset + the
 * bytes taken), when it still held [0, offset); else it is forgotten), or drop. Keep and drop
 * free the step. */
typedef struct {
    struct evp_md_ctx_st *ctx;
    uint64_t offset, taken;
} me_upload_hash_step_t;
void me_upload_hashes_begin(me_upload_hashes_t *h, const char *id, uint64_t offset, me_upload_hash_step_t *step);
void me_upload_hash_step_update(me_upload_hash_step_t *step, const void *data, size_t len);
void me_upload_hashes_keep(me_upload_hashes_t *h, const char *id, me_upload_hash_step_t *step);
void me_upload_hash_step_drop(me_upload_hash_step_t *step);

/* The lower-case hex SHA-256 of id's first length bytes into out, when that is exactly what
 * its hash holds: 0, else -1. The hash is forgotten either way. */
int me_upload_hashes_take(me_upload_hashes_t *h, const char *id, uint64_t length, char out[65]);

#endif
