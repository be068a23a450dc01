/* b64.h: base64url without padding (RFC 4648 section 5), as JWS and URLs use it. */
#ifndef ME_B64_H
#define ME_B64_H

#include <stddef.h>
#include "server/core/error.h"

/* Bytes needed to encode len bytes, without the terminating NUL. */
size_t me_b64url_encoded_len(size_t len);

/* Encodes src into dst, which must hold me_b64url_encoded_len(len) + 1 bytes; NUL-terminates.
 * Returns the encoded length. */
size_t me_b64url_encode(const unsigned char *src, size_t len, char *dst);

/* Decodes len chars of src into dst, which must hold len * 3 / 4 + 1 bytes. Padding '=' and
 * characters outside the url alphabet are refused (ME_EINVAL); on success 0 and *outlen set. */
int me_b64url_decode(const char *src, size_t len, unsigned char *dst, size_t *outlen) ME_MUST_CHECK;

#endif
