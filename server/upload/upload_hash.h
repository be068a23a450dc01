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

/* The lower-case hex SHA-256 of id's first length bytes into out, when that is exactly what
 * its hash holds: 0, else -1. The hash is forgotten either way. */
int me_upload_hashes_take(me_upload_hashes_t *h, const char *id, uint64_t length, char out[65]);

#endif
