/* test_cors.c: unit tests of server/http/cors.c: origin matching, preflights told apart from other
 * OPTIONS, and the headers each kind of request gets. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "server/http/cors.h"
#include "server/http/server_config.h"

#define APP "https://app.example.com"
#define METHODS "POST, HEAD, PATCH, DELETE, OPTIONS"

static me_cors_t *make(const char *origins, uint64_t max_age_ms)
{
    me_config_t cfg;
    assert_int_equal(me_config_defaults(&cfg), 0);
    me_http_settings_t *hs = me_config_section_mut(&cfg, &me_http_config_section);
    hs->cors_origins = (char *)origins;
    hs->cors_max_age = max_age_ms;
    me_cors_t *c = me_cors_new(&cfg);
    me_config_free(&cfg); /* the policy keeps what it needs */
    assert_non_null(c);
    return c;
}

/* A request with method and the request headers given as name, value, ..., NULL. */
static void request(h2o_req_t *req, const char *method, ...)
{
    va_list ap;
    const char *name;

    memset(req, 0, sizeof(*req));
    h2o_mem_init_pool(&req->pool);
    req->method = h2o_iovec_init(method, strlen(method));
    va_start(ap, method);
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        h2o_add_header_by_str(&req->pool, &req->headers, name, strlen(name), 0, NULL, value, strlen(value));
    }
    va_end(ap);
}

/* The response header name's value as a NUL-terminated string from req's pool, or NULL. */
static const char *response_header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->res.headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    assert_int_equal(h2o_find_header_by_str(&req->res.headers, name, strlen(name), i), -1); /* once */
    return h2o_strdup(&req->pool, req->res.headers.entries[i].value.base, req->res.headers.entries[i].value.len).base;
}

static int cors_header_count(h2o_req_t *req)
{
    int n = 0;
    for (size_t i = 0; i < req->res.headers.size; i++) {
        const h2o_iovec_t *name = req->res.headers.entries[i].name;
        n += name->len >= 15 && h2o_lcstris(name->base, 15, H2O_STRLIT("access-control-"));
    }
    return n;
}

static void test_allowed_is_an_exact_match(void **state)
{
    static const struct { const char *origin; int ok; } cases[] = {
        {APP, 1}, {"HTTPS://APP.example.COM", 1}, {"http://localhost:3000", 1},
        {"http://app.example.com", 0}, {"https://app.example.com:443", 0}, {"https://app.example.com/", 0},
        {"https://app.example.co", 0}, {"https://app.example.com.evil.example", 0},
        {"https://evil-app.example.com", 0}, {"http://localhost", 0}, {"null", 0}, {"", 0}, {"*", 0},
    };
    (void)state;
    me_cors_t *c = make(APP ",http://localhost:3000", 3600000);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("'%s'\n", cases[i].origin);
        assert_int_equal(me_cors_allowed(c, cases[i].origin, strlen(cases[i].origin)), cases[i].ok);
    }
    me_cors_free(c);

    c = make("", 3600000); /* the default: no origin at all */
    assert_int_equal(me_cors_allowed(c, H2O_STRLIT(APP)), 0);
    me_cors_free(c);
    me_cors_free(NULL);
}

static void test_preflight_from_allowed_origin(void **state)
{
    h2o_req_t req;
    (void)state;
    me_cors_t *c = make(APP, 600000);
    request(&req, "OPTIONS", "origin", APP, "access-control-request-method", "PATCH",
            "access-control-request-headers", "authorization,tus-resumable,upload-offset", NULL);
    assert_int_equal(me_cors_apply(c, &req, METHODS), ME_CORS_PREFLIGHT);
    assert_string_equal(response_header(&req, "access-control-allow-origin"), APP);
    assert_string_equal(response_header(&req, "access-control-allow-methods"), METHODS);
    const char *allow = response_header(&req, "access-control-allow-headers");
    assert_non_null(allow);
    assert_non_null(strstr(allow, "Authorization"));
    assert_non_null(strstr(allow, "Tus-Resumable"));
    assert_non_null(strstr(allow, "Upload-Offset"));
    assert_string_equal(response_header(&req, "access-control-max-age"), "600");
    assert_string_equal(response_header(&req, "vary"), "Origin");
    assert_null(response_header(&req, "access-control-expose-headers"));
    assert_null(response_header(&req, "access-control-allow-credentials"));
    h2o_mem_clear_pool(&req.pool);
    me_cors_free(c);
}

static void test_preflight_from_other_origin_is_refused(void **state)
{
    h2o_req_t req;
    (void)state;
    me_cors_t *c = make(APP, 3600000);
    request(&req, "OPTIONS", "origin", "https://evil.example", "access-control-request-method", "POST", NULL);
    assert_int_equal(me_cors_apply(c, &req, METHODS), ME_CORS_PREFLIGHT_REFUSED);
    assert_int_equal(cors_header_count(&req), 0);
    h2o_mem_clear_pool(&req.pool);
    me_cors_free(c);

    c = make("", 3600000); /* nothing allowed: every preflight is refused */
    request(&req, "OPTIONS", "origin", APP, "access-control-request-method", "POST", NULL);
    assert_int_equal(me_cors_apply(c, &req, METHODS), ME_CORS_PREFLIGHT_REFUSED);
    assert_int_equal(cors_header_count(&req), 0);
    assert_null(response_header(&req, "vary"));
    h2o_mem_clear_pool(&req.pool);
    me_cors_free(c);
}

/* tus asks for capabilities with OPTIONS and no Access-Control-Request-Method: that goes on
 * to the route (with the headers of an actual response); so does one without Origin. */
static void test_other_options_are_not_preflights(void **state)
{
    h2o_req_t req;
    (void)state;
    me_cors_t *c = make(APP, 3600000);
    request(&req, "OPTIONS", "origin", APP, "tus-resumable", "1.0.0", NULL);
    assert_int_equal(me_cors_apply(c, &req, METHODS), ME_CORS_PASS);
    assert_string_equal(response_header(&req, "access-control-allow-origin"), APP);
    assert_non_null(strstr(response_header(&req, "access-control-expose-headers"), "Tus-Version"));
    assert_null(response_header(&req, "access-control-allow-methods"));
    h2o_mem_clear_pool(&req.pool);

    request(&req, "OPTIONS", "access-control-request-method", "POST", NULL);
    assert_int_equal(me_cors_apply(c, &req, METHODS), ME_CORS_PASS);
    assert_int_equal(cors_header_count(&req), 0);
    h2o_mem_clear_pool(&req.pool);
    me_cors_free(c);
}

static void test_actual_requests(void **state)
{
    static const char *const exposed[] = {"Location", "Upload-Offset", "Upload-Length", "Upload-Expires",
                                          "Media-Id", "X-Request-Id", "Retry-After", "Tus-Max-Size"};
    h2o_req_t req;
    (void)state;
    me_cors_t *c = make("http://localhost:3000," APP, 3600000);

    request(&req, "PATCH", "origin", APP, NULL);
    assert_int_equal(me_cors_apply(c, &req, METHODS), ME_CORS_PASS);
    assert_string_equal(response_header(&req, "access-control-allow-origin"), APP);
    assert_string_equal(response_header(&req, "vary"), "Origin");
    const char *expose = response_header(&req, "access-control-expose-headers");
    for (size_t i = 0; i < sizeof(exposed) / sizeof(exposed[0]); i++)
        assert_non_null(strstr(expose, exposed[i]));
    assert_int_equal(cors_header_count(&req), 2);
    h2o_mem_clear_pool(&req.pool);

    /* an origin not allowed: processed, without CORS headers (the browser hides the answer) */
    request(&req, "POST", "origin", "https://evil.example", NULL);
    assert_int_equal(me_cors_apply(c, &req, METHODS), ME_CORS_PASS);
    assert_int_equal(cors_header_count(&req), 0);
    assert_string_equal(response_header(&req, "vary"), "Origin");
    h2o_mem_clear_pool(&req.pool);

    /* no Origin (apps, curl) */
    request(&req, "HEAD", NULL);
    assert_int_equal(me_cors_apply(c, &req, METHODS), ME_CORS_PASS);
    assert_int_equal(cors_header_count(&req), 0);
    h2o_mem_clear_pool(&req.pool);
    me_cors_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_is_an_exact_match),
        cmocka_unit_test(test_preflight_from_allowed_origin),
        cmocka_unit_test(test_preflight_from_other_origin_is_refused),
        cmocka_unit_test(test_other_options_are_not_preflights),
        cmocka_unit_test(test_actual_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
