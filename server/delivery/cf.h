/* cf.h: CloudFront signed URLs and signed cookies: made with the active key, checked with any
 * configured key, exactly as CloudFront checks them (mediaedge does so itself when no CDN is
 * in front). Keys: RSA-2048 with SHA-1 (CloudFront's default) or SHA-256
 * (Hash-Algorithm=SHA256), and ECDSA P-256 (DER signatures). Signatures are remembered (a
 * policy signed once is not signed again), so that URLs whose expiries are rounded to a step
 * cost one signature per step; RSA PKCS#1 v1.5 is deterministic, so every process makes the
 * same URL, while ECDSA's signatures differ at each signing (the cache keeps them stable
 * within a process). Thread-safe once made. */
#ifndef ME_CF_H
#define ME_CF_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"
#include "server/delivery/cf_policy.h"

#define ME_CF_KEYS_MAX 4
#define ME_CF_KEY_ID_MAX 64
#define ME_CF_SIGNATURE_B64_MAX 344 /* RSA-2048: 256 bytes; ECDSA P-256 DER: at most 72 */
#define ME_CF_URL_MAX (ME_CF_RESOURCE_MAX + ME_CF_POLICY_B64_MAX + ME_CF_SIGNATURE_B64_MAX + ME_CF_KEY_ID_MAX + 96)

typedef enum { ME_CF_HASH_DEFAULT = 0, ME_CF_SHA1 = 1, ME_CF_SHA256 = 2 } me_cf_hash_t;

/* One key pair as CloudFront knows it. */
typedef struct {
    const char *id;       /* CloudFront's public key id: [A-Za-z0-9_-]{1,64} */
    const char *pem_file; /* a PEM private key (signs and verifies) or public key (verifies only):
                           * RSA of 2048 bits or EC P-256, what CloudFront accepts */
    me_cf_hash_t hash;    /* for signing; default: SHA-1 for RSA, SHA-256 for ECDSA */
} me_cf_key_conf_t;

typedef struct {
    me_cf_key_conf_t keys[ME_CF_KEYS_MAX];
    int nkeys;              /* 1..ME_CF_KEYS_MAX */
    const char *active;     /* the id of the key that signs; NULL or "" = keys[0] */
    int cache_entries;      /* signatures and verifications remembered (each); 0 disables */
} me_cf_conf_t;

typedef struct me_cf me_cf_t;

/* Loads conf's keys. NULL with err set (naming the key id and file, never key material) when
 * a file cannot be read, a key is not RSA-2048 or P-256, two keys share an id, the active id
 * is not configured or its file holds no private key. The caller frees with me_cf_free(). */
me_cf_t *me_cf_new(const me_cf_conf_t *conf, char *err, size_t errlen);
void me_cf_free(me_cf_t *cf);

/* The active key's id and the hash it signs with. */
const char *me_cf_active_id(const me_cf_t *cf);
me_cf_hash_t me_cf_active_hash(const me_cf_t *cf);

/* Signs url (no fragment, no signing parameters of its own; may have a query): with a
 * canned policy when p's resource is NULL or url and p has no DateGreaterThan or IpAddress
 * (url is then literal, '*' and all), else with p as a custom policy. Writes
 * url?[..&]Expires=<t>|Policy=<b64>&Signature=<b64>&Key-Pair-Id=<id>[&Hash-Algorithm=SHA256]
 * into out (outlen bytes, NUL-terminated), the parameters in the order of CloudFront's
 * documentation and botocore. 0, or ME_EINVAL (a URL or policy me_cf_policy_json() refuses,
 * out too small), ME_EINTERNAL (the signing failed). */
int me_cf_sign_url(me_cf_t *cf, const char *url, const me_cf_policy_t *p, char *out, size_t outlen) ME_MUST_CHECK;

/* The values of the signed cookies for p: canned (CloudFront-Expires) when
 * !me_cf_policy_needs_custom(p), else custom (CloudFront-Policy). */
typedef struct {
    char expires[24];                          /* CloudFront-Expires, or "" */
    char policy[ME_CF_POLICY_B64_MAX + 1];     /* CloudFront-Policy, or "" */
    char signature[ME_CF_SIGNATURE_B64_MAX + 1]; /* CloudFront-Signature */
    char key_pair_id[ME_CF_KEY_ID_MAX + 1];    /* CloudFront-Key-Pair-Id */
    const char *hash_algorithm;                /* CloudFront-Hash-Algorithm: "SHA256", or NULL */
} me_cf_cookies_t;

/* 0 with *out filled, ME_EINVAL, ME_EINTERNAL (as me_cf_sign_url()). */
int me_cf_sign_cookies(me_cf_t *cf, const me_cf_policy_t *p, me_cf_cookies_t *out) ME_MUST_CHECK;

/* What a viewer presented, from a signed URL's query or from cookies; each value is the raw
 * bytes (base pointer NULL when absent), not copied. */
typedef struct {
    const char *v;
    size_t len;
} me_cf_value_t;

typedef struct {
    me_cf_value_t expires, policy, signature, key_pair_id, hash_algorithm;
} me_cf_proof_t;

/* The outcome of a check, for metrics and debug logs (never with the values themselves). */
typedef enum {
    ME_CF_VALID = 0,
    ME_CF_MISSING,        /* no signing parameters at all */
    ME_CF_MALFORMED,      /* some but not all, both Expires and Policy, bad base64 or JSON */
    ME_CF_UNKNOWN_KEY,    /* a Key-Pair-Id that is not configured */
    ME_CF_BAD_SIGNATURE,  /* tampered with, or signed by another key */
    ME_CF_EXPIRED,        /* now is not before DateLessThan (Expires) */
    ME_CF_NOT_YET_VALID,  /* now is not after DateGreaterThan */
    ME_CF_WRONG_RESOURCE, /* the policy's resource does not match the URL */
    ME_CF_WRONG_IP,       /* the client is outside the policy's IpAddress */
} me_cf_verdict_t;

/* Checks proof for the request URL url (len bytes: the resource as CloudFront sees it, the
 * signing parameters removed from its query) from a client at family/addr (4 or 16 bytes;
 * family 0 when unknown, which fails any IpAddress condition), at now (seconds since the
 * epoch), as CloudFront does: the signature over the canned policy rebuilt from url and
 * Expires, or over the presented custom policy, with the key of Key-Pair-Id and the hash of
 * Hash-Algorithm (SHA-1 when absent); then the policy's dates, resource (wildcards) and IP. */
me_cf_verdict_t me_cf_verify(me_cf_t *cf, const char *url, size_t len, const me_cf_proof_t *proof, int family,
                             const unsigned char *addr, int64_t now);

/* "valid", "missing", "malformed", "unknown_key", "bad_signature", "expired", "not_yet_valid",
 * "wrong_resource", "wrong_ip". */
const char *me_cf_verdict_name(me_cf_verdict_t v);

/* Signature operations run, cache misses (for tests and metrics). */
uint64_t me_cf_signatures(const me_cf_t *cf);
uint64_t me_cf_verifications(const me_cf_t *cf);

#endif
