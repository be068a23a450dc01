/* checksum.c: parsing and verifying tus Upload-Checksum values. */
#include <stdint.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include "server/upload/checksum.h"

static const struct {
    const char *name;
    size_t digest_len;
} algs[] = {
    [ME_CHECKSUM_SHA1] = {"sha1", 20},
    [ME_CHECKSUM_SHA256] = {"sha256", 32},
    [ME_CHECKSUM_MD5] = {"md5", 16},
    [ME_CHECKSUM_CRC32] = {"crc32", 4},
};

int me_checksum_parse(const char *value, size_t len, me_checksum_t *out)
{
    const char *space = memchr(value, ' ', len);
    if (space == NULL)
        return ME_EINVAL;
    size_t name_len = (size_t)(space - value);
    const char *b64 = space + 1;
    size_t b64_len = len - name_len - 1;
    int alg = -1;
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (strlen(algs[i].name) == name_len && memcmp(algs[i].name, value, name_len) == 0)
            alg = (int)i;
    if (alg < 0)
        return ME_EUNSUPPORTED;
    /* EVP_DecodeBlock wants whole 4-character groups and reports padding as zero bytes */
    unsigned char buf[48];
    if (b64_len == 0 || b64_len % 4 != 0 || b64_len > 44)
        return ME_EINVAL;
    int n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)b64_len);
    if (n < 0)
        return ME_EINVAL;
    size_t pad = (b64[b64_len - 1] == '=') + (b64[b64_len - 2] == '=');
    if ((size_t)n - pad != algs[alg].digest_len)
        return ME_EINVAL;
    out->alg = (me_checksum_alg_t)alg;
    out->len = algs[alg].digest_len;
    memcpy(out->digest, buf, out->len);
    return 0;
}

/* CRC-32 (IEEE 802.3, as zlib computes it), big-endian digest as tus clients send it. */
static void crc32_digest(const unsigned char *p, size_t len, unsigned char out[4])
{
    static uint32_t table[256];
    static int ready; /* benign race: every thread computes the same table */
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    crc ^= 0xFFFFFFFFu;
    out[0] = (unsigned char)(crc >> 24);
    out[1] = (unsigned char)(crc >> 16);
    out[2] = (unsigned char)(crc >> 8);
    out[3] = (unsigned char)crc;
}

int me_checksum_verify(const me_checksum_t *ck, const void *data, size_t len)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (ck->alg == ME_CHECKSUM_CRC32) {
        crc32_digest(data, len, digest);
        n = 4;
    } else {
        const EVP_MD *md = ck->alg == ME_CHECKSUM_SHA1 ? EVP_sha1() : ck->alg == ME_CHECKSUM_SHA256 ? EVP_sha256() : EVP_md5();
        if (EVP_Digest(data, len, digest, &n, md, NULL) != 1)
            return ME_ECHECKSUM;
    }
    return n == ck->len && CRYPTO_memcmp(digest, ck->digest, n) == 0 ? 0 : ME_ECHECKSUM;
}
