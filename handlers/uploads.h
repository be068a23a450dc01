/* uploads.h: tus 1.0.0 resumable uploads at /v1/uploads. */
#ifndef ME_HANDLERS_UPLOADS_H
#define ME_HANDLERS_UPLOADS_H

#include <h2o.h>
#include "server/http/server.h"

/* Registers /v1/uploads (the collection and its uploads) on host. */
void me_uploads_register(h2o_hostconf_t *host, me_server_t *srv);

#endif
