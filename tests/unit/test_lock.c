/* test_lock.c: unit tests of server/upload/lock.c (the lock interface and its local backend). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>
#include <cmocka.h>
#include "server/upload/lock.h"

static void test_local_excludes(void **state)
{
    (void)state;
    me_locks_t *l = me_locks_local_new(4);
    uint64_t f1 = 0, f2 = 0;
    assert_non_null(l);
    assert_string_equal(me_locks_backend(l), "local");
    assert_int_equal(me_locks_acquire(l, "a", &f1), 0);
    assert_int_equal(me_locks_acquire(l, "a", &f2), ME_ELOCKED);
    assert_int_equal(me_locks_acquire(l, "b", &f2), 0);
    assert_true(f2 > f1); /* fences grow with every acquisition */
    me_locks_release(l, "a", f1);
    assert_int_equal(me_locks_acquire(l, "a", NULL), 0);
    me_locks_release(l, "a", 0);
    me_locks_release(l, "b", f2);
    me_locks_free(l);
}

/* Past max held locks, a new name is refused (423 for the client), not queued; freeing one
 * makes room again. Bad names are refused before the backend. */
static void test_local_capacity_and_names(void **state)
{
    (void)state;
    me_locks_t *l = me_locks_local_new(2);
    char long_name[ME_LOCK_NAME_MAX + 2];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(me_locks_acquire(l, "a", NULL), 0);
    assert_int_equal(me_locks_acquire(l, "b", NULL), 0);
    assert_int_equal(me_locks_acquire(l, "c", NULL), ME_ELOCKED);
    me_locks_release(l, "b", 0);
    assert_int_equal(me_locks_acquire(l, "c", NULL), 0);
    assert_int_equal(me_locks_acquire(l, "", NULL), ME_EINVAL);
    assert_int_equal(me_locks_acquire(l, long_name, NULL), ME_EINVAL);
    long_name[ME_LOCK_NAME_MAX] = '\0';
    me_locks_release(l, "a", 0);
    assert_int_equal(me_locks_acquire(l, long_name, NULL), 0);
    me_locks_free(l);
    me_locks_free(NULL);
    assert_null(me_locks_local_new(0));
}

typedef struct {
    me_locks_t *l;
    int wins;
} race_t;

static void *racer(void *arg)
{
    race_t *r = arg;
    for (int i = 0; i < 2000; i++)
        if (me_locks_acquire(r->l, "same", NULL) == 0) {
            __atomic_add_fetch(&r->wins, 1, __ATOMIC_SEQ_CST);
            /* while held, nobody else gets it */
            assert_int_equal(me_locks_acquire(r->l, "same", NULL), ME_ELOCKED);
            me_locks_release(r->l, "same", 0);
        }
    return NULL;
}

static void test_local_threads(void **state)
{
    (void)state;
    race_t r = {me_locks_local_new(8), 0};
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, racer, &r);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_true(r.wins > 0);
    assert_int_equal(me_locks_acquire(r.l, "same", NULL), 0); /* every holder released */
    me_locks_free(r.l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local_excludes),
        cmocka_unit_test(test_local_capacity_and_names),
        cmocka_unit_test(test_local_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
