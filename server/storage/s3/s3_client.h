/* s3_client.h: S3 requests over libcurl, signed by sigv4.h: addressing, credentials, server-
 * side encryption headers, retries with backoff, and the per-operation metrics.
 *
 * Every call blocks (pool threads only, never an event loop). Handles are reused from a pool
 * owned by the client, so connections stay open between requests (HTTP keep-alive); a
 * share handle gives every handle the same DNS cache and TLS sessions.
 *
 * Retries: a retryable step is tried up to s3.max_attempts times, waiting a random time in
 * [0, min(retry_max, retry_base * 2^try)) between tries ("full jitter"). Idempotent steps
 * (GET, HEAD, PUT, DELETE, UploadPart, UploadPartCopy, ListParts, ListObjectsV2) retry on
 * 500, 502, 503, 504, SlowDown, InternalError, RequestTimeout and connection errors; others
 * (CreateMultipartUpload, CompleteMultipartUpload) only when the request surely did nothing:
 * the connection could not be made, or 503 SlowDown.
 *
 * Metrics (per operation "op"): mediaedge_s3_requests_total{op,status} (each try; status
 * the HTTP status or "error"), mediaedge_s3_request_duration_seconds{op} (each try),
 * mediaedge_s3_retries_total{op}, mediaedge_s3_errors_total{op,reason} (steps that failed
 * in the end: reason "connection", "throttled", "server", "denied", "client"),
 * mediaedge_s3_bytes_total{op,direction} (bodies sent "out" and received "in"). */
#ifndef ME_S3_CLIENT_H
#define ME_S3_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"
#include "server/storage/s3/s3_config.h"
#include "server/storage/s3/sigv4.h"

#define ME_S3_ERROR_BODY_MAX (64 * 1024) /* error documents kept */
#define ME_S3_HEADERS_MAX 8              /* extra headers of one request */

typedef struct me_s3_client me_s3_client_t;

typedef struct {
    const char *op;     /* the metrics' label: "get", "put", "upload_part" ... (a constant) */
    const char *method; /* "GET" */
    const char *key;    /* the object's key (raw, unencoded); NULL: the bucket itself */
    const me_sigv4_pair_t *query;
    size_t nquery;
    const me_sigv4_pair_t *headers; /* extra headers, signed; at most ME_S3_HEADERS_MAX */
    size_t nheaders;
    const void *body; /* sent as is (not copied): PUT and POST */
    size_t body_len;
    int idempotent;
    int sse; /* add the configured server-side encryption headers (writes that create objects) */
    /* Where a 2xx answer's body goes: into buf (at most buf_len bytes; more is an error
     * unless skip_past_buf), else into a malloc'd buffer of at most max_body bytes. */
    void *buf;
    size_t buf_len;
    size_t max_body;
    uint64_t skip; /* bytes of a 200 answer to skip first (a Range the server ignored) */
} me_s3_request_t;

typedef struct {
    long status; /* the last try's HTTP status */
    char *body;  /* the collected body (2xx without buf, or an error document), NUL-terminated; free() */
    size_t body_len;
    size_t got;     /* bytes written into the request's buf */
    char code[64];  /* an error document's Code ("NoSuchKey"), or "" */
    char etag[128]; /* the ETag header, without quotes */
    uint64_t content_length;
    int64_t last_modified; /* seconds since the epoch, or 0 */
    uint64_t total_size;   /* from Content-Range "bytes a-b/total", or 0 */
} me_s3_response_t;

/* A client for s's bucket with its own credentials (s3_creds.h). NULL with err set when the
 * settings or credentials cannot be used. */
me_s3_client_t *me_s3_client_new(const me_s3_settings_t *s, char *err, size_t errlen);
void me_s3_client_free(me_s3_client_t *c);

/* Sends req (retrying as above) and fills *resp (free its body with me_s3_response_free()).
 * 0 when an answer came, whatever its status (2xx or not: the caller maps it); ME_EIO when
 * none came (connection errors, timeouts, after the retries), or the 2xx body did not fit;
 * ME_ENOMEM; ME_EINVAL when req cannot be signed (too long). */
int me_s3_request(me_s3_client_t *c, const me_s3_request_t *req, me_s3_response_t *resp) ME_MUST_CHECK;

void me_s3_response_free(me_s3_response_t *resp);

/* A presigned URL for method on key, valid for expires seconds (1..604800) from now, into
 * out. 0, ME_EINVAL (too long, bad expiry), ME_EIO (no credentials). */
int me_s3_presign(me_s3_client_t *c, const char *method, const char *key, unsigned expires, char *out,
                  size_t len) ME_MUST_CHECK;

/* Logs and counts a step that failed in the end (mediaedge_s3_errors_total) with its
 * response: returns ME_EIO, or ME_ENOTFOUND for 404. op as in the request. */
int me_s3_failed(const char *op, const char *key, const me_s3_response_t *resp);

#endif
