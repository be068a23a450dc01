/* webhook.h: events to the app backend (media.ready, media.failed), POSTed as JSON to
 * webhooks.url and signed: Mediaedge-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret,
 * "<t>.<body>")>. Each event is a document in storage (webhooks/<event id>.json) from the
 * moment it is raised until the backend answered 2xx or its attempts ran out, so
 * deliveries survive a restart; the event id (Mediaedge-Delivery, and "id" in the body)
 * stays the same across retries for the backend to drop duplicates. */
#ifndef ME_WEBHOOK_H
#define ME_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "server/core/config.h"
#include "server/core/error.h"
#include "server/jobs/jobq.h"
#include "server/storage/storage.h"

#define ME_WEBHOOK_SIGNATURE_MAX 96

/* Writes "t=<t>,v1=<64 hex>" for body into out (ME_WEBHOOK_SIGNATURE_MAX bytes). 0 or
 * ME_EINTERNAL. */
int me_webhook_signature(const char *secret, int64_t t, const char *body, size_t len, char *out) ME_MUST_CHECK;

typedef struct me_webhooks me_webhooks_t;

/* Deliveries over st and q (neither owned) to cfg's webhooks.url. NULL with err filled when
 * the settings cannot work (a URL without a secret) or memory ran out. With no URL the
 * object exists and raising an event does nothing. */
me_webhooks_t *me_webhooks_new(const me_config_t *cfg, me_storage_t *st, me_jobq_t *q, char *err, size_t errlen);

/* Queues the deliveries found in storage and starts the sender thread. 0 or ME_EIO. */
int me_webhooks_start(me_webhooks_t *w) ME_MUST_CHECK;

/* Raises event ("media.ready", "media.failed"; "montage.ready", "montage.failed", whose body
 * names the manifest "montage") about media (a manifest, not kept): stores
 * the delivery, then queues it. 0, or ME_EIO when it could not be stored. */
int me_webhooks_raise(me_webhooks_t *w, const char *event, const json_t *media) ME_MUST_CHECK;

/* One attempt at delivery id, on the calling thread. 0 when it is over (delivered, given
 * up, or gone from storage), ME_EBUSY with *retry_at (ms since the epoch) when it must be
 * tried again, also when storage could not read it. */
int me_webhooks_deliver(me_webhooks_t *w, const char *id, int64_t now_ms, int64_t *retry_at) ME_MUST_CHECK;

void me_webhooks_stop(me_webhooks_t *w);
void me_webhooks_free(me_webhooks_t *w);

#endif
