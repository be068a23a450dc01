/* token_config.h: the tokens section of the configuration: the algorithm, keys and claims tokens are checked against. */
#ifndef ME_TOKEN_CONFIG_H
#define ME_TOKEN_CONFIG_H

#include <stdint.h>
#include "server/core/config.h"

#define ME_DEV_HS256_SECRET "mediaedge-development-key-do-not-use-in-production"

typedef enum { ME_ALG_HS256, ME_ALG_ES256 } me_token_alg_t;

/* tokens: */
typedef struct {
    me_token_alg_t alg;
    char *hs256_secret;           /* secret */
    char *es256_public_key_file;
    char *es256_private_key_file; /* only for `mediaedge token` (development, tests) */
    char *issuer;
    char *audience;
    uint64_t leeway;              /* ms */
    int allow_hs256_in_production;
    int cache_entries;
} me_token_settings_t;

/* Its secrets are the token keys: a worker forgets them (me_config_forget_secrets()). */
extern const me_config_section_t me_token_config_section;

/* cfg's tokens section (owned by cfg). */
static inline const me_token_settings_t *me_token_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_token_config_section);
}

#endif
