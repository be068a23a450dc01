/* health.c: /healthz and /readyz for Kubernetes probes and load balancers.
 * Readiness reflects this process only (initialised, not draining): a storage outage shows in
 * metrics and in the requests that need storage, so one S3 hiccup does not empty a service. */
#include "handlers/health.h"
#include "server/http/http.h"

typedef struct {
    h2o_handler_t super;
    me_health_deps_t deps;
    int readiness; /* 0: /healthz, 1: /readyz */
} health_handler_t;

static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    health_handler_t *self = (health_handler_t *)_self;
    if (!me_http_check_method(req, "GET, HEAD"))
        return 0;
    if (!self->readiness || self->deps.ready(self->deps.arg))
        me_http_send_json(req, 200, H2O_STRLIT("{\"status\":\"ok\"}"));
    else
        me_http_send_error(req, ME_EDRAINING, "Not ready: starting or shutting down.");
    return 0;
}

static void add(h2o_hostconf_t *host, const me_health_deps_t *deps, const char *path, int readiness)
{
    h2o_pathconf_t *pathconf = me_http_route(host, path, path);
    health_handler_t *h = (health_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->deps = *deps;
    h->readiness = readiness;
}

void me_health_register(h2o_hostconf_t *host, const me_health_deps_t *deps)
{
    add(host, deps, "/healthz", 0);
    add(host, deps, "/readyz", 1);
}
