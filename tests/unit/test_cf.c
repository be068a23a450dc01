/* test_cf.c: unit tests of server/delivery/cf.c and cf_policy.c: CloudFront's base64 and
 * policies, URLs and cookies compared string for string with botocore's CloudFrontSigner and
 * @aws-sdk/cloudfront-signer, ECDSA and SHA-256 signatures checked by the openssl CLI, and
 * verification refusing what CloudFront refuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "server/delivery/cf.h"

#define T0 INT64_C(1800000000)
#define URL "https://cdn.example.com/m/album-7/AbCdEfGhIjKlMnOpQrStUv/thumb.jpg"
#define KEY_ID "K2JCJMDEHXQW5F"
#define LIT(s) s, sizeof(s) - 1

static char srcdir[PATH_MAX], rsa_key[PATH_MAX], rsa_pub[PATH_MAX], ec_key[PATH_MAX], ec_pub[PATH_MAX],
    other_ec_key[PATH_MAX], tmpdir[PATH_MAX], rsa2_key[PATH_MAX], rsa4096_key[PATH_MAX];

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    char cmd[4 * PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

static int group_setup(void **state)
{
    (void)state;
    const char *dir = getenv("MEDIAEDGE_SRCDIR");
    snprintf(srcdir, sizeof(srcdir), "%s", dir && *dir ? dir : ".");
    snprintf(rsa_key, sizeof(rsa_key), "%s/tests/unit/keys/rsa.pem", srcdir);
    snprintf(rsa_pub, sizeof(rsa_pub), "%s/tests/unit/keys/rsa.pub.pem", srcdir);
    snprintf(ec_key, sizeof(ec_key), "%s/tests/unit/keys/es256.pem", srcdir);
    snprintf(ec_pub, sizeof(ec_pub), "%s/tests/unit/keys/es256.pub.pem", srcdir);
    snprintf(other_ec_key, sizeof(other_ec_key), "%s/tests/unit/keys/es256-other.pem", srcdir);
    if (access(rsa_key, R_OK) != 0) {
        print_error("cannot read %s: set MEDIAEDGE_SRCDIR to the source tree\n", rsa_key);
        return 1;
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/me-test-cf-XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    /* keys that only these tests need are made now, not committed */
    snprintf(rsa2_key, sizeof(rsa2_key), "%s/rsa2.pem", tmpdir);
    snprintf(rsa4096_key, sizeof(rsa4096_key), "%s/rsa4096.pem", tmpdir);
    if (run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s 2>/dev/null", rsa2_key) != 0 ||
        run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out %s 2>/dev/null", rsa4096_key) != 0)
        return 1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    run("rm -rf %s", tmpdir);
    return 0;
}

static me_cf_t *make(const char *active, int n, ...)
{
    me_cf_conf_t conf = {.nkeys = n, .active = active, .cache_entries = 64};
    char err[256] = "";
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        conf.keys[i].id = va_arg(ap, const char *);
        conf.keys[i].pem_file = va_arg(ap, const char *);
        conf.keys[i].hash = (me_cf_hash_t)va_arg(ap, int);
    }
    va_end(ap);
    me_cf_t *cf = me_cf_new(&conf, err, sizeof(err));
    if (cf == NULL)
        print_error("me_cf_new: %s\n", err);
    return cf;
}

/* ---- base64, policies, wildcards, ranges ---- */

static void test_b64_uses_cloudfronts_alphabet(void **state)
{
    (void)state;
    const unsigned char bytes[] = {0xfb, 0xff, 0xbf, 0x3e}; /* standard: "+/+/Pg==" */
    char out[16];
    unsigned char back[16];
    size_t n;
    assert_int_equal(me_cf_b64_encode(bytes, sizeof(bytes), out), 8);
    assert_string_equal(out, "-~-~Pg__");
    assert_int_equal(me_cf_b64_decode(out, 8, back, &n), 0);
    assert_int_equal(n, sizeof(bytes));
    assert_memory_equal(back, bytes, n);
    assert_int_equal(me_cf_b64_decode("-~-~Pg", 6, back, &n), 0); /* padding optional */
    assert_int_equal(n, 4);
    assert_int_equal(me_cf_b64_decode("+/+/Pg==", 8, back, &n), ME_EINVAL); /* the standard alphabet is not ours */
    assert_int_equal(me_cf_b64_decode("ab_c", 4, back, &n), ME_EINVAL);    /* a pad inside */
    assert_int_equal(me_cf_b64_decode("abcde", 5, back, &n), ME_EINVAL);
}

static void test_policy_json_as_cloudfront_documents_it(void **state)
{
    (void)state;
    char out[ME_CF_POLICY_MAX + 1];
    me_cf_policy_t p = {.resource = URL, .date_less_than = T0};
    assert_false(me_cf_policy_needs_custom(&p));
    assert_true(me_cf_policy_json(&p, 1, out, sizeof(out)) > 0);
    assert_string_equal(out, "{\"Statement\":[{\"Resource\":\"" URL "\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":"
                             "1800000000}}}]}");
    p = (me_cf_policy_t){.resource = "https://cdn.example.com/m/album-7/*", .date_less_than = T0,
                         .date_greater_than = T0 - 60, .ip_address = "192.0.2.0/24"};
    assert_true(me_cf_policy_needs_custom(&p));
    assert_true(me_cf_policy_json(&p, 0, out, sizeof(out)) > 0);
    assert_string_equal(out, "{\"Statement\":[{\"Resource\":\"https://cdn.example.com/m/album-7/*\",\"Condition\":{"
                             "\"DateLessThan\":{\"AWS:EpochTime\":1800000000},\"DateGreaterThan\":{\"AWS:EpochTime\":"
                             "1799999940},\"IpAddress\":{\"AWS:SourceIp\":\"192.0.2.0/24\"}}}]}");
    p = (me_cf_policy_t){.resource = URL, .date_less_than = T0, .ip_address = "2001:db8::1"};
    assert_true(me_cf_policy_json(&p, 0, out, sizeof(out)) > 0);
    assert_non_null(strstr(out, "\"AWS:SourceIp\":\"2001:db8::1/128\""));
    /* what JSON would escape, and what makes no policy */
    const char *bad[] = {"https://x/\"a", "https://x/a\\b", "https://x/a b", "https://x/\xc3\xa9", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = (me_cf_policy_t){.resource = bad[i], .date_less_than = T0};
        assert_int_equal(me_cf_policy_json(&p, 1, out, sizeof(out)), 0);
    }
    p = (me_cf_policy_t){.resource = URL, .date_less_than = T0, .ip_address = "300.1.1.1"};
    assert_int_equal(me_cf_policy_json(&p, 0, out, sizeof(out)), 0);
    p = (me_cf_policy_t){.resource = URL};
    assert_int_equal(me_cf_policy_json(&p, 1, out, sizeof(out)), 0);
    p = (me_cf_policy_t){.resource = URL, .date_less_than = T0};
    assert_int_equal(me_cf_policy_json(&p, 1, out, 40), 0);
}

static void test_policy_parse_takes_only_what_cloudfront_takes(void **state)
{
    (void)state;
    me_cf_parsed_policy_t pp;
    const char *good = "{\"Statement\":[{\"Resource\":\"https://x/m/a/*\",\"Condition\":{\"IpAddress\":{\"AWS:SourceIp\":"
                       "\"10.0.0.0/8\"},\"DateLessThan\":{\"AWS:EpochTime\":1800000000},\"DateGreaterThan\":{"
                       "\"AWS:EpochTime\":1700000000}}}]}";
    assert_int_equal(me_cf_policy_parse(good, strlen(good), &pp), 0);
    assert_string_equal(pp.resource, "https://x/m/a/*");
    assert_true(pp.date_less_than == T0 && pp.date_greater_than == INT64_C(1700000000) && pp.has_ip);
    /* whitespace is fine: the signature covers the bytes, the parse only reads them */
    const char *spaced = "{ \"Statement\" : [ { \"Resource\" : \"https://x/a\", \"Condition\" : { \"DateLessThan\" : "
                         "{ \"AWS:EpochTime\" : 1800000000 } } } ] }";
    assert_int_equal(me_cf_policy_parse(spaced, strlen(spaced), &pp), 0);
    assert_false(pp.has_ip);
    const char *bad[] = {
        "", "[]", "{\"Statement\":[]}", "not json",
        /* two statements */
        "{\"Statement\":[{\"Resource\":\"a\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":1}}},"
        "{\"Resource\":\"b\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":1}}}]}",
        /* no DateLessThan */
        "{\"Statement\":[{\"Resource\":\"a\",\"Condition\":{\"DateGreaterThan\":{\"AWS:EpochTime\":1}}}]}",
        /* a date as a string, as a float */
        "{\"Statement\":[{\"Resource\":\"a\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":\"1\"}}}]}",
        "{\"Statement\":[{\"Resource\":\"a\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":1.5}}}]}",
        /* an unknown condition, a duplicate key, an extra member, a bad range */
        "{\"Statement\":[{\"Resource\":\"a\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":1},\"Other\":{}}}]}",
        "{\"Statement\":[{\"Resource\":\"a\",\"Resource\":\"b\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":1}}}]}",
        "{\"Statement\":[{\"Resource\":\"a\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":1}},\"Effect\":1}]}",
        "{\"Statement\":[{\"Resource\":\"a\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":1},\"IpAddress\":{"
        "\"AWS:SourceIp\":\"1.2.3.4/33\"}}}]}",
        /* a NUL inside the resource */
        "{\"Statement\":[{\"Resource\":\"a\\u0000b\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":1}}}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(me_cf_policy_parse(bad[i], strlen(bad[i]), &pp), ME_EINVAL);
}

static void test_resource_wildcards(void **state)
{
    (void)state;
    const char *u = "https://cdn.example.com/m/album-7/id/thumb.jpg";
    size_t n = strlen(u);
    assert_true(me_cf_resource_matches(u, u, n));
    assert_true(me_cf_resource_matches("https://cdn.example.com/m/album-7/*", u, n));
    assert_true(me_cf_resource_matches("*", u, n));
    assert_true(me_cf_resource_matches("http*://cdn.example.com/*/thumb.???", u, n));
    assert_true(me_cf_resource_matches("https://cdn.example.com/m/album-7/id/thumb.jpg*", u, n));
    assert_false(me_cf_resource_matches("https://cdn.example.com/m/album-70/*", u, n));
    assert_false(me_cf_resource_matches("https://cdn.example.com/m/album-7/id/thumb.jp", u, n));
    assert_false(me_cf_resource_matches("https://cdn.example.com/m/album-7/id/thumb.jpgx", u, n));
    assert_false(me_cf_resource_matches("https://cdn.example.com/m/album-7/id/thumb.jpg?", u, n));
    assert_false(me_cf_resource_matches("", u, n));
    /* a hostile pattern costs steps, not a stack or exponential time */
    char pat[1024], text[2048];
    for (size_t i = 0; i < sizeof(pat) - 2; i++)
        pat[i] = i % 2 ? '*' : 'a';
    pat[sizeof(pat) - 2] = 'b';
    pat[sizeof(pat) - 1] = '\0';
    memset(text, 'a', sizeof(text));
    assert_false(me_cf_resource_matches(pat, text, sizeof(text)));
}

static void test_cidr(void **state)
{
    (void)state;
    me_cf_cidr_t c;
    unsigned char a4[4], a6[16];
    assert_int_equal(me_cf_cidr_parse(LIT("192.0.2.0/24"), &c), 0);
    inet_pton(AF_INET, "192.0.2.77", a4);
    assert_true(me_cf_cidr_contains(&c, AF_INET, a4));
    inet_pton(AF_INET, "192.0.3.1", a4);
    assert_false(me_cf_cidr_contains(&c, AF_INET, a4));
    inet_pton(AF_INET6, "::ffff:192.0.2.9", a6); /* an IPv4 client on a dual-stack socket */
    assert_true(me_cf_cidr_contains(&c, AF_INET6, a6));
    assert_int_equal(me_cf_cidr_parse(LIT("203.0.113.5"), &c), 0);
    assert_int_equal(c.prefix, 32);
    assert_int_equal(me_cf_cidr_parse(LIT("2001:db8::/32"), &c), 0);
    inet_pton(AF_INET6, "2001:db8:1::1", a6);
    assert_true(me_cf_cidr_contains(&c, AF_INET6, a6));
    inet_pton(AF_INET6, "2001:db9::1", a6);
    assert_false(me_cf_cidr_contains(&c, AF_INET6, a6));
    assert_false(me_cf_cidr_contains(&c, AF_INET, a4));
    assert_int_equal(me_cf_cidr_parse(LIT("0.0.0.0/0"), &c), 0);
    assert_true(me_cf_cidr_contains(&c, AF_INET, a4));
    const char *bad[] = {"", "1.2.3", "1.2.3.4/", "1.2.3.4/33", "1.2.3.4/-1", "1.2.3.4/08", "::/129", "x", "1.2.3.4 "};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(me_cf_cidr_parse(bad[i], strlen(bad[i]), &c), ME_EINVAL);
}

/* ---- the reference signers ---- */

/* Runs a reference signer (cmd, a shell command) on the request req (JSON, passed in $CF_REQ)
 * and returns its JSON answer, or NULL. */
static json_t *reference(const char *cmd, json_t *req)
{
    char *text = json_dumps(req, JSON_COMPACT), out[16384];
    setenv("CF_REQ", text, 1);
    free(text);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return NULL;
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    if (pclose(f) != 0)
        return NULL;
    return json_loads(out, 0, NULL);
}

static json_t *botocore(json_t *req)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s/tests/unit/cf_reference/botocore_sign.py'", srcdir);
    return reference(cmd, req);
}

static json_t *aws_sdk(json_t *req)
{
    char cmd[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "cd '%s/tests/integration/node' && node cf_sign.mjs", srcdir);
    return reference(cmd, req);
}

static int have_references(void)
{
    char path[2 * PATH_MAX];
    snprintf(path, sizeof(path), "%s/tests/integration/node/node_modules/@aws-sdk/cloudfront-signer", srcdir);
    return access(path, R_OK) == 0 && system("/usr/bin/python3 -c 'import botocore' 2>/dev/null") == 0;
}

/* The SDK writes Key-Pair-Id before Signature, botocore (and CloudFront's documentation)
 * after: no URL can equal both. Ours has botocore's order; this puts a URL's three signing
 * parameters in that order, so that the SDK's URL can be compared byte for byte too. */
static void botocore_order(const char *url, char *out, size_t len)
{
    const char *q = strchr(url, '?');
    const char *kp = strstr(url, "&Key-Pair-Id="), *sig = strstr(url, "&Signature="), *ha = strstr(url, "&Hash-Algorithm=");
    assert_non_null(q);
    assert_non_null(kp);
    assert_non_null(sig);
    assert_true(kp < sig);
    size_t kplen = (size_t)(sig - kp), siglen = (size_t)((ha != NULL ? ha : url + strlen(url)) - sig);
    snprintf(out, len, "%.*s%.*s%.*s%s", (int)(kp - url), url, (int)siglen, sig, (int)kplen, kp, ha != NULL ? ha : "");
}

typedef struct {
    const char *url, *resource, *ip;
    int64_t dgt;
    int not_botocore; /* with both conditions botocore writes IpAddress before DateGreaterThan */
} case_t;

static void test_urls_and_cookies_equal_botocore_and_the_aws_sdk(void **state)
{
    (void)state;
    if (!have_references()) {
        print_message("botocore or @aws-sdk/cloudfront-signer missing (./bootstrap check installs them)\n");
        skip();
    }
    me_cf_t *cf = make(NULL, 1, KEY_ID, rsa_key, ME_CF_HASH_DEFAULT);
    assert_non_null(cf);
    const case_t cases[] = {
        {URL, NULL, NULL, 0},                                        /* canned */
        {URL "?w=1&x=a-b", NULL, NULL, 0},                           /* canned, the URL has a query */
        {URL, NULL, "192.0.2.0/24", 0},                              /* custom: an IP range */
        {URL, NULL, "198.51.100.7", 0},                              /* custom: one address (/32 added) */
        {URL, NULL, NULL, T0 - 3600},                                /* custom: DateGreaterThan */
        {URL, NULL, "192.0.2.0/24", T0 - 3600, 1},                   /* custom: both, in the documented order */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const case_t *c = &cases[i];
        char ours[ME_CF_URL_MAX], theirs[ME_CF_URL_MAX];
        me_cf_policy_t p = {.resource = c->resource, .date_less_than = T0, .date_greater_than = c->dgt, .ip_address = c->ip};
        me_cf_cookies_t ck;
        assert_int_equal(me_cf_sign_url(cf, c->url, &p, ours, sizeof(ours)), 0);
        p.resource = c->url;
        assert_int_equal(me_cf_sign_cookies(cf, &p, &ck), 0);
        json_t *req = json_pack("{s:s,s:s,s:s,s:I}", "key", rsa_key, "key_id", KEY_ID, "url", c->url, "expires",
                                (json_int_t)T0);
        if (c->ip != NULL)
            json_object_set_new(req, "ip_address", json_string(c->ip));
        if (c->dgt != 0)
            json_object_set_new(req, "date_greater_than", json_integer(c->dgt));
        json_t *b = botocore(req), *s = aws_sdk(req);
        assert_non_null(b);
        assert_non_null(s);
        if (!c->not_botocore)
            assert_string_equal(ours, json_string_value(json_object_get(b, "url")));
        botocore_order(json_string_value(json_object_get(s, "url")), theirs, sizeof(theirs));
        assert_string_equal(ours, theirs);
        json_t *cookies = json_object_get(s, "cookies");
        assert_string_equal(ck.signature, json_string_value(json_object_get(cookies, "CloudFront-Signature")));
        if (!c->not_botocore)
            assert_string_equal(ck.signature, json_string_value(json_object_get(b, "signature")));
        assert_string_equal(ck.key_pair_id, json_string_value(json_object_get(cookies, "CloudFront-Key-Pair-Id")));
        assert_null(json_object_get(cookies, "CloudFront-Hash-Algorithm"));
        if (me_cf_policy_needs_custom(&p)) {
            assert_string_equal(ck.policy, json_string_value(json_object_get(cookies, "CloudFront-Policy")));
            if (!c->not_botocore)
                assert_string_equal(ck.policy, json_string_value(json_object_get(b, "policy")));
            assert_string_equal(ck.expires, "");
        } else {
            char expires[24];
            snprintf(expires, sizeof(expires), "%" PRId64, T0);
            assert_int_equal(json_integer_value(json_object_get(cookies, "CloudFront-Expires")), T0);
            assert_string_equal(ck.expires, expires);
            assert_string_equal(ck.policy, "");
        }
        json_decref(req);
        json_decref(b);
        json_decref(s);
    }
    me_cf_free(cf);
}

/* An album's cookies: a custom policy over a wildcard. Neither reference builds a wildcard
 * policy with only DateLessThan (the SDK would make it canned, which CloudFront reads as a
 * literal '*'), so they sign our policy text and botocore builds the same text. */
static void test_wildcard_cookies_equal_the_references(void **state)
{
    (void)state;
    if (!have_references())
        skip();
    me_cf_t *cf = make(NULL, 1, KEY_ID, rsa_key, ME_CF_HASH_DEFAULT);
    me_cf_policy_t p = {.resource = "https://cdn.example.com/m/album-7/*", .date_less_than = T0};
    me_cf_cookies_t ck;
    char json[ME_CF_POLICY_MAX + 1];
    assert_int_equal(me_cf_sign_cookies(cf, &p, &ck), 0);
    assert_true(me_cf_policy_json(&p, 0, json, sizeof(json)) > 0);
    json_t *req = json_pack("{s:s,s:s,s:s,s:s,s:I}", "key", rsa_key, "key_id", KEY_ID, "url", URL, "resource",
                            p.resource, "expires", (json_int_t)T0);
    json_t *b = botocore(req);
    json_object_set_new(req, "policy", json_string(json));
    json_t *s = aws_sdk(req);
    assert_non_null(b);
    assert_non_null(s);
    json_t *cookies = json_object_get(s, "cookies");
    assert_string_equal(ck.policy, json_string_value(json_object_get(b, "policy")));
    assert_string_equal(ck.signature, json_string_value(json_object_get(b, "signature")));
    assert_string_equal(ck.policy, json_string_value(json_object_get(cookies, "CloudFront-Policy")));
    assert_string_equal(ck.signature, json_string_value(json_object_get(cookies, "CloudFront-Signature")));
    json_decref(req);
    json_decref(b);
    json_decref(s);
    me_cf_free(cf);
}

/* botocore has no SHA-256; the SDK does (algorithm: "SHA256"). */
static void test_rsa_sha256_equals_the_aws_sdk(void **state)
{
    (void)state;
    if (!have_references())
        skip();
    me_cf_t *cf = make(NULL, 1, KEY_ID, rsa_key, ME_CF_SHA256);
    char ours[ME_CF_URL_MAX], theirs[ME_CF_URL_MAX];
    me_cf_policy_t p = {.date_less_than = T0};
    me_cf_cookies_t ck;
    assert_int_equal(me_cf_sign_url(cf, URL, &p, ours, sizeof(ours)), 0);
    assert_non_null(strstr(ours, "&Hash-Algorithm=SHA256"));
    p.resource = URL;
    assert_int_equal(me_cf_sign_cookies(cf, &p, &ck), 0);
    json_t *req = json_pack("{s:s,s:s,s:s,s:I,s:s}", "key", rsa_key, "key_id", KEY_ID, "url", URL, "expires",
                            (json_int_t)T0, "algorithm", "SHA256");
    json_t *s = aws_sdk(req);
    assert_non_null(s);
    botocore_order(json_string_value(json_object_get(s, "url")), theirs, sizeof(theirs));
    assert_string_equal(ours, theirs);
    json_t *cookies = json_object_get(s, "cookies");
    assert_string_equal(ck.signature, json_string_value(json_object_get(cookies, "CloudFront-Signature")));
    assert_string_equal(ck.hash_algorithm, json_string_value(json_object_get(cookies, "CloudFront-Hash-Algorithm")));
    json_decref(req);
    json_decref(s);
    me_cf_free(cf);
}

/* ---- the openssl CLI checks what no reference signer makes ---- */

/* Writes the policy and the decoded signature of a cookie set to files and asks openssl. */
static int openssl_verifies(const me_cf_cookies_t *ck, const me_cf_policy_t *p, const char *pub, const char *dgst)
{
    char json[ME_CF_POLICY_MAX + 1], path[PATH_MAX + 16], sigpath[PATH_MAX + 16];
    unsigned char sig[ME_CF_SIGNATURE_B64_MAX];
    size_t siglen, len = me_cf_policy_json(p, ck->expires[0] != '\0', json, sizeof(json));
    assert_true(len > 0);
    assert_int_equal(me_cf_b64_decode(ck->signature, strlen(ck->signature), sig, &siglen), 0);
    snprintf(path, sizeof(path), "%s/policy.json", tmpdir);
    snprintf(sigpath, sizeof(sigpath), "%s/policy.sig", tmpdir);
    FILE *f = fopen(path, "w");
    fwrite(json, 1, len, f);
    fclose(f);
    f = fopen(sigpath, "w");
    fwrite(sig, 1, siglen, f);
    fclose(f);
    return run("openssl dgst -%s -verify %s -signature %s %s >/dev/null 2>&1", dgst, pub, sigpath, path) == 0;
}

static void test_ecdsa_and_sha256_verify_with_openssl(void **state)
{
    (void)state;
    me_cf_policy_t p = {.resource = "https://cdn.example.com/m/album-7/*", .date_less_than = T0};
    me_cf_cookies_t ck, again;
    me_cf_t *cf = make(NULL, 1, "EC1", ec_key, ME_CF_HASH_DEFAULT);
    assert_non_null(cf);
    assert_int_equal(me_cf_active_hash(cf), ME_CF_SHA256); /* ECDSA signs with SHA-256 unless told */
    assert_int_equal(me_cf_sign_cookies(cf, &p, &ck), 0);
    assert_string_equal(ck.hash_algorithm, "SHA256");
    assert_true(openssl_verifies(&ck, &p, ec_pub, "sha256"));
    assert_false(openssl_verifies(&ck, &p, ec_pub, "sha1"));
    /* ECDSA is not deterministic: the cache is what keeps a URL stable within a process */
    assert_int_equal(me_cf_sign_cookies(cf, &p, &again), 0);
    assert_string_equal(again.signature, ck.signature);
    assert_int_equal(me_cf_signatures(cf), 1);
    me_cf_free(cf);

    cf = make(NULL, 1, "RSA256", rsa_key, ME_CF_SHA256);
    assert_int_equal(me_cf_sign_cookies(cf, &p, &ck), 0);
    assert_true(openssl_verifies(&ck, &p, rsa_pub, "sha256"));
    me_cf_free(cf);
    cf = make(NULL, 1, "RSA1", rsa_key, ME_CF_HASH_DEFAULT);
    p.resource = URL;
    assert_int_equal(me_cf_sign_cookies(cf, &p, &ck), 0);
    assert_string_equal(ck.expires, "1800000000");
    assert_null(ck.hash_algorithm);
    assert_true(openssl_verifies(&ck, &p, rsa_pub, "sha1"));
    me_cf_free(cf);
}

/* ---- verification ---- */

/* Splits a signed URL into the resource and its proof (pointing into url). */
static size_t split(const char *url, me_cf_proof_t *proof)
{
    memset(proof, 0, sizeof(*proof));
    const char *q = strchr(url, '?'), *p = q + 1;
    size_t resource_len = (size_t)(q - url);
    while (*p != '\0') {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        me_cf_value_t v = {eq + 1, n - (size_t)(eq + 1 - p)};
        size_t klen = (size_t)(eq - p);
        if (klen == 7 && !memcmp(p, "Expires", 7))
            proof->expires = v;
        else if (klen == 6 && !memcmp(p, "Policy", 6))
            proof->policy = v;
        else if (klen == 9 && !memcmp(p, "Signature", 9))
            proof->signature = v;
        else if (klen == 11 && !memcmp(p, "Key-Pair-Id", 11))
            proof->key_pair_id = v;
        else if (klen == 14 && !memcmp(p, "Hash-Algorithm", 14))
            proof->hash_algorithm = v;
        else
            resource_len = (size_t)(p + n - url); /* a query of the resource's own, first in our URLs */
        p += n + (p[n] == '&');
    }
    return resource_len;
}

static void test_verify_accepts_good_and_refuses_the_rest(void **state)
{
    (void)state;
    me_cf_t *cf = make(NULL, 1, KEY_ID, rsa_key, ME_CF_HASH_DEFAULT);
    char url[ME_CF_URL_MAX];
    me_cf_proof_t proof;
    unsigned char ip[4];
    inet_pton(AF_INET, "192.0.2.10", ip);

    me_cf_policy_t canned = {.date_less_than = T0};
    assert_int_equal(me_cf_sign_url(cf, URL, &canned, url, sizeof(url)), 0);
    size_t n = split(url, &proof);
    assert_int_equal(n, strlen(URL));
    assert_int_equal(me_cf_verify(cf, URL, n, &proof, AF_INET, ip, T0 - 1), ME_CF_VALID);
    assert_int_equal(me_cf_verify(cf, URL, n, &proof, AF_INET, ip, T0), ME_CF_EXPIRED);
    assert_int_equal(me_cf_verify(cf, URL "x", n + 1, &proof, AF_INET, ip, T0 - 1), ME_CF_BAD_SIGNATURE);
    me_cf_proof_t later = proof;
    later.expires = (me_cf_value_t){"1900000000", 10}; /* a longer life, not signed */
    assert_int_equal(me_cf_verify(cf, URL, n, &later, AF_INET, ip, T0 - 1), ME_CF_BAD_SIGNATURE);
    me_cf_proof_t sha256 = proof;
    sha256.hash_algorithm = (me_cf_value_t){"SHA256", 6};
    assert_int_equal(me_cf_verify(cf, URL, n, &sha256, AF_INET, ip, T0 - 1), ME_CF_BAD_SIGNATURE);
    sha256.hash_algorithm = (me_cf_value_t){"MD5", 3};
    assert_int_equal(me_cf_verify(cf, URL, n, &sha256, AF_INET, ip, T0 - 1), ME_CF_MALFORMED);

    /* a custom policy over the album, from one range, not before a time */
    me_cf_policy_t custom = {.resource = "https://cdn.example.com/m/album-7/*", .date_less_than = T0,
                             .date_greater_than = T0 - 100, .ip_address = "192.0.2.0/24"};
    assert_int_equal(me_cf_sign_url(cf, URL, &custom, url, sizeof(url)), 0);
    n = split(url, &proof);
    assert_int_equal(me_cf_verify(cf, URL, n, &proof, AF_INET, ip, T0 - 1), ME_CF_VALID);
    const char *other = "https://cdn.example.com/m/album-7/OtherMediaIdxxxxxxxxxx/small.webp";
    assert_int_equal(me_cf_verify(cf, other, strlen(other), &proof, AF_INET, ip, T0 - 1), ME_CF_VALID);
    const char *elsewhere = "https://cdn.example.com/m/album-8/AbCdEfGhIjKlMnOpQrStUv/thumb.jpg";
    assert_int_equal(me_cf_verify(cf, elsewhere, strlen(elsewhere), &proof, AF_INET, ip, T0 - 1), ME_CF_WRONG_RESOURCE);
    assert_int_equal(me_cf_verify(cf, URL, n, &proof, AF_INET, ip, T0 - 100), ME_CF_NOT_YET_VALID);
    assert_int_equal(me_cf_verify(cf, URL, n, &proof, AF_INET, ip, T0), ME_CF_EXPIRED);
    unsigned char far[4];
    inet_pton(AF_INET, "198.51.100.1", far);
    assert_int_equal(me_cf_verify(cf, URL, n, &proof, AF_INET, far, T0 - 1), ME_CF_WRONG_IP);
    assert_int_equal(me_cf_verify(cf, URL, n, &proof, 0, NULL, T0 - 1), ME_CF_WRONG_IP);

    /* tampering: any byte of the policy or the signature */
    char copy[ME_CF_URL_MAX];
    me_cf_proof_t t;
    for (int which = 0; which < 2; which++)
        for (size_t at = 0; at < 300; at += 7) {
            memcpy(copy, url, strlen(url) + 1);
            split(copy, &t);
            me_cf_value_t *v = which ? &t.signature : &t.policy;
            if (at >= v->len)
                break;
            char *c = (char *)v->v + at;
            *c = *c == 'A' ? 'B' : 'A';
            me_cf_verdict_t got = me_cf_verify(cf, URL, n, &t, AF_INET, ip, T0 - 1);
            assert_true(got == ME_CF_BAD_SIGNATURE || got == ME_CF_MALFORMED);
        }

    /* incomplete or ambiguous proofs */
    memset(&t, 0, sizeof(t));
    assert_int_equal(me_cf_verify(cf, URL, n, &t, AF_INET, ip, T0 - 1), ME_CF_MISSING);
    t = proof;
    t.signature.v = NULL;
    assert_int_equal(me_cf_verify(cf, URL, n, &t, AF_INET, ip, T0 - 1), ME_CF_MALFORMED);
    t = proof;
    t.expires = (me_cf_value_t){"1800000000", 10};
    assert_int_equal(me_cf_verify(cf, URL, n, &t, AF_INET, ip, T0 - 1), ME_CF_MALFORMED);
    t = proof;
    t.key_pair_id = (me_cf_value_t){"KOTHER", 6};
    assert_int_equal(me_cf_verify(cf, URL, n, &t, AF_INET, ip, T0 - 1), ME_CF_UNKNOWN_KEY);
    t = proof;
    t.policy = (me_cf_value_t){"e30_", 4}; /* "{}" */
    assert_int_equal(me_cf_verify(cf, URL, n, &t, AF_INET, ip, T0 - 1), ME_CF_BAD_SIGNATURE);
    me_cf_free(cf);
}

static void test_rotation_signs_with_the_active_key_and_accepts_any(void **state)
{
    (void)state;
    char url_old[ME_CF_URL_MAX], url_new[ME_CF_URL_MAX];
    me_cf_proof_t proof;
    me_cf_policy_t p = {.date_less_than = T0};
    me_cf_t *before = make(NULL, 1, "KOLD", rsa_key, ME_CF_HASH_DEFAULT);
    assert_int_equal(me_cf_sign_url(before, URL, &p, url_old, sizeof(url_old)), 0);
    /* the new key signs; the old one (its public half is enough) still verifies */
    me_cf_t *during = make("KNEW", 3, "KOLD", rsa_pub, ME_CF_HASH_DEFAULT, "KNEW", rsa2_key, ME_CF_HASH_DEFAULT, "KEC",
                           ec_key, ME_CF_HASH_DEFAULT);
    assert_non_null(during);
    assert_string_equal(me_cf_active_id(during), "KNEW");
    assert_int_equal(me_cf_sign_url(during, URL, &p, url_new, sizeof(url_new)), 0);
    assert_non_null(strstr(url_new, "&Key-Pair-Id=KNEW"));
    size_t n = split(url_old, &proof);
    assert_int_equal(me_cf_verify(during, URL, n, &proof, 0, NULL, T0 - 1), ME_CF_VALID);
    n = split(url_new, &proof);
    assert_int_equal(me_cf_verify(during, URL, n, &proof, 0, NULL, T0 - 1), ME_CF_VALID);
    assert_int_equal(me_cf_verify(before, URL, n, &proof, 0, NULL, T0 - 1), ME_CF_UNKNOWN_KEY);
    /* a signature of one key presented under another's id */
    char forged[ME_CF_URL_MAX];
    snprintf(forged, sizeof(forged), "%s", url_new);
    memcpy(strstr(forged, "KNEW"), "KOLD", 4);
    n = split(forged, &proof);
    assert_int_equal(me_cf_verify(during, URL, n, &proof, 0, NULL, T0 - 1), ME_CF_BAD_SIGNATURE);
    me_cf_free(before);
    me_cf_free(during);
}

static void test_signatures_and_verifications_are_cached(void **state)
{
    (void)state;
    me_cf_t *cf = make(NULL, 1, KEY_ID, rsa_key, ME_CF_HASH_DEFAULT);
    char a[ME_CF_URL_MAX], b[ME_CF_URL_MAX];
    me_cf_policy_t p = {.date_less_than = T0};
    me_cf_proof_t proof;
    assert_int_equal(me_cf_sign_url(cf, URL, &p, a, sizeof(a)), 0);
    assert_int_equal(me_cf_sign_url(cf, URL, &p, b, sizeof(b)), 0);
    assert_string_equal(a, b);
    assert_int_equal(me_cf_signatures(cf), 1);
    p.date_less_than = T0 + 300;
    assert_int_equal(me_cf_sign_url(cf, URL, &p, b, sizeof(b)), 0);
    assert_int_equal(me_cf_signatures(cf), 2);
    size_t n = split(a, &proof);
    for (int i = 0; i < 3; i++)
        assert_int_equal(me_cf_verify(cf, URL, n, &proof, 0, NULL, T0 - 1), ME_CF_VALID);
    assert_int_equal(me_cf_verifications(cf), 1);
    me_cf_free(cf);
}

static void test_keys_cloudfront_would_refuse_are_refused(void **state)
{
    (void)state;
    char err[256], p384[PATH_MAX + 32], missing[PATH_MAX + 32];
    snprintf(p384, sizeof(p384), "%s/tests/unit/keys/p384.pub.pem", srcdir);
    snprintf(missing, sizeof(missing), "%s/none.pem", tmpdir);
    struct {
        me_cf_conf_t conf;
        const char *says;
    } cases[] = {
        {{.nkeys = 1, .keys = {{"K1", rsa4096_key, 0}}}, "RSA-2048 or ECDSA P-256"},
        {{.nkeys = 1, .keys = {{"K1", p384, 0}}}, "RSA-2048 or ECDSA P-256"},
        {{.nkeys = 1, .keys = {{"K1", missing, 0}}}, "cannot read"},
        {{.nkeys = 1, .keys = {{"K 1", rsa_key, 0}}}, "key id"},
        {{.nkeys = 2, .keys = {{"K1", rsa_key, 0}, {"K1", ec_key, 0}}}, "twice"},
        {{.nkeys = 1, .keys = {{"K1", rsa_pub, 0}}}, "private key"},
        {{.nkeys = 1, .active = "K2", .keys = {{"K1", rsa_key, 0}}}, "not among"},
        {{.nkeys = 0}, "between 1 and"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err[0] = '\0';
        assert_null(me_cf_new(&cases[i].conf, err, sizeof(err)));
        if (strstr(err, cases[i].says) == NULL)
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].says);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_uses_cloudfronts_alphabet),
        cmocka_unit_test(test_policy_json_as_cloudfront_documents_it),
        cmocka_unit_test(test_policy_parse_takes_only_what_cloudfront_takes),
        cmocka_unit_test(test_resource_wildcards),
        cmocka_unit_test(test_cidr),
        cmocka_unit_test(test_urls_and_cookies_equal_botocore_and_the_aws_sdk),
        cmocka_unit_test(test_wildcard_cookies_equal_the_references),
        cmocka_unit_test(test_rsa_sha256_equals_the_aws_sdk),
        cmocka_unit_test(test_ecdsa_and_sha256_verify_with_openssl),
        cmocka_unit_test(test_verify_accepts_good_and_refuses_the_rest),
        cmocka_unit_test(test_rotation_signs_with_the_active_key_and_accepts_any),
        cmocka_unit_test(test_signatures_and_verifications_are_cached),
        cmocka_unit_test(test_keys_cloudfront_would_refuse_are_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
