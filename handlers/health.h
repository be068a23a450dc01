/* health.h: the probes /healthz (the process works) and /readyz (ready for traffic). */
#ifndef ME_HANDLERS_HEALTH_H
#define ME_HANDLERS_HEALTH_H

#include <h2o.h>

typedef struct {
    int (*ready)(void *arg); /* 1 when the process takes traffic (serving, not draining) */
    void *arg;
} me_health_deps_t;

/* Registers /healthz and /readyz on host; deps is copied. */
void me_health_register(h2o_hostconf_t *host, const me_health_deps_t *deps);

#endif
