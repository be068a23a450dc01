/* cf.c: CloudFront keys, signing and verification, and the caches of both. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "server/delivery/cf.h"

#define CACHE_LOCKS 16
#define SIG_MAX 256 /* raw signature bytes: RSA-2048, or ECDSA P-256 DER (72) */

typedef struct {
    char id[ME_CF_KEY_ID_MAX + 1];
    EVP_PKEY *pkey;
    int is_private, is_ec;
    me_cf_hash_t hash;
} cf_key_t;

/* Digests of what was signed or verified; a slot is replaced by the next digest that lands on
 * it, so memory stays at its size whatever comes. */
typedef struct {
    unsigned char digest[32];
    int used;
    char *value; /* the signature (base64) in the signing cache; NULL in the verification one */
} slot_t;

typedef struct {
    slot_t *slots;
    size_t n;
    pthread_mutex_t locks[CACHE_LOCKS];
} cache_t;

struct me_cf {
    cf_key_t keys[ME_CF_KEYS_MAX];
    int nkeys, active;
    EVP_MD *sha1, *sha256;
    cache_t signed_cache, verified_cache;
    _Atomic uint64_t signatures, verifications;
};

/* ---- caches ---- */

static int cache_init(cache_t *c, int entries)
{
    memset(c, 0, sizeof(*c));
    if (entries <= 0)
        return 0;
    if ((c->slots = calloc((size_t)entries, sizeof(*c->slots))) == NULL)
        return ME_ENOMEM;
    c->n = (size_t)entries;
    for (int i = 0; i < CACHE_LOCKS; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    return 0;
}

static void cache_free(cache_t *c)
{
    if (c->slots == NULL)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->slots[i].value);
    free(c->slots);
    for (int i = 0; i < CACHE_LOCKS; i++)
        pthread_mutex_destroy(&c->locks[i]);
    c->slots = NULL;
}

static size_t slot_of(const cache_t *c, const unsigned char *digest)
{
    uint64_t h;
    memcpy(&h, digest, sizeof(h));
    return (size_t)(h % c->n);
}

/* 1 when digest is cached; its value (when out is not NULL) copied to out (outlen bytes). */
static int cache_get(cache_t *c, const unsigned char *digest, char *out, size_t outlen)
{
    if (c->n == 0)
        return 0;
    size_t i = slot_of(c, digest);
    pthread_mutex_t *lock = &c->locks[i % CACHE_LOCKS];
    int hit = 0;
    pthread_mutex_lock(lock);
    slot_t *s = &c->slots[i];
    if (s->used && memcmp(s->digest, digest, sizeof(s->digest)) == 0) {
        hit = 1;
        if (out != NULL)
            snprintf(out, outlen, "%s", s->value != NULL ? s->value : "");
    }
    pthread_mutex_unlock(lock);
    return hit;
}

/* Remembers digest (and a copy of value, which may be NULL); out of memory just forgets. */
static void cache_put(cache_t *c, const unsigned char *digest, const char *value)
{
    if (c->n == 0)
        return;
    char *copy = value != NULL ? strdup(value) : NULL;
    if (value != NULL && copy == NULL)
        return;
    size_t i = slot_of(c, digest);
    pthread_mutex_t *lock = &c->locks[i % CACHE_LOCKS];
    pthread_mutex_lock(lock);
    slot_t *s = &c->slots[i];
    char *old = s->value;
    memcpy(s->digest, digest, sizeof(s->digest));
    s->value = copy;
    s->used = 1;
    pthread_mutex_unlock(lock);
    free(old);
}

/* SHA-256 of the key, the hash, the policy and (for verifications) the signature: what
 * decides the outcome. Lengths go in too, so that no two inputs run together. */
static int digest_of(me_cf_t *cf, int key, me_cf_hash_t hash, const char *policy, size_t len, const unsigned char *sig,
                     size_t siglen, unsigned char *out)
{
    uint64_t head[4] = {(uint64_t)key, (uint64_t)hash, len, siglen};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, cf->sha256, NULL) && EVP_DigestUpdate(ctx, head, sizeof(head)) &&
             EVP_DigestUpdate(ctx, policy, len) && (siglen == 0 || EVP_DigestUpdate(ctx, sig, siglen)) &&
             EVP_DigestFinal_ex(ctx, out, NULL);
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : ME_EINTERNAL;
}

/* ---- keys ---- */

static int id_valid(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n > ME_CF_KEY_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1; /* an encrypted key is refused rather than prompted for */
}

/* Loads conf's key into k: a private key when the file holds one, else a public key. */
static int load_key(cf_key_t *k, const me_cf_key_conf_t *conf, char *err, size_t errlen)
{
    char group[64];
    BIO *bio = NULL;
    if (!id_valid(conf->id)) {
        snprintf(err, errlen, "a CloudFront key id must be 1 to %d of A-Z a-z 0-9 _ -", ME_CF_KEY_ID_MAX);
        return ME_EINVAL;
    }
    snprintf(k->id, sizeof(k->id), "%s", conf->id);
    if (conf->pem_file == NULL || (bio = BIO_new_file(conf->pem_file, "r")) == NULL) {
        snprintf(err, errlen, "CloudFront key %s: cannot read %s", conf->id, conf->pem_file != NULL ? conf->pem_file : "(none)");
        return ME_EINVAL;
    }
    if ((k->pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) != NULL) {
        k->is_private = 1;
    } else {
        (void)BIO_reset(bio);
        k->pkey = PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL);
    }
    BIO_free(bio);
    if (k->pkey == NULL) {
        snprintf(err, errlen, "CloudFront key %s: %s holds no PEM key (an unencrypted private key or a public key)",
                 conf->id, conf->pem_file);
        return ME_EINVAL;
    }
    if (EVP_PKEY_is_a(k->pkey, "RSA") && EVP_PKEY_get_bits(k->pkey) == 2048) {
        k->is_ec = 0;
    } else if (EVP_PKEY_is_a(k->pkey, "EC") &&
               EVP_PKEY_get_group_name(k->pkey, group, sizeof(group), NULL) == 1 && strcmp(group, "prime256v1") == 0) {
        k->is_ec = 1;
    } else {
        snprintf(err, errlen, "CloudFront key %s: %s is a %s key of %d bits; CloudFront takes RSA-2048 or ECDSA P-256",
                 conf->id, conf->pem_file, EVP_PKEY_get0_type_name(k->pkey), EVP_PKEY_get_bits(k->pkey));
        return ME_EINVAL;
    }
    k->hash = conf->hash != ME_CF_HASH_DEFAULT ? conf->hash : k->is_ec ? ME_CF_SHA256 : ME_CF_SHA1;
    return 0;
}

me_cf_t *me_cf_new(const me_cf_conf_t *conf, char *err, size_t errlen)
{
    me_cf_t *cf = calloc(1, sizeof(*cf));
    if (cf == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cf->active = -1;
    if (conf->nkeys < 1 || conf->nkeys > ME_CF_KEYS_MAX) {
        snprintf(err, errlen, "CloudFront keys: between 1 and %d are needed", ME_CF_KEYS_MAX);
        goto fail;
    }
    for (int i = 0; i < conf->nkeys; i++) {
        cf_key_t *k = &cf->keys[i];
        int loaded = load_key(k, &conf->keys[i], err, errlen);
        if (k->pkey != NULL)
            cf->nkeys++; /* freed with the rest from now on */
        if (loaded != 0)
            goto fail;
        for (int j = 0; j < i; j++)
            if (strcmp(cf->keys[j].id, k->id) == 0) {
                snprintf(err, errlen, "CloudFront key %s is configured twice", k->id);
                goto fail;
            }
        if (conf->active != NULL && *conf->active != '\0' ? strcmp(conf->active, k->id) == 0 : i == 0)
            cf->active = i;
    }
    if (cf->active < 0) {
        snprintf(err, errlen, "the active CloudFront key %s is not among the configured keys", conf->active);
        goto fail;
    }
    if (!cf->keys[cf->active].is_private) {
        snprintf(err, errlen, "the active CloudFront key %s: its file holds a public key; signing needs the private key",
                 cf->keys[cf->active].id);
        goto fail;
    }
    cf->sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
    cf->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (cf->sha1 == NULL || cf->sha256 == NULL || cache_init(&cf->signed_cache, conf->cache_entries) != 0 ||
        cache_init(&cf->verified_cache, conf->cache_entries) != 0) {
        snprintf(err, errlen, "out of memory (or OpenSSL has no SHA-1/SHA-256)");
        goto fail;
    }
    return cf;
fail:
    me_cf_free(cf);
    return NULL;
}

void me_cf_free(me_cf_t *cf)
{
    if (cf == NULL)
        return;
    for (int i = 0; i < cf->nkeys; i++)
        EVP_PKEY_free(cf->keys[i].pkey);
    EVP_MD_free(cf->sha1);
    EVP_MD_free(cf->sha256);
    cache_free(&cf->signed_cache);
    cache_free(&cf->verified_cache);
    free(cf);
}

const char *me_cf_active_id(const me_cf_t *cf)
{
    return cf->keys[cf->active].id;
}

me_cf_hash_t me_cf_active_hash(const me_cf_t *cf)
{
    return cf->keys[cf->active].hash;
}

uint64_t me_cf_signatures(const me_cf_t *cf)
{
    return atomic_load(&((me_cf_t *)cf)->signatures);
}

uint64_t me_cf_verifications(const me_cf_t *cf)
{
    return atomic_load(&((me_cf_t *)cf)->verifications);
}

/* ---- signing ---- */

static const EVP_MD *md_of(const me_cf_t *cf, me_cf_hash_t hash)
{
    return hash == ME_CF_SHA256 ? cf->sha256 : cf->sha1;
}

/* The active key's signature of policy (len bytes), in CloudFront's base64, into out
 * (ME_CF_SIGNATURE_B64_MAX + 1 bytes); from the cache when it was made before. */
static int sign_policy(me_cf_t *cf, const char *policy, size_t len, char *out)
{
    const cf_key_t *k = &cf->keys[cf->active];
    unsigned char digest[32], sig[SIG_MAX];
    size_t siglen = sizeof(sig);
    if (digest_of(cf, cf->active, k->hash, policy, len, NULL, 0, digest) != 0)
        return ME_EINTERNAL;
    if (cache_get(&cf->signed_cache, digest, out, ME_CF_SIGNATURE_B64_MAX + 1))
        return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestSignInit(ctx, NULL, md_of(cf, k->hash), NULL, k->pkey) == 1 &&
             EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)policy, len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return ME_EINTERNAL;
    atomic_fetch_add(&cf->signatures, 1);
    me_cf_b64_encode(sig, siglen, out);
    cache_put(&cf->signed_cache, digest, out);
    return 0;
}

/* The policy JSON for p over url and whether it is canned. */
static int policy_for(const char *url, const me_cf_policy_t *p, char *json, size_t *len, int *canned)
{
    me_cf_policy_t q = *p;
    if (q.resource == NULL)
        q.resource = url;
    /* a URL signed for itself is literal, '*' and all: canned unless a condition needs more */
    *canned = strcmp(q.resource, url) == 0 && q.date_greater_than == 0 && (q.ip_address == NULL || !*q.ip_address);
    *len = me_cf_policy_json(&q, *canned, json, ME_CF_POLICY_MAX + 1);
    return *len > 0 ? 0 : ME_EINVAL;
}

int me_cf_sign_url(me_cf_t *cf, const char *url, const me_cf_policy_t *p, char *out, size_t outlen)
{
    char json[ME_CF_POLICY_MAX + 1], sig[ME_CF_SIGNATURE_B64_MAX + 1], b64[ME_CF_POLICY_B64_MAX + 1];
    size_t len;
    int canned, n, ret;
    if (strchr(url, '#') != NULL || (ret = policy_for(url, p, json, &len, &canned)) != 0)
        return ME_EINVAL;
    if ((ret = sign_policy(cf, json, len, sig)) != 0)
        return ret;
    const cf_key_t *k = &cf->keys[cf->active];
    const char *sep = strchr(url, '?') != NULL ? "&" : "?";
    const char *hash = k->hash == ME_CF_SHA256 ? "&Hash-Algorithm=SHA256" : "";
    if (canned) {
        n = snprintf(out, outlen, "%s%sExpires=%" PRId64 "&Signature=%s&Key-Pair-Id=%s%s", url, sep, p->date_less_than,
                     sig, k->id, hash);
    } else {
        me_cf_b64_encode((const unsigned char *)json, len, b64);
        n = snprintf(out, outlen, "%s%sPolicy=%s&Signature=%s&Key-Pair-Id=%s%s", url, sep, b64, sig, k->id, hash);
    }
    return n > 0 && (size_t)n < outlen ? 0 : ME_EINVAL;
}

int me_cf_sign_cookies(me_cf_t *cf, const me_cf_policy_t *p, me_cf_cookies_t *out)
{
    char json[ME_CF_POLICY_MAX + 1];
    size_t len;
    int canned, ret;
    memset(out, 0, sizeof(*out));
    if (p->resource == NULL || (ret = policy_for(p->resource, p, json, &len, &canned)) != 0)
        return ME_EINVAL;
    canned = canned && !me_cf_policy_needs_custom(p); /* a cookie names many URLs with '*' */
    if ((ret = sign_policy(cf, json, len, out->signature)) != 0)
        return ret;
    if (canned)
        snprintf(out->expires, sizeof(out->expires), "%" PRId64, p->date_less_than);
    else
        me_cf_b64_encode((const unsigned char *)json, len, out->policy);
    const cf_key_t *k = &cf->keys[cf->active];
    memcpy(out->key_pair_id, k->id, sizeof(out->key_pair_id));
    out->hash_algorithm = k->hash == ME_CF_SHA256 ? "SHA256" : NULL;
    return 0;
}

/* ---- verification ---- */

const char *me_cf_verdict_name(me_cf_verdict_t v)
{
    static const char *const names[] = {"valid",         "missing", "malformed",     "unknown_key",    "bad_signature",
                                        "expired",       "not_yet_valid", "wrong_resource", "wrong_ip"};
    return (size_t)v < sizeof(names) / sizeof(names[0]) ? names[v] : "invalid";
}

/* A positive decimal of at most 18 digits (no sign, no blanks). */
static int parse_epoch(const me_cf_value_t *v, int64_t *out)
{
    int64_t n = 0;
    if (v->len == 0 || v->len > 18)
        return 0;
    for (size_t i = 0; i < v->len; i++) {
        if (v->v[i] < '0' || v->v[i] > '9')
            return 0;
        n = n * 10 + (v->v[i] - '0');
    }
    *out = n;
    return n > 0;
}

static int find_key(const me_cf_t *cf, const me_cf_value_t *id)
{
    for (int i = 0; i < cf->nkeys; i++)
        if (strlen(cf->keys[i].id) == id->len && memcmp(cf->keys[i].id, id->v, id->len) == 0)
            return i;
    return -1;
}

/* The signature check, remembered when it succeeds (a failure costs the client as much as
 * us, and remembering it would let a client fill the cache). */
static int signature_ok(me_cf_t *cf, int key, me_cf_hash_t hash, const char *policy, size_t len,
                        const unsigned char *sig, size_t siglen)
{
    unsigned char digest[32];
    if (digest_of(cf, key, hash, policy, len, sig, siglen, digest) != 0)
        return 0;
    if (cache_get(&cf->verified_cache, digest, NULL, 0))
        return 1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, md_of(cf, hash), NULL, cf->keys[key].pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)policy, len) == 1;
    EVP_MD_CTX_free(ctx);
    atomic_fetch_add(&cf->verifications, 1);
    if (ok)
        cache_put(&cf->verified_cache, digest, NULL);
    return ok;
}

me_cf_verdict_t me_cf_verify(me_cf_t *cf, const char *url, size_t len, const me_cf_proof_t *proof, int family,
                             const unsigned char *addr, int64_t now)
{
    /* room for any policy that decodes from ME_CF_POLICY_B64_MAX characters */
    char json[ME_CF_POLICY_B64_MAX / 4 * 3 + 4], resource[ME_CF_RESOURCE_MAX + 1];
    unsigned char sig[ME_CF_SIGNATURE_B64_MAX];
    size_t siglen, jsonlen;
    me_cf_hash_t hash = ME_CF_SHA1;
    me_cf_parsed_policy_t parsed;
    int key;

    if (proof->expires.v == NULL && proof->policy.v == NULL && proof->signature.v == NULL &&
        proof->key_pair_id.v == NULL)
        return ME_CF_MISSING;
    if ((proof->expires.v == NULL) == (proof->policy.v == NULL) || proof->signature.v == NULL ||
        proof->key_pair_id.v == NULL || proof->signature.len > ME_CF_SIGNATURE_B64_MAX ||
        me_cf_b64_decode(proof->signature.v, proof->signature.len, sig, &siglen) != 0 || siglen == 0)
        return ME_CF_MALFORMED;
    if (proof->hash_algorithm.v != NULL) {
        if (proof->hash_algorithm.len == 6 && memcmp(proof->hash_algorithm.v, "SHA256", 6) == 0)
            hash = ME_CF_SHA256;
        else if (!(proof->hash_algorithm.len == 4 && memcmp(proof->hash_algorithm.v, "SHA1", 4) == 0))
            return ME_CF_MALFORMED;
    }
    if ((key = find_key(cf, &proof->key_pair_id)) < 0)
        return ME_CF_UNKNOWN_KEY;

    if (proof->expires.v != NULL) {
        /* canned: the policy is the URL itself with Expires, rebuilt exactly as it was signed */
        me_cf_policy_t canned = {.resource = resource};
        if (len > ME_CF_RESOURCE_MAX || !parse_epoch(&proof->expires, &canned.date_less_than))
            return ME_CF_MALFORMED;
        memcpy(resource, url, len);
        resource[len] = '\0';
        if (strlen(resource) != len || (jsonlen = me_cf_policy_json(&canned, 1, json, sizeof(json))) == 0)
            return ME_CF_WRONG_RESOURCE; /* no canned policy could name such a URL */
        if (!signature_ok(cf, key, hash, json, jsonlen, sig, siglen))
            return ME_CF_BAD_SIGNATURE;
        return now < canned.date_less_than ? ME_CF_VALID : ME_CF_EXPIRED;
    }
    if (proof->policy.len > ME_CF_POLICY_B64_MAX ||
        me_cf_b64_decode(proof->policy.v, proof->policy.len, (unsigned char *)json, &jsonlen) != 0 ||
        jsonlen > ME_CF_POLICY_MAX)
        return ME_CF_MALFORMED;
    if (!signature_ok(cf, key, hash, json, jsonlen, sig, siglen))
        return ME_CF_BAD_SIGNATURE;
    if (me_cf_policy_parse(json, jsonlen, &parsed) != 0)
        return ME_CF_MALFORMED; /* signed by us, yet not a policy: refused all the same */
    if (now >= parsed.date_less_than)
        return ME_CF_EXPIRED;
    if (parsed.date_greater_than != 0 && now <= parsed.date_greater_than)
        return ME_CF_NOT_YET_VALID;
    if (!me_cf_resource_matches(parsed.resource, url, len))
        return ME_CF_WRONG_RESOURCE;
    if (parsed.has_ip && (family == 0 || !me_cf_cidr_contains(&parsed.ip, family, addr)))
        return ME_CF_WRONG_IP;
    return ME_CF_VALID;
}
