/* test_lock_redis.c: server/upload/lock_redis.c against a real redis-server: two lock sets
 * stand for two instances. Exclusion, growing fences, renewal past the TTL, expiry of a
 * holder that stopped renewing, release and check by the owner only, and Redis down. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "server/redis/redis.h"
#include "server/upload/lock.h"
#include "tests/unit/redis_server.h"

#define TTL 600 /* ms */

static redis_server_t srv;

static me_redis_t *connect_to(void)
{
    me_redis_url_t u;
    char err[256];
    me_redis_options_t opt = {.connect_timeout = 1000, .timeout = 1000, .max_idle = 4};
    assert_int_equal(me_redis_url_parse(srv.url, &u, err, sizeof(err)), 0);
    me_redis_t *r = me_redis_new(&u, &opt, err, sizeof(err));
    assert_non_null(r);
    return r;
}

static me_locks_t *locks(me_redis_t *r)
{
    char err[256];
    me_locks_t *l = me_locks_redis_new(r, "t:", TTL, err, sizeof(err));
    assert_non_null(l);
    assert_string_equal(me_locks_backend(l), "redis");
    return l;
}

/* Makes the lock name expire now, as it would while its holder was frozen past the TTL. */
static void expire(me_redis_t *r, const char *name)
{
    freeReplyObject(me_redis_callf(r, "DEL t:lock:%s", name));
}

static void test_exclusion_and_fences(void **state)
{
    (void)state;
    me_redis_t *r = connect_to();
    me_locks_t *a = locks(r), *b = locks(r);
    uint64_t f1 = 0, f2 = 0, f3 = 0;
    assert_int_equal(me_locks_acquire(a, "up1", &f1), 0);
    assert_int_equal(me_locks_acquire(b, "up1", &f2), ME_ELOCKED);
    assert_int_equal(me_locks_acquire(a, "up1", &f2), ME_ELOCKED); /* not re-entrant either */
    assert_int_equal(me_locks_acquire(b, "up2", &f2), 0);
    assert_true(f2 > f1);
    assert_int_equal(me_locks_check(a, "up1", f1), 0);
    assert_int_equal(me_locks_check(b, "up1", f1), ME_ELOCKED); /* b does not hold it */
    me_locks_release(a, "up1", f1);
    assert_int_equal(me_locks_acquire(b, "up1", &f3), 0);
    assert_true(f3 > f2);
    me_locks_release(b, "up1", f3);
    me_locks_release(b, "up2", f2);
    assert_int_equal(me_locks_acquire(a, "", NULL), ME_EINVAL);
    me_locks_free(a);
    me_locks_free(b);
    me_redis_free(r);
}

/* Held three TTLs long, the lock is renewed by its set's thread: still the holder's. */
static void test_renewed_while_held(void **state)
{
    (void)state;
    me_redis_t *r = connect_to();
    me_locks_t *a = locks(r), *b = locks(r);
    uint64_t f;
    assert_int_equal(me_locks_acquire(a, "long", &f), 0);
    usleep(3 * TTL * 1000);
    assert_int_equal(me_locks_acquire(b, "long", NULL), ME_ELOCKED);
    assert_int_equal(me_locks_check(a, "long", f), 0);
    me_locks_release(a, "long", f);
    me_locks_free(a);
    me_locks_free(b);
    me_redis_free(r);
}

/* A holder whose lock expired (it stalled past the TTL) and was taken by another: its commit
 * check is refused, its release leaves the new holder's lock alone, and the new holder's
 * check passes. A lock nobody renews expires by itself. */
static void test_fencing_after_expiry(void **state)
{
    (void)state;
    me_redis_t *r = connect_to();
    me_locks_t *a = locks(r), *b = locks(r), *c = locks(r);
    uint64_t fa, fb;
    assert_int_equal(me_locks_acquire(a, "up", &fa), 0);
    expire(r, "up");
    assert_int_equal(me_locks_acquire(b, "up", &fb), 0);
    assert_true(fb > fa);
    assert_int_equal(me_locks_check(a, "up", fa), ME_ELOCKED);
    me_locks_release(a, "up", fa); /* not the owner any more: nothing happens */
    assert_int_equal(me_locks_acquire(c, "up", NULL), ME_ELOCKED);
    assert_int_equal(me_locks_check(b, "up", fb), 0);
    /* expired and not taken by anyone: still lost for its old holder (the renewal may have
     * seen it first: either way the check refuses) */
    expire(r, "up");
    assert_int_equal(me_locks_check(b, "up", fb), ME_ELOCKED);
    me_locks_release(b, "up", fb);
    /* a lock whose holder vanished (no renewer) expires after its TTL */
    freeReplyObject(me_redis_callf(r, "SET t:lock:gone x PX %d", TTL));
    assert_int_equal(me_locks_acquire(c, "gone", NULL), ME_ELOCKED);
    usleep(2 * TTL * 1000);
    assert_int_equal(me_locks_acquire(c, "gone", &fb), 0);
    me_locks_release(c, "gone", fb);
    me_locks_free(a);
    me_locks_free(b);
    me_locks_free(c);
    me_redis_free(r);
}

/* Redis down: acquire and check answer ME_ELOCK_UNAVAILABLE (a 503 with Retry-After, or a
 * refused commit: never a write under a lock nobody can vouch for, never a 423 that would say
 * another request holds the upload); back up, locks work again. */
static void test_redis_down(void **state)
{
    (void)state;
    me_redis_t *r = connect_to();
    me_locks_t *a = locks(r);
    uint64_t f;
    assert_int_equal(me_locks_acquire(a, "x", &f), 0);
    redis_server_stop(&srv);
    assert_int_equal(me_locks_check(a, "x", f), ME_ELOCK_UNAVAILABLE);
    assert_int_equal(me_locks_acquire(a, "y", NULL), ME_ELOCK_UNAVAILABLE);
    me_locks_release(a, "x", f);
    assert_int_equal(redis_server_restart(&srv), 0);
    assert_int_equal(me_locks_acquire(a, "x", &f), 0);
    me_locks_release(a, "x", f);
    me_locks_free(a);
    me_redis_free(r);
}

static int setup(void **state)
{
    (void)state;
    return redis_server_start(&srv, 0) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    redis_server_free(&srv);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exclusion_and_fences),
        cmocka_unit_test(test_renewed_while_held),
        cmocka_unit_test(test_fencing_after_expiry),
        cmocka_unit_test(test_redis_down),
    };
    return cmocka_run_group_tests_name("lock_redis", tests, setup, teardown);
}
