/* delivery.c: the delivery settings made into a signer and checks; signed URLs and cookies of
 * media and albums; the origin's parsing of paths, signatures, client addresses and secrets. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "server/core/config.h"
#include "server/core/log.h"
#include "server/delivery/delivery.h"

#define DEV_KEY_ID "DEV"
#define DEV_KEY_FILE "dev-cloudfront-key.pem"
#define BASE_MAX 256
#define SECRET_MAX 256
#define HEADER_MAX 64

struct me_delivery {
    me_cf_t *cf;
    char base[BASE_MAX + 1];
    size_t base_len;
    uint64_t url_ttl, cookie_ttl, max_ttl, step;
    unsigned char secret[32], previous[32]; /* SHA-256 of the origin secrets */
    int has_secret, has_previous;
    char secret_header[HEADER_MAX + 1];
    me_cf_cidr_t proxies[ME_DELIVERY_PROXIES_MAX];
    int nproxies;
    char cookie_attrs[BASE_MAX + 64]; /* "; Domain=...; Secure; HttpOnly; SameSite=..." */
    int serve_original;
    size_t chunk_size;
};

void me_delivery_config_defaults(me_delivery_config_t *dc)
{
    memset(dc, 0, sizeof(*dc));
    dc->base_url = "";
    dc->keys = "";
    dc->active_key = "";
    dc->url_ttl = 3600;
    dc->cookie_ttl = 12 * 3600;
    dc->max_ttl = 24 * 3600;
    dc->expiry_step = 300;
    dc->cache_entries = 4096;
    dc->origin_secret = "";
    dc->origin_secret_previous = "";
    dc->origin_secret_header = "x-origin-secret";
    dc->trusted_proxies = "";
    dc->cookie_domain = "";
    dc->cookie_secure = 1;
    dc->cookie_samesite = "Lax";
    dc->chunk_size = 256 * 1024;
}

/* ---- settings ---- */

/* scheme://host[:port] with no path, query or user: what CloudFront's domain looks like. */
static int base_url_ok(const char *url)
{
    size_t n = strlen(url);
    const char *host = !strncmp(url, "https://", 8) ? url + 8 : !strncmp(url, "http://", 7) ? url + 7 : NULL;
    if (host == NULL || n > BASE_MAX || *host == '\0')
        return 0;
    for (const char *p = host; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
              *p == '-' || *p == ':' || *p == '[' || *p == ']'))
            return 0;
    return 1;
}

/* A cookie Domain: a host name, no port. */
static int domain_ok(const char *d)
{
    size_t n = strlen(d);
    return n <= 253 && strspn(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

static int header_name_ok(const char *h)
{
    size_t n = strlen(h);
    return n > 0 && n <= HEADER_MAX && strspn(h, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static void digest(const char *s, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if (!EVP_Digest(s, len, out, &n, EVP_sha256(), NULL))
        memset(out, 0, 32); /* never equal to a real secret's digest in practice; the check then fails */
}

/* The development key under data_dir/cdn, made on first use. 0, or -1 with err set. */
static int dev_key(const char *data_dir, char *path, size_t pathlen, char *err, size_t errlen)
{
    char dir[4096], tmp[4200];
    FILE *fp = NULL;
    EVP_PKEY *key = NULL;
    int fd = -1, ok = 0;
    snprintf(dir, sizeof(dir), "%s/cdn", data_dir);
    snprintf(path, pathlen, "%s/" DEV_KEY_FILE, dir);
    if (access(path, R_OK) == 0)
        return 0;
    if ((mkdir(data_dir, 0700) != 0 && errno != EEXIST) || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
        snprintf(err, errlen, "cdn: cannot create %s for the development CloudFront key: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    if ((key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048)) == NULL)
        goto exit;
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 || (fp = fdopen(fd, "w")) == NULL)
        goto exit;
    fd = -1;
    ok = PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL) && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    ok = fclose(fp) == 0 && ok;
    fp = NULL;
    ok = ok && rename(tmp, path) == 0;
exit:
    if (fd >= 0)
        close(fd);
    if (fp != NULL)
        fclose(fp);
    if (!ok) {
        unlink(tmp);
        snprintf(err, errlen, "cdn: cannot make the development CloudFront key %s", path);
    } else {
        me_log_info(NULL, "made a development CloudFront key (%s); set cdn keys for production", path);
    }
    EVP_PKEY_free(key);
    return ok ? 0 : -1;
}

static int settings_ok(const me_delivery_config_t *dc, char *err, size_t errlen)
{
    const char *samesite = dc->cookie_samesite;
    if (*dc->base_url && !base_url_ok(dc->base_url))
        snprintf(err, errlen, "cdn.base_url: \"%.64s\" is not scheme://host[:port] (http or https, no path)",
                 dc->base_url);
    else if (dc->max_ttl < 60 || dc->url_ttl < 1 || dc->url_ttl > dc->max_ttl || dc->cookie_ttl < 1 ||
             dc->cookie_ttl > dc->max_ttl)
        snprintf(err, errlen, "cdn.url_ttl and cdn.cookie_ttl: from 1 s to cdn.max_ttl (at least 60 s)");
    else if (dc->expiry_step > dc->max_ttl / 2)
        snprintf(err, errlen, "cdn.expiry_step: at most half of cdn.max_ttl");
    else if ((*dc->origin_secret && strlen(dc->origin_secret) < ME_DELIVERY_SECRET_MIN) ||
             (*dc->origin_secret_previous && strlen(dc->origin_secret_previous) < ME_DELIVERY_SECRET_MIN) ||
             strlen(dc->origin_secret) > SECRET_MAX || strlen(dc->origin_secret_previous) > SECRET_MAX)
        snprintf(err, errlen, "cdn.origin_secret: from %d to %d bytes", ME_DELIVERY_SECRET_MIN, SECRET_MAX);
    else if (*dc->origin_secret_previous && !*dc->origin_secret)
        snprintf(err, errlen, "cdn.origin_secret_previous: only with cdn.origin_secret");
    else if (!header_name_ok(dc->origin_secret_header))
        snprintf(err, errlen, "cdn.origin_secret_header: a header name in lower case");
    else if (!domain_ok(dc->cookie_domain))
        snprintf(err, errlen, "cdn.cookie_domain: a host name (no scheme, no port)");
    else if (strcmp(samesite, "Strict") && strcmp(samesite, "Lax") && strcmp(samesite, "None"))
        snprintf(err, errlen, "cdn.cookie_samesite: Strict, Lax or None");
    else if (!strcmp(samesite, "None") && !dc->cookie_secure)
        snprintf(err, errlen, "cdn.cookie_samesite: None needs cdn.cookie_secure (browsers refuse it otherwise)");
    else if (dc->chunk_size < 4096 || dc->chunk_size > 16 * 1024 * 1024)
        snprintf(err, errlen, "delivery.chunk_size: from 4 KiB to 16 MiB");
    else
        return 1;
    return 0;
}

me_delivery_t *me_delivery_new(const me_delivery_config_t *dc, const char *data_dir, const char *own_url, char *err,
                               size_t errlen)
{
    char keypath[4200];
    me_delivery_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!settings_ok(dc, err, errlen))
        goto fail;
    const char *base = *dc->base_url ? dc->base_url : own_url;
    if (base == NULL || !base_url_ok(base)) {
        snprintf(err, errlen, "cdn.base_url: needed (this server's own URL is not known)");
        goto fail;
    }
    d->base_len = (size_t)snprintf(d->base, sizeof(d->base), "%s", base);
    d->url_ttl = dc->url_ttl, d->cookie_ttl = dc->cookie_ttl, d->max_ttl = dc->max_ttl, d->step = dc->expiry_step;
    d->serve_original = dc->serve_original;
    d->chunk_size = (size_t)dc->chunk_size;
    if ((d->has_secret = *dc->origin_secret != '\0'))
        digest(dc->origin_secret, strlen(dc->origin_secret), d->secret);
    if ((d->has_previous = *dc->origin_secret_previous != '\0'))
        digest(dc->origin_secret_previous, strlen(dc->origin_secret_previous), d->previous);
    snprintf(d->secret_header, sizeof(d->secret_header), "%s", dc->origin_secret_header);

    const char *p = dc->trusted_proxies, *item;
    size_t len;
    while (me_config_list_next(&p, &item, &len)) {
        if (d->nproxies == ME_DELIVERY_PROXIES_MAX || me_cf_cidr_parse(item, len, &d->proxies[d->nproxies]) != 0) {
            snprintf(err, errlen, "cdn.trusted_proxies: \"%.*s\" is not an address or range (at most %d of them)",
                     (int)(len < 64 ? len : 64), item, ME_DELIVERY_PROXIES_MAX);
            goto fail;
        }
        d->nproxies++;
    }
    snprintf(d->cookie_attrs, sizeof(d->cookie_attrs), "%s%s%s; HttpOnly; SameSite=%s",
             *dc->cookie_domain ? "; Domain=" : "", dc->cookie_domain, dc->cookie_secure ? "; Secure" : "",
             dc->cookie_samesite);

    /* "<id>=<file>" items, split into copies that live until the keys are loaded */
    me_cf_conf_t conf = {.active = dc->active_key, .cache_entries = dc->cache_entries};
    char ids[ME_CF_KEYS_MAX][ME_CF_KEY_ID_MAX + 1], files[ME_CF_KEYS_MAX][4096];
    for (p = dc->keys; me_config_list_next(&p, &item, &len);) {
        const char *eq = memchr(item, '=', len);
        size_t idlen = eq != NULL ? (size_t)(eq - item) : 0, flen = eq != NULL ? len - idlen - 1 : 0;
        if (conf.nkeys == ME_CF_KEYS_MAX || idlen == 0 || idlen > ME_CF_KEY_ID_MAX || flen == 0 ||
            flen >= sizeof(files[0])) {
            snprintf(err, errlen, "cdn.keys: \"%.*s\" is not <key id>=<PEM file> (at most %d keys)",
                     (int)(len < 64 ? len : 64), item, ME_CF_KEYS_MAX);
            goto fail;
        }
        memcpy(ids[conf.nkeys], item, idlen), ids[conf.nkeys][idlen] = '\0';
        memcpy(files[conf.nkeys], eq + 1, flen), files[conf.nkeys][flen] = '\0';
        conf.keys[conf.nkeys] = (me_cf_key_conf_t){.id = ids[conf.nkeys], .pem_file = files[conf.nkeys]};
        conf.nkeys++;
    }
    /* the hash goes with the key that signs (verification takes whichever a URL names) */
    for (int i = 0; i < conf.nkeys; i++)
        if (*dc->active_key ? !strcmp(conf.keys[i].id, dc->active_key) : i == 0)
            conf.keys[i].hash = dc->hash;
    if (conf.nkeys == 0) {
        if (dev_key(data_dir, keypath, sizeof(keypath), err, errlen) != 0)
            goto fail;
        conf.nkeys = 1;
        conf.active = DEV_KEY_ID;
        conf.keys[0] = (me_cf_key_conf_t){.id = DEV_KEY_ID, .pem_file = keypath, .hash = dc->hash};
    }
    if ((d->cf = me_cf_new(&conf, err, errlen)) == NULL)
        goto fail;
    return d;
fail:
    me_delivery_free(d);
    return NULL;
}

void me_delivery_free(me_delivery_t *d)
{
    if (d == NULL)
        return;
    me_cf_free(d->cf);
    OPENSSL_cleanse(d, sizeof(*d));
    free(d);
}

const char *me_delivery_base_url(const me_delivery_t *d)
{
    return d->base;
}

int me_delivery_behind_cdn(const me_delivery_t *d)
{
    return d->has_secret;
}

size_t me_delivery_chunk_size(const me_delivery_t *d)
{
    return d->chunk_size;
}

int me_delivery_serve_original(const me_delivery_t *d)
{
    return d->serve_original;
}

me_cf_t *me_delivery_signer(me_delivery_t *d)
{
    return d->cf;
}

const char *me_delivery_origin_secret_header(const me_delivery_t *d)
{
    return d->secret_header;
}

/* ---- signing ---- */

int64_t me_delivery_expiry(int64_t now, uint64_t ttl, uint64_t step, uint64_t max_ttl)
{
    int64_t s = (int64_t)step, exp = now + (int64_t)(ttl < max_ttl ? ttl : max_ttl);
    if (s <= 1)
        return exp;
    int64_t up = (exp + s - 1) / s * s, down = exp / s * s;
    if (up <= now + (int64_t)max_ttl)
        return up;
    return down > now ? down : exp;
}

int64_t me_delivery_url_expiry(const me_delivery_t *d, int64_t now)
{
    return me_delivery_expiry(now, d->url_ttl, d->step, d->max_ttl);
}

int me_delivery_sign_file(me_delivery_t *d, const char *album, const char *media_id, const char *file, int64_t now,
                          char *out, size_t outlen, int64_t *expires)
{
    char url[ME_CF_RESOURCE_MAX + 1];
    int n = snprintf(url, sizeof(url), "%s" ME_DELIVERY_PREFIX "%s/%s/%s", d->base, album, media_id, file);
    if (n < 0 || (size_t)n >= sizeof(url))
        return ME_EINVAL;
    me_cf_policy_t p = {.date_less_than = me_delivery_url_expiry(d, now)};
    *expires = p.date_less_than;
    return me_cf_sign_url(d->cf, url, &p, out, outlen);
}

int me_delivery_sign_album(me_delivery_t *d, const char *album, int64_t now, me_cf_cookies_t *out, int64_t *expires)
{
    char resource[ME_CF_RESOURCE_MAX + 1];
    int n = snprintf(resource, sizeof(resource), "%s" ME_DELIVERY_PREFIX "%s/*", d->base, album);
    if (n < 0 || (size_t)n >= sizeof(resource))
        return ME_EINVAL;
    me_cf_policy_t p = {.resource = resource,
                        .date_less_than = me_delivery_expiry(now, d->cookie_ttl, d->step, d->max_ttl)};
    *expires = p.date_less_than;
    return me_cf_sign_cookies(d->cf, &p, out);
}

int me_delivery_set_cookies(const me_delivery_t *d, const char *album, const me_cf_cookies_t *c,
                            char out[][ME_DELIVERY_COOKIE_MAX])
{
    const char *names[] = {"CloudFront-Policy", "CloudFront-Expires", "CloudFront-Signature", "CloudFront-Key-Pair-Id",
                           "CloudFront-Hash-Algorithm"};
    const char *values[] = {c->policy, c->expires, c->signature, c->key_pair_id, c->hash_algorithm};
    int n = 0;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (values[i] != NULL && *values[i] != '\0')
            snprintf(out[n++], ME_DELIVERY_COOKIE_MAX, "%s=%s; Path=" ME_DELIVERY_PREFIX "%s/%s", names[i], values[i],
                     album, d->cookie_attrs);
    return n;
}

/* ---- the origin's checks ---- */

size_t me_delivery_id_span(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len && ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                       s[i] == '_' || s[i] == '-'))
        i++;
    return i;
}

/* "<name>.<ext>" of [a-z0-9_-], or the original. */
static int file_ok(const char *s, size_t len)
{
    if (len == sizeof(ME_DELIVERY_ORIGINAL) - 1 && memcmp(s, ME_DELIVERY_ORIGINAL, len) == 0)
        return 1;
    const char *dot = memchr(s, '.', len);
    if (len > ME_DELIVERY_FILE_MAX || dot == NULL || dot == s || dot == s + len - 1)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' ||
              s + i == dot))
            return 0;
    return 1;
}

int me_delivery_parse_path(const char *path, size_t len, char *album, char *media_id, char *file)
{
    const size_t pre = sizeof(ME_DELIVERY_PREFIX) - 1;
    if (len <= pre || memcmp(path, ME_DELIVERY_PREFIX, pre) != 0)
        return ME_ENOTFOUND;
    const char *a = path + pre, *end = path + len;
    size_t alen = me_delivery_id_span(a, (size_t)(end - a));
    if (alen == 0 || alen > 64 || a + alen == end || a[alen] != '/')
        return ME_ENOTFOUND;
    const char *m = a + alen + 1;
    size_t mlen = me_delivery_id_span(m, (size_t)(end - m));
    if (mlen == 0 || mlen > 64 || m + mlen == end || m[mlen] != '/')
        return ME_ENOTFOUND;
    const char *f = m + mlen + 1;
    size_t flen = (size_t)(end - f);
    if (!file_ok(f, flen))
        return ME_ENOTFOUND;
    memcpy(album, a, alen), album[alen] = '\0';
    memcpy(media_id, m, mlen), media_id[mlen] = '\0';
    memcpy(file, f, flen), file[flen] = '\0';
    return 0;
}

static int is_trusted(const me_delivery_t *d, int family, const unsigned char *addr)
{
    for (int i = 0; i < d->nproxies; i++)
        if (me_cf_cidr_contains(&d->proxies[i], family, addr))
            return 1;
    return 0;
}

void me_delivery_client_ip(const me_delivery_t *d, const struct sockaddr *peer, const char *xff, size_t xfflen,
                           int *family, unsigned char *addr)
{
    *family = 0;
    memset(addr, 0, 16);
    if (peer != NULL && peer->sa_family == AF_INET) {
        *family = AF_INET;
        memcpy(addr, &((const struct sockaddr_in *)peer)->sin_addr, 4);
    } else if (peer != NULL && peer->sa_family == AF_INET6) {
        *family = AF_INET6;
        memcpy(addr, &((const struct sockaddr_in6 *)peer)->sin6_addr, 16);
    }
    /* from the right: each hop that is ours tells who talked to it; the first that is not
     * ours is the client, and anything to its left is what the client wrote itself */
    size_t end = xff != NULL ? xfflen : 0;
    while (*family != 0 && is_trusted(d, *family, addr) && end > 0) {
        size_t start = end;
        while (start > 0 && xff[start - 1] != ',')
            start--;
        const char *item = xff + start;
        size_t len = end - start;
        while (len > 0 && (*item == ' ' || *item == '\t'))
            item++, len--;
        while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            len--;
        me_cf_cidr_t one;
        if (memchr(item, '/', len) != NULL || me_cf_cidr_parse(item, len, &one) != 0) {
            *family = 0; /* a hop we cannot read: no address at all, rather than a forged one */
            memset(addr, 0, 16);
            return;
        }
        *family = one.family;
        memcpy(addr, one.addr, 16);
        end = start > 0 ? start - 1 : 0;
    }
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes %XX in len bytes of s into out (len + 1 bytes): a client may escape '~' or '_' in
 * a signature. Returns the length, or -1 for a bad escape. */
static ssize_t percent_decode(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[o++] = s[i];
            continue;
        }
        int hi = i + 2 < len ? hex_value(s[i + 1]) : -1, lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
        if (lo < 0)
            return -1;
        out[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[o] = '\0';
    return (ssize_t)o;
}

/* The proof's slot for a signing parameter or cookie name (without its "CloudFront-" prefix),
 * or NULL for any other name. */
static me_cf_value_t *slot_for(me_cf_proof_t *proof, const char *name, size_t len)
{
    static const struct {
        const char *name;
        size_t offset;
    } names[] = {
        {"Expires", offsetof(me_cf_proof_t, expires)},
        {"Policy", offsetof(me_cf_proof_t, policy)},
        {"Signature", offsetof(me_cf_proof_t, signature)},
        {"Key-Pair-Id", offsetof(me_cf_proof_t, key_pair_id)},
        {"Hash-Algorithm", offsetof(me_cf_proof_t, hash_algorithm)},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0)
            return (me_cf_value_t *)((char *)proof + names[i].offset);
    return NULL;
}

/* Takes the CloudFront-* cookies of cookie (len bytes, "a=b; c=d") into proof; the first of a
 * name wins (browsers send the most specific path first). */
static void cookies_proof(const char *cookie, size_t len, me_cf_proof_t *proof)
{
    static const char prefix[] = "CloudFront-";
    const char *p = cookie, *end = cookie + len;
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p)), *stop = semi != NULL ? semi : end;
        while (p < stop && *p == ' ')
            p++;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL && (size_t)(eq - p) > sizeof(prefix) - 1 && memcmp(p, prefix, sizeof(prefix) - 1) == 0) {
            me_cf_value_t *v = slot_for(proof, p + sizeof(prefix) - 1, (size_t)(eq - p) - (sizeof(prefix) - 1));
            if (v != NULL && v->v == NULL) {
                size_t vlen = (size_t)(stop - eq - 1);
                while (vlen > 0 && eq[vlen] == ' ')
                    vlen--;
                *v = (me_cf_value_t){eq + 1, vlen};
            }
        }
        p = stop + 1;
    }
}

me_cf_verdict_t me_delivery_check_signed(me_delivery_t *d, const char *path, size_t len, const char *cookie,
                                         size_t cookielen, int family, const unsigned char *addr, int64_t now)
{
    char resource[ME_CF_RESOURCE_MAX + 1], values[ME_CF_URL_MAX + 8];
    size_t used = 0, rlen;
    me_cf_proof_t proof;
    const char *q = memchr(path, '?', len), *end = path + len;
    size_t plen = q != NULL ? (size_t)(q - path) : len;

    memset(&proof, 0, sizeof(proof));
    if (len > ME_CF_URL_MAX || d->base_len + plen > ME_CF_RESOURCE_MAX)
        return ME_CF_WRONG_RESOURCE;
    memcpy(resource, d->base, d->base_len);
    memcpy(resource + d->base_len, path, plen);
    rlen = d->base_len + plen;
    /* the resource is the URL without its signing parameters, the others kept in order */
    for (const char *p = q != NULL ? q + 1 : end, *amp; q != NULL && p <= end; p = amp + 1) {
        amp = memchr(p, '&', (size_t)(end - p));
        if (amp == NULL)
            amp = end;
        const char *eq = memchr(p, '=', (size_t)(amp - p));
        me_cf_value_t *slot = eq != NULL ? slot_for(&proof, p, (size_t)(eq - p)) : NULL;
        if (slot != NULL) {
            ssize_t n = slot->v == NULL ? percent_decode(eq + 1, (size_t)(amp - eq - 1), values + used) : -1;
            if (n < 0)
                return ME_CF_MALFORMED; /* a parameter twice, or a bad escape */
            *slot = (me_cf_value_t){values + used, (size_t)n};
            used += (size_t)n + 1;
        } else {
            size_t n = (size_t)(amp - p);
            if (rlen + 1 + n > ME_CF_RESOURCE_MAX)
                return ME_CF_WRONG_RESOURCE;
            char sep = rlen == d->base_len + plen ? '?' : '&';
            resource[rlen++] = sep;
            memcpy(resource + rlen, p, n);
            rlen += n;
        }
    }
    resource[rlen] = '\0';
    int from_url = proof.expires.v != NULL || proof.policy.v != NULL || proof.signature.v != NULL ||
                   proof.key_pair_id.v != NULL;
    if (!from_url) {
        memset(&proof, 0, sizeof(proof)); /* a lone Hash-Algorithm in the URL says nothing */
        if (cookie != NULL)
            cookies_proof(cookie, cookielen, &proof);
    }
    return me_cf_verify(d->cf, resource, rlen, &proof, family, addr, now);
}

int me_delivery_origin_secret_ok(const me_delivery_t *d, const char *value, size_t len)
{
    unsigned char got[32];
    if (!d->has_secret)
        return 0;
    /* digests of equal length: the comparison's time says nothing of the secrets' bytes */
    digest(value, len, got);
    int ok = CRYPTO_memcmp(got, d->secret, sizeof(got)) == 0;
    ok |= d->has_previous & (CRYPTO_memcmp(got, d->previous, sizeof(got)) == 0);
    return ok;
}
