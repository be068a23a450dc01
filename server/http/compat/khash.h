/* khash.h: just enough of klib's khash for <h2o/http2_internal.h> to compile. Debian's
 * libh2o-evloop-dev 2.2.5 installs that header but not the khash.h it includes. mediaedge
 * reads only h2o_http2_stream_t from it (server/http/h2o_private.c), never a connection's stream table:
 * the table's type stays incomplete and its accessors, used by one unused inline function
 * of the header, do nothing. */
#ifndef ME_COMPAT_KHASH_H
#define ME_COMPAT_KHASH_H

#include <stdint.h>

typedef uint32_t khiter_t;
#define khash_t(name) struct me_khash_##name
#define KHASH_MAP_INIT_INT64(name, type)
#define kh_get(name, h, key) ((void)(h), (void)(key), (khiter_t)0)
#define kh_end(h) ((void)(h), (khiter_t)0)
#define kh_val(h, it) ((void)(h), (void)(it), NULL)

#endif
