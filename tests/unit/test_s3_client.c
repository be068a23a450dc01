/* test_s3_client.c: unit tests of server/storage/s3/s3_creds.c and s3_client.c: where
 * credentials come from, what the client sends with temporary ones, and its retries, against a local stand-in of STS,
 * the EKS Pod Identity agent and an S3 bucket that checks every request (tests/unit/s3_reference/standin.py: the form
 * STS gets, the agent's Authorization, SigV4 signatures recomputed by botocore). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <jansson.h>
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/storage/s3/s3_client.h"
#include "server/storage/s3/s3_creds.h"
#include "server/storage/s3/storage_s3.h"
#include "server/storage/storage_config.h"
#include "tests/unit/s3_fixture.h"

#define ROLE "arn:aws:iam::111122223333:role/mediaedge"

static pid_t pid;
static int to_child, port;
static char dir[64], token_file[128], ttl_file[128], base[64];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    FILE *f = arg;
    return fwrite(p, size, n, f);
}

/* What the stand-in has received so far. */
static json_t *received(void)
{
    char url[128], *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CURL *h = curl_easy_init();
    snprintf(url, sizeof(url), "%s/log", base);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
    fclose(f);
    json_t *log = json_loadb(buf, len, 0, NULL);
    free(buf);
    assert_non_null(log);
    return log;
}

/* How many requests the stand-in has received so far. */
static size_t count_received(void)
{
    json_t *log = received();
    size_t n = json_array_size(log);
    json_decref(log);
    return n;
}

static const char *header(json_t *entry, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(entry, "headers"), k,
                        v) if (strcasecmp(k, name) == 0) return json_string_value(v);
    return NULL;
}

static void clear_env(void)
{
    const char *names[] = {"AWS_ACCESS_KEY_ID",
                           "AWS_SECRET_ACCESS_KEY",
                           "AWS_SESSION_TOKEN",
                           "AWS_ROLE_ARN",
                           "AWS_WEB_IDENTITY_TOKEN_FILE",
                           "AWS_ROLE_SESSION_NAME",
                           "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                           "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                           "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                           "AWS_SHARED_CREDENTIALS_FILE",
                           "AWS_PROFILE"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unsetenv(names[i]);
    setenv("HOME", dir, 1); /* no ~/.aws of the machine's */
}

static me_s3_settings_t settings(void)
{
    static char sts[64];
    snprintf(sts, sizeof(sts), "%s", base);
    return (me_s3_settings_t){.endpoint = base,
                              .region = "us-east-1",
                              .bucket = "standin",
                              .addressing = ME_S3_ADDRESSING_PATH,
                              .sign_payload = 1,
                              .connect_timeout = 2000,
                              .timeout = 10000,
                              .max_attempts = 1,
                              .retry_base = 10,
                              .retry_max = 100,
                              .sts_endpoint = sts};
}

static int group_setup(void **state)
{
    char line[128];
    snprintf(dir, sizeof(dir), "/tmp/me-s3-creds-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(token_file, sizeof(token_file), "%s/token", dir);
    snprintf(ttl_file, sizeof(ttl_file), "%s/ttl", dir);
    write_file(token_file, "eyJhbGciOiJSUzI1NiJ9.first-token.sig\n");
    setenv("STANDIN_TOKEN_FILE", token_file, 1);
    setenv("STANDIN_TTL_FILE", ttl_file, 1);
    setenv("STANDIN_ROLE_ARN", ROLE, 1);
    if (s3_fixture_spawn("tests/unit/s3_reference/standin.py", &pid, &to_child, line, sizeof(line)) != 0 ||
        sscanf(line, "ready %d", &port) != 1)
        return -1;
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    me_log_init(ME_LOG_ERROR, 0, 2);
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[128];
    close(to_child);
    waitpid(pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd);
}

static int setup(void **state)
{
    clear_env();
    write_file(ttl_file, "3600");
    return 0;
}

static void irsa_env(void)
{
    setenv("AWS_ROLE_ARN", ROLE, 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", token_file, 1);
}

static void test_irsa(void **state)
{
    me_s3_settings_t s = settings();
    char err[256];
    me_s3_credentials_t c;
    size_t before = count_received();

    irsa_env();
    me_s3_creds_t *creds = me_s3_creds_new(&s, err, sizeof(err));
    assert_non_null(creds);
    assert_string_equal(me_s3_creds_source(creds), "irsa");
    assert_int_equal(me_s3_creds_get(creds, &c), 0);
    assert_true(strncmp(c.access_key, "ASIASTANDIN", 11) == 0);
    assert_true(strncmp(c.token, "session-token-", 14) == 0);
    assert_true(c.expires > (int64_t)time(NULL) + 3500 && c.expires <= (int64_t)time(NULL) + 3600);

    json_t *log = received(), *e = json_array_get(log, before);
    assert_int_equal(json_array_size(log), before + 1); /* one exchange: fresh credentials are kept */
    assert_true(json_is_true(json_object_get(e, "ok")));
    const char *body = json_string_value(json_object_get(e, "body"));
    assert_non_null(strstr(body, "RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Fmediaedge"));
    assert_non_null(strstr(body, "RoleSessionName=mediaedge"));
    assert_non_null(strstr(header(e, "Content-Type"), "application/x-www-form-urlencoded"));
    json_decref(log);
    me_s3_creds_free(creds);
}

/* Credentials near their end are exchanged again (with the token file as it is then), at most
 * every 10 s while the old ones hold. */
static void test_irsa_renewal(void **state)
{
    me_s3_settings_t s = settings();
    char err[256];
    me_s3_credentials_t c1, c2, c3;

    irsa_env();
    write_file(ttl_file, "200"); /* inside the 300 s before expiry at once */
    size_t before = count_received();
    me_s3_creds_t *creds = me_s3_creds_new(&s, err, sizeof(err));
    assert_non_null(creds);
    assert_int_equal(me_s3_creds_get(creds, &c1), 0); /* renewed: the first were near their end */
    write_file(token_file, "eyJhbGciOiJSUzI1NiJ9.rotated-token.sig\n");
    assert_int_equal(me_s3_creds_get(creds, &c2), 0); /* not again within 10 s */
    assert_string_equal(c1.access_key, c2.access_key);
    json_t *log = received();
    assert_int_equal(json_array_size(log), before + 2);
    for (size_t i = before; i < json_array_size(log); i++)
        assert_true(json_is_true(json_object_get(json_array_get(log, i), "ok")));
    json_decref(log);
    me_s3_creds_free(creds);

    /* a new process: the rotated token is the one sent, and STS takes it */
    write_file(ttl_file, "3600");
    creds = me_s3_creds_new(&s, err, sizeof(err));
    assert_non_null(creds);
    assert_int_equal(me_s3_creds_get(creds, &c3), 0);
    assert_string_not_equal(c3.access_key, c1.access_key);
    log = received();
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(log, json_array_size(log) - 1), "body")),
                           "rotated-token"));
    json_decref(log);
    me_s3_creds_free(creds);
    write_file(token_file, "eyJhbGciOiJSUzI1NiJ9.first-token.sig\n");
}

static void test_irsa_refused(void **state)
{
    me_s3_settings_t s = settings();
    char err[256];

    irsa_env();
    setenv("AWS_ROLE_ARN", "arn:aws:iam::111122223333:role/another", 1);
    assert_null(me_s3_creds_new(&s, err, sizeof(err)));
    assert_non_null(strstr(err, "STS"));
    setenv("AWS_ROLE_ARN", ROLE, 1);
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token", 1);
    assert_null(me_s3_creds_new(&s, err, sizeof(err)));
}

static void test_pod_identity(void **state)
{
    me_s3_settings_t s = settings();
    char err[256], uri[128], other[128];
    me_s3_credentials_t c;

    snprintf(uri, sizeof(uri), "%s/creds", base);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file, 1);
    size_t before = count_received();
    me_s3_creds_t *creds = me_s3_creds_new(&s, err, sizeof(err));
    assert_non_null(creds);
    assert_string_equal(me_s3_creds_source(creds), "pod-identity");
    assert_int_equal(me_s3_creds_get(creds, &c), 0);
    assert_true(strncmp(c.access_key, "ASIASTANDIN", 11) == 0);
    assert_true(c.expires > (int64_t)time(NULL) + 3500);
    json_t *log = received(), *e = json_array_get(log, before);
    assert_int_equal(json_array_size(log), before + 1);
    assert_true(json_is_true(json_object_get(e, "ok")));
    assert_string_equal(json_string_value(json_object_get(e, "method")), "GET");
    json_decref(log);
    me_s3_creds_free(creds);

    /* the agent refuses another token */
    snprintf(other, sizeof(other), "%s/other-token", dir);
    write_file(other, "not-the-token");
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", other, 1);
    assert_null(me_s3_creds_new(&s, err, sizeof(err)));
    assert_non_null(strstr(err, "AWS_CONTAINER_CREDENTIALS_FULL_URI"));

    /* plain http only to loopback or the agents' addresses */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.1.2.3/creds", 1);
    assert_null(me_s3_creds_new(&s, err, sizeof(err)));
    assert_non_null(strstr(err, "must be https://"));
}

static void test_environment_and_shared_file(void **state)
{
    me_s3_settings_t s = settings();
    char err[512], file[128];
    me_s3_credentials_t c;
    me_s3_creds_t *creds;

    assert_null(me_s3_creds_new(&s, err, sizeof(err))); /* nothing at all: says what to set */
    assert_non_null(strstr(err, "AWS_ACCESS_KEY_ID"));
    assert_non_null(strstr(err, "AWS_WEB_IDENTITY_TOKEN_FILE"));

    snprintf(file, sizeof(file), "%s/credentials", dir);
    write_file(file, "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n\n"
                     "# the media profile\n[media]\naws_access_key_id=AKIAMEDIA\naws_secret_access_key = s/+x\n"
                     "aws_session_token = tok\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", file, 1);
    assert_non_null(creds = me_s3_creds_new(&s, err, sizeof(err)));
    assert_string_equal(me_s3_creds_source(creds), "file");
    assert_int_equal(me_s3_creds_get(creds, &c), 0);
    assert_string_equal(c.access_key, "AKIADEFAULT");
    me_s3_creds_free(creds);
    setenv("AWS_PROFILE", "media", 1);
    assert_non_null(creds = me_s3_creds_new(&s, err, sizeof(err)));
    assert_int_equal(me_s3_creds_get(creds, &c), 0);
    assert_string_equal(c.access_key, "AKIAMEDIA");
    assert_string_equal(c.secret_key, "s/+x");
    assert_string_equal(c.token, "tok");
    assert_int_equal(c.expires, 0);
    me_s3_creds_free(creds);
    setenv("AWS_PROFILE", "missing", 1);
    assert_null(me_s3_creds_new(&s, err, sizeof(err)));

    /* the environment comes first */
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    assert_null(me_s3_creds_new(&s, err, sizeof(err))); /* without its secret */
    setenv("AWS_SECRET_ACCESS_KEY", "e", 1);
    setenv("AWS_SESSION_TOKEN", "t", 1);
    assert_non_null(creds = me_s3_creds_new(&s, err, sizeof(err)));
    assert_string_equal(me_s3_creds_source(creds), "env");
    assert_int_equal(me_s3_creds_get(creds, &c), 0);
    assert_string_equal(c.access_key, "AKIAENV");
    assert_string_equal(c.token, "t");
    me_s3_creds_free(creds);
}

/* The backend on IRSA credentials: every request signed with them and carrying the session
 * token (the stand-in recomputes each signature with botocore), server-side encryption asked
 * for on the writes that make objects and not on parts. */
static void test_backend_requests_with_temporary_credentials(void **state)
{
    me_config_t cfg;
    char err[256], id[ME_STORAGE_UPLOAD_ID_MAX + 1];
    me_storage_part_t part;

    irsa_env();
    assert_int_equal(me_config_defaults(&cfg), 0);
    ((me_storage_settings_t *)me_config_section_mut(&cfg, &me_storage_config_section))->backend = "s3";
    me_s3_settings_t *s = me_config_section_mut(&cfg, &me_s3_config_section);
    *s = settings();
    s->sse = ME_S3_SSE_KMS;
    s->sse_kms_key_id = "alias/media";
    size_t before = count_received();
    me_storage_backend_t *be = me_storage_s3_ops.open(&cfg, err, sizeof(err));
    if (be == NULL)
        print_error("%s\n", err);
    assert_non_null(be);
    assert_int_equal(me_storage_s3_ops.put(be, "media/m1.json", "{}", 2), 0);
    assert_int_equal(me_storage_s3_ops.multipart_begin(be, "originals/al/m1", id, sizeof(id)), 0);
    assert_string_equal(id, "standin-upload");
    assert_int_equal(me_storage_s3_ops.part_put(be, "originals/al/m1", id, 1, "abc", 3, &part), 0);
    assert_string_equal(part.etag, "0123456789abcdef");
    me_storage_s3_ops.close(be);

    json_t *log = received();
    /* STS, HEAD bucket, PUT, POST ?uploads, PUT ?partNumber */
    assert_int_equal(json_array_size(log), before + 5);
    for (size_t i = before + 1; i < before + 5; i++) {
        json_t *e = json_array_get(log, i);
        assert_true(json_is_true(json_object_get(e, "ok"))); /* the signature checked out */
        assert_non_null(header(e, "x-amz-security-token"));
        int creates = i == before + 2 || i == before + 3;
        const char *sse = header(e, "x-amz-server-side-encryption");
        if (creates) {
            assert_string_equal(sse, "aws:kms");
            assert_string_equal(header(e, "x-amz-server-side-encryption-aws-kms-key-id"), "alias/media");
        } else {
            assert_null(sse);
        }
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, before + 2), "path")),
                        "/standin/media/m1.json");
    assert_string_equal(json_string_value(json_object_get(json_array_get(log, before + 3), "path")),
                        "/standin/originals/al/m1?uploads=");
    json_decref(log);

    /* SSE-S3 */
    s->sse = ME_S3_SSE_S3;
    s->sse_kms_key_id = "";
    assert_non_null(be = me_storage_s3_ops.open(&cfg, err, sizeof(err)));
    assert_int_equal(me_storage_s3_ops.put(be, "media/m2.json", "{}", 2), 0);
    me_storage_s3_ops.close(be);
    log = received();
    json_t *last = json_array_get(log, json_array_size(log) - 1);
    assert_string_equal(header(last, "x-amz-server-side-encryption"), "AES256");
    assert_null(header(last, "x-amz-server-side-encryption-aws-kms-key-id"));
    json_decref(log);
    me_config_free(&cfg);
}

static double metric(const char *line_start)
{
    size_t len;
    char *text = me_metrics_render(&len), *at;
    double v = 0;
    assert_non_null(text);
    if ((at = strstr(text, line_start)) != NULL)
        v = strtod(at + strlen(line_start), NULL);
    free(text);
    return v;
}

/* 503 SlowDown and 500 are tried again with backoff, for idempotent steps; a
 * CompleteMultipartUpload is tried again on 503 only; each try and retry counted. */
static void test_retries(void **state)
{
    me_s3_settings_t s = settings();
    char err[256];
    me_s3_response_t r;

    irsa_env(); /* the stand-in checks signatures made with what it handed out */
    s.max_attempts = 4;
    me_s3_client_t *c = me_s3_client_new(&s, err, sizeof(err));
    assert_non_null(c);
    double retries = metric("mediaedge_s3_retries_total{op=\"put\"} ");
    double slow = metric("mediaedge_s3_requests_total{op=\"put\",status=\"503\"} ");

    me_s3_request_t put = {.op = "put",
                           .method = "PUT",
                           .key = "fail-503-2/a",
                           .body = "x",
                           .body_len = 1,
                           .idempotent = 1,
                           .max_body = 1024};
    assert_int_equal(me_s3_request(c, &put, &r), 0);
    assert_int_equal(r.status, 200);
    me_s3_response_free(&r);
    assert_true(metric("mediaedge_s3_retries_total{op=\"put\"} ") == retries + 2);
    assert_true(metric("mediaedge_s3_requests_total{op=\"put\",status=\"503\"} ") == slow + 2);

    put.key = "fail-500-9/b"; /* more failures than tries: the last answer is given back */
    assert_int_equal(me_s3_request(c, &put, &r), 0);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.code, "InternalError");
    me_s3_response_free(&r);
    assert_true(metric("mediaedge_s3_retries_total{op=\"put\"} ") == retries + 5);

    me_sigv4_pair_t q = {"uploadId", "u"};
    me_s3_request_t complete = {.op = "complete_multipart",
                                .method = "POST",
                                .key = "fail-500-1/c",
                                .query = &q,
                                .nquery = 1,
                                .body = "<x/>",
                                .body_len = 4,
                                .max_body = 1024};
    assert_int_equal(me_s3_request(c, &complete, &r), 0);
    assert_int_equal(r.status, 500); /* not idempotent: not tried again on 500 */
    me_s3_response_free(&r);
    complete.key = "fail-503-1/d";
    assert_int_equal(me_s3_request(c, &complete, &r), 0);
    assert_int_equal(r.status, 200); /* SlowDown: nothing was done, so tried again */
    me_s3_response_free(&r);
    me_s3_client_free(c);

    /* nobody listening: connection errors tried max_attempts times, then ME_EIO */
    s.endpoint = "http://127.0.0.1:1";
    assert_non_null(c = me_s3_client_new(&s, err, sizeof(err)));
    double conn = metric("mediaedge_s3_requests_total{op=\"get\",status=\"error\"} ");
    char buf[8];
    me_s3_request_t get = {.op = "get", .method = "GET", .key = "k", .idempotent = 1, .buf = buf, .buf_len = 8};
    assert_int_equal(me_s3_request(c, &get, &r), ME_EIO);
    me_s3_response_free(&r);
    assert_true(metric("mediaedge_s3_requests_total{op=\"get\",status=\"error\"} ") == conn + 4);
    me_s3_client_free(c);
}

int main(void)
{
    if (system("/usr/bin/python3 -c 'import botocore' 2>/dev/null") != 0) {
        fprintf(stderr, "python3-botocore missing (./bootstrap check installs it): skipped\n");
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_irsa, setup),
        cmocka_unit_test_setup(test_irsa_renewal, setup),
        cmocka_unit_test_setup(test_irsa_refused, setup),
        cmocka_unit_test_setup(test_pod_identity, setup),
        cmocka_unit_test_setup(test_environment_and_shared_file, setup),
        cmocka_unit_test_setup(test_backend_requests_with_temporary_credentials, setup),
        cmocka_unit_test_setup(test_retries, setup),
    };
    return cmocka_run_group_tests_name("s3_client", tests, group_setup, group_teardown);
}
