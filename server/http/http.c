/* http.c: request tracking, access logs and request metrics, JSON and error responses,
 * bearer-token checks and pool hand-off shared by every route. */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <time.h>
#include "server/http/h2o_private.h"
#include "server/http/http.h"
#include "server/http/server_config.h"
#include <h2o/http2.h>
#include "server/core/log.h"
#include "server/core/metrics.h"

static const double latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10, 30, 60};
ME_COUNTER(requests_total, "mediaedge_http_requests_total", "HTTP requests answered, by route template and status.",
           "route,status")
ME_HISTOGRAM(request_seconds, "mediaedge_http_request_duration_seconds",
             "Time from the first byte of a request to the last byte of its response.", "route", latency_buckets)
ME_COUNTER(bytes_in_total, "mediaedge_http_request_body_bytes_total", "Request body bytes received.", "route")
ME_COUNTER(bytes_out_total, "mediaedge_http_response_body_bytes_total", "Response body bytes sent.", "route")
ME_COUNTER(auth_total, "mediaedge_auth_total",
           "Bearer token checks by result: ok, missing, invalid, expired, forbidden (wrong scope).", "result")
ME_GAUGE(inflight_gauge, "mediaedge_http_requests_in_flight", "Requests being processed.", NULL)

static _Atomic int64_t inflight;

typedef struct {
    h2o_handler_t super;
    const char *route;
    const me_cors_t *cors; /* NULL: not open to other origins */
    const char *methods;   /* the route's methods, for CORS preflights */
} tracker_t;

typedef struct {
    h2o_logger_t super;
    const char *route;
} access_logger_t;

static const h2o_iovec_t reqid_name = {H2O_STRLIT("x-request-id")};

/* ---- request ids ---- */

static int reqid_is_valid(const char *s, size_t len)
{
    if (len == 0 || len > ME_REQID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

static uint64_t next_random(void)
{
    /* xorshift64* per thread, seeded from the kernel: ids need uniqueness, not secrecy */
    static __thread uint64_t state;
    while (state == 0 && getrandom(&state, sizeof(state), 0) != sizeof(state))
        ;
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1DULL;
}

const char *me_http_reqid(h2o_req_t *req)
{
    ssize_t i = h2o_find_header_by_str(&req->res.headers, reqid_name.base, reqid_name.len, -1);
    if (i >= 0)
        return req->res.headers.entries[i].value.base;

    h2o_iovec_t id;
    i = h2o_find_header_by_str(&req->headers, reqid_name.base, reqid_name.len, -1);
    if (i >= 0 && reqid_is_valid(req->headers.entries[i].value.base, req->headers.entries[i].value.len)) {
        id = h2o_strdup(&req->pool, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    } else {
        id.base = h2o_mem_alloc_pool(&req->pool, 17);
        id.len = (size_t)snprintf(id.base, 17, "%016" PRIx64, next_random());
    }
    h2o_add_header_by_str(&req->pool, &req->res.headers, reqid_name.base, reqid_name.len, 0, NULL, id.base, id.len);
    return id.base;
}

/* ---- tracking and access logs ---- */

int64_t me_http_inflight(void)
{
    return atomic_load(&inflight);
}

static void on_tracked_dispose(void *p)
{
    atomic_fetch_sub(&inflight, 1);
    me_metric_add(inflight_gauge, NULL, -1);
}

static int on_track(h2o_handler_t *_self, h2o_req_t *req)
{
    tracker_t *self = (tracker_t *)_self;
    h2o_mem_alloc_shared(&req->pool, 1, on_tracked_dispose);
    atomic_fetch_add(&inflight, 1);
    me_metric_add(inflight_gauge, NULL, 1);
    me_http_reqid(req);
    /* CORS headers go in before the route's handler, so that every answer has them */
    switch (self->cors != NULL ? me_cors_apply(self->cors, req, self->methods) : ME_CORS_PASS) {
    case ME_CORS_PASS:
        break;
    case ME_CORS_PREFLIGHT:
        me_http_send_empty(req, 204);
        return 0;
    case ME_CORS_PREFLIGHT_REFUSED:
        me_http_send_error(req, ME_EORIGIN, NULL);
        return 0;
    }
    return -1; /* on to the route's own handler */
}

static double seconds_between(const struct timeval *a, const struct timeval *b)
{
    if (a->tv_sec == 0 || b->tv_sec == 0)
        return 0;
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_usec - a->tv_usec) / 1e6;
}

static void on_log_access(h2o_logger_t *_self, h2o_req_t *req)
{
    access_logger_t *self = (access_logger_t *)_self;
    char status[8];
    snprintf(status, sizeof(status), "%d", req->res.status);
    /* libh2o's timestamps come from a clock cached once per loop iteration, so a fast
     * response would measure 0: end at the real time of logging instead */
    struct timeval end;
    gettimeofday(&end, NULL);
    double duration = seconds_between(&req->timestamps.request_begin_at, &end);
    uint64_t in = req->entity.base != NULL ? req->entity.len : 0;

    const char *labels[] = {self->route, status};
    me_metric_add(requests_total, labels, 1);
    me_metric_add(request_seconds, labels, duration);
    me_metric_add(bytes_in_total, labels, (double)in);
    me_metric_add(bytes_out_total, labels, (double)req->bytes_sent);

    size_t pathlen = req->path.len;
    if (req->query_at != SIZE_MAX && req->query_at < pathlen)
        pathlen = req->query_at;
    me_access_t a = {
        .reqid = me_http_reqid(req),
        .method = req->method.base,
        .method_len = req->method.len,
        .path = req->path.base,
        .path_len = pathlen,
        .route = self->route,
        .protocol = req->version >= 0x200 ? "HTTP/2" : req->version == 0x101 ? "HTTP/1.1" : "HTTP/1.0",
        .status = req->res.status,
        .bytes_in = in,
        .bytes_out = req->bytes_sent,
        .duration = duration,
    };
    me_log_access(&a);
}

static void track(h2o_pathconf_t *pathconf, const char *route, const me_cors_t *cors, const char *methods)
{
    tracker_t *t = (tracker_t *)h2o_create_handler(pathconf, sizeof(*t));
    t->super.on_req = on_track;
    t->route = route;
    t->cors = cors;
    t->methods = methods;
    access_logger_t *l = (access_logger_t *)h2o_create_logger(pathconf, sizeof(*l));
    l->super.log_access = on_log_access;
    l->route = route;
}

h2o_pathconf_t *me_http_route(h2o_hostconf_t *host, const char *path, const char *route)
{
    return me_http_api_route(host, path, route, NULL, NULL);
}

h2o_pathconf_t *me_http_api_route(h2o_hostconf_t *host, const char *path, const char *route, const me_cors_t *cors,
                                  const char *methods)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, path, 0);
    track(pathconf, route, cors, methods);
    return pathconf;
}

static int on_not_found(h2o_handler_t *self, h2o_req_t *req)
{
    me_http_send_error(req, ME_ENOTFOUND, NULL);
    return 0;
}

/* libh2o answers a body over max_request_entity_size itself, before any handler and with a
 * text body; this filter, on the pathconf such errors are bound to, turns it into our JSON
 * with the limit, so clients learn how much to send. */
typedef struct {
    h2o_filter_t super;
    h2o_iovec_t body;
} too_large_filter_t;

typedef struct {
    h2o_ostream_t super;
    h2o_iovec_t body;
    int sent;
} replace_ostream_t;

static void replace_do_send(h2o_ostream_t *_self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                            h2o_send_state_t state)
{
    replace_ostream_t *self = (replace_ostream_t *)_self;
    size_t n = self->sent ? 0 : 1;
    self->sent = 1;
    h2o_ostream_send_next(&self->super, req, &self->body, n, state);
}

static void on_setup_too_large(h2o_filter_t *_self, h2o_req_t *req, h2o_ostream_t **slot)
{
    too_large_filter_t *self = (too_large_filter_t *)_self;
    if (req->res.status == 413) { /* only libh2o answers 413 on this pathconf */
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, H2O_STRLIT("application/json"), 1);
        req->res.content_length = self->body.len;
        replace_ostream_t *o = (replace_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
        o->super.do_send = replace_do_send;
        o->body = self->body;
        o->sent = 0;
        slot = &o->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

h2o_pathconf_t *me_http_fallback(h2o_hostconf_t *host, uint64_t max_body)
{
    track(&host->fallback_path, "other", NULL, NULL);
    too_large_filter_t *f = (too_large_filter_t *)h2o_create_filter(&host->fallback_path, sizeof(*f));
    f->super.on_setup_ostream = on_setup_too_large;
    char body[300];
    int n = snprintf(body, sizeof(body),
                     "{\"error\":\"too_large\",\"message\":\"The request body is larger than %" PRIu64
                     " bytes; send it in smaller pieces (a smaller chunk size).\",\"limit\":%" PRIu64 "}",
                     max_body, max_body);
    f->body = h2o_strdup(NULL, body, (size_t)n);
    return &host->fallback_path;
}

void me_http_not_found(h2o_pathconf_t *pathconf)
{
    h2o_create_handler(pathconf, sizeof(h2o_handler_t))->on_req = on_not_found;
}

/* ---- responses ---- */

/* The one table of reason phrases: libh2o says "OK" for any status it is not told about, so
 * every response of ours is sent by me_http_send*(), which set it from here, or by a
 * streaming handler through me_http_reason(). */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 460: return "Checksum Mismatch";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "";
    }
}

const char *me_http_reason(int status)
{
    return reason_phrase(status);
}

void me_http_add_header(h2o_req_t *req, const char *name, const char *value, size_t len)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 0, NULL, value, len);
}

void me_http_add_header_u64(h2o_req_t *req, const char *name, uint64_t v)
{
    char *buf = h2o_mem_alloc_pool(&req->pool, 24);
    me_http_add_header(req, name, buf, (size_t)snprintf(buf, 24, "%" PRIu64, v));
}

const h2o_iovec_t *me_http_header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i < 0 ? NULL : &req->headers.entries[i].value;
}

void me_http_send(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, len);
}

void me_http_send_empty(h2o_req_t *req, int status)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = 0;
    h2o_send_inline(req, "", 0);
}

void me_http_send_json(h2o_req_t *req, int status, const char *body, size_t len)
{
    me_http_send(req, status, "application/json", body, len);
}

void me_http_send_error(h2o_req_t *req, int err, const char *message)
{
    char escaped[1024], body[1200];
    int status = me_err_status(err);
    if (message == NULL)
        message = me_err_message(err);
    me_log_json_escape(escaped, sizeof(escaped), message, strlen(message));
    int len = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}", me_err_code(err), escaped);
    if (status == 401) {
        if (err == ME_EUNAUTHORIZED && h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) < 0)
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                           H2O_STRLIT("Bearer realm=\"mediaedge\""));
        else
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                           H2O_STRLIT("Bearer realm=\"mediaedge\", error=\"invalid_token\""));
    } else if (status == 503 || status == 507) { /* 507: storage full, which operators fix */
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("5"));
    }
    me_http_send_json(req, status, body, (size_t)len);
}

int me_http_check_method(h2o_req_t *req, const char *allow)
{
    for (const char *p = allow; *p != '\0';) {
        size_t n = strcspn(p, ", ");
        if (h2o_memis(req->method.base, req->method.len, p, n))
            return 1;
        p += n;
        p += strspn(p, ", ");
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    me_http_send_error(req, ME_EMETHOD, NULL);
    return 0;
}

/* ---- tokens ---- */

int me_http_authorize(h2o_req_t *req, me_token_verifier_t *v, me_scope_t scope, me_token_claims_t *claims)
{
    int err = ME_EUNAUTHORIZED;
    const char *message = "A valid bearer token is required (Authorization: Bearer <token>).";
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i >= 0) {
        h2o_iovec_t value = req->headers.entries[i].value;
        if (value.len > 7 && h2o_lcstris(value.base, 7, H2O_STRLIT("bearer "))) {
            const char *token = value.base + 7;
            size_t len = value.len - 7;
            while (len > 0 && *token == ' ')
                token++, len--;
            err = me_token_verify(v, token, len, (int64_t)time(NULL), claims);
            if (err == ME_ETOKEN_EXPIRED)
                message = "The token has expired (or is not valid yet); ask the app for a new one.";
            else if (err != 0)
                message = "The bearer token is not valid.";
        }
    }
    if (err == 0 && scope != 0 && claims->scope != scope) {
        err = ME_EFORBIDDEN;
        message = scope == ME_SCOPE_UPLOAD ? "This token does not allow uploads." : "This token does not allow viewing.";
    }
    const char *result = err == 0                   ? "ok"
                         : err == ME_EFORBIDDEN     ? "forbidden"
                         : err == ME_ETOKEN_EXPIRED ? "expired"
                         : i < 0                    ? "missing"
                                                    : "invalid";
    me_metric_add(auth_total, &result, 1);
    if (err != 0) {
        me_http_send_error(req, err, message);
        return err;
    }
    return 0;
}

/* ---- admission of bodies ---- */

ME_GAUGE(body_bytes_gauge, "mediaedge_http_body_bytes_held", "Upload body bytes held in memory for storage threads.",
         NULL)
ME_COUNTER(bodies_refused, "mediaedge_http_bodies_refused_total", "Upload bodies refused with 503, by reason.",
           "reason")

ME_COUNTER(bodies_total, "mediaedge_http_bodies_total",
           "Upload bodies handed to storage threads, by how: in_place (HTTP/1.x), taken (from an HTTP/2 stream), copied.",
           "how")

static _Atomic uint64_t body_bytes_held;

/* Free bytes of the data directory's filesystem, looked at most once a second per thread. */
static uint64_t free_disk(const char *dir)
{
    static __thread uint64_t cached;
    static __thread time_t at;
    time_t now = time(NULL);
    if (now != at) {
        struct statvfs vfs;
        cached = statvfs(dir, &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize : UINT64_MAX;
        at = now;
    }
    return cached;
}

int me_http_body_admit(const me_config_t *cfg, size_t len)
{
    const me_http_settings_t *hs = me_http_settings(cfg);
    const char *reason = NULL;
    if (free_disk(me_server_settings(cfg)->data_dir) < hs->min_free_disk) {
        reason = "disk";
    } else if (atomic_fetch_add(&body_bytes_held, len) + len > hs->max_body_memory) {
        atomic_fetch_sub(&body_bytes_held, len);
        reason = "memory";
    }
    if (reason != NULL) {
        me_metric_add(bodies_refused, &reason, 1);
        return ME_EBUSY;
    }
    me_metric_add(body_bytes_gauge, NULL, (double)len);
    return 0;
}

void me_http_body_release(size_t len)
{
    atomic_fetch_sub(&body_bytes_held, len);
    me_metric_add(body_bytes_gauge, NULL, -(double)len);
}

int me_http_job_take_body(me_http_job_t *hj, h2o_req_t *req, const me_config_t *cfg)
{
    size_t len = req->entity.base != NULL ? req->entity.len : 0;
    if (len == 0)
        return 0;
    if (me_http_body_admit(cfg, len) != 0)
        return ME_EBUSY;
    hj->_body_admitted = len;
    const char *how = "in_place";
    if (req->version < 0x200) {
        /* HTTP/1.x: libh2o stopped reading the connection with the body complete, and frees
         * its input only after the response or on a write error, both after done() */
        hj->body = req->entity;
    } else if ((hj->_body_buf = me_h2o_take_http2_body(req)) != NULL) {
        hj->body = h2o_iovec_init(hj->_body_buf->bytes, len);
        how = "taken";
    } else if ((hj->_body_copy = malloc(len)) != NULL) {
        memcpy(hj->_body_copy, req->entity.base, len);
        hj->body = h2o_iovec_init(hj->_body_copy, len);
        how = "copied";
    } else {
        me_http_job_drop_body(hj);
        return ME_EBUSY;
    }
    me_metric_add(bodies_total, &how, 1);
    return 0;
}

void me_http_job_drop_body(me_http_job_t *hj)
{
    if (hj->_body_buf != NULL)
        h2o_buffer_dispose(&hj->_body_buf);
    free(hj->_body_copy);
    hj->_body_copy = NULL;
    if (hj->_body_admitted != 0)
        me_http_body_release(hj->_body_admitted);
    hj->_body_admitted = 0;
    hj->body = h2o_iovec_init(NULL, 0);
}

/* ---- handing work to a pool ---- */

struct me_http_anchor {
    me_http_job_t *hj;
};

static size_t receiver_storage_key = SIZE_MAX, loop_jobs_storage_key = SIZE_MAX;

/* Pool jobs in flight per connection of one loop (touched on its thread only): a small
 * open-addressing table keyed by libh2o's connection id + 1 (0: a free slot). Loops past
 * LOOPS_MAX, and connections past CONN_SLOTS with jobs at once, are not counted. */
#define LOOPS_MAX 256
#define CONN_SLOTS 1024 /* a power of two */
struct me_http_loop_jobs {
    struct {
        uint64_t key;
        int n;
    } slot[CONN_SLOTS];
};
static struct me_http_loop_jobs loop_jobs[LOOPS_MAX]; /* static: nothing to free at exit */
static atomic_int loop_jobs_used;

ME_COUNTER(conn_refused_total, "mediaedge_http_connection_jobs_refused_total",
           "Requests answered 503 because their connection already had http2_max_streams jobs in flight "
           "(HTTP/2 rapid reset: streams reset while their work runs).",
           NULL)

/* The slot of key, or of the free slot where it would go; -1 when the table is full. */
static int conn_slot(struct me_http_loop_jobs *lj, uint64_t key)
{
    for (unsigned i = 0, h = (unsigned)(key * 0x9E3779B97F4A7C15u >> 54) & (CONN_SLOTS - 1); i < CONN_SLOTS;
         i++, h = (h + 1) & (CONN_SLOTS - 1))
        if (lj->slot[h].key == key || lj->slot[h].key == 0)
            return (int)h;
    return -1;
}

/* Removes slot h, moving later entries of its probe run back (no tombstones). */
static void conn_slot_remove(struct me_http_loop_jobs *lj, unsigned h)
{
    lj->slot[h].key = 0;
    for (unsigned j = (h + 1) & (CONN_SLOTS - 1); lj->slot[j].key != 0; j = (j + 1) & (CONN_SLOTS - 1)) {
        unsigned home = (unsigned)(lj->slot[j].key * 0x9E3779B97F4A7C15u >> 54) & (CONN_SLOTS - 1);
        /* j's entry may move to h when h lies cyclically in [home, j) */
        if (((j - home) & (CONN_SLOTS - 1)) >= ((j - h) & (CONN_SLOTS - 1))) {
            lj->slot[h] = lj->slot[j];
            lj->slot[j].key = 0;
            h = j;
        }
    }
}

void me_http_context_init(h2o_context_t *ctx, h2o_multithread_receiver_t *receiver)
{
    /* the storage keys are assigned by the first context: loops start concurrently */
    static pthread_mutex_t key_lock = PTHREAD_MUTEX_INITIALIZER;
    me_pool_receiver_init(ctx->queue, receiver);
    pthread_mutex_lock(&key_lock);
    void **slot = h2o_context_get_storage(ctx, &receiver_storage_key, NULL);
    void **jobs = h2o_context_get_storage(ctx, &loop_jobs_storage_key, NULL);
    pthread_mutex_unlock(&key_lock);
    *slot = receiver;
    int i = atomic_fetch_add(&loop_jobs_used, 1);
    *jobs = i < LOOPS_MAX ? &loop_jobs[i] : NULL;
}

static void on_anchor_dispose(void *p)
{
    struct me_http_anchor *anchor = p;
    if (anchor->hj != NULL)
        anchor->hj->req = NULL; /* the request died first: done() must not touch it */
}

static void http_job_work(me_job_t *job)
{
    me_http_job_t *hj = H2O_STRUCT_FROM_MEMBER(me_http_job_t, job, job);
    hj->work(hj);
}

static void http_job_done(me_job_t *job)
{
    me_http_job_t *hj = H2O_STRUCT_FROM_MEMBER(me_http_job_t, job, job);
    if (hj->req != NULL)
        hj->_anchor->hj = NULL;
    if (hj->_loop != NULL) {
        int h = conn_slot(hj->_loop, hj->_conn);
        if (h >= 0 && hj->_loop->slot[h].key == hj->_conn && --hj->_loop->slot[h].n == 0)
            conn_slot_remove(hj->_loop, (unsigned)h);
    }
    hj->done(hj);
}

static int defer(h2o_req_t *req, me_pool_t *pool, me_http_job_t *hj, int first)
{
    h2o_multithread_receiver_t *receiver = *h2o_context_get_storage(req->conn->ctx, &receiver_storage_key, NULL);
    struct me_http_loop_jobs *lj = *h2o_context_get_storage(req->conn->ctx, &loop_jobs_storage_key, NULL);
    uint64_t key = req->conn->id + 1;
    int h = lj != NULL ? conn_slot(lj, key) : -1;
    if (h >= 0 && lj->slot[h].key == key &&
        (size_t)lj->slot[h].n >= req->conn->ctx->globalconf->http2.max_concurrent_requests_per_connection) {
        me_metric_add(conn_refused_total, NULL, 1);
        return ME_EBUSY;
    }
    struct me_http_anchor *anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*anchor), on_anchor_dispose);
    anchor->hj = hj;
    hj->req = req;
    hj->_anchor = anchor;
    hj->job.work = http_job_work;
    hj->job.done = http_job_done;
    hj->_loop = NULL;
    int err = first ? me_pool_submit_first(pool, &hj->job, receiver) : me_pool_submit(pool, &hj->job, receiver);
    if (err != 0) {
        anchor->hj = NULL;
        return err;
    }
    if (h >= 0) { /* counted from here: done() runs on this loop, after this returns */
        lj->slot[h].key = key;
        lj->slot[h].n++;
        hj->_loop = lj;
        hj->_conn = key;
    }
    return 0;
}

int me_http_defer(h2o_req_t *req, me_pool_t *pool, me_http_job_t *hj)
{
    return defer(req, pool, hj, 0);
}

int me_http_defer_first(h2o_req_t *req, me_pool_t *pool, me_http_job_t *hj)
{
    return defer(req, pool, hj, 1);
}
