/* uploads.c: tus 1.0.0 at /v1/uploads (core, creation, creation-with-upload, creation-defer-
 * length, termination, checksum, expiration, concatenation), and the IETF resumable-upload
 * draft on the same resources (uploads_draft.c): parses requests, runs the upload core on the
 * pool, writes the responses. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "handlers/uploads.h"
#include "handlers/uploads_draft.h"
#include "server/http/http.h"
#include "server/auth/plan.h"
#include "server/upload/upload.h"
#include "server/upload/upload_config.h"
#include "server/upload/upload_header.h"

#define TUS_VERSION "1.0.0"
#define TUS_EXTENSIONS \
    "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation"
#define PREFIX "/v1/uploads"
#define METHODS "POST, HEAD, PATCH, DELETE, OPTIONS"

typedef struct {
    h2o_handler_t super;
    me_uploads_deps_t deps;
} uploads_handler_t;

typedef enum { OP_CREATE, OP_HEAD, OP_APPEND, OP_DELETE, OP_CONCAT } op_t;

/* One request's work for the pool; owns copies of everything it needs but the body, which
 * me_http_job_take_body() keeps readable (the request may die). */
typedef struct {
    me_http_job_t hj;
    me_uploads_t *uploads;
    const me_config_t *cfg;
    op_t op;
    int draft;    /* the draft's interop version; 0: tus 1.0 */
    int complete; /* draft: Upload-Complete: ?1 */
    me_token_claims_t who;
    char id[ME_UPLOAD_ID_LEN + 1];
    uint64_t length, offset;
    char metadata[ME_UPLOAD_METADATA_MAX + 1];
    me_checksum_t ck;
    int has_ck;
    int partial;                      /* OP_CREATE: Upload-Concat: partial */
    int npartials;                    /* OP_CONCAT: the final's partial uploads */
    char partials[ME_UPLOAD_CONCAT_MAX][ME_UPLOAD_ID_LEN + 1];
    int err;
    me_upload_t result;
} upload_job_t;

static void job_free(upload_job_t *j)
{
    me_http_job_drop_body(&j->hj);
    free(j);
}

/* Upload-Offset, Upload-Length: a strict unsigned decimal (upload_header.h). */
static int parse_u64(const h2o_iovec_t *v, uint64_t *out)
{
    return v != NULL && me_upload_header_u64(v->base, v->len, out);
}

static void send_error(h2o_req_t *req, int err, const char *message)
{
    if (err == ME_EVERSION)
        me_http_add_header(req, "tus-version", H2O_STRLIT(TUS_VERSION));
    me_http_send_error(req, err, message);
}

/* Upload-Concat as tus wants it back: "partial", or "final;" and the partials' URLs. */
static void add_concat(h2o_req_t *req, const me_upload_t *up)
{
    if (up->kind == ME_UPLOAD_PARTIAL) {
        me_http_add_header(req, "upload-concat", H2O_STRLIT("partial"));
        return;
    }
    size_t size = sizeof("final;") + (size_t)up->npartials * sizeof(PREFIX "/ ") + sizeof(up->partials);
    char *value = h2o_mem_alloc_pool(&req->pool, size);
    int n = snprintf(value, size, "final;");
    for (int i = 0; i < up->npartials; i++)
        n += snprintf(value + n, size - (size_t)n, "%s" PREFIX "/%s", i > 0 ? " " : "", up->partials[i]);
    me_http_add_header(req, "upload-concat", value, (size_t)n);
}

static void add_state(h2o_req_t *req, const upload_job_t *j)
{
    const me_upload_t *up = &j->result;
    if (j->draft) {
        int64_t now = (int64_t)time(NULL);
        me_draft_add_headers(req, j->draft, j->cfg, up, now);
        me_draft_add_complete(req, up->completed);
        me_http_add_header_u64(req, "upload-offset", up->offset);
        if (up->length != ME_UPLOAD_LENGTH_DEFERRED)
            me_http_add_header_u64(req, "upload-length", up->length);
        if (up->completed)
            me_http_add_header(req, "media-id", h2o_strdup(&req->pool, up->media_id, SIZE_MAX).base, strlen(up->media_id));
        return;
    }
    char *date = h2o_mem_alloc_pool(&req->pool, H2O_TIMESTR_RFC1123_LEN + 1);
    struct tm gmt;
    time_t expires = (time_t)up->expires;
    gmtime_r(&expires, &gmt);
    h2o_time2str_rfc1123(date, &gmt);
    if (up->kind != ME_UPLOAD_FINAL || up->completed) /* a final's offset means nothing until it is whole */
        me_http_add_header_u64(req, "upload-offset", up->offset);
    if (up->length == ME_UPLOAD_LENGTH_DEFERRED)
        me_http_add_header(req, "upload-defer-length", H2O_STRLIT("1"));
    else
        me_http_add_header_u64(req, "upload-length", up->length);
    if (up->kind != ME_UPLOAD_PLAIN)
        add_concat(req, up);
    if (!up->completed || up->kind == ME_UPLOAD_PARTIAL) /* a partial expires even when complete */
        me_http_add_header(req, "upload-expires", date, H2O_TIMESTR_RFC1123_LEN);
    if (up->completed && up->media_id[0] != '\0') /* a partial upload has none */
        me_http_add_header(req, "media-id", h2o_strdup(&req->pool, up->media_id, SIZE_MAX).base, strlen(up->media_id));
}

/* ---- the pool side ---- */

static void job_work(me_http_job_t *hj)
{
    upload_job_t *j = (upload_job_t *)hj;
    int64_t now = (int64_t)time(NULL);
    switch (j->op) {
    case OP_CREATE:
        j->err = (j->partial ? me_upload_create_partial : me_upload_create)(j->uploads, &j->who, j->length,
                                                                             j->metadata, now, &j->result);
        if (j->err == 0 && (j->hj.body.base != NULL || j->complete))
            j->err = me_upload_append(j->uploads, &j->who, j->result.id, 0, ME_UPLOAD_LENGTH_DEFERRED,
                                      j->hj.body.base, j->hj.body.len,
                                      j->has_ck ? &j->ck : NULL, now, &j->result);
        break;
    case OP_HEAD:
        j->err = me_upload_head(j->uploads, &j->who, j->id, now, &j->result);
        break;
    case OP_APPEND:
        j->err = me_upload_append(j->uploads, &j->who, j->id, j->offset, j->length, j->hj.body.base, j->hj.body.len,
                                  j->has_ck ? &j->ck : NULL, now, &j->result);
        break;
    case OP_DELETE:
        j->err = me_upload_delete(j->uploads, &j->who, j->id);
        break;
    case OP_CONCAT:
        j->err = me_upload_concat(j->uploads, &j->who, (const char(*)[ME_UPLOAD_ID_LEN + 1])j->partials, j->npartials,
                                  j->metadata, now, &j->result);
        break;
    }
    /* the draft's answer to a wrong offset names the right one, or says the upload is done */
    if (j->draft && j->op == OP_APPEND && j->err == ME_EOFFSET &&
        me_upload_head(j->uploads, &j->who, j->id, now, &j->result) != 0)
        j->result.offset = UINT64_MAX;
}

/* The draft's problem details for the errors it defines; 0 when err is not one of them. */
static int send_draft_problem(h2o_req_t *req, const upload_job_t *j)
{
    if (j->err == ME_EOFFSET && j->result.offset != UINT64_MAX) {
        if (j->result.completed)
            me_draft_send_completed(req);
        else
            me_draft_send_offset_mismatch(req, j->result.offset, j->offset);
        return 1;
    }
    if (j->err == ME_ECONFLICT) {
        me_draft_send_inconsistent_length(req, "Upload-Length, Upload-Complete and the bytes sent disagree with "
                                               "the length the upload already has.");
        return 1;
    }
    return 0;
}

static void job_done(me_http_job_t *hj)
{
    upload_job_t *j = (upload_job_t *)hj;
    h2o_req_t *req = hj->req;
    if (req == NULL)
        goto exit; /* the client went away; what was stored stays stored */
    int created = j->op == OP_CREATE || j->op == OP_CONCAT;
    if (created && j->result.id[0] != '\0') {
        /* also when the first bytes of creation-with-upload failed: the upload exists */
        size_t size = sizeof(PREFIX "/") + ME_UPLOAD_ID_LEN;
        char *location = h2o_mem_alloc_pool(&req->pool, size);
        int n = snprintf(location, size, PREFIX "/%s", j->result.id);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, location, (size_t)n);
    }
    if (j->err != 0) {
        if (!j->draft || !send_draft_problem(req, j))
            send_error(req, j->err, NULL);
        goto exit;
    }
    if (j->op == OP_DELETE) {
        me_http_send_empty(req, 204);
    } else {
        add_state(req, j);
        if (j->op == OP_HEAD)
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
        int ok = j->op == OP_HEAD && !j->draft; /* the draft answers HEAD with 204 */
        me_http_send_empty(req, created ? 201 : ok ? 200 : 204);
    }
exit:
    job_free(j);
}

/* ---- the loop side ---- */

static int on_options(h2o_req_t *req, const me_config_t *cfg)
{
    me_http_add_header(req, "tus-version", H2O_STRLIT(TUS_VERSION));
    me_http_add_header(req, "tus-extension", H2O_STRLIT(TUS_EXTENSIONS));
    me_http_add_header(req, "tus-checksum-algorithm", H2O_STRLIT(ME_CHECKSUM_ALGORITHMS));
    me_http_add_header_u64(req, "tus-max-size", me_upload_settings(cfg)->max_size);
    me_http_send_empty(req, 204);
    return 0;
}

/* Reads Upload-Concat (concat) of a creation: a partial upload, or a final one with its list
 * of partials (and no length or body of its own). Returns 0, or an error already answered. */
static int take_concat(h2o_req_t *req, const h2o_iovec_t *concat, int has_length, upload_job_t *j)
{
    if (h2o_memis(concat->base, concat->len, H2O_STRLIT("partial"))) {
        j->partial = 1;
        return 0;
    }
    j->op = OP_CONCAT;
    if (concat->len < 6 || memcmp(concat->base, "final;", 6) != 0 || has_length || req->entity.len > 0 ||
        me_upload_concat_parse(concat->base + 6, concat->len - 6, PREFIX "/", j->partials, &j->npartials) != 0) {
        send_error(req, ME_ECONCAT, NULL);
        return ME_ECONCAT;
    }
    return 0;
}

/* Takes the body when it is an upload's bytes: its Content-Type is want (NULL: any); a
 * body of another type is refused when required, else left. Returns 0, or an error already
 * answered. */
static int take_body(h2o_req_t *req, const me_config_t *cfg, upload_job_t *j, const char *want, int required)
{
    const h2o_iovec_t *type = NULL;
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i >= 0)
        type = &req->headers.entries[i].value;
    if (want != NULL && (type == NULL || !h2o_memis(type->base, type->len, want, strlen(want)))) {
        if (required) {
            char *message = h2o_mem_alloc_pool(&req->pool, 64);
            snprintf(message, 64, "Content-Type must be %s.", want);
            send_error(req, ME_EUNSUPPORTED, message);
            return ME_EUNSUPPORTED;
        }
        return 0;
    }
    const h2o_iovec_t *ck = me_http_header(req, "upload-checksum");
    if (ck != NULL) {
        int err = me_checksum_parse(ck->base, ck->len, &j->ck);
        if (err != 0) {
            send_error(req, ME_EINVAL, err == ME_EUNSUPPORTED ? "Upload-Checksum: the algorithm is not one of "
                                                               ME_CHECKSUM_ALGORITHMS "."
                                                             : "Upload-Checksum is malformed.");
            return ME_EINVAL;
        }
        j->has_ck = 1;
    }
    if (me_http_job_take_body(&j->hj, req, cfg) != 0) {
        send_error(req, ME_EBUSY, "The server is receiving too much at once; retry this PATCH later.");
        return ME_EBUSY;
    }
    return 0;
}

/* A draft request with Upload-Complete: ?1 ends the upload with its body: the length is
 * where the body ends, and an Upload-Length sent along must say the same. 1, or 0 answered. */
static int draft_length(h2o_req_t *req, upload_job_t *j, int has_length)
{
    uint64_t end = j->offset + j->hj.body.len;
    if (has_length && j->length != end) {
        me_draft_send_inconsistent_length(req, "Upload-Length is not where the bytes of the completing request end.");
        return 0;
    }
    j->length = end;
    return 1;
}

static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    uploads_handler_t *self = (uploads_handler_t *)_self;
    const me_config_t *cfg = self->deps.cfg;
    h2o_iovec_t rest = h2o_iovec_init(req->path_normalized.base + strlen(PREFIX),
                                      req->path_normalized.len - strlen(PREFIX));
    int collection = rest.len == 0 || (rest.len == 1 && rest.base[0] == '/');
    upload_job_t *j = NULL;

    int draft = me_draft_version(req);
    if (draft == 0)
        me_http_add_header(req, "tus-resumable", H2O_STRLIT(TUS_VERSION));
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS")))
        return on_options(req, cfg);

    const h2o_iovec_t *version = me_http_header(req, "tus-resumable");
    if (draft < 0) {
        send_error(req, ME_EINVAL, "Upload-Draft-Interop-Version: this server speaks 5 (draft -03) and 6 (drafts -04 "
                                   "and -05).");
        return 0;
    }
    if (draft == 0 && (version == NULL || !h2o_memis(version->base, version->len, H2O_STRLIT(TUS_VERSION)))) {
        send_error(req, ME_EVERSION, NULL);
        return 0;
    }
    if (collection ? !me_http_check_method(req, "POST, OPTIONS")
                   : !me_http_check_method(req, "HEAD, PATCH, DELETE, OPTIONS"))
        return 0;
    if (!collection && (rest.base[0] != '/' || !me_upload_id_valid(rest.base + 1, rest.len - 1))) {
        send_error(req, ME_ENOTFOUND, "No such upload.");
        return 0;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        send_error(req, ME_EBUSY, NULL);
        return 0;
    }
    if (me_http_authorize(req, self->deps.verifier, ME_SCOPE_UPLOAD, &j->who) != 0)
        goto answered;
    int err = me_plan_check_client(&j->who, me_http_header(req, "origin") != NULL);
    if (err != 0) {
        send_error(req, err, NULL);
        goto answered;
    }
    j->uploads = self->deps.uploads;
    j->cfg = cfg;
    j->draft = draft;
    j->length = ME_UPLOAD_LENGTH_DEFERRED;
    if (!collection)
        memcpy(j->id, rest.base + 1, ME_UPLOAD_ID_LEN);

    const h2o_iovec_t *length = me_http_header(req, "upload-length"), *defer = me_http_header(req, "upload-defer-length");
    if (length != NULL && !parse_u64(length, &j->length)) {
        send_error(req, ME_EINVAL, "Upload-Length must be a non-negative integer.");
        goto answered;
    }
    if (length != NULL && j->length == ME_UPLOAD_LENGTH_DEFERRED) { /* 2^64-1 is no length but "not known yet" */
        send_error(req, ME_EUPLOAD_SIZE, NULL);
        goto answered;
    }
    switch (req->method.base[0]) {
    case 'P':
        if (req->method.base[1] == 'O') { /* POST: creation */
            j->op = OP_CREATE;
            const h2o_iovec_t *concat = draft ? NULL : me_http_header(req, "upload-concat");
            if (concat != NULL && take_concat(req, concat, length != NULL || defer != NULL, j) != 0)
                goto answered;
            if (j->op == OP_CREATE &&
                (draft ? (j->complete = me_draft_complete(req)) < 0
                       : (length == NULL) == (defer == NULL) ||
                             (defer != NULL && !h2o_memis(defer->base, defer->len, H2O_STRLIT("1"))))) {
                send_error(req, ME_EINVAL, draft ? "Send Upload-Complete: ?0 or ?1."
                                                 : "Send either Upload-Length or Upload-Defer-Length: 1.");
                goto answered;
            }
            const h2o_iovec_t *meta = me_http_header(req, "upload-metadata");
            if (meta != NULL) {
                if (!me_upload_metadata_valid(meta->base, meta->len)) {
                    send_error(req, ME_EINVAL, "Upload-Metadata is malformed or longer than 4096 bytes.");
                    goto answered;
                }
                memcpy(j->metadata, meta->base, meta->len);
            }
            if (j->op == OP_CREATE &&
                (take_body(req, cfg, j, draft ? NULL : "application/offset+octet-stream", 0) != 0 ||
                 (j->complete && !draft_length(req, j, length != NULL))))
                goto answered;
        } else { /* PATCH */
            j->op = OP_APPEND;
            if (!parse_u64(me_http_header(req, "upload-offset"), &j->offset)) {
                send_error(req, ME_EINVAL, "Upload-Offset must be a non-negative integer.");
                goto answered;
            }
            if (draft && (j->complete = me_draft_complete(req)) < 0) {
                send_error(req, ME_EINVAL, "Send Upload-Complete: ?0 or ?1.");
                goto answered;
            }
            if (take_body(req, cfg, j, draft ? me_draft_append_type(draft) : "application/offset+octet-stream", 1) != 0 ||
                (j->complete && !draft_length(req, j, length != NULL)))
                goto answered;
        }
        break;
    case 'H':
        j->op = OP_HEAD;
        break;
    default:
        j->op = OP_DELETE;
        break;
    }
    j->hj.work = job_work;
    j->hj.done = job_done;
    /* a HEAD (where do I resume?) is a small read: it must not wait behind the queued writes
     * and fsyncs of large PATCHes (bench/sustained: seconds under 50 large uploads) */
    err = j->op == OP_HEAD ? me_http_defer_first(req, self->deps.pool, &j->hj)
                           : me_http_defer(req, self->deps.pool, &j->hj);
    if (err == 0)
        return 0;
    send_error(req, err, NULL);
answered:
    job_free(j);
    return 0;
}

void me_uploads_register(h2o_hostconf_t *host, const me_uploads_deps_t *deps)
{
    h2o_pathconf_t *pathconf = me_http_api_route(host, PREFIX, PREFIX, deps->cors, METHODS);
    uploads_handler_t *h = (uploads_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->deps = *deps;
}
