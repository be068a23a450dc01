/* origin.h: GET and HEAD /m/<album>/<media-id>/<file>, the origin that CloudFront fetches
 * (and, standalone, that viewers reach with signed URLs or cookies). */
#ifndef ME_HANDLERS_ORIGIN_H
#define ME_HANDLERS_ORIGIN_H

#include <h2o.h>
#include "server/core/pool.h"
#include "server/delivery/delivery.h"
#include "server/delivery/hot.h"
#include "server/delivery/serve.h"
#include "server/storage/storage.h"

typedef struct {
    me_delivery_t *delivery; /* the request checks (signatures or the origin secret) */
    me_delivery_objects_t *objects; /* what each path is, from manifests, and storage to read it from */
    me_storage_t *storage;
    me_delivery_buffers_t *buffers; /* the chunks read and sent; their size is the chunk size */
    me_delivery_hot_t *hot;         /* small objects in memory; NULL: none */
    me_pool_t *pool;         /* where reads run (they block) */
} me_origin_deps_t;

/* Registers /m/ on host; deps is copied, what it points to must outlive host. */
void me_origin_register(h2o_hostconf_t *host, const me_origin_deps_t *deps);

#endif
