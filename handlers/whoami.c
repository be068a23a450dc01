/* whoami.c: answers with the claims of a valid bearer token (never the token itself). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "handlers/whoami.h"
#include "server/http/http.h"
#include "server/core/log.h"

typedef struct {
    h2o_handler_t super;
    me_whoami_deps_t deps;
} whoami_handler_t;

static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    whoami_handler_t *self = (whoami_handler_t *)_self;
    me_token_claims_t c;
    char ref[2 * ME_TOKEN_REF_MAX + 1], body[1024];

    if (!me_http_check_method(req, "GET, HEAD"))
        return 0;
    /* ?scope=upload (or view) asks whether the token allows that */
    me_scope_t scope = 0;
    if (req->query_at != SIZE_MAX) {
        h2o_iovec_t q = h2o_iovec_init(req->path.base + req->query_at, req->path.len - req->query_at);
        if (h2o_memis(q.base, q.len, H2O_STRLIT("?scope=upload")))
            scope = ME_SCOPE_UPLOAD;
        else if (h2o_memis(q.base, q.len, H2O_STRLIT("?scope=view")))
            scope = ME_SCOPE_VIEW;
        else {
            me_http_send_error(req, ME_EINVAL, "The only query is ?scope=upload or ?scope=view.");
            return 0;
        }
    }
    if (me_http_authorize(req, self->deps.verifier, scope, &c) != 0)
        return 0;
    me_log_json_escape(ref, sizeof(ref), c.ref, strlen(c.ref));
    int len = snprintf(body, sizeof(body),
                       "{\"user\":\"%s\",\"album\":\"%s\",\"scope\":\"%s\",\"plan\":\"%s\",\"client\":\"%s\","
                       "\"max_bytes\":%" PRIu64 ",\"ref\":\"%s\",\"expires_at\":%" PRId64 "}",
                       c.sub, c.album, me_token_scope_name(c.scope), me_token_plan_name(c.plan),
                       me_token_client_name(c.client), c.max_bytes, ref, c.exp);
    me_http_send_json(req, 200, body, (size_t)len);
    return 0;
}

void me_whoami_register(h2o_hostconf_t *host, const me_whoami_deps_t *deps)
{
    h2o_pathconf_t *pathconf = me_http_api_route(host, "/v1/whoami", "/v1/whoami", deps->cors, "GET, HEAD");
    whoami_handler_t *h = (whoami_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->deps = *deps;
}
