/* jobs.c: the job runner: workers, one attempt at a job, retries with backoff, recovery at
 * start and the periodic reconciler. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/jobs/jobs.h"
#include "server/core/clock.h"
#include "server/jobs/jobs_config.h"
#include "server/core/log.h"
#include "server/core/failpoint.h"
#include "server/core/metrics.h"
#include "server/media/deletion.h"
#include "server/media/manifest.h"
#include "server/storage/layout.h"
#include "server/upload/upload.h"

#define DOC_MAX (1 << 20) /* a manifest or job document larger than this is not ours */

static const double ready_buckets[] = {0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600};
ME_COUNTER(jobs_total, "mediaedge_jobs_total", "Processing job attempts by media kind (photo, video) and outcome (ready, failed, retry, skipped: no pipeline here, handed_back: stopped by a shutdown, deleted: the media was deleted meanwhile).",
           "kind,outcome")
ME_HISTOGRAM(ready_seconds, "mediaedge_media_ready_seconds", "From upload completion to the media being ready.",
             NULL, ready_buckets)
ME_GAUGE(queue_gauge, "mediaedge_jobs_queued", "Jobs in this process's queue, waiting or running.", NULL)

struct me_jobs {
    const me_jobs_settings_t *js; /* the jobs section of the configuration */
    me_storage_t *st;
    me_jobq_t *q;
    me_job_process_fn process;
    void *ctx;
    me_webhooks_t *hooks;
    const char *kind; /* the lane's kind of media (NULL: every kind) */
    int lane_workers; /* the lane's threads (0: jobs.workers) */
    pthread_t *workers, reconciler;
    int nworkers, reconciling;
    int (*lead)(void *ctx, const char *task, uint64_t period_ms); /* NULL: always reconcile */
    void *lead_ctx;
    pthread_mutex_t lock; /* stopping, for the reconciler's sleep */
    pthread_cond_t wake;
    int stopping;
};

/* Media ids are made like upload ids; they come back from storage listings: check. */
static int id_valid(const char *id, size_t len)
{
    return me_upload_id_valid(id, len);
}

/* 1 when j's lane runs media of kind: its kinds are one name or several, comma-separated. */
static int lane_runs(const me_jobs_t *j, const char *kind)
{
    size_t n = kind != NULL ? strlen(kind) : 0;
    if (j->kind == NULL || kind == NULL)
        return 1;
    for (const char *p = j->kind; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && memcmp(p, kind, n) == 0)
            return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

/* jobs/<id>.json; ids are checked before (id_valid), so the key fits. */
static void job_key_of(char *key, size_t size, const char *id)
{
    (void)!me_layout_job(key, size, id);
}

/* The JSON object at key: 0 with *doc set, ME_ENOTFOUND, or ME_EIO (unreadable or not an
 * object: a document we did not write). */
static int load(me_jobs_t *j, const char *key, json_t **doc)
{
    int ret = me_storage_get_json(j->st, key, DOC_MAX, doc);
    if (ret == ME_EINVAL)
        me_log_error(NULL, "jobs: %s is not a JSON object; left alone", key);
    return ret == 0 || ret == ME_ENOTFOUND ? ret : ME_EIO;
}

/* The manifest of id, as load() answers. */
static int load_manifest(me_jobs_t *j, const char *id, json_t **manifest)
{
    int ret = me_manifest_load(j->st, id, manifest);
    if (ret == ME_EINVAL)
        me_log_error(NULL, "jobs: the manifest of %s is not a JSON object; left alone", id);
    return ret == 0 || ret == ME_ENOTFOUND ? ret : ME_EIO;
}

static int store_manifest(me_jobs_t *j, const json_t *manifest)
{
    return me_manifest_store(j->st, manifest) == 0 ? 0 : ME_EIO;
}

int me_jobs_submit(me_storage_t *st, const char *media_id)
{
    char key[ME_STORAGE_KEY_MAX];
    if (!id_valid(media_id, strlen(media_id)) || me_layout_job(key, sizeof(key), media_id) != 0)
        return ME_EINVAL;
    json_t *job = json_pack("{s:s,s:s}", "media_id", media_id, "kind", "process");
    int ret = job != NULL ? me_storage_put_json(st, key, job) : ME_ENOMEM;
    json_decref(job);
    return ret == 0 || ret == ME_ENOMEM ? ret : ME_EIO;
}

int me_jobs_submit_missing(me_storage_t *st, const char *media_id)
{
    char key[ME_STORAGE_KEY_MAX];
    me_storage_stat_t stat;
    if (!id_valid(media_id, strlen(media_id)) || me_layout_job(key, sizeof(key), media_id) != 0)
        return ME_EINVAL;
    return me_storage_head(st, key, &stat) == ME_ENOTFOUND ? me_jobs_submit(st, media_id) : 0;
}

/* Replaces the document at key with doc (kept). 0 or ME_EIO. */
static int store(me_jobs_t *j, const char *key, json_t *doc)
{
    return me_storage_put_json(j->st, key, doc) == 0 ? 0 : ME_EIO;
}

/* Counts an attempt's outcome for the media's kind ("photo", "video"). */
static void count(const json_t *manifest, const char *outcome)
{
    const char *kind = me_manifest_kind(manifest);
    const char *labels[] = {
        kind != NULL && (strcmp(kind, "photo") == 0 || strcmp(kind, "video") == 0 || strcmp(kind, "montage") == 0)
            ? kind
            : "other",
        outcome};
    me_metric_add(jobs_total, labels, 1);
}

/* The job of a media now ready or failed is over: the backend is told (the webhook is
 * stored first), then the job's document goes. A failure to delete only means the next
 * start finds a job whose media is finished, and drops it then. 0, or ME_EIO when the
 * webhook could not be stored (the job stays, to be run again). */
static int finish(me_jobs_t *j, const char *job_key, const json_t *manifest)
{
    const char *status = me_manifest_status(manifest), *kind = me_manifest_kind(manifest);
    int montage = kind != NULL && strcmp(kind, "montage") == 0, ready = status != NULL && strcmp(status, "ready") == 0;
    const char *event =
        montage ? (ready ? "montage.ready" : "montage.failed") : (ready ? "media.ready" : "media.failed");
    if (j->hooks != NULL && status != NULL && me_webhooks_raise(j->hooks, event, manifest) != 0)
        return ME_EIO;
    if (me_storage_delete(j->st, job_key) != 0)
        me_log_error(NULL, "jobs: could not delete %s; it will be dropped at the next start", job_key);
    return 0;
}

/* The job of a media that is gone. */
static void drop(me_jobs_t *j, const char *job_key)
{
    if (me_storage_delete(j->st, job_key) != 0)
        me_log_error(NULL, "jobs: could not delete %s; it will be dropped at the next start", job_key);
}

/* After a write for the media of manifest (deletion.h's rule): when the media was deleted
 * meanwhile, everything of it goes, what this job wrote included, and 1 is returned; 0 when
 * it was not; ME_EIO when storage cannot tell (the job runs again, and looks first). */
static int deleted(me_jobs_t *j, const json_t *manifest)
{
    const char *id = me_manifest_id(manifest), *album = me_manifest_album(manifest);
    int d = me_media_deleted(j->st, id);
    if (d != 1)
        return d;
    if (album == NULL || me_media_purge(j->st, album, id) != 0)
        return ME_EIO;
    count(manifest, "deleted");
    me_log_info(NULL, "media %s was deleted; what its job made is removed", id);
    return 1;
}

/* After a failed attempt: the media fails for good, or the job waits for its next try. */
static int failed(me_jobs_t *j, const char *id, json_t *job, json_t *manifest, const me_job_failure_t *why,
                  int64_t now, int64_t *retry_at)
{
    char job_key[ME_STORAGE_KEY_MAX];
    job_key_of(job_key, sizeof(job_key), id);
    /* storage full is not the media's fault: tried again, the attempt not counted */
    json_int_t attempts = json_integer_value(json_object_get(job, "attempts")) + (why->err != ME_ENOSPACE);
    if (!why->permanent && attempts < j->js->max_attempts) {
        int shift = attempts < 1 ? 0 : attempts - 1 < 20 ? (int)attempts - 1 : 20;
        int64_t delay = (int64_t)j->js->retry_after << shift;
        *retry_at = now + delay;
        json_object_set_new(job, "attempts", json_integer(attempts));
        json_object_set_new(job, "next_at", json_integer(*retry_at));
        json_object_set_new(job, "last_error", json_string(why->message));
        if (store(j, job_key, job) != 0)
            return ME_EIO;
        count(manifest, "retry");
        me_log_info(NULL, "media %s: attempt %d failed (%s); next in %" PRId64 " ms", id, (int)attempts,
                    why->message, delay);
        return ME_EBUSY;
    }
    /* counted before anyone can see the outcome (the manifest, the webhook), so that whoever
     * sees it finds it counted; an attempt whose storing fails is counted again when redone */
    count(manifest, "failed");
    int gone;
    if (me_manifest_set_failed(manifest, me_err_code(why->err), why->message, now / 1000) != 0 ||
        store_manifest(j, manifest) != 0 || (gone = deleted(j, manifest)) < 0)
        return ME_EIO;
    if (gone)
        return 0;
    if (finish(j, job_key, manifest) != 0)
        return ME_EIO;
    me_log_info(NULL, "media %s failed: %s (%s)", id, me_err_code(why->err), why->message);
    return 0;
}

int me_jobs_run(me_jobs_t *j, const char *id, int64_t now, int64_t *retry_at)
{
    char job_key[ME_STORAGE_KEY_MAX];
    json_t *job = NULL, *manifest = NULL, *result = NULL;
    me_job_failure_t why = {.err = ME_EINTERNAL};
    int ret;

    if (!id_valid(id, strlen(id)))
        return 0;
    job_key_of(job_key, sizeof(job_key), id);
    if ((ret = load(j, job_key, &job)) != 0)
        return ret == ME_ENOTFOUND ? 0 : ret; /* done already */
    if ((ret = load_manifest(j, id, &manifest)) != 0) {
        if (ret == ME_ENOTFOUND) /* the media was deleted meanwhile */
            drop(j, job_key), ret = 0;
        goto exit;
    }
    if (!lane_runs(j, me_manifest_kind(manifest)))
        goto exit; /* another lane's: left as it is, for it */
    /* a deleted media's job (queued again by a retry or the reconciler) only cleans up */
    if ((ret = deleted(j, manifest)) != 0)
        goto exit;
    if (me_manifest_is_final(manifest)) {
        ret = finish(j, job_key, manifest); /* a crash came between the manifest and the job's deletion */
        goto exit;
    }
    /* a poison job (one that kills its worker: OOM, a crash, a pod killed each time) is not
     * taken again forever: each start is recorded in the job's document before it runs; starts
     * that ended neither in a failed attempt (attempts) nor in the job's end were deaths, and
     * after jobs.max_deliveries of them the media fails */
    json_int_t starts = json_integer_value(json_object_get(job, "starts"));
    if (starts - json_integer_value(json_object_get(job, "attempts")) >= j->js->max_deliveries) {
        why = (me_job_failure_t){.err = ME_EINTERNAL, .permanent = 1};
        snprintf(why.message, sizeof(why.message),
                 "processing was started %d times and its worker stopped each time before it ended", (int)starts);
        me_log_warn(NULL, "media %s: %s; it fails", id, why.message);
        ret = failed(j, id, job, manifest, &why, now, retry_at);
        goto exit;
    }
    json_object_set_new(job, "starts", json_integer(starts + 1));
    if ((ret = store(j, job_key, job)) != 0)
        goto exit;
    if ((ret = me_manifest_set_processing(manifest, now / 1000)) != 0 || (ret = store_manifest(j, manifest)) != 0 ||
        (ret = deleted(j, manifest)) != 0)
        goto exit;
    if ((ret = j->process(j->ctx, j->st, manifest, &result, &why)) == ME_EUNSUPPORTED && !why.permanent) {
        ret = me_manifest_set_waiting(manifest) == 0 && store_manifest(j, manifest) == 0 ? deleted(j, manifest)
                                                                                          : ME_EIO;
        if (ret == 0)
            count(manifest, "skipped");
        json_object_set_new(job, "starts", json_integer(starts)); /* not a death: not counted */
        (void)!store(j, job_key, job);
        goto exit;
    }
    if (ret == ME_EDRAINING) { /* stopped midway: handed back whole, for another worker to redo now */
        ret = me_manifest_set_waiting(manifest) == 0 && store_manifest(j, manifest) == 0 ? ME_EBUSY : ME_EIO;
        json_object_set_new(job, "starts", json_integer(starts)); /* handed back, not a death */
        (void)!store(j, job_key, job);
        *retry_at = now; /* a shared queue gives it to another instance at once; a local one keeps it in storage */
        count(manifest, "handed_back");
        me_log_info(NULL, "media %s: handed back unfinished (shutting down)", id);
        goto exit;
    }
    if (ret != 0) {
        ret = failed(j, id, job, manifest, &why, now, retry_at);
        goto exit;
    }
    me_failpoint("jobs.processed"); /* the variants are stored, the manifest not yet ready */
    count(manifest, "ready"); /* before it can be seen, as for "failed" */
    /* the variants were written by process(): one look after the manifest covers them too */
    if ((ret = me_manifest_set_ready(manifest, result, me_clock_wall_ms() / 1000)) != 0 ||
        (ret = store_manifest(j, manifest)) != 0 || (ret = deleted(j, manifest)) != 0)
        goto exit;
    me_failpoint("jobs.ready_stored");
    if ((ret = finish(j, job_key, manifest)) != 0)
        goto exit;
    json_int_t created = json_integer_value(json_object_get(manifest, "created_at"));
    if (created > 0)
        me_metric_add(ready_seconds, NULL, (double)(me_clock_wall_ms() - (int64_t)created * 1000) / 1000.0);
exit:
    if (ret == 1)
        ret = 0; /* deleted() found the media deleted: the job is over */
    json_decref(result);
    json_decref(manifest);
    json_decref(job);
    return ret;
}

/* ---- finding work in storage ---- */

typedef struct {
    const char *prefix;
    char (*ids)[ME_JOBQ_ID_MAX + 1];
    size_t n, cap;
} ids_t;

/* Collects <id> of every "<dir>/<id>.json" listed. */
static int collect(const char *key, const me_storage_stat_t *stat, void *arg)
{
    ids_t *ids = arg;
    char id[ME_JOBQ_ID_MAX + 1];
    (void)stat;
    if (!me_layout_doc_id(key, ids->prefix, ".json", id, sizeof(id)) || !id_valid(id, strlen(id)))
        return 0;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 256;
        void *p = realloc(ids->ids, cap * sizeof(*ids->ids));
        if (p == NULL)
            return ME_ENOMEM;
        ids->ids = p, ids->cap = cap;
    }
    memcpy(ids->ids[ids->n++], id, sizeof(id));
    return 0;
}

static int list_ids(me_jobs_t *j, const char *prefix, ids_t *ids)
{
    *ids = (ids_t){.prefix = prefix};
    int ret = me_storage_list(j->st, prefix, collect, ids);
    if (ret != 0) {
        free(ids->ids);
        *ids = (ids_t){.prefix = prefix};
    }
    return ret == 0 ? 0 : ret == ME_ENOMEM ? ret : ME_EIO;
}

int me_jobs_reconcile(me_jobs_t *j, int64_t now)
{
    ids_t ids;
    /* deletions a crash cut short go wholly, whether or not their clients ask again */
    if (me_media_finish_deletions(j->st, j->hooks) < 0)
        me_log_error(NULL, "jobs: the reconciler could not list the deletions under way; trying again later");
    int queued = 0, ret = list_ids(j, ME_LAYOUT_MANIFESTS, &ids);
    if (ret != 0)
        return ret;
    for (size_t i = 0; i < ids.n; i++) {
        json_t *manifest;
        if (load_manifest(j, ids.ids[i], &manifest) != 0)
            continue;
        int stale = me_manifest_status(manifest) != NULL && !me_manifest_is_final(manifest) &&
                    now - me_manifest_since(manifest) * 1000 >= (int64_t)j->js->stale_after;
        json_decref(manifest);
        if (!stale || me_jobs_submit_missing(j->st, ids.ids[i]) != 0)
            continue;
        if (me_jobq_push(j->q, ids.ids[i], 0) == 0)
            queued++;
    }
    free(ids.ids);
    if (queued > 0)
        me_log_info(NULL, "jobs: the reconciler queued %d media stuck before ready", queued);
    return queued;
}

/* ---- threads ---- */

/* One job, for me_jobq_work(): storage failures are tried again later too. */
static int run_popped(void *ctx, const char *id, int64_t now, int64_t *retry_at)
{
    me_jobs_t *j = ctx;
    int ret = me_jobs_run(j, id, now, retry_at);
    me_metric_set(queue_gauge, NULL, (double)me_jobq_length(j->q));
    if (ret != 0 && ret != ME_EBUSY) {
        *retry_at = now + (int64_t)j->js->retry_after;
        ret = ME_EBUSY;
    }
    return ret;
}

static void *work(void *arg)
{
    me_jobs_t *j = arg;
    me_jobq_work(j->q, run_popped, j);
    return NULL;
}

/* Looks at once (off the start's path: a listing of every manifest), then every
 * reconcile_every until stopped. */
static void *reconcile_loop(void *arg)
{
    me_jobs_t *j = arg;
    pthread_mutex_lock(&j->lock);
    while (!j->stopping) {
        pthread_mutex_unlock(&j->lock);
        char task[48];
        snprintf(task, sizeof(task), "reconcile-%s", j->kind != NULL ? j->kind : "all");
        if (j->lead != NULL && j->lead(j->lead_ctx, task, j->js->reconcile_every) != 1)
            ; /* another instance looks this time */
        else if (me_jobs_reconcile(j, me_clock_wall_ms()) < 0)
            me_log_error(NULL, "jobs: the reconciler could not list the media; trying again later");
        pthread_mutex_lock(&j->lock);
        int64_t until = me_clock_wall_ms() + (int64_t)j->js->reconcile_every;
        struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000};
        while (!j->stopping && pthread_cond_timedwait(&j->wake, &j->lock, &ts) == 0)
            ; /* woken early, not stopping: sleep on to the same time */
    }
    pthread_mutex_unlock(&j->lock);
    return NULL;
}

me_jobs_t *me_jobs_new(const me_config_t *cfg, me_storage_t *st, me_jobq_t *q, me_job_process_fn process,
                       void *ctx, me_webhooks_t *hooks)
{
    me_jobs_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->js = me_jobs_settings(cfg), j->st = st, j->q = q, j->process = process, j->ctx = ctx, j->hooks = hooks;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->wake, NULL);
    return j;
}

void me_jobs_leader(me_jobs_t *j, int (*lead)(void *ctx, const char *task, uint64_t period_ms), void *ctx)
{
    j->lead = lead, j->lead_ctx = ctx;
}

void me_jobs_lane(me_jobs_t *j, const char *kind, int workers)
{
    j->kind = kind, j->lane_workers = workers;
}

int me_jobs_start(me_jobs_t *j)
{
    ids_t ids;
    int ret = list_ids(j, ME_LAYOUT_JOBS, &ids);
    if (ret != 0)
        return ret;
    for (size_t i = 0; i < ids.n && ret == 0; i++) {
        char key[ME_STORAGE_KEY_MAX];
        json_t *job;
        int64_t at = 0;
        job_key_of(key, sizeof(key), ids.ids[i]);
        if (load(j, key, &job) == 0) {
            at = (int64_t)json_integer_value(json_object_get(job, "next_at"));
            json_decref(job);
        }
        ret = me_jobq_push(j->q, ids.ids[i], at);
    }
    free(ids.ids);
    if (ret != 0)
        return ret;
    if (ids.n > 0)
        me_log_info(NULL, "jobs: %zu found in storage, queued again", ids.n);
    int n = j->lane_workers > 0 ? j->lane_workers : j->js->workers > 0 ? j->js->workers : 1;
    if ((j->workers = calloc((size_t)n, sizeof(*j->workers))) == NULL)
        return ME_ENOMEM;
    for (; j->nworkers < n; j->nworkers++)
        if (pthread_create(&j->workers[j->nworkers], NULL, work, j) != 0)
            break;
    j->reconciling = pthread_create(&j->reconciler, NULL, reconcile_loop, j) == 0;
    return j->nworkers > 0 ? 0 : ME_ENOMEM;
}

void me_jobs_queue(me_jobs_t *j, const char *media_id)
{
    if (me_jobq_push(j->q, media_id, 0) != 0)
        me_log_error(NULL, "jobs: could not queue media %s; the reconciler will", media_id);
    me_metric_set(queue_gauge, NULL, (double)me_jobq_length(j->q));
}

void me_jobs_stop(me_jobs_t *j)
{
    me_jobq_close(j->q);
    pthread_mutex_lock(&j->lock);
    j->stopping = 1;
    pthread_cond_broadcast(&j->wake);
    pthread_mutex_unlock(&j->lock);
    for (int i = 0; i < j->nworkers; i++)
        pthread_join(j->workers[i], NULL);
    if (j->reconciling)
        pthread_join(j->reconciler, NULL);
    j->nworkers = 0, j->reconciling = 0;
}

void me_jobs_free(me_jobs_t *j)
{
    if (j == NULL)
        return;
    me_jobs_stop(j);
    free(j->workers);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->wake);
    free(j);
}
