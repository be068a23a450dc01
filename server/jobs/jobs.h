/* jobs.h: the job runner: worker threads that take media ids from the queue and turn an
 * `uploaded` media into a `ready` (or `failed`) one, and the reconciler that queues again
 * what a queue lost. Storage is the truth: jobs/<media-id>.json says a media still needs
 * work (written at upload completion, deleted once the manifest says ready or failed);
 * media/<media-id>.json is replaced whole at each step, so a crash anywhere is repaired by
 * running the job again: a media ends ready exactly once. A media deleted while its job runs
 * stays deleted: the runner looks for its tombstone after each write and then removes what
 * the job made (media/deletion.h). */
#ifndef ME_JOBS_H
#define ME_JOBS_H

#include <stdint.h>
#include <jansson.h>
#include "server/core/config.h"
#include "server/core/error.h"
#include "server/jobs/jobq.h"
#include "server/storage/storage.h"
#include "server/jobs/webhook.h"

/* Why processing failed. */
typedef struct {
    int err;           /* an me_err_t; its me_err_code() goes into the manifest */
    int permanent;     /* the file itself is the problem: retrying cannot help */
    char message[256]; /* for people */
} me_job_failure_t;

/* Makes what a media needs (variants, facts) from its manifest, on a worker thread. On
 * success returns 0 with *result a JSON object (owned by the runner from then on) whose
 * members are set in the manifest; otherwise non-zero with *why filled. ME_EUNSUPPORTED
 * with why->permanent 0 means "no pipeline for this kind here": the media stays uploaded
 * and its job stays in storage for a process that has one (the reconciler offers it again
 * every jobs.stale_after). ME_EDRAINING means "stopped by a shutdown": the job is handed
 * back whole (the media goes back to uploaded, the job stays, no attempt counted) and queued
 * again for now (me_jobs_run() answers ME_EBUSY with retry_at = now): a shared queue gives it
 * to another instance at once, a local one leaves it to the next start. Must be idempotent: a crash can make it run
 * again. */
typedef int (*me_job_process_fn)(void *ctx, me_storage_t *st, const json_t *manifest, json_t **result,
                                 me_job_failure_t *why);

typedef struct me_jobs me_jobs_t;

/* Stores jobs/<media_id>.json, durably: the media needs processing. Any process that runs
 * jobs finds it (at its start, or through its reconciler); me_jobs_queue() tells this one at
 * once. 0, ME_EINVAL (not a media id), ME_ENOMEM, ME_EIO. */
int me_jobs_submit(me_storage_t *st, const char *media_id) ME_MUST_CHECK;

/* me_jobs_submit() unless jobs/<media_id>.json is there already (a job under way keeps its
 * attempts and starts; storage that cannot tell counts as there): 0, or as me_jobs_submit(). */
int me_jobs_submit_missing(me_storage_t *st, const char *media_id) ME_MUST_CHECK;

/* A runner over st and q (neither owned) with cfg's jobs settings (workers, max_attempts,
 * retry_after, reconcile_every, stale_after), running process(ctx, ...). A media that ends
 * ready or failed raises media.ready or media.failed (a montage: montage.ready,
 * montage.failed) on hooks (not owned; may be NULL)
 * before its job goes. NULL when out of memory. */
me_jobs_t *me_jobs_new(const me_config_t *cfg, me_storage_t *st, me_jobq_t *q, me_job_process_fn process,
                       void *ctx, me_webhooks_t *hooks);

/* Makes j a lane (before me_jobs_start()): it runs only media of kind ("photo", "video", or
 * several comma-separated: "video,montage"),
 * leaving the others' jobs as they are for the lane of their kind, on workers threads (0:
 * jobs.workers). Several lanes may share one storage; each lists and reconciles every job
 * but runs only its own. kind is not copied. */
void me_jobs_lane(me_jobs_t *j, const char *kind, int workers);

/* Makes j's reconciler look only when lead(ctx, "reconcile-<kind>", reconcile_every)
 * answers 1, so that one instance of several lists the manifests (before me_jobs_start()). */
void me_jobs_leader(me_jobs_t *j, int (*lead)(void *ctx, const char *task, uint64_t period_ms), void *ctx);

/* Queues every job found in storage, then starts the workers and the reconciler, which
 * looks once at once (on its own thread: start-up does not wait for a listing of every
 * manifest) and then every reconcile_every. 0, or ME_EIO/ME_ENOMEM (nothing started). */
int me_jobs_start(me_jobs_t *j) ME_MUST_CHECK;

/* Queues the job of media_id, whose jobs/<media_id>.json is stored. */
void me_jobs_queue(me_jobs_t *j, const char *media_id);

/* Closes the queue and waits for the workers: a job being processed finishes first. */
void me_jobs_stop(me_jobs_t *j);
void me_jobs_free(me_jobs_t *j);

/* One attempt at the job of media_id, on the calling thread (what a worker does with an id
 * it popped, without the queue). Returns 0 when the job is over (the media is ready or
 * failed, or there was nothing to do), or ME_EBUSY with *retry_at (ms since the epoch)
 * set when it must run again then; ME_EIO when storage failed before anything changed. */
int me_jobs_run(me_jobs_t *j, const char *media_id, int64_t now_ms, int64_t *retry_at) ME_MUST_CHECK;

/* Finishes the deletions a crash cut short (me_media_finish_deletions()), then looks at every
 * manifest: a media still `uploaded` or `processing` stale_after past its
 * last change gets its job document back (when lost) and is queued. Returns how many were
 * queued, or ME_EIO. */
int me_jobs_reconcile(me_jobs_t *j, int64_t now_ms);

#endif
