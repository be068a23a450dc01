/* montages.h: POST /v1/albums/<album>/montages (a one-second montage of the album's media;
 * premium, the app backend's token of scope montage) and GET
 * /v1/albums/<album>/montages/<id> (its status, progress, and once ready its film's and
 * poster's signed URLs). */
#ifndef ME_HANDLERS_MONTAGES_H
#define ME_HANDLERS_MONTAGES_H

#include <h2o.h>
#include "server/auth/token.h"
#include "server/core/config.h"
#include "server/core/pool.h"
#include "server/delivery/delivery.h"
#include "server/storage/storage.h"

typedef struct {
    const me_config_t *cfg;        /* the montages section */
    me_token_verifier_t *verifier; /* checks the bearer token */
    me_pool_t *pool;               /* where media are read and the montage stored (it blocks) */
    me_storage_t *storage;
    me_delivery_t *delivery;                   /* signs the film's and poster's URLs */
    void (*on_job)(void *ctx, const char *id); /* a montage's job was stored (NULL: none here) */
    void *on_job_ctx;
} me_montages_deps_t;

/* Adds the montages' handler to pathconf (the /v1/albums route, whose media handler passes
 * .../montages paths on); deps is copied, what it points to must outlive it. */
void me_montages_register(h2o_pathconf_t *pathconf, const me_montages_deps_t *deps);

#endif
