/* uploads_draft.c: the IETF resumable-upload draft's headers and problem details. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "handlers/uploads_draft.h"
#include "server/http/http.h"
#include "server/http/server_config.h"
#include "server/upload/upload_config.h"
#include "server/upload/upload_header.h"

#define PROBLEM_BASE "https://iana.org/assignments/http-problem-types#"

int me_draft_version(h2o_req_t *req)
{
    const h2o_iovec_t *v = me_http_header(req, "upload-draft-interop-version");
    return v == NULL ? 0 : me_upload_header_draft_version(v->base, v->len);
}

int me_draft_complete(h2o_req_t *req)
{
    const h2o_iovec_t *v = me_http_header(req, "upload-complete");
    return v == NULL ? -1 : me_upload_header_complete(v->base, v->len);
}

const char *me_draft_append_type(int version)
{
    return version >= 6 ? "application/partial-upload" : NULL;
}

void me_draft_add_headers(h2o_req_t *req, int version, const me_config_t *cfg, const me_upload_t *up, int64_t now)
{
    me_http_add_header(req, "upload-draft-interop-version", version == 5 ? "5" : "6", 1);
    size_t size = 128;
    char *limit = h2o_mem_alloc_pool(&req->pool, size);
    uint64_t max_size = up != NULL ? up->max_size : me_upload_settings(cfg)->max_size;
    int n = snprintf(limit, size, "max-size=%" PRIu64 ", max-append-size=%" PRIu64 ", min-append-size=1", max_size,
                     me_http_settings(cfg)->max_patch_size);
    if (up != NULL && !up->completed && n > 0 && (size_t)n < size)
        n += snprintf(limit + n, size - (size_t)n, ", expires=%" PRId64, up->expires > now ? up->expires - now : 0);
    me_http_add_header(req, "upload-limit", limit, n > 0 && (size_t)n < size ? (size_t)n : strlen(limit));
}

void me_draft_add_complete(h2o_req_t *req, int complete)
{
    me_http_add_header(req, "upload-complete", complete ? "?1" : "?0", 2);
}

/* {"type":...,"title":...,"status":N,"error":code<extra>} as application/problem+json */
static void send_problem(h2o_req_t *req, int status, const char *type, const char *title, int err,
                         const char *extra)
{
    size_t size = 512;
    char *body = h2o_mem_alloc_pool(&req->pool, size);
    int n = snprintf(body, size, "{\"type\":\"" PROBLEM_BASE "%s\",\"title\":\"%s\",\"status\":%d,\"error\":\"%s\"%s}",
                     type, title, status, me_err_code(err), extra);
    me_http_send(req, status, "application/problem+json", body, n > 0 && (size_t)n < size ? (size_t)n : 0);
}

void me_draft_send_offset_mismatch(h2o_req_t *req, uint64_t expected, uint64_t provided)
{
    char extra[96];
    snprintf(extra, sizeof(extra), ",\"expected-offset\":%" PRIu64 ",\"provided-offset\":%" PRIu64, expected, provided);
    me_http_add_header_u64(req, "upload-offset", expected);
    send_problem(req, 409, "mismatching-upload-offset",
                 "The upload has a different offset; continue from expected-offset.", ME_EOFFSET, extra);
}

void me_draft_send_completed(h2o_req_t *req)
{
    send_problem(req, 400, "completed-upload", "The upload is already complete: it takes no more bytes.",
                 ME_ECONFLICT, "");
}

void me_draft_send_inconsistent_length(h2o_req_t *req, const char *detail)
{
    char extra[256];
    snprintf(extra, sizeof(extra), ",\"detail\":\"%s\"", detail);
    send_problem(req, 400, "inconsistent-upload-length", "The upload's length values disagree.", ME_ECONFLICT,
                 extra);
}
