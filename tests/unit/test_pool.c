/* test_pool.c: the blocking-work pool: jobs run, answers reach the loop thread, the queue is
 * bounded, and freeing drains what was queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <unistd.h>
#include <cmocka.h>
#include "server/core/pool.h"

typedef struct {
    me_job_t job;
    pthread_t worker, finisher;
    _Atomic int *finished;
    useconds_t sleep_us;
} test_job_t;

static void work(me_job_t *job)
{
    test_job_t *t = (test_job_t *)job;
    t->worker = pthread_self();
    if (t->sleep_us)
        usleep(t->sleep_us);
}

static void done(me_job_t *job)
{
    test_job_t *t = (test_job_t *)job;
    t->finisher = pthread_self();
    atomic_fetch_add(t->finished, 1);
}

static void test_done_runs_on_the_loop_thread(void **state)
{
    h2o_evloop_t *loop = h2o_evloop_create();
    h2o_multithread_queue_t *queue = h2o_multithread_create_queue(loop);
    h2o_multithread_receiver_t receiver;
    me_pool_receiver_init(queue, &receiver);
    me_pool_t *pool = me_pool_new("test", 3, 100);
    assert_non_null(pool);

    _Atomic int finished = 0;
    test_job_t jobs[20];
    for (int i = 0; i < 20; i++) {
        jobs[i] = (test_job_t){.job = {.work = work, .done = done}, .finished = &finished};
        assert_int_equal(me_pool_submit(pool, &jobs[i].job, &receiver), 0);
    }
    for (int spins = 0; atomic_load(&finished) < 20 && spins < 500; spins++)
        h2o_evloop_run(loop, 10);
    assert_int_equal(atomic_load(&finished), 20);
    for (int i = 0; i < 20; i++) {
        assert_true(pthread_equal(jobs[i].finisher, pthread_self()));
        assert_false(pthread_equal(jobs[i].worker, pthread_self()));
    }
    assert_int_equal(me_pool_pending(pool), 0);
    me_pool_free(pool);
    h2o_multithread_unregister_receiver(queue, &receiver);
    h2o_multithread_destroy_queue(queue);
    h2o_evloop_destroy(loop);
}

static void test_queue_is_bounded_and_free_drains(void **state)
{
    me_pool_t *pool = me_pool_new("test", 1, 2);
    _Atomic int finished = 0;
    test_job_t slow = {.job = {.work = work, .done = done}, .finished = &finished, .sleep_us = 200000};
    test_job_t a = {.job = {.work = work, .done = done}, .finished = &finished};
    test_job_t b = a, c = a;
    assert_int_equal(me_pool_submit(pool, &slow.job, NULL), 0);
    usleep(50000); /* the worker holds slow; the queue is empty again */
    assert_int_equal(me_pool_submit(pool, &a.job, NULL), 0);
    assert_int_equal(me_pool_submit(pool, &b.job, NULL), 0);
    assert_int_equal(me_pool_submit(pool, &c.job, NULL), ME_EBUSY);
    assert_int_equal(me_pool_pending(pool), 3);
    me_pool_free(pool); /* runs a and b before the threads stop */
    assert_int_equal(atomic_load(&finished), 3);
    assert_true(pthread_equal(a.finisher, a.worker)); /* no receiver: done() on the pool thread */
}

typedef struct {
    me_job_t job;
    int id;
    int *order, *n;
} order_job_t;

static void record(me_job_t *job)
{
    order_job_t *o = (order_job_t *)job;
    o->order[(*o->n)++] = o->id; /* one worker: no race */
}

static void test_submit_first_jumps_the_waiting_jobs(void **state)
{
    me_pool_t *pool = me_pool_new("test", 1, 10);
    _Atomic int finished = 0;
    test_job_t slow = {.job = {.work = work, .done = done}, .finished = &finished, .sleep_us = 200000};
    int order[4] = {0}, n = 0;
    order_job_t jobs[4];
    for (int i = 0; i < 4; i++)
        jobs[i] = (order_job_t){.job = {.work = record}, .id = i + 1, .order = order, .n = &n};
    assert_int_equal(me_pool_submit(pool, &slow.job, NULL), 0);
    usleep(50000); /* the worker holds slow */
    assert_int_equal(me_pool_submit(pool, &jobs[0].job, NULL), 0);
    assert_int_equal(me_pool_submit(pool, &jobs[1].job, NULL), 0);
    assert_int_equal(me_pool_submit_first(pool, &jobs[2].job, NULL), 0);
    assert_int_equal(me_pool_submit(pool, &jobs[3].job, NULL), 0);
    me_pool_free(pool);
    assert_int_equal(n, 4);
    assert_int_equal(order[0], 3); /* the first-submitted ran as soon as the worker was free */
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 2);
    assert_int_equal(order[3], 4); /* the tail is still the tail */

    /* into an empty queue it is head and tail */
    pool = me_pool_new("test", 1, 10);
    n = 0;
    assert_int_equal(me_pool_submit_first(pool, &jobs[0].job, NULL), 0);
    assert_int_equal(me_pool_submit(pool, &jobs[1].job, NULL), 0);
    me_pool_free(pool);
    assert_int_equal(n, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_done_runs_on_the_loop_thread),
        cmocka_unit_test(test_queue_is_bounded_and_free_drains),
        cmocka_unit_test(test_submit_first_jumps_the_waiting_jobs),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
