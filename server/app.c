/* app.c: builds the parts of each role and registers the routes with their dependencies. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "handlers/demo.h"
#include "handlers/health.h"
#include "handlers/metrics.h"
#include "handlers/uploads.h"
#include "handlers/whoami.h"
#include "server/app.h"
#include "server/auth/token.h"
#include "server/auth/token_config.h"
#include "server/core/log.h"
#include "server/core/pool.h"
#include "server/http/cors.h"
#include "server/http/http.h"
#include "server/http/server_config.h"
#include "server/media/processing.h"
#include "server/storage/storage.h"
#include "server/upload/lock.h"
#include "server/upload/upload.h"

#define SWEEP_INTERVAL_S 600

struct me_app {
    me_config_t *cfg;
    me_token_verifier_t *verifier; /* roles api and all */
    me_storage_t *storage;
    me_locks_t *locks;
    me_uploads_t *uploads;
    me_cors_t *cors;
    me_pool_t *pool;
    me_processing_t *processing; /* roles worker and all */
    pthread_t sweeper;
    int sweeper_started, stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

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

    /* a worker decodes files from anyone: it holds no key that could mint or check tokens */
    if (cfg->role == ME_ROLE_WORKER)
        me_config_forget_secrets(cfg, &me_token_config_section);
    else if ((app->verifier = me_token_verifier_new(cfg, err, errlen)) == NULL)
        goto fail;
    if ((app->storage = me_storage_open(cfg, err, errlen)) == NULL)
        goto fail;
    if ((app->locks = me_locks_local_new(ME_UPLOAD_LOCKS)) == NULL || (app->cors = me_cors_new(cfg)) == NULL ||
        (app->uploads = me_uploads_new(app->storage, app->locks, cfg)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->role != ME_ROLE_API) {
        if ((app->processing = me_processing_start(cfg, app->storage, err, errlen)) == NULL)
            goto fail;
        me_uploads_on_job(app->uploads, me_processing_queue, app->processing);
    }
    int threads = me_server_settings(cfg)->pool_threads;
    if ((app->pool = me_pool_new("pool", threads, (size_t)threads * 64)) == NULL) {
        snprintf(err, errlen, "cannot start %d pool threads", threads);
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
    }
    h2o_pathconf_t *fallback = me_http_fallback(host, me_http_settings(cfg)->max_patch_size);
    if (me_server_settings(cfg)->demo_page)
        me_demo_register(fallback);
    me_http_not_found(fallback);
}

/* ---- housekeeping ---- */

/* Sweeps expired uploads at once and every SWEEP_INTERVAL_S until quiesced. */
static void *sweeper_main(void *arg)
{
    me_app_t *app = arg;
    pthread_setname_np(pthread_self(), "sweeper");
    pthread_mutex_lock(&app->lock);
    while (!app->stopping) {
        pthread_mutex_unlock(&app->lock);
        int removed = 0;
        if (me_upload_sweep(app->uploads, (int64_t)time(NULL), &removed) != 0)
            me_log_warn(NULL, "the sweep of expired uploads failed; retrying in %d s", SWEEP_INTERVAL_S);
        else if (removed > 0)
            me_log_info(NULL, "removed %d expired uploads", removed);
        pthread_mutex_lock(&app->lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += SWEEP_INTERVAL_S;
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
}

void me_app_free(me_app_t *app)
{
    if (app == NULL)
        return;
    me_app_quiesce(app);
    me_processing_stop(app->processing); /* the jobs running finish; the queued wait in storage */
    me_uploads_free(app->uploads);
    me_locks_free(app->locks);
    me_storage_close(app->storage);
    me_token_verifier_free(app->verifier);
    me_cors_free(app->cors);
    pthread_cond_destroy(&app->wake);
    pthread_mutex_destroy(&app->lock);
    free(app);
}
