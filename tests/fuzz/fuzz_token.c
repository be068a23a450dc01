/* fuzz_token.c: token verification (server/auth/token.c) with the development HS256 set-up.
 * Even first byte: the rest is a token as a client sends it. Odd: the rest is the JWS header
 * JSON, a newline, then the claims JSON, which this target signs with the configured secret,
 * so the fuzzer reaches the header and claims checks behind the signature. Every verified
 * token must carry claims that the contract promises (ids of the allowed alphabet, a scope). */
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "server/auth/token.h"
#include "server/core/b64.h"

#define NOW 1800000000
#define SECRET "fuzz-secret-0123456789-abcdefghijklmnop"

static me_token_verifier_t *verifier;

static void setup(void)
{
    static me_config_t cfg;
    char err[256];
    if (me_config_defaults(&cfg) != 0)
        abort();
    me_token_settings_t *t = me_config_section_mut(&cfg, &me_token_config_section);
    t->alg = ME_ALG_HS256;
    t->hs256_secret = SECRET;
    t->cache_entries = 16; /* the cache's paths too */
    if ((verifier = me_token_verifier_new(&cfg, err, sizeof(err))) == NULL)
        abort();
}

static int id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > ME_TOKEN_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static void verify(const char *token, size_t len)
{
    me_token_claims_t c;
    if (me_token_verify(verifier, token, len, NOW, &c) != 0)
        return;
    if (!id_ok(c.sub) || !id_ok(c.album) || me_token_scope_name(c.scope) == NULL ||
        me_token_plan_name(c.plan) == NULL || me_token_client_name(c.client) == NULL || strchr(c.album, '/') != NULL)
        abort(); /* a verified token with claims the rest of the server does not expect */
}

/* header.claims.signature over the two JSON texts */
static void signed_token(const uint8_t *h, size_t hlen, const uint8_t *p, size_t plen)
{
    size_t n = me_b64url_encoded_len(hlen) + me_b64url_encoded_len(plen) + 2 + 64;
    char *tok = malloc(n);
    unsigned char mac[32];
    unsigned int maclen = 0;
    if (tok == NULL)
        return;
    size_t at = me_b64url_encode(h, hlen, tok);
    tok[at++] = '.';
    at += me_b64url_encode(p, plen, tok + at);
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)tok, at, mac, &maclen);
    tok[at++] = '.';
    at += me_b64url_encode(mac, maclen, tok + at);
    verify(tok, at);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (verifier == NULL)
        setup();
    if (size < 1 || size > 8192)
        return 0;
    const uint8_t *rest = data + 1;
    size_t len = size - 1;
    if (data[0] % 2 == 0) {
        char *tok = malloc(len > 0 ? len : 1);
        if (tok == NULL)
            return 0;
        memcpy(tok, rest, len);
        verify(tok, len);
        free(tok);
        return 0;
    }
    const uint8_t *nl = memchr(rest, '\n', len);
    if (nl == NULL)
        return 0;
    signed_token(rest, (size_t)(nl - rest), nl + 1, len - (size_t)(nl - rest) - 1);
    return 0;
}
