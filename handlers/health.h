/* health.h: the probes /healthz (the process works) and /readyz (ready for traffic). */
#ifndef ME_HANDLERS_HEALTH_H
#define ME_HANDLERS_HEALTH_H

#include <h2o.h>
#include "server/http/server.h"

/* Registers /healthz and /readyz on host; srv answers readiness. */
void me_health_register(h2o_hostconf_t *host, me_server_t *srv);

#endif
