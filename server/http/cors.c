/* cors.c: the CORS policy of the API routes: origin matching, preflights, response headers. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/http/cors.h"
#include "server/http/server_config.h"

struct me_cors {
    char *list;               /* a copy of http.cors_origins; origins point into it */
    size_t n;
    h2o_iovec_t *origins;
    char max_age[24];         /* Access-Control-Max-Age: whole seconds */
};

me_cors_t *me_cors_new(const me_config_t *cfg)
{
    const me_http_settings_t *hs = me_http_settings(cfg);
    me_cors_t *c = calloc(1, sizeof(*c));
    const char *p, *item;
    size_t len, n = 0;

    if (c == NULL || (c->list = strdup(hs->cors_origins)) == NULL)
        goto fail;
    for (p = c->list; me_config_list_next(&p, &item, &len);)
        n++;
    if (n > 0 && (c->origins = calloc(n, sizeof(*c->origins))) == NULL)
        goto fail;
    for (p = c->list; me_config_list_next(&p, &item, &len);)
        c->origins[c->n++] = h2o_iovec_init(item, len);
    snprintf(c->max_age, sizeof(c->max_age), "%" PRIu64, hs->cors_max_age / 1000);
    return c;
fail:
    me_cors_free(c);
    return NULL;
}

void me_cors_free(me_cors_t *c)
{
    if (c == NULL)
        return;
    free(c->origins);
    free(c->list);
    free(c);
}

int me_cors_allowed(const me_cors_t *c, const char *origin, size_t len)
{
    for (size_t i = 0; i < c->n; i++)
        if (h2o_lcstris(origin, len, c->origins[i].base, c->origins[i].len))
            return 1;
    return 0;
}

static void add(h2o_req_t *req, const char *name, const char *value, size_t len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value, len);
}

me_cors_verdict_t me_cors_apply(const me_cors_t *c, h2o_req_t *req, const char *methods)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1);
    int preflight = i >= 0 && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")) &&
                    h2o_find_header_by_str(&req->headers, H2O_STRLIT("access-control-request-method"), -1) >= 0;

    if (c->n > 0)
        add(req, "vary", H2O_STRLIT("Origin"));
    if (i < 0)
        return ME_CORS_PASS;
    h2o_iovec_t origin = req->headers.entries[i].value;
    if (!me_cors_allowed(c, origin.base, origin.len))
        return preflight ? ME_CORS_PREFLIGHT_REFUSED : ME_CORS_PASS;
    add(req, "access-control-allow-origin", origin.base, origin.len);
    if (!preflight) {
        add(req, "access-control-expose-headers", H2O_STRLIT(ME_CORS_EXPOSE_HEADERS));
        return ME_CORS_PASS;
    }
    add(req, "access-control-allow-methods", methods, strlen(methods));
    add(req, "access-control-allow-headers", H2O_STRLIT(ME_CORS_ALLOW_HEADERS));
    add(req, "access-control-max-age", c->max_age, strlen(c->max_age));
    return ME_CORS_PREFLIGHT;
}
