/* server.h: the process: listeners, event-loop threads, the blocking-work pool, readiness and
 * graceful shutdown. */
#ifndef ME_SERVER_H
#define ME_SERVER_H

#include "server/core/config.h"
#include "server/http/cors.h"
#include "server/core/pool.h"
#include "server/auth/token.h"
#include "server/upload/upload.h"

typedef struct me_server me_server_t;

/* Runs the server with cfg (already loaded and resolved) until SIGTERM/SIGINT and a drain:
 * /readyz turns 503 at once, listeners stay open for shutdown.delay, then close, HTTP/2
 * clients get GOAWAY, and requests in flight get up to shutdown.drain_timeout. A second
 * signal exits at once (status 1). With announce, prints where it listens and an example
 * command with a fresh token on stdout. Returns the process exit status: 0 after a drain,
 * 1 when start-up fails (the reason logged). */
int me_server_run(me_config_t *cfg, int announce);

/* For handlers, valid for the server's lifetime. */
const me_config_t *me_server_config(const me_server_t *srv);
me_token_verifier_t *me_server_verifier(const me_server_t *srv);
const me_cors_t *me_server_cors(const me_server_t *srv);
me_pool_t *me_server_pool(const me_server_t *srv);
me_uploads_t *me_server_uploads(const me_server_t *srv);

/* 1 once every loop serves and until a shutdown signal arrives. */
int me_server_is_ready(const me_server_t *srv);

#endif
