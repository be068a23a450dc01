/* jobq.c: the local job queue: an array of entries under one lock; pops wait on a
 * condition variable until the earliest entry is due. Sized for one process's backlog. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/jobs/jobq.h"

typedef struct {
    char id[ME_JOBQ_ID_MAX + 1];
    int64_t not_before; /* ms since the epoch */
    int running;
} entry_t;

struct me_jobq {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    entry_t *entries;
    size_t n, cap;
    int closed;
};

int64_t me_jobq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

me_jobq_t *me_jobq_local_new(void)
{
    me_jobq_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return NULL;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->changed, NULL);
    return q;
}

void me_jobq_free(me_jobq_t *q)
{
    if (q == NULL)
        return;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->changed);
    free(q->entries);
    free(q);
}

/* The entry of id, or NULL; with the lock held. */
static entry_t *find(me_jobq_t *q, const char *id)
{
    for (size_t i = 0; i < q->n; i++)
        if (strcmp(q->entries[i].id, id) == 0)
            return &q->entries[i];
    return NULL;
}

int me_jobq_push(me_jobq_t *q, const char *id, int64_t not_before)
{
    size_t len = strlen(id);
    int ret = 0;
    if (len == 0 || len > ME_JOBQ_ID_MAX)
        return ME_EINVAL;
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

int me_jobq_pop(me_jobq_t *q, char *id)
{
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

void me_jobq_done(me_jobq_t *q, const char *id)
{
    pthread_mutex_lock(&q->lock);
    entry_t *e = find(q, id);
    if (e != NULL)
        *e = q->entries[--q->n];
    pthread_mutex_unlock(&q->lock);
}

void me_jobq_retry(me_jobq_t *q, const char *id, int64_t not_before)
{
    pthread_mutex_lock(&q->lock);
    entry_t *e = find(q, id);
    if (e != NULL) {
        e->running = 0;
        e->not_before = not_before;
        pthread_cond_broadcast(&q->changed);
    }
    pthread_mutex_unlock(&q->lock);
}

size_t me_jobq_length(me_jobq_t *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->n;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void me_jobq_close(me_jobq_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->lock);
}

void me_jobq_work(me_jobq_t *q, int (*run)(void *ctx, const char *id, int64_t now, int64_t *retry_at), void *ctx)
{
    char id[ME_JOBQ_ID_MAX + 1];
    while (me_jobq_pop(q, id) == 0) {
        int64_t retry_at = 0;
        if (run(ctx, id, me_jobq_now(), &retry_at) == ME_EBUSY)
            me_jobq_retry(q, id, retry_at);
        else
            me_jobq_done(q, id);
    }
}
