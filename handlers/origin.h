/* origin.h: GET and HEAD /m/<album>/<media-id>/<file>, the origin that CloudFront fetches
 * (and, standalone, that viewers reach with signed URLs or cookies). */
#ifndef ME_HANDLERS_ORIGIN_H
#define ME_HANDLERS_ORIGIN_H

#include <h2o.h>
#include "server/core/pool.h"
#include "server/delivery/delivery.h"
#include "server/storage/storage.h"

typedef struct {
    me_delivery_t *delivery; /* the request checks (signatures or the origin secret), chunk size */
    me_storage_t *storage;   /* where manifests and objects are read */
    me_pool_t *pool;         /* where reads run (they block) */
} me_origin_deps_t;

/* Registers /m/ on host; deps is copied, what it points to must outlive host. */
void me_origin_register(h2o_hostconf_t *host, const me_origin_deps_t *deps);

#endif
