/* uploads.h: tus 1.0.0 resumable uploads at /v1/uploads, and the IETF resumable-upload draft
 * on the same resources. */
#ifndef ME_HANDLERS_UPLOADS_H
#define ME_HANDLERS_UPLOADS_H

#include <h2o.h>
#include "server/auth/token.h"
#include "server/core/config.h"
#include "server/core/pool.h"
#include "server/http/cors.h"
#include "server/upload/upload.h"

typedef struct {
    const me_config_t *cfg;        /* limits: PATCH size, upload size, body memory */
    me_token_verifier_t *verifier; /* checks the bearer token */
    const me_cors_t *cors;         /* browsers' origins */
    me_pool_t *pool;               /* where the upload core runs (it blocks on storage) */
    me_uploads_t *uploads;         /* the upload core */
} me_uploads_deps_t;

/* Registers /v1/uploads (the collection and its uploads) on host; deps is copied, what it
 * points to must outlive host. */
void me_uploads_register(h2o_hostconf_t *host, const me_uploads_deps_t *deps);

#endif
