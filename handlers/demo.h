/* demo.h: the development pages (server.demo_page; refused in production): the landing page at
 * /, and at /demo a browser upload page: pick photos and videos, upload them with tus-js-client
 * (its script installed at build time and served from here: no CDN at run time), watch them
 * become ready and see their thumbnails through signed URLs. */
#ifndef ME_HANDLERS_DEMO_H
#define ME_HANDLERS_DEMO_H

#include <stdint.h>
#include <h2o.h>

/* Adds the landing page to pathconf (the host's fallback): it answers GET / and passes on the
 * rest. */
void me_demo_register(h2o_pathconf_t *pathconf);

typedef struct {
    uint64_t chunk_size; /* the PATCH size the page's uploads use: http.max_patch_size */
} me_demo_deps_t;

/* Registers /demo (the page, its script, and tus-js-client's browser build) on host. The
 * tus-js-client file is read now, from demo/tus.min.js next to this program (the build
 * tree) or in ME_DEMO_DIR (installed); without it the page says how to install it. */
void me_demo_page_register(h2o_hostconf_t *host, const me_demo_deps_t *deps);

#endif
