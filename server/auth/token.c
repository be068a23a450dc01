/* token.c: verifies (and, for development, mints) the app backend's compact JWS tokens:
 * one algorithm pinned by configuration, strict claims, a cache of verified tokens. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include "server/core/b64.h"
#include "server/core/metrics.h"
#include "server/auth/token.h"

ME_COUNTER(signature_checks, "mediaedge_token_signature_checks_total",
           "Token signatures checked (tokens found in the cache need none).", NULL)

/* 9999-12-31T23:59:59Z. Bounding exp/nbf/iat (and the leeway) keeps the time sums exact. */
#define TOKEN_TIME_MAX INT64_C(253402300799)
#define HS256_SIG_LEN 32
#define ES256_SIG_LEN 64         /* r || s, each 32 bytes big-endian */
#define ES256_COORD_LEN 32
#define HS256_SECRET_MIN 32      /* RFC 7518 section 3.2: at least the size of the hash */
#define CACHE_SHARDS 16
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#define NAME_OF(table, i) ((size_t)(i) < COUNT_OF(table) ? (table)[(size_t)(i)] : NULL)

/* Index 0 is never a valid scope, plan or client: name_index() uses it for "not found". */
static const char *const scope_names[] = {
    [ME_SCOPE_UPLOAD] = "upload", [ME_SCOPE_VIEW] = "view", [ME_SCOPE_ADMIN] = "admin", [ME_SCOPE_MONTAGE] = "montage"};
static const char *const plan_names[] = {[ME_PLAN_FREE] = "free", [ME_PLAN_PREMIUM] = "premium"};
static const char *const client_names[] = {[ME_CLIENT_APP] = "app",
                                           [ME_CLIENT_BROWSER] = "browser"};
static const char *const alg_names[] = {[ME_ALG_HS256] = "HS256", [ME_ALG_ES256] = "ES256"};

typedef struct {
    unsigned char digest[SHA256_DIGEST_LENGTH]; /* of the token; the token itself is not kept */
    int used;
    me_token_claims_t claims;
} cache_slot_t;

struct me_token_verifier {
    me_token_alg_t alg;
    EVP_PKEY *pkey;                /* ES256 */
    unsigned char *secret;         /* HS256 */
    size_t secret_len;
    char *issuer;
    char *audience;
    int64_t leeway;                /* seconds */
    cache_slot_t *cache;           /* direct-mapped; slot i is guarded by shards[i % CACHE_SHARDS] */
    size_t cache_len;
    pthread_mutex_t shards[CACHE_SHARDS];
    _Atomic uint64_t verifications;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* sub and album: [A-Za-z0-9_-]{1,64}, so they are safe in paths, keys and logs. */
static int valid_id(const char *s, size_t n)
{
    if (n == 0 || n > ME_TOKEN_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* ref: printable ASCII, possibly empty (empty means absent). */
static int valid_ref(const char *s, size_t n)
{
    if (n > ME_TOKEN_REF_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return 0;
    return 1;
}

static int string_is(const json_t *j, const char *s)
{
    size_t n = strlen(s);
    return json_is_string(j) && json_string_length(j) == n && memcmp(json_string_value(j), s, n) == 0;
}

/* The index of s in names, or 0 when it is none of them. */
static int name_index(const char *const *names, size_t count, const json_t *s)
{
    for (size_t i = 1; i < count; i++)
        if (names[i] != NULL && string_is(s, names[i]))
            return (int)i;
    return 0;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0; /* an encrypted key is an error, never a prompt on the terminal */
}

/* Reads an EC P-256 key (the private one when private_key) from the PEM file at path.
 * Returns NULL with err set when it cannot be read or is of another type or curve. */
static EVP_PKEY *load_p256_key(const char *path, int private_key, char *err, size_t errlen)
{
    const char *setting = private_key ? "token_es256_private_key_file" : "token_es256_public_key_file";
    char group[64] = "";
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;

    if (path == NULL || *path == '\0') {
        set_err(err, errlen, "%s is not set", setting);
        goto out;
    }
    errno = 0;
    if ((bio = BIO_new_file(path, "r")) == NULL) {
        set_err(err, errlen, "%s: cannot open %s: %s", setting, path,
                errno ? strerror(errno) : "unknown error");
        goto out;
    }
    pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
                       : PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    if (pkey == NULL) {
        set_err(err, errlen, "%s: %s holds no unencrypted PEM %s key", setting, path,
                private_key ? "private" : "public");
        goto out;
    }
    if (!EVP_PKEY_is_a(pkey, "EC") || EVP_PKEY_get_group_name(pkey, group, sizeof group, NULL) != 1 ||
        strcmp(group, "prime256v1") != 0) {
        const char *type = EVP_PKEY_get0_type_name(pkey);
        set_err(err, errlen, "%s: %s is not an EC P-256 key (it is %s%s%s)", setting, path,
                type != NULL ? type : "unknown", *group ? " " : "", group);
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    BIO_free(bio);
    ERR_clear_error();
    return pkey;
}

static int issuer_and_audience_set(const me_token_settings_t *ts)
{
    return ts->issuer != NULL && *ts->issuer != '\0' && ts->audience != NULL &&
           *ts->audience != '\0';
}

/* Points *key at the configured HS256 secret. ME_ECONFIG with err set when it is missing or
 * too short to be a 256-bit key. */
static int hs256_secret(const me_token_settings_t *ts, const unsigned char **key, size_t *len, char *err,
                        size_t errlen)
{
    size_t n = ts->hs256_secret != NULL ? strlen(ts->hs256_secret) : 0;

    if (n < HS256_SECRET_MIN || n > INT_MAX) {
        set_err(err, errlen, "token_hs256_secret must be at least %d bytes", HS256_SECRET_MIN);
        return ME_ECONFIG;
    }
    *key = (const unsigned char *)ts->hs256_secret;
    *len = n;
    return ME_OK;
}

static int hs256(const unsigned char *key, size_t keylen, const char *data, size_t len,
                 unsigned char mac[HS256_SIG_LEN])
{
    unsigned int maclen = 0;

    if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, len, mac, &maclen) == NULL ||
        maclen != HS256_SIG_LEN) {
        ERR_clear_error();
        return ME_EINTERNAL;
    }
    return ME_OK;
}

/* JWS carries r || s; OpenSSL verifies DER, built here so that it has one encoding only. */
static int es256_verify(EVP_PKEY *pkey, const char *data, size_t len,
                        const unsigned char sig[ES256_SIG_LEN])
{
    BIGNUM *r = BN_bin2bn(sig, ES256_COORD_LEN, NULL);
    BIGNUM *s = BN_bin2bn(sig + ES256_COORD_LEN, ES256_COORD_LEN, NULL);
    ECDSA_SIG *es = ECDSA_SIG_new();
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    int derlen, ret = ME_EUNAUTHORIZED;

    if (r == NULL || s == NULL || es == NULL || ctx == NULL || ECDSA_SIG_set0(es, r, s) != 1)
        goto out;
    r = s = NULL; /* es owns them */
    if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0)
        goto out;
    if (EVP_DigestVerifyInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) == 1 &&
        EVP_DigestVerify(ctx, der, (size_t)derlen, (const unsigned char *)data, len) == 1)
        ret = ME_OK;
out:
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    ECDSA_SIG_free(es);
    BN_free(r);
    BN_free(s);
    ERR_clear_error();
    return ret;
}

static int es256_sign(EVP_PKEY *pkey, const char *data, size_t len,
                      unsigned char sig[ES256_SIG_LEN])
{
    unsigned char der[128]; /* a P-256 DER signature is at most 72 bytes */
    size_t derlen = sizeof der;
    const unsigned char *p = der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ECDSA_SIG *es = NULL;
    const BIGNUM *r, *s;
    int ret = ME_EINTERNAL;

    if (ctx == NULL || EVP_DigestSignInit_ex(ctx, NULL, "SHA256", NULL, NULL, pkey, NULL) != 1 ||
        EVP_DigestSign(ctx, der, &derlen, (const unsigned char *)data, len) != 1 ||
        (es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL)
        goto out;
    ECDSA_SIG_get0(es, &r, &s);
    if (BN_bn2binpad(r, sig, ES256_COORD_LEN) == ES256_COORD_LEN &&
        BN_bn2binpad(s, sig + ES256_COORD_LEN, ES256_COORD_LEN) == ES256_COORD_LEN)
        ret = ME_OK;
out:
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ret;
}

/* The signature check proper; counts itself. input is "header.payload" as sent. */
static int check_signature(me_token_verifier_t *v, const char *input, size_t len,
                           const unsigned char *sig, size_t sig_len)
{
    unsigned char mac[HS256_SIG_LEN];
    int ok;

    if (sig_len != (v->alg == ME_ALG_ES256 ? ES256_SIG_LEN : HS256_SIG_LEN))
        return ME_EUNAUTHORIZED;
    atomic_fetch_add_explicit(&v->verifications, 1, memory_order_relaxed);
    me_metric_add(signature_checks, NULL, 1);
    if (v->alg == ME_ALG_ES256)
        return es256_verify(v->pkey, input, len, sig);
    ok = hs256(v->secret, v->secret_len, input, len, mac) == ME_OK &&
         CRYPTO_memcmp(mac, sig, HS256_SIG_LEN) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return ok ? ME_OK : ME_EUNAUTHORIZED;
}

/* Splits token into exactly three non-empty segments. */
static int split_jws(const char *token, size_t len, const char *seg[3], size_t seg_len[3])
{
    size_t start = 0, n = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && token[i] != '.')
            continue;
        if (n == 3 || i == start)
            return ME_EUNAUTHORIZED;
        seg[n] = token + start;
        seg_len[n++] = i - start;
        start = i + 1;
    }
    return n == 3 ? ME_OK : ME_EUNAUTHORIZED;
}

static int check_header(const me_token_verifier_t *v, const unsigned char *h, size_t n)
{
    json_t *hdr = json_loadb((const char *)h, n, JSON_REJECT_DUPLICATES, NULL);
    json_t *typ = json_object_get(hdr, "typ");
    int ok = json_is_object(hdr) && json_object_get(hdr, "crit") == NULL &&
             (typ == NULL || string_is(typ, "JWT")) &&
             string_is(json_object_get(hdr, "alg"), alg_names[v->alg]);

    json_decref(hdr);
    return ok ? ME_OK : ME_EUNAUTHORIZED;
}

/* An integer claim in [min, max]; absent gives 0, which is an error when required. */
static int get_int(const json_t *obj, const char *key, int required, json_int_t min, json_int_t max,
                   json_int_t *out)
{
    const json_t *j = json_object_get(obj, key);

    *out = 0;
    if (j == NULL)
        return required ? ME_EUNAUTHORIZED : ME_OK;
    if (!json_is_integer(j))
        return ME_EUNAUTHORIZED;
    *out = json_integer_value(j);
    return *out >= min && *out <= max ? ME_OK : ME_EUNAUTHORIZED;
}

/* A string claim copied into dst; absent is "", which valid() decides on like any value. */
static int get_text(const json_t *obj, const char *key, int (*valid)(const char *, size_t),
                    char *dst, size_t dstlen)
{
    const json_t *j = json_object_get(obj, key);
    size_t n;

    dst[0] = '\0';
    if (j == NULL)
        return valid(dst, 0) ? ME_OK : ME_EUNAUTHORIZED;
    if (!json_is_string(j) || (n = json_string_length(j)) >= dstlen || !valid(json_string_value(j), n))
        return ME_EUNAUTHORIZED;
    memcpy(dst, json_string_value(j), n + 1);
    return ME_OK;
}

/* An enumerated claim; absent gives dflt, which is an error when 0. */
static int get_enum(const json_t *obj, const char *key, const char *const *names, size_t count,
                    int dflt, int *out)
{
    const json_t *j = json_object_get(obj, key);

    *out = j == NULL ? dflt : name_index(names, count, j);
    return *out != 0 ? ME_OK : ME_EUNAUTHORIZED;
}

/* aud is the configured audience, or an array of strings that contains it. */
static int audience_ok(const json_t *aud, const char *want)
{
    const json_t *e;
    size_t i;
    int found = 0;

    if (json_is_string(aud))
        return string_is(aud, want);
    if (!json_is_array(aud))
        return 0;
    json_array_foreach(aud, i, e) {
        if (!json_is_string(e))
            return 0;
        found |= string_is(e, want);
    }
    return found;
}

static int parse_claims(const me_token_verifier_t *v, const unsigned char *p, size_t n,
                        me_token_claims_t *out)
{
    json_t *c = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL);
    json_int_t exp, nbf, iat, max_bytes;
    int scope, plan, client, ret = ME_EUNAUTHORIZED;

    /* Each getter returns ME_OK (0) or an error, so the first failure stops the chain. */
    if (!json_is_object(c) || !string_is(json_object_get(c, "iss"), v->issuer) ||
        !audience_ok(json_object_get(c, "aud"), v->audience) ||
        get_text(c, "sub", valid_id, out->sub, sizeof out->sub) ||
        get_text(c, "album", valid_id, out->album, sizeof out->album) ||
        get_text(c, "ref", valid_ref, out->ref, sizeof out->ref) ||
        get_enum(c, "scope", scope_names, COUNT_OF(scope_names), 0, &scope) ||
        get_enum(c, "plan", plan_names, COUNT_OF(plan_names), 0, &plan) ||
        get_enum(c, "client", client_names, COUNT_OF(client_names), ME_CLIENT_APP, &client) ||
        get_int(c, "exp", 1, 0, TOKEN_TIME_MAX, &exp) ||
        get_int(c, "nbf", 0, 0, TOKEN_TIME_MAX, &nbf) ||
        get_int(c, "iat", 0, 0, TOKEN_TIME_MAX, &iat) ||
        get_int(c, "max_bytes", 0, 0, INT64_MAX, &max_bytes))
        goto out;
    out->scope = (me_scope_t)scope;
    out->plan = (me_plan_t)plan;
    out->client = (me_client_t)client;
    out->exp = exp;
    out->nbf = nbf;
    out->max_bytes = (uint64_t)max_bytes;
    ret = ME_OK;
out:
    json_decref(c);
    return ret;
}

/* now > exp + leeway or now + leeway < nbf. Leeway in whole seconds is exact here: for
 * integer seconds, now - exp > ms / 1000.0 holds exactly when now - exp > ms / 1000. */
static int check_time(const me_token_verifier_t *v, int64_t exp, int64_t nbf, int64_t now)
{
    return exp + v->leeway < now || nbf - v->leeway > now ? ME_ETOKEN_EXPIRED : ME_OK;
}

static size_t cache_slot(const me_token_verifier_t *v, const unsigned char *digest)
{
    uint64_t h;

    memcpy(&h, digest, sizeof h);
    return (size_t)(h % v->cache_len);
}

/* 1 with *out filled when the token with this digest was verified before, else 0. */
static int cache_get(me_token_verifier_t *v, const unsigned char *digest, me_token_claims_t *out)
{
    size_t i;
    int hit;

    if (v->cache_len == 0)
        return 0;
    i = cache_slot(v, digest);
    pthread_mutex_lock(&v->shards[i % CACHE_SHARDS]);
    hit = v->cache[i].used && CRYPTO_memcmp(v->cache[i].digest, digest, SHA256_DIGEST_LENGTH) == 0;
    if (hit)
        *out = v->cache[i].claims;
    pthread_mutex_unlock(&v->shards[i % CACHE_SHARDS]);
    return hit;
}

static void cache_put(me_token_verifier_t *v, const unsigned char *digest,
                      const me_token_claims_t *claims)
{
    size_t i;

    if (v->cache_len == 0)
        return;
    i = cache_slot(v, digest);
    pthread_mutex_lock(&v->shards[i % CACHE_SHARDS]);
    memcpy(v->cache[i].digest, digest, SHA256_DIGEST_LENGTH);
    v->cache[i].claims = *claims;
    v->cache[i].used = 1;
    pthread_mutex_unlock(&v->shards[i % CACHE_SHARDS]);
}

me_token_verifier_t *me_token_verifier_new(const me_config_t *cfg, char *err, size_t errlen)
{
    const me_token_settings_t *ts = me_token_settings(cfg);
    me_token_verifier_t *v = calloc(1, sizeof *v);
    const unsigned char *secret;
    uint64_t leeway;

    if (v == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < CACHE_SHARDS; i++)
        pthread_mutex_init(&v->shards[i], NULL);
    atomic_init(&v->verifications, 0);
    v->alg = ts->alg;
    if (!issuer_and_audience_set(ts)) {
        set_err(err, errlen, "token_issuer and token_audience must be set");
        goto fail;
    }
    if (v->alg == ME_ALG_ES256) {
        if ((v->pkey = load_p256_key(ts->es256_public_key_file, 0, err, errlen)) == NULL)
            goto fail;
    } else if (v->alg == ME_ALG_HS256) {
        if (hs256_secret(ts, &secret, &v->secret_len, err, errlen) != ME_OK)
            goto fail;
        if ((v->secret = malloc(v->secret_len)) == NULL)
            goto nomem;
        memcpy(v->secret, secret, v->secret_len);
    } else {
        set_err(err, errlen, "token_alg must be HS256 or ES256");
        goto fail;
    }
    if ((v->issuer = strdup(ts->issuer)) == NULL ||
        (v->audience = strdup(ts->audience)) == NULL)
        goto nomem;
    leeway = ts->leeway / 1000;
    v->leeway = leeway < (uint64_t)TOKEN_TIME_MAX ? (int64_t)leeway : TOKEN_TIME_MAX;
    if (ts->cache_entries > 0) {
        v->cache_len = (size_t)ts->cache_entries;
        if ((v->cache = calloc(v->cache_len, sizeof *v->cache)) == NULL)
            goto nomem;
    }
    return v;
nomem:
    set_err(err, errlen, "out of memory");
fail:
    me_token_verifier_free(v);
    return NULL;
}

void me_token_verifier_free(me_token_verifier_t *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < CACHE_SHARDS; i++)
        pthread_mutex_destroy(&v->shards[i]);
    EVP_PKEY_free(v->pkey);
    if (v->secret != NULL) {
        OPENSSL_cleanse(v->secret, v->secret_len);
        free(v->secret);
    }
    free(v->issuer);
    free(v->audience);
    free(v->cache);
    free(v);
}

int me_token_verify(me_token_verifier_t *v, const char *token, size_t len, int64_t now,
                    me_token_claims_t *out)
{
    unsigned char buf[ME_TOKEN_MAX_LEN]; /* the three segments decoded, back to back */
    unsigned char digest[SHA256_DIGEST_LENGTH];
    const char *seg[3];
    size_t seg_len[3], dec_len[3], used = 0;
    me_token_claims_t claims;
    int ret;

    if (token == NULL || len > ME_TOKEN_MAX_LEN || split_jws(token, len, seg, seg_len) != ME_OK)
        return ME_EUNAUTHORIZED;
    for (int i = 0; i < 3; i++) {
        if (me_b64url_decode(seg[i], seg_len[i], buf + used, &dec_len[i]) != ME_OK)
            return ME_EUNAUTHORIZED;
        used += dec_len[i];
    }
    if (SHA256((const unsigned char *)token, len, digest) == NULL)
        return ME_EUNAUTHORIZED;
    if (cache_get(v, digest, out))
        return check_time(v, out->exp, out->nbf, now);
    if (check_header(v, buf, dec_len[0]) != ME_OK ||
        check_signature(v, token, seg_len[0] + 1 + seg_len[1], buf + dec_len[0] + dec_len[1],
                        dec_len[2]) != ME_OK ||
        parse_claims(v, buf + dec_len[0], dec_len[1], &claims) != ME_OK)
        return ME_EUNAUTHORIZED;
    if ((ret = check_time(v, claims.exp, claims.nbf, now)) != ME_OK)
        return ret;
    cache_put(v, digest, &claims);
    *out = claims;
    return ME_OK;
}

/* Checks what a verifier would refuse, so that mint never produces such a token. */
static int check_mint_input(const me_token_settings_t *ts, const me_token_claims_t *c, int64_t now,
                            int64_t ttl, char *err, size_t errlen)
{
    const char *bad = NULL;

    if (NAME_OF(alg_names, ts->alg) == NULL)
        bad = "token_alg must be HS256 or ES256";
    else if (!issuer_and_audience_set(ts))
        bad = "token_issuer and token_audience must be set";
    else if (!valid_id(c->sub, strnlen(c->sub, sizeof c->sub)))
        bad = "sub must be [A-Za-z0-9_-]{1,64}";
    else if (!valid_id(c->album, strnlen(c->album, sizeof c->album)))
        bad = "album must be [A-Za-z0-9_-]{1,64}";
    else if (!valid_ref(c->ref, strnlen(c->ref, sizeof c->ref)))
        bad = "ref must be printable ASCII, at most 255 characters";
    else if (me_token_scope_name(c->scope) == NULL || me_token_plan_name(c->plan) == NULL ||
             me_token_client_name(c->client) == NULL)
        bad = "scope, plan or client is not a known value";
    else if (now < 0 || now > TOKEN_TIME_MAX || ttl <= 0 || ttl > TOKEN_TIME_MAX - now ||
             c->nbf < 0 || c->nbf > TOKEN_TIME_MAX || c->max_bytes > (uint64_t)INT64_MAX)
        bad = "now, ttl, nbf or max_bytes is out of range";
    if (bad != NULL) {
        set_err(err, errlen, "%s", bad);
        return ME_EINVAL;
    }
    return ME_OK;
}

char *me_token_mint(const me_config_t *cfg, const me_token_claims_t *claims, int64_t now,
                    int64_t ttl, char *err, size_t errlen)
{
    const me_token_settings_t *ts = me_token_settings(cfg);
    json_t *hdr = NULL, *body = NULL;
    char *hdr_json = NULL, *body_json = NULL, *token = NULL, *p;
    EVP_PKEY *pkey = NULL;
    const unsigned char *secret = NULL;
    size_t secret_len = 0, signed_len, sig_len;
    unsigned char sig[ES256_SIG_LEN];
    int ok;

    if (check_mint_input(ts, claims, now, ttl, err, errlen) != ME_OK)
        goto out;
    sig_len = ts->alg == ME_ALG_ES256 ? ES256_SIG_LEN : HS256_SIG_LEN;
    hdr = json_pack("{s:s, s:s}", "alg", alg_names[ts->alg], "typ", "JWT");
    body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "iss", ts->issuer,
                     "aud", ts->audience, "sub", claims->sub,
                     "scope", me_token_scope_name(claims->scope), "album", claims->album,
                     "plan", me_token_plan_name(claims->plan),
                     "client", me_token_client_name(claims->client),
                     "iat", (json_int_t)now, "exp", (json_int_t)(now + ttl));
    ok = hdr != NULL && body != NULL &&
         (claims->nbf == 0 || json_object_set_new(body, "nbf", json_integer(claims->nbf)) == 0) &&
         (claims->max_bytes == 0 ||
          json_object_set_new(body, "max_bytes", json_integer((json_int_t)claims->max_bytes)) == 0) &&
         (claims->ref[0] == '\0' || json_object_set_new(body, "ref", json_string(claims->ref)) == 0) &&
         (hdr_json = json_dumps(hdr, JSON_COMPACT)) != NULL &&
         (body_json = json_dumps(body, JSON_COMPACT)) != NULL;
    if (!ok) {
        set_err(err, errlen, "cannot encode the token (issuer and audience must be UTF-8)");
        goto out;
    }
    signed_len = me_b64url_encoded_len(strlen(hdr_json)) + 1 + me_b64url_encoded_len(strlen(body_json));
    if (signed_len + 1 + me_b64url_encoded_len(sig_len) > ME_TOKEN_MAX_LEN) {
        set_err(err, errlen, "the token would be longer than %d bytes", ME_TOKEN_MAX_LEN);
        goto out;
    }
    if (ts->alg == ME_ALG_ES256 &&
        (pkey = load_p256_key(ts->es256_private_key_file, 1, err, errlen)) == NULL)
        goto out;
    if (ts->alg == ME_ALG_HS256 && hs256_secret(ts, &secret, &secret_len, err, errlen) != ME_OK)
        goto out;
    if ((token = malloc(signed_len + 1 + me_b64url_encoded_len(sig_len) + 1)) == NULL) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    p = token + me_b64url_encode((const unsigned char *)hdr_json, strlen(hdr_json), token);
    *p++ = '.';
    me_b64url_encode((const unsigned char *)body_json, strlen(body_json), p);
    ok = pkey != NULL ? es256_sign(pkey, token, signed_len, sig) == ME_OK
                      : hs256(secret, secret_len, token, signed_len, sig) == ME_OK;
    if (!ok) {
        set_err(err, errlen, "signing failed");
        free(token);
        token = NULL;
        goto out;
    }
    token[signed_len] = '.';
    me_b64url_encode(sig, sig_len, token + signed_len + 1);
out:
    OPENSSL_cleanse(sig, sizeof sig);
    EVP_PKEY_free(pkey);
    free(hdr_json);
    free(body_json);
    json_decref(hdr);
    json_decref(body);
    return token;
}

const char *me_token_scope_name(me_scope_t s)
{
    return NAME_OF(scope_names, s);
}

const char *me_token_plan_name(me_plan_t p)
{
    return NAME_OF(plan_names, p);
}

const char *me_token_client_name(me_client_t c)
{
    return NAME_OF(client_names, c);
}

uint64_t me_token_verifications(const me_token_verifier_t *v)
{
    return atomic_load_explicit(&v->verifications, memory_order_relaxed);
}
