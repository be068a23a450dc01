/* whoami.h: GET /v1/whoami, what a bearer token grants, for app developers checking tokens. */
#ifndef ME_HANDLERS_WHOAMI_H
#define ME_HANDLERS_WHOAMI_H

#include <h2o.h>
#include "server/http/server.h"

/* Registers GET /v1/whoami on host; tokens are checked with srv's verifier. */
void me_whoami_register(h2o_hostconf_t *host, me_server_t *srv);

#endif
