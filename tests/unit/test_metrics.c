/* test_metrics.c: unit tests of server/core/metrics.c: values, rendering, escaping, overflow, concurrency. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/core/metrics.c"

/* One metric rendered alone (the registry holds every test's metrics). Caller frees. */
static char *render_one(me_metric_t *m)
{
    metric_buf_t b = {0};
    buf_add(&b, "", 0);
    render_metric(&b, m);
    assert_false(b.failed);
    return b.p;
}

static void assert_render(me_metric_t *m, const char *expected)
{
    char *got = render_one(m);
    assert_string_equal(got, expected);
    free(got);
}

static void test_counter_without_labels(void **state)
{
    (void)state;
    me_metric_t *m = me_metric_new(ME_METRIC_COUNTER, "t_plain_total", "Plain counter.", NULL, NULL, 0);
    assert_non_null(m);
    assert_render(m, "# HELP t_plain_total Plain counter.\n# TYPE t_plain_total counter\nt_plain_total 0\n");
    me_metric_add(m, NULL, 1);
    me_metric_add(m, NULL, 41);
    me_metric_add(m, NULL, -5);  /* ignored: counters only go up */
    me_metric_add(m, NULL, NAN); /* ignored */
    assert_render(m, "# HELP t_plain_total Plain counter.\n# TYPE t_plain_total counter\nt_plain_total 42\n");
    me_metric_add(m, NULL, 0.5);
    assert_true(me_metric_value(m, NULL) == 42.5);
    assert_render(m, "# HELP t_plain_total Plain counter.\n# TYPE t_plain_total counter\nt_plain_total 42.5\n");
}

static void test_counter_with_labels(void **state)
{
    (void)state;
    me_metric_t *m = me_metric_new(ME_METRIC_COUNTER, "t_req_total", "Requests.", "route,status", NULL, 0);
    assert_non_null(m);
    assert_render(m, "# HELP t_req_total Requests.\n# TYPE t_req_total counter\n");
    me_metric_add(m, (const char *[]){"/v1/uploads", "201"}, 1);
    me_metric_add(m, (const char *[]){"/healthz", "200"}, 3);
    me_metric_add(m, (const char *[]){"/v1/uploads", "201"}, 1);
    assert_render(m, "# HELP t_req_total Requests.\n# TYPE t_req_total counter\n"
                     "t_req_total{route=\"/v1/uploads\",status=\"201\"} 2\n"
                     "t_req_total{route=\"/healthz\",status=\"200\"} 3\n");
    assert_true(me_metric_value(m, (const char *[]){"/healthz", "200"}) == 3);
    assert_true(me_metric_value(m, (const char *[]){"/healthz", "404"}) == 0);
    assert_int_equal(atomic_load(&m->nseries), 2); /* value() of an unseen set adds nothing */
}

static void test_gauge(void **state)
{
    (void)state;
    me_metric_t *m = me_metric_new(ME_METRIC_GAUGE, "t_gauge", "A gauge.", NULL, NULL, 0);
    assert_non_null(m);
    me_metric_add(m, NULL, 5);
    me_metric_add(m, NULL, -7);
    assert_true(me_metric_value(m, NULL) == -2);
    assert_render(m, "# HELP t_gauge A gauge.\n# TYPE t_gauge gauge\nt_gauge -2\n");
    me_metric_set(m, NULL, 0.25);
    assert_render(m, "# HELP t_gauge A gauge.\n# TYPE t_gauge gauge\nt_gauge 0.25\n");
    me_metric_set(m, NULL, -0.001);
    assert_render(m, "# HELP t_gauge A gauge.\n# TYPE t_gauge gauge\nt_gauge -0.001\n");

    me_metric_t *c = me_metric_new(ME_METRIC_COUNTER, "t_gauge_not", "Counter.", NULL, NULL, 0);
    me_metric_set(c, NULL, 9); /* only gauges can be set */
    assert_true(me_metric_value(c, NULL) == 0);
}

static void test_histogram(void **state)
{
    (void)state;
    static const double buckets[] = {0.25, 1, 2.5};
    me_metric_t *m = me_metric_new(ME_METRIC_HISTOGRAM, "t_seconds", "Durations.", "route", buckets, 3);
    assert_non_null(m);
    for (size_t i = 0; i < 5; i++)
        me_metric_add(m, (const char *[]){"/x"}, (double[]){0.125, 0.25, 0.75, 2, 4}[i]);
    assert_true(me_metric_value(m, (const char *[]){"/x"}) == 5);
    assert_render(m, "# HELP t_seconds Durations.\n# TYPE t_seconds histogram\n"
                     "t_seconds_bucket{route=\"/x\",le=\"0.25\"} 2\n"
                     "t_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"
                     "t_seconds_bucket{route=\"/x\",le=\"2.5\"} 4\n"
                     "t_seconds_bucket{route=\"/x\",le=\"+Inf\"} 5\n"
                     "t_seconds_sum{route=\"/x\"} 7.125\n"
                     "t_seconds_count{route=\"/x\"} 5\n");

    static const double with_inf[] = {0.5, INFINITY}; /* an explicit +Inf is the implied one */
    me_metric_t *u = me_metric_new(ME_METRIC_HISTOGRAM, "t_unlabelled", "H.", NULL, with_inf, 2);
    assert_non_null(u);
    assert_render(u, "# HELP t_unlabelled H.\n# TYPE t_unlabelled histogram\n"
                     "t_unlabelled_bucket{le=\"0.5\"} 0\n"
                     "t_unlabelled_bucket{le=\"+Inf\"} 0\n"
                     "t_unlabelled_sum 0\n"
                     "t_unlabelled_count 0\n");
}

static void test_escaping(void **state)
{
    (void)state;
    me_metric_t *m = me_metric_new(ME_METRIC_COUNTER, "t_esc_total", "Line one\nback\\slash \"quoted\"", "v",
                                   NULL, 0);
    assert_non_null(m);
    me_metric_add(m, (const char *[]){"a\"b\\c\nd"}, 1);
    assert_render(m, "# HELP t_esc_total Line one\\nback\\\\slash \"quoted\"\n"
                     "# TYPE t_esc_total counter\n"
                     "t_esc_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
}

static void test_number_format(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"}, {-0.0, "0"}, {42, "42"}, {-3, "-3"}, {0.1, "0.1"}, {0.005, "0.005"}, {1e300, "1e+300"},
        {1.0 / 3, "0.33333333333333331"}, {9007199254740992.0, "9007199254740992"}, {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"}, {NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        metric_buf_t b = {0};
        buf_number(&b, cases[i].v);
        assert_non_null(b.p);
        assert_string_equal(b.p, cases[i].text);
        free(b.p);
    }
}

static void test_overflow_series(void **state)
{
    (void)state;
    me_metric_t *m = me_metric_new(ME_METRIC_COUNTER, "t_many_total", "Many.", "id", NULL, 0);
    char id[16];
    assert_non_null(m);
    for (int i = 0; i < ME_METRIC_MAX_SERIES + 10; i++) {
        snprintf(id, sizeof(id), "%d", i);
        me_metric_add(m, (const char *[]){id}, 1);
    }
    me_metric_add(m, (const char *[]){"0"}, 1); /* an existing set still counts as itself */
    assert_int_equal(atomic_load(&m->nseries), ME_METRIC_MAX_SERIES);
    assert_true(me_metric_value(m, (const char *[]){"0"}) == 2);
    assert_true(me_metric_value(m, (const char *[]){"515"}) == 0);
    char *text = render_one(m);
    size_t lines = 0;
    for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    assert_int_equal(lines, 2 + ME_METRIC_MAX_SERIES + 1);
    assert_non_null(strstr(text, "\nt_many_total{id=\"511\"} 1\n"));
    assert_null(strstr(text, "id=\"512\""));
    assert_non_null(strstr(text, "\nt_many_total{id=\"_overflow\"} 10\n"));
    free(text);
}

static void test_label_value_cut(void **state)
{
    (void)state;
    me_metric_t *m = me_metric_new(ME_METRIC_COUNTER, "t_long_total", "Long.", "v", NULL, 0);
    char a[300], b[300], u[200];
    memset(a, 'x', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(b));
    b[200] = 'y'; /* differs after the kept 127 bytes: the same series */
    me_metric_add(m, (const char *[]){a}, 1);
    me_metric_add(m, (const char *[]){b}, 1);
    assert_int_equal(atomic_load(&m->nseries), 1);
    assert_int_equal(m->series[0]->len[0], METRIC_VALUE_MAX - 1);
    assert_true(me_metric_value(m, (const char *[]){a}) == 2);

    memset(u, 'a', 126);
    strcpy(u + 126, "\xc3\xa9zz"); /* "é" at bytes 126-127 would be split by a cut at 127 */
    me_metric_add(m, (const char *[]){u}, 1);
    me_metric_add(m, (const char *[]){u}, 1);
    assert_int_equal(atomic_load(&m->nseries), 2);
    assert_int_equal(m->series[1]->len[0], 126);
    assert_true(me_metric_value(m, (const char *[]){u}) == 2);
}

static void test_duplicate_and_invalid(void **state)
{
    (void)state;
    me_metric_t *m = me_metric_new(ME_METRIC_COUNTER, "t_dup_total", "First.", NULL, NULL, 0);
    assert_non_null(m);
    assert_ptr_equal(me_metric_new(ME_METRIC_COUNTER, "t_dup_total", "Second.", NULL, NULL, 0), m);
    assert_ptr_equal(me_metric_new(ME_METRIC_GAUGE, "t_dup_total", "Other type.", "a", NULL, 0), m);

    static const double down[] = {1, 0.5}, nan_b[] = {NAN};
    assert_null(me_metric_new(ME_METRIC_COUNTER, "1starts_with_digit", "", NULL, NULL, 0));
    assert_null(me_metric_new(ME_METRIC_COUNTER, "has space", "", NULL, NULL, 0));
    assert_null(me_metric_new(ME_METRIC_COUNTER, "t_labels_total", "", "a,b,c,d", NULL, 0));
    assert_null(me_metric_new(ME_METRIC_COUNTER, "t_label_name_total", "", "ro:ute", NULL, 0));
    assert_null(me_metric_new(ME_METRIC_HISTOGRAM, "t_le", "", "le", down, 0));
    assert_null(me_metric_new(ME_METRIC_HISTOGRAM, "t_down", "", NULL, down, 2));
    assert_null(me_metric_new(ME_METRIC_HISTOGRAM, "t_nan", "", NULL, nan_b, 1));
    me_metric_add(NULL, NULL, 1); /* a metric that failed to register is a no-op */
    me_metric_set(NULL, NULL, 1);
    assert_true(me_metric_value(NULL, NULL) == 0);
}

static void test_render_all(void **state)
{
    (void)state;
    me_metric_t *m = me_metric_new(ME_METRIC_GAUGE, "t_render_all", "Whole registry.", NULL, NULL, 0);
    me_metric_set(m, NULL, 7);
    size_t len = 0;
    char *text = me_metrics_render(&len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    assert_non_null(strstr(text, "# TYPE t_render_all gauge\nt_render_all 7\n"));
    assert_non_null(strstr(text, "# HELP t_plain_total Plain counter.\n")); /* registered by an earlier test */
    free(text);
}

#define THREADS 4
#define ADDS 100000
#define SETS 200

static me_metric_t *race_metric;
static pthread_barrier_t race_start;

/* All threads meet the same new label sets in the same order at the same time, so that
 * they race to create each one. */
static void *race_thread(void *arg)
{
    char id[8];
    (void)arg;
    pthread_barrier_wait(&race_start);
    for (size_t i = 0; i < ADDS; i++) {
        snprintf(id, sizeof(id), "%zu", i % SETS);
        me_metric_add(race_metric, (const char *[]){id}, 1);
        me_metric_add(race_metric, (const char *[]){"all"}, 1);
    }
    return NULL;
}

static void test_concurrent_adds(void **state)
{
    pthread_t th[THREADS];
    char id[8];
    (void)state;
    race_metric = me_metric_new(ME_METRIC_COUNTER, "t_race_total", "Race.", "id", NULL, 0);
    assert_non_null(race_metric);
    pthread_barrier_init(&race_start, NULL, THREADS);
    for (size_t t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, race_thread, NULL), 0);
    for (size_t t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&race_start);
    assert_true(me_metric_value(race_metric, (const char *[]){"all"}) == THREADS * ADDS);
    assert_int_equal(atomic_load(&race_metric->nseries), SETS + 1); /* no set added twice */
    for (int i = 0; i < SETS; i++) {
        snprintf(id, sizeof(id), "%d", i);
        assert_true(me_metric_value(race_metric, (const char *[]){id}) == THREADS * ADDS / SETS);
    }
}

static int group_setup(void **state)
{
    (void)state;
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC); /* the invalid definitions log errors */
    me_log_init(ME_LOG_ERROR, 0, fd);
    return fd < 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_without_labels),
        cmocka_unit_test(test_counter_with_labels),
        cmocka_unit_test(test_gauge),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_number_format),
        cmocka_unit_test(test_overflow_series),
        cmocka_unit_test(test_label_value_cut),
        cmocka_unit_test(test_duplicate_and_invalid),
        cmocka_unit_test(test_render_all),
        cmocka_unit_test(test_concurrent_adds),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
