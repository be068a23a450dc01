/* test_delivery.c: unit tests of server/delivery/delivery.c: settings, expiries, signed file
 * URLs and album cookies, and the origin's checks (paths, signatures as CloudFront checks
 * them, client addresses through trusted proxies, the origin secret). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "server/core/config.h"
#include "server/storage/storage_config.h"
#include "server/delivery/delivery.h"
#include "server/delivery/hot.h"
#include "server/delivery/serve.h"
#include "server/delivery/view.h"
#include "server/media/manifest.h"
#include <jansson.h>

#define T0 INT64_C(1800000000)
#define BASE "https://cdn.example.com"
#define ID "AbCdEfGhIjKlMnOpQrStUv"
#define LIT(s) s, sizeof(s) - 1

static char rsa_key[PATH_MAX], tmpdir[PATH_MAX], keys[PATH_MAX + 8];

static int group_setup(void **state)
{
    (void)state;
    const char *dir = getenv("MEDIAEDGE_SRCDIR");
    snprintf(rsa_key, sizeof(rsa_key), "%s/tests/unit/keys/rsa.pem", dir && *dir ? dir : ".");
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/me-test-delivery-XXXXXX");
    return access(rsa_key, R_OK) != 0 || mkdtemp(tmpdir) == NULL;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) != 0;
}

/* A file backend under tmpdir/<name>. */
static me_storage_t *open_store(const char *name)
{
    char root[PATH_MAX + 32], err[256];
    me_config_t cfg;
    snprintf(root, sizeof(root), "%s/%s", tmpdir, name);
    assert_int_equal(me_config_defaults(&cfg), 0);
    ((me_storage_settings_t *)me_config_section_mut(&cfg, &me_storage_config_section))->root = root;
    me_storage_t *st = me_storage_open(&cfg, err, sizeof(err));
    me_config_free(&cfg); /* the backend keeps the directory open, not the settings */
    assert_non_null(st);
    return st;
}

static size_t len_of(const char *s)
{
    return s != NULL ? strlen(s) : 0;
}

static me_delivery_t *make(me_delivery_config_t *dc)
{
    char err[256] = "";
    me_delivery_t *d = me_delivery_new(dc, tmpdir, "https://127.0.0.1:8443", err, sizeof(err));
    if (d == NULL)
        print_error("me_delivery_new: %s\n", err);
    return d;
}

static void rsa_config(me_delivery_config_t *dc)
{
    me_delivery_config_defaults(dc);
    dc->base_url = BASE;
    snprintf(keys, sizeof(keys), "K1=%s", rsa_key);
    dc->keys = keys;
}

static void test_expiry_rounds_up_within_the_cap(void **state)
{
    (void)state;
    /* 1800000000 is a multiple of 300 */
    assert_int_equal(me_delivery_expiry(T0, 3600, 300, 86400), T0 + 3600);
    assert_int_equal(me_delivery_expiry(T0 + 1, 3600, 300, 86400), T0 + 3900);
    assert_int_equal(me_delivery_expiry(T0 + 299, 3600, 300, 86400), T0 + 3900);
    /* two processes a few seconds apart sign the same expiry */
    assert_int_equal(me_delivery_expiry(T0 + 17, 3600, 300, 86400), me_delivery_expiry(T0 + 201, 3600, 300, 86400));
    /* capped: a ttl over the cap, and rounding that would pass it */
    assert_int_equal(me_delivery_expiry(T0, 999999, 300, 86400), T0 + 86400);
    assert_int_equal(me_delivery_expiry(T0 + 1, 86400, 300, 86400), T0 + 86400); /* down */
    assert_int_equal(me_delivery_expiry(T0 + 1, 3600, 0, 86400), T0 + 3601);
    assert_int_equal(me_delivery_expiry(T0 + 1, 10, 300, 20), T0 + 11); /* no step fits: unrounded */
}

static void test_paths(void **state)
{
    (void)state;
    char album[65], id[65], file[ME_DELIVERY_FILE_MAX + 1];
    assert_int_equal(me_delivery_parse_path(LIT("/m/album-7/" ID "/thumb.jpg"), album, id, file), 0);
    assert_string_equal(album, "album-7");
    assert_string_equal(id, ID);
    assert_string_equal(file, "thumb.jpg");
    assert_int_equal(me_delivery_parse_path(LIT("/m/a/" ID "/original"), album, id, file), 0);
    assert_string_equal(file, "original");
    const char *bad[] = {"/m/", "/m/a", "/m/a/", "/m/a/b", "/m/a/b/", "/m/a/b/thumb", "/m/a/b/.jpg", "/m/a/b/thumb.",
                         "/m/a/b/Thumb.jpg", "/m/../b/thumb.jpg", "/m/a/../thumb.jpg", "/m/a/b/../../x.jpg",
                         "/m/a/b/c/thumb.jpg", "/m/a/b/thumb.jpg/", "/m/a%2fb/c/thumb.jpg", "/m//b/thumb.jpg",
                         "/x/a/b/thumb.jpg", "/m/a/b/originals", "/m/a/b/averyveryveryveryverylongname.jpg",
                         "/m/a/b/a.b.c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (me_delivery_parse_path(bad[i], strlen(bad[i]), album, id, file) != ME_ENOTFOUND)
            fail_msg("%s was taken", bad[i]);
    char long_album[80] = "/m/";
    memset(long_album + 3, 'a', 65);
    strcpy(long_album + 68, "/b/t.jpg");
    assert_int_equal(me_delivery_parse_path(long_album, strlen(long_album), album, id, file), ME_ENOTFOUND);
}

/* The request target of a signed URL: what CloudFront forwards, or a viewer sends here. */
static const char *target_of(const char *url)
{
    return url + strlen(BASE);
}

static void test_signed_file_urls_pass_the_origins_check(void **state)
{
    (void)state;
    me_delivery_config_t dc;
    rsa_config(&dc);
    me_delivery_t *d = make(&dc);
    char url[ME_CF_URL_MAX];
    int64_t exp;
    assert_int_equal(me_delivery_sign_file(d, "album-7", ID, "thumb.jpg", T0 + 10, url, sizeof(url), &exp), 0);
    assert_int_equal(exp, T0 + 3900);
    assert_true(strncmp(url, BASE "/m/album-7/" ID "/thumb.jpg?Expires=1800003900&Signature=", 87) == 0);
    const char *t = target_of(url);
    assert_int_equal(me_delivery_check_signed(d, t, strlen(t), NULL, 0, 0, NULL, T0 + 20), ME_CF_VALID);
    assert_int_equal(me_delivery_check_signed(d, t, strlen(t), NULL, 0, 0, NULL, exp), ME_CF_EXPIRED);
    /* another file of the same media, the same proof */
    char other[ME_CF_URL_MAX];
    snprintf(other, sizeof(other), "/m/album-7/" ID "/large.jpg%s", strchr(t, '?'));
    assert_int_equal(me_delivery_check_signed(d, other, strlen(other), NULL, 0, 0, NULL, T0 + 20), ME_CF_BAD_SIGNATURE);
    /* a query of its own is part of the resource; so is its place */
    char extra[ME_CF_URL_MAX];
    snprintf(extra, sizeof(extra), "%s&w=1", t);
    assert_int_equal(me_delivery_check_signed(d, extra, strlen(extra), NULL, 0, 0, NULL, T0 + 20), ME_CF_BAD_SIGNATURE);
    /* a signing parameter twice, a bad escape */
    snprintf(extra, sizeof(extra), "%s&Expires=1", t);
    assert_int_equal(me_delivery_check_signed(d, extra, strlen(extra), NULL, 0, 0, NULL, T0 + 20), ME_CF_MALFORMED);
    snprintf(extra, sizeof(extra), "%s%%7", t);
    assert_int_equal(me_delivery_check_signed(d, extra, strlen(extra), NULL, 0, 0, NULL, T0 + 20), ME_CF_MALFORMED);
    /* escaped characters of a signature are fine: a client may write ~ as %7E */
    char escaped[ME_CF_URL_MAX], *o = escaped;
    for (const char *p = t; *p != '\0'; p++)
        o += *p == '~' ? sprintf(o, "%%7E") : sprintf(o, "%c", *p);
    assert_int_equal(me_delivery_check_signed(d, escaped, strlen(escaped), NULL, 0, 0, NULL, T0 + 20), ME_CF_VALID);
    /* no proof at all */
    assert_int_equal(me_delivery_check_signed(d, LIT("/m/album-7/" ID "/thumb.jpg"), NULL, 0, 0, NULL, T0),
                     ME_CF_MISSING);
    me_delivery_free(d);
}

static void test_album_cookies(void **state)
{
    (void)state;
    me_delivery_config_t dc;
    rsa_config(&dc);
    dc.cookie_domain = "example.com";
    me_delivery_t *d = make(&dc);
    me_cf_cookies_t ck;
    int64_t exp;
    char set[4][ME_DELIVERY_COOKIE_MAX], cookie[8192];
    assert_int_equal(me_delivery_sign_album(d, "album-7", T0 + 10, &ck, &exp), 0);
    assert_int_equal(exp, T0 + 12 * 3600 + 300);
    assert_int_equal(me_delivery_set_cookies(d, "album-7", &ck, set), 3);
    assert_true(strncmp(set[0], "CloudFront-Policy=", 18) == 0);
    assert_non_null(strstr(set[0], "; Path=/m/album-7/; Domain=example.com; Secure; HttpOnly; SameSite=Lax"));
    assert_true(strncmp(set[1], "CloudFront-Signature=", 21) == 0);
    assert_true(strncmp(set[2], "CloudFront-Key-Pair-Id=K1; Path=/m/album-7/;", 44) == 0);
    /* what a browser sends back: the name=value pairs, other cookies among them */
    snprintf(cookie, sizeof(cookie), "theme=dark; CloudFront-Policy=%s; CloudFront-Signature=%s; "
             "CloudFront-Key-Pair-Id=%s; sid=1", ck.policy, ck.signature, ck.key_pair_id);
    const char *path = "/m/album-7/" ID "/thumb.jpg";
    assert_int_equal(me_delivery_check_signed(d, path, strlen(path), cookie, strlen(cookie), 0, NULL, T0 + 20),
                     ME_CF_VALID);
    const char *elsewhere = "/m/album-8/" ID "/thumb.jpg";
    assert_int_equal(me_delivery_check_signed(d, elsewhere, strlen(elsewhere), cookie, strlen(cookie), 0, NULL, T0),
                     ME_CF_WRONG_RESOURCE);
    assert_int_equal(me_delivery_check_signed(d, path, strlen(path), cookie, strlen(cookie), 0, NULL, exp),
                     ME_CF_EXPIRED);
    /* a signed URL's parameters win over cookies, as at CloudFront */
    char withq[256];
    snprintf(withq, sizeof(withq), "%s?Expires=1900000000&Signature=AAAA&Key-Pair-Id=K1", path);
    assert_int_equal(me_delivery_check_signed(d, withq, strlen(withq), cookie, strlen(cookie), 0, NULL, T0),
                     ME_CF_BAD_SIGNATURE);
    me_delivery_free(d);
}

static void test_client_ip_believes_only_trusted_proxies(void **state)
{
    (void)state;
    me_delivery_config_t dc;
    rsa_config(&dc);
    me_delivery_t *open = make(&dc);
    dc.trusted_proxies = "10.0.0.0/8, 192.168.1.1";
    me_delivery_t *proxied = make(&dc);
    struct sockaddr_in peer = {.sin_family = AF_INET}, proxy = {.sin_family = AF_INET};
    inet_pton(AF_INET, "203.0.113.9", &peer.sin_addr);
    inet_pton(AF_INET, "10.1.2.3", &proxy.sin_addr);
    int family;
    unsigned char addr[16];
    char text[64];
#define CLIENT(d, p, xff)                                                                                              \
    (me_delivery_client_ip(d, (struct sockaddr *)(p), xff, len_of(xff), &family, addr),                                \
     family == 0 ? "-" : inet_ntop(family, addr, text, sizeof(text)))
    /* no trusted proxy: the header is the client's own words */
    assert_string_equal(CLIENT(open, &peer, "198.51.100.1"), "203.0.113.9");
    assert_string_equal(CLIENT(open, &proxy, "198.51.100.1"), "10.1.2.3");
    /* a client that is not a proxy cannot speak for anyone */
    assert_string_equal(CLIENT(proxied, &peer, "198.51.100.1"), "203.0.113.9");
    /* through our proxies: the right-most address that is not ours */
    assert_string_equal(CLIENT(proxied, &proxy, "198.51.100.1"), "198.51.100.1");
    assert_string_equal(CLIENT(proxied, &proxy, "1.2.3.4, 198.51.100.1"), "198.51.100.1"); /* 1.2.3.4: spoofed */
    assert_string_equal(CLIENT(proxied, &proxy, "1.2.3.4,198.51.100.1, 192.168.1.1 , 10.9.9.9"), "198.51.100.1");
    assert_string_equal(CLIENT(proxied, &proxy, "10.0.0.1"), "10.0.0.1"); /* every hop ours: the first */
    assert_string_equal(CLIENT(proxied, &proxy, NULL), "10.1.2.3");
    assert_string_equal(CLIENT(proxied, &proxy, "1.2.3.4, garbage"), "-");
    assert_string_equal(CLIENT(proxied, &proxy, "2001:db8::7"), "2001:db8::7");
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &mapped.sin6_addr);
    assert_string_equal(CLIENT(proxied, &mapped, "198.51.100.1"), "198.51.100.1");
#undef CLIENT
    me_delivery_free(open);
    me_delivery_free(proxied);
}

static void test_origin_secret_two_values_for_a_rotation(void **state)
{
    (void)state;
    me_delivery_config_t dc;
    rsa_config(&dc);
    me_delivery_t *standalone = make(&dc);
    assert_false(me_delivery_behind_cdn(standalone));
    assert_false(me_delivery_origin_secret_ok(standalone, LIT("")));
    dc.origin_secret = "new-secret-0123456789";
    dc.origin_secret_previous = "old-secret-0123456789";
    me_delivery_t *d = make(&dc);
    assert_true(me_delivery_behind_cdn(d));
    assert_string_equal(me_delivery_origin_secret_header(d), "x-origin-secret");
    assert_true(me_delivery_origin_secret_ok(d, LIT("new-secret-0123456789")));
    assert_true(me_delivery_origin_secret_ok(d, LIT("old-secret-0123456789")));
    assert_false(me_delivery_origin_secret_ok(d, LIT("new-secret-012345678")));
    assert_false(me_delivery_origin_secret_ok(d, LIT("")));
    dc.origin_secret_previous = "";
    me_delivery_t *after = make(&dc);
    assert_false(me_delivery_origin_secret_ok(after, LIT("old-secret-0123456789")));
    me_delivery_free(standalone);
    me_delivery_free(d);
    me_delivery_free(after);
}

static void test_settings_refused(void **state)
{
    (void)state;
    struct {
        const char *field, *value;
        const char *says;
    } cases[] = {
        {"base_url", "ftp://x", "cdn.base_url"},
        {"base_url", "https://x/path", "cdn.base_url"},
        {"origin_secret", "short", "cdn.origin_secret"},
        {"origin_secret_previous", "old-secret-0123456789", "only with"},
        {"trusted_proxies", "10.0.0.0/8, nope", "cdn.trusted_proxies"},
        {"cookie_samesite", "lax", "cdn.cookie_samesite"},
        {"cookie_domain", "https://x", "cdn.cookie_domain"},
        {"origin_secret_header", "X-Secret", "cdn.origin_secret_header"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        me_delivery_config_t dc;
        char err[256] = "";
        rsa_config(&dc);
        const char **f = !strcmp(cases[i].field, "base_url")                 ? &dc.base_url
                         : !strcmp(cases[i].field, "origin_secret")          ? &dc.origin_secret
                         : !strcmp(cases[i].field, "origin_secret_previous") ? &dc.origin_secret_previous
                         : !strcmp(cases[i].field, "trusted_proxies")        ? &dc.trusted_proxies
                         : !strcmp(cases[i].field, "cookie_samesite")        ? &dc.cookie_samesite
                         : !strcmp(cases[i].field, "cookie_domain")          ? &dc.cookie_domain
                                                                             : &dc.origin_secret_header;
        *f = cases[i].value;
        assert_null(me_delivery_new(&dc, tmpdir, "https://localhost", err, sizeof(err)));
        if (strstr(err, cases[i].says) == NULL)
            fail_msg("%s=%s: \"%s\"", cases[i].field, cases[i].value, err);
    }
    me_delivery_config_t dc;
    char err[256];
    rsa_config(&dc);
    dc.url_ttl = dc.max_ttl + 1;
    assert_null(me_delivery_new(&dc, tmpdir, "https://localhost", err, sizeof(err)));
    rsa_config(&dc);
    dc.cookie_samesite = "None";
    dc.cookie_secure = 0;
    assert_null(me_delivery_new(&dc, tmpdir, "https://localhost", err, sizeof(err)));
}

static void test_development_key_made_once_and_kept(void **state)
{
    (void)state;
    me_delivery_config_t dc;
    char path[PATH_MAX + 64], a[ME_CF_URL_MAX], b[ME_CF_URL_MAX];
    struct stat st;
    int64_t exp;
    me_delivery_config_defaults(&dc); /* no key, no base URL: this server's own */
    me_delivery_t *d = make(&dc);
    assert_non_null(d);
    assert_string_equal(me_delivery_base_url(d), "https://127.0.0.1:8443");
    snprintf(path, sizeof(path), "%s/cdn/dev-cloudfront-key.pem", tmpdir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(me_delivery_sign_file(d, "a", ID, "thumb.jpg", T0, a, sizeof(a), &exp), 0);
    assert_non_null(strstr(a, "https://127.0.0.1:8443/m/a/" ID "/thumb.jpg?Expires="));
    assert_non_null(strstr(a, "&Key-Pair-Id=DEV"));
    me_delivery_free(d);
    d = make(&dc); /* a restart signs with the same key: URLs handed out stay good */
    assert_int_equal(me_delivery_sign_file(d, "a", ID, "thumb.jpg", T0, b, sizeof(b), &exp), 0);
    assert_string_equal(a, b);
    me_delivery_free(d);
}

/* ---- serve.c ---- */

#define ETAG "\"abc\""
#define MTIME INT64_C(1700000000) /* Tue, 14 Nov 2023 22:13:20 GMT */

typedef struct {
    const char *range, *inm, *if_range;
    int status;
    uint64_t offset, length;
} plan_case_t;

static void test_plan_ranges_and_conditions(void **state)
{
    (void)state;
    const plan_case_t cases[] = {
        {NULL, NULL, NULL, 200, 0, 1000},
        {"bytes=0-99", NULL, NULL, 206, 0, 100},
        {"bytes=100-", NULL, NULL, 206, 100, 900},
        {"bytes=-10", NULL, NULL, 206, 990, 10},
        {"bytes=-5000", NULL, NULL, 206, 0, 1000},       /* more than there is: all of it */
        {"bytes=900-5000", NULL, NULL, 206, 900, 100},   /* cut at the end */
        {"bytes=999-999", NULL, NULL, 206, 999, 1},
        {"BYTES= 5-6 ", NULL, NULL, 206, 5, 2},
        {"bytes=1000-", NULL, NULL, 416, 0, 0},
        {"bytes=-0", NULL, NULL, 416, 0, 0},
        {"bytes=5-4", NULL, NULL, 200, 0, 1000},         /* malformed: ignored */
        {"bytes=0-1,5-6", NULL, NULL, 200, 0, 1000},     /* several: ignored */
        {"items=0-1", NULL, NULL, 200, 0, 1000},
        {"bytes=a-b", NULL, NULL, 200, 0, 1000},
        {"bytes=99999999999999999999-", NULL, NULL, 200, 0, 1000},
        {NULL, ETAG, NULL, 304, 0, 0},
        {NULL, "W/" ETAG, NULL, 304, 0, 0},
        {NULL, "\"x\", " ETAG, NULL, 304, 0, 0},
        {NULL, "*", NULL, 304, 0, 0},
        {NULL, "\"x\"", NULL, 200, 0, 1000},
        {NULL, "abc", NULL, 200, 0, 1000},
        {"bytes=0-9", ETAG, NULL, 304, 0, 0},             /* If-None-Match first */
        {"bytes=0-9", NULL, ETAG, 206, 0, 10},
        {"bytes=0-9", NULL, "W/" ETAG, 200, 0, 1000},     /* If-Range compares strongly */
        {"bytes=0-9", NULL, "\"old\"", 200, 0, 1000},
        {"bytes=0-9", NULL, "Tue, 14 Nov 2023 22:13:20 GMT", 206, 0, 10},
        {"bytes=0-9", NULL, "Tue, 14 Nov 2023 22:13:19 GMT", 200, 0, 1000},
        {"bytes=0-9", NULL, "yesterday", 200, 0, 1000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const plan_case_t *c = &cases[i];
        me_delivery_plan_t p = me_delivery_plan(1000, ETAG, MTIME, c->range, len_of(c->range), c->inm,
                                                len_of(c->inm), c->if_range, len_of(c->if_range));
        if (p.status != c->status || p.offset != c->offset || p.length != c->length)
            fail_msg("case %zu (%s, %s, %s): %d %llu+%llu", i, c->range, c->inm, c->if_range, p.status,
                     (unsigned long long)p.offset, (unsigned long long)p.length);
    }
    /* an empty object has no byte to range over */
    assert_int_equal(me_delivery_plan(0, ETAG, MTIME, LIT("bytes=0-"), NULL, 0, NULL, 0).status, 416);
    assert_int_equal(me_delivery_plan(0, ETAG, MTIME, NULL, 0, NULL, 0, NULL, 0).length, 0);
}

static void test_resolve_serves_what_the_manifest_lists(void **state)
{
    (void)state;
    me_storage_t *st = open_store("storage");
    json_t *m = json_pack("{s:i,s:s,s:s,s:s,s:{s:s,s:s},s:{s:{s:s},s:{s:s}}}", "v", 1, "id", ID, "album", "a1", "status",
                          "ready", "original", "key", "originals/a1/" ID, "content_type", "image/heic", "variants",
                          "thumb.jpg", "content_type", "image/jpeg", "evil.jpg", "content_type", "text/html\r\nx: y");
    assert_int_equal(me_manifest_store(st, m), 0);
    assert_int_equal(me_storage_put(st, "variants/a1/" ID "/thumb.jpg", "12345", 5), 0);
    assert_int_equal(me_storage_put(st, "variants/a1/" ID "/evil.jpg", "1", 1), 0);
    assert_int_equal(me_storage_put(st, "originals/a1/" ID, "orig", 4), 0);
    me_delivery_object_t o;
    me_delivery_objects_t *objs = me_delivery_objects_new(st, 64), *allow = me_delivery_objects_new(st, 0);
    assert_int_equal(me_delivery_resolve(objs, "a1", ID, "thumb.jpg", 0, &o), 0);
    assert_string_equal(o.key, "variants/a1/" ID "/thumb.jpg");
    assert_string_equal(o.content_type, "image/jpeg");
    assert_true(o.size == 5 && o.mtime > 0 && o.etag[0] == '"' && !o.is_original);
    assert_int_equal(me_delivery_resolve(objs, "a1", ID, "evil.jpg", 0, &o), 0);
    assert_string_equal(o.content_type, "application/octet-stream"); /* never a header from a document */
    assert_int_equal(me_delivery_resolve(objs, "a1", ID, "original", 0, &o), ME_ENOTFOUND);
    assert_int_equal(me_delivery_resolve(allow, "a1", ID, "original", 1, &o), 0);
    assert_true(o.is_original && o.size == 4);
    assert_string_equal(o.content_type, "image/heic");
    assert_int_equal(me_delivery_resolve(allow, "a2", ID, "thumb.jpg", 1, &o), ME_ENOTFOUND); /* another album */
    assert_int_equal(me_delivery_resolve(allow, "a1", ID, "small.jpg", 1, &o), ME_ENOTFOUND); /* not listed */
    assert_int_equal(me_delivery_resolve(allow, "a1", "NoSuchMedia", "thumb.jpg", 1, &o), ME_ENOTFOUND);
    assert_int_equal(me_storage_delete(st, "variants/a1/" ID "/thumb.jpg"), 0);
    assert_int_equal(me_delivery_resolve(allow, "a1", ID, "thumb.jpg", 1, &o), ME_ENOTFOUND); /* listed, gone */
    json_object_set_new(m, "status", json_string("processing"));
    assert_int_equal(me_manifest_store(st, m), 0);
    assert_int_equal(me_delivery_resolve(allow, "a1", ID, "evil.jpg", 1, &o), ME_ENOTFOUND); /* not ready */
    /* the manifest is parsed once per file while it stays the same object */
    uint64_t parsed = me_delivery_objects_parsed(objs);
    for (int i = 0; i < 3; i++)
        assert_int_equal(me_delivery_resolve(objs, "a1", ID, "thumb.jpg", 0, &o), ME_ENOTFOUND); /* not ready now */
    assert_int_equal(me_delivery_objects_parsed(objs), parsed + 1);
    json_decref(m);
    me_delivery_objects_free(objs);
    me_delivery_objects_free(allow);
    me_storage_close(st);
}

static void test_chunk_buffers_are_recycled_up_to_a_cap(void **state)
{
    (void)state;
    me_delivery_buffers_t *b = me_delivery_buffers_new(65536, 2);
    void *p[4];
    for (int i = 0; i < 4; i++) {
        assert_non_null(p[i] = me_delivery_buffer_get(b));
        memset(p[i], i, 65536); /* writable, the whole size */
    }
    assert_int_equal(me_delivery_buffers_mapped(b), 4);
    for (int i = 0; i < 4; i++)
        me_delivery_buffer_put(b, p[i]);
    assert_int_equal(me_delivery_buffers_mapped(b), 2); /* two kept, two given back to the system */
    void *again = me_delivery_buffer_get(b);
    assert_true(again == p[0] || again == p[1]);
    assert_int_equal(me_delivery_buffers_mapped(b), 2);
    me_delivery_buffer_put(b, again);
    me_delivery_buffer_put(b, NULL);
    assert_int_equal(me_delivery_buffers_size(b), 65536);
    me_delivery_buffers_free(b);

    /* idle through a whole second: given back at the next get or put */
    b = me_delivery_buffers_new(65536, 8);
    for (int i = 0; i < 4; i++)
        p[i] = me_delivery_buffer_get(b);
    for (int i = 0; i < 4; i++)
        me_delivery_buffer_put(b, p[i]);
    assert_int_equal(me_delivery_buffers_mapped(b), 4);
    usleep(1100 * 1000);
    me_delivery_buffer_put(b, me_delivery_buffer_get(b)); /* a trim: 3 stayed idle since the last */
    usleep(1100 * 1000);
    me_delivery_buffer_put(b, me_delivery_buffer_get(b));
    assert_true(me_delivery_buffers_mapped(b) <= 1);
    me_delivery_buffers_free(b);
}

/* ---- hot.c ---- */

/* An object of size bytes, each byte fill, with etag "e<etag>". */
static me_delivery_blob_t *hot_object(size_t size, int fill, int etag, me_delivery_object_t *obj)
{
    me_delivery_blob_t *b = me_delivery_blob_new(size);
    memset(me_delivery_blob_data(b), fill, size);
    memset(obj, 0, sizeof(*obj));
    obj->size = size;
    snprintf(obj->etag, sizeof(obj->etag), "\"e%d\"", etag);
    snprintf(obj->content_type, sizeof(obj->content_type), "image/jpeg");
    return b;
}

static size_t hot_entries(const me_delivery_hot_t *h)
{
    size_t bytes, entries;
    me_delivery_hot_usage(h, &bytes, &entries);
    return entries;
}

static size_t hot_bytes(const me_delivery_hot_t *h)
{
    size_t bytes, entries;
    me_delivery_hot_usage(h, &bytes, &entries);
    return bytes;
}

static void test_hot_objects_trusted_for_the_ttl_then_confirmed(void **state)
{
    (void)state;
    me_delivery_object_t obj, got;
    me_delivery_hot_t *h = me_delivery_hot_new(1 << 20, 4096, 1000);
    me_delivery_blob_t *b = hot_object(3000, 'a', 1, &obj), *r;
    assert_null(me_delivery_hot_get(h, "alb", ID, "thumb.jpg", 0, &got));
    me_delivery_hot_put(h, "alb", ID, "thumb.jpg", 0, &obj, b);
    me_delivery_blob_release(b); /* the cache keeps its own reference */
    assert_int_equal(hot_entries(h), 1);

    /* within the ttl: the same bytes, whoever asks; not another file, media or album */
    assert_non_null(r = me_delivery_hot_get(h, "alb", ID, "thumb.jpg", 999, &got));
    assert_int_equal(me_delivery_blob_size(r), 3000);
    assert_int_equal(((unsigned char *)me_delivery_blob_data(r))[2999], 'a');
    assert_string_equal(got.etag, "\"e1\"");
    me_delivery_blob_release(r);
    assert_null(me_delivery_hot_get(h, "alb", ID, "small.jpg", 999, &got));
    assert_null(me_delivery_hot_get(h, "other", ID, "thumb.jpg", 999, &got));

    /* past it: storage must confirm; the same object is trusted again, another one dropped */
    assert_null(me_delivery_hot_get(h, "alb", ID, "thumb.jpg", 1000, &got));
    assert_non_null(r = me_delivery_hot_confirm(h, "alb", ID, "thumb.jpg", 1000, &obj));
    me_delivery_blob_release(r);
    assert_non_null(r = me_delivery_hot_get(h, "alb", ID, "thumb.jpg", 1999, &got));
    me_delivery_blob_release(r);
    me_delivery_object_t changed = obj;
    snprintf(changed.etag, sizeof(changed.etag), "\"e2\"");
    assert_null(me_delivery_hot_confirm(h, "alb", ID, "thumb.jpg", 2000, &changed));
    assert_int_equal(hot_entries(h), 0);
    assert_null(me_delivery_hot_get(h, "alb", ID, "thumb.jpg", 2000, &got));

    /* a ttl of 0: every request asks storage */
    me_delivery_hot_free(h);
    h = me_delivery_hot_new(1 << 20, 4096, 0);
    b = hot_object(10, 'b', 1, &obj);
    me_delivery_hot_put(h, "alb", ID, "thumb.jpg", 5, &obj, b);
    assert_null(me_delivery_hot_get(h, "alb", ID, "thumb.jpg", 5, &got));
    assert_non_null(r = me_delivery_hot_confirm(h, "alb", ID, "thumb.jpg", 5, &obj));
    me_delivery_blob_release(r);
    me_delivery_blob_release(b);
    me_delivery_hot_free(h);
    assert_null(me_delivery_hot_new(0, 4096, 1000)); /* no memory given: no cache */
    me_delivery_hot_forget(NULL, "alb", NULL);
    assert_int_equal(me_delivery_hot_object_max(NULL), 0);
}

static void test_hot_bounded_least_recently_used_out(void **state)
{
    (void)state;
    me_delivery_object_t obj, got;
    me_delivery_blob_t *b, *r, *kept;
    char id[32];
    /* room for about 10 objects of 10 KB with their entries */
    me_delivery_hot_t *h = me_delivery_hot_new(105000, 20000, 60000);
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof(id), "media%02d", i);
        b = hot_object(10000, i, i, &obj);
        me_delivery_hot_put(h, "alb", id, "small.jpg", i, &obj, b);
        if (i == 0)
            kept = b; /* a response still sending it */
        else
            me_delivery_blob_release(b);
        if (i < 9) /* media00 is used all along: it stays */
            me_delivery_blob_release(me_delivery_hot_get(h, "alb", "media00", "small.jpg", i, &got));
        assert_true(hot_bytes(h) <= 105000);
    }
    assert_true(hot_entries(h) >= 9 && hot_entries(h) <= 10);
    assert_null(me_delivery_hot_get(h, "alb", "media01", "small.jpg", 20, &got)); /* the oldest went */
    assert_non_null(r = me_delivery_hot_get(h, "alb", "media19", "small.jpg", 20, &got));
    me_delivery_blob_release(r);

    /* an evicted blob lives on while a response holds it */
    me_delivery_hot_forget(h, "alb", "media00");
    assert_null(me_delivery_hot_get(h, "alb", "media00", "small.jpg", 20, &got));
    assert_int_equal(((unsigned char *)me_delivery_blob_data(kept))[9999], 0);
    me_delivery_blob_release(kept);

    /* too large to keep: not kept */
    b = hot_object(20001, 1, 1, &obj);
    me_delivery_hot_put(h, "alb", "big", "large.jpg", 20, &obj, b);
    assert_null(me_delivery_hot_get(h, "alb", "big", "large.jpg", 20, &got));
    me_delivery_blob_release(b);
    me_delivery_hot_free(h);
}

static void test_hot_forgets_a_media_or_an_album(void **state)
{
    (void)state;
    me_delivery_object_t obj, got;
    me_delivery_hot_t *h = me_delivery_hot_new(1 << 20, 4096, 60000);
    const char *paths[][3] = {{"alb", "m1", "thumb.jpg"}, {"alb", "m1", "small.webp"}, {"alb", "m10", "thumb.jpg"},
                              {"alb", "m2", "thumb.jpg"}, {"alb2", "m1", "thumb.jpg"}, {"al", "b", "thumb.jpg"}};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        me_delivery_blob_t *b = hot_object(100, 1, 1, &obj);
        me_delivery_hot_put(h, paths[i][0], paths[i][1], paths[i][2], 0, &obj, b);
        me_delivery_blob_release(b);
    }
    assert_int_equal(hot_entries(h), 6);
    me_delivery_hot_forget(h, "alb", "m1"); /* both of m1's files; not m10, nor m1 of alb2 */
    assert_int_equal(hot_entries(h), 4);
    assert_null(me_delivery_hot_get(h, "alb", "m1", "thumb.jpg", 1, &got));
    me_delivery_blob_t *r = me_delivery_hot_get(h, "alb", "m10", "thumb.jpg", 1, &got);
    assert_non_null(r);
    me_delivery_blob_release(r);
    assert_non_null(r = me_delivery_hot_get(h, "alb2", "m1", "thumb.jpg", 1, &got));
    me_delivery_blob_release(r);
    me_delivery_hot_forget(h, "alb", NULL); /* the album: not "al" nor "alb2" */
    assert_int_equal(hot_entries(h), 2);
    assert_non_null(r = me_delivery_hot_get(h, "al", "b", "thumb.jpg", 1, &got));
    me_delivery_blob_release(r);
    me_delivery_hot_free(h);
}

/* ---- view.c ---- */

static void test_view_shows_facts_and_signed_urls_never_keys(void **state)
{
    (void)state;
    me_delivery_config_t dc;
    rsa_config(&dc);
    me_delivery_t *d = make(&dc);
    json_t *m = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s,s:b,s:{s:s,s:I,s:s,s:s,s:i,s:i},"
                          "s:{s:{s:s,s:i,s:i,s:I,s:s}}}",
                          "id", ID, "album", "a1", "owner", "u1", "ref", "order-9", "plan", "premium", "kind", "photo",
                          "status", "ready", "created_at", (json_int_t)T0, "processed_at", (json_int_t)T0 + 2,
                          "taken_at", "2021-05-01T12:34:56+02:00", "has_location", 1, "original", "key",
                          "originals/a1/" ID, "bytes", (json_int_t)12345, "sha256", "00", "content_type", "image/jpeg",
                          "width", 4032, "height", 3024, "variants", "thumb.jpg", "key", "variants/a1/" ID "/thumb.jpg",
                          "width", 320, "height", 320, "bytes", (json_int_t)999, "content_type", "image/jpeg");
    json_t *v = me_delivery_view(d, m, T0 + 10);
    assert_non_null(v);
    char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    assert_null(strstr(text, "\"key\""));
    assert_null(strstr(text, "order-9"));
    assert_null(strstr(text, "u1"));
    assert_null(strstr(text, "sha256"));
    assert_int_equal(json_integer_value(json_object_get(v, "width")), 4032);
    assert_string_equal(json_string_value(json_object_get(v, "taken_at")), "2021-05-01T12:34:56+02:00");
    const json_t *thumb = json_object_get(json_object_get(v, "variants"), "thumb.jpg");
    const char *url = json_string_value(json_object_get(thumb, "url"));
    assert_non_null(url);
    assert_true(strncmp(url, BASE "/m/a1/" ID "/thumb.jpg?Expires=1800003900&", 68) == 0);
    assert_int_equal(json_integer_value(json_object_get(thumb, "bytes")), 999);
    assert_null(json_object_get(json_object_get(v, "original"), "url"));
    assert_int_equal(json_integer_value(json_object_get(v, "urls_expire_at")), T0 + 3900);
    /* the same answer, and so the same ETag, for the rest of the step */
    char e1[ME_DELIVERY_JSON_ETAG_MAX + 1], e2[ME_DELIVERY_JSON_ETAG_MAX + 1];
    json_t *later = me_delivery_view(d, m, T0 + 250);
    char *text2 = json_dumps(later, JSON_COMPACT | JSON_SORT_KEYS);
    me_delivery_json_etag(text, strlen(text), e1);
    me_delivery_json_etag(text2, strlen(text2), e2);
    assert_string_equal(e1, e2);
    assert_int_equal(strlen(e1), 34);
    free(text);
    free(text2);
    json_decref(v);
    json_decref(later);
    me_delivery_free(d);

    dc.serve_original = 1;
    d = make(&dc);
    v = me_delivery_view(d, m, T0);
    url = json_string_value(json_object_get(json_object_get(v, "original"), "url"));
    assert_non_null(url);
    assert_true(strncmp(url, BASE "/m/a1/" ID "/original?Expires=", 56) == 0);
    json_decref(v);
    json_object_set_new(m, "status", json_string("processing"));
    v = me_delivery_view(d, m, T0);
    assert_int_equal(json_object_size(json_object_get(v, "variants")), 0);
    assert_string_equal(json_string_value(json_object_get(v, "status")), "processing");
    json_decref(v);
    json_decref(m);
    me_delivery_free(d);
}

static void test_views_cached_while_the_manifest_and_the_step_hold(void **state)
{
    (void)state;
    char etag[ME_DELIVERY_JSON_ETAG_MAX + 1], etag2[ME_DELIVERY_JSON_ETAG_MAX + 1];
    me_delivery_config_t dc;
    me_storage_t *st = open_store("views");
    rsa_config(&dc);
    me_delivery_t *d = make(&dc);
    me_delivery_views_t *v = me_delivery_views_new(d, st, 16);
    json_t *m = json_pack("{s:s,s:s,s:s,s:{s:{s:s,s:s}}}", "id", ID, "album", "a1", "status", "ready", "variants",
                          "thumb.jpg", "key", "k", "content_type", "image/jpeg");
    assert_int_equal(me_manifest_store(st, m), 0);
    char *a = NULL, *b = NULL;
    size_t alen, blen;
    assert_int_equal(me_delivery_views_get(v, ID, "a1", T0 + 1, &a, &alen, etag), 0);
    assert_int_equal(me_delivery_views_get(v, ID, "a1", T0 + 100, &b, &blen, etag2), 0); /* same step */
    assert_string_equal(a, b);
    assert_string_equal(etag, etag2);
    assert_int_equal(me_delivery_views_rendered(v), 1);
    assert_non_null(strstr(a, "thumb.jpg?Expires=1800003900&"));
    free(b);
    assert_int_equal(me_delivery_views_get(v, ID, "a2", T0 + 1, &b, &blen, etag2), ME_ENOTFOUND); /* another album */
    assert_int_equal(me_delivery_views_get(v, ID, "a1", T0 + 301, &b, &blen, etag2), 0); /* the next step */
    assert_int_equal(me_delivery_views_rendered(v), 2);
    assert_non_null(strstr(b, "thumb.jpg?Expires=1800004200&"));
    free(b);
    /* a manifest replaced is read again, at once */
    json_object_set_new(m, "status", json_string("failed"));
    assert_int_equal(me_manifest_store(st, m), 0);
    assert_int_equal(me_delivery_views_get(v, ID, "a1", T0 + 301, &b, &blen, etag2), 0);
    assert_non_null(strstr(b, "\"status\":\"failed\""));
    free(b);
    /* a deleted media is gone, cached or not */
    assert_int_equal(me_storage_delete(st, "media/" ID ".json"), 0);
    assert_int_equal(me_delivery_views_get(v, ID, "a1", T0 + 301, &b, &blen, etag2), ME_ENOTFOUND);
    free(a);
    json_decref(m);
    me_delivery_views_free(v);
    me_delivery_free(d);
    me_storage_close(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expiry_rounds_up_within_the_cap),
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_signed_file_urls_pass_the_origins_check),
        cmocka_unit_test(test_album_cookies),
        cmocka_unit_test(test_client_ip_believes_only_trusted_proxies),
        cmocka_unit_test(test_origin_secret_two_values_for_a_rotation),
        cmocka_unit_test(test_settings_refused),
        cmocka_unit_test(test_development_key_made_once_and_kept),
        cmocka_unit_test(test_plan_ranges_and_conditions),
        cmocka_unit_test(test_resolve_serves_what_the_manifest_lists),
        cmocka_unit_test(test_chunk_buffers_are_recycled_up_to_a_cap),
        cmocka_unit_test(test_hot_objects_trusted_for_the_ttl_then_confirmed),
        cmocka_unit_test(test_hot_bounded_least_recently_used_out),
        cmocka_unit_test(test_hot_forgets_a_media_or_an_album),
        cmocka_unit_test(test_view_shows_facts_and_signed_urls_never_keys),
        cmocka_unit_test(test_views_cached_while_the_manifest_and_the_step_hold),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
