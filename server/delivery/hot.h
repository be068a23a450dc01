/* hot.h: the origin's memory of the small objects it served lately (thumbnails, small
 * variants, posters): their bytes and what me_delivery_resolve() said of them, so that a
 * request for a hot object is answered on the event loop, with no storage call and no hop to
 * a pool thread.
 *
 * Trust: an entry is served without asking storage for ttl after storage last confirmed it;
 * after that the next request resolves the path again (manifest and object) and keeps the
 * bytes when the object's etag is unchanged. A deletion through this instance forgets the
 * media's entries at once (me_delivery_hot_forget()); one through another instance is seen
 * within ttl. Bounded in bytes, least recently used out first. Thread-safe. */
#ifndef ME_DELIVERY_HOT_H
#define ME_DELIVERY_HOT_H

#include <stddef.h>
#include <stdint.h>
#include "server/delivery/serve.h"

typedef struct me_delivery_hot me_delivery_hot_t;

/* An object's bytes, shared by the cache and the responses that send them: each holder keeps
 * a reference, the last release frees it. */
typedef struct me_delivery_blob me_delivery_blob_t;

/* A cache of at most max_bytes of objects of at most object_max bytes each, each trusted for
 * ttl_ms. NULL when max_bytes is 0 (no cache: every request reads storage) or out of memory. */
me_delivery_hot_t *me_delivery_hot_new(size_t max_bytes, size_t object_max, int64_t ttl_ms);
/* Frees the cache; responses still holding blobs keep them until they release them. NULL is fine. */
void me_delivery_hot_free(me_delivery_hot_t *h);

/* The largest object kept (0 for a NULL cache: none). */
size_t me_delivery_hot_object_max(const me_delivery_hot_t *h);

/* The entry for file of media_id in album, trusted at now_ms (monotonic): a reference to its
 * bytes with *obj filled, or NULL (none, or not confirmed within ttl). */
me_delivery_blob_t *me_delivery_hot_get(me_delivery_hot_t *h, const char *album, const char *media_id, const char *file,
                                        int64_t now_ms, me_delivery_object_t *obj);

/* After a resolve found obj for that path: when the entry holds the same object (etag and
 * size), it is trusted again from now_ms and a reference to its bytes returned; else NULL. */
me_delivery_blob_t *me_delivery_hot_confirm(me_delivery_hot_t *h, const char *album, const char *media_id,
                                            const char *file, int64_t now_ms, const me_delivery_object_t *obj);

/* Keeps blob (whose bytes are obj's, obj->size of them) for that path, trusted from now_ms,
 * replacing any entry of it and evicting the least recently used ones to make room. The
 * caller keeps its own reference. Objects over object_max are not kept. */
void me_delivery_hot_put(me_delivery_hot_t *h, const char *album, const char *media_id, const char *file,
                         int64_t now_ms, const me_delivery_object_t *obj, me_delivery_blob_t *blob);

/* Forgets every entry of media_id in album (media_id NULL: of the whole album). */
void me_delivery_hot_forget(me_delivery_hot_t *h, const char *album, const char *media_id);

/* Bytes held by entries now (their own bytes counted too), and entries, for tests and metrics. */
void me_delivery_hot_usage(const me_delivery_hot_t *h, size_t *bytes, size_t *entries);

/* A blob of size bytes (contents undefined) with one reference, the caller's; NULL when out
 * of memory. */
me_delivery_blob_t *me_delivery_blob_new(size_t size);
void *me_delivery_blob_data(me_delivery_blob_t *b);
size_t me_delivery_blob_size(const me_delivery_blob_t *b);
/* Releases a reference (NULL is fine); any thread. */
void me_delivery_blob_release(me_delivery_blob_t *b);

#endif
