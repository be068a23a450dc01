/* b64.c: base64url without padding (RFC 4648 section 5), strict on decode. */
#include <stdint.h>
#include "server/core/b64.h"

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#define B64_INVALID 64

/* The 6-bit value of c, or B64_INVALID for a character outside the url alphabet. */
static unsigned b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26u;
    if (c >= '0' && c <= '9')
        return c - '0' + 52u;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return B64_INVALID;
}

size_t me_b64url_encoded_len(size_t len)
{
    static const size_t tail[3] = {0, 2, 3};
    return len / 3 * 4 + tail[len % 3];
}

size_t me_b64url_encode(const unsigned char *src, size_t len, char *dst)
{
    char *p = dst;
    size_t i = 0;

    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
        *p++ = b64url_alphabet[v >> 18];
        *p++ = b64url_alphabet[(v >> 12) & 63];
        *p++ = b64url_alphabet[(v >> 6) & 63];
        *p++ = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        *p++ = b64url_alphabet[src[i] >> 2];
        *p++ = b64url_alphabet[(src[i] & 3) << 4];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)src[i] << 8 | src[i + 1];
        *p++ = b64url_alphabet[v >> 10];
        *p++ = b64url_alphabet[(v >> 4) & 63];
        *p++ = b64url_alphabet[(v & 15) << 2];
    }
    *p = '\0';
    return (size_t)(p - dst);
}

/* Non-zero bits left over in the last character are refused too, so that every byte string
 * has exactly one encoding (a JWS signature cannot be re-spelled). */
int me_b64url_decode(const char *src, size_t len, unsigned char *dst, size_t *outlen)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;

    if (len % 4 == 1)
        return ME_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned v = b64url_value((unsigned char)src[i]);
        if (v == B64_INVALID)
            return ME_EINVAL;
        acc = (acc << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0)
        return ME_EINVAL;
    *outlen = n;
    return ME_OK;
}
