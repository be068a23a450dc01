/* h2o_private.h: everything mediaedge reads or changes inside libh2o 2.2.5 beyond its public
 * API, in one place. configure refuses any other libh2o (the layouts below are that
 * version's); a new libh2o means re-reading server/http/h2o_private.c first. What each
 * relies on:
 * - me_h2o_take_http2_body(): h2o_http2_stream_t (lib/http2/... in <h2o/http2_internal.h>)
 *   embeds the h2o_req_t as its member `req` and keeps the request body in `_req_body`,
 *   which it frees with the stream unless it is NULL. Debian installs that header without
 *   the klib khash.h it includes: server/http/compat/khash.h stands in for it.
 * - me_h2o_socket_holds_input(): h2o_socket_t's `input` buffer is what the connection has
 *   read and not yet handed on (an HTTP/1 request still arriving).
 * - me_h2o_http2_requests(): globalconf->http2.callbacks.foreach_request walks the open
 *   HTTP/2 streams of a context (what libh2o's own graceful shutdown uses). */
#ifndef ME_H2O_PRIVATE_H
#define ME_H2O_PRIVATE_H

#include <h2o.h>

/* The body buffer of an HTTP/2 request, taken from its stream: the caller owns it from now
 * on (h2o_buffer_dispose), and libh2o frees nothing when the stream goes, even on a reset.
 * NULL (nothing taken) for any other request or when the entity is not exactly that buffer
 * (h2c upgrades keep bodies elsewhere). On the request's loop thread. */
h2o_buffer_t *me_h2o_take_http2_body(h2o_req_t *req);

/* 1 when sock holds bytes it has read and not yet handed to a request. */
int me_h2o_socket_holds_input(h2o_socket_t *sock);

/* HTTP/2 requests (streams) open on ctx. */
int me_h2o_http2_requests(h2o_context_t *ctx);

#endif
