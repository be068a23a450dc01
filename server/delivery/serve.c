/* serve.c: the origin's objects looked up through manifests, and its answers to ranges and
 * conditional requests. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <h2o.h>
#include "server/core/clock.h"
#include "server/delivery/delivery.h"
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

#define OBJECT_LOCKS 16
#define ID_MAX 64

/* One answer of a manifest: file of media_id is in album, of content_type, while the manifest
 * is the object of manifest_etag (ok 0: the manifest does not serve it). */
typedef struct {
    char media_id[ID_MAX + 1], album[ID_MAX + 1], file[ME_DELIVERY_FILE_MAX + 1];
    char manifest_etag[ME_STORAGE_ETAG_MAX + 1];
    char content_type[ME_DELIVERY_TYPE_MAX + 1];
    int ok, used;
} object_slot_t;

struct me_delivery_objects {
    me_storage_t *st;
    object_slot_t *slots;
    size_t n;
    pthread_mutex_t locks[OBJECT_LOCKS];
    _Atomic uint64_t parsed;
};

me_delivery_objects_t *me_delivery_objects_new(me_storage_t *st, int entries)
{
    me_delivery_objects_t *o = calloc(1, sizeof(*o));
    if (o == NULL || (entries > 0 && (o->slots = calloc((size_t)entries, sizeof(*o->slots))) == NULL)) {
        free(o);
        return NULL;
    }
    o->st = st;
    o->n = entries > 0 ? (size_t)entries : 0;
    for (int i = 0; i < OBJECT_LOCKS; i++)
        pthread_mutex_init(&o->locks[i], NULL);
    return o;
}

void me_delivery_objects_free(me_delivery_objects_t *o)
{
    if (o == NULL)
        return;
    for (int i = 0; i < OBJECT_LOCKS; i++)
        pthread_mutex_destroy(&o->locks[i]);
    free(o->slots);
    free(o);
}

uint64_t me_delivery_objects_parsed(const me_delivery_objects_t *o)
{
    return atomic_load(&((me_delivery_objects_t *)o)->parsed);
}

static size_t object_slot(const me_delivery_objects_t *o, const char *id, const char *file)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a over "<id>/<file>" */
    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ '/') * 1099511628211ULL;
    for (const char *p = file; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (size_t)(h % o->n);
}

/* The remembered answer for (id, file) under this manifest: 1 with s copied, 0 when none. */
static int remembered(me_delivery_objects_t *o, const char *id, const char *file, const char *manifest_etag,
                      object_slot_t *s)
{
    if (o->n == 0)
        return 0;
    size_t i = object_slot(o, id, file);
    pthread_mutex_t *lock = &o->locks[i % OBJECT_LOCKS];
    pthread_mutex_lock(lock);
    const object_slot_t *slot = &o->slots[i];
    int hit = slot->used && !strcmp(slot->media_id, id) && !strcmp(slot->file, file) &&
              !strcmp(slot->manifest_etag, manifest_etag);
    if (hit)
        *s = *slot;
    pthread_mutex_unlock(lock);
    return hit;
}

static void remember(me_delivery_objects_t *o, const object_slot_t *s)
{
    if (o->n == 0)
        return;
    size_t i = object_slot(o, s->media_id, s->file);
    pthread_mutex_t *lock = &o->locks[i % OBJECT_LOCKS];
    pthread_mutex_lock(lock);
    o->slots[i] = *s;
    o->slots[i].used = 1;
    pthread_mutex_unlock(lock);
}

/* What manifest m (of album) says of file: s->ok and its content type. */
static void read_manifest(const json_t *m, const char *file, int allow_original, object_slot_t *s)
{
    const char *type = NULL, *status = me_manifest_status(m);
    snprintf(s->album, sizeof(s->album), "%s", me_manifest_album(m) != NULL ? me_manifest_album(m) : "");
    if (strcmp(file, ME_DELIVERY_ORIGINAL) == 0) {
        s->ok = allow_original;
        type = json_string_value(json_object_get(json_object_get(m, "original"), "content_type"));
    } else {
        const json_t *entry = json_object_get(json_object_get(m, "variants"), file);
        s->ok = status != NULL && strcmp(status, "ready") == 0 && entry != NULL;
        type = json_string_value(json_object_get(entry, "content_type"));
    }
    /* what a pipeline recorded, but it goes into a header: anything odd is served as bytes */
    snprintf(s->content_type, sizeof(s->content_type), "%s",
             content_type_ok(type) ? type : "application/octet-stream");
}

int me_delivery_resolve(me_delivery_objects_t *o, const char *album, const char *media_id, const char *file,
                        int allow_original, me_delivery_object_t *out)
{
    char key[ME_STORAGE_KEY_MAX + 1];
    me_storage_stat_t manifest, stat;
    object_slot_t s = {0};
    json_t *m = NULL;
    int ret;

    memset(out, 0, sizeof(*out));
    if (strlen(media_id) > ID_MAX || strlen(file) > ME_DELIVERY_FILE_MAX ||
        me_layout_manifest(key, sizeof(key), media_id) != 0)
        return ME_ENOTFOUND;
    if ((ret = me_storage_head(o->st, key, &manifest)) != 0)
        return ret == ME_ENOTFOUND || ret == ME_EINVAL ? ME_ENOTFOUND : ME_EIO;
    if (!remembered(o, media_id, file, manifest.etag, &s)) {
        /* read after the stat: a manifest replaced in between is remembered under the older
         * etag, and read again at the next request, never served stale */
        if ((ret = me_manifest_load(o->st, media_id, &m)) != 0)
            return ret == ME_ENOTFOUND || ret == ME_EINVAL ? ME_ENOTFOUND : ME_EIO;
        atomic_fetch_add(&o->parsed, 1);
        snprintf(s.media_id, sizeof(s.media_id), "%s", media_id);
        snprintf(s.file, sizeof(s.file), "%s", file);
        snprintf(s.manifest_etag, sizeof(s.manifest_etag), "%s", manifest.etag);
        read_manifest(m, file, allow_original, &s);
        json_decref(m);
        remember(o, &s);
    }
    /* the same id under another album is not this resource */
    if (!s.ok || strcmp(s.album, album) != 0)
        return ME_ENOTFOUND;
    if (strcmp(file, ME_DELIVERY_ORIGINAL) == 0) {
        out->is_original = 1;
        ret = me_layout_original(out->key, sizeof(out->key), album, media_id);
    } else {
        const char *dot = strrchr(file, '.');
        char name[ME_DELIVERY_FILE_MAX + 1];
        snprintf(name, sizeof(name), "%.*s", dot != NULL ? (int)(dot - file) : 0, file);
        ret = dot != NULL ? me_layout_variant(out->key, sizeof(out->key), album, media_id, name, dot + 1) : ME_EINVAL;
    }
    if (ret != 0)
        return ME_ENOTFOUND;
    memcpy(out->content_type, s.content_type, sizeof(out->content_type));
    if ((ret = me_storage_head(o->st, out->key, &stat)) != 0)
        return ret == ME_ENOTFOUND || ret == ME_EINVAL ? ME_ENOTFOUND : ME_EIO;
    out->size = stat.size;
    out->mtime = stat.mtime;
    snprintf(out->etag, sizeof(out->etag), "\"%s\"", stat.etag);
    return 0;
}

/* ---- chunk buffers ---- */

struct me_delivery_buffers {
    pthread_mutex_t lock;
    size_t size;
    int idle_max, nidle, mapped;
    int low;          /* the fewest idle buffers since the last trim: never needed meanwhile */
    int64_t trimmed;  /* ms (monotonic) of the last trim */
    void *idle;       /* a list threaded through the buffers' first bytes */
};

#define TRIM_EVERY_MS 1000

me_delivery_buffers_t *me_delivery_buffers_new(size_t size, int idle_max)
{
    me_delivery_buffers_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    pthread_mutex_init(&b->lock, NULL);
    b->size = size < sizeof(void *) ? sizeof(void *) : size;
    b->idle_max = idle_max;
    b->trimmed = me_clock_mono_ms();
    return b;
}

static void unmap_list(void *list, size_t size)
{
    while (list != NULL) {
        void *next = *(void **)list;
        munmap(list, size);
        list = next;
    }
}

void me_delivery_buffers_free(me_delivery_buffers_t *b)
{
    if (b == NULL)
        return;
    unmap_list(b->idle, b->size);
    pthread_mutex_destroy(&b->lock);
    free(b);
}

/* Under b's lock, once a second: the buffers that stayed idle all along (the low-water mark)
 * were not needed; they come off the list, for the caller to unmap outside the lock. Under
 * steady load none are, so buffers are not mapped and unmapped again and again; after a
 * burst they go within a second or two of activity. */
static void *trim(me_delivery_buffers_t *b, int64_t now)
{
    void *list = NULL;
    if (now - b->trimmed < TRIM_EVERY_MS)
        return NULL;
    for (int n = b->low; n > 0 && b->idle != NULL; n--) {
        void *p = b->idle;
        b->idle = *(void **)p;
        *(void **)p = list;
        list = p;
        b->nidle--, b->mapped--;
    }
    b->low = b->nidle;
    b->trimmed = now;
    return list;
}

void *me_delivery_buffer_get(me_delivery_buffers_t *b)
{
    int64_t now = me_clock_mono_ms();
    pthread_mutex_lock(&b->lock);
    void *p = b->idle;
    if (p != NULL) {
        b->idle = *(void **)p;
        if (--b->nidle < b->low)
            b->low = b->nidle;
    }
    void *gone = trim(b, now);
    pthread_mutex_unlock(&b->lock);
    unmap_list(gone, b->size);
    if (p != NULL)
        return p;
    /* mapped, not malloc'd: unmapping gives the pages back to the system at once */
    p = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    pthread_mutex_lock(&b->lock);
    b->mapped++;
    pthread_mutex_unlock(&b->lock);
    return p;
}

void me_delivery_buffer_put(me_delivery_buffers_t *b, void *p)
{
    if (p == NULL)
        return;
    int64_t now = me_clock_mono_ms();
    pthread_mutex_lock(&b->lock);
    int keep = b->nidle < b->idle_max;
    if (keep) {
        *(void **)p = b->idle;
        b->idle = p;
        b->nidle++;
    } else {
        b->mapped--;
    }
    void *gone = trim(b, now);
    pthread_mutex_unlock(&b->lock);
    if (!keep)
        munmap(p, b->size);
    unmap_list(gone, b->size);
}

size_t me_delivery_buffers_size(const me_delivery_buffers_t *b)
{
    return b->size;
}

int me_delivery_buffers_mapped(const me_delivery_buffers_t *b)
{
    pthread_mutex_lock(&((me_delivery_buffers_t *)b)->lock);
    int n = b->mapped;
    pthread_mutex_unlock(&((me_delivery_buffers_t *)b)->lock);
    return n;
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
