/* media.h: the media API: GET and DELETE /v1/media/<id>; GET /v1/albums/<album>/media?ids=...
 * (many at once), GET /v1/albums/<album>/cookies (CloudFront signed cookies for the album),
 * DELETE /v1/albums/<album>. */
#ifndef ME_HANDLERS_MEDIA_H
#define ME_HANDLERS_MEDIA_H

#include <h2o.h>
#include "server/auth/token.h"
#include "server/core/pool.h"
#include "server/delivery/delivery.h"
#include "server/delivery/hot.h"
#include "server/delivery/view.h"
#include "server/http/cors.h"
#include "server/jobs/webhook.h"
#include "server/storage/storage.h"

#define ME_MEDIA_BATCH_MAX 100 /* ids in one GET /v1/albums/<album>/media */

typedef struct {
    me_token_verifier_t *verifier; /* checks the bearer token */
    const me_cors_t *cors;         /* browsers' origins */
    me_pool_t *pool;               /* where manifests are read and media deleted (it blocks) */
    me_storage_t *storage;
    me_delivery_t *delivery;       /* signs URLs and cookies */
    me_delivery_views_t *views;    /* media as viewers see them, cached */
    me_webhooks_t *hooks;          /* media.deleted goes there; NULL: none */
    me_delivery_hot_t *hot;        /* the origin's small objects, forgotten when deleted; NULL: none */
} me_media_deps_t;

/* Registers /v1/media and /v1/albums on host; deps is copied, what it points to must outlive
 * host. Returns the /v1/albums route, whose .../montages paths it passes on to the handler
 * added after it (handlers/montages.h). */
h2o_pathconf_t *me_media_register(h2o_hostconf_t *host, const me_media_deps_t *deps);

#endif
