/* pool.h: bounded thread pools for blocking work (storage, fsync, decoding) that answer the
 * event loops through h2o's multithread queues, so that no handler ever blocks a loop. */
#ifndef ME_POOL_H
#define ME_POOL_H

#include <stddef.h>
#include <h2o.h>
#include "server/core/error.h"

typedef struct me_pool me_pool_t;
typedef struct me_job me_job_t;

/* A unit of blocking work. The submitter owns the job's memory (usually embedded in a larger
 * struct) until done() has run. work() runs on a pool thread; done() runs afterwards on the
 * loop thread whose receiver was given to me_pool_submit() (or, with no receiver, on the
 * pool thread right after work()). */
struct me_job {
    void (*work)(me_job_t *job);
    void (*done)(me_job_t *job);
    /* private */
    h2o_multithread_message_t _msg;
    h2o_multithread_receiver_t *_reply_to;
    me_job_t *_next;
};

/* Starts threads worker threads with room for max_queue waiting jobs. Returns NULL if a
 * thread cannot be started (nothing is left running). The caller owns the pool. */
me_pool_t *me_pool_new(const char *name, int threads, size_t max_queue);

/* Queues job. Returns 0, ME_EBUSY when max_queue jobs are already waiting, or ME_EDRAINING
 * after me_pool_free() began; on error the job is not run and stays the caller's. */
int me_pool_submit(me_pool_t *pool, me_job_t *job, h2o_multithread_receiver_t *reply_to) ME_MUST_CHECK;

/* As me_pool_submit(), but job goes ahead of the jobs waiting (not of those running): for
 * short jobs a client waits on, such as an upload's HEAD, that must not queue behind the
 * writes and fsyncs of large PATCHes. Only for jobs that are cheap: a stream of them delays
 * the others. Bounded by the same max_queue. */
int me_pool_submit_first(me_pool_t *pool, me_job_t *job, h2o_multithread_receiver_t *reply_to) ME_MUST_CHECK;

/* Registers receiver on a loop's queue so that jobs submitted with it get their done() called
 * on that loop. Call once per loop thread, on that thread. */
void me_pool_receiver_init(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *receiver);

/* Jobs waiting or running; for metrics and drain. */
size_t me_pool_pending(me_pool_t *pool);

/* Runs every queued job, stops and joins the threads, frees the pool. NULL is fine. */
void me_pool_free(me_pool_t *pool);

#endif
