/* delivery.h: how media reach viewers. Its settings (a plain struct until the configuration
 * gives each module its section), the CloudFront signer made from them (or, in development,
 * from a key made at first start), signed URLs of a media's files and an album's signed
 * cookies with expiries rounded to a step and capped, and the origin's checks of a request:
 * standalone, the signed URL or cookies exactly as CloudFront checks them, the resource
 * rebuilt from the CDN's base URL and the request's path and query, the client's address
 * taken from X-Forwarded-For only through trusted proxies; behind CloudFront, the secret
 * origin header (two values during a rotation), compared in constant time. */
#ifndef ME_DELIVERY_H
#define ME_DELIVERY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "server/core/error.h"
#include "server/delivery/cf.h"

#define ME_DELIVERY_PREFIX "/m/"        /* the origin's paths: /m/<album>/<media-id>/<file> */
#define ME_DELIVERY_ORIGINAL "original" /* the file name of a media's original */
#define ME_DELIVERY_FILE_MAX 32         /* "<name>.<ext>": a variant's file name */
#define ME_DELIVERY_PROXIES_MAX 32
#define ME_DELIVERY_SECRET_MIN 16

/* The settings; strings are not owned and need only live during me_delivery_new(). Times in
 * seconds, sizes in bytes. */
typedef struct {
    /* cdn */
    const char *base_url;            /* scheme://host[:port] of every signed URL (CloudFront's
                                      * domain); "" = this server's own URL (standalone) */
    const char *keys;                /* the CloudFront key pairs, "<id>=<PEM file>,...": up to
                                      * ME_CF_KEYS_MAX; "" = development, a key made under
                                      * data_dir (standalone) */
    const char *active_key;          /* the id that signs; "" = the first */
    me_cf_hash_t hash;               /* the active key's: default SHA-1 for RSA, SHA-256 for ECDSA */
    uint64_t url_ttl;                /* a signed URL's life (before rounding) */
    uint64_t cookie_ttl;             /* an album cookie's life (before rounding) */
    uint64_t max_ttl;                /* no URL or cookie lives longer than this from now */
    uint64_t expiry_step;            /* expiries are rounded up to a multiple of this */
    int cache_entries;               /* signatures remembered */
    const char *origin_secret;       /* behind CloudFront: the custom origin header's value;
                                      * "" = standalone (mediaedge checks signatures itself) */
    const char *origin_secret_previous; /* accepted too while CloudFront changes to the new one */
    const char *origin_secret_header;   /* its name, lower case */
    const char *trusted_proxies;     /* "cidr,cidr": peers whose X-Forwarded-For is believed */
    const char *cookie_domain;       /* Domain of the album cookies; "" = none (host-only) */
    int cookie_secure;               /* Secure on the album cookies */
    const char *cookie_samesite;     /* "Strict", "Lax" or "None" */
    /* delivery */
    int serve_original;              /* GET /v1/media/<id> also signs the original's URL */
    uint64_t chunk_size;             /* the origin reads and sends objects in pieces this big */
} me_delivery_config_t;

/* The defaults: standalone, a development key, URLs for 1 hour and cookies for 12 hours
 * rounded up to 5 minutes, at most 24 hours, 4096 signatures remembered, 256 KiB chunks,
 * cookies Secure, SameSite=Lax, no original. Cannot fail. */
void me_delivery_config_defaults(me_delivery_config_t *dc);

typedef struct me_delivery me_delivery_t;

/* Makes the signer and the checks from dc. own_url is this server's public base URL
 * (scheme://host[:port]), used when dc->base_url is "". With no key configured a development
 * RSA-2048 key is made at first start as data_dir/cdn/dev-cloudfront-key.pem (0600, reused
 * afterwards) under the id "DEV". NULL with err set (naming the setting, never a secret or
 * key material) when a setting is wrong: a base URL that is not scheme://host[:port], a key
 * that is not <id>=<file>, a ttl
 * over max_ttl, a step over max_ttl, a secret shorter than ME_DELIVERY_SECRET_MIN, a trusted
 * proxy that is not an address or range, a key that me_cf_new() refuses. */
me_delivery_t *me_delivery_new(const me_delivery_config_t *dc, const char *data_dir, const char *own_url, char *err,
                               size_t errlen);
void me_delivery_free(me_delivery_t *d);

/* The settings me_delivery_new() kept: the base URL in use, whether CloudFront is in front
 * (an origin secret is set), the origin's chunk size, whether originals are served, the
 * signer. */
const char *me_delivery_base_url(const me_delivery_t *d);
int me_delivery_behind_cdn(const me_delivery_t *d);
size_t me_delivery_chunk_size(const me_delivery_t *d);
int me_delivery_serve_original(const me_delivery_t *d);
me_cf_t *me_delivery_signer(me_delivery_t *d);

/* now + ttl (ttl capped at max_ttl), rounded up to a multiple of step, or down when up would
 * pass now + max_ttl; unrounded when rounding down would reach now. Every process computes
 * the same value in the same step, so they sign the same policy and (RSA) make the same URL. */
int64_t me_delivery_expiry(int64_t now, uint64_t ttl, uint64_t step, uint64_t max_ttl);

/* The expiry me_delivery_sign_file() gives URLs signed at now. */
int64_t me_delivery_url_expiry(const me_delivery_t *d, int64_t now);

/* The signed (canned) URL of file ("thumb.jpg", ME_DELIVERY_ORIGINAL) of media_id in album,
 * <base>/m/<album>/<media-id>/<file>?Expires=..., valid for url_ttl from now (rounded).
 * album, media_id and file must have been checked (me_delivery_parse_path's rules). 0 with
 * out (ME_CF_URL_MAX bytes) filled and *expires set, ME_EINVAL, ME_EINTERNAL. */
int me_delivery_sign_file(me_delivery_t *d, const char *album, const char *media_id, const char *file, int64_t now,
                          char *out, size_t outlen, int64_t *expires) ME_MUST_CHECK;

/* The album's signed cookies: a custom policy over <base>/m/<album>/ and a '*', for cookie_ttl from now
 * (rounded). 0 with *out and *expires set, ME_EINVAL, ME_EINTERNAL. */
int me_delivery_sign_album(me_delivery_t *d, const char *album, int64_t now, me_cf_cookies_t *out,
                           int64_t *expires) ME_MUST_CHECK;

/* Writes the Set-Cookie values for the album's cookies into out[] (up to 4, each at most
 * ME_DELIVERY_COOKIE_MAX bytes): "CloudFront-Policy=...; Domain=...; Path=/m/<album>/;
 * Secure; HttpOnly; SameSite=Lax", then Signature, Key-Pair-Id, and Hash-Algorithm for a
 * SHA-256 key. No Expires or Max-Age: the cookies end with the browser session or the policy,
 * whichever comes first. Returns how many. */
#define ME_DELIVERY_COOKIE_MAX (ME_CF_POLICY_B64_MAX + 256)
int me_delivery_set_cookies(const me_delivery_t *d, const char *album, const me_cf_cookies_t *c,
                            char out[][ME_DELIVERY_COOKIE_MAX]);

/* How many of the first max bytes of s are id characters [A-Za-z0-9_-]: the alphabet of
 * album and media ids in paths (ids are 1 to 64 of them). */
size_t me_delivery_id_span(const char *s, size_t max);

/* Splits an origin path "/m/<album>/<media-id>/<file>" (len bytes, no query): album and
 * media id [A-Za-z0-9_-]{1,64}, file "<name>.<ext>" of [a-z0-9_-] and one '.', or
 * ME_DELIVERY_ORIGINAL. 0 with the parts copied (album and media_id of 65 bytes, file of
 * ME_DELIVERY_FILE_MAX + 1), or ME_ENOTFOUND for any other path. */
int me_delivery_parse_path(const char *path, size_t len, char *album, char *media_id, char *file) ME_MUST_CHECK;

/* The client's address: the peer's, unless the peer is a trusted proxy; then the right-most
 * address of X-Forwarded-For (xff: every such header's value joined by ',', or NULL) that is
 * not a trusted proxy, so that what a client writes in the header itself is never believed.
 * Sets *family (0 when unknown: an entry that is not an address) and addr (16 bytes). */
void me_delivery_client_ip(const me_delivery_t *d, const struct sockaddr *peer, const char *xff, size_t xfflen,
                           int *family, unsigned char *addr);

/* Checks a standalone request as CloudFront would: path is the raw request target (path and
 * query, len bytes); the proof comes from the query's signing parameters (Expires, Policy,
 * Signature, Key-Pair-Id, Hash-Algorithm), else from the CloudFront-* cookies (cookie: every
 * Cookie header joined by "; ", or NULL); the resource is base_url + path without those
 * parameters. */
me_cf_verdict_t me_delivery_check_signed(me_delivery_t *d, const char *path, size_t len, const char *cookie,
                                         size_t cookielen, int family, const unsigned char *addr, int64_t now);

/* 1 when value (len bytes) equals the origin secret or the previous one (constant time in
 * the secrets' bytes); 0 when not, or when no secret is set. */
int me_delivery_origin_secret_ok(const me_delivery_t *d, const char *value, size_t len);

/* The origin secret header's name (lower case). */
const char *me_delivery_origin_secret_header(const me_delivery_t *d);

#endif
