/* s3_client.c: signed S3 requests on pooled libcurl handles, with retries and metrics. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/storage/s3/s3_client.h"
#include "server/storage/s3/s3_creds.h"
#include "server/storage/s3/s3_xml.h"

#define IDLE_HANDLES_MAX 64
#define URL_MAX 4096
#define HEADER_LINE_MAX (ME_S3_TOKEN_MAX + 64)

static const double duration_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
ME_COUNTER(s3_requests, "mediaedge_s3_requests_total", "S3 requests (each try), by operation and HTTP status.",
           "op,status")
ME_HISTOGRAM(s3_duration, "mediaedge_s3_request_duration_seconds", "S3 request latency (each try), by operation.", "op",
             duration_buckets)
ME_COUNTER(s3_retries, "mediaedge_s3_retries_total", "S3 requests tried again (500, 503, SlowDown, connection).", "op")
ME_COUNTER(s3_errors, "mediaedge_s3_errors_total", "S3 steps that failed in the end, by operation and reason.",
           "op,reason")
ME_COUNTER(s3_bytes, "mediaedge_s3_bytes_total", "S3 body bytes sent (out) and received (in), by operation.",
           "op,direction")

struct me_s3_client {
    me_s3_creds_t *creds;
    char scheme[8]; /* "https" */
    char host[256]; /* endpoint host[:port] */
    char bucket[64];
    int virtual_host; /* bucket.host */
    int sign_payload;
    int sse;
    char *kms_key;
    char region[33];
    long connect_ms, timeout_ms;
    int max_attempts;
    uint64_t retry_base, retry_max;
    char *ca_file;
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    pthread_mutex_t lock; /* the idle handles */
    CURL *idle[IDLE_HANDLES_MAX];
    int nidle;
};

/* ---- handles ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *arg)
{
    me_s3_client_t *c = arg;
    pthread_mutex_lock(&c->share_locks[data < CURL_LOCK_DATA_LAST ? data : 0]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *arg)
{
    me_s3_client_t *c = arg;
    pthread_mutex_unlock(&c->share_locks[data < CURL_LOCK_DATA_LAST ? data : 0]);
}

static CURL *take_handle(me_s3_client_t *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->lock);
    if (c->nidle > 0)
        h = c->idle[--c->nidle];
    pthread_mutex_unlock(&c->lock);
    return h != NULL ? h : curl_easy_init();
}

static void give_handle(me_s3_client_t *c, CURL *h)
{
    pthread_mutex_lock(&c->lock);
    if (c->nidle < IDLE_HANDLES_MAX) {
        c->idle[c->nidle++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    if (h != NULL)
        curl_easy_cleanup(h);
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    me_s3_xml_init();
}

me_s3_client_t *me_s3_client_new(const me_s3_settings_t *s, char *err, size_t errlen)
{
    me_s3_client_t *c;
    const char *ep = s->endpoint != NULL ? s->endpoint : "", *host;

    pthread_once(&global_once, global_init);
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        snprintf(err, errlen, "s3: out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->share_locks[i], NULL);
    if (ep[0] == '\0') {
        snprintf(c->scheme, sizeof(c->scheme), "https");
        snprintf(c->host, sizeof(c->host), "s3.%s.amazonaws.com", s->region);
    } else {
        host = strstr(ep, "://");
        snprintf(c->scheme, sizeof(c->scheme), "%.*s", (int)(host - ep), ep);
        snprintf(c->host, sizeof(c->host), "%s", host + 3);
    }
    snprintf(c->bucket, sizeof(c->bucket), "%s", s->bucket != NULL ? s->bucket : "");
    snprintf(c->region, sizeof(c->region), "%s", s->region);
    c->virtual_host = s->addressing == ME_S3_ADDRESSING_VIRTUAL;
    c->sign_payload = s->sign_payload || strcmp(c->scheme, "https") != 0;
    c->sse = s->sse;
    c->connect_ms = (long)s->connect_timeout;
    c->timeout_ms = (long)s->timeout;
    c->max_attempts = s->max_attempts > 0 ? s->max_attempts : 1;
    c->retry_base = s->retry_base;
    c->retry_max = s->retry_max;
    if ((s->sse_kms_key_id != NULL && s->sse_kms_key_id[0] != '\0' &&
         (c->kms_key = strdup(s->sse_kms_key_id)) == NULL) ||
        (s->ca_file != NULL && s->ca_file[0] != '\0' && (c->ca_file = strdup(s->ca_file)) == NULL) ||
        (c->share = curl_share_init()) == NULL) {
        snprintf(err, errlen, "s3: out of memory");
        goto fail;
    }
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    if ((c->creds = me_s3_creds_new(s, err, errlen)) == NULL)
        goto fail;
    return c;
fail:
    me_s3_client_free(c);
    return NULL;
}

void me_s3_client_free(me_s3_client_t *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < c->nidle; i++)
        curl_easy_cleanup(c->idle[i]);
    if (c->share != NULL)
        curl_share_cleanup(c->share);
    me_s3_creds_free(c->creds);
    free(c->kms_key);
    free(c->ca_file);
    pthread_mutex_destroy(&c->lock);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_locks[i]);
    free(c);
}

/* ---- one try ---- */

typedef struct {
    CURL *h;
    const me_s3_request_t *req;
    me_s3_response_t *resp;
    size_t cap; /* of resp->body */
    uint64_t skipped;
    int overflow; /* a 2xx body larger than allowed */
} transfer_t;

static int success(long status)
{
    return status >= 200 && status < 300;
}

static int collect(transfer_t *t, const char *p, size_t len, size_t max)
{
    me_s3_response_t *r = t->resp;
    if (r->body_len + len > max)
        return -1;
    if (r->body_len + len + 1 > t->cap) {
        size_t cap = t->cap > 0 ? t->cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *more = realloc(r->body, cap);
        if (more == NULL)
            return -1;
        r->body = more;
        t->cap = cap;
    }
    memcpy(r->body + r->body_len, p, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    transfer_t *t = arg;
    const me_s3_request_t *q = t->req;
    size_t len = size * n;
    long status = 0;

    curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &status);
    if (!success(status)) {
        size_t room = ME_S3_ERROR_BODY_MAX - t->resp->body_len;
        if (collect(t, p, len < room ? len : room, ME_S3_ERROR_BODY_MAX) != 0)
            return 0;
        return len;
    }
    if (q->buf == NULL) {
        if (collect(t, p, len, q->max_body) != 0) {
            t->overflow = 1;
            return 0;
        }
        return len;
    }
    size_t at = 0;
    if (status == 200 && t->skipped < q->skip) {
        uint64_t skip = q->skip - t->skipped;
        at = skip < len ? (size_t)skip : len;
        t->skipped += at;
    }
    size_t take = len - at;
    if (take > q->buf_len - t->resp->got) {
        t->overflow = 1;
        return 0;
    }
    memcpy((char *)q->buf + t->resp->got, p + at, take);
    t->resp->got += take;
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    transfer_t *t = arg;
    me_s3_response_t *r = t->resp;
    size_t len = size * n;
    char line[512];

    if (len >= sizeof(line))
        return len; /* no header we read is this long */
    memcpy(line, p, len);
    line[len] = '\0';
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        line[--len] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) { /* a new answer (after a 100 Continue): forget the last */
        r->etag[0] = '\0';
        r->content_length = 0;
        r->last_modified = 0;
        r->total_size = 0;
        return size * n;
    }
    char *colon = strchr(line, ':');
    if (colon == NULL)
        return size * n;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strcasecmp(line, "ETag") == 0) {
        size_t vl = strlen(v);
        if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"')
            snprintf(r->etag, sizeof(r->etag), "%.*s", (int)(vl - 2), v + 1);
        else
            snprintf(r->etag, sizeof(r->etag), "%s", v);
    } else if (strcasecmp(line, "Content-Length") == 0) {
        r->content_length = strtoull(v, NULL, 10);
    } else if (strcasecmp(line, "Last-Modified") == 0) {
        time_t tm = curl_getdate(v, NULL);
        r->last_modified = tm > 0 ? (int64_t)tm : 0;
    } else if (strcasecmp(line, "Content-Range") == 0) {
        const char *slash = strchr(v, '/');
        if (slash != NULL && slash[1] != '*')
            r->total_size = strtoull(slash + 1, NULL, 10);
    }
    return size * n;
}

/* The path as signed (raw) and as sent (encoded), and the URL. */
static int locate(const me_s3_client_t *c, const char *key, char *path, size_t plen, char *host, size_t hlen)
{
    int n;
    if (c->virtual_host)
        n = snprintf(path, plen, "/%s", key != NULL ? key : "");
    else
        n = key != NULL ? snprintf(path, plen, "/%s/%s", c->bucket, key) : snprintf(path, plen, "/%s", c->bucket);
    if (n < 0 || (size_t)n >= plen)
        return -1;
    n = c->virtual_host ? snprintf(host, hlen, "%s.%s", c->bucket, c->host) : snprintf(host, hlen, "%s", c->host);
    return n < 0 || (size_t)n >= hlen ? -1 : 0;
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[HEADER_LINE_MAX];
    int n = snprintf(line, sizeof(line), "%s: %s", name, value);
    struct curl_slist *more;
    if (n < 0 || (size_t)n >= sizeof(line))
        return -1;
    more = curl_slist_append(*list, line);
    OPENSSL_cleanse(line, (size_t)n);
    if (more == NULL)
        return -1;
    *list = more;
    return 0;
}

typedef enum { TRY_DONE, TRY_RETRY, TRY_FAILED } try_t;

static try_t try_once(me_s3_client_t *c, const me_s3_request_t *q, const char *payload_hash, me_s3_response_t *r,
                      int *err)
{
    me_sigv4_pair_t h[ME_S3_HEADERS_MAX + 8];
    char path[2048], epath[URL_MAX], query[URL_MAX], url[2 * URL_MAX], host[400], date[ME_SIGV4_DATE_LEN + 1],
        auth[1024];
    me_s3_credentials_t creds;
    struct curl_slist *hdrs = NULL;
    size_t nh = 0;
    try_t out = TRY_FAILED;
    CURL *handle = NULL;
    struct timespec t0, t1;

    *err = ME_EIO;
    if (q->nheaders > ME_S3_HEADERS_MAX || locate(c, q->key, path, sizeof(path), host, sizeof(host)) != 0 ||
        me_sigv4_encode(path, 1, epath, sizeof(epath)) < 0 ||
        me_sigv4_canonical_query(q->query, q->nquery, query, sizeof(query)) < 0) {
        *err = ME_EINVAL;
        return TRY_FAILED;
    }
    if (me_s3_creds_get(c->creds, &creds) != 0) {
        me_log_error(NULL, "s3: no valid credentials for %s", q->op);
        return TRY_FAILED;
    }
    me_sigv4_amz_date(time(NULL), date);
    h[nh++] = (me_sigv4_pair_t){"host", host};
    h[nh++] = (me_sigv4_pair_t){"x-amz-date", date};
    h[nh++] = (me_sigv4_pair_t){"x-amz-content-sha256", payload_hash};
    if (creds.token[0] != '\0')
        h[nh++] = (me_sigv4_pair_t){"x-amz-security-token", creds.token};
    if (q->sse && c->sse != ME_S3_SSE_NONE) {
        h[nh++] = (me_sigv4_pair_t){"x-amz-server-side-encryption", c->sse == ME_S3_SSE_KMS ? "aws:kms" : "AES256"};
        if (c->sse == ME_S3_SSE_KMS && c->kms_key != NULL)
            h[nh++] = (me_sigv4_pair_t){"x-amz-server-side-encryption-aws-kms-key-id", c->kms_key};
    }
    for (size_t i = 0; i < q->nheaders; i++)
        h[nh++] = q->headers[i];
    me_sigv4_request_t sr = {q->method, path, q->query, q->nquery, h, nh, payload_hash, c->region, "s3", date};
    me_sigv4_creds_t sc = {creds.access_key, creds.secret_key, creds.token};
    int signed_ok = me_sigv4_authorization(&sr, &sc, auth, sizeof(auth)) > 0;
    int have_type = 0;
    for (size_t i = 0; signed_ok && i < nh; i++) {
        have_type |= strcasecmp(h[i].name, "content-type") == 0;
        if (add_header(&hdrs, h[i].name, h[i].value) != 0)
            signed_ok = 0;
    }
    OPENSSL_cleanse(&creds, sizeof(creds));
    if (!signed_ok || add_header(&hdrs, "Authorization", auth) != 0 ||
        (!have_type && (hdrs = curl_slist_append(hdrs, "Content-Type:")) == NULL) ||
        (hdrs = curl_slist_append(hdrs, "Expect:")) == NULL || (hdrs = curl_slist_append(hdrs, "Accept:")) == NULL) {
        *err = signed_ok ? ME_ENOMEM : ME_EINVAL;
        goto out;
    }
    snprintf(url, sizeof(url), "%s://%s%s%s%s", c->scheme, host, epath, query[0] != '\0' ? "?" : "", query);

    if ((handle = take_handle(c)) == NULL) {
        *err = ME_ENOMEM;
        goto out;
    }
    curl_easy_reset(handle);
    transfer_t t = {handle, q, r, 0, 0, 0};
    free(r->body);
    *r = (me_s3_response_t){0};
    curl_easy_setopt(handle, CURLOPT_URL, url);
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(handle, CURLOPT_SHARE, c->share);
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(handle, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, &t);
    if (c->ca_file != NULL)
        curl_easy_setopt(handle, CURLOPT_CAINFO, c->ca_file);
    if (strcmp(q->method, "HEAD") == 0) {
        curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
    } else if (strcmp(q->method, "PUT") == 0 || strcmp(q->method, "POST") == 0) {
        curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->body_len);
        curl_easy_setopt(handle, CURLOPT_POSTFIELDS, q->body != NULL ? q->body : "");
        if (strcmp(q->method, "PUT") == 0)
            curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, "PUT");
    } else if (strcmp(q->method, "GET") != 0) {
        curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, q->method);
    }

    clock_gettime(CLOCK_MONOTONIC, &t0);
    CURLcode rc = curl_easy_perform(handle);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &r->status);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    char status[16];
    snprintf(status, sizeof(status), "%ld", r->status);
    const char *labels[] = {q->op, rc == CURLE_OK || t.overflow ? status : "error"};
    me_metric_add(s3_requests, labels, 1);
    me_metric_add(s3_duration, labels, secs);
    if (q->body_len > 0)
        me_metric_add(s3_bytes, (const char *[]){q->op, "out"}, (double)q->body_len);
    if (r->got + r->body_len > 0 && success(r->status))
        me_metric_add(s3_bytes, (const char *[]){q->op, "in"}, (double)(r->got + r->body_len));

    if (t.overflow) {
        me_log_error(NULL, "s3: %s %s: the answer is larger than expected", q->op, q->key != NULL ? q->key : "");
        goto out; /* TRY_FAILED, ME_EIO */
    }
    if (rc != CURLE_OK) {
        me_log_warn(NULL, "s3: %s %s: %s", q->op, q->key != NULL ? q->key : "", curl_easy_strerror(rc));
        r->status = 0;
        int not_sent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST;
        out = q->idempotent || not_sent ? TRY_RETRY : TRY_FAILED;
        /* a connection in an unknown state: do not reuse it */
        curl_easy_cleanup(handle);
        handle = NULL;
        goto out;
    }
    if (!success(r->status) && r->body != NULL)
        (void)!me_s3_xml_text(r->body, r->body_len, "Error/Code", r->code, sizeof(r->code));
    *err = 0;
    out = TRY_DONE;
    if (r->status == 503 || ((r->status == 500 || r->status == 502 || r->status == 504) && q->idempotent) ||
        (q->idempotent && strcmp(r->code, "RequestTimeout") == 0))
        out = TRY_RETRY;
out:
    if (handle != NULL)
        give_handle(c, handle);
    OPENSSL_cleanse(auth, sizeof(auth));
    curl_slist_free_all(hdrs); /* (their copies of the token and signature go with the list) */
    return out;
}

static void backoff(const me_s3_client_t *c, int attempt)
{
    uint64_t cap = c->retry_base, r = 0;
    for (int i = 0; i < attempt && cap < c->retry_max; i++)
        cap *= 2;
    if (cap > c->retry_max)
        cap = c->retry_max;
    if (getrandom(&r, sizeof(r), 0) != sizeof(r))
        r = (uint64_t)time(NULL);
    uint64_t ms = cap > 0 ? r % cap : 0;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int me_s3_request(me_s3_client_t *c, const me_s3_request_t *q, me_s3_response_t *r)
{
    char hash[65];
    int err = ME_EIO;

    *r = (me_s3_response_t){0};
    if (!c->sign_payload)
        snprintf(hash, sizeof(hash), "%s", ME_SIGV4_UNSIGNED_PAYLOAD);
    else if (q->body_len == 0)
        snprintf(hash, sizeof(hash), "%s", ME_SIGV4_EMPTY_SHA256);
    else
        me_sigv4_sha256_hex(q->body, q->body_len, hash);
    for (int attempt = 0;; attempt++) {
        try_t t = try_once(c, q, hash, r, &err);
        if (t != TRY_RETRY || attempt + 1 >= c->max_attempts)
            return t == TRY_DONE ? 0 : err; /* a retryable answer counts as one; no answer is err */
        me_metric_add(s3_retries, (const char *[]){q->op}, 1);
        backoff(c, attempt);
    }
}

void me_s3_response_free(me_s3_response_t *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}

int me_s3_failed(const char *op, const char *key, const me_s3_response_t *r)
{
    const char *reason = r->status == 0                                     ? "connection"
                         : r->status == 503 || !strcmp(r->code, "SlowDown") ? "throttled"
                         : r->status >= 500                                 ? "server"
                         : r->status == 403                                 ? "denied"
                                                                            : "client";
    me_metric_add(s3_errors, (const char *[]){op, reason}, 1);
    if (r->status == 404)
        return ME_ENOTFOUND;
    me_log_error(NULL, "s3: %s %s failed: %ld %s", op, key != NULL ? key : "", r->status,
                 r->code[0] != '\0' ? r->code : reason);
    return ME_EIO;
}

int me_s3_presign(me_s3_client_t *c, const char *method, const char *key, unsigned expires, char *out, size_t len)
{
    char path[2048], epath[URL_MAX], host[400], date[ME_SIGV4_DATE_LEN + 1], query[URL_MAX];
    me_s3_credentials_t creds;
    int ret = ME_EINVAL;

    if (len > 0)
        out[0] = '\0';
    if (locate(c, key, path, sizeof(path), host, sizeof(host)) != 0 ||
        me_sigv4_encode(path, 1, epath, sizeof(epath)) < 0)
        return ME_EINVAL;
    if (me_s3_creds_get(c->creds, &creds) != 0)
        return ME_EIO;
    me_sigv4_amz_date(time(NULL), date);
    me_sigv4_pair_t h = {"host", host};
    me_sigv4_request_t sr = {method, path, NULL, 0, &h, 1, ME_SIGV4_UNSIGNED_PAYLOAD, c->region, "s3", date};
    me_sigv4_creds_t sc = {creds.access_key, creds.secret_key, creds.token};
    if (me_sigv4_presign(&sr, &sc, expires, query, sizeof(query)) > 0) {
        int n = snprintf(out, len, "%s://%s%s?%s", c->scheme, host, epath, query);
        ret = n > 0 && (size_t)n < len ? 0 : ME_EINVAL;
        if (ret != 0 && len > 0)
            out[0] = '\0';
    }
    OPENSSL_cleanse(&creds, sizeof(creds));
    return ret;
}
