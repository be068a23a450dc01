/* http.h: what every route shares: registration with request tracking and access logging,
 * request ids, JSON responses, the one mapping of core errors to HTTP responses, bearer
 * token checks, and handing blocking work to a pool without outliving the request. */
#ifndef ME_HTTP_H
#define ME_HTTP_H

#include <stdint.h>
#include <h2o.h>
#include "server/core/config.h"
#include "server/http/cors.h"
#include "server/core/error.h"
#include "server/core/pool.h"
#include "server/auth/token.h"

#define ME_REQID_MAX 64

/* Creates the pathconf for path on host, labelled route in logs and metrics, with the request
 * tracker (request id, in-flight count) as its first handler and the access logger. Endpoint
 * families add their own handler to the returned pathconf. route is not copied. */
h2o_pathconf_t *me_http_route(h2o_hostconf_t *host, const char *path, const char *route);

/* me_http_route() for an API route that web pages on other origins may call under cors's
 * policy (server/http/cors.h): its tracker answers CORS preflights itself (204 allowing methods,
 * e.g. "GET, HEAD", or 403 origin_not_allowed) and puts the CORS headers for an allowed
 * Origin on every other response of the route, errors included. cors and methods are not
 * copied: they must outlive host. */
h2o_pathconf_t *me_http_api_route(h2o_hostconf_t *host, const char *path, const char *route, const me_cors_t *cors,
                                  const char *methods);

/* Sets up tracking and logging ("other") of the host's fallback pathconf (paths no route
 * matched, and requests libh2o refuses before routing, such as a body over max_body bytes:
 * their 413 gets a JSON body naming the limit) and returns it, so that handlers may be added. */
h2o_pathconf_t *me_http_fallback(h2o_hostconf_t *host, uint64_t max_body);

/* Adds the handler that answers any request reaching it with a JSON 404; register it last. */
void me_http_not_found(h2o_pathconf_t *pathconf);

/* The request's id: the client's X-Request-Id when it is [A-Za-z0-9._-]{1,64}, else a fresh
 * random one; also sent back as X-Request-Id. Allocated from req->pool. */
const char *me_http_reqid(h2o_req_t *req);

/* Requests being processed in this process (from routing until their pool is freed). */
int64_t me_http_inflight(void);

/* Adds the response header name (lower case; a literal or a string that outlives req) with
 * value: len bytes, not copied (a literal, or memory of req->pool). */
void me_http_add_header(h2o_req_t *req, const char *name, const char *value, size_t len);

/* Adds the response header name with the decimal v. */
void me_http_add_header_u64(h2o_req_t *req, const char *name, uint64_t v);

/* The value of the request's header name (lower case), or NULL. */
const h2o_iovec_t *me_http_header(h2o_req_t *req, const char *name);

/* The reason phrase of status ("Partial Content"), for handlers that start a response
 * themselves (a generator); "" for a status not in the table. */
const char *me_http_reason(int status);

/* Sends body (of len bytes, copied) with status, content_type (a literal) and
 * Cache-Control: no-store. */
void me_http_send(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);

/* Sends status with no body (Content-Length: 0), and the headers already added. */
void me_http_send_empty(h2o_req_t *req, int status);

/* me_http_send() with Content-Type application/json. */
void me_http_send_json(h2o_req_t *req, int status, const char *body, size_t len);

/* Sends {"error":"<code>","message":"<message>"} with the status me_err_status(err) maps
 * to; message NULL uses the default one. 401s carry WWW-Authenticate, 503s and 507s Retry-After.
 * Every error response goes through here, a HEAD's too: it gets the same status line and
 * headers, and libh2o leaves out the body. */
void me_http_send_error(h2o_req_t *req, int err, const char *message);

/* Returns 1 when the request's method is one of allow (e.g. "GET, HEAD"); otherwise sends
 * 405 with an Allow header and returns 0. allow must be a string literal or outlive req. */
int me_http_check_method(h2o_req_t *req, const char *allow);

/* Checks the request's "Authorization: Bearer <token>" with v at the current time and that
 * its scope is scope (0 accepts either). Returns 0 with *claims filled, or an error after sending the error
 * response itself (401 missing/invalid/expired, 403 wrong scope). */
int me_http_authorize(h2o_req_t *req, me_token_verifier_t *v, me_scope_t scope,
                      me_token_claims_t *claims) ME_MUST_CHECK;

/* Admission of an upload body of len bytes (already received: libh2o reads bodies before any
 * handler) into memory held until its job ends: refused with ME_EBUSY while held bodies would
 * exceed cfg's http.max_body_memory or the data directory's filesystem has less free space
 * than http.min_free_disk. On 0 the caller must me_http_body_release(len) when done.
 * me_http_job_take_body() does both for deferred jobs. */
int me_http_body_admit(const me_config_t *cfg, size_t len) ME_MUST_CHECK;
void me_http_body_release(size_t len);

/* Blocking work for a request. Embed it in a struct allocated with malloc (not from
 * req->pool: the request may die first), fill work and done, and call me_http_defer().
 * In done() (on the loop thread) ->req is NULL when the client went away (HTTP/2 reset,
 * closed connection); done() must then only clean up. done() frees the enclosing struct. */
typedef struct me_http_job {
    me_job_t job;
    h2o_req_t *req;
    void (*work)(struct me_http_job *hj);
    void (*done)(struct me_http_job *hj);
    h2o_iovec_t body; /* the request's body for work(), after me_http_job_take_body() */
    /* private */
    struct me_http_anchor *_anchor;
    h2o_buffer_t *_body_buf; /* taken over from an HTTP/2 stream */
    char *_body_copy;
    size_t _body_admitted;
    struct me_http_loop_jobs *_loop; /* counts its connection's jobs (NULL: not counted) */
    uint64_t _conn;
} me_http_job_t;

/* Gives hj the request's body (admitted with me_http_body_admit()) as hj->body, readable by
 * work() even when the request dies first, without copying it where libh2o allows: an
 * HTTP/1.x connection reads nothing more before the response, so its body stays where it
 * is; an HTTP/2 stream's body buffer is taken over; anything else is copied. Call it on the
 * loop thread, before me_http_defer(). Returns 0, or ME_EBUSY with nothing held. */
int me_http_job_take_body(me_http_job_t *hj, h2o_req_t *req, const me_config_t *cfg) ME_MUST_CHECK;

/* Gives back what me_http_job_take_body() held; on the loop thread, when the job ends
 * (also when it was never deferred). Safe to call twice, or without a body. */
void me_http_job_drop_body(me_http_job_t *hj);

/* Runs hj->work on pool and hj->done back on the request's loop thread. Returns 0, or
 * ME_EBUSY/ME_EDRAINING when the pool refuses it (hj untouched: the caller answers and
 * frees). Also ME_EBUSY when the request's connection already has http2_max_streams jobs
 * in flight, counting those whose requests it reset: an HTTP/2 client resetting each stream
 * at once (rapid reset) frees libh2o's stream slots while the work goes on, and could
 * otherwise fill the pools alone. */
int me_http_defer(h2o_req_t *req, me_pool_t *pool, me_http_job_t *hj) ME_MUST_CHECK;
/* As me_http_defer(), the job ahead of those waiting in pool (me_pool_submit_first): for
 * cheap reads a client waits on (an upload's HEAD), not for writes. */
int me_http_defer_first(h2o_req_t *req, me_pool_t *pool, me_http_job_t *hj) ME_MUST_CHECK;

/* The loop-thread receiver for deferred jobs of ctx; set up by the server per loop. */
void me_http_context_init(h2o_context_t *ctx, h2o_multithread_receiver_t *receiver);

#endif
