/* test_jobs.c: the local job queue, and the job runner on the real file backend in a temp
 * dir with a processor the test controls: ready once, retries with backoff, permanent
 * failures, a crash between the manifest and the job's deletion, recovery at start and the
 * reconciler. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include "server/core/clock.h"
#include "server/jobs/jobq.h"
#include "server/jobs/jobq_local.c" /* its steps counter */
#include "server/jobs/jobs.h"
#include "server/jobs/jobs_config.h"
#include "server/storage/storage_config.h"

static const int64_t T0 = 1800000000000; /* ms */

/* a media id (22 base64url characters, as uploads make them) ending in the 2 characters x */
#define ID(x) "AAAAAAAAAAAAAAAAAAAA" x

/* ---- the queue ---- */

static void test_queue_order_dedup_and_retry(void **state)
{
    char id[ME_JOBQ_ID_MAX + 1];
    (void)state;
    me_jobq_t *q = me_jobq_local_new();
    assert_int_equal(me_jobq_push(q, "b", 2), 0);
    assert_int_equal(me_jobq_push(q, "a", 1), 0);
    assert_int_equal(me_jobq_push(q, "b", 0), 0); /* already there: stays at 2 */
    assert_int_equal(me_jobq_push(q, "", 0), ME_EINVAL);
    assert_int_equal(me_jobq_length(q), 2);
    assert_int_equal(me_jobq_pop(q, id), 0);
    assert_string_equal(id, "a");
    assert_int_equal(me_jobq_push(q, "a", 0), 0); /* running: not queued twice */
    assert_int_equal(me_jobq_length(q), 2);
    assert_int_equal(me_jobq_pop(q, id), 0);
    assert_string_equal(id, "b");
    me_jobq_retry(q, "a", 3);
    me_jobq_done(q, "b");
    assert_int_equal(me_jobq_pop(q, id), 0);
    assert_string_equal(id, "a");
    me_jobq_done(q, "a");
    assert_int_equal(me_jobq_length(q), 0);
    me_jobq_close(q);
    assert_int_equal(me_jobq_pop(q, id), ME_EDRAINING);
    me_jobq_free(q);
}

/* Reconciling puts every media of a backlog in the queue while workers pop: each push,
 * pop and done must cost O(log N) steps of the local queue (heap levels, hash probes), not
 * a scan of the queue; counted, not timed (test machines are noisy). */
static void test_queue_push_pop_are_n_log_n(void **state)
{
    enum { N = 20000 };
    char id[ME_JOBQ_ID_MAX + 1];
    (void)state;
    me_jobq_t *q = me_jobq_local_new();
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "m%d", i);
        assert_int_equal(me_jobq_push(q, id, (int64_t)((i * 7919) % N)), 0); /* times out of order */
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(me_jobq_push(q, "m0", 0), 0); /* already there */
    assert_int_equal(me_jobq_length(q), N);
    for (int t = 0; t < N; t++) { /* 7919 is prime to N: the times are 0 to N - 1, each once */
        assert_int_equal(me_jobq_pop(q, id), 0);
        assert_int_equal((atoi(id + 1) * 7919) % N, t); /* earliest first */
        me_jobq_done(q, id);
    }
    assert_int_equal(me_jobq_length(q), 0);
    uint64_t steps = ((local_t *)q)->steps;
    print_message("%d ids: %llu steps\n", N, (unsigned long long)steps);
    assert_true(steps < (uint64_t)(4 * N * log2(N)));
    me_jobq_free(q);
}

/* Random pushes, pops, dones and retries against a model of the contract (an id at most
 * once, earliest time first, among equal times the first pushed or retried). */
static void test_queue_matches_a_model(void **state)
{
    enum { IDS = 300, OPS = 100000 };
    enum { ABSENT, WAITING, RUNNING_ } st[IDS] = {0};
    int64_t at[IDS];
    uint64_t seq[IDS], next = 0;
    char id[ME_JOBQ_ID_MAX + 1], want[ME_JOBQ_ID_MAX + 1];
    size_t len = 0;
    (void)state;
    srand(7);
    me_jobq_t *q = me_jobq_local_new();
    for (int op = 0; op < OPS; op++) {
        int k = rand() % IDS, waiting = -1;
        int64_t t = rand() % 50;
        snprintf(id, sizeof(id), "AAAAAAAAAAAAAAAAAAAA%d", k);
        switch (rand() % 4) {
        case 0:
            assert_int_equal(me_jobq_push(q, id, t), 0);
            if (st[k] == ABSENT)
                st[k] = WAITING, at[k] = t, seq[k] = next++, len++;
            break;
        case 1:
            for (int i = 0; i < IDS; i++)
                if (st[i] == WAITING && (waiting < 0 || at[i] < at[waiting] ||
                                         (at[i] == at[waiting] && seq[i] < seq[waiting])))
                    waiting = i;
            if (waiting < 0)
                break; /* a pop would wait for ever */
            assert_int_equal(me_jobq_pop(q, id), 0);
            snprintf(want, sizeof(want), "AAAAAAAAAAAAAAAAAAAA%d", waiting);
            assert_string_equal(id, want);
            st[waiting] = RUNNING_;
            break;
        case 2:
            me_jobq_done(q, id);
            if (st[k] != ABSENT)
                st[k] = ABSENT, len--;
            break;
        case 3:
            me_jobq_retry(q, id, t);
            if (st[k] != ABSENT)
                st[k] = WAITING, at[k] = t, seq[k] = next++;
            break;
        }
        assert_int_equal(me_jobq_length(q), len);
    }
    me_jobq_free(q); /* with ids still in it: the leak checker counts them */
}

static void *pop_until_closed(void *q)
{
    char id[ME_JOBQ_ID_MAX + 1];
    return (void *)(intptr_t)me_jobq_pop(q, id);
}

static void test_queue_close_wakes_poppers(void **state)
{
    pthread_t t[2];
    void *ret;
    (void)state;
    me_jobq_t *q = me_jobq_local_new();
    assert_int_equal(me_jobq_push(q, "later", me_clock_wall_ms() + 3600 * 1000), 0);
    assert_int_equal(pthread_create(&t[0], NULL, pop_until_closed, q), 0);
    assert_int_equal(pthread_create(&t[1], NULL, pop_until_closed, q), 0);
    usleep(50 * 1000); /* let them wait; the assertions hold whether they did or not */
    me_jobq_close(q);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(t[i], &ret), 0);
        assert_int_equal((intptr_t)ret, ME_EDRAINING);
    }
    me_jobq_free(q);
}

/* ---- the runner ---- */

typedef struct {
    char dir[64];
    me_config_t cfg;
    me_jobs_settings_t *jobs; /* cfg's sections, set by hand */
    me_webhook_settings_t *hooks_cfg;
    me_storage_t *st;
    me_jobq_t *q, *hq;
    me_jobs_t *j;
    me_webhooks_t *hooks;
    int calls;         /* how many times the processor ran */
    int fail_first;    /* the first this many calls fail, passing (retryable) */
    int fail_forever;  /* every call fails, with the file at fault */
    int no_pipeline;   /* every call says this kind is not processed here */
} fixture_t;

static int process(void *ctx, me_storage_t *st, const json_t *manifest, json_t **result, me_job_failure_t *why)
{
    fixture_t *f = ctx;
    (void)st;
    assert_string_equal(json_string_value(json_object_get(manifest, "status")), "processing");
    __atomic_add_fetch(&f->calls, 1, __ATOMIC_SEQ_CST);
    if (f->no_pipeline) {
        why->err = ME_EUNSUPPORTED, why->permanent = 0;
        return ME_EUNSUPPORTED;
    }
    if (f->fail_forever) {
        why->err = ME_EMEDIA, why->permanent = 1;
        snprintf(why->message, sizeof(why->message), "This file is not a photo we can read.");
        return -1;
    }
    if (__atomic_load_n(&f->calls, __ATOMIC_SEQ_CST) <= f->fail_first) {
        why->err = ME_EIO, why->permanent = 0;
        snprintf(why->message, sizeof(why->message), "storage hiccup %d", f->calls);
        return -1;
    }
    *result = json_pack("{s:{s:{s:i}}}", "variants", "thumb", "width", 320);
    return 0;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    me_storage_settings_t *storage;
    char err[256];
    strcpy(f->dir, "/tmp/me-jobs-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(me_config_defaults(&f->cfg), 0);
    f->jobs = me_config_section_mut(&f->cfg, &me_jobs_config_section);
    f->hooks_cfg = me_config_section_mut(&f->cfg, &me_webhook_config_section);
    storage = me_config_section_mut(&f->cfg, &me_storage_config_section);
    storage->root = f->dir;
    f->jobs->workers = 2;
    f->hooks_cfg->url = "http://127.0.0.1:9/hooks"; /* raised, stored, never sent here */
    f->hooks_cfg->secret = "s";
    assert_non_null(f->st = me_storage_open(&f->cfg, err, sizeof(err)));
    assert_non_null(f->q = me_jobq_local_new());
    assert_non_null(f->hq = me_jobq_local_new());
    assert_non_null(f->hooks = me_webhooks_new(&f->cfg, f->st, f->hq, err, sizeof(err)));
    assert_non_null(f->j = me_jobs_new(&f->cfg, f->st, f->q, process, f, f->hooks));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    me_jobs_free(f->j);
    me_webhooks_free(f->hooks);
    me_jobq_free(f->q);
    me_jobq_free(f->hq);
    me_storage_close(f->st);
    me_config_free(&f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void put_doc(fixture_t *f, const char *key, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(me_storage_put(f->st, key, text, strlen(text)), 0);
    free(text);
    json_decref(doc);
}

/* What upload completion stores: the manifest and the job. */
static void uploaded(fixture_t *f, const char *id, int64_t at_ms, int with_job)
{
    char key[128];
    snprintf(key, sizeof(key), "media/%s.json", id);
    put_doc(f, key, json_pack("{s:s,s:s,s:I}", "id", id, "status", "uploaded", "created_at", (json_int_t)(at_ms / 1000)));
    if (with_job) {
        snprintf(key, sizeof(key), "jobs/%s.json", id);
        put_doc(f, key, json_pack("{s:s,s:s}", "media_id", id, "kind", "process"));
    }
}

static json_t *doc(fixture_t *f, const char *dir, const char *id)
{
    char key[128], *text;
    size_t len;
    snprintf(key, sizeof(key), "%s/%s.json", dir, id);
    if (me_storage_get_all(f->st, key, 1 << 20, &text, &len) != 0)
        return NULL;
    json_t *d = json_loadb(text, len, 0, NULL);
    free(text);
    return d;
}

static const char *status_of(fixture_t *f, const char *id, char *buf, size_t size)
{
    json_t *m = doc(f, "media", id);
    snprintf(buf, size, "%s", m != NULL ? json_string_value(json_object_get(m, "status")) : "(none)");
    json_decref(m);
    return buf;
}

static void test_ready_once(void **state)
{
    fixture_t *f = *state;
    char s[32];
    int64_t retry = 0;
    uploaded(f, ID("m1"), T0, 1);
    assert_int_equal(me_jobs_run(f->j, ID("m1"), T0, &retry), 0);
    assert_string_equal(status_of(f, ID("m1"), s, sizeof(s)), "ready");
    json_t *m = doc(f, "media", ID("m1"));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(json_object_get(m, "variants"), "thumb"),
                                                        "width")), 320);
    assert_true(json_integer_value(json_object_get(m, "processed_at")) > 0);
    json_decref(m);
    assert_null(doc(f, "jobs", ID("m1")));
    json_t *hook = doc(f, "webhooks", ID("m1") "-ready");
    assert_non_null(hook); /* the backend is told, durably */
    json_decref(hook);
    /* the job again (a queue that delivered twice): nothing happens */
    assert_int_equal(me_jobs_run(f->j, ID("m1"), T0, &retry), 0);
    assert_int_equal(f->calls, 1);
}

static void test_crash_after_ready_drops_the_job(void **state)
{
    fixture_t *f = *state;
    char s[32];
    int64_t retry = 0;
    uploaded(f, ID("m2"), T0, 1);
    put_doc(f, "media/" ID("m2") ".json", json_pack("{s:s,s:s}", "id", ID("m2"), "status", "ready")); /* crash came here */
    assert_int_equal(me_jobs_run(f->j, ID("m2"), T0, &retry), 0);
    assert_int_equal(f->calls, 0);
    assert_null(doc(f, "jobs", ID("m2")));
    assert_string_equal(status_of(f, ID("m2"), s, sizeof(s)), "ready");
}

static void test_retries_with_backoff_then_ready(void **state)
{
    fixture_t *f = *state;
    char s[32];
    int64_t retry = 0;
    f->fail_first = 2;
    f->jobs->retry_after = 1000;
    uploaded(f, ID("m3"), T0, 1);
    assert_int_equal(me_jobs_run(f->j, ID("m3"), T0, &retry), ME_EBUSY);
    assert_int_equal(retry, T0 + 1000);
    assert_int_equal(me_jobs_run(f->j, ID("m3"), retry, &retry), ME_EBUSY);
    assert_int_equal(retry, T0 + 1000 + 2000); /* doubled */
    json_t *job = doc(f, "jobs", ID("m3"));
    assert_int_equal(json_integer_value(json_object_get(job, "attempts")), 2);
    json_decref(job);
    assert_string_equal(status_of(f, ID("m3"), s, sizeof(s)), "processing");
    assert_int_equal(me_jobs_run(f->j, ID("m3"), retry, &retry), 0);
    assert_string_equal(status_of(f, ID("m3"), s, sizeof(s)), "ready");
}

static void test_failures_end_as_failed_with_a_code(void **state)
{
    fixture_t *f = *state;
    char s[32];
    int64_t retry = 0;
    /* the file is at fault: no retry */
    f->fail_forever = 1;
    uploaded(f, ID("m4"), T0, 1);
    assert_int_equal(me_jobs_run(f->j, ID("m4"), T0, &retry), 0);
    assert_string_equal(status_of(f, ID("m4"), s, sizeof(s)), "failed");
    json_t *m = doc(f, "media", ID("m4"));
    json_t *e = json_object_get(m, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "unsupported_media_type");
    assert_string_equal(json_string_value(json_object_get(e, "message")), "This file is not a photo we can read.");
    json_decref(m);
    assert_null(doc(f, "jobs", ID("m4")));
    assert_int_equal(f->calls, 1);
    json_t *hook = doc(f, "webhooks", ID("m4") "-failed");
    assert_non_null(hook);
    json_decref(hook);
    /* a passing fault that never passes: failed after max_attempts */
    f->fail_forever = 0, f->fail_first = 1000, f->calls = 0;
    f->jobs->max_attempts = 3;
    uploaded(f, ID("m5"), T0, 1);
    int64_t at = T0;
    assert_int_equal(me_jobs_run(f->j, ID("m5"), at, &at), ME_EBUSY);
    assert_int_equal(me_jobs_run(f->j, ID("m5"), at, &at), ME_EBUSY);
    assert_int_equal(me_jobs_run(f->j, ID("m5"), at, &at), 0);
    assert_int_equal(f->calls, 3);
    assert_string_equal(status_of(f, ID("m5"), s, sizeof(s)), "failed");
}

static void test_a_kind_without_pipeline_waits(void **state)
{
    fixture_t *f = *state;
    char s[32];
    int64_t retry = 0;
    f->no_pipeline = 1;
    uploaded(f, ID("v1"), T0, 1);
    assert_int_equal(me_jobs_run(f->j, ID("v1"), T0, &retry), 0);
    assert_string_equal(status_of(f, ID("v1"), s, sizeof(s)), "uploaded");
    json_t *job = doc(f, "jobs", ID("v1"));
    assert_non_null(job); /* kept for a process that has the pipeline */
    json_decref(job);
}

static void test_reconciler_requeues_what_was_lost(void **state)
{
    fixture_t *f = *state;
    uploaded(f, ID("ol"), T0 - 3600 * 1000, 0);      /* its job was lost */
    uploaded(f, ID("fr"), T0 - 1000, 0);           /* may still be on its way */
    put_doc(f, "media/" ID("dn") ".json", json_pack("{s:s,s:s,s:I}", "id", ID("dn"), "status", "ready", "created_at",
                                            (json_int_t)(T0 / 1000 - 3600)));
    assert_int_equal(me_jobs_reconcile(f->j, T0), 1);
    assert_int_equal(me_jobq_length(f->q), 1);
    json_t *job = doc(f, "jobs", ID("ol"));
    assert_non_null(job);
    json_decref(job);
    assert_null(doc(f, "jobs", ID("fr")));
    assert_null(doc(f, "jobs", ID("dn")));
}

static void test_start_runs_the_stored_jobs(void **state)
{
    fixture_t *f = *state;
    char s[32];
    uploaded(f, ID("r1"), T0, 1);
    uploaded(f, ID("r2"), T0, 1);
    assert_int_equal(me_jobs_start(f->j), 0);
    for (int i = 0; i < 500 && (me_jobq_length(f->q) > 0 || f->calls < 2); i++)
        usleep(10000);
    me_jobs_stop(f->j);
    assert_string_equal(status_of(f, ID("r1"), s, sizeof(s)), "ready");
    assert_string_equal(status_of(f, ID("r2"), s, sizeof(s)), "ready");
    assert_int_equal(f->calls, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_order_dedup_and_retry),
        cmocka_unit_test(test_queue_push_pop_are_n_log_n),
        cmocka_unit_test(test_queue_matches_a_model),
        cmocka_unit_test(test_queue_close_wakes_poppers),
        cmocka_unit_test_setup_teardown(test_ready_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_ready_drops_the_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retries_with_backoff_then_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failures_end_as_failed_with_a_code, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_kind_without_pipeline_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconciler_requeues_what_was_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_runs_the_stored_jobs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
