/* whoami.h: GET /v1/whoami, what a bearer token grants, for app developers checking tokens. */
#ifndef ME_HANDLERS_WHOAMI_H
#define ME_HANDLERS_WHOAMI_H

#include <h2o.h>
#include "server/auth/token.h"
#include "server/http/cors.h"

typedef struct {
    me_token_verifier_t *verifier; /* checks the bearer token */
    const me_cors_t *cors;         /* browsers' origins */
} me_whoami_deps_t;

/* Registers GET /v1/whoami on host; deps is copied, what it points to must outlive host. */
void me_whoami_register(h2o_hostconf_t *host, const me_whoami_deps_t *deps);

#endif
