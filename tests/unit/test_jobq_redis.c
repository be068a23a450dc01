/* test_jobq_redis.c: server/jobs/jobq_redis.c against a real redis-server: two queues on the
 * same stream stand for two instances. The jobq.h contract (order by time, an id at most
 * once, retry, close), a worker that died (its entry claimed after claim_after), a live one
 * (its heartbeat keeps its entry), a hand-back taken at once, an id whose entry Redis lost
 * queued again, and not taken twice by the process that runs it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>
#include "server/core/clock.h"
#include "server/jobs/jobq.h"
#include "server/redis/redis.h"
#include "tests/unit/redis_server.h"

#define CLAIM 1000 /* ms */

static redis_server_t srv;
static me_redis_t *r;
static int nq;

/* A fresh queue name per test, so that tests do not see each other's entries. */
static char qname[32];

static me_jobq_t *queue(void)
{
    char err[256];
    me_jobq_t *q = me_jobq_redis_new(r, "t:", qname, CLAIM, err, sizeof(err));
    assert_non_null(q);
    return q;
}

static void fresh_name(void)
{
    snprintf(qname, sizeof(qname), "q%d", ++nq);
}

static void test_contract(void **state)
{
    (void)state;
    char id[ME_JOBQ_ID_MAX + 1];
    fresh_name();
    me_jobq_t *q = queue();
    int64_t now = me_clock_wall_ms();
    assert_int_equal(me_jobq_push(q, "b", now + 300), 0); /* later */
    assert_int_equal(me_jobq_push(q, "a", 0), 0);
    assert_int_equal(me_jobq_push(q, "b", 0), 0); /* already there: stays delayed */
    assert_int_equal(me_jobq_push(q, "a", 0), 0); /* already there */
    assert_int_equal(me_jobq_push(q, "", 0), ME_EINVAL);
    assert_int_equal(me_jobq_length(q), 2);
    assert_int_equal(me_jobq_pop(q, id), 0);
    assert_string_equal(id, "a");
    assert_int_equal(me_jobq_push(q, "a", 0), 0); /* running: not queued twice */
    assert_int_equal(me_jobq_length(q), 2);
    assert_int_equal(me_jobq_pop(q, id), 0); /* waits for b's time */
    assert_string_equal(id, "b");
    assert_true(me_clock_wall_ms() >= now + 300);
    me_jobq_retry(q, "a", me_clock_wall_ms() + 200);
    me_jobq_done(q, "b");
    assert_int_equal(me_jobq_length(q), 1);
    assert_int_equal(me_jobq_pop(q, id), 0);
    assert_string_equal(id, "a");
    me_jobq_done(q, "a");
    assert_int_equal(me_jobq_length(q), 0);
    assert_int_equal(me_jobq_push(q, "a", 0), 0); /* done: may come again */
    assert_int_equal(me_jobq_length(q), 1);
    me_jobq_close(q);
    assert_int_equal(me_jobq_pop(q, id), ME_EDRAINING);
    me_jobq_free(q);
}

typedef struct {
    me_jobq_t *q;
    char id[ME_JOBQ_ID_MAX + 1];
    int ret;
} popper_t;

static void *pop_thread(void *arg)
{
    popper_t *p = arg;
    p->ret = me_jobq_pop(p->q, p->id);
    return NULL;
}

/* A pop waiting on the server for an empty queue returns ME_EDRAINING once closed. */
static void test_close_wakes_pops(void **state)
{
    (void)state;
    fresh_name();
    popper_t p = {.q = queue(), .ret = 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pop_thread, &p), 0);
    usleep(200 * 1000);
    me_jobq_close(p.q);
    pthread_join(t, NULL);
    assert_int_equal(p.ret, ME_EDRAINING);
    me_jobq_free(p.q);
}

/* Instance a takes an id and dies (freed without done: no more heartbeats); instance b's pop
 * takes it over once it has been idle claim_after, and finishes it. */
static void test_dead_worker_claimed(void **state)
{
    (void)state;
    char id[ME_JOBQ_ID_MAX + 1];
    fresh_name();
    me_jobq_t *a = queue(), *b = queue();
    assert_int_equal(me_jobq_push(a, "job1", 0), 0);
    assert_int_equal(me_jobq_pop(a, id), 0);
    assert_string_equal(id, "job1");
    me_jobq_free(a); /* as kill -9 would: the entry stays pending, its owner silent */
    assert_int_equal(me_jobq_pop(b, id), 0);
    assert_string_equal(id, "job1");
    assert_int_equal(me_jobq_length(b), 1);
    me_jobq_done(b, "job1");
    assert_int_equal(me_jobq_length(b), 0);
    me_jobq_free(b);
}

/* A live worker heartbeats: holding its id three claim timeouts long, nobody takes it; its
 * done ends it for everyone. */
static void test_live_worker_keeps_its_job(void **state)
{
    (void)state;
    char id[ME_JOBQ_ID_MAX + 1];
    fresh_name();
    me_jobq_t *a = queue();
    popper_t p = {.q = queue(), .ret = 1};
    pthread_t t;
    assert_int_equal(me_jobq_push(a, "long", 0), 0);
    assert_int_equal(me_jobq_pop(a, id), 0);
    assert_int_equal(pthread_create(&t, NULL, pop_thread, &p), 0);
    usleep(3 * CLAIM * 1000);
    me_jobq_done(a, "long");
    usleep(300 * 1000);
    me_jobq_close(p.q);
    pthread_join(t, NULL);
    assert_int_equal(p.ret, ME_EDRAINING); /* b never got it */
    me_jobq_free(a);
    me_jobq_free(p.q);
}

/* A worker stopping hands its id back (retry for now): the other instance takes it at once,
 * not after claim_after. */
static void test_hand_back(void **state)
{
    (void)state;
    char id[ME_JOBQ_ID_MAX + 1];
    fresh_name();
    me_jobq_t *a = queue();
    popper_t p = {.q = queue(), .ret = 1};
    pthread_t t;
    assert_int_equal(me_jobq_push(a, "video", 0), 0);
    assert_int_equal(me_jobq_pop(a, id), 0);
    assert_int_equal(pthread_create(&t, NULL, pop_thread, &p), 0);
    me_jobq_close(a);
    me_jobq_retry(a, "video", me_clock_wall_ms());
    me_jobq_free(a);
    pthread_join(t, NULL);
    assert_int_equal(p.ret, 0);
    assert_string_equal(p.id, "video");
    me_jobq_done(p.q, "video");
    me_jobq_free(p.q);
}

/* Redis lost the stream (a failover, a flush) but not the id's record: a push finds the record
 * stale and queues the id again (the reconciler's push does this); the group is made again. */
static void test_lost_entry_queued_again(void **state)
{
    (void)state;
    char id[ME_JOBQ_ID_MAX + 1];
    fresh_name();
    me_jobq_t *q = queue();
    assert_int_equal(me_jobq_push(q, "m1", 0), 0);
    freeReplyObject(me_redis_callf(r, "DEL t:q:%s:stream", qname));
    assert_int_equal(me_jobq_push(q, "m1", 0), 0);
    assert_int_equal(me_jobq_pop(q, id), 0);
    assert_string_equal(id, "m1");
    me_jobq_done(q, "m1");
    assert_int_equal(me_jobq_length(q), 0);
    me_jobq_free(q);
}

/* Redis lost everything (a failover to an empty replica) while this process runs an id, and
 * the reconciler queued it again: another pop of the same process does not take it a second
 * time (two threads would run one job at once); the running one's done ends the new entry. */
static void test_running_id_queued_again_not_taken_twice(void **state)
{
    (void)state;
    char id[ME_JOBQ_ID_MAX + 1];
    fresh_name();
    me_jobq_t *q = queue();
    popper_t p = {.q = q, .ret = 1};
    pthread_t t;
    assert_int_equal(me_jobq_push(q, "m1", 0), 0);
    assert_int_equal(me_jobq_pop(q, id), 0);
    freeReplyObject(me_redis_callf(r, "DEL t:q:%s:stream t:q:%s:ids t:q:%s:delayed", qname, qname, qname));
    assert_int_equal(me_jobq_push(q, "m1", 0), 0);
    assert_int_equal(pthread_create(&t, NULL, pop_thread, &p), 0);
    long long pending = 0;
    for (int i = 0; i < 60 && pending == 0; i++) { /* the pop makes the group again and reads */
        usleep(50 * 1000);
        redisReply *rep = me_redis_callf(r, "XPENDING t:q:%s:stream workers", qname);
        if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements > 0 &&
            rep->element[0]->type == REDIS_REPLY_INTEGER)
            pending = rep->element[0]->integer;
        freeReplyObject(rep);
    }
    assert_int_equal(pending, 1);
    usleep(200 * 1000);
    me_jobq_done(q, "m1");
    assert_int_equal(me_jobq_length(q), 0);
    redisReply *rep = me_redis_callf(r, "XLEN t:q:%s:stream", qname);
    assert_true(rep != NULL && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0);
    freeReplyObject(rep);
    me_jobq_close(q);
    pthread_join(t, NULL);
    assert_int_equal(p.ret, ME_EDRAINING); /* the pop never handed m1 out again */
    me_jobq_free(q);
}

/* Many ids through two instances: each comes out exactly once. */
static void test_each_once_across_instances(void **state)
{
    (void)state;
    enum { N = 200 };
    char id[ME_JOBQ_ID_MAX + 1];
    int seen[N] = {0};
    fresh_name();
    me_jobq_t *a = queue(), *b = queue();
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof(name), "id%d", i);
        assert_int_equal(me_jobq_push(i % 2 ? a : b, name, 0), 0);
        assert_int_equal(me_jobq_push(i % 2 ? b : a, name, 0), 0); /* the other instance too: deduped */
    }
    assert_int_equal(me_jobq_length(a), N);
    for (int i = 0; i < N; i++) {
        me_jobq_t *q = i % 3 ? a : b;
        assert_int_equal(me_jobq_pop(q, id), 0);
        seen[atoi(id + 2)]++;
        me_jobq_done(q, id);
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(me_jobq_length(a), 0);
    me_jobq_free(a);
    me_jobq_free(b);
}

static int setup(void **state)
{
    (void)state;
    me_redis_url_t u;
    char err[256];
    me_redis_options_t opt = {.connect_timeout = 1000, .timeout = 1000, .max_idle = 8};
    if (redis_server_start(&srv, 0) != 0 || me_redis_url_parse(srv.url, &u, err, sizeof(err)) != 0 ||
        (r = me_redis_new(&u, &opt, err, sizeof(err))) == NULL)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    me_redis_free(r);
    redis_server_free(&srv);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract),
        cmocka_unit_test(test_close_wakes_pops),
        cmocka_unit_test(test_dead_worker_claimed),
        cmocka_unit_test(test_live_worker_keeps_its_job),
        cmocka_unit_test(test_hand_back),
        cmocka_unit_test(test_lost_entry_queued_again),
        cmocka_unit_test(test_running_id_queued_again_not_taken_twice),
        cmocka_unit_test(test_each_once_across_instances),
    };
    return cmocka_run_group_tests_name("jobq_redis", tests, setup, teardown);
}
