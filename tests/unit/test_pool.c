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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_done_runs_on_the_loop_thread),
        cmocka_unit_test(test_queue_is_bounded_and_free_drains),
    };
    return cmocka_run_group_tests_name("pool", tests, NULL, NULL);
}
