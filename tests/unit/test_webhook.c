/* test_webhook.c: webhook signatures (against a vector made with the openssl CLI) and
 * deliveries on the real file backend in a temp dir, to a one-shot HTTP receiver in a
 * thread of the test and to a port where nothing listens; reads of a delivery can be made
 * to fail (through a wrapping backend, storage_faults.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "server/jobs/webhook.h"
#include "server/jobs/jobs_config.h"
#include "server/storage/storage_config.h"
#include "server/storage/storage_file.h"
#include "tests/unit/storage_faults.h"

static const int64_t T0 = 1800000000000; /* ms */
#define MEDIA_ID "AAAAAAAAAAAAAAAAAAAAm1"

static void test_signature_vector(void **state)
{
    /* printf '%s' '1700000000.{"event":"media.ready"}' | openssl dgst -sha256 -hmac 'whsec-test' */
    const char *body = "{\"event\":\"media.ready\"}";
    char sig[ME_WEBHOOK_SIGNATURE_MAX];
    (void)state;
    assert_int_equal(me_webhook_signature("whsec-test", 1700000000, body, strlen(body), sig), 0);
    assert_string_equal(sig, "t=1700000000,v1=2ffad0103ddfeab09bdb6960ad5af6f11f768ef8aa221a7a4d15c05403cf1576");
}

/* ---- a receiver: accepts one connection, keeps the request, answers status ---- */

typedef struct {
    int fd, port, status;
    char request[16384];
    pthread_t thread;
} receiver_t;

static void *receive(void *arg)
{
    receiver_t *r = arg;
    int c = accept(r->fd, NULL, NULL);
    size_t got = 0;
    if (c < 0)
        return NULL;
    /* headers, then Content-Length bytes */
    for (;;) {
        ssize_t n = read(c, r->request + got, sizeof(r->request) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        r->request[got] = '\0';
        char *end = strstr(r->request, "\r\n\r\n"), *cl = strcasestr(r->request, "content-length:");
        if (end != NULL && cl != NULL && got >= (size_t)(end + 4 - r->request) + strtoul(cl + 15, NULL, 10))
            break;
    }
    char answer[128];
    int n = snprintf(answer, sizeof(answer), "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     r->status);
    (void)!write(c, answer, (size_t)n);
    close(c);
    return NULL;
}

static void receiver_start(receiver_t *r, int status)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    memset(r, 0, sizeof(*r));
    r->status = status;
    assert_true((r->fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r->fd, 1), 0);
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &len), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, receive, r), 0);
}

static void receiver_join(receiver_t *r)
{
    pthread_join(r->thread, NULL);
    close(r->fd);
}

/* ---- deliveries ---- */

typedef struct {
    char dir[64], url[64];
    me_config_t cfg;
    me_webhook_settings_t *hooks; /* cfg's section, set by hand */
    me_storage_t *st;
    storage_faults_t *faults; /* steers st's backend: reads that fail */
    me_jobq_t *q;
    me_webhooks_t *w;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    me_storage_settings_t *storage;
    char err[256];
    strcpy(f->dir, "/tmp/me-webhook-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(me_config_defaults(&f->cfg), 0);
    storage = me_config_section_mut(&f->cfg, &me_storage_config_section);
    storage->root = f->dir;
    f->hooks = me_config_section_mut(&f->cfg, &me_webhook_config_section);
    f->hooks->url = f->url;
    f->hooks->secret = "whsec-test";
    f->hooks->retry_after = 1000;
    f->hooks->max_attempts = 2;
    me_storage_backend_t *be = me_storage_file_ops.open(&f->cfg, err, sizeof(err));
    assert_non_null(be);
    assert_non_null(f->st = storage_faults_wrap(&me_storage_file_ops, be, &f->faults));
    assert_non_null(f->q = me_jobq_local_new());
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    me_webhooks_free(f->w);
    me_jobq_free(f->q);
    me_storage_close(f->st);
    me_config_free(&f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void make(fixture_t *f, int port)
{
    char err[256];
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/hooks", port);
    assert_non_null(f->w = me_webhooks_new(&f->cfg, f->st, f->q, err, sizeof(err)));
}

static int stored(fixture_t *f)
{
    me_storage_stat_t st;
    return me_storage_head(f->st, "webhooks/" MEDIA_ID "-ready.json", &st) == 0;
}

static void raise_ready(fixture_t *f)
{
    json_t *media = json_pack("{s:s,s:s,s:s}", "id", MEDIA_ID, "status", "ready", "ref", "order-7");
    assert_int_equal(me_webhooks_raise(f->w, "media.ready", media), 0);
    json_decref(media);
    assert_true(stored(f));
}

static void test_delivered_signed_and_forgotten(void **state)
{
    fixture_t *f = *state;
    receiver_t r;
    int64_t retry = 0;
    receiver_start(&r, 204);
    make(f, r.port);
    raise_ready(f);
    assert_int_equal(me_webhooks_deliver(f->w, MEDIA_ID "-ready", T0, &retry), 0);
    receiver_join(&r);
    assert_false(stored(f));
    assert_non_null(strstr(r.request, "POST /hooks HTTP/1.1\r\n"));
    assert_non_null(strcasestr(r.request, "\r\nMediaedge-Delivery: " MEDIA_ID "-ready\r\n"));
    /* the signature is over "<t>.<body>" with t the delivery's time */
    const char *body = strstr(r.request, "\r\n\r\n") + 4, *sig = strcasestr(r.request, "\r\nMediaedge-Signature: ");
    assert_non_null(sig);
    char want[ME_WEBHOOK_SIGNATURE_MAX], got[ME_WEBHOOK_SIGNATURE_MAX + 1] = "";
    sscanf(sig + strlen("\r\nMediaedge-Signature: "), "%96[^\r]", got);
    assert_int_equal(me_webhook_signature("whsec-test", T0 / 1000, body, strlen(body), want), 0);
    assert_string_equal(got, want);
    json_t *b = json_loads(body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(b, "event")), "media.ready");
    assert_string_equal(json_string_value(json_object_get(b, "id")), MEDIA_ID "-ready");
    assert_string_equal(json_string_value(json_object_get(json_object_get(b, "media"), "ref")), "order-7");
    json_decref(b);
}

static void test_retried_then_dropped(void **state)
{
    fixture_t *f = *state;
    receiver_t r;
    int64_t retry = 0;
    receiver_start(&r, 503);
    make(f, r.port);
    raise_ready(f);
    assert_int_equal(me_webhooks_deliver(f->w, MEDIA_ID "-ready", T0, &retry), ME_EBUSY);
    receiver_join(&r);
    assert_int_equal(retry, T0 + 1000);
    assert_true(stored(f)); /* kept for the next try, also across a restart */
    /* nothing listens there now: the second and last attempt gives up */
    assert_int_equal(me_webhooks_deliver(f->w, MEDIA_ID "-ready", retry, &retry), 0);
    assert_false(stored(f));
}

static void test_a_read_error_keeps_the_delivery(void **state)
{
    fixture_t *f = *state;
    receiver_t r;
    int64_t retry = 0;
    receiver_start(&r, 204);
    make(f, r.port);
    raise_ready(f);
    /* a storage hiccup is not a delivery: it stays, and is tried again */
    storage_faults_fail(f->faults, FAULT_GET, 1, ME_EIO);
    assert_int_equal(me_webhooks_deliver(f->w, MEDIA_ID "-ready", T0, &retry), ME_EBUSY);
    assert_int_equal(retry, T0 + 1000);
    assert_true(stored(f));
    assert_int_equal(me_webhooks_deliver(f->w, MEDIA_ID "-ready", retry, &retry), 0);
    receiver_join(&r);
    assert_false(stored(f));
    assert_non_null(strcasestr(r.request, "\r\nMediaedge-Delivery: " MEDIA_ID "-ready\r\n"));
}

static void test_a_delivery_gone_from_storage_is_over(void **state)
{
    fixture_t *f = *state;
    int64_t retry = 0;
    make(f, 9);
    assert_int_equal(me_webhooks_deliver(f->w, MEDIA_ID "-ready", T0, &retry), 0);
}

static void test_a_url_needs_a_secret_and_no_url_sends_nothing(void **state)
{
    fixture_t *f = *state;
    char err[256] = "";
    f->hooks->secret = "";
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:9/");
    assert_null(me_webhooks_new(&f->cfg, f->st, f->q, err, sizeof(err)));
    assert_non_null(strstr(err, "webhooks.secret"));
    f->url[0] = '\0';
    assert_non_null(f->w = me_webhooks_new(&f->cfg, f->st, f->q, err, sizeof(err)));
    json_t *media = json_pack("{s:s}", "id", MEDIA_ID);
    assert_int_equal(me_webhooks_raise(f->w, "media.ready", media), 0);
    json_decref(media);
    assert_false(stored(f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature_vector),
        cmocka_unit_test_setup_teardown(test_delivered_signed_and_forgotten, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retried_then_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_read_error_keeps_the_delivery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_delivery_gone_from_storage_is_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_url_needs_a_secret_and_no_url_sends_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
