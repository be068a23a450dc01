/* pool.c: a fixed set of worker threads draining a bounded FIFO of jobs (short ones may
 * jump the queue: me_pool_submit_first). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/core/pool.h"

struct me_pool {
    char name[16];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    me_job_t *head, *tail;
    size_t queued, running, max_queue;
    int stopping;
    int nthreads;
    pthread_t threads[];
};

static void *worker_main(void *arg)
{
    me_pool_t *pool = arg;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->head == NULL && !pool->stopping)
            pthread_cond_wait(&pool->cond, &pool->lock);
        me_job_t *job = pool->head;
        if (job == NULL)
            break; /* stopping and drained */
        pool->head = job->_next;
        if (pool->head == NULL)
            pool->tail = NULL;
        pool->queued--;
        pool->running++;
        pthread_mutex_unlock(&pool->lock);

        job->work(job);
        pthread_mutex_lock(&pool->lock);
        pool->running--;
        pthread_mutex_unlock(&pool->lock);
        /* the job is the submitter's again from here: done() may free it */
        if (job->_reply_to != NULL)
            h2o_multithread_send_message(job->_reply_to, &job->_msg);
        else if (job->done != NULL)
            job->done(job);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

me_pool_t *me_pool_new(const char *name, int threads, size_t max_queue)
{
    me_pool_t *pool = calloc(1, sizeof(*pool) + sizeof(pthread_t) * (size_t)threads);
    if (pool == NULL)
        return NULL;
    snprintf(pool->name, sizeof(pool->name), "%s", name);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->cond, NULL);
    pool->max_queue = max_queue;
    for (; pool->nthreads < threads; pool->nthreads++) {
        if (pthread_create(&pool->threads[pool->nthreads], NULL, worker_main, pool) != 0) {
            me_pool_free(pool);
            return NULL;
        }
        pthread_setname_np(pool->threads[pool->nthreads], pool->name);
    }
    return pool;
}

static int submit(me_pool_t *pool, me_job_t *job, h2o_multithread_receiver_t *reply_to, int first)
{
    int ret = 0;
    job->_reply_to = reply_to;
    job->_next = NULL;
    memset(&job->_msg, 0, sizeof(job->_msg));
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping) {
        ret = ME_EDRAINING;
    } else if (pool->queued >= pool->max_queue) {
        ret = ME_EBUSY;
    } else {
        if (first) {
            job->_next = pool->head;
            pool->head = job;
            if (pool->tail == NULL)
                pool->tail = job;
        } else {
            if (pool->tail != NULL)
                pool->tail->_next = job;
            else
                pool->head = job;
            pool->tail = job;
        }
        pool->queued++;
        pthread_cond_signal(&pool->cond);
    }
    pthread_mutex_unlock(&pool->lock);
    return ret;
}

int me_pool_submit(me_pool_t *pool, me_job_t *job, h2o_multithread_receiver_t *reply_to)
{
    return submit(pool, job, reply_to, 0);
}

int me_pool_submit_first(me_pool_t *pool, me_job_t *job, h2o_multithread_receiver_t *reply_to)
{
    return submit(pool, job, reply_to, 1);
}

static void on_done_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&msg->link);
        me_job_t *job = H2O_STRUCT_FROM_MEMBER(me_job_t, _msg, msg);
        if (job->done != NULL)
            job->done(job);
    }
}

void me_pool_receiver_init(h2o_multithread_queue_t *queue, h2o_multithread_receiver_t *receiver)
{
    h2o_multithread_register_receiver(queue, receiver, on_done_messages);
}

size_t me_pool_pending(me_pool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    size_t n = pool->queued + pool->running;
    pthread_mutex_unlock(&pool->lock);
    return n;
}

void me_pool_free(me_pool_t *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->nthreads; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->cond);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
