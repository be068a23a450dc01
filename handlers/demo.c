/* demo.c: a small page at / for developers who opened the server in a browser. */
#include "handlers/demo.h"
#include "server/http/http.h"

static const char page[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mediaedge</title></head>\n"
    "<body><h1>mediaedge</h1>\n"
    "<p>This is a development instance of mediaedge, the photo and video upload and delivery edge "
    "server. This page is on because <code>server.demo_page</code> is true; production refuses it.</p>\n"
    "<ul><li><a href=\"/healthz\">/healthz</a></li><li><a href=\"/readyz\">/readyz</a></li>"
    "<li><a href=\"/metrics\">/metrics</a></li></ul>\n</body></html>\n";

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/")))
        return -1;
    if (!me_http_check_method(req, "GET, HEAD"))
        return 0;
    me_http_send(req, 200, "text/html; charset=utf-8", page, sizeof(page) - 1);
    return 0;
}

void me_demo_register(h2o_pathconf_t *pathconf)
{
    h2o_create_handler(pathconf, sizeof(h2o_handler_t))->on_req = on_req;
}
