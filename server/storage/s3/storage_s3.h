/* storage_s3.h: the S3 backend (storage.backend: s3): every key an object of s3.bucket, under
 * the same name. Any S3 API: AWS S3, or OpenStack Swift's s3api in the tests.
 *
 * What S3 adds to storage.h's contract:
 * - Parts are at least 5 MiB but the last (min_part_size); a completion with a smaller one is
 *   ME_ECONFLICT (S3's EntityTooSmall). Part numbers need not be put in order.
 * - Completing checks every part's size and etag against ListParts first (S3 itself checks
 *   only etags): any difference is ME_ECONFLICT, as storage.h wants.
 * - Writes ask for the configured server-side encryption (s3.sse).
 * - An upload id is S3's, opaque; an id S3 does not know is ME_ENOTFOUND (abort: 0).
 * - mtime comes from Last-Modified (whole seconds); the etag is S3's (an MD5 for whole PUTs).
 * Open checks that the bucket answers (HEAD bucket) with the credentials found. */
#ifndef ME_STORAGE_S3_H
#define ME_STORAGE_S3_H

#include "server/storage/storage_backend.h"

#define ME_S3_MIN_PART_SIZE (5 * 1024 * 1024)

extern const me_storage_ops_t me_storage_s3_ops;

#endif
