/* jobq_local.c: the local job queue backend: an array of entries under one lock; pops wait
 * on a condition variable until the earliest entry is due. Sized for one process's backlog. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/jobs/jobq_backend.h"

typedef struct {
    char id[ME_JOBQ_ID_MAX + 1];
    int64_t not_before; /* ms since the epoch */
    int running;
} entry_t;

typedef struct {
    me_jobq_t super;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    entry_t *entries;
    size_t n, cap;
    int closed;
} local_t;

static void local_free(me_jobq_t *_q)
{
    local_t *q = (local_t *)_q;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->changed);
    free(q->entries);
    free(q);
}

/* The entry of id, or NULL; with the lock held. */
static entry_t *find(local_t *q, const char *id)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->entries[i].id, id) == 0)
            return &q->entries[i];
    return NULL;
}

static int local_push(me_jobq_t *_q, const char *id, int64_t not_before)
{
    local_t *q = (local_t *)_q;
    size_t len = strlen(id);
    int ret = 0;
    pthread_mutex_lock(&q->lock);
    if (find(q, id) != NULL)
        goto exit;
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        entry_t *e = realloc(q->entries, cap * sizeof(*e));
        if (e == NULL) {
            ret = ME_ENOMEM;
            goto exit;
        }
        q->entries = e, q->cap = cap;
    }
    entry_t *e = &q->entries[q->n++];
    memcpy(e->id, id, len + 1);
    e->not_before = not_before;
    e->running = 0;
    pthread_cond_broadcast(&q->changed);
exit:
    pthread_mutex_unlock(&q->lock);
    return ret;
}

static int local_pop(me_jobq_t *_q, char *id)
{
    local_t *q = (local_t *)_q;
    int ret = ME_EDRAINING;
    pthread_mutex_lock(&q->lock);
    while (!q->closed) {
        entry_t *first = NULL;
        for (size_t i = 0; i < q->n; i++)
            if (!q->entries[i].running && (first == NULL || q->entries[i].not_before < first->not_before))
                first = &q->entries[i];
        int64_t now = me_jobq_now();
        if (first != NULL && first->not_before <= now) {
            first->running = 1;
            memcpy(id, first->id, sizeof(first->id));
            ret = 0;
            break;
        }
        if (first == NULL) {
            pthread_cond_wait(&q->changed, &q->lock);
        } else {
            struct timespec until = {.tv_sec = first->not_before / 1000,
                                     .tv_nsec = (long)(first->not_before % 1000) * 1000000};
            pthread_cond_timedwait(&q->changed, &q->lock, &until);
        }
    }
    pthread_mutex_unlock(&q->lock);
    return ret;
}

static void local_done(me_jobq_t *_q, const char *id)
{
    local_t *q = (local_t *)_q;
    pthread_mutex_lock(&q->lock);
    entry_t *e = find(q, id);
    if (e != NULL)
        *e = q->entries[--q->n];
    pthread_mutex_unlock(&q->lock);
}

static void local_retry(me_jobq_t *_q, const char *id, int64_t not_before)
{
    local_t *q = (local_t *)_q;
    pthread_mutex_lock(&q->lock);
    entry_t *e = find(q, id);
    if (e != NULL) {
        e->running = 0;
        e->not_before = not_before;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->lock);
}

static size_t local_length(me_jobq_t *_q)
{
    local_t *q = (local_t *)_q;
    pthread_mutex_lock(&q->lock);
    size_t n = q->n;
    pthread_mutex_unlock(&q->lock);
    return n;
}

static void local_close(me_jobq_t *_q)
{
    local_t *q = (local_t *)_q;
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->lock);
}

static const me_jobq_ops_t local_ops = {
    .push = local_push,
    .pop = local_pop,
    .done = local_done,
    .retry = local_retry,
    .length = local_length,
    .close = local_close,
    .free = local_free,
};

me_jobq_t *me_jobq_local_new(void)
{
    local_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->super.ops = &local_ops;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->changed, NULL);
    return &q->super;
}
