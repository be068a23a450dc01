/* storage_s3.c: the S3 backend: storage.h's operations as S3 requests (s3_client.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/core/log.h"
#include "server/storage/s3/s3_client.h"
#include "server/storage/s3/s3_config.h"
#include "server/storage/s3/s3_xml.h"
#include "server/storage/s3/storage_s3.h"

#define LIST_BODY_MAX (16 * 1024 * 1024) /* one page of a listing (1000 entries) */
#define SMALL_BODY_MAX (1024 * 1024)     /* other XML answers */
#define PARTS_MAX 10000

static const char *list_page = "1000"; /* keys per ListObjectsV2 page (S3's most); tests make it small */
static const char *parts_page = "1000"; /* parts per ListParts page (S3's most); tests make it small */

struct me_storage_backend {
    me_s3_client_t *s3;
    char bucket[64];
};

#define Q(n, v) ((me_sigv4_pair_t){n, v})

static int s3_status(const char *op, const char *key, me_s3_response_t *r, int ret)
{
    if (ret == 0 && (r->status < 200 || r->status >= 300))
        ret = me_s3_failed(op, key, r);
    else if (ret != 0)
        (void)me_s3_failed(op, key, r);
    me_s3_response_free(r);
    return ret;
}

static me_storage_backend_t *s3_open(const me_config_t *cfg, char *err, size_t errlen)
{
    const me_s3_settings_t *s = me_s3_settings(cfg);
    me_storage_backend_t *be = calloc(1, sizeof(*be));
    me_s3_response_t r;

    if (be == NULL) {
        snprintf(err, errlen, "storage.backend: out of memory");
        return NULL;
    }
    if (s->bucket == NULL || s->bucket[0] == '\0') {
        snprintf(err, errlen, "s3.bucket: required with storage.backend s3");
        goto fail;
    }
    snprintf(be->bucket, sizeof(be->bucket), "%s", s->bucket);
    if ((be->s3 = me_s3_client_new(s, err, errlen)) == NULL)
        goto fail;
    me_s3_request_t head = {.op = "head_bucket", .method = "HEAD", .idempotent = 1};
    if (me_s3_request(be->s3, &head, &r) != 0) {
        snprintf(err, errlen, "s3.endpoint: cannot reach the bucket %s (see the log)", be->bucket);
        goto fail;
    }
    me_s3_response_free(&r);
    if (r.status == 404 || r.status == 403 || r.status >= 300) {
        snprintf(err, errlen, "s3.bucket: %s answers %ld%s", be->bucket, r.status,
                 r.status == 404   ? " (no such bucket)"
                 : r.status == 403 ? " (access denied: check the credentials and the bucket policy)"
                                   : "");
        goto fail;
    }
    me_log_info(NULL, "storage: s3 bucket %s", be->bucket);
    return be;
fail:
    me_s3_client_free(be->s3);
    free(be);
    return NULL;
}

static void s3_close(me_storage_backend_t *be)
{
    if (be == NULL)
        return;
    me_s3_client_free(be->s3);
    free(be);
}

static int s3_put(me_storage_backend_t *be, const char *key, const void *data, size_t len)
{
    me_sigv4_pair_t h[] = {Q("Content-Type", "application/octet-stream")};
    me_s3_request_t q = {.op = "put",
                         .method = "PUT",
                         .key = key,
                         .headers = h,
                         .nheaders = 1,
                         .body = data,
                         .body_len = len,
                         .idempotent = 1,
                         .sse = 1,
                         .max_body = SMALL_BODY_MAX};
    me_s3_response_t r;
    return s3_status("put", key, &r, me_s3_request(be->s3, &q, &r));
}

static int s3_head(me_storage_backend_t *be, const char *key, me_storage_stat_t *out)
{
    me_s3_request_t q = {.op = "head", .method = "HEAD", .key = key, .idempotent = 1};
    me_s3_response_t r;
    int ret = me_s3_request(be->s3, &q, &r);

    if (ret == 0 && r.status == 200) {
        out->size = r.content_length;
        out->mtime = r.last_modified;
        snprintf(out->etag, sizeof(out->etag), "%s", r.etag);
    }
    if (ret == 0 && r.status == 404) {
        me_s3_response_free(&r);
        return ME_ENOTFOUND;
    }
    return s3_status("head", key, &r, ret);
}

static int s3_get(me_storage_backend_t *be, const char *key, uint64_t offset, size_t len, void *buf, size_t *got)
{
    char range[64];
    me_storage_stat_t st;
    me_s3_response_t r;
    int ret;

    if (len > 0) {
        uint64_t last = offset + (len - 1) < offset ? UINT64_MAX : offset + (len - 1);
        snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, offset, last);
        me_sigv4_pair_t h[] = {Q("Range", range)};
        me_s3_request_t q = {.op = "get",
                             .method = "GET",
                             .key = key,
                             .headers = h,
                             .nheaders = 1,
                             .idempotent = 1,
                             .buf = buf,
                             .buf_len = len,
                             .skip = offset};
        if ((ret = me_s3_request(be->s3, &q, &r)) != 0)
            return s3_status("get", key, &r, ret);
        if (r.status == 206 || r.status == 200) {
            *got = r.got;
            me_s3_response_free(&r);
            return 0;
        }
        if (r.status == 404) {
            me_s3_response_free(&r);
            return ME_ENOTFOUND;
        }
        if (r.status != 416)
            return s3_status("get", key, &r, 0);
        me_s3_response_free(&r);
    }
    /* nothing asked for, or a range past the end: the object's size says which */
    if ((ret = s3_head(be, key, &st)) != 0)
        return ret;
    if (offset > st.size)
        return ME_EINVAL;
    *got = 0;
    return 0;
}

static int s3_del(me_storage_backend_t *be, const char *key)
{
    me_s3_request_t q = {.op = "delete", .method = "DELETE", .key = key, .idempotent = 1};
    me_s3_response_t r;
    int ret = me_s3_request(be->s3, &q, &r);
    if (ret == 0 && r.status == 404) {
        me_s3_response_free(&r);
        return 0;
    }
    return s3_status("delete", key, &r, ret);
}

/* ---- listing ---- */

typedef struct {
    int (*cb)(const char *key, const me_storage_stat_t *stat, void *arg);
    void *arg;
} list_t;

static int listed(const me_s3_xml_entry_t *e, void *arg)
{
    list_t *l = arg;
    me_storage_stat_t st = {.size = e->size, .mtime = e->mtime > 0 ? e->mtime : 0};
    snprintf(st.etag, sizeof(st.etag), "%s", e->etag);
    if (!me_storage_key_valid(e->key))
        return 0; /* not ours (put there by someone else): no caller could name it */
    return l->cb(e->key, &st, l->arg);
}

static int s3_list(me_storage_backend_t *be, const char *prefix,
                   int (*cb)(const char *key, const me_storage_stat_t *stat, void *arg), void *arg)
{
    char token[1024] = "";
    list_t l = {cb, arg};

    for (;;) {
        me_sigv4_pair_t qs[4] = {Q("list-type", "2"), Q("prefix", prefix), Q("max-keys", list_page),
                                 Q("continuation-token", token)};
        me_s3_request_t q = {.op = "list",
                             .method = "GET",
                             .query = qs,
                             .nquery = token[0] != '\0' ? 4 : 3,
                             .idempotent = 1,
                             .max_body = LIST_BODY_MAX};
        me_s3_response_t r;
        int truncated = 0, ret = me_s3_request(be->s3, &q, &r);
        if (ret != 0 || r.status != 200)
            return s3_status("list", prefix, &r, ret);
        char next[1024];
        ret = me_s3_xml_list(r.body, r.body_len, 0, listed, &l, &truncated, next, sizeof(next));
        if (ret == ME_EIO)
            me_log_error(NULL, "s3: list %s: an answer that is not a listing", prefix);
        me_s3_response_free(&r);
        if (ret != 0)
            return ret;
        if (!truncated)
            return 0;
        if (next[0] == '\0') {
            me_log_error(NULL, "s3: list %s: truncated without a continuation token", prefix);
            return ME_EIO;
        }
        snprintf(token, sizeof(token), "%s", next);
    }
}

/* ---- multipart ---- */

static int s3_multipart_begin(me_storage_backend_t *be, const char *key, char *upload_id, size_t idlen)
{
    me_sigv4_pair_t qs[] = {Q("uploads", NULL)};
    me_sigv4_pair_t h[] = {Q("Content-Type", "application/octet-stream")};
    /* Retried like an idempotent request although it is not: a try whose answer was lost may
     * have begun an upload nobody holds the id of; the sweep aborts it (upload_orphans.c). */
    me_s3_request_t q = {.op = "create_multipart",
                         .method = "POST",
                         .key = key,
                         .query = qs,
                         .nquery = 1,
                         .headers = h,
                         .nheaders = 1,
                         .sse = 1,
                         .idempotent = 1,
                         .max_body = SMALL_BODY_MAX};
    me_s3_response_t r;
    char id[1024];
    int ret = me_s3_request(be->s3, &q, &r);

    if (ret != 0 || r.status != 200)
        return s3_status("create_multipart", key, &r, ret);
    ret = me_s3_xml_text(r.body, r.body_len, "InitiateMultipartUploadResult/UploadId", id, sizeof(id));
    me_s3_response_free(&r);
    if (ret != 0 || id[0] == '\0') {
        me_log_error(NULL, "s3: create_multipart %s: no UploadId in the answer", key);
        return ME_EIO;
    }
    if (strlen(id) >= idlen || strlen(id) > ME_STORAGE_UPLOAD_ID_MAX) {
        me_sigv4_pair_t aq[] = {Q("uploadId", id)};
        me_s3_request_t abort = {
            .op = "abort_multipart", .method = "DELETE", .key = key, .query = aq, .nquery = 1, .idempotent = 1};
        if (me_s3_request(be->s3, &abort, &r) == 0)
            me_s3_response_free(&r);
        return ME_EINVAL;
    }
    memcpy(upload_id, id, strlen(id) + 1);
    return 0;
}

static int upload_missing(const me_s3_response_t *r)
{
    return r->status == 404 || strcmp(r->code, "NoSuchUpload") == 0;
}

static int s3_part_put(me_storage_backend_t *be, const char *key, const char *upload_id, int number, const void *data,
                       size_t len, me_storage_part_t *out)
{
    char num[16];
    snprintf(num, sizeof(num), "%d", number);
    me_sigv4_pair_t qs[] = {Q("partNumber", num), Q("uploadId", upload_id)};
    me_s3_request_t q = {.op = "upload_part",
                         .method = "PUT",
                         .key = key,
                         .query = qs,
                         .nquery = 2,
                         .body = data,
                         .body_len = len,
                         .idempotent = 1,
                         .max_body = SMALL_BODY_MAX};
    me_s3_response_t r;
    int ret = me_s3_request(be->s3, &q, &r);

    if (ret == 0 && upload_missing(&r)) {
        me_s3_response_free(&r);
        return ME_ENOTFOUND;
    }
    if (ret == 0 && r.status == 200) {
        if (r.etag[0] == '\0' || strlen(r.etag) > ME_STORAGE_ETAG_MAX) {
            me_log_error(NULL, "s3: upload_part %s: no usable ETag in the answer", key);
            me_s3_response_free(&r);
            return ME_EIO;
        }
        out->number = number;
        out->size = len;
        snprintf(out->etag, sizeof(out->etag), "%s", r.etag);
    }
    return s3_status("upload_part", key, &r, ret);
}

/* ListParts, every page, each part to cb in ascending number order (S3's). */
typedef struct {
    int (*cb)(const me_storage_part_t *part, void *arg);
    void *arg;
    int last; /* the number listed last: S3 lists in order, anything else is no listing */
} parts_t;

static int part_listed(const me_s3_xml_entry_t *e, void *arg)
{
    parts_t *l = arg;
    me_storage_part_t p = {.number = e->number, .size = e->size};
    if (e->number <= l->last || e->number > PARTS_MAX || strlen(e->etag) > ME_STORAGE_ETAG_MAX)
        return ME_EIO;
    l->last = e->number;
    snprintf(p.etag, sizeof(p.etag), "%s", e->etag);
    return l->cb(&p, l->arg);
}

static int s3_part_list(me_storage_backend_t *be, const char *key, const char *upload_id, int after,
                        int (*cb)(const me_storage_part_t *part, void *arg), void *arg)
{
    char marker[32] = "";
    parts_t l = {cb, arg, after};
    if (after > 0)
        snprintf(marker, sizeof(marker), "%d", after);
    for (int pages = 0; pages < PARTS_MAX / 1000 + 2; pages++) {
        me_sigv4_pair_t qs[3] = {Q("uploadId", upload_id), Q("max-parts", parts_page), Q("part-number-marker", marker)};
        me_s3_request_t q = {.op = "list_parts",
                             .method = "GET",
                             .key = key,
                             .query = qs,
                             .nquery = marker[0] != '\0' ? 3 : 2,
                             .idempotent = 1,
                             .max_body = LIST_BODY_MAX};
        me_s3_response_t r;
        int truncated = 0, ret = me_s3_request(be->s3, &q, &r);
        if (ret == 0 && upload_missing(&r)) {
            me_s3_response_free(&r);
            return ME_ENOTFOUND;
        }
        if (ret != 0 || r.status != 200)
            return s3_status("list_parts", key, &r, ret);
        ret = me_s3_xml_list(r.body, r.body_len, 1, part_listed, &l, &truncated, marker, sizeof(marker));
        me_s3_response_free(&r);
        if (ret == ME_EIO)
            me_log_error(NULL, "s3: list_parts %s: an answer that is not a part listing", key);
        if (ret != 0)
            return ret;
        if (!truncated)
            return 0;
        if (marker[0] == '\0')
            return ME_EIO;
    }
    return ME_EIO;
}

/* parts[number] gets each listed part (number 0 there: not put) */
static int part_have(const me_storage_part_t *part, void *arg)
{
    ((me_storage_part_t *)arg)[part->number] = *part;
    return 0;
}

static int s3_multipart_complete(me_storage_backend_t *be, const char *key, const char *upload_id,
                                 const me_storage_part_t *parts, int nparts)
{
    me_storage_part_t *have = calloc(PARTS_MAX + 1, sizeof(*have));
    size_t cap = (size_t)nparts * (ME_STORAGE_ETAG_MAX + 96) + 128, len = 0;
    char *xml = malloc(cap);
    int ret = ME_ENOMEM;

    if (have == NULL || xml == NULL)
        goto out;
    if ((ret = s3_part_list(be, key, upload_id, 0, part_have, have)) != 0)
        goto out;
    /* S3 checks etags only; storage.h promises sizes too */
    for (int i = 0; i < nparts; i++) {
        const me_storage_part_t *p = &parts[i], *h = &have[p->number];
        if (h->number != p->number || h->size != p->size || strcmp(h->etag, p->etag) != 0) {
            ret = ME_ECONFLICT;
            goto out;
        }
    }
    len = (size_t)snprintf(xml, cap, "<CompleteMultipartUpload>");
    for (int i = 0; i < nparts; i++)
        len += (size_t)snprintf(xml + len, cap - len, "<Part><PartNumber>%d</PartNumber><ETag>\"%s\"</ETag></Part>",
                                parts[i].number, parts[i].etag);
    len += (size_t)snprintf(xml + len, cap - len, "</CompleteMultipartUpload>");

    me_sigv4_pair_t qs[] = {Q("uploadId", upload_id)};
    me_sigv4_pair_t h[] = {Q("Content-Type", "application/xml")};
    me_s3_request_t q = {.op = "complete_multipart",
                         .method = "POST",
                         .key = key,
                         .query = qs,
                         .nquery = 1,
                         .headers = h,
                         .nheaders = 1,
                         .body = xml,
                         .body_len = len,
                         .max_body = SMALL_BODY_MAX};
    /* A 200 may still carry an Error (S3 answers at once and finishes later): InternalError and
     * SlowDown there mean "not completed, try again". */
    for (int attempt = 0; attempt < 3; attempt++) {
        me_s3_response_t r;
        char root[64] = "", code[64] = "";
        if ((ret = me_s3_request(be->s3, &q, &r)) != 0) {
            ret = s3_status("complete_multipart", key, &r, ret);
            goto out;
        }
        if (r.status == 200 && me_s3_xml_root(r.body, r.body_len, root, sizeof(root)) == 0 &&
            strcmp(root, "Error") == 0) {
            (void)!me_s3_xml_text(r.body, r.body_len, "Error/Code", code, sizeof(code));
            snprintf(r.code, sizeof(r.code), "%s", code);
            r.status = 500;
        }
        if (r.status == 200) {
            me_s3_response_free(&r);
            ret = 0;
            goto out;
        }
        if (upload_missing(&r)) {
            ret = ME_ENOTFOUND;
        } else if (!strcmp(r.code, "InvalidPart") || !strcmp(r.code, "InvalidPartOrder") ||
                   !strcmp(r.code, "EntityTooSmall")) {
            ret = ME_ECONFLICT;
        } else if (r.status == 500 && (!strcmp(r.code, "InternalError") || !strcmp(r.code, "SlowDown"))) {
            me_s3_response_free(&r);
            continue;
        } else {
            ret = me_s3_failed("complete_multipart", key, &r);
        }
        me_s3_response_free(&r);
        goto out;
    }
    ret = ME_EIO;
out:
    free(have);
    free(xml);
    return ret;
}

static int s3_multipart_abort(me_storage_backend_t *be, const char *key, const char *upload_id)
{
    me_sigv4_pair_t qs[] = {Q("uploadId", upload_id)};
    me_s3_request_t q = {.op = "abort_multipart",
                         .method = "DELETE",
                         .key = key,
                         .query = qs,
                         .nquery = 1,
                         .idempotent = 1,
                         .max_body = SMALL_BODY_MAX};
    me_s3_response_t r;
    int ret = me_s3_request(be->s3, &q, &r);
    if (ret == 0 && upload_missing(&r)) {
        me_s3_response_free(&r);
        return 0;
    }
    return s3_status("abort_multipart", key, &r, ret);
}

/* UploadPartCopy: the range is copied inside S3 (x-amz-copy-source-range). */
static int s3_part_copy(me_storage_backend_t *be, const char *key, const char *upload_id, int number, const char *src,
                        uint64_t offset, uint64_t len, me_storage_part_t *out)
{
    char num[16], source[ME_STORAGE_KEY_MAX * 3 + 80], raw[ME_STORAGE_KEY_MAX + 70], range[64], etag[256] = "";
    me_s3_response_t r;
    int ret;

    /* S3 refuses a range past the source's end, but not every S3 API does (Swift copies what
     * there is): the source's size decides, the same everywhere */
    me_storage_stat_t st;
    if ((ret = s3_head(be, src, &st)) != 0)
        return ret;
    if (offset + len > st.size)
        return ME_EINVAL;
    snprintf(num, sizeof(num), "%d", number);
    snprintf(raw, sizeof(raw), "/%s/%s", be->bucket, src);
    if (me_sigv4_encode(raw, 1, source, sizeof(source)) < 0)
        return ME_EINVAL;
    snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, offset, offset + len - 1);
    me_sigv4_pair_t qs[] = {Q("partNumber", num), Q("uploadId", upload_id)};
    me_sigv4_pair_t h[] = {Q("x-amz-copy-source", source), Q("x-amz-copy-source-range", range)};
    me_s3_request_t q = {.op = "upload_part_copy",
                         .method = "PUT",
                         .key = key,
                         .query = qs,
                         .nquery = 2,
                         .headers = h,
                         .nheaders = 2,
                         .idempotent = 1,
                         .max_body = SMALL_BODY_MAX};
    if ((ret = me_s3_request(be->s3, &q, &r)) != 0)
        return s3_status("upload_part_copy", key, &r, ret);
    if (r.status == 200) { /* may still be an Error, sent once the copy failed */
        char root[64] = "";
        if (me_s3_xml_root(r.body, r.body_len, root, sizeof(root)) == 0 && strcmp(root, "Error") == 0) {
            (void)!me_s3_xml_text(r.body, r.body_len, "Error/Code", r.code, sizeof(r.code));
            r.status = 500;
        } else if (me_s3_xml_text(r.body, r.body_len, "CopyPartResult/ETag", etag, sizeof(etag)) != 0) {
            me_log_error(NULL, "s3: upload_part_copy %s: no ETag in the answer", key);
            me_s3_response_free(&r);
            return ME_EIO;
        }
    }
    if (r.status == 200) {
        size_t n = strlen(etag);
        if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"')
            memmove(etag, etag + 1, n -= 2), etag[n] = '\0';
        if (n == 0 || n > ME_STORAGE_ETAG_MAX) {
            me_s3_response_free(&r);
            return ME_EIO;
        }
        out->number = number;
        out->size = len;
        memcpy(out->etag, etag, n + 1);
        me_s3_response_free(&r);
        return 0;
    }
    if (r.status == 416 || !strcmp(r.code, "InvalidRange") || !strcmp(r.code, "InvalidArgument"))
        ret = ME_EINVAL;
    else if (upload_missing(&r) || !strcmp(r.code, "NoSuchKey"))
        ret = ME_ENOTFOUND;
    else
        ret = me_s3_failed("upload_part_copy", key, &r);
    me_s3_response_free(&r);
    return ret;
}

/* ListMultipartUploads, every page. */
typedef struct {
    int (*cb)(const char *key, const char *upload_id, int64_t initiated, void *arg);
    void *arg;
} uploads_t;

static int upload_listed(const me_s3_xml_upload_t *e, void *arg)
{
    uploads_t *l = arg;
    if (!me_storage_key_valid(e->key) || strlen(e->upload_id) > ME_STORAGE_UPLOAD_ID_MAX)
        return 0; /* not ours: no caller could name it */
    return l->cb(e->key, e->upload_id, e->initiated, l->arg);
}

static int s3_multipart_list(me_storage_backend_t *be, const char *prefix,
                             int (*cb)(const char *key, const char *upload_id, int64_t initiated, void *arg), void *arg)
{
    char key_marker[1024] = "", id_marker[1024] = "";
    uploads_t l = {cb, arg};

    for (;;) {
        me_sigv4_pair_t qs[5] = {Q("uploads", NULL), Q("prefix", prefix), Q("max-uploads", "1000"),
                                 Q("key-marker", key_marker), Q("upload-id-marker", id_marker)};
        me_s3_request_t q = {.op = "list_multipart",
                             .method = "GET",
                             .query = qs,
                             .nquery = key_marker[0] != '\0' ? (id_marker[0] != '\0' ? 5 : 4) : 3,
                             .idempotent = 1,
                             .max_body = LIST_BODY_MAX};
        me_s3_response_t r;
        int truncated = 0, ret = me_s3_request(be->s3, &q, &r);
        if (ret != 0 || r.status != 200)
            return s3_status("list_multipart", prefix, &r, ret);
        ret = me_s3_xml_uploads(r.body, r.body_len, upload_listed, &l, &truncated, key_marker, sizeof(key_marker),
                                id_marker, sizeof(id_marker));
        if (ret == ME_EIO)
            me_log_error(NULL, "s3: list_multipart %s: an answer that is not a listing", prefix);
        me_s3_response_free(&r);
        if (ret != 0)
            return ret;
        if (!truncated)
            return 0;
        if (key_marker[0] == '\0') {
            me_log_error(NULL, "s3: list_multipart %s: truncated without a marker", prefix);
            return ME_EIO;
        }
    }
}

const me_storage_ops_t me_storage_s3_ops = {
    .min_part_size = ME_S3_MIN_PART_SIZE,
    .parts_in_any_order = 1,
    .open = s3_open,
    .close = s3_close,
    .put = s3_put,
    .get = s3_get,
    .head = s3_head,
    .del = s3_del,
    .list = s3_list,
    .multipart_begin = s3_multipart_begin,
    .part_put = s3_part_put,
    .multipart_complete = s3_multipart_complete,
    .multipart_abort = s3_multipart_abort,
    .part_copy = s3_part_copy,
    .part_list = s3_part_list,
    .multipart_list = s3_multipart_list,
};
