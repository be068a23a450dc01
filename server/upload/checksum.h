/* checksum.h: tus checksums ("Upload-Checksum: <algorithm> <base64 digest>"): sha1, sha256,
 * md5 and crc32, parsed from a header and verified over a body before a byte is stored. */
#ifndef ME_CHECKSUM_H
#define ME_CHECKSUM_H

#include <stddef.h>
#include "server/core/error.h"

/* What Tus-Checksum-Algorithm advertises. */
#define ME_CHECKSUM_ALGORITHMS "sha1,sha256,md5,crc32"

typedef enum { ME_CHECKSUM_SHA1, ME_CHECKSUM_SHA256, ME_CHECKSUM_MD5, ME_CHECKSUM_CRC32 } me_checksum_alg_t;

typedef struct {
    me_checksum_alg_t alg;
    unsigned char digest[32];
    size_t len;
} me_checksum_t;

/* Parses "sha256 <base64>" (standard base64 with padding, as tus sends it). Returns 0,
 * ME_EINVAL for a malformed value or a digest of the wrong length, or ME_EUNSUPPORTED for an
 * algorithm not in ME_CHECKSUM_ALGORITHMS. */
int me_checksum_parse(const char *value, size_t len, me_checksum_t *out) ME_MUST_CHECK;

/* Returns 0 when data (len bytes) has the digest ck names, ME_ECHECKSUM otherwise. */
int me_checksum_verify(const me_checksum_t *ck, const void *data, size_t len) ME_MUST_CHECK;

#endif
