/* origin.c: the origin: a request for /m/<album>/<media-id>/<file> is checked (behind
 * CloudFront its secret header, standalone the signed URL or cookies as CloudFront would),
 * then answered on the loop from the hot cache when its object is small and lately confirmed
 * (hot.h); otherwise its object is looked up on the pool and a small one read whole into the
 * hot cache, a large one streamed from storage one bounded chunk at a time through a libh2o
 * generator (libh2o 2.2.5 has no sendfile for handler responses, and a whole video must never
 * sit in memory). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "handlers/origin.h"
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/delivery/serve.h"
#include "server/http/http.h"

#define ROUTE "/m/{album}/{media}/{file}"
#define COPY_MAX 256     /* Range, If-Range, If-None-Match longer than this are ignored */
#define JOINED_MAX 8192  /* all Cookie (or X-Forwarded-For) headers of a request together */

ME_COUNTER(origin_answers, "mediaedge_origin_answers_total",
           "Origin answers by where their bytes came from: hot (memory, on the loop), confirmed (memory, after "
           "storage confirmed the object), read (read whole into memory), streamed (read chunk by chunk).",
           "from")
ME_COUNTER(origin_checks, "mediaedge_origin_checks_total",
           "Origin requests by the outcome of their check: valid, secret_mismatch, or why a signature was refused "
           "(missing, malformed, unknown_key, bad_signature, expired, not_yet_valid, wrong_resource, wrong_ip).",
           "result")

typedef struct {
    h2o_handler_t super;
    me_origin_deps_t deps;
} origin_handler_t;

/* A header value copied for the pool thread; absent (or too long to honour) when v is NULL. */
typedef struct {
    char buf[COPY_MAX];
    const char *v;
    size_t len;
} copied_t;

/* One response, from the lookup to its last byte. malloc'd, not from req->pool: a read on the
 * pool may outlive the request. Freed once the request is gone (its pool disposed: the last
 * chunk sent stays valid until then) and no read is in flight. */
typedef struct {
    h2o_generator_t super;
    me_http_job_t hj;
    me_delivery_objects_t *objects;
    me_delivery_buffers_t *buffers;
    me_delivery_hot_t *hot;
    me_storage_t *st;
    me_pool_t *pool;
    int behind_cdn, allow_original, is_get;
    char album[65], media_id[65], file[ME_DELIVERY_FILE_MAX + 1];
    copied_t range, if_none_match, if_range;
    /* from the pool */
    int err;
    me_delivery_object_t obj;
    me_delivery_plan_t plan;
    uint64_t offset, left; /* the next byte to read, and how many remain */
    me_delivery_blob_t *blob; /* the whole object in memory, when small; else chunks in buf */
    const char *from;         /* origin_answers' label */
    char *buf;
    size_t chunk, got;
    /* life */
    int alive, in_flight, stopped;
    char last_modified[H2O_TIMESTR_RFC1123_LEN + 1];
    char content_range[80];
} stream_t;

static void stream_free(stream_t *s)
{
    me_delivery_blob_release(s->blob);
    me_delivery_buffer_put(s->buffers, s->buf);
    free(s);
}

static void on_req_dispose(void *p)
{
    stream_t *s = *(stream_t **)p;
    s->alive = 0;
    if (!s->in_flight)
        stream_free(s);
}

static void copy_header(h2o_req_t *req, const h2o_token_t *token, copied_t *c)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    c->v = NULL;
    if (i < 0 || req->headers.entries[i].value.len > sizeof(c->buf))
        return;
    c->len = req->headers.entries[i].value.len;
    memcpy(c->buf, req->headers.entries[i].value.base, c->len);
    c->v = c->buf;
}

/* Every value of header token joined by sep, from req->pool; NULL when absent or longer than
 * JOINED_MAX (then nothing of it is believed). */
static const char *joined(h2o_req_t *req, const h2o_token_t *token, const char *sep, size_t *len)
{
    size_t total = 0, seplen = strlen(sep);
    ssize_t i = -1;
    while ((i = h2o_find_header(&req->headers, token, i)) >= 0)
        total += req->headers.entries[i].value.len + seplen;
    if (total == 0 || total > JOINED_MAX)
        return NULL;
    char *out = h2o_mem_alloc_pool(&req->pool, total);
    size_t n = 0;
    while ((i = h2o_find_header(&req->headers, token, i)) >= 0) {
        if (n > 0)
            memcpy(out + n, sep, seplen), n += seplen;
        memcpy(out + n, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        n += req->headers.entries[i].value.len;
    }
    *len = n;
    return out;
}

/* The request's right to the object: 1, or 0 after answering 403. */
static int allowed(origin_handler_t *self, h2o_req_t *req)
{
    me_delivery_t *d = self->deps.delivery;
    const char *result, *message = NULL;
    if (me_delivery_behind_cdn(d)) {
        /* CloudFront checked the viewer; this says the request came through CloudFront */
        const h2o_iovec_t *v = me_http_header(req, me_delivery_origin_secret_header(d));
        int ok = v != NULL && me_delivery_origin_secret_ok(d, v->base, v->len);
        result = ok ? "valid" : "secret_mismatch";
        if (!ok)
            message = "This origin answers only its CDN.";
    } else {
        struct sockaddr_storage peer;
        size_t xfflen = 0, cookielen = 0;
        int family;
        unsigned char addr[16];
        socklen_t sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&peer);
        const char *xff = joined(req, H2O_TOKEN_X_FORWARDED_FOR, ",", &xfflen);
        const char *cookie = joined(req, H2O_TOKEN_COOKIE, "; ", &cookielen);
        me_delivery_client_ip(d, sl > 0 ? (struct sockaddr *)&peer : NULL, xff, xfflen, &family, addr);
        me_cf_verdict_t v = me_delivery_check_signed(d, req->path.base, req->path.len, cookie, cookielen, family, addr,
                                                     (int64_t)time(NULL));
        result = me_cf_verdict_name(v);
        if (v == ME_CF_EXPIRED)
            message = "The signed URL (or cookie) has expired; ask the app for a new one.";
        else if (v != ME_CF_VALID)
            message = "A valid signed URL or signed cookies are needed for this file.";
    }
    me_metric_add(origin_checks, &result, 1);
    if (message == NULL)
        return 1;
    me_log_debug(me_http_reqid(req), "origin: refused (%s)", result); /* never the values themselves */
    me_http_send_error(req, ME_EFORBIDDEN, message);
    return 0;
}

/* ---- reading, on the pool ---- */

static void read_chunk(stream_t *s)
{
    size_t want = s->left < s->chunk ? (size_t)s->left : s->chunk;
    int ret = me_storage_get(s->st, s->obj.key, s->offset, want, s->buf, &s->got);
    if (ret != 0 || s->got == 0) {
        s->err = ret != 0 ? ret : ME_EIO; /* the object shrank or went: the response is cut */
        return;
    }
    s->offset += s->got;
    s->left -= s->got;
}

static void plan(stream_t *s)
{
    s->plan = me_delivery_plan(s->obj.size, s->obj.etag, s->obj.mtime, s->range.v, s->range.len,
                               s->if_none_match.v, s->if_none_match.len, s->if_range.v, s->if_range.len);
    s->offset = s->plan.offset;
    s->left = s->plan.length;
}

/* A small object read whole into a blob for the hot cache: 0, or an error. */
static int read_whole(stream_t *s)
{
    size_t at = 0, got;
    if ((s->blob = me_delivery_blob_new((size_t)s->obj.size)) == NULL)
        return ME_ENOMEM;
    while (at < s->obj.size) {
        int ret = me_storage_get(s->st, s->obj.key, at, (size_t)s->obj.size - at,
                                 (char *)me_delivery_blob_data(s->blob) + at, &got);
        if (ret != 0 || got == 0)
            return ret != 0 ? ret : ME_EIO; /* the object shrank or went */
        at += got;
    }
    me_delivery_hot_put(s->hot, s->album, s->media_id, s->file, me_clock_mono_ms(), &s->obj, s->blob);
    return 0;
}

static void open_work(me_http_job_t *hj)
{
    stream_t *s = H2O_STRUCT_FROM_MEMBER(stream_t, hj, hj);
    if ((s->err = me_delivery_resolve(s->objects, s->album, s->media_id, s->file, s->allow_original, &s->obj)) != 0)
        return;
    plan(s);
    if (!s->is_get || s->left == 0 || (s->plan.status != 200 && s->plan.status != 206))
        return;
    /* a small object from memory, or read whole into it; a large one a chunk at a time */
    if ((s->blob = me_delivery_hot_confirm(s->hot, s->album, s->media_id, s->file, me_clock_mono_ms(), &s->obj)) !=
        NULL) {
        s->from = "confirmed";
        return;
    }
    if (s->obj.size <= me_delivery_hot_object_max(s->hot)) {
        s->from = "read";
        if ((s->err = read_whole(s)) != 0) {
            me_delivery_blob_release(s->blob);
            s->blob = NULL;
        }
        return;
    }
    s->from = "streamed";
    if ((s->buf = me_delivery_buffer_get(s->buffers)) == NULL) {
        s->err = ME_ENOMEM;
        return;
    }
    read_chunk(s);
}

static void read_work(me_http_job_t *hj)
{
    read_chunk(H2O_STRUCT_FROM_MEMBER(stream_t, hj, hj));
}

/* ---- answering, on the loop ---- */

static void send_chunk(stream_t *s, h2o_req_t *req)
{
    if (s->err != 0) {
        me_log_warn(me_http_reqid(req), "origin: reading %s failed after %" PRIu64 " bytes; the response is cut",
                    s->obj.key, s->offset - s->plan.offset);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR);
        return;
    }
    h2o_iovec_t v = h2o_iovec_init(s->buf, s->got);
    h2o_send(req, &v, 1, s->left == 0 ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void read_done(me_http_job_t *hj)
{
    stream_t *s = H2O_STRUCT_FROM_MEMBER(stream_t, hj, hj);
    s->in_flight = 0;
    if (!s->alive) {
        stream_free(s);
        return;
    }
    if (!s->stopped)
        send_chunk(s, hj->req);
}

/* libh2o asks for more once the last chunk went out: one read at a time per response. */
static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    stream_t *s = (stream_t *)gen;
    s->hj.work = read_work;
    s->hj.done = read_done;
    s->in_flight = 1;
    if (me_http_defer(req, s->pool, &s->hj) != 0) {
        s->in_flight = 0;
        h2o_send(req, NULL, 0, H2O_SEND_STATE_ERROR); /* the pool is full or stopping */
    }
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    ((stream_t *)gen)->stopped = 1; /* the client went away; the request's pool frees us */
}

static void add_headers(stream_t *s, h2o_req_t *req)
{
    struct tm gmt;
    time_t t = (time_t)s->obj.mtime;
    gmtime_r(&t, &gmt);
    h2o_time2str_rfc1123(s->last_modified, &gmt);
    me_http_add_header(req, "etag", h2o_strdup(&req->pool, s->obj.etag, SIZE_MAX).base, strlen(s->obj.etag));
    me_http_add_header(req, "last-modified", s->last_modified, H2O_TIMESTR_RFC1123_LEN);
    /* behind CloudFront the bytes of a name never change: cache them for good; standalone the
     * URL carries a family's signature: no shared cache may keep it */
    if (s->behind_cdn)
        me_http_add_header(req, "cache-control", H2O_STRLIT("public, max-age=31536000, immutable"));
    else
        me_http_add_header(req, "cache-control", H2O_STRLIT("private"));
    me_http_add_header(req, "x-content-type-options", H2O_STRLIT("nosniff"));
    if (s->plan.status == 304)
        return;
    me_http_add_header(req, "accept-ranges", H2O_STRLIT("bytes"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   h2o_strdup(&req->pool, s->obj.content_type, SIZE_MAX).base, strlen(s->obj.content_type));
    if (s->obj.is_original) /* it still carries the family's EXIF and location: never shown inline */
        me_http_add_header(req, "content-disposition", H2O_STRLIT("attachment"));
}

/* Answers the request from s's object and plan (on the loop). */
static void respond(stream_t *s, h2o_req_t *req)
{
    static h2o_generator_t no_body = {NULL, NULL};
    add_headers(s, req);
    switch (s->plan.status) {
    case 304:
        req->res.status = 304; /* no Content-Length: the one a 200 would have is not ours to send */
        req->res.reason = me_http_reason(304);
        h2o_send_inline(req, "", 0);
        return;
    case 416:
        snprintf(s->content_range, sizeof(s->content_range), "bytes */%" PRIu64, s->obj.size);
        me_http_add_header(req, "content-range", s->content_range, strlen(s->content_range));
        me_http_send_error(req, ME_ERANGE, NULL);
        return;
    case 206:
        snprintf(s->content_range, sizeof(s->content_range), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, s->plan.offset,
                 s->plan.offset + s->plan.length - 1, s->obj.size);
        me_http_add_header(req, "content-range", s->content_range, strlen(s->content_range));
        req->res.status = 206;
        break;
    default:
        req->res.status = 200;
    }
    req->res.reason = me_http_reason(req->res.status);
    req->res.content_length = s->plan.length;
    if (!s->is_get || s->plan.length == 0) {
        h2o_start_response(req, &no_body);
        h2o_send(req, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    me_metric_add(origin_answers, &s->from, 1);
    if (s->blob != NULL) { /* all of it at once; the blob lives until the request is gone */
        h2o_iovec_t v = h2o_iovec_init((char *)me_delivery_blob_data(s->blob) + s->plan.offset, s->plan.length);
        h2o_start_response(req, &no_body);
        h2o_send(req, &v, 1, H2O_SEND_STATE_FINAL);
        return;
    }
    s->super.proceed = on_proceed;
    s->super.stop = on_stop;
    h2o_start_response(req, &s->super);
    send_chunk(s, req);
}

static void open_done(me_http_job_t *hj)
{
    stream_t *s = H2O_STRUCT_FROM_MEMBER(stream_t, hj, hj);
    s->in_flight = 0;
    if (!s->alive) {
        stream_free(s);
        return;
    }
    if (s->err != 0) {
        me_http_send_error(hj->req, s->err == ME_ENOTFOUND ? ME_ENOTFOUND : ME_EIO, NULL);
        return;
    }
    respond(s, hj->req);
}

static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    origin_handler_t *self = (origin_handler_t *)_self;
    size_t pathlen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    stream_t *s;

    if (!me_http_check_method(req, "GET, HEAD"))
        return 0;
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        me_http_send_error(req, ME_ENOMEM, NULL);
        return 0;
    }
    if (me_delivery_parse_path(req->path.base, pathlen, s->album, s->media_id, s->file) != 0) {
        free(s);
        me_http_send_error(req, ME_ENOTFOUND, NULL);
        return 0;
    }
    if (!allowed(self, req)) {
        free(s);
        return 0;
    }
    *(stream_t **)h2o_mem_alloc_shared(&req->pool, sizeof(stream_t *), on_req_dispose) = s;
    s->alive = 1;
    s->objects = self->deps.objects;
    s->buffers = self->deps.buffers;
    s->hot = self->deps.hot;
    s->st = self->deps.storage;
    s->pool = self->deps.pool;
    s->behind_cdn = me_delivery_behind_cdn(self->deps.delivery);
    s->allow_original = me_delivery_serve_original(self->deps.delivery);
    s->chunk = me_delivery_buffers_size(self->deps.buffers);
    s->is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
    copy_header(req, H2O_TOKEN_RANGE, &s->range);
    copy_header(req, H2O_TOKEN_IF_NONE_MATCH, &s->if_none_match);
    copy_header(req, H2O_TOKEN_IF_RANGE, &s->if_range);
    /* a hot object: answered here, with no storage call and no thread hop */
    if ((s->blob = me_delivery_hot_get(s->hot, s->album, s->media_id, s->file, me_clock_mono_ms(), &s->obj)) != NULL) {
        s->from = "hot";
        plan(s);
        respond(s, req);
        return 0;
    }
    s->hj.work = open_work;
    s->hj.done = open_done;
    s->in_flight = 1;
    int err = me_http_defer(req, s->pool, &s->hj);
    if (err != 0) {
        s->in_flight = 0; /* freed with the request */
        me_http_send_error(req, err, NULL);
    }
    return 0;
}

void me_origin_register(h2o_hostconf_t *host, const me_origin_deps_t *deps)
{
    h2o_pathconf_t *pathconf = me_http_route(host, "/m", ROUTE);
    origin_handler_t *h = (origin_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->deps = *deps;
}
