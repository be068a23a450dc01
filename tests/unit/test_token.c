/* test_token.c: unit tests of server/auth/token.c (JWS verification, claims, cache, minting). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/hmac.h>
#include "server/core/b64.h"
#include "server/auth/token.h"

#define ISSUER "https://api.example.test"
#define AUDIENCE "mediaedge"
#define SECRET "test-secret-0123456789-abcdefghijklmnop"
#define T0 INT64_C(1700000000)
#define TTL 3600
#define LEEWAY_MS 30000
#define HS_HEADER "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* Built with the openssl CLI alone (not with me_token_mint), so that a bug shared by mint and
 * verify cannot hide. b64u() { basenc --base64url -w0 | tr -d '='; }, then
 *   printf '%s' "$H.$P" | openssl dgst -sha256 -sign keys/es256.pem > sig.der
 * r and s taken from `openssl asn1parse -inform DER -in sig.der`, each left-padded to 32 bytes,
 * joined, and b64u'd. The first has a whitespace-laden payload, an aud array, nbf, an unknown
 * claim (jti) and a 33-byte DER s; the second an r of 31 bytes (leading zero in r || s). Both
 * exp 1700003600. The HS256 one: openssl dgst -sha256 -mac HMAC -macopt key:$SECRET -binary. */
static const char es256_vector[] =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9."
    "eyJleHAiOjE3MDAwMDM2MDAsICJpc3MiOiJodHRwczovL2FwaS5leGFtcGxlLnRlc3QiLCAiYXVkIjpbIm90aGVy"
    "IiwibWVkaWFlZGdlIl0sICJzdWIiOiJ1c2VyXzQyIiwgInNjb3BlIjoidXBsb2FkIiwgImFsYnVtIjoiYWxidW0t"
    "NyIsICJwbGFuIjoicHJlbWl1bSIsICJjbGllbnQiOiJicm93c2VyIiwgImlhdCI6MTcwMDAwMDAwMCwgIm5iZiI6"
    "MTY5OTk5OTAwMCwgIm1heF9ieXRlcyI6MTA0ODU3NiwgInJlZiI6Im9yZGVyICMxMiIsICJqdGkiOiJ4MSJ9."
    "TBDWff19jpyvKMHi8GLVfC97wwQ71O61SUaqCBLM-Vmd3UwpzqwTbJNnWRyWLAzb4NLYiuNXVyMIgTiF3Dq_jQ";
static const char es256_vector_short_r[] =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJodHRwczovL2FwaS5leGFtcGxlLnRlc3QiLCJhdWQiOiJtZWRpYWVkZ2UiLCJzdWIiOiJzaG9ydC1y"
    "Iiwic2NvcGUiOiJ2aWV3IiwiYWxidW0iOiJhbCIsInBsYW4iOiJmcmVlIiwiZXhwIjoxNzAwMDAzNjAwfQ."
    "AIv8HyENhT40Vtv2cL6lfg8Am6qN2XpFDS08SCl4a0ScuGpE-FfRVux-SyqOd7Y5ViOptxHo8ELVVOm66lIejw";
/* The first vector's signature as the DER that openssl printed, instead of r || s. */
static const char es256_vector_der_sig[] =
    "eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9."
    "eyJleHAiOjE3MDAwMDM2MDAsICJpc3MiOiJodHRwczovL2FwaS5leGFtcGxlLnRlc3QiLCAiYXVkIjpbIm90aGVy"
    "IiwibWVkaWFlZGdlIl0sICJzdWIiOiJ1c2VyXzQyIiwgInNjb3BlIjoidXBsb2FkIiwgImFsYnVtIjoiYWxidW0t"
    "NyIsICJwbGFuIjoicHJlbWl1bSIsICJjbGllbnQiOiJicm93c2VyIiwgImlhdCI6MTcwMDAwMDAwMCwgIm5iZiI6"
    "MTY5OTk5OTAwMCwgIm1heF9ieXRlcyI6MTA0ODU3NiwgInJlZiI6Im9yZGVyICMxMiIsICJqdGkiOiJ4MSJ9."
    "MEUCIEwQ1n39fY6cryjB4vBi1Xwve8MEO9TutUlGqggSzPlZAiEAnd1MKc6sE2yTZ1kcliwM2-DS2IrjV1cjCIE4hdw6v40";
static const char hs256_vector[] =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJpc3MiOiJodHRwczovL2FwaS5leGFtcGxlLnRlc3QiLCJhdWQiOiJtZWRpYWVkZ2UiLCJzdWIiOiJ1LTEiLCJz"
    "Y29wZSI6InZpZXciLCJhbGJ1bSI6IkFfYi05IiwicGxhbiI6ImZyZWUiLCJleHAiOjE3MDAwMDM2MDB9."
    "LHgCMADYS6eUBW4HHSLN4DDsufNs0k_ucep65yPHovA";

static char es_priv[PATH_MAX], es_pub[PATH_MAX], other_pub[PATH_MAX], rsa_pub[PATH_MAX],
    rsa_priv[PATH_MAX], p384_pub[PATH_MAX];

static void key_path(char *dst, const char *file)
{
    const char *dir = getenv("MEDIAEDGE_SRCDIR");
    snprintf(dst, PATH_MAX, "%s/tests/unit/keys/%s", dir != NULL && *dir ? dir : ".", file);
}

static int group_setup(void **state)
{
    (void)state;
    key_path(es_priv, "es256.pem");
    key_path(es_pub, "es256.pub.pem");
    key_path(other_pub, "es256-other.pub.pem");
    key_path(rsa_pub, "rsa.pub.pem");
    key_path(rsa_priv, "rsa.pem");
    key_path(p384_pub, "p384.pub.pem");
    if (access(es_pub, R_OK) != 0) {
        print_error("cannot read %s: set MEDIAEDGE_SRCDIR to the source tree\n", es_pub);
        return 1;
    }
    return 0;
}

/* Every configuration make_cfg() made, freed by group_teardown(): tests copy and replace
 * them freely, and a copy shares its sections with the original. */
static me_config_t *made;
static size_t nmade;

/* c's tokens section, to set by hand. */
static me_token_settings_t *tokens(me_config_t *c)
{
    return me_config_section_mut(c, &me_token_config_section);
}

static me_config_t make_cfg(me_token_alg_t alg, int cache_entries)
{
    me_config_t c;
    me_token_settings_t *t;

    assert_non_null(made = realloc(made, (nmade + 1) * sizeof(*made)));
    assert_int_equal(me_config_defaults(&c), 0);
    t = tokens(&c);
    t->alg = alg;
    t->hs256_secret = SECRET;
    t->es256_public_key_file = es_pub;
    t->es256_private_key_file = es_priv;
    t->issuer = ISSUER;
    t->audience = AUDIENCE;
    t->leeway = LEEWAY_MS;
    t->cache_entries = cache_entries;
    made[nmade++] = c;
    return c;
}

static int group_teardown(void **state)
{
    (void)state;
    while (nmade > 0)
        me_config_free(&made[--nmade]);
    free(made);
    return 0;
}

static me_token_verifier_t *new_verifier(const me_config_t *cfg)
{
    char err[256] = "";
    me_token_verifier_t *v = me_token_verifier_new(cfg, err, sizeof err);
    if (v == NULL)
        fail_msg("me_token_verifier_new: %s", err);
    return v;
}

static me_token_claims_t sample_claims(void)
{
    me_token_claims_t c;

    memset(&c, 0, sizeof c);
    strcpy(c.sub, "user_42");
    strcpy(c.album, "album-7");
    strcpy(c.ref, "order #12 (retry)");
    c.scope = ME_SCOPE_UPLOAD;
    c.plan = ME_PLAN_PREMIUM;
    c.client = ME_CLIENT_BROWSER;
    c.max_bytes = 1048576;
    c.nbf = T0 - 10;
    return c;
}

static char *mint(const me_config_t *cfg, const me_token_claims_t *claims, int64_t now, int64_t ttl)
{
    char err[256] = "";
    char *t = me_token_mint(cfg, claims, now, ttl, err, sizeof err);
    if (t == NULL)
        fail_msg("me_token_mint: %s", err);
    return t;
}

static int verify(me_token_verifier_t *v, const char *token, int64_t now, me_token_claims_t *out)
{
    return me_token_verify(v, token, strlen(token), now, out);
}

/* One verification with a fresh verifier (cfg's algorithm, no cache). */
static int verify_once(me_token_alg_t alg, const char *token, int64_t now, me_token_claims_t *out)
{
    me_config_t cfg = make_cfg(alg, 0);
    me_token_verifier_t *v = new_verifier(&cfg);
    me_token_claims_t ignored;
    int ret = verify(v, token, now, out != NULL ? out : &ignored);
    me_token_verifier_free(v);
    return ret;
}

static char *b64(const char *s, size_t n)
{
    char *out = malloc(me_b64url_encoded_len(n) + 1);
    assert_non_null(out);
    me_b64url_encode((const unsigned char *)s, n, out);
    return out;
}

/* header.payload.HMAC-SHA256(key), built here without token.c. */
static char *craft(const char *header, const char *payload, const char *key, size_t keylen)
{
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload)), *tok, *sig;
    unsigned char mac[32];
    unsigned maclen = 0;
    size_t n = strlen(h) + strlen(p) + 64;

    assert_non_null(tok = malloc(n));
    snprintf(tok, n, "%s.%s", h, p);
    assert_non_null(HMAC(EVP_sha256(), key, (int)keylen, (unsigned char *)tok, strlen(tok), mac, &maclen));
    sig = b64((const char *)mac, maclen);
    strcat(tok, ".");
    strcat(tok, sig);
    free(h);
    free(p);
    free(sig);
    return tok;
}

static char *craft_hs(const char *header, const char *payload)
{
    return craft(header, payload, SECRET, strlen(SECRET));
}

static json_t *good_payload(void)
{
    json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "iss", ISSUER, "aud", AUDIENCE,
                          "sub", "user_42", "scope", "upload", "album", "album-7", "plan", "free",
                          "exp", (json_int_t)(T0 + 600));
    assert_non_null(p);
    return p;
}

static char *good_payload_text(void)
{
    json_t *p = good_payload();
    char *s = json_dumps(p, JSON_COMPACT);

    assert_non_null(s);
    json_decref(p);
    return s;
}

/* Verifies at T0 an HS256 token over payload (consumed). */
static int verify_payload(json_t *payload, me_token_claims_t *out)
{
    char *s = json_dumps(payload, JSON_COMPACT), *tok;
    int ret;

    assert_non_null(s);
    tok = craft_hs(HS_HEADER, s);
    ret = verify_once(ME_ALG_HS256, tok, T0, out);
    free(tok);
    free(s);
    json_decref(payload);
    return ret;
}

/* The good payload with key set to value (consumed), or removed when value is NULL. */
static int with_claim(const char *key, json_t *value)
{
    json_t *p = good_payload();

    if (value == NULL)
        json_object_del(p, key);
    else
        json_object_set_new(p, key, value);
    return verify_payload(p, NULL);
}

/* An HS256 token over the good payload under header, verified at T0. */
static int with_header(const char *header)
{
    char *s = good_payload_text(), *tok = craft_hs(header, s);
    int ret = verify_once(ME_ALG_HS256, tok, T0, NULL);

    free(tok);
    free(s);
    return ret;
}

/* Segment i of token, base64url-decoded and parsed. */
static json_t *segment_json(const char *token, int i)
{
    const char *start = token, *end;
    unsigned char buf[ME_TOKEN_MAX_LEN];
    size_t n;
    json_t *j;

    while (i-- > 0)
        start = strchr(start, '.') + 1;
    end = strchr(start, '.');
    assert_int_equal(me_b64url_decode(start, end != NULL ? (size_t)(end - start) : strlen(start), buf, &n), ME_OK);
    assert_non_null(j = json_loadb((const char *)buf, n, 0, NULL));
    return j;
}

/* The length of the signature segment, and its decoded bytes in sig. */
static size_t signature_of(const char *token, unsigned char *sig)
{
    const char *s = strrchr(token, '.') + 1;
    size_t n;

    assert_int_equal(me_b64url_decode(s, strlen(s), sig, &n), ME_OK);
    return n;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void assert_claims_equal(const me_token_claims_t *a, const me_token_claims_t *b)
{
    assert_string_equal(a->sub, b->sub);
    assert_string_equal(a->album, b->album);
    assert_string_equal(a->ref, b->ref);
    assert_int_equal(a->scope, b->scope);
    assert_int_equal(a->plan, b->plan);
    assert_int_equal(a->client, b->client);
    assert_int_equal(a->max_bytes, b->max_bytes);
    assert_int_equal(a->nbf, b->nbf);
}

/* ---- good tokens ---- */

static void test_hs256_mint_verify_roundtrip(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 16);
    me_token_verifier_t *v = new_verifier(&cfg);
    me_token_claims_t in = sample_claims(), out;
    char *tok = mint(&cfg, &in, T0, TTL);
    json_t *p;

    (void)state;
    assert_true(strncmp(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0); /* {"alg":"HS256","typ":"JWT"} */
    memset(&out, 0x5a, sizeof out);
    assert_int_equal(verify(v, tok, T0, &out), ME_OK);
    assert_claims_equal(&out, &in);
    assert_int_equal(out.exp, T0 + TTL);
    p = segment_json(tok, 1);
    assert_string_equal(json_string_value(json_object_get(p, "iss")), ISSUER);
    assert_string_equal(json_string_value(json_object_get(p, "aud")), AUDIENCE);
    assert_string_equal(json_string_value(json_object_get(p, "scope")), "upload");
    assert_string_equal(json_string_value(json_object_get(p, "plan")), "premium");
    assert_string_equal(json_string_value(json_object_get(p, "client")), "browser");
    assert_int_equal(json_integer_value(json_object_get(p, "iat")), T0);
    assert_int_equal(json_integer_value(json_object_get(p, "nbf")), T0 - 10);
    assert_int_equal(json_integer_value(json_object_get(p, "max_bytes")), 1048576);
    assert_int_equal(json_object_size(p), 12);
    json_decref(p);
    free(tok);
    me_token_verifier_free(v);
}

/* Optional claims left at zero are not written, and read back as their defaults. */
static void test_optional_claims_default(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 0);
    me_token_claims_t in = sample_claims(), out;
    char *tok;
    json_t *p;

    (void)state;
    in.ref[0] = '\0';
    in.max_bytes = 0;
    in.nbf = 0;
    in.client = ME_CLIENT_APP;
    tok = mint(&cfg, &in, T0, TTL);
    p = segment_json(tok, 1);
    assert_null(json_object_get(p, "ref"));
    assert_null(json_object_get(p, "max_bytes"));
    assert_null(json_object_get(p, "nbf"));
    assert_string_equal(json_string_value(json_object_get(p, "client")), "app");
    json_decref(p);
    assert_int_equal(verify_once(ME_ALG_HS256, tok, T0, &out), ME_OK);
    assert_claims_equal(&out, &in);
    free(tok);

    /* a token with no client at all is an app's */
    p = good_payload();
    memset(&out, 0x5a, sizeof out);
    assert_int_equal(verify_payload(p, &out), ME_OK);
    assert_int_equal(out.client, ME_CLIENT_APP);
    assert_string_equal(out.ref, "");
    assert_int_equal(out.max_bytes, 0);
    assert_int_equal(out.nbf, 0);
    assert_int_equal(out.exp, T0 + 600);
    assert_int_equal(out.plan, ME_PLAN_FREE);
}

static void test_es256_mint_verify_roundtrip(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_ES256, 16);
    me_token_verifier_t *v = new_verifier(&cfg);
    me_token_claims_t in = sample_claims(), out;
    unsigned char sig[128];
    char *tok = mint(&cfg, &in, T0, TTL);

    (void)state;
    assert_true(strncmp(tok, "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0); /* {"alg":"ES256","typ":"JWT"} */
    assert_int_equal(signature_of(tok, sig), 64);
    assert_int_equal(verify(v, tok, T0, &out), ME_OK);
    assert_claims_equal(&out, &in);
    assert_int_equal(out.exp, T0 + TTL);
    assert_int_equal(me_token_verifications(v), 1);
    free(tok);
    me_token_verifier_free(v);
}

/* Mints until both an r and an s with a leading zero byte (each about 1 in 256) have been
 * seen; they must stay 32 bytes each. */
static void test_es256_mint_pads_r_and_s(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_ES256, 0);
    me_token_verifier_t *v = new_verifier(&cfg);
    me_token_claims_t in = sample_claims(), out;
    unsigned char sig[128];
    int r_padded = 0, s_padded = 0;

    (void)state;
    for (int i = 0; i < 20000 && !(r_padded && s_padded); i++) {
        char *tok;
        snprintf(in.sub, sizeof in.sub, "u%d", i);
        tok = mint(&cfg, &in, T0, TTL);
        assert_int_equal(signature_of(tok, sig), 64);
        r_padded |= sig[0] == 0;
        s_padded |= sig[32] == 0;
        assert_int_equal(verify(v, tok, T0, &out), ME_OK);
        assert_string_equal(out.sub, in.sub);
        free(tok);
    }
    assert_true(r_padded && s_padded);
    me_token_verifier_free(v);
}

static void test_es256_independent_vectors(void **state)
{
    me_token_claims_t out;

    (void)state;
    memset(&out, 0x5a, sizeof out);
    assert_int_equal(verify_once(ME_ALG_ES256, es256_vector, T0, &out), ME_OK);
    assert_string_equal(out.sub, "user_42");
    assert_string_equal(out.album, "album-7");
    assert_string_equal(out.ref, "order #12");
    assert_int_equal(out.scope, ME_SCOPE_UPLOAD);
    assert_int_equal(out.plan, ME_PLAN_PREMIUM);
    assert_int_equal(out.client, ME_CLIENT_BROWSER);
    assert_int_equal(out.max_bytes, 1048576);
    assert_int_equal(out.exp, 1700003600);
    assert_int_equal(out.nbf, 1699999000);

    assert_int_equal(verify_once(ME_ALG_ES256, es256_vector_short_r, T0, &out), ME_OK);
    assert_string_equal(out.sub, "short-r");
    assert_string_equal(out.album, "al");
    assert_int_equal(out.scope, ME_SCOPE_VIEW);
    assert_int_equal(out.plan, ME_PLAN_FREE);
    assert_int_equal(out.client, ME_CLIENT_APP);

    /* the same signature in DER instead of r || s */
    assert_int_equal(verify_once(ME_ALG_ES256, es256_vector_der_sig, T0, &out), ME_EUNAUTHORIZED);
    /* an ES256 token where HS256 is configured */
    assert_int_equal(verify_once(ME_ALG_HS256, es256_vector, T0, &out), ME_EUNAUTHORIZED);
}

static void test_hs256_independent_vector(void **state)
{
    me_token_claims_t out;

    (void)state;
    memset(&out, 0x5a, sizeof out);
    assert_int_equal(verify_once(ME_ALG_HS256, hs256_vector, T0, &out), ME_OK);
    assert_string_equal(out.sub, "u-1");
    assert_string_equal(out.album, "A_b-9");
    assert_string_equal(out.ref, "");
    assert_int_equal(out.scope, ME_SCOPE_VIEW);
    assert_int_equal(out.plan, ME_PLAN_FREE);
    assert_int_equal(out.client, ME_CLIENT_APP);
    assert_int_equal(out.exp, 1700003600);
    assert_int_equal(verify_once(ME_ALG_ES256, hs256_vector, T0, &out), ME_EUNAUTHORIZED);
}

/* ---- time ---- */

static int verify_with_leeway(uint64_t leeway_ms, const char *tok, int64_t now)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 0);
    me_token_verifier_t *v;
    me_token_claims_t out;
    int ret;

    tokens(&cfg)->leeway = leeway_ms;
    v = new_verifier(&cfg);
    ret = verify(v, tok, now, &out);
    me_token_verifier_free(v);
    return ret;
}

static void test_expiry_and_leeway(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 0);
    me_token_claims_t in = sample_claims();
    char *tok = mint(&cfg, &in, T0, 600); /* exp = T0 + 600 */

    (void)state;
    assert_int_equal(verify_with_leeway(30000, tok, T0 + 630), ME_OK);
    assert_int_equal(verify_with_leeway(30000, tok, T0 + 631), ME_ETOKEN_EXPIRED);
    assert_int_equal(verify_with_leeway(0, tok, T0 + 600), ME_OK);
    assert_int_equal(verify_with_leeway(0, tok, T0 + 601), ME_ETOKEN_EXPIRED);
    assert_int_equal(verify_with_leeway(1999, tok, T0 + 601), ME_OK);
    assert_int_equal(verify_with_leeway(1999, tok, T0 + 602), ME_ETOKEN_EXPIRED);
    assert_int_equal(verify_with_leeway(30000, tok, T0 + 100000), ME_ETOKEN_EXPIRED);
    free(tok);
}

static void test_nbf_in_future(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 0);
    me_token_claims_t in = sample_claims();
    char *tok;

    (void)state;
    in.nbf = T0 + 100;
    tok = mint(&cfg, &in, T0, 600);
    assert_int_equal(verify_with_leeway(30000, tok, T0 + 70), ME_OK);
    assert_int_equal(verify_with_leeway(30000, tok, T0 + 69), ME_ETOKEN_EXPIRED);
    assert_int_equal(verify_with_leeway(0, tok, T0 + 99), ME_ETOKEN_EXPIRED);
    assert_int_equal(verify_with_leeway(0, tok, T0 + 100), ME_OK);
    free(tok);
}

/* ---- tampering ---- */

/* Replaces the character at offset i with another one of the alphabet. */
static void flip(char *tok, size_t i)
{
    tok[i] = tok[i] == 'A' ? 'B' : 'A';
}

static void check_tampering(me_token_alg_t alg)
{
    me_config_t cfg = make_cfg(alg, 0);
    me_token_verifier_t *v = new_verifier(&cfg);
    me_token_claims_t in = sample_claims(), out;
    char *tok = mint(&cfg, &in, T0, TTL), *copy;
    size_t payload_at = (size_t)(strchr(tok, '.') - tok) + 1, sig_at = (size_t)(strrchr(tok, '.') - tok) + 1;

    assert_non_null(copy = strdup(tok));
    flip(copy, payload_at + 10);
    assert_int_equal(verify(v, copy, T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(me_token_verifications(v), 1); /* refused by the signature check */
    strcpy(copy, tok);
    flip(copy, sig_at + 5);
    assert_int_equal(verify(v, copy, T0, &out), ME_EUNAUTHORIZED);
    strcpy(copy, tok);
    flip(copy, 3); /* the header */
    assert_int_equal(verify(v, copy, T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(verify(v, tok, T0, &out), ME_OK);
    free(copy);
    free(tok);
    me_token_verifier_free(v);
}

static void test_tampered_hs256(void **state)
{
    (void)state;
    check_tampering(ME_ALG_HS256);
}

static void test_tampered_es256(void **state)
{
    (void)state;
    check_tampering(ME_ALG_ES256);
}

static void test_wrong_es_key(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_ES256, 0);
    me_token_claims_t in = sample_claims(), out;
    me_token_verifier_t *v;
    char *tok = mint(&cfg, &in, T0, TTL);

    (void)state;
    tokens(&cfg)->es256_public_key_file = other_pub;
    v = new_verifier(&cfg);
    assert_int_equal(verify(v, tok, T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(verify(v, es256_vector, T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(me_token_verifications(v), 2);
    me_token_verifier_free(v);
    free(tok);
}

/* ---- algorithms and header ---- */

static void test_alg_none(void **state)
{
    me_config_t cfg[2] = {make_cfg(ME_ALG_HS256, 0), make_cfg(ME_ALG_ES256, 0)};
    static const char *const headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"none\",\"typ\":\"JWT\"}",
                                          "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}"};
    char *payload = good_payload_text();

    (void)state;
    for (int c = 0; c < 2; c++) {
        me_token_verifier_t *v = new_verifier(&cfg[c]);
        me_token_claims_t out;
        for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
            char *signed_tok = craft_hs(headers[i], payload), *unsigned_tok = strdup(signed_tok);
            assert_non_null(unsigned_tok);
            strrchr(unsigned_tok, '.')[1] = '\0'; /* "h.p." */
            assert_int_equal(verify(v, unsigned_tok, T0, &out), ME_EUNAUTHORIZED);
            strrchr(unsigned_tok, '.')[0] = '\0'; /* "h.p" */
            assert_int_equal(verify(v, unsigned_tok, T0, &out), ME_EUNAUTHORIZED);
            assert_int_equal(verify(v, signed_tok, T0, &out), ME_EUNAUTHORIZED);
            free(signed_tok);
            free(unsigned_tok);
        }
        assert_int_equal(me_token_verifications(v), 0);
        me_token_verifier_free(v);
    }
    free(payload);
}

/* ES256 configured: an HS256 token keyed with the public key PEM must not pass. */
static void test_alg_confusion(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_ES256, 0);
    me_token_verifier_t *v = new_verifier(&cfg);
    char *payload = good_payload_text(), pem[1024], *tok;
    me_token_claims_t out;
    FILE *f = fopen(es_pub, "r");
    size_t n;

    (void)state;
    assert_non_null(f);
    n = fread(pem, 1, sizeof pem, f);
    fclose(f);
    assert_true(n > 100);
    tok = craft(HS_HEADER, payload, pem, n);
    assert_int_equal(verify(v, tok, T0, &out), ME_EUNAUTHORIZED);
    free(tok);
    tok = craft(HS_HEADER, payload, pem, n - 1); /* without the final newline */
    assert_int_equal(verify(v, tok, T0, &out), ME_EUNAUTHORIZED);
    free(tok);
    tok = craft("{\"alg\":\"ES256\"}", payload, pem, n); /* claims ES256, carries an HMAC */
    assert_int_equal(verify(v, tok, T0, &out), ME_EUNAUTHORIZED);
    free(tok);
    assert_int_equal(me_token_verifications(v), 0);
    /* control: HS256 configured, the same construction with its own secret passes */
    tok = craft(HS_HEADER, payload, SECRET, strlen(SECRET));
    assert_int_equal(verify_once(ME_ALG_HS256, tok, T0, &out), ME_OK);
    free(tok);
    free(payload);
    me_token_verifier_free(v);
}

static void test_header_rules(void **state)
{
    static const char *const bad[] = {
        "{\"alg\":\"ES256\"}", "{\"alg\":\"hs256\"}", "{\"alg\":\"HS512\"}", "{\"alg\":\"RS256\"}",
        "{\"alg\":\"HS256 \"}", "{\"alg\":1}", "{\"alg\":[\"HS256\"]}", "{\"typ\":\"JWT\"}", "{}",
        "{\"alg\":\"HS256\",\"alg\":\"HS256\"}", "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
        "{\"alg\":\"HS256\",\"crit\":[]}", "{\"alg\":\"HS256\",\"typ\":\"jwt\"}",
        "{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", "{\"alg\":\"HS256\",\"typ\":1}", "[\"HS256\"]",
        "\"HS256\"", "{\"alg\":\"HS256\"} x", "{\"alg\":\"HS256\"",
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(with_header(bad[i]), ME_EUNAUTHORIZED);
    assert_int_equal(with_header("{\"alg\":\"HS256\"}"), ME_OK);
    assert_int_equal(with_header("{\"kid\":\"k1\",\"typ\":\"JWT\",\"alg\":\"HS256\"}"), ME_OK);
}

/* ---- claims ---- */

static void test_wrong_audience(void **state)
{
    (void)state;
    assert_int_equal(with_claim("aud", json_string("other")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("aud", json_string("Mediaedge")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("aud", json_string("mediaedge ")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("aud", json_pack("[s]", "other")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("aud", json_pack("[]")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("aud", json_pack("[s, i, s]", "other", 5, AUDIENCE)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("aud", json_integer(5)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("aud", NULL), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("aud", json_pack("[s, s]", "other", AUDIENCE)), ME_OK);
    assert_int_equal(with_claim("aud", json_pack("[s]", AUDIENCE)), ME_OK);
}

static void test_wrong_issuer(void **state)
{
    (void)state;
    assert_int_equal(with_claim("iss", json_string("https://evil.example")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("iss", json_string(ISSUER "/")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("iss", json_pack("[s]", ISSUER)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("iss", NULL), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("iss", json_string(ISSUER)), ME_OK);
}

static void test_bad_scope_plan_client(void **state)
{
    (void)state;
    assert_int_equal(with_claim("scope", json_string("admin")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("scope", json_string("Upload")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("scope", json_string("")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("scope", json_integer(1)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("scope", NULL), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("scope", json_string("view")), ME_OK);
    assert_int_equal(with_claim("plan", json_string("gold")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("plan", json_string("Free")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("plan", json_null()), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("plan", NULL), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("plan", json_string("premium")), ME_OK);
    assert_int_equal(with_claim("client", json_string("cli")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("client", json_string("App")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("client", json_null()), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("client", json_integer(2)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("client", json_string("browser")), ME_OK);
    assert_int_equal(with_claim("client", json_string("app")), ME_OK);
}

static void test_bad_ids(void **state)
{
    static const char *const keys[] = {"sub", "album"};
    char *long_id = repeat('a', ME_TOKEN_ID_MAX + 1), *max_id = repeat('a', ME_TOKEN_ID_MAX);

    (void)state;
    for (int k = 0; k < 2; k++) {
        me_token_claims_t out;
        json_t *p;
        assert_int_equal(with_claim(keys[k], json_string("../x")), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], json_string("a b")), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], json_string(" ab")), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], json_string("ab\n")), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], json_string("a/b")), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], json_string("a.b")), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], json_string("\xc3\xa9t\xc3\xa9")), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], json_string("")), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], json_string(long_id)), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], json_integer(42)), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], NULL), ME_EUNAUTHORIZED);
        assert_int_equal(with_claim(keys[k], json_string("A-z_09")), ME_OK);
        p = good_payload();
        json_object_set_new(p, keys[k], json_string(max_id));
        assert_int_equal(verify_payload(p, &out), ME_OK);
        assert_string_equal(k == 0 ? out.sub : out.album, max_id);
    }
    free(long_id);
    free(max_id);
}

static void test_ref_rules(void **state)
{
    char *max_ref = repeat('r', ME_TOKEN_REF_MAX), *long_ref = repeat('r', ME_TOKEN_REF_MAX + 1);
    me_token_claims_t out;
    json_t *p;

    (void)state;
    assert_int_equal(with_claim("ref", json_string("a\x01" "b")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("ref", json_string("a\tb")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("ref", json_string("a\nb")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("ref", json_string("a\x7f")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("ref", json_string("caf\xc3\xa9")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("ref", json_string(long_ref)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("ref", json_integer(7)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("ref", json_string("")), ME_OK);
    p = good_payload();
    json_object_set_new(p, "ref", json_string(max_ref));
    assert_int_equal(verify_payload(p, &out), ME_OK);
    assert_string_equal(out.ref, max_ref);
    p = good_payload();
    json_object_set_new(p, "ref", json_string(" !\"~{}<>'\\"));
    assert_int_equal(verify_payload(p, &out), ME_OK);
    assert_string_equal(out.ref, " !\"~{}<>'\\");
    free(max_ref);
    free(long_ref);
}

static void test_max_bytes_rules(void **state)
{
    me_token_claims_t out;
    json_t *p;

    (void)state;
    assert_int_equal(with_claim("max_bytes", json_integer(-1)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("max_bytes", json_real(1.5)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("max_bytes", json_real(1000.0)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("max_bytes", json_string("10")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("max_bytes", json_true()), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("max_bytes", json_integer(0)), ME_OK);
    p = good_payload();
    json_object_set_new(p, "max_bytes", json_integer(5000000000LL));
    assert_int_equal(verify_payload(p, &out), ME_OK);
    assert_int_equal(out.max_bytes, 5000000000ULL);
}

static void test_time_claims_malformed(void **state)
{
    (void)state;
    assert_int_equal(with_claim("exp", NULL), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("exp", json_string("1700000600")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("exp", json_real(1700000600.0)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("exp", json_integer(-1)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("exp", json_integer(INT64_MAX)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("exp", json_null()), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("nbf", json_string("0")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("nbf", json_integer(-5)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("nbf", json_real(1.0)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("iat", json_string("x")), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("iat", json_integer(-1)), ME_EUNAUTHORIZED);
    assert_int_equal(with_claim("nbf", json_integer(T0 - 1)), ME_OK);
    assert_int_equal(with_claim("iat", json_integer(T0)), ME_OK);
}

static void test_payload_malformed(void **state)
{
    static const char *const bad[] = {"[]", "\"x\"", "{", "null", ""};
    json_t *p = good_payload();
    char *s = json_dumps(p, JSON_COMPACT), buf[1024], *tok;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tok = craft_hs(HS_HEADER, bad[i]);
        assert_int_equal(verify_once(ME_ALG_HS256, tok, T0, NULL), ME_EUNAUTHORIZED);
        free(tok);
    }
    snprintf(buf, sizeof buf, "%s x", s); /* trailing garbage */
    tok = craft_hs(HS_HEADER, buf);
    assert_int_equal(verify_once(ME_ALG_HS256, tok, T0, NULL), ME_EUNAUTHORIZED);
    free(tok);
    snprintf(buf, sizeof buf, "{\"sub\":\"other\",%s", s + 1); /* sub twice */
    tok = craft_hs(HS_HEADER, buf);
    assert_int_equal(verify_once(ME_ALG_HS256, tok, T0, NULL), ME_EUNAUTHORIZED);
    free(tok);
    tok = craft_hs(HS_HEADER, s); /* control */
    assert_int_equal(verify_once(ME_ALG_HS256, tok, T0, NULL), ME_OK);
    free(tok);
    free(s);
    json_decref(p);
}

/* ---- shape, before any crypto ---- */

/* An HS256 token padded with an unknown claim to exactly len characters. */
static char *token_of_length(size_t len)
{
    for (size_t n = 0; n < len; n++) {
        json_t *p = good_payload();
        char *pad = repeat('x', n), *s, *tok = NULL;
        json_object_set_new(p, "pad", json_string(pad));
        s = json_dumps(p, JSON_COMPACT);
        if (me_b64url_encoded_len(strlen(HS_HEADER)) + 1 + me_b64url_encoded_len(strlen(s)) + 1 + 43 == len)
            tok = craft_hs(HS_HEADER, s);
        free(s);
        free(pad);
        json_decref(p);
        if (tok != NULL) {
            assert_int_equal(strlen(tok), len);
            return tok;
        }
    }
    fail_msg("no token of length %zu", len);
    return NULL;
}

static void test_token_length_limit(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 0);
    me_token_verifier_t *v = new_verifier(&cfg);
    char *at_max = token_of_length(ME_TOKEN_MAX_LEN), *over = token_of_length(ME_TOKEN_MAX_LEN + 1);
    me_token_claims_t out;

    (void)state;
    assert_int_equal(verify(v, over, T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(me_token_verifications(v), 0);
    assert_int_equal(verify(v, at_max, T0, &out), ME_OK);
    assert_int_equal(me_token_verifications(v), 1);
    free(at_max);
    free(over);
    me_token_verifier_free(v);
}

static void test_segment_count(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 0);
    me_token_verifier_t *v = new_verifier(&cfg);
    me_token_claims_t in = sample_claims(), out;
    char *tok = mint(&cfg, &in, T0, TTL), buf[2048];
    const char *dot2 = strrchr(tok, '.');

    (void)state;
    assert_int_equal(verify(v, "", T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(verify(v, ".", T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(verify(v, "..", T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(verify(v, "...", T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(verify(v, "eyJh.eyJh", T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(me_token_verify(v, NULL, 0, T0, &out), ME_EUNAUTHORIZED);
    snprintf(buf, sizeof buf, "%s.", tok); /* 4 segments, the last empty */
    assert_int_equal(verify(v, buf, T0, &out), ME_EUNAUTHORIZED);
    snprintf(buf, sizeof buf, "%s.%s", tok, dot2 + 1); /* 4 segments */
    assert_int_equal(verify(v, buf, T0, &out), ME_EUNAUTHORIZED);
    snprintf(buf, sizeof buf, ".%s", tok);
    assert_int_equal(verify(v, buf, T0, &out), ME_EUNAUTHORIZED);
    snprintf(buf, sizeof buf, "%.*s", (int)(dot2 - tok), tok); /* 2 segments */
    assert_int_equal(verify(v, buf, T0, &out), ME_EUNAUTHORIZED);
    snprintf(buf, sizeof buf, "%s", strchr(tok, '.')); /* empty header */
    assert_int_equal(verify(v, buf, T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(me_token_verifications(v), 0);
    assert_int_equal(verify(v, tok, T0, &out), ME_OK);
    free(tok);
    me_token_verifier_free(v);
}

/* '=' at the end of any segment, or '+' '/', is not base64url and costs no crypto. */
static void test_padding_and_alphabet(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 0);
    me_token_verifier_t *v = new_verifier(&cfg);
    me_token_claims_t in = sample_claims(), out;
    char *tok = mint(&cfg, &in, T0, TTL), buf[2048];
    size_t len = strlen(tok), cut[3] = {(size_t)(strchr(tok, '.') - tok), (size_t)(strrchr(tok, '.') - tok), len};

    (void)state;
    for (int i = 0; i < 3; i++) {
        snprintf(buf, sizeof buf, "%.*s=%s", (int)cut[i], tok, tok + cut[i]);
        assert_int_equal(verify(v, buf, T0, &out), ME_EUNAUTHORIZED);
        snprintf(buf, sizeof buf, "%.*s==%s", (int)cut[i], tok, tok + cut[i]);
        assert_int_equal(verify(v, buf, T0, &out), ME_EUNAUTHORIZED);
    }
    strcpy(buf, tok);
    buf[cut[0] + 4] = '+';
    assert_int_equal(verify(v, buf, T0, &out), ME_EUNAUTHORIZED);
    strcpy(buf, tok);
    buf[cut[1] + 4] = '/';
    assert_int_equal(verify(v, buf, T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(me_token_verifications(v), 0);
    free(tok);
    me_token_verifier_free(v);
}

/* ---- cache ---- */

static void test_cache_verifies_once(void **state)
{
    me_token_alg_t algs[2] = {ME_ALG_HS256, ME_ALG_ES256};

    (void)state;
    for (int a = 0; a < 2; a++) {
        me_config_t cfg = make_cfg(algs[a], 16);
        me_token_verifier_t *v = new_verifier(&cfg), *nocache;
        me_token_claims_t in = sample_claims(), out1, out2;
        char *tok = mint(&cfg, &in, T0, TTL);

        assert_int_equal(verify(v, tok, T0, &out1), ME_OK);
        memset(&out2, 0x5a, sizeof out2);
        assert_int_equal(verify(v, tok, T0 + 1, &out2), ME_OK);
        assert_int_equal(me_token_verifications(v), 1);
        assert_claims_equal(&out2, &in);
        assert_int_equal(out2.exp, out1.exp);
        tokens(&cfg)->cache_entries = 0;
        nocache = new_verifier(&cfg);
        assert_int_equal(verify(nocache, tok, T0, &out1), ME_OK);
        assert_int_equal(verify(nocache, tok, T0, &out1), ME_OK);
        assert_int_equal(me_token_verifications(nocache), 2);
        me_token_verifier_free(nocache);
        me_token_verifier_free(v);
        free(tok);
    }
}

/* A cached token still expires, and is still not valid before its nbf. */
static void test_cache_respects_time(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 16);
    me_token_verifier_t *v = new_verifier(&cfg);
    me_token_claims_t in = sample_claims(), out;
    char *tok;

    (void)state;
    in.nbf = T0 + 100;
    tok = mint(&cfg, &in, T0, 600);
    assert_int_equal(verify(v, tok, T0 + 100, &out), ME_OK);
    assert_int_equal(verify(v, tok, T0 + 631, &out), ME_ETOKEN_EXPIRED);
    assert_int_equal(verify(v, tok, T0 + 69, &out), ME_ETOKEN_EXPIRED);
    assert_int_equal(verify(v, tok, T0 + 630, &out), ME_OK);
    assert_int_equal(me_token_verifications(v), 1);
    free(tok);
    me_token_verifier_free(v);
}

static void test_cache_keeps_no_failures(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 16);
    me_token_verifier_t *v = new_verifier(&cfg);
    me_token_claims_t in = sample_claims(), out;
    char *tok = mint(&cfg, &in, T0, 600), *bad = strdup(tok);

    (void)state;
    assert_non_null(bad);
    flip(bad, strlen(bad) - 10);
    assert_int_equal(verify(v, bad, T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(verify(v, bad, T0, &out), ME_EUNAUTHORIZED);
    assert_int_equal(me_token_verifications(v), 2);
    assert_int_equal(verify(v, tok, T0 + 10000, &out), ME_ETOKEN_EXPIRED);
    assert_int_equal(verify(v, tok, T0 + 10000, &out), ME_ETOKEN_EXPIRED);
    assert_int_equal(me_token_verifications(v), 4);
    free(bad);
    free(tok);
    me_token_verifier_free(v);
}

/* One slot: tokens evict each other and never get each other's claims. */
static void test_cache_collisions(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 1);
    me_token_verifier_t *v = new_verifier(&cfg);
    me_token_claims_t a = sample_claims(), b = sample_claims(), out;
    char *ta, *tb;

    (void)state;
    strcpy(b.sub, "bob");
    b.plan = ME_PLAN_FREE;
    ta = mint(&cfg, &a, T0, TTL);
    tb = mint(&cfg, &b, T0, TTL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(verify(v, ta, T0, &out), ME_OK);
        assert_claims_equal(&out, &a);
        assert_int_equal(verify(v, tb, T0, &out), ME_OK);
        assert_claims_equal(&out, &b);
    }
    assert_int_equal(me_token_verifications(v), 4);
    assert_int_equal(verify(v, tb, T0, &out), ME_OK);
    assert_int_equal(me_token_verifications(v), 4);
    assert_int_equal(verify(v, ta, T0, &out), ME_OK);
    assert_int_equal(me_token_verifications(v), 5);
    free(ta);
    free(tb);
    me_token_verifier_free(v);
}

#define THREADS 4
#define THREAD_TOKENS 16

typedef struct {
    me_token_verifier_t *v;
    char **tokens;
    int seed;
    int wrong;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;

    for (int i = 0; i < 300; i++) {
        int k = (i * 7 + w->seed) % THREAD_TOKENS;
        me_token_claims_t out;
        char want[16];
        snprintf(want, sizeof want, "user%d", k);
        if (verify(w->v, w->tokens[k], T0, &out) != ME_OK || strcmp(out.sub, want) != 0)
            w->wrong++;
    }
    return NULL;
}

static void test_cache_concurrent(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_HS256, 8);
    me_token_verifier_t *v = new_verifier(&cfg);
    char *tokens[THREAD_TOKENS];
    pthread_t th[THREADS];
    worker_t w[THREADS];

    (void)state;
    for (int k = 0; k < THREAD_TOKENS; k++) {
        me_token_claims_t c = sample_claims();
        snprintf(c.sub, sizeof c.sub, "user%d", k);
        tokens[k] = mint(&cfg, &c, T0, TTL);
    }
    for (int t = 0; t < THREADS; t++) {
        w[t] = (worker_t){v, tokens, t, 0};
        assert_int_equal(pthread_create(&th[t], NULL, worker, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) /* all joined before any assertion leaves this frame */
        pthread_join(th[t], NULL);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(w[t].wrong, 0);
    assert_in_range(me_token_verifications(v), THREAD_TOKENS, THREADS * 300);
    for (int k = 0; k < THREAD_TOKENS; k++)
        free(tokens[k]);
    me_token_verifier_free(v);
}

/* ---- construction and minting errors ---- */

static void expect_no_verifier(const me_config_t *cfg, const char *needle)
{
    char err[512] = "";

    assert_null(me_token_verifier_new(cfg, err, sizeof err));
    if (strstr(err, needle) == NULL)
        fail_msg("err \"%s\" lacks \"%s\"", err, needle);
    assert_null(strstr(err, SECRET));
}

static void test_verifier_refuses_bad_keys(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_ES256, 0);
    char missing[PATH_MAX + 16];

    (void)state;
    tokens(&cfg)->es256_public_key_file = rsa_pub;
    expect_no_verifier(&cfg, "not an EC P-256 key (it is RSA)");
    tokens(&cfg)->es256_public_key_file = p384_pub;
    expect_no_verifier(&cfg, "not an EC P-256 key (it is EC secp384r1)");
    snprintf(missing, sizeof missing, "%s.missing", es_pub);
    tokens(&cfg)->es256_public_key_file = missing;
    expect_no_verifier(&cfg, "cannot open");
    tokens(&cfg)->es256_public_key_file = es_priv; /* a private key where the public one goes */
    expect_no_verifier(&cfg, "no unencrypted PEM public key");
    tokens(&cfg)->es256_public_key_file = NULL;
    expect_no_verifier(&cfg, "token_es256_public_key_file is not set");
    cfg = make_cfg(ME_ALG_HS256, 0);
    tokens(&cfg)->hs256_secret = "short-secret-of-31-bytes-123456";
    expect_no_verifier(&cfg, "at least 32 bytes");
    tokens(&cfg)->hs256_secret = NULL;
    expect_no_verifier(&cfg, "at least 32 bytes");
    cfg = make_cfg(ME_ALG_HS256, 0);
    tokens(&cfg)->issuer = "";
    expect_no_verifier(&cfg, "token_issuer");
    cfg = make_cfg((me_token_alg_t)7, 0);
    expect_no_verifier(&cfg, "token_alg");
}

static void expect_no_token(const me_config_t *cfg, const me_token_claims_t *c, int64_t ttl, const char *needle)
{
    char err[512] = "";

    assert_null(me_token_mint(cfg, c, T0, ttl, err, sizeof err));
    if (strstr(err, needle) == NULL)
        fail_msg("err \"%s\" lacks \"%s\"", err, needle);
    assert_null(strstr(err, SECRET));
}

static void test_mint_refuses(void **state)
{
    me_config_t cfg = make_cfg(ME_ALG_ES256, 0);
    me_token_claims_t c = sample_claims();

    (void)state;
    strcpy(c.sub, "../x");
    expect_no_token(&cfg, &c, TTL, "sub");
    c = sample_claims();
    c.album[0] = '\0';
    expect_no_token(&cfg, &c, TTL, "album");
    c = sample_claims();
    strcpy(c.ref, "a\x01");
    expect_no_token(&cfg, &c, TTL, "ref");
    c = sample_claims();
    c.scope = (me_scope_t)0;
    expect_no_token(&cfg, &c, TTL, "scope");
    c = sample_claims();
    expect_no_token(&cfg, &c, 0, "ttl");
    tokens(&cfg)->es256_private_key_file = rsa_priv;
    expect_no_token(&cfg, &c, TTL, "not an EC P-256 key");
    cfg = make_cfg(ME_ALG_HS256, 0);
    tokens(&cfg)->hs256_secret = "short";
    expect_no_token(&cfg, &c, TTL, "at least 32 bytes");
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(me_token_scope_name(ME_SCOPE_UPLOAD), "upload");
    assert_string_equal(me_token_scope_name(ME_SCOPE_VIEW), "view");
    assert_string_equal(me_token_plan_name(ME_PLAN_FREE), "free");
    assert_string_equal(me_token_plan_name(ME_PLAN_PREMIUM), "premium");
    assert_string_equal(me_token_client_name(ME_CLIENT_APP), "app");
    assert_string_equal(me_token_client_name(ME_CLIENT_BROWSER), "browser");
    assert_null(me_token_scope_name((me_scope_t)0));
    assert_null(me_token_plan_name((me_plan_t)3));
    assert_null(me_token_client_name((me_client_t)-1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256_mint_verify_roundtrip),
        cmocka_unit_test(test_optional_claims_default),
        cmocka_unit_test(test_es256_mint_verify_roundtrip),
        cmocka_unit_test(test_es256_mint_pads_r_and_s),
        cmocka_unit_test(test_es256_independent_vectors),
        cmocka_unit_test(test_hs256_independent_vector),
        cmocka_unit_test(test_expiry_and_leeway),
        cmocka_unit_test(test_nbf_in_future),
        cmocka_unit_test(test_tampered_hs256),
        cmocka_unit_test(test_tampered_es256),
        cmocka_unit_test(test_wrong_es_key),
        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_alg_confusion),
        cmocka_unit_test(test_header_rules),
        cmocka_unit_test(test_wrong_audience),
        cmocka_unit_test(test_wrong_issuer),
        cmocka_unit_test(test_bad_scope_plan_client),
        cmocka_unit_test(test_bad_ids),
        cmocka_unit_test(test_ref_rules),
        cmocka_unit_test(test_max_bytes_rules),
        cmocka_unit_test(test_time_claims_malformed),
        cmocka_unit_test(test_payload_malformed),
        cmocka_unit_test(test_token_length_limit),
        cmocka_unit_test(test_segment_count),
        cmocka_unit_test(test_padding_and_alphabet),
        cmocka_unit_test(test_cache_verifies_once),
        cmocka_unit_test(test_cache_respects_time),
        cmocka_unit_test(test_cache_keeps_no_failures),
        cmocka_unit_test(test_cache_collisions),
        cmocka_unit_test(test_cache_concurrent),
        cmocka_unit_test(test_verifier_refuses_bad_keys),
        cmocka_unit_test(test_mint_refuses),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
