/* serve.c: the origin's objects looked up through manifests, and its answers to ranges and
 * conditional requests. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <h2o.h>
#include "server/delivery/serve.h"
#include "server/media/manifest.h"
#include "server/storage/layout.h"

/* "type/subtype" of lower-case letters, digits and ".+-": what goes into Content-Type. */
static int content_type_ok(const char *t)
{
    const char *slash = t != NULL ? strchr(t, '/') : NULL;
    size_t n = t != NULL ? strlen(t) : 0;
    return slash != NULL && slash != t && slash[1] != '\0' && n <= ME_DELIVERY_TYPE_MAX &&
           strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789/.+-") == n;
}

int me_delivery_resolve(me_storage_t *st, const char *album, const char *media_id, const char *file,
                        int allow_original, me_delivery_object_t *out)
{
    json_t *m = NULL;
    me_storage_stat_t stat;
    const char *type = NULL;
    int ret = me_manifest_load(st, media_id, &m);

    memset(out, 0, sizeof(*out));
    if (ret != 0) {
        ret = ret == ME_ENOTFOUND || ret == ME_EINVAL ? ME_ENOTFOUND : ME_EIO;
        goto exit;
    }
    ret = ME_ENOTFOUND;
    if (me_manifest_album(m) == NULL || strcmp(me_manifest_album(m), album) != 0)
        goto exit; /* the same id under another album is not this resource */
    if (strcmp(file, "original") == 0) {
        if (!allow_original || me_layout_original(out->key, sizeof(out->key), album, media_id) != 0)
            goto exit;
        type = json_string_value(json_object_get(json_object_get(m, "original"), "content_type"));
        out->is_original = 1;
    } else {
        const char *status = me_manifest_status(m), *dot = strrchr(file, '.');
        char name[ME_STORAGE_KEY_MAX];
        const json_t *entry = json_object_get(json_object_get(m, "variants"), file);
        if (status == NULL || strcmp(status, "ready") != 0 || entry == NULL || dot == NULL)
            goto exit;
        snprintf(name, sizeof(name), "%.*s", (int)(dot - file), file);
        if (me_layout_variant(out->key, sizeof(out->key), album, media_id, name, dot + 1) != 0)
            goto exit;
        type = json_string_value(json_object_get(entry, "content_type"));
    }
    /* what a pipeline recorded, but it goes into a header: anything odd is served as bytes */
    snprintf(out->content_type, sizeof(out->content_type), "%s",
             content_type_ok(type) ? type : "application/octet-stream");
    if ((ret = me_storage_head(st, out->key, &stat)) != 0) {
        ret = ret == ME_ENOTFOUND || ret == ME_EINVAL ? ME_ENOTFOUND : ME_EIO;
        goto exit;
    }
    out->size = stat.size;
    out->mtime = stat.mtime;
    snprintf(out->etag, sizeof(out->etag), "\"%s\"", stat.etag);
exit:
    json_decref(m);
    return ret;
}

/* ---- ranges and conditions ---- */

static const char *skip_ows(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* A decimal of at most 19 digits at *p (advanced past it); 0 when none. */
static int number(const char **p, const char *end, uint64_t *out)
{
    const char *s = *p;
    uint64_t n = 0;
    while (*p < end && **p >= '0' && **p <= '9' && *p - s < 19)
        n = n * 10 + (uint64_t)(*(*p)++ - '0');
    *out = n;
    return *p > s && (*p == end || **p < '0' || **p > '9');
}

int me_delivery_etag_matches(const char *v, size_t len, const char *etag)
{
    const char *p = v, *end = v + len;
    size_t elen = strlen(etag);
    while ((p = skip_ows(p, end)) < end) {
        if (*p == '*')
            return 1;
        if (end - p > 2 && p[0] == 'W' && p[1] == '/')
            p += 2;
        const char *q = p < end && *p == '"' ? memchr(p + 1, '"', (size_t)(end - p - 1)) : NULL;
        if (q == NULL)
            return 0; /* malformed: no match, so the full answer goes */
        if ((size_t)(q + 1 - p) == elen && memcmp(p, etag, elen) == 0)
            return 1;
        p = skip_ows(q + 1, end);
        if (p < end && *p != ',')
            return 0;
        p++;
    }
    return 0;
}

/* 1 when If-Range lets the range apply: the same strong etag, or the exact Last-Modified. */
static int if_range_holds(const char *v, size_t len, const char *etag, int64_t mtime)
{
    struct tm tm;
    if (len > 0 && v[0] == '"')
        return len == strlen(etag) && memcmp(v, etag, len) == 0; /* W/ never matches: strong */
    if (h2o_time_parse_rfc1123(v, len, &tm) != 0)
        return 0;
    return (int64_t)timegm(&tm) == mtime;
}

me_delivery_plan_t me_delivery_plan(uint64_t size, const char *etag, int64_t mtime, const char *range, size_t range_len,
                                    const char *if_none_match, size_t inm_len, const char *if_range, size_t ir_len)
{
    me_delivery_plan_t full = {.status = 200, .offset = 0, .length = size};
    if (if_none_match != NULL && me_delivery_etag_matches(if_none_match, inm_len, etag))
        return (me_delivery_plan_t){.status = 304};
    if (range == NULL || (if_range != NULL && !if_range_holds(if_range, ir_len, etag, mtime)))
        return full;
    const char *p = range, *end = range + range_len;
    uint64_t first, last;
    if (range_len < 7 || strncasecmp(p, "bytes=", 6) != 0)
        return full;
    p = skip_ows(p + 6, end);
    if (p < end && *p == '-') { /* the last n bytes */
        p++;
        if (!number(&p, end, &last) || skip_ows(p, end) != end)
            return full;
        if (last == 0 || size == 0)
            return (me_delivery_plan_t){.status = 416};
        first = last >= size ? 0 : size - last;
        return (me_delivery_plan_t){.status = 206, .offset = first, .length = size - first};
    }
    if (!number(&p, end, &first) || p == end || *p != '-')
        return full;
    p++;
    int open = skip_ows(p, end) == end;
    if (!open && (!number(&p, end, &last) || skip_ows(p, end) != end || last < first))
        return full; /* also "a-b,c-d": several ranges are ignored */
    if (first >= size)
        return (me_delivery_plan_t){.status = 416};
    if (open || last >= size)
        last = size - 1;
    return (me_delivery_plan_t){.status = 206, .offset = first, .length = last - first + 1};
}
