/* metrics.c: serves every registered metric at /metrics (Prometheus text format 0.0.4). */
#include <stdlib.h>
#include "handlers/metrics.h"
#include "server/http/http.h"
#include "server/core/metrics.h"

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    size_t len;
    char *text;
    if (!me_http_check_method(req, "GET, HEAD"))
        return 0;
    if ((text = me_metrics_render(&len)) == NULL) {
        me_http_send_error(req, ME_ENOMEM, NULL);
        return 0;
    }
    me_http_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
    return 0;
}

void me_metrics_handler_register(h2o_hostconf_t *host)
{
    h2o_pathconf_t *pathconf = me_http_route(host, "/metrics", "/metrics");
    h2o_create_handler(pathconf, sizeof(h2o_handler_t))->on_req = on_req;
}
