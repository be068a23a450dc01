/* hot.c: the origin's cache of small objects: a hash table of paths over a list in order of
 * use, under one lock (each operation is a few comparisons; the bytes are never copied under
 * it), and reference-counted blobs. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/delivery/delivery.h"
#include "server/delivery/hot.h"

#define PATH_MAX_LEN (64 + 1 + 64 + 1 + ME_DELIVERY_FILE_MAX)

struct me_delivery_blob {
    atomic_int refs;
    size_t size;
    unsigned char data[];
};

typedef struct entry {
    struct entry *next;          /* in its bucket */
    struct entry *newer, *older; /* in the order of use */
    uint64_t hash;
    char path[PATH_MAX_LEN + 1]; /* "<album>/<media-id>/<file>" */
    size_t album_len, media_len;
    me_delivery_object_t obj;
    me_delivery_blob_t *blob;
    int64_t confirmed; /* ms (monotonic) */
} entry_t;

struct me_delivery_hot {
    pthread_mutex_t lock;
    size_t max_bytes, object_max, bytes, entries;
    int64_t ttl;
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    entry_t *newest, *oldest;
};

/* what an entry costs beyond its bytes: counted so that many tiny objects stay bounded too */
#define ENTRY_COST(e) (sizeof(entry_t) + (e)->obj.size)

me_delivery_blob_t *me_delivery_blob_new(size_t size)
{
    me_delivery_blob_t *b = malloc(sizeof(*b) + size);
    if (b == NULL)
        return NULL;
    atomic_init(&b->refs, 1);
    b->size = size;
    return b;
}

void *me_delivery_blob_data(me_delivery_blob_t *b)
{
    return b->data;
}

size_t me_delivery_blob_size(const me_delivery_blob_t *b)
{
    return b->size;
}

static me_delivery_blob_t *blob_ref(me_delivery_blob_t *b)
{
    atomic_fetch_add(&b->refs, 1);
    return b;
}

void me_delivery_blob_release(me_delivery_blob_t *b)
{
    if (b != NULL && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

me_delivery_hot_t *me_delivery_hot_new(size_t max_bytes, size_t object_max, int64_t ttl_ms)
{
    me_delivery_hot_t *h;
    if (max_bytes == 0 || (h = calloc(1, sizeof(*h))) == NULL)
        return NULL;
    h->nbuckets = 1024;
    if ((h->buckets = calloc(h->nbuckets, sizeof(*h->buckets))) == NULL) {
        free(h);
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    h->max_bytes = max_bytes;
    h->object_max = object_max < max_bytes ? object_max : max_bytes;
    h->ttl = ttl_ms;
    return h;
}

size_t me_delivery_hot_object_max(const me_delivery_hot_t *h)
{
    return h != NULL ? h->object_max : 0;
}

/* ---- under the lock ---- */

static int make_path(char *out, const char *album, const char *media_id, const char *file, size_t *album_len,
                     size_t *media_len)
{
    int n = snprintf(out, PATH_MAX_LEN + 1, "%s/%s/%s", album, media_id, file);
    *album_len = strlen(album);
    *media_len = strlen(media_id);
    return n > 0 && n <= PATH_MAX_LEN ? 0 : -1;
}

static uint64_t path_hash(const char *p)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static entry_t **slot_of(me_delivery_hot_t *h, const char *path, uint64_t hash)
{
    entry_t **p = &h->buckets[hash & (h->nbuckets - 1)];
    while (*p != NULL && ((*p)->hash != hash || strcmp((*p)->path, path) != 0))
        p = &(*p)->next;
    return p;
}

static void unlink_use(me_delivery_hot_t *h, entry_t *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        h->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        h->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void link_newest(me_delivery_hot_t *h, entry_t *e)
{
    e->older = h->newest;
    e->newer = NULL;
    if (h->newest != NULL)
        h->newest->newer = e;
    h->newest = e;
    if (h->oldest == NULL)
        h->oldest = e;
}

/* Removes the entry at *slot (its bucket's link to it). */
static void drop(me_delivery_hot_t *h, entry_t **slot)
{
    entry_t *e = *slot;
    *slot = e->next;
    unlink_use(h, e);
    h->bytes -= ENTRY_COST(e);
    h->entries--;
    me_delivery_blob_release(e->blob);
    free(e);
}

/* Doubles the buckets when entries outnumber them (best effort: a failed allocation only
 * makes chains longer). */
static void grow(me_delivery_hot_t *h)
{
    size_t n = h->nbuckets * 2;
    entry_t **b;
    if (h->entries <= h->nbuckets || (b = calloc(n, sizeof(*b))) == NULL)
        return;
    for (size_t i = 0; i < h->nbuckets; i++)
        for (entry_t *e = h->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = n;
}

/* ---- the operations ---- */

/* Locks h and finds the path's slot: its bucket's link to the entry, or to NULL when there is
 * none. NULL, not locked, for a path too long to be one. */
static entry_t **lock_slot(me_delivery_hot_t *h, const char *album, const char *media_id, const char *file)
{
    char path[PATH_MAX_LEN + 1];
    size_t al, ml;
    if (h == NULL || make_path(path, album, media_id, file, &al, &ml) != 0)
        return NULL;
    uint64_t hash = path_hash(path);
    pthread_mutex_lock(&h->lock);
    return slot_of(h, path, hash);
}

/* e was used now: a reference to its bytes. */
static me_delivery_blob_t *use(me_delivery_hot_t *h, entry_t *e)
{
    unlink_use(h, e);
    link_newest(h, e);
    return blob_ref(e->blob);
}

me_delivery_blob_t *me_delivery_hot_get(me_delivery_hot_t *h, const char *album, const char *media_id, const char *file,
                                        int64_t now_ms, me_delivery_object_t *obj)
{
    me_delivery_blob_t *b = NULL;
    entry_t **slot = lock_slot(h, album, media_id, file), *e;
    if (slot == NULL)
        return NULL;
    if ((e = *slot) != NULL && now_ms - e->confirmed < h->ttl) {
        *obj = e->obj;
        b = use(h, e);
    }
    pthread_mutex_unlock(&h->lock);
    return b;
}

me_delivery_blob_t *me_delivery_hot_confirm(me_delivery_hot_t *h, const char *album, const char *media_id,
                                            const char *file, int64_t now_ms, const me_delivery_object_t *obj)
{
    me_delivery_blob_t *b = NULL;
    entry_t **slot = lock_slot(h, album, media_id, file), *e;
    if (slot == NULL)
        return NULL;
    if ((e = *slot) != NULL) {
        if (e->obj.size == obj->size && strcmp(e->obj.etag, obj->etag) == 0) {
            e->obj = *obj; /* the manifest may have changed around it: its content type too */
            e->confirmed = now_ms;
            b = use(h, e);
        } else {
            drop(h, slot); /* another object under that name now */
        }
    }
    pthread_mutex_unlock(&h->lock);
    return b;
}

void me_delivery_hot_put(me_delivery_hot_t *h, const char *album, const char *media_id, const char *file,
                         int64_t now_ms, const me_delivery_object_t *obj, me_delivery_blob_t *blob)
{
    entry_t *e;
    if (h == NULL || obj->size > h->object_max || obj->size != blob->size || (e = calloc(1, sizeof(*e))) == NULL)
        return;
    if (make_path(e->path, album, media_id, file, &e->album_len, &e->media_len) != 0) {
        free(e);
        return;
    }
    e->hash = path_hash(e->path);
    e->obj = *obj;
    e->blob = blob_ref(blob);
    e->confirmed = now_ms;
    pthread_mutex_lock(&h->lock);
    entry_t **slot = slot_of(h, e->path, e->hash);
    if (*slot != NULL)
        drop(h, slot);
    while (h->oldest != NULL && h->bytes + ENTRY_COST(e) > h->max_bytes)
        drop(h, slot_of(h, h->oldest->path, h->oldest->hash));
    if (h->bytes + ENTRY_COST(e) > h->max_bytes) {
        pthread_mutex_unlock(&h->lock);
        me_delivery_blob_release(e->blob);
        free(e);
        return;
    }
    e->next = h->buckets[e->hash & (h->nbuckets - 1)];
    h->buckets[e->hash & (h->nbuckets - 1)] = e;
    link_newest(h, e);
    h->bytes += ENTRY_COST(e);
    h->entries++;
    grow(h);
    pthread_mutex_unlock(&h->lock);
}

void me_delivery_hot_forget(me_delivery_hot_t *h, const char *album, const char *media_id)
{
    size_t al, ml;
    if (h == NULL)
        return;
    al = strlen(album);
    ml = media_id != NULL ? strlen(media_id) : 0;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->nbuckets; i++)
        for (entry_t **p = &h->buckets[i]; *p != NULL;) {
            const entry_t *e = *p;
            int match = e->album_len == al && memcmp(e->path, album, al) == 0 &&
                        (media_id == NULL || (e->media_len == ml && memcmp(e->path + al + 1, media_id, ml) == 0));
            if (match)
                drop(h, p);
            else
                p = &(*p)->next;
        }
    pthread_mutex_unlock(&h->lock);
}

void me_delivery_hot_usage(const me_delivery_hot_t *h, size_t *bytes, size_t *entries)
{
    me_delivery_hot_t *m = (me_delivery_hot_t *)h;
    pthread_mutex_lock(&m->lock);
    *bytes = m->bytes;
    *entries = m->entries;
    pthread_mutex_unlock(&m->lock);
}

void me_delivery_hot_free(me_delivery_hot_t *h)
{
    if (h == NULL)
        return;
    while (h->oldest != NULL)
        drop(h, slot_of(h, h->oldest->path, h->oldest->hash));
    free(h->buckets);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
