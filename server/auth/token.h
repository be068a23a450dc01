/* token.h: verification (and, for development, minting) of the compact JWS tokens that the
 * app backend issues to authorise uploads and views. */
#ifndef ME_TOKEN_H
#define ME_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include "server/auth/token_config.h"
#include "server/core/config.h"
#include "server/core/error.h"

#define ME_TOKEN_MAX_LEN 4096   /* longer tokens are refused before any work */
#define ME_TOKEN_ID_MAX 64      /* sub and album: [A-Za-z0-9_-]{1,64} */
#define ME_TOKEN_REF_MAX 255    /* ref: printable ASCII */

/* upload: send media to the token's album; view: see the album's media; admin: the app
 * backend acting for the album (deleting media or the album itself); montage: the app backend
 * asking for (and following) the album's one-second montages. */
typedef enum { ME_SCOPE_UPLOAD = 1, ME_SCOPE_VIEW = 2, ME_SCOPE_ADMIN = 3, ME_SCOPE_MONTAGE = 4 } me_scope_t;
typedef enum { ME_PLAN_FREE = 1, ME_PLAN_PREMIUM = 2 } me_plan_t;
typedef enum { ME_CLIENT_APP = 1, ME_CLIENT_BROWSER = 2 } me_client_t;

/* The verified claims; plain values, copied to the caller. */
typedef struct {
    char sub[ME_TOKEN_ID_MAX + 1];
    char album[ME_TOKEN_ID_MAX + 1];
    char ref[ME_TOKEN_REF_MAX + 1]; /* "" when absent */
    me_scope_t scope;
    me_plan_t plan;
    me_client_t client;             /* ME_CLIENT_APP when absent */
    uint64_t max_bytes;             /* 0 when absent */
    int64_t exp;                    /* seconds since the epoch */
    int64_t nbf;                    /* 0 when absent */
} me_token_claims_t;

typedef struct me_token_verifier me_token_verifier_t;

/* Makes a verifier from cfg (algorithm pinned, key loaded, issuer, audience, leeway, cache
 * size). Returns NULL and writes a reason to err when a key cannot be read or parsed, the
 * ES256 key is not an EC P-256 key, the HS256 secret is shorter than 32 bytes, or issuer or
 * audience is empty; err never holds the secret. The caller owns it and frees it with
 * me_token_verifier_free(). Thread-safe once made; cfg may be freed afterwards. */
me_token_verifier_t *me_token_verifier_new(const me_config_t *cfg, char *err, size_t errlen);
void me_token_verifier_free(me_token_verifier_t *v);

/* Verifies a compact JWS of len bytes at time now (seconds since the epoch): the header's
 * alg must be the configured one ("none" and the other algorithm are refused), the
 * signature valid, iss and aud equal to the configured ones, exp/nbf within the leeway,
 * every claim well formed. Results are cached until exp, so repeating a token costs a hash
 * and a lookup; failures are not cached. On success 0 and *out filled; else
 * ME_EUNAUTHORIZED (bad in any way; also, failing closed, when memory runs out) or
 * ME_ETOKEN_EXPIRED (good but outside exp/nbf), and *out unspecified. */
int me_token_verify(me_token_verifier_t *v, const char *token, size_t len, int64_t now,
                    me_token_claims_t *out) ME_MUST_CHECK;

/* Signs claims (iss/aud from cfg, iat = now, exp = now + ttl; nbf, max_bytes and ref only
 * when set) with the configured algorithm: HS256 with the secret, ES256 with
 * tokens.es256_private_key_file. Returns a malloc'd NUL-terminated token the caller frees, or
 * NULL with err set (also for claims that me_token_verify() would refuse). */
char *me_token_mint(const me_config_t *cfg, const me_token_claims_t *claims, int64_t now,
                    int64_t ttl, char *err, size_t errlen);

/* Names for the enums as they appear in tokens ("upload", "premium", "browser"); NULL for a
 * value outside the enum (so a caller may walk them from 1 until NULL). */
const char *me_token_scope_name(me_scope_t s);
const char *me_token_plan_name(me_plan_t p);
const char *me_token_client_name(me_client_t c);

/* Verifications that ran the signature check (cache misses); for tests and metrics. */
uint64_t me_token_verifications(const me_token_verifier_t *v);

#endif
