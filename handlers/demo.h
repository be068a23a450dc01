/* demo.h: the development landing page at / (server.demo_page; refused in production). */
#ifndef ME_HANDLERS_DEMO_H
#define ME_HANDLERS_DEMO_H

#include <h2o.h>

/* Adds the page to pathconf (the host's fallback): it answers GET / and passes on the rest. */
void me_demo_register(h2o_pathconf_t *pathconf);

#endif
