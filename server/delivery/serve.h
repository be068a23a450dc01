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

/* Looks up file ("<name>.<ext>" or "original") of media_id in album: the manifest must exist,
 * name the same album, and list the file (a variant of a ready media; the original only when
 * allow_original); then the object's size, time and etag from storage. Blocks (storage): on a
 * pool thread. 0 with *out filled; ME_ENOTFOUND (no such media, file or object: deleted, of
 * another album, not ready); ME_EIO. Ids and file must have passed me_delivery_parse_path(). */
int me_delivery_resolve(me_storage_t *st, const char *album, const char *media_id, const char *file,
                        int allow_original, me_delivery_object_t *out) ME_MUST_CHECK;

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

/* 1 when If-None-Match (len bytes) lists etag (quoted; weak comparison: W/ ignored on both
 * sides) or is "*"; a malformed list matches nothing. */
int me_delivery_etag_matches(const char *if_none_match, size_t len, const char *etag);

#endif
