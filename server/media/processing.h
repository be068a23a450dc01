/* processing.h: what happens to a media after its upload: the job queues, the job runners
 * in two lanes (photos on jobs.workers threads, videos on jobs.video_workers threads of
 * their own), and the webhooks that tell the app backend. The server runs it in the roles
 * `worker` and `all`. */
#ifndef ME_PROCESSING_H
#define ME_PROCESSING_H

#include "server/core/config.h"
#include "server/jobs/jobq.h"
#include "server/jobs/webhook.h"
#include "server/storage/storage.h"

typedef struct me_processing me_processing_t;

/* Starts the webhook sender and the job runner over st (not owned): jobs found in storage
 * are queued again. Its queues ("photo", "video", "hooks") come from queues (NULL: local
 * ones). The pipelines set themselves up on their first media (libvips takes longer to load
 * than the rest of the start). NULL with err filled on failure. */
me_processing_t *me_processing_start(const me_config_t *cfg, me_storage_t *st, const me_jobq_maker_t *queues, char *err,
                                     size_t errlen);

/* Queues the job of media_id (its jobs/<media_id>.json is stored). For me_uploads_on_job(). */
void me_processing_queue(void *processing, const char *media_id);

/* The webhook sender processing raises its events on, for others to raise theirs
 * (media.deleted); owned by p. */
me_webhooks_t *me_processing_webhooks(me_processing_t *p);

/* Stops taking jobs and waits for the ones running; then frees. NULL is fine. */
void me_processing_stop(me_processing_t *p);

#endif
