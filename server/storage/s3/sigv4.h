/* sigv4.h: AWS Signature Version 4 on OpenSSL: canonical requests, Authorization headers and
 * presigned URLs, for S3 and for any other service (STS).
 *
 * Ours, not libcurl's CURLOPT_AWS_SIGV4: libcurl 7.88 signs non-canonical queries, ranged
 * UploadPartCopy and valueless parameters wrongly and cannot presign
 * (../shared/notes/s3-and-sigv4.md). Checked against the AWS test-suite vectors and botocore
 * (tests/unit/test_sigv4.c).
 *
 * Everything here is pure: no clock, no I/O, no allocation visible to the caller. Functions
 * write into caller buffers and return the length written (without the NUL), or -1 when the
 * buffer is too small or an input is invalid (then out holds "" if it has room). */
#ifndef ME_SIGV4_H
#define ME_SIGV4_H

#include <stddef.h>
#include <time.h>

#define ME_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define ME_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ME_SIGV4_DATE_LEN 16 /* "20150830T123600Z" */

/* A query parameter (value NULL: a valueless one such as "uploads", signed as "uploads=") or
 * a header, raw (not percent-encoded). */
typedef struct {
    const char *name, *value;
} me_sigv4_pair_t;

typedef struct {
    const char *access_key, *secret_key;
    const char *session_token; /* NULL or "" when the credentials have none */
} me_sigv4_creds_t;

typedef struct {
    const char *method;           /* "GET" */
    const char *path;             /* raw, unencoded, starting with '/': "/bucket/a b" */
    const me_sigv4_pair_t *query; /* any order; encoded and sorted here */
    size_t nquery;
    const me_sigv4_pair_t *headers; /* every header to sign, names in any case; host included */
    size_t nheaders;
    const char *payload_hash;     /* lower-case hex SHA-256 of the body, or UNSIGNED-PAYLOAD */
    const char *region, *service; /* "us-east-1", "s3" */
    const char *amz_date;         /* ME_SIGV4_DATE_LEN characters: what X-Amz-Date carries */
} me_sigv4_request_t;

/* URI-encodes in as SigV4 wants: every byte but A-Z a-z 0-9 - _ . ~ as %XX (upper-case hex),
 * and '/' kept when keep_slash (paths) or encoded (query names and values). */
int me_sigv4_encode(const char *in, int keep_slash, char *out, size_t len);

/* The canonical query string of params: each name and value encoded, sorted by name then
 * value, joined with '&' ("" for none). Send exactly this string as the URL's query, so what
 * is sent is what was signed. */
int me_sigv4_canonical_query(const me_sigv4_pair_t *params, size_t n, char *out, size_t len);

/* The canonical request (the signature's first step), and its signed header list
 * ("host;range;x-amz-date") into signed_headers when that is not NULL. Headers are lower-cased,
 * their values trimmed and inner runs of spaces collapsed, sorted by name; repeated names are
 * joined with ','. */
int me_sigv4_canonical_request(const me_sigv4_request_t *r, char *out, size_t len, char *signed_headers, size_t shlen);

/* The Authorization header's value: "AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/
 * <service>/aws4_request, SignedHeaders=..., Signature=<hex>". The request's headers must
 * already hold what is sent and signed (x-amz-date, x-amz-content-sha256 for S3,
 * x-amz-security-token with a session token). */
int me_sigv4_authorization(const me_sigv4_request_t *r, const me_sigv4_creds_t *c, char *out, size_t len);

/* A presigned URL's query: r's own parameters plus X-Amz-Algorithm, X-Amz-Credential,
 * X-Amz-Date (r->amz_date), X-Amz-Expires (1..604800 seconds), X-Amz-SignedHeaders,
 * X-Amz-Security-Token (with a session token), in canonical order, then X-Amz-Signature.
 * r->payload_hash is normally UNSIGNED-PAYLOAD; r->headers at least host. */
int me_sigv4_presign(const me_sigv4_request_t *r, const me_sigv4_creds_t *c, unsigned expires, char *out, size_t len);

/* Lower-case hex SHA-256 of data (65 bytes with the NUL). */
void me_sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* t as X-Amz-Date wants it: "YYYYMMDDTHHMMSSZ" (UTC). */
void me_sigv4_amz_date(time_t t, char out[ME_SIGV4_DATE_LEN + 1]);

#endif
