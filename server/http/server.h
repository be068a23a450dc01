/* server.h: the process around the app (server/app.h): listeners, event-loop threads,
 * readiness and graceful shutdown. */
#ifndef ME_SERVER_H
#define ME_SERVER_H

#include "server/app.h"
#include "server/core/config.h"

typedef struct me_server me_server_t;

/* Runs the server with cfg (already loaded and resolved) until SIGTERM/SIGINT and a drain:
 * /readyz turns 503 at once, listeners stay open for shutdown.delay, then close, HTTP/2
 * clients get GOAWAY, and requests in flight get up to shutdown.drain_timeout. A second
 * signal exits at once (status 1). With announce, prints where it listens and an example
 * command with a fresh token on stdout. app (built by me_app_new(), not owned) gives the
 * routes; its blocking work is run out before the loops stop (me_app_quiesce()). Returns
 * the process exit status: 0 after a drain, 1 when start-up fails (the reason logged). */
int me_server_run(me_config_t *cfg, me_app_t *app, int announce);

/* Blocks SIGTERM, SIGINT and SIGCHLD in the calling thread, and so in every thread it starts
 * from now on: me_server_run() takes them with sigwait (SIGCHLD: server/core/reaper.h).
 * Call it before any thread starts (before me_app_new(), whose job runner has threads), or
 * a signal may land on one of them and kill the process without a drain. */
void me_server_block_signals(void);

#endif
