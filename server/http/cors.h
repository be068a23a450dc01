/* cors.h: cross-origin access (CORS) to the API routes for web pages on the origins of
 * http.cors_origins: which origins may call, the answer to a preflight, and the headers every
 * response to an allowed origin carries.
 *
 * Origins are matched exactly (scheme, host and port; case-insensitively), never by wildcard:
 * requests carry credentials (Authorization). No Access-Control-Allow-Credentials is sent:
 * the token travels in a header, not in cookies. */
#ifndef ME_CORS_H
#define ME_CORS_H

#include <stddef.h>
#include <h2o.h>
#include "server/core/config.h"

/* Request headers a page may send (the preflight's Access-Control-Allow-Headers). */
#define ME_CORS_ALLOW_HEADERS                                                                      \
    "Authorization, Content-Type, Tus-Resumable, Upload-Length, Upload-Defer-Length, Upload-Offset, " \
    "Upload-Metadata, Upload-Checksum, Upload-Concat, Upload-Draft-Interop-Version, Upload-Complete, " \
    "X-Request-Id, X-HTTP-Method-Override"

/* Response headers a page may read (Access-Control-Expose-Headers). */
#define ME_CORS_EXPOSE_HEADERS                                                                      \
    "Location, Upload-Offset, Upload-Length, Upload-Expires, Upload-Metadata, Upload-Defer-Length, " \
    "Upload-Concat, Tus-Resumable, Tus-Version, Tus-Extension, Tus-Max-Size, Tus-Checksum-Algorithm, " \
    "Upload-Complete, Upload-Limit, Upload-Draft-Interop-Version, Media-Id, X-Request-Id, Retry-After"

typedef struct me_cors me_cors_t;

/* What me_cors_apply() made of a request. */
typedef enum {
    ME_CORS_PASS,              /* not a preflight: on to the route's handler */
    ME_CORS_PREFLIGHT,         /* a preflight from an allowed origin: answer 204 (headers added) */
    ME_CORS_PREFLIGHT_REFUSED, /* a preflight from any other origin: answer 403 (ME_EORIGIN) */
} me_cors_verdict_t;

/* Makes the policy from cfg's http.cors_origins (as me_config_load() validated it) and
 * http.cors_max_age. Returns NULL when memory runs out. The caller owns it and frees it with
 * me_cors_free(); cfg may be freed afterwards. Read-only once made: any thread. */
me_cors_t *me_cors_new(const me_config_t *cfg);
void me_cors_free(me_cors_t *c);

/* 1 when origin (len bytes, as sent in an Origin header) is one of the allowed origins. */
int me_cors_allowed(const me_cors_t *c, const char *origin, size_t len);

/* Runs before the route's handler, on the loop thread. A preflight (OPTIONS with Origin and
 * Access-Control-Request-Method) is told apart from any other OPTIONS (tus asks for its
 * capabilities without Access-Control-Request-Method). When the Origin is allowed, adds to
 * req->res.headers (from req->pool): Access-Control-Allow-Origin (the request's origin) and,
 * for a preflight, Access-Control-Allow-Methods (methods, e.g. "POST, OPTIONS", which must
 * outlive req), -Allow-Headers and -Max-Age; for anything else, -Expose-Headers. Vary: Origin
 * goes on every response while any origin is allowed (the answer depends on it). The
 * caller answers as the verdict says; an origin not allowed gets no CORS headers. */
me_cors_verdict_t me_cors_apply(const me_cors_t *c, h2o_req_t *req, const char *methods);

#endif
