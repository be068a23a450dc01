/* storage_conformance.h: a test helper: the contract of storage.h as cmocka cases that every
 * storage backend must pass, since callers never know which one runs. A backend's test adds
 * them to its group:
 *     struct CMUnitTest tests[STORAGE_CONFORMANCE_CASES];
 *     storage_conformance_cases(&backend, tests);
 *     return cmocka_run_group_tests_name("storage_s3", tests, NULL, NULL);
 * Each case gets a new backend from the factory, in a store made with me_storage_new() over
 * storage_faults (which counts the calls that reach the backend, and fails none). */
#ifndef STORAGE_CONFORMANCE_H
#define STORAGE_CONFORMANCE_H

#include "server/storage/storage_backend.h"

struct CMUnitTest;

/* The backend under test, and how to get a new one for each case. */
typedef struct {
    const me_storage_ops_t *ops;
    /* A new backend holding nothing, for one case; NULL (after printing why, and removing
     * what it made) fails the case. */
    me_storage_backend_t *(*open)(void *arg);
    /* Called once the case closed the backend: removes what it stored. May be NULL. */
    void (*cleanup)(void *arg);
    void *arg;
    /* A get racing an overwrite of its key may find no object at all (OpenStack Swift, the
     * tests' S3 API, answers 404 then; AWS S3 reads are strongly consistent): the concurrent
     * puts case then takes ME_ENOTFOUND for such a read, and still refuses mixed content. */
    int racing_reads_may_miss;
} storage_conformance_backend_t;

#define STORAGE_CONFORMANCE_CASES 17

/* Fills tests[0..STORAGE_CONFORMANCE_CASES) with the cases, run against backend, which must
 * live until they have run. */
void storage_conformance_cases(const storage_conformance_backend_t *backend, struct CMUnitTest *tests);

/* Asserts (cmocka) that key holds exactly want[0..len), read whole by me_storage_get_all()
 * and NUL-terminated: for a backend's own tests too. */
void storage_assert_object(me_storage_t *st, const char *key, const void *want, size_t len);

#endif
