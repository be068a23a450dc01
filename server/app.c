/* app.c: builds the parts of each role and registers the routes with their dependencies. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "handlers/demo.h"
#include "handlers/health.h"
#include "handlers/media.h"
#include "handlers/montages.h"
#include "handlers/metrics.h"
#include "handlers/origin.h"
#include "handlers/uploads.h"
#include "handlers/whoami.h"
#include "server/app.h"
#include "server/auth/token.h"
#include "server/auth/token_config.h"
#include "server/core/log.h"
#include "server/core/pool.h"
#include "server/delivery/delivery.h"
#include "server/delivery/delivery_config.h"
#include "server/delivery/view.h"
#include "server/jobs/jobq.h"
#include "server/jobs/webhook.h"
#include "server/http/cors.h"
#include "server/http/http.h"
#include "server/http/server_config.h"
#include "server/media/processing.h"
#include "server/redis/lease.h"
#include "server/redis/redis.h"
#include "server/upload/upload_config.h"
#include "server/redis/redis_config.h"
#include "server/storage/storage.h"
#include "server/upload/lock.h"
#include "server/upload/upload.h"

#define VIEW_CACHE 2048    /* media views kept rendered: a few KiB each */
#define OBJECT_CACHE 16384 /* origin paths known: 300 bytes each */
/* Origin reads queued at most, per pool thread: each holds a small struct until it runs (its
 * chunk buffer is made then), and a CDN or a gallery asks for many files at once. */
#define ORIGIN_QUEUE 1024
#define IDLE_CHUNKS 1024 /* the origin's chunk buffers kept for reuse at most (those not used for a second go) */

struct me_app {
    me_config_t *cfg;
    me_token_verifier_t *verifier; /* roles api and all */
    me_delivery_t *delivery;       /* roles api and all: the CloudFront key and the origin's checks */
    me_delivery_views_t *views;    /* roles api and all: media as the media API shows them */
    me_delivery_objects_t *objects; /* roles api and all: what the origin's paths are */
    me_pool_t *origin_pool;        /* roles api and all: the origin's reads, apart from uploads' */
    me_delivery_buffers_t *buffers; /* roles api and all: the origin's chunks */
    me_delivery_hot_t *hot;         /* roles api and all: the origin's small objects in memory (NULL: none) */
    me_storage_t *storage;
    me_locks_t *locks;
    me_uploads_t *uploads;
    me_cors_t *cors;
    me_pool_t *pool;
    me_processing_t *processing; /* roles worker and all */
    me_jobq_t *hooks_q;          /* role api: its own webhook sender, for media.deleted */
    me_webhooks_t *own_hooks;
    me_webhooks_t *hooks;        /* where events are raised: processing's, or own_hooks */
    me_redis_t *redis;           /* queue.backend redis: locks, queues and leases shared by every instance */
    me_jobq_maker_t queues;      /* the queues processing makes: Redis ones with redis */
    me_jobq_t *lanes_q[2];       /* role api with redis: the photo and video queues it feeds */
    me_lease_t *leases[4];       /* periodic tasks one instance does at a time (app_lead) */
    char lease_names[4][48];
    int nleases;
    pthread_t sweeper;
    int sweeper_started, stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

/* This server's public base URL for signed URLs when no CDN is configured: its TLS listener
 * when it has a real certificate (a browser shows no picture from a self-signed one), else
 * the plain one; a wildcard address read as localhost. */
static void own_url(const me_config_t *cfg, char *out, size_t len)
{
    const me_listen_settings_t *l = me_listen_settings(cfg);
    int tls = *l->https != '\0' && (*me_tls_settings(cfg)->cert_file != '\0' || *l->http == '\0');
    const char *listen = tls ? l->https : l->http, *colon = strrchr(listen, ':');
    size_t hostlen = colon != NULL ? (size_t)(colon - listen) : strlen(listen);
    int wildcard = hostlen == 0 || (hostlen == 7 && !memcmp(listen, "0.0.0.0", 7)) ||
                   (hostlen == 4 && !memcmp(listen, "[::]", 4));
    snprintf(out, len, "%s://%.*s%s", tls ? "https" : "http", wildcard ? 9 : (int)hostlen,
             wildcard ? "localhost" : listen, colon != NULL ? colon : "");
}

/* The CloudFront signer and the origin's checks, from the cdn and delivery sections. */
static me_delivery_t *delivery_new(const me_config_t *cfg, char *err, size_t errlen)
{
    me_delivery_config_t dc;
    char own[320];
    me_delivery_config_from(cfg, &dc);
    own_url(cfg, own, sizeof(own));
    return me_delivery_new(&dc, me_server_settings(cfg)->data_dir, own, err, errlen);
}

/* ---- Redis: queues, locks and leases shared by several instances ---- */

static me_jobq_t *app_make_queue(void *ctx, const char *name, char *err, size_t errlen)
{
    me_app_t *app = ctx;
    return me_jobq_redis_new(app->redis, me_redis_settings(app->cfg)->prefix, name,
                             me_queue_settings(app->cfg)->claim_after, err, errlen);
}

/* A media whose job was just stored (a completed upload, a montage asked for): to this
 * process's lanes; on role api with redis to the workers' queues at once (both lanes: the one
 * not of its kind drops it after a look at the manifest); else (role api alone) a worker finds
 * it at its start or through its reconciler. */
static void app_queue_job(void *ctx, const char *media_id)
{
    me_app_t *app = ctx;
    if (app->processing != NULL) {
        me_processing_queue(app->processing, media_id);
        return;
    }
    for (int i = 0; i < 2 && app->lanes_q[i] != NULL; i++)
        if (me_jobq_push(app->lanes_q[i], media_id, 0) != 0)
            me_log_error(NULL, "jobs: could not queue media %s; the reconciler will", media_id);
}

/* 1 when this instance does task this period (it holds the task's lease, for one and a half
 * periods: a holder that dies is replaced within that), 0 when another does, or when Redis
 * cannot say. */
static int app_lead(void *ctx, const char *task, uint64_t period_ms)
{
    me_app_t *app = ctx;
    me_lease_t *l = NULL;
    if (app->redis == NULL)
        return 1;
    pthread_mutex_lock(&app->lock);
    for (int i = 0; i < app->nleases && l == NULL; i++)
        if (strcmp(app->lease_names[i], task) == 0)
            l = app->leases[i];
    if (l == NULL && app->nleases < (int)(sizeof(app->leases) / sizeof(app->leases[0])) &&
        (l = me_lease_new(app->redis, me_redis_settings(app->cfg)->prefix, task, period_ms + period_ms / 2)) != NULL) {
        snprintf(app->lease_names[app->nleases], sizeof(app->lease_names[0]), "%s", task);
        app->leases[app->nleases++] = l;
    }
    pthread_mutex_unlock(&app->lock);
    return l != NULL && me_lease_hold(l) == 1;
}

/* With queue.backend redis: the pool, then the locks; the URL (it may hold a password) is
 * wiped from the configuration once the pool has its copy. 0, or -1 with err filled. */
static int redis_start(me_app_t *app, char *err, size_t errlen)
{
    const me_redis_settings_t *rs = me_redis_settings(app->cfg);
    me_redis_url_t url;
    char why[256];
    if (me_redis_url_parse(rs->url, &url, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "redis.url: %s", why);
        return -1;
    }
    me_redis_options_t opt = {
        .connect_timeout = rs->connect_timeout, .timeout = rs->timeout, .max_idle = rs->pool_size};
    app->redis = me_redis_new(&url, &opt, err, errlen);
    if (app->redis == NULL) {
        explicit_bzero(&url, sizeof(url));
        return -1;
    }
    me_config_forget_secrets(app->cfg, &me_redis_config_section);
    char shown[400];
    me_redis_url_redacted(&url, shown, sizeof(shown));
    me_log_info(NULL, "queue: jobs, webhooks, upload locks and leases in redis at %s", shown);
    explicit_bzero(&url, sizeof(url));
    app->queues = (me_jobq_maker_t){.make = app_make_queue, .lead = app_lead, .ctx = app};
    return (app->locks = me_locks_redis_new(app->redis, rs->prefix, rs->lock_ttl, err, errlen)) != NULL ? 0 : -1;
}

me_app_t *me_app_new(me_config_t *cfg, char *err, size_t errlen)
{
    me_app_t *app = calloc(1, sizeof(*app));
    if (app == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    app->cfg = cfg;
    pthread_mutex_init(&app->lock, NULL);
    pthread_cond_init(&app->wake, NULL);

    /* a worker decodes files from anyone: it holds no key that could mint or check tokens, nor
     * the CloudFront key or the origin's secrets */
    if (cfg->role == ME_ROLE_WORKER) {
        me_config_forget_secrets(cfg, &me_token_config_section);
        me_config_forget_secrets(cfg, &me_cdn_config_section);
    } else if ((app->verifier = me_token_verifier_new(cfg, err, errlen)) == NULL ||
               (app->delivery = delivery_new(cfg, err, errlen)) == NULL) {
        goto fail;
    }
    if ((app->storage = me_storage_open(cfg, err, errlen)) == NULL)
        goto fail;
    if (app->delivery != NULL && ((app->views = me_delivery_views_new(app->delivery, app->storage, VIEW_CACHE)) == NULL ||
                                  (app->objects = me_delivery_objects_new(app->storage, OBJECT_CACHE)) == NULL ||
                                  (app->buffers = me_delivery_buffers_new(me_delivery_chunk_size(app->delivery),
                                                                          IDLE_CHUNKS)) == NULL)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (app->delivery != NULL) {
        const me_delivery_settings_t *ds = me_delivery_settings(cfg);
        app->hot = me_delivery_hot_new((size_t)ds->hot_cache, (size_t)ds->hot_object_max, (int64_t)ds->hot_ttl);
        if (app->hot == NULL && ds->hot_cache > 0) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    if (me_queue_settings(cfg)->backend == ME_QUEUE_REDIS && redis_start(app, err, errlen) != 0)
        goto fail;
    if (me_queue_settings(cfg)->backend == ME_QUEUE_LOCAL && me_config_is_production(cfg))
        me_log_warn(NULL, "queue.backend is local: upload locks and jobs are this process's own; run one instance "
                          "only, or set queue.backend: redis");
    if ((app->locks == NULL && (app->locks = me_locks_local_new(ME_UPLOAD_LOCKS)) == NULL) ||
        (app->cors = me_cors_new(cfg)) == NULL ||
        (app->uploads = me_uploads_new(app->storage, app->locks, cfg)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->role != ME_ROLE_API) {
        if ((app->processing =
                 me_processing_start(cfg, app->storage, app->redis != NULL ? &app->queues : NULL, err, errlen)) == NULL)
            goto fail;
        app->hooks = me_processing_webhooks(app->processing);
    } else {
        /* deletions happen here too: an API pod sends their events itself */
        if (app->redis != NULL ? (app->hooks_q = app_make_queue(app, "hooks", err, errlen)) == NULL
                               : (app->hooks_q = me_jobq_local_new()) == NULL) {
            if (app->redis == NULL)
                snprintf(err, errlen, "out of memory");
            goto fail;
        }
        if ((app->own_hooks = me_webhooks_new(cfg, app->storage, app->hooks_q, err, errlen)) == NULL)
            goto fail;
        if (me_webhooks_start(app->own_hooks) != 0) {
            snprintf(err, errlen, "the webhooks found in storage could not be read");
            goto fail;
        }
        app->hooks = app->own_hooks;
        if (app->redis != NULL) { /* the workers are other processes: tell them through Redis */
            if ((app->lanes_q[0] = app_make_queue(app, "photo", err, errlen)) == NULL ||
                (app->lanes_q[1] = app_make_queue(app, "video", err, errlen)) == NULL)
                goto fail;
        }
    }
    me_uploads_on_job(app->uploads, app_queue_job, app);
    int threads = me_server_settings(cfg)->pool_threads;
    if ((app->pool = me_pool_new("pool", threads, (size_t)threads * 64)) == NULL) {
        snprintf(err, errlen, "cannot start %d pool threads", threads);
        goto fail;
    }
    /* viewers must not wait behind uploads' writes, nor uploads behind a burst of viewers */
    if (app->delivery != NULL &&
        (app->origin_pool = me_pool_new("origin", threads, (size_t)threads * ORIGIN_QUEUE)) == NULL) {
        snprintf(err, errlen, "cannot start %d origin threads", threads);
        goto fail;
    }
    return app;
fail:
    me_app_free(app);
    return NULL;
}

static int ready_always(void *arg)
{
    (void)arg;
    return 1;
}

void me_app_routes(me_app_t *app, h2o_hostconf_t *host, int (*ready)(void *arg), void *ready_arg)
{
    const me_config_t *cfg = app->cfg;
    me_health_register(host, &(me_health_deps_t){.ready = ready != NULL ? ready : ready_always, .arg = ready_arg});
    me_metrics_handler_register(host);
    if (cfg->role != ME_ROLE_WORKER) { /* a worker serves probes and metrics only */
        me_whoami_register(host, &(me_whoami_deps_t){.verifier = app->verifier, .cors = app->cors});
        me_uploads_register(host, &(me_uploads_deps_t){.cfg = cfg, .verifier = app->verifier, .cors = app->cors,
                                                       .pool = app->pool, .uploads = app->uploads});
        me_origin_register(host, &(me_origin_deps_t){.delivery = app->delivery,
                                                     .objects = app->objects,
                                                     .storage = app->storage,
                                                     .buffers = app->buffers,
                                                     .hot = app->hot,
                                                     .pool = app->origin_pool});
        h2o_pathconf_t *albums = me_media_register(host, &(me_media_deps_t){.verifier = app->verifier,
                                                                            .cors = app->cors,
                                                                            .pool = app->pool,
                                                                            .storage = app->storage,
                                                                            .delivery = app->delivery,
                                                                            .views = app->views,
                                                                            .hooks = app->hooks,
                                                                            .hot = app->hot});
        me_montages_register(albums,
                             &(me_montages_deps_t){.cfg = cfg,
                                                   .verifier = app->verifier,
                                                   .pool = app->pool,
                                                   .storage = app->storage,
                                                   .delivery = app->delivery,
                                                   .on_job = app_queue_job,
                                                   .on_job_ctx = app});
    }
    h2o_pathconf_t *fallback = me_http_fallback(host, me_http_settings(cfg)->max_patch_size);
    if (me_server_settings(cfg)->demo_page) {
        me_demo_register(fallback);
        if (cfg->role != ME_ROLE_WORKER) /* it uploads and views: the API's routes */
            me_demo_page_register(host, &(me_demo_deps_t){.chunk_size = me_http_settings(cfg)->max_patch_size});
    }
    me_http_not_found(fallback);
}

/* ---- housekeeping ---- */

/* Sweeps expired uploads at once and every uploads.sweep_every until quiesced. */
static void *sweeper_main(void *arg)
{
    me_app_t *app = arg;
    const uint64_t every_ms = me_upload_settings(app->cfg)->sweep_every;
    pthread_setname_np(pthread_self(), "sweeper");
    pthread_mutex_lock(&app->lock);
    while (!app->stopping) {
        pthread_mutex_unlock(&app->lock);
        int removed = 0;
        if (!app_lead(app, "sweep", every_ms))
            ; /* another instance sweeps (queue.backend redis) */
        else if (me_upload_sweep(app->uploads, (int64_t)time(NULL), &removed) != 0)
            me_log_warn(NULL, "the sweep of expired uploads failed; retrying in %llu s",
                        (unsigned long long)(every_ms / 1000));
        else if (removed > 0)
            me_log_info(NULL, "removed %d expired uploads", removed);
        pthread_mutex_lock(&app->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)(every_ms / 1000);
        until.tv_nsec += (long)(every_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!app->stopping && pthread_cond_timedwait(&app->wake, &app->lock, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&app->lock);
    return NULL;
}

void me_app_start(me_app_t *app)
{
    app->sweeper_started = pthread_create(&app->sweeper, NULL, sweeper_main, app) == 0;
    if (!app->sweeper_started)
        me_log_warn(NULL, "cannot start the sweep of expired uploads; expired uploads stay until a restart");
}

void me_app_quiesce(me_app_t *app)
{
    pthread_mutex_lock(&app->lock);
    app->stopping = 1;
    pthread_cond_signal(&app->wake);
    pthread_mutex_unlock(&app->lock);
    if (app->sweeper_started)
        pthread_join(app->sweeper, NULL);
    app->sweeper_started = 0;
    me_pool_free(app->pool);
    app->pool = NULL;
    me_pool_free(app->origin_pool);
    app->origin_pool = NULL;
}

void me_app_free(me_app_t *app)
{
    if (app == NULL)
        return;
    me_app_quiesce(app);
    me_processing_stop(app->processing); /* the jobs running finish; the queued wait in storage */
    me_webhooks_free(app->own_hooks);
    me_jobq_free(app->hooks_q);
    me_jobq_free(app->lanes_q[0]);
    me_jobq_free(app->lanes_q[1]);
    me_uploads_free(app->uploads);
    me_locks_free(app->locks);
    for (int i = 0; i < app->nleases; i++)
        me_lease_free(app->leases[i]);
    me_redis_free(app->redis); /* after everything that uses it */
    me_storage_close(app->storage);
    me_token_verifier_free(app->verifier);
    me_delivery_views_free(app->views);
    me_delivery_objects_free(app->objects);
    me_delivery_buffers_free(app->buffers);
    me_delivery_hot_free(app->hot);
    me_delivery_free(app->delivery);
    me_cors_free(app->cors);
    pthread_cond_destroy(&app->wake);
    pthread_mutex_destroy(&app->lock);
    free(app);
}
