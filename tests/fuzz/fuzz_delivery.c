/* fuzz_delivery.c: what a viewer sends the standalone origin (server/delivery/delivery.c,
 * cf.c): the path, the signed URL's query, the CloudFront-* cookies and X-Forwarded-For.
 * Input: a mode byte, then fields split by NUL bytes.
 *   mode 0: path, cookie, xff: checked as they come (me_delivery_parse_path, client_ip,
 *           check_signed): nothing presented unsigned may pass.
 *   mode 1: path, tail: a path that parses is signed (me_delivery_sign_file), the signed URL
 *           must pass, and the signed URL with the fuzzer's tail appended is checked.
 *   mode 2: path, tail: the path's album gets its signed cookies (me_delivery_sign_album),
 *           the path must pass with them, and the cookie header with the tail is checked.
 * Keys: tests/unit/keys/rsa.pem (run from the source tree, or ME_SRCDIR). */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/delivery/delivery.h"

#define BASE "https://cdn.example.com"
#define NOW 1800000000

static me_delivery_t *d;

static void setup(void)
{
    static char keys[PATH_MAX + 8], dir[] = "/tmp/me-fuzz-delivery-XXXXXX";
    const char *src = getenv("ME_SRCDIR");
    char err[256];
    me_delivery_config_t dc;
    snprintf(keys, sizeof(keys), "K1=%s/tests/unit/keys/rsa.pem", src != NULL && *src ? src : ".");
    if (mkdtemp(dir) == NULL)
        abort();
    me_delivery_config_defaults(&dc);
    dc.base_url = BASE;
    dc.keys = keys;
    dc.trusted_proxies = "127.0.0.0/8,::1";
    if ((d = me_delivery_new(&dc, dir, "https://127.0.0.1:8443", err, sizeof(err))) == NULL) {
        fprintf(stderr, "fuzz_delivery: %s\n", err);
        abort();
    }
}

/* the i-th NUL-separated field of s (len bytes), as a malloc'd copy of exactly its bytes */
static char *field(const char *s, size_t len, int i, size_t *flen)
{
    const char *end = s + len;
    for (; i > 0 && s < end; i--) {
        const char *nul = memchr(s, '\0', (size_t)(end - s));
        s = nul != NULL ? nul + 1 : end;
    }
    const char *nul = memchr(s, '\0', (size_t)(end - s));
    *flen = (size_t)((nul != NULL ? nul : end) - s);
    char *out = malloc(*flen + 1);
    if (out == NULL)
        abort();
    memcpy(out, s, *flen);
    out[*flen] = '\0';
    return out;
}

static void as_they_come(const char *s, size_t len)
{
    size_t plen, clen, xlen;
    char *path = field(s, len, 0, &plen), *cookie = field(s, len, 1, &clen), *xff = field(s, len, 2, &xlen);
    char album[65], media[65], file[ME_DELIVERY_FILE_MAX + 1];
    const char *q = memchr(path, '?', plen);
    (void)me_delivery_parse_path(path, q != NULL ? (size_t)(q - path) : plen, album, media, file);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int family = 0;
    unsigned char addr[16];
    me_delivery_client_ip(d, (struct sockaddr *)&peer, xlen > 0 ? xff : NULL, xlen, &family, addr);
    if (me_delivery_check_signed(d, path, plen, clen > 0 ? cookie : NULL, clen, family, addr, NOW) == ME_CF_VALID)
        abort(); /* a request the fuzzer made up passed without our signature */
    free(path), free(cookie), free(xff);
}

static void signed_then_changed(const char *s, size_t len, int cookies)
{
    size_t plen, tlen;
    char *path = field(s, len, 0, &plen), *tail = field(s, len, 1, &tlen);
    char album[65], media[65], file[ME_DELIVERY_FILE_MAX + 1];
    char *url = malloc(ME_CF_URL_MAX), *changed = malloc(ME_CF_URL_MAX + 8192), *cookie = malloc(2 * ME_CF_URL_MAX + 8192);
    int64_t exp;
    if (url == NULL || changed == NULL || cookie == NULL)
        abort();
    if (strlen(path) != plen || me_delivery_parse_path(path, plen, album, media, file) != 0)
        goto out;
    if (!cookies) {
        if (me_delivery_sign_file(d, album, media, file, NOW, url, ME_CF_URL_MAX, &exp) != 0)
            abort(); /* a path that parses is one we can sign */
        const char *target = url + strlen(BASE);
        if (me_delivery_check_signed(d, target, strlen(target), NULL, 0, 0, NULL, NOW + 1) != ME_CF_VALID)
            abort(); /* our own signed URL refused */
        int n = snprintf(changed, ME_CF_URL_MAX + 8192, "%s%s", target, tail);
        (void)me_delivery_check_signed(d, changed, (size_t)n, NULL, 0, 0, NULL, NOW + 1);
    } else {
        me_cf_cookies_t c;
        if (me_delivery_sign_album(d, album, NOW, &c, &exp) != 0)
            abort();
        int n = snprintf(cookie, 2 * ME_CF_URL_MAX + 8192, "CloudFront-Policy=%s; CloudFront-Signature=%s; CloudFront-Key-Pair-Id=%s",
                         c.policy, c.signature, c.key_pair_id);
        if (me_delivery_check_signed(d, path, plen, cookie, (size_t)n, 0, NULL, NOW + 1) != ME_CF_VALID)
            abort(); /* the album's own cookies refused for one of its files */
        n = snprintf(cookie, 2 * ME_CF_URL_MAX + 8192, "%s; CloudFront-Policy=%s; CloudFront-Signature=%s; CloudFront-Key-Pair-Id=%s",
                     tail, c.policy, c.signature, c.key_pair_id);
        (void)me_delivery_check_signed(d, path, plen, cookie, (size_t)n, 0, NULL, NOW + 1);
    }
out:
    free(path), free(tail), free(url), free(changed), free(cookie);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (d == NULL)
        setup();
    if (size < 1 || size > 8192)
        return 0;
    const char *s = (const char *)data + 1;
    switch (data[0] % 3) {
    case 0:
        as_they_come(s, size - 1);
        break;
    case 1:
        signed_then_changed(s, size - 1, 0);
        break;
    default:
        signed_then_changed(s, size - 1, 1);
        break;
    }
    return 0;
}
