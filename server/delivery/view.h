/* view.h: a media as the media API shows it to viewers: the manifest's public facts (never its
 * storage keys, owner or the backend's ref), each variant with its signed URL, the status
 * while processing, and the original's signed URL only when delivery.serve_original allows;
 * and the entity tags of such answers. */
#ifndef ME_DELIVERY_VIEW_H
#define ME_DELIVERY_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "server/delivery/delivery.h"

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

#endif
