/* token_config.c: the tokens section's table, its rules, and the keys refused in production. */
#include "server/auth/token_config.h"

#include <string.h>

static const char *const algorithms[] = {"HS256", "ES256", NULL}; /* in me_token_alg_t's order */

#define TOKENS(...) ME_SETTING(me_token_settings_t, __VA_ARGS__)
static const me_setting_t token_settings[] = {
    TOKENS("algorithm", ME_SETTING_ENUM, alg, "HS256", .choices = algorithms),
    TOKENS("hs256_secret", ME_SETTING_SECRET, hs256_secret, ME_DEV_HS256_SECRET),
    TOKENS("es256_public_key_file", ME_SETTING_STRING, es256_public_key_file, ""),
    TOKENS("es256_private_key_file", ME_SETTING_STRING, es256_private_key_file, ""),
    TOKENS("issuer", ME_SETTING_STRING, issuer, "mediaedge-dev"),
    TOKENS("audience", ME_SETTING_STRING, audience, "mediaedge"),
    TOKENS("leeway", ME_SETTING_DURATION, leeway, "30s"),
    TOKENS("allow_hs256_in_production", ME_SETTING_BOOL, allow_hs256_in_production, "false"),
    TOKENS("cache_entries", ME_SETTING_INT, cache_entries, "4096", .max = 1000000),
};

static int token_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_token_settings_t *t = values;

    if (t->alg == ME_ALG_ES256 && !*t->es256_public_key_file)
        return me_config_reject(ck, &t->alg, "tokens.algorithm is ES256 but tokens.es256_public_key_file is empty");
    if (t->alg == ME_ALG_HS256 && strlen(t->hs256_secret) < 32)
        return me_config_reject(ck, &t->hs256_secret, "tokens.hs256_secret must be at least 32 bytes for HS256");
    return 0;
}

static int token_refuse(const me_config_t *cfg, const void *values, me_config_refusal_t *r)
{
    const me_token_settings_t *t = values;

    /* With ES256 the verifier refuses HS256 tokens, so the secret is not checked then; a
     * worker checks no tokens at all (and forgets the secret: me_config_forget_secrets). */
    if (t->alg != ME_ALG_HS256 || cfg->role == ME_ROLE_WORKER)
        return 0;
    if (!strcmp(t->hs256_secret, ME_DEV_HS256_SECRET))
        *r = (me_config_refusal_t){ME_RISK_KEY, "tokens.hs256_secret", "the development key is", "",
                                   "set MEDIAEDGE_TOKENS_HS256_SECRET_FILE"};
    else if (!t->allow_hs256_in_production)
        *r = (me_config_refusal_t){ME_RISK_KEY, "tokens.algorithm", "HS256 is",
                                   " unless tokens.allow_hs256_in_production is true", "use ES256"};
    else
        return 0;
    return 1;
}

const me_config_section_t me_token_config_section = {
    .name = "tokens", .size = sizeof(me_token_settings_t), ME_CONFIG_TABLE(token_settings),
    .check = token_check, .refuse_in_production = token_refuse,
};
