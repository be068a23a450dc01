/* layout.c: storage keys of uploads, originals, manifests, jobs, variants, webhooks and tombstones. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "server/storage/layout.h"
#include "server/storage/storage.h"

static int format(char *key, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int format(char *key, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(key, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len || !me_storage_key_valid(key)) {
        if (len > 0)
            key[0] = '\0';
        return ME_EINVAL;
    }
    return 0;
}

int me_layout_upload_info(char *key, size_t len, const char *upload_id)
{
    return format(key, len, ME_LAYOUT_UPLOADS "%s.info", upload_id);
}

int me_layout_upload_piece(char *key, size_t len, const char *upload_id, uint64_t offset)
{
    return format(key, len, ME_LAYOUT_UPLOADS "%s/piece-%020" PRIu64, upload_id, offset);
}

int me_layout_upload_piece_offset(const char *key, const char *upload_id, uint64_t *offset)
{
    char want[ME_STORAGE_KEY_MAX];
    uint64_t v = 0;
    int n = snprintf(want, sizeof(want), ME_LAYOUT_UPLOADS "%s/piece-", upload_id);
    if (n < 0 || (size_t)n >= sizeof(want) || strncmp(key, want, (size_t)n) != 0 || strlen(key + n) != 20)
        return 0;
    for (const char *c = key + n; *c != '\0'; c++) {
        if (*c < '0' || *c > '9' || v > (UINT64_MAX - (uint64_t)(*c - '0')) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    *offset = v;
    return 1;
}

int me_layout_upload_data(char *key, size_t len, const char *upload_id)
{
    return format(key, len, ME_LAYOUT_UPLOADS "%s/data", upload_id);
}

/* A listing prefix of one or two ids under dir; a prefix, not a key: its trailing '/' would
 * fail the key check, so each id is checked as a segment. */
static int prefix_of(char *prefix, size_t len, const char *dir, const char *a, const char *b)
{
    int n = b != NULL ? snprintf(prefix, len, "%s%s/%s/", dir, a, b) : snprintf(prefix, len, "%s%s/", dir, a);
    int bad = n < 0 || (size_t)n >= len || strchr(a, '/') != NULL || a[0] == '.' || a[0] == '\0' ||
              (b != NULL && (strchr(b, '/') != NULL || b[0] == '.' || b[0] == '\0'));
    if (bad && len > 0)
        prefix[0] = '\0';
    return bad ? ME_EINVAL : 0;
}

int me_layout_upload_objects(char *prefix, size_t len, const char *upload_id)
{
    return prefix_of(prefix, len, ME_LAYOUT_UPLOADS, upload_id, NULL);
}

int me_layout_media_variants(char *prefix, size_t len, const char *album, const char *media_id)
{
    return prefix_of(prefix, len, "variants/", album, media_id);
}

int me_layout_album_originals(char *prefix, size_t len, const char *album)
{
    return prefix_of(prefix, len, "originals/", album, NULL);
}

int me_layout_album_variants(char *prefix, size_t len, const char *album)
{
    return prefix_of(prefix, len, "variants/", album, NULL);
}

int me_layout_original(char *key, size_t len, const char *album, const char *media_id)
{
    if (strchr(album, '/') != NULL || strchr(media_id, '/') != NULL)
        return ME_EINVAL;
    return format(key, len, "originals/%s/%s", album, media_id);
}

int me_layout_manifest(char *key, size_t len, const char *media_id)
{
    return format(key, len, ME_LAYOUT_MANIFESTS "%s.json", media_id);
}

int me_layout_job(char *key, size_t len, const char *media_id)
{
    return format(key, len, ME_LAYOUT_JOBS "%s.json", media_id);
}

int me_layout_variant(char *key, size_t len, const char *album, const char *media_id, const char *name,
                      const char *ext)
{
    if (strchr(album, '/') != NULL || strchr(media_id, '/') != NULL || strchr(name, '/') != NULL ||
        strchr(ext, '/') != NULL)
        return ME_EINVAL;
    return format(key, len, "variants/%s/%s/%s.%s", album, media_id, name, ext);
}

int me_layout_webhook(char *key, size_t len, const char *event_id)
{
    return format(key, len, ME_LAYOUT_WEBHOOKS "%s.json", event_id);
}

int me_layout_tombstone(char *key, size_t len, const char *media_id)
{
    return format(key, len, ME_LAYOUT_TOMBSTONES "%s.json", media_id);
}

int me_layout_deletion(char *key, size_t len, const char *media_id)
{
    return format(key, len, ME_LAYOUT_DELETIONS "%s.json", media_id);
}

int me_layout_doc_id(const char *key, const char *prefix, const char *suffix, char *id, size_t idlen)
{
    size_t plen = strlen(prefix), slen = strlen(suffix), klen = strlen(key);
    if (klen <= plen + slen || strncmp(key, prefix, plen) != 0 || strcmp(key + klen - slen, suffix) != 0)
        return 0;
    size_t n = klen - plen - slen;
    if (n >= idlen || memchr(key + plen, '/', n) != NULL)
        return 0;
    memcpy(id, key + plen, n);
    id[n] = '\0';
    return 1;
}
