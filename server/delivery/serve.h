/* serve.h: what the origin serves for /m/<album>/<media-id>/<file>: the object behind a path
 * (looked up through the media's manifest, so that only what a ready media lists is served,
 * under its recorded content type), and the HTTP answer to a GET or HEAD of it: 200, 206 for
 * one satisfiable byte range, 416, or 304 (If-None-Match), with If-Range deciding whether a
 * range applies. No I/O in the planning, so that it is tested by tables. */
#ifndef ME_DELIVERY_SERVE_H
#define ME_DELIVERY_SERVE_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"
#include "server/storage/storage.h"

#define ME_DELIVERY_TYPE_MAX 64 /* a content type */
#define ME_DELIVERY_ETAG_MAX (ME_STORAGE_ETAG_MAX + 2)

/* An object the origin may serve. */
typedef struct {
    char key[ME_STORAGE_KEY_MAX + 1];
    char content_type[ME_DELIVERY_TYPE_MAX + 1];
    char etag[ME_DELIVERY_ETAG_MAX + 1]; /* quoted, strong: changes whenever the object does */
    uint64_t size;
    int64_t mtime;                       /* seconds since the epoch */
    int is_original;                     /* the upload itself: served as an attachment */
} me_delivery_object_t;

/* What the origin knows of objects: the answers of manifests, remembered while each manifest is
 * the same object (its storage etag, looked at every time), so that a request costs two stats
 * and no JSON parse. */
typedef struct me_delivery_objects me_delivery_objects_t;

/* Lookups in st (not owned), at most entries remembered (0: none). NULL when out of memory. */
me_delivery_objects_t *me_delivery_objects_new(me_storage_t *st, int entries);
void me_delivery_objects_free(me_delivery_objects_t *o);

/* Looks up file ("<name>.<ext>" or "original") of media_id in album: the manifest must exist,
 * name the same album, and list the file (a variant of a ready media; the original only when
 * allow_original); then the object's size, time and etag from storage. Blocks (storage): on a
 * pool thread. 0 with *out filled; ME_ENOTFOUND (no such media, file or object: deleted, of
 * another album, not ready); ME_EIO. Ids and file must have passed me_delivery_parse_path(). */
int me_delivery_resolve(me_delivery_objects_t *o, const char *album, const char *media_id, const char *file,
                        int allow_original, me_delivery_object_t *out) ME_MUST_CHECK;

/* Manifests parsed (misses), for tests. */
uint64_t me_delivery_objects_parsed(const me_delivery_objects_t *o);

/* The answer to a request for an object of size bytes with entity tag etag (quoted) and
 * last-modified time mtime, given the request's Range, If-None-Match and If-Range headers
 * (each NULL when absent; len bytes): */
typedef struct {
    int status;      /* 200, 206, 304 or 416 */
    uint64_t offset; /* first byte to send (206) */
    uint64_t length; /* bytes to send (200, 206); 0 for 304 and 416 */
} me_delivery_plan_t;

/* If-None-Match that lists etag (weakly compared, or "*") gives 304. Otherwise a Range of one
 * range ("bytes=a-b", "bytes=a-", "bytes=-n") gives 206 when it overlaps the object, 416 when
 * it does not; If-Range that is not etag (strongly compared) or an HTTP date equal to mtime
 * turns the range off (200); a malformed Range, one in other units, or several ranges are
 * ignored (200, as RFC 9110 allows). */
me_delivery_plan_t me_delivery_plan(uint64_t size, const char *etag, int64_t mtime, const char *range, size_t range_len,
                                    const char *if_none_match, size_t inm_len, const char *if_range, size_t ir_len);

/* The origin's chunk buffers, all of one size, recycled: a burst of responses must not leave
 * the process holding its peak (malloc keeps freed large blocks in its per-thread arenas).
 * Buffers are mapped pages; at most idle_max wait for reuse (the rest are unmapped at once),
 * and those that stayed idle through a whole second are unmapped at the next get or put. */
typedef struct me_delivery_buffers me_delivery_buffers_t;

/* NULL when out of memory. Thread-safe. */
me_delivery_buffers_t *me_delivery_buffers_new(size_t size, int idle_max);
/* Unmaps the idle buffers; every buffer must have been put back. NULL is fine. */
void me_delivery_buffers_free(me_delivery_buffers_t *b);
/* A buffer of the set's size (contents undefined), or NULL when out of memory. */
void *me_delivery_buffer_get(me_delivery_buffers_t *b);
/* Gives back a buffer got from b (NULL is fine), from any thread. */
void me_delivery_buffer_put(me_delivery_buffers_t *b, void *p);
/* The set's buffer size; buffers mapped now (in use or idle), for tests and metrics. */
size_t me_delivery_buffers_size(const me_delivery_buffers_t *b);
int me_delivery_buffers_mapped(const me_delivery_buffers_t *b);

/* 1 when If-None-Match (len bytes) lists etag (quoted; weak comparison: W/ ignored on both
 * sides) or is "*"; a malformed list matches nothing. */
int me_delivery_etag_matches(const char *if_none_match, size_t len, const char *etag);

#endif
