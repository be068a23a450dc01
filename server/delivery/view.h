/* view.h: a media as the media API shows it to viewers: the manifest's public facts (never its
 * storage keys, owner or the backend's ref), each variant with its signed URL, the status
 * while processing, and the original's signed URL only when delivery.serve_original allows;
 * the entity tags of such answers; and a cache of them, because an album page is asked for
 * again and again (every family member, every refresh) and parsing a manifest and writing its
 * view cost far more than looking at whether the manifest changed. */
#ifndef ME_DELIVERY_VIEW_H
#define ME_DELIVERY_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "server/delivery/delivery.h"
#include "server/storage/storage.h"

#define ME_DELIVERY_JSON_ETAG_MAX 36 /* a quoted 32-hex-digit tag */

/* The public view of manifest m at now:
 *   {"id","album","kind","status","created_at"[,"processed_at"][,"taken_at"][,"has_location"]
 *    [,"location"][,"duration"][,"width","height"][,"error"],
 *    "original":{"bytes","content_type"[,"width","height"][,"url"]},
 *    "variants":{"<name>.<ext>":{"url","width","height","bytes","content_type",...}},
 *    "urls_expire_at"}
 * URLs are signed for delivery.url_ttl (rounded: the same in every process within a step, so
 * the answer and its ETag stay the same too). NULL when out of memory or a URL could not be
 * signed (a manifest we did not write). The caller owns the result. */
json_t *me_delivery_view(me_delivery_t *d, const json_t *m, int64_t now);

/* The entity tag of a JSON answer of len bytes: a quoted digest, into out
 * (ME_DELIVERY_JSON_ETAG_MAX + 1 bytes). */
void me_delivery_json_etag(const char *body, size_t len, char *out);

/* A cache of rendered views, in front of storage. */
typedef struct me_delivery_views me_delivery_views_t;

/* Views of d's media read from st (neither owned), at most entries kept (0: none kept, every
 * view rendered). NULL when out of memory. */
me_delivery_views_t *me_delivery_views_new(me_delivery_t *d, me_storage_t *st, int entries);
void me_delivery_views_free(me_delivery_views_t *v);

/* The view of media_id, as JSON text, for a viewer of album at now: from the cache while the
 * manifest is the same object (its storage etag, looked at every time) and the URLs' expiry
 * the same step, else rendered from the manifest and kept. Blocks (storage): on a pool
 * thread. 0 with *text (malloc'd, NUL-terminated; the caller frees), *len and etag
 * (ME_DELIVERY_JSON_ETAG_MAX + 1 bytes) set; ME_ENOTFOUND (no such media, or another
 * album's), ME_EIO, ME_ENOMEM. */
int me_delivery_views_get(me_delivery_views_t *v, const char *media_id, const char *album, int64_t now, char **text,
                          size_t *len, char *etag) ME_MUST_CHECK;

/* Views rendered (cache misses), for tests and metrics. */
uint64_t me_delivery_views_rendered(const me_delivery_views_t *v);

#endif
