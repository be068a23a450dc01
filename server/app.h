/* app.h: the wiring. Builds the parts a role needs from the configuration (token verifier,
 * storage, upload locks and service, CORS policy, blocking-work pool, job processing,
 * housekeeping) and registers the routes, handing each endpoint family its dependencies as
 * a small struct. The only file that knows every part; server/http/server.c runs the
 * process around it (listeners, loops, drain) and handlers know only what they are given.
 *
 * Life: me_app_new() at start, me_app_routes() while h2o is set up, me_app_start() once
 * the loops serve, me_app_quiesce() after the drain while the loops still run (blocking
 * work finishes and answers its requests), me_app_free() after the loops have stopped. */
#ifndef ME_APP_H
#define ME_APP_H

#include <stddef.h>
#include <h2o.h>
#include "server/core/config.h"

typedef struct me_app me_app_t;

/* Builds the parts cfg's role needs. Role worker: the token keys are wiped from cfg first
 * (a process that decodes files from strangers holds no key). NULL with err set when a part
 * cannot start (the reason names the setting); nothing is left running. */
me_app_t *me_app_new(me_config_t *cfg, char *err, size_t errlen);

/* Registers the role's routes on host. ready(ready_arg) answers /readyz. */
void me_app_routes(me_app_t *app, h2o_hostconf_t *host, int (*ready)(void *arg), void *ready_arg);

/* Starts the sweep of expired uploads (at once, then every 10 minutes). The job runner and
 * the webhook sender started with me_app_new(), before the loops, so that a completed
 * upload always finds them. */
void me_app_start(me_app_t *app);

/* Stops housekeeping and runs out the blocking work queued for requests; call while the
 * loops still run, so that each job's answer reaches its loop. */
void me_app_quiesce(me_app_t *app);

/* Stops the job runner (jobs running finish, queued ones wait in storage) and frees every
 * part; after the loops have stopped. NULL is fine. */
void me_app_free(me_app_t *app);

#endif
