/* jobq.h: the queue of processing jobs, by media id, each with the time it may run. The
 * functions here hand each operation to the queue's backend (jobq_backend.h): the local one
 * (in process, jobq_local.c) is the default; the Redis one (jobq_redis.c) is shared by every
 * instance (queue.backend: redis). Entries are not durable: jobs/<media-id>.json in storage is, and the job
 * runner (jobs.h) queues those again at start. An id is in the queue at most once, from
 * its push until its done, also while a worker runs it. */
#ifndef ME_JOBQ_H
#define ME_JOBQ_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"

#define ME_JOBQ_ID_MAX 64

typedef struct me_jobq me_jobq_t;

/* An empty queue in this process (jobq_local.c), or NULL when out of memory. Freed with
 * me_jobq_free(). Its push, pop, done and retry cost O(log N) for N ids. */
me_jobq_t *me_jobq_local_new(void);

struct me_redis;

/* A queue shared by every instance on Redis Streams (jobq_redis.c), named name ("photo",
 * "video", "hooks") under prefix, over r (not owned: it must outlive the queue). An id taken
 * by a worker whose heartbeat stops for claim_after ms (the process died or froze) is taken
 * over by the next pop of any instance; a worker that cannot finish an id hands it back with
 * me_jobq_retry(q, id, 0), and it is taken again at once. An id queued again while this
 * process runs it (Redis lost its entry) is not taken a second time here. Its length counts
 * every instance's ids. NULL with err filled when Redis does not answer or memory ran out. */
me_jobq_t *me_jobq_redis_new(struct me_redis *r, const char *prefix, const char *name, uint64_t claim_after, char *err,
                             size_t errlen);

/* Makes the queues of a role: make(ctx, name, err, errlen) answers a new queue named name,
 * or NULL with err filled. lead, when not NULL, tells whether this instance is the one that
 * does the periodic task (e.g. "reconcile-photo") every period_ms (1), or another does (0):
 * several instances share the queues, one of them need look. Kept by whoever builds the
 * processing (server/app.c). */
typedef struct {
    me_jobq_t *(*make)(void *ctx, const char *name, char *err, size_t errlen);
    int (*lead)(void *ctx, const char *task, uint64_t period_ms);
    void *ctx;
} me_jobq_maker_t;

/* Frees q (NULL: nothing) and the ids in it; no pop may be waiting (close first). */
void me_jobq_free(me_jobq_t *q);

/* Queues id (at most ME_JOBQ_ID_MAX bytes) to run from not_before (ms since the epoch, me_clock_wall_ms(); 0:
 * now). An id already in the queue, waiting or running, stays as it is. 0, ME_EINVAL or
 * ME_ENOMEM. */
int me_jobq_push(me_jobq_t *q, const char *id, int64_t not_before) ME_MUST_CHECK;

/* Takes the due id with the earliest time, waiting until one is due. 0 with id filled
 * (ME_JOBQ_ID_MAX + 1 bytes): the id is then running until me_jobq_done() or
 * me_jobq_retry(); ME_EDRAINING once the queue is closed. */
int me_jobq_pop(me_jobq_t *q, char *id) ME_MUST_CHECK;

/* A running id leaves the queue. */
void me_jobq_done(me_jobq_t *q, const char *id);

/* A running id waits again, until not_before (ms since the epoch). */
void me_jobq_retry(me_jobq_t *q, const char *id, int64_t not_before);

/* Ids in the queue, waiting or running. */
size_t me_jobq_length(me_jobq_t *q);

/* Wakes every waiting pop; pops return ME_EDRAINING from now on. */
void me_jobq_close(me_jobq_t *q);

/* A worker thread's loop: pops ids until the queue is closed and runs run(ctx, id, now,
 * &retry_at) on each, which returns 0 when the id is done, or ME_EBUSY to have it run again
 * at retry_at. */
void me_jobq_work(me_jobq_t *q, int (*run)(void *ctx, const char *id, int64_t now, int64_t *retry_at), void *ctx);

#endif
