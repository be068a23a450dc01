/* h2o_private.c: the few places mediaedge reaches inside libh2o 2.2.5 (see h2o_private.h). */
#include <h2o.h>
#include <h2o/http2.h>
#include <h2o/http2_internal.h>
#include "server/http/h2o_private.h"

#if H2O_VERSION_MAJOR != 2 || H2O_VERSION_MINOR != 2 || H2O_VERSION_PATCH != 5
#error "server/http/h2o_private.c reads libh2o 2.2.5's internals; check them against this libh2o first"
#endif

h2o_buffer_t *me_h2o_take_http2_body(h2o_req_t *req)
{
    if (req->version != 0x200) /* only libh2o's HTTP/2 streams make these */
        return NULL;
    h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    h2o_buffer_t *buf = stream->_req_body;
    if (buf == NULL || buf->bytes != req->entity.base || buf->size != req->entity.len)
        return NULL;
    stream->_req_body = NULL;
    return buf;
}

int me_h2o_socket_holds_input(h2o_socket_t *sock)
{
    return sock->input != NULL && sock->input->size != 0;
}

static int count_request(h2o_req_t *req, void *cbdata)
{
    (void)req;
    ++*(int *)cbdata;
    return 0;
}

int me_h2o_http2_requests(h2o_context_t *ctx)
{
    int n = 0;
    if (ctx->globalconf->http2.callbacks.foreach_request != NULL)
        ctx->globalconf->http2.callbacks.foreach_request(ctx, count_request, &n);
    return n;
}
