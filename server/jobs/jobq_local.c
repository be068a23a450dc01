/* jobq_local.c: the local job queue backend, in process: every id's entry in a hash set
 * (open addressing, linear probing), the waiting ones also in a binary min-heap by time,
 * so that push, pop, done and retry cost O(log N) under the one lock however long the
 * backlog (reconciling N media pushes N ids while workers pop). Pops wait on a condition
 * variable until the heap's first entry is due. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/core/clock.h"
#include "server/jobs/jobq_backend.h"

#define RUNNING SIZE_MAX /* entry_t.at of an entry that is not in the heap */

typedef struct {
    char id[ME_JOBQ_ID_MAX + 1];
    uint64_t hash;
    int64_t not_before; /* ms since the epoch */
    uint64_t seq;       /* push or retry order: among equal times, the first comes first */
    size_t at;          /* index in the heap, or RUNNING */
} entry_t;

typedef struct {
    me_jobq_t super;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    entry_t **slots; /* the hash set: NULL or an entry; a power of two, at most half full */
    size_t nslots;
    size_t n;       /* entries, waiting or running */
    entry_t **heap; /* the waiting entries; room for all n, so that retry never allocates */
    size_t nheap, heapcap;
    uint64_t seq;
    int closed;
    uint64_t steps; /* heap levels and hash slots visited: the unit test bounds them */
} local_t;

/* ---- the heap ---- */

static int earlier(const entry_t *a, const entry_t *b)
{
    return a->not_before < b->not_before || (a->not_before == b->not_before && a->seq < b->seq);
}

static void heap_set(local_t *q, size_t i, entry_t *e)
{
    q->heap[i] = e;
    e->at = i;
}

/* Moves the entry at i up or down to its place. */
static void heap_fix(local_t *q, size_t i)
{
    entry_t *e = q->heap[i];
    while (i > 0 && earlier(e, q->heap[(i - 1) / 2])) {
        q->steps++;
        heap_set(q, i, q->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t child = 2 * i + 1;
        q->steps++;
        if (child >= q->nheap)
            break;
        if (child + 1 < q->nheap && earlier(q->heap[child + 1], q->heap[child]))
            child++;
        if (!earlier(q->heap[child], e))
            break;
        heap_set(q, i, q->heap[child]);
        i = child;
    }
    heap_set(q, i, e);
}

static void heap_add(local_t *q, entry_t *e)
{
    heap_set(q, q->nheap++, e);
    heap_fix(q, e->at);
}

static void heap_remove(local_t *q, entry_t *e)
{
    size_t i = e->at;
    e->at = RUNNING;
    if (i == --q->nheap)
        return;
    heap_set(q, i, q->heap[q->nheap]);
    heap_fix(q, i);
}

/* ---- the hash set ---- */

static uint64_t hash_id(const char *id)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (; *id != '\0'; id++)
        h = (h ^ (unsigned char)*id) * 0x100000001b3ULL;
    return h;
}

/* The slot of id, or the empty slot where it would go. */
static size_t slot_of(local_t *q, const char *id, uint64_t hash)
{
    size_t mask = q->nslots - 1, i = (size_t)hash & mask;
    while (q->slots[i] != NULL && (q->slots[i]->hash != hash || strcmp(q->slots[i]->id, id) != 0)) {
        q->steps++;
        i = (i + 1) & mask;
    }
    return i;
}

static entry_t *find(local_t *q, const char *id)
{
    if (q->nslots == 0)
        return NULL;
    return q->slots[slot_of(q, id, hash_id(id))];
}

/* Makes room for one more entry in the set and the heap: 0 or ME_ENOMEM, nothing changed. */
static int reserve(local_t *q)
{
    if (q->n + 1 > q->heapcap) {
        size_t cap = q->heapcap ? 2 * q->heapcap : 64;
        entry_t **heap = realloc(q->heap, cap * sizeof(*heap));
        if (heap == NULL)
            return ME_ENOMEM;
        q->heap = heap, q->heapcap = cap;
    }
    if (2 * (q->n + 1) > q->nslots) {
        size_t nslots = q->nslots ? 2 * q->nslots : 128;
        entry_t **old = q->slots;
        size_t nold = q->nslots;
        if ((q->slots = calloc(nslots, sizeof(*q->slots))) == NULL) {
            q->slots = old;
            return ME_ENOMEM;
        }
        q->nslots = nslots;
        for (size_t i = 0; i < nold; i++)
            if (old[i] != NULL)
                q->slots[slot_of(q, old[i]->id, old[i]->hash)] = old[i];
        free(old);
    }
    return 0;
}

/* Takes e out of the set; the entries after it in its probe run move back, so that every
 * entry stays reachable from its home slot without tombstones. */
static void unlink_entry(local_t *q, entry_t *e)
{
    size_t mask = q->nslots - 1, hole = slot_of(q, e->id, e->hash);
    q->slots[hole] = NULL;
    for (size_t i = (hole + 1) & mask; q->slots[i] != NULL; i = (i + 1) & mask) {
        size_t home = (size_t)q->slots[i]->hash & mask;
        q->steps++;
        /* it may fill the hole when its home is not in the cyclic range (hole, i] */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            q->slots[hole] = q->slots[i];
            q->slots[i] = NULL;
            hole = i;
        }
    }
    q->n--;
}

/* ---- the operations ---- */

static int local_push(me_jobq_t *_q, const char *id, int64_t not_before)
{
    local_t *q = (local_t *)_q;
    entry_t *e = NULL;
    int ret = 0;
    pthread_mutex_lock(&q->lock);
    if (find(q, id) != NULL)
        goto exit;
    if ((ret = reserve(q)) != 0 || (e = malloc(sizeof(*e))) == NULL) {
        ret = ME_ENOMEM;
        goto exit;
    }
    strcpy(e->id, id);
    e->hash = hash_id(id);
    e->not_before = not_before;
    e->seq = q->seq++;
    q->slots[slot_of(q, id, e->hash)] = e;
    q->n++;
    heap_add(q, e);
    if (e->at == 0) /* a pop waits for the first entry only */
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
        entry_t *first = q->nheap > 0 ? q->heap[0] : NULL;
        if (first != NULL && first->not_before <= me_clock_wall_ms()) {
            heap_remove(q, first);
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
    if (e != NULL) {
        if (e->at != RUNNING)
            heap_remove(q, e);
        unlink_entry(q, e);
        free(e);
    }
    pthread_mutex_unlock(&q->lock);
}

static void local_retry(me_jobq_t *_q, const char *id, int64_t not_before)
{
    local_t *q = (local_t *)_q;
    pthread_mutex_lock(&q->lock);
    entry_t *e = find(q, id);
    if (e != NULL) {
        if (e->at != RUNNING)
            heap_remove(q, e);
        e->not_before = not_before;
        e->seq = q->seq++;
        heap_add(q, e); /* room was reserved at its push */
        if (e->at == 0)
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

static void local_free(me_jobq_t *_q)
{
    local_t *q = (local_t *)_q;
    for (size_t i = 0; i < q->nslots; i++)
        free(q->slots[i]);
    free(q->slots);
    free(q->heap);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->changed);
    free(q);
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
