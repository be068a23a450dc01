/* test_redis.c: server/redis/redis.c (URLs, the pool, scripts, reconnection) and lease.c,
 * against a real redis-server the test starts (skipped when redis-server is not installed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "server/redis/lease.h"
#include "server/redis/redis.h"
#include "tests/unit/redis_server.h"

static redis_server_t srv;

static me_redis_t *connect_to(const char *url)
{
    me_redis_url_t u;
    char err[256];
    me_redis_options_t opt = {.connect_timeout = 1000, .timeout = 1000, .max_idle = 4};
    assert_int_equal(me_redis_url_parse(url, &u, err, sizeof(err)), 0);
    return me_redis_new(&u, &opt, err, sizeof(err));
}

/* ---- URLs ---- */

static void test_url_forms(void **state)
{
    (void)state;
    me_redis_url_t u;
    char err[256], shown[512];
    assert_int_equal(me_redis_url_parse("redis://cache.internal:6380/2", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "cache.internal");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.password, "");
    assert_int_equal(me_redis_url_parse("redis://app:s%40cr%3At@10.0.0.5", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "s@cr:t");
    assert_int_equal(u.port, 6379);
    me_redis_url_redacted(&u, shown, sizeof(shown));
    assert_string_equal(shown, "redis://10.0.0.5:6379/0");
    assert_null(strstr(shown, "cr"));
    assert_int_equal(me_redis_url_parse("redis://:only-a-password@h:1/", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "only-a-password");
    assert_int_equal(me_redis_url_parse("redis://[::1]:7000/3", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 7000);
    me_redis_url_redacted(&u, shown, sizeof(shown));
    assert_string_equal(shown, "redis://[::1]:7000/3");
    assert_int_equal(me_redis_url_parse("unix:///run/redis.sock?db=5", &u, err, sizeof(err)), 0);
    assert_string_equal(u.path, "/run/redis.sock");
    assert_int_equal(u.db, 5);
}

static void test_url_refusals_never_quote_the_password(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "rediss://h:6379", "http://h",         "redis://",      "redis://h:0",  "redis://h:99999", "redis://h/x",
        "redis://h?x=1",   "redis://u:p%zz@h", "redis://ho st", "redis://[::1", "unix://rel.sock", "unix:///s?x=1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        me_redis_url_t u;
        char err[256] = "";
        assert_int_equal(me_redis_url_parse(bad[i], &u, err, sizeof(err)), ME_EINVAL);
        assert_true(strlen(err) > 10);
    }
    me_redis_url_t u;
    char err[256];
    assert_int_equal(me_redis_url_parse("redis://u:hunter2-secret@h:1/x", &u, err, sizeof(err)), ME_EINVAL);
    assert_null(strstr(err, "hunter2"));
}

/* ---- against a server ---- */

static void test_calls_and_scripts(void **state)
{
    (void)state;
    me_redis_t *r = connect_to(srv.url);
    assert_non_null(r);
    redisReply *rep = me_redis_call(r, 3, (const char *[]){"SET", "k", "v"}, NULL);
    assert_non_null(rep);
    freeReplyObject(rep);
    rep = me_redis_callf(r, "GET %s", "k");
    assert_int_equal(rep->type, REDIS_REPLY_STRING);
    assert_string_equal(rep->str, "v");
    freeReplyObject(rep);

    static me_redis_script_t add = {.source = "return redis.call('INCRBY', KEYS[1], ARGV[1])"};
    rep = me_redis_eval(r, &add, 1, 2, (const char *[]){"n", "5"});
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_int_equal(rep->integer, 5);
    freeReplyObject(rep);
    /* the server forgets its scripts (a restart, a failover): EVALSHA falls back to EVAL */
    freeReplyObject(me_redis_callf(r, "SCRIPT FLUSH"));
    rep = me_redis_eval(r, &add, 1, 2, (const char *[]){"n", "2"});
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    assert_int_equal(rep->integer, 7);
    freeReplyObject(rep);
    /* an error reply comes back as one, not as a failure */
    rep = me_redis_callf(r, "INCR %s", "k");
    assert_int_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    me_redis_free(r);
}

/* A restarted server closed every pooled connection: the next call reconnects and succeeds;
 * while it is down calls fail (NULL) without hanging. */
static void test_reconnects_after_restart(void **state)
{
    (void)state;
    me_redis_t *r = connect_to(srv.url);
    assert_non_null(r);
    freeReplyObject(me_redis_callf(r, "PING"));
    redis_server_stop(&srv);
    uint64_t before = me_redis_failures(r);
    assert_null(me_redis_callf(r, "PING"));
    assert_true(me_redis_failures(r) > before);
    assert_int_equal(redis_server_restart(&srv), 0);
    redisReply *rep = me_redis_callf(r, "PING");
    assert_non_null(rep);
    assert_string_equal(rep->str, "PONG");
    freeReplyObject(rep);
    /* pooled connections the server dropped meanwhile (several: every one is as old) are
     * replaced, and the first call succeeds */
    redisContext *held[3];
    for (int i = 0; i < 3; i++)
        assert_non_null(held[i] = me_redis_take(r));
    for (int i = 0; i < 3; i++)
        me_redis_put(r, held[i], 0);
    assert_int_equal(redis_server_restart(&srv), 0);
    rep = me_redis_callf(r, "PING");
    assert_non_null(rep);
    freeReplyObject(rep);
    me_redis_free(r);
}

static void test_wrong_password_and_no_server(void **state)
{
    (void)state;
    me_redis_url_t u;
    char err[256], url[256];
    me_redis_options_t opt = {.connect_timeout = 500, .timeout = 500, .max_idle = 1};
    me_redis_t *admin = connect_to(srv.url);
    freeReplyObject(me_redis_callf(admin, "CONFIG SET requirepass right-one"));
    me_redis_free(admin);
    snprintf(url, sizeof(url), "%s", srv.url);
    assert_int_equal(me_redis_url_parse(url, &u, err, sizeof(err)), 0);
    snprintf(u.password, sizeof(u.password), "wrong-one");
    assert_null(me_redis_new(&u, &opt, err, sizeof(err)));
    assert_null(strstr(err, "wrong-one"));
    snprintf(u.password, sizeof(u.password), "right-one");
    me_redis_t *r = me_redis_new(&u, &opt, err, sizeof(err));
    assert_non_null(r);
    freeReplyObject(me_redis_callf(r, "CONFIG SET requirepass %s", ""));
    me_redis_free(r);
    assert_int_equal(me_redis_url_parse("unix:///nonexistent/redis.sock", &u, err, sizeof(err)), 0);
    assert_null(me_redis_new(&u, &opt, err, sizeof(err)));
    assert_non_null(strstr(err, "unix:///nonexistent/redis.sock"));
}

static void test_lease_one_holder(void **state)
{
    (void)state;
    me_redis_t *r = connect_to(srv.url);
    me_lease_t *a = me_lease_new(r, "t:", "sweep", 60000), *b = me_lease_new(r, "t:", "sweep", 60000);
    assert_int_equal(me_lease_hold(a), 1);
    assert_int_equal(me_lease_hold(b), 0);
    assert_int_equal(me_lease_hold(a), 1); /* renewed */
    me_lease_free(a);                      /* given back */
    assert_int_equal(me_lease_hold(b), 1);
    /* a holder that vanished without giving it back: another takes over at its expiry */
    freeReplyObject(me_redis_callf(r, "PEXPIRE t:lease:sweep 1"));
    usleep(20 * 1000);
    me_lease_t *c = me_lease_new(r, "t:", "sweep", 60000);
    assert_int_equal(me_lease_hold(c), 1);
    assert_int_equal(me_lease_hold(b), 0);
    me_lease_free(b);
    me_lease_free(c);
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
    /* one group (the runner reads one cmocka report per program); the URL tests need no server */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_forms),
        cmocka_unit_test(test_url_refusals_never_quote_the_password),
        cmocka_unit_test(test_calls_and_scripts),
        cmocka_unit_test(test_reconnects_after_restart),
        cmocka_unit_test(test_wrong_password_and_no_server),
        cmocka_unit_test(test_lease_one_holder),
    };
    return cmocka_run_group_tests_name("redis", tests, setup, teardown);
}
