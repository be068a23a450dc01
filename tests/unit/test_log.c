/* test_log.c: unit tests of server/core/log.c: JSON validity, escaping, levels, buffering, write sizes, caps. */
#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "server/core/log.c"

/* The log writes into a packet-mode pipe (O_DIRECT): each read returns exactly one write()
 * (a write over 4096 bytes arrives as several packets), so tests see write boundaries. */
typedef struct {
    int r, w;
    char text[1 << 16]; /* everything read by the last drain() */
    size_t len;
    size_t writes;
} sink_t;

/* Reads every pending write; checks that each is at most 4096 bytes of whole lines. */
static void drain(sink_t *s)
{
    char pkt[8192];
    ssize_t n;
    s->len = 0;
    s->writes = 0;
    while ((n = read(s->r, pkt, sizeof(pkt))) > 0) {
        assert_true(n <= LOG_WRITE_MAX);
        assert_int_equal(pkt[n - 1], '\n');
        assert_int_equal(pkt[0], '{');
        assert_true(s->len + (size_t)n < sizeof(s->text));
        memcpy(s->text + s->len, pkt, (size_t)n);
        s->len += (size_t)n;
        s->writes++;
    }
    assert_true(n < 0 && errno == EAGAIN);
    s->text[s->len] = '\0';
}

/* Parses the only line drained, or fails. Caller json_decref()s it. */
static json_t *one_line(sink_t *s)
{
    json_error_t err;
    drain(s);
    assert_int_equal(s->writes, 1);
    json_t *j = json_loadb(s->text, s->len, 0, &err);
    if (j == NULL)
        fail_msg("invalid JSON (%s): %s", err.text, s->text);
    assert_true(json_is_object(j));
    return j;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; (p = strchr(p, '\n')) != NULL; p++)
        n++;
    return n;
}

static int sink_setup(void **state)
{
    sink_t *s = calloc(1, sizeof(*s));
    int fds[2];
    if (s == NULL || pipe2(fds, O_DIRECT | O_CLOEXEC) != 0)
        return -1;
    s->r = fds[0];
    s->w = fds[1];
    fcntl(s->r, F_SETFL, O_NONBLOCK);
    me_log_init(ME_LOG_DEBUG, 1, s->w);
    *state = s;
    return 0;
}

static int sink_teardown(void **state)
{
    sink_t *s = *state;
    me_log_set_buffered(0);
    me_log_init(ME_LOG_INFO, 1, 2);
    close(s->r);
    close(s->w);
    free(s);
    return 0;
}

static void test_application_line(void **state)
{
    sink_t *s = *state;
    errno = ENOENT;
    me_log_info("req-1", "hello %d", 42);
    assert_int_equal(errno, ENOENT); /* logging leaves errno alone */
    json_t *j = one_line(s);
    assert_int_equal(json_object_size(j), 4);
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "hello 42");
    assert_string_equal(json_string_value(json_object_get(j, "req")), "req-1");

    const char *ts = json_string_value(json_object_get(j, "ts"));
    struct tm tm = {0};
    int ms = -1;
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                            &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    assert_true(ms >= 0 && ms <= 999 && ts[23] == 'Z');
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    assert_true(labs((long)(timegm(&tm) - time(NULL))) <= 2); /* UTC, not local time */
    json_decref(j);

    me_log_error(NULL, "no request");
    j = one_line(s);
    assert_int_equal(json_object_size(j), 3);
    assert_null(json_object_get(j, "req"));
    assert_string_equal(json_string_value(json_object_get(j, "level")), "error");
    json_decref(j);
}

static void test_access_line(void **state)
{
    sink_t *s = *state;
    me_access_t a = {.reqid = "r1", .method = "POSTxx", .method_len = 4, .path = "/v1/uploads?q", .path_len = 11,
                     .route = "/v1/uploads", .protocol = "HTTP/2", .status = 201, .bytes_in = 12345,
                     .bytes_out = 9876543210, .duration = 0.001234};
    me_log_access(&a);
    json_t *j = one_line(s);
    assert_int_equal(json_object_size(j), 11);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "access");
    assert_string_equal(json_string_value(json_object_get(j, "req")), "r1");
    assert_string_equal(json_string_value(json_object_get(j, "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/v1/uploads");
    assert_string_equal(json_string_value(json_object_get(j, "route")), "/v1/uploads");
    assert_string_equal(json_string_value(json_object_get(j, "proto")), "HTTP/2");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 201);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_in")), 12345);
    assert_int_equal(json_integer_value(json_object_get(j, "bytes_out")), 9876543210);
    assert_true(json_is_string(json_object_get(j, "ts")));
    assert_non_null(strstr(s->text, ",\"duration\":0.001234}\n")); /* the exact text, not a float */
    json_decref(j);

    a.duration = -1;
    a.reqid = NULL;
    a.route = NULL;
    me_log_access(&a);
    j = one_line(s);
    assert_null(json_object_get(j, "req"));
    assert_null(json_object_get(j, "route"));
    assert_non_null(strstr(s->text, "\"duration\":0.000000}\n"));
    json_decref(j);
}

static void test_escape_table(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *out;
    } cases[] = {
        {"plain /path", 11, "plain /path"},
        {"q\"b\\s", 5, "q\\\"b\\\\s"},
        {"\n\r\t\b\f", 5, "\\n\\r\\t\\b\\f"},
        {"\x01\x1f\x7f", 3, "\\u0001\\u001f\x7f"},
        {"a\0b", 3, "a\\u0000b"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
        {"\xff", 1, "\\ufffd"},
        {"\xc0\xaf", 2, "\\ufffd\\ufffd"},                  /* overlong '/' */
        {"\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd"},       /* surrogate */
        {"\xf4\x90\x80\x80", 4, "\\ufffd\\ufffd\\ufffd\\ufffd"}, /* past U+10FFFF */
        {"x\xe2\x82", 3, "x\\ufffd\\ufffd"},                /* cut sequence */
        {"\xc3(", 2, "\\ufffd("},
    };
    char out[128];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = me_log_json_escape(out, sizeof(out), cases[i].in, cases[i].len);
        assert_string_equal(out, cases[i].out);
        assert_int_equal(n, strlen(cases[i].out));
    }
    assert_int_equal(me_log_json_escape(out, 0, "abc", 3), 0);
}

/* Each byte that needs care, at every offset of a plain run (the 8-byte fast path). */
static void test_escape_every_offset(void **state)
{
    static const struct {
        char c;
        const char *out;
    } specials[] = {{'"', "\\\""}, {'\\', "\\\\"}, {'\x01', "\\u0001"}, {'\x1f', "\\u001f"},
                    {'\n', "\\n"},   {'\x80', "\\ufffd"}, {'\xff', "\\ufffd"},  {' ', " "}, {'\x7f', "\x7f"}};
    char in[20], out[64], want[64];
    (void)state;
    for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
        for (size_t at = 0; at < sizeof(in); at++) {
            memset(in, 'p', sizeof(in));
            in[at] = specials[k].c;
            snprintf(want, sizeof(want), "%.*s%s%.*s", (int)at, in, specials[k].out, (int)(sizeof(in) - at - 1),
                     in + at + 1);
            me_log_json_escape(out, sizeof(out), in, sizeof(in));
            assert_string_equal(out, want);
        }
    }
}

/* Cut by every output size, the escape is a prefix of the whole and still valid JSON. */
static void test_escape_every_cut(void **state)
{
    (void)state;
    static const char in[] = "a\"\\\n\x01\xc3\xa9\xff\xe2\x82\xac\xf0\x9f\x98\x80z\0e";
    char full[256], out[256], quoted[260];
    size_t full_len = me_log_json_escape(full, sizeof(full), in, sizeof(in) - 1);
    for (size_t size = 1; size <= full_len + 1; size++) {
        size_t n = me_log_json_escape(out, size, in, sizeof(in) - 1);
        json_error_t err;
        assert_true(n < size);
        assert_int_equal(out[n], '\0');
        assert_memory_equal(out, full, n);
        snprintf(quoted, sizeof(quoted), "\"%s\"", out);
        json_t *j = json_loads(quoted, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        if (j == NULL)
            fail_msg("size %zu: invalid JSON (%s): %s", size, err.text, quoted);
        json_decref(j);
    }
    assert_int_equal(me_log_json_escape(out, full_len + 1, in, sizeof(in) - 1), full_len);
}

static void test_hostile_message(void **state)
{
    sink_t *s = *state;
    me_log_warn("id\"\n", "say \"%s\"\\ \x01 %s", "hi\tthere", "bad\xff\xc3\xa9");
    json_t *j = one_line(s);
    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "say \"hi\tthere\"\\ \x01 bad\xef\xbf\xbd\xc3\xa9");
    assert_string_equal(json_string_value(json_object_get(j, "req")), "id\"\n");
    json_decref(j);

    char big[LOG_MSG_MAX * 2];
    memset(big, '\x02', sizeof(big) - 1); /* every byte escapes to 6: the cap keeps the line whole */
    big[sizeof(big) - 1] = '\0';
    me_log_info(NULL, "%s", big);
    j = one_line(s);
    assert_true(s->len <= LOG_WRITE_MAX);
    assert_true(strlen(json_string_value(json_object_get(j, "msg"))) <= LOG_CAP_MSG / 6);
    assert_true(json_is_true(json_object_get(j, "msg_truncated")));
    json_decref(j);

    memset(big, 'm', sizeof(big) - 1); /* cut by the 2 KiB format limit, not by escaping */
    me_log_info(NULL, "%s", big);
    j = one_line(s);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "msg"))), LOG_MSG_MAX - 1);
    assert_true(json_is_true(json_object_get(j, "msg_truncated")));
    json_decref(j);
    me_log_info(NULL, "%.*s", LOG_MSG_MAX - 1, big); /* just fits */
    j = one_line(s);
    assert_null(json_object_get(j, "msg_truncated"));
    json_decref(j);
}

static void test_level_filter(void **state)
{
    sink_t *s = *state;
    me_access_t a = {.method = "GET", .method_len = 3, .path = "/", .path_len = 1, .status = 200};
    me_log_init(ME_LOG_WARN, 0, s->w);
    me_log_debug(NULL, "d");
    me_log_info(NULL, "i");
    me_log_access(&a);
    drain(s);
    assert_int_equal(s->len, 0);
    me_log_warn(NULL, "w");
    me_log_error(NULL, "e");
    drain(s);
    assert_int_equal(s->writes, 2);
    assert_non_null(strstr(s->text, "\"level\":\"warn\",\"msg\":\"w\"}\n"));
    assert_non_null(strstr(s->text, "\"level\":\"error\",\"msg\":\"e\"}\n"));

    me_log_init(ME_LOG_DEBUG, 1, s->w);
    me_log_debug(NULL, "d");
    me_log_access(&a);
    drain(s);
    assert_int_equal(s->writes, 2); /* unbuffered: one write per line */
}

static void test_buffered_waits_100ms(void **state)
{
    sink_t *s = *state;
    me_log_set_buffered(1);
    me_log_flush_due(1000);
    me_log_info("r", "first");
    me_log_debug("r", "second");
    me_log_flush_due(1050);
    me_log_flush_due(1099);
    drain(s);
    assert_int_equal(s->len, 0);
    me_log_flush_due(1100);
    drain(s);
    assert_int_equal(s->writes, 1);
    assert_int_equal(count_lines(s->text), 2);
    assert_non_null(strstr(s->text, "\"msg\":\"first\""));

    me_log_info(NULL, "kept until flush");
    me_log_flush_due(1150);
    drain(s);
    assert_int_equal(s->len, 0);
    me_log_flush();
    drain(s);
    assert_int_equal(count_lines(s->text), 1);
}

static void test_buffered_warn_flushes(void **state)
{
    sink_t *s = *state;
    me_log_set_buffered(1);
    me_log_flush_due(1000);
    me_log_info(NULL, "a");
    me_log_info(NULL, "b");
    drain(s);
    assert_int_equal(s->len, 0);
    me_log_warn(NULL, "c"); /* errors and warnings do not wait */
    drain(s);
    assert_int_equal(s->writes, 1);
    assert_int_equal(count_lines(s->text), 3);
}

static void test_buffered_size_flush(void **state)
{
    sink_t *s = *state;
    me_log_set_buffered(1);
    me_log_flush_due(1000);
    size_t lines = 0;
    while (log_tls.len < LOG_FLUSH_BYTES) {
        me_log_info(NULL, "%0200d", 0);
        lines++;
    }
    me_log_flush_due(1000); /* not old, but nearly full */
    drain(s);
    assert_int_equal(s->writes, 1);
    assert_int_equal(count_lines(s->text), lines);
}

/* Many lines of varied sizes: every write is whole lines within 4096 bytes, none is lost. */
static void test_many_lines_whole_writes(void **state)
{
    sink_t *s = *state;
    static char path[1500];
    size_t total_lines = 0, total_writes = 0;
    uint64_t now = 1000;
    memset(path, '/', sizeof(path));
    me_log_set_buffered(1);
    for (size_t i = 0; i < 3000; i++) {
        me_access_t a = {.reqid = "abc", .method = "PUT", .method_len = 3, .path = path,
                         .path_len = (i * 397) % sizeof(path), .route = "/r", .protocol = "HTTP/1.1",
                         .status = 200, .duration = 0.5};
        me_log_access(&a);
        if (i % 97 == 0)
            me_log_info("abc", "line %zu", i);
        me_log_flush_due(now += 3);
        drain(s);
        for (char *line = s->text, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
            json_error_t err;
            json_t *j = json_loadb(line, (size_t)(nl - line), 0, &err);
            if (j == NULL)
                fail_msg("invalid JSON (%s) in write %zu", err.text, total_writes);
            json_decref(j);
            total_lines++;
        }
        total_writes += s->writes;
    }
    me_log_flush();
    drain(s);
    total_lines += count_lines(s->text);
    total_writes += s->writes;
    assert_int_equal(total_lines, 3000 + 3000 / 97 + 1);
    assert_true(total_writes < total_lines / 2); /* lines were batched */
}

/* A line over 4096 bytes (not producible through the API) is written alone, after the
 * lines before it. */
static void test_oversized_line_alone(void **state)
{
    sink_t *s = *state;
    char big[5000], pkt[8192];
    memset(big, 'x', sizeof(big));
    big[sizeof(big) - 1] = '\n';
    me_log_set_buffered(1);
    me_log_flush_due(1000);
    me_log_info(NULL, "before");
    log_emit(big, sizeof(big), 0);
    ssize_t n = read(s->r, pkt, sizeof(pkt));
    assert_true(n > 0 && memcmp(pkt, "{\"ts\"", 5) == 0 && pkt[n - 1] == '\n');
    size_t got = 0;
    while ((n = read(s->r, pkt, sizeof(pkt))) > 0)
        got += (size_t)n;
    assert_int_equal(got, sizeof(big));
    assert_int_equal(log_tls.len, 0);
}

static void test_truncated_fields(void **state)
{
    sink_t *s = *state;
    static char path[5000], quotes[600], method[100];
    memset(path, 'a', sizeof(path));
    memset(quotes, '"', sizeof(quotes));
    memset(method, 'M', sizeof(method));
    me_access_t a = {.method = method, .method_len = sizeof(method), .path = path, .path_len = sizeof(path),
                     .status = 400};
    me_log_access(&a);
    json_t *j = one_line(s);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "path"))), LOG_CAP_PATH);
    assert_true(json_is_true(json_object_get(j, "path_truncated")));
    assert_int_equal(strlen(json_string_value(json_object_get(j, "method"))), LOG_CAP_METHOD);
    assert_true(json_is_true(json_object_get(j, "method_truncated")));
    json_decref(j);

    a.path = quotes; /* each escapes to 2 bytes: half fit */
    a.path_len = sizeof(quotes);
    a.method_len = LOG_CAP_METHOD;
    me_log_access(&a);
    j = one_line(s);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "path"))), LOG_CAP_PATH / 2);
    assert_true(json_is_true(json_object_get(j, "path_truncated")));
    assert_null(json_object_get(j, "method_truncated"));
    json_decref(j);

    a.path_len = LOG_CAP_PATH / 2; /* exactly at the cap: not cut */
    me_log_access(&a);
    j = one_line(s);
    assert_null(json_object_get(j, "path_truncated"));
    json_decref(j);
}

int main(void)
{
    setenv("TZ", "UTC-05:30", 1); /* a local time that is not UTC, so that ts must be UTC */
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_table),
        cmocka_unit_test(test_escape_every_offset),
        cmocka_unit_test(test_escape_every_cut),
        cmocka_unit_test_setup_teardown(test_application_line, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_access_line, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_hostile_message, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_level_filter, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_buffered_waits_100ms, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_buffered_warn_flushes, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_buffered_size_flush, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_many_lines_whole_writes, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_oversized_line_alone, sink_setup, sink_teardown),
        cmocka_unit_test_setup_teardown(test_truncated_fields, sink_setup, sink_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
