/* metrics.h: /metrics in the Prometheus text format. */
#ifndef ME_HANDLERS_METRICS_H
#define ME_HANDLERS_METRICS_H

#include <h2o.h>

/* Registers GET /metrics on host. */
void me_metrics_handler_register(h2o_hostconf_t *host);

#endif
