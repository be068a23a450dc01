/* demo.c: the development pages: a landing page at /, and the browser upload page at /demo. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "handlers/demo.h"
#include "server/core/log.h"
#include "server/http/http.h"

#define TUS_MAX (1 << 20) /* tus-js-client's browser build is about 90 KB */

static const char page[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mediaedge</title></head>\n"
    "<body><h1>mediaedge</h1>\n"
    "<p>This is a development instance of mediaedge, the photo and video upload and delivery edge "
    "server. This page is on because <code>server.demo_page</code> is true; production refuses it.</p>\n"
    "<ul><li><a href=\"/demo\">/demo</a>: upload photos from this browser and see them (open it with the "
    "link mediaedge printed at start: it carries the tokens)</li>"
    "<li><a href=\"/healthz\">/healthz</a></li><li><a href=\"/readyz\">/readyz</a></li>"
    "<li><a href=\"/metrics\">/metrics</a></li></ul>\n</body></html>\n";

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
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

/* ---- /demo ---- */

/* The page; %llu is the chunk size. Tokens come in the URL's fragment (#upload=...&view=...),
 * which browsers never send to a server, so they reach no log. */
static const char demo_page[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>mediaedge: upload</title>\n<style>\n"
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}\n"
    "li{display:flex;gap:1rem;align-items:center;margin:.5rem 0;list-style:none}\n"
    "progress{width:10rem}.name{flex:0 0 12rem;overflow-wrap:anywhere}.error{color:#b00020}\n"
    "img.thumb,video{max-width:10rem;max-height:10rem;border-radius:.3rem}\n"
    "</style></head>\n<body data-chunk-size=\"%llu\">\n<h1>Upload photos and videos</h1>\n"
    "<p><label>Choose files: <input id=\"pick\" type=\"file\" multiple accept=\"image/*,video/*\"></label></p>\n"
    "<p id=\"status\" role=\"status\"></p>\n<ul id=\"files\"></ul>\n"
    "<script src=\"/demo/tus.min.js\"></script>\n<script src=\"/demo/demo.js\"></script>\n</body></html>\n";

/* The page's own script: each file uploaded with tus (PATCHes of the page's chunk size, the
 * chunking contract), a progress bar each, then GET /v1/media/<id> until it is ready and its
 * thumbnail shown through its signed URL; a refusal's message shown as it came. */
static const char demo_js[] =
    "'use strict';\n"
    "(() => {\n"
    "  const params = new URLSearchParams(location.hash.slice(1));\n"
    "  const uploadToken = params.get('upload'), viewToken = params.get('view');\n"
    "  const chunkSize = Number(document.body.dataset.chunkSize);\n"
    "  const list = document.getElementById('files'), status = document.getElementById('status');\n"
    "  if (typeof tus === 'undefined')\n"
    "    status.textContent = 'The upload script is missing: run ./bootstrap (it installs tus-js-client).';\n"
    "  else if (!uploadToken || !viewToken)\n"
    "    status.textContent = 'Open this page with the link mediaedge printed at start (#upload=...&view=...).';\n"
    "  function row(file) {\n"
    "    const li = document.createElement('li'), name = document.createElement('span');\n"
    "    const bar = document.createElement('progress'), note = document.createElement('span');\n"
    "    name.className = 'name';\n"
    "    name.textContent = file.name;\n"
    "    bar.max = 1;\n"
    "    bar.value = 0;\n"
    "    li.append(name, bar, note);\n"
    "    list.append(li);\n"
    "    return {\n"
    "      bar,\n"
    "      say(text) { note.className = ''; note.textContent = text; },\n"
    "      fail(text) { note.className = 'error'; note.textContent = text; },\n"
    "      show(m) {\n"
    "        const v = m.variants || {};\n"
    "        const video = Object.values(v).find((x) => (x.content_type || '').startsWith('video/'));\n"
    "        const thumb = v['thumb.jpg'] || v['thumb.webp'];\n"
    "        const el = document.createElement(video ? 'video' : 'img');\n"
    "        if (video) { el.controls = true; el.src = video.url; if (thumb) el.poster = thumb.url; }\n"
    "        else if (thumb) { el.className = 'thumb'; el.alt = name.textContent; el.src = thumb.url; }\n"
    "        note.replaceChildren(el);\n"
    "      },\n"
    "    };\n"
    "  }\n"
    "  function messageOf(err) {\n"
    "    try {\n"
    "      const body = err.originalResponse && err.originalResponse.getBody();\n"
    "      if (body) return JSON.parse(body).message;\n"
    "    } catch (_) { /* not our JSON: the error's own words */ }\n"
    "    return String((err && err.message) || err);\n"
    "  }\n"
    "  async function watch(id, r) {\n"
    "    for (;;) {\n"
    "      const res = await fetch('/v1/media/' + encodeURIComponent(id),\n"
    "                              { headers: { Authorization: 'Bearer ' + viewToken }, cache: 'no-store' });\n"
    "      const m = await res.json();\n"
    "      if (!res.ok) return r.fail(m.message || res.statusText);\n"
    "      if (m.status === 'ready') return r.show(m);\n"
    "      if (m.status === 'failed') return r.fail((m.error && m.error.message) || 'It could not be processed.');\n"
    "      r.say(m.status === 'processing' ? 'processing...' : 'waiting to be processed...');\n"
    "      await new Promise((ok) => setTimeout(ok, 1000));\n"
    "    }\n"
    "  }\n"
    "  function start(file) {\n"
    "    const r = row(file);\n"
    "    new tus.Upload(file, {\n"
    "      endpoint: '/v1/uploads',\n"
    "      chunkSize,\n"
    "      retryDelays: [0, 1000, 3000, 5000],\n"
    "      headers: { Authorization: 'Bearer ' + uploadToken },\n"
    "      metadata: { filename: file.name, filetype: file.type },\n"
    "      onProgress(sent, total) { r.bar.value = total ? sent / total : 0; },\n"
    "      onError(err) { r.fail(messageOf(err)); },\n"
    "      onSuccess(payload) {\n"
    "        r.bar.value = 1;\n"
    "        const id = payload && payload.lastResponse && payload.lastResponse.getHeader('Media-Id');\n"
    "        if (!id) return r.fail('Uploaded, but the server named no media.');\n"
    "        r.say('uploaded');\n"
    "        watch(id, r).catch((e) => r.fail(String(e)));\n"
    "      },\n"
    "    }).start();\n"
    "  }\n"
    "  document.getElementById('pick').addEventListener('change', (e) => {\n"
    "    for (const f of e.target.files) start(f);\n"
    "    e.target.value = '';\n"
    "  });\n"
    "})();\n";

typedef struct {
    h2o_handler_t super;
    char *page;        /* demo_page with the chunk size */
    size_t page_len;
    char *tus;         /* tus-js-client's browser build, or NULL when not installed */
    size_t tus_len;
} demo_handler_t;

/* Reads path (at most TUS_MAX bytes) into a malloc'd buffer; NULL when it cannot. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = f != NULL ? malloc(TUS_MAX) : NULL;
    *len = buf != NULL ? fread(buf, 1, TUS_MAX, f) : 0;
    if (buf != NULL && (*len == 0 || *len == TUS_MAX || ferror(f))) {
        free(buf);
        buf = NULL;
    }
    if (f != NULL)
        fclose(f);
    return buf;
}

/* tus.min.js: next to this program (demo/, the build tree), else where it is installed. */
static char *load_tus(size_t *len)
{
    char exe[PATH_MAX], path[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL, *js = NULL;
    if (slash != NULL) {
        *slash = '\0';
        snprintf(path, sizeof(path), "%s/demo/tus.min.js", exe);
        js = read_file(path, len);
    }
    if (js == NULL) {
        snprintf(path, sizeof(path), "%s/tus.min.js", ME_DEMO_DIR);
        js = read_file(path, len);
    }
    if (js == NULL)
        me_log_warn(NULL, "demo: tus-js-client is not installed (run ./bootstrap); /demo cannot upload");
    return js;
}

static void send_static(h2o_req_t *req, const char *type, const char *body, size_t len)
{
    req->res.status = 200;
    req->res.reason = me_http_reason(200);
    req->res.content_length = len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    me_http_add_header(req, "x-content-type-options", H2O_STRLIT("nosniff"));
    h2o_send_inline(req, body, len);
}

static int on_demo(h2o_handler_t *_self, h2o_req_t *req)
{
    demo_handler_t *self = (demo_handler_t *)_self;
    h2o_iovec_t p = req->path_normalized;
    if (!me_http_check_method(req, "GET, HEAD"))
        return 0;
    if (h2o_memis(p.base, p.len, H2O_STRLIT("/demo")) || h2o_memis(p.base, p.len, H2O_STRLIT("/demo/"))) {
        /* the page runs only its own scripts; pictures may come from the CDN's domain */
        me_http_add_header(req, "content-security-policy",
                           H2O_STRLIT("default-src 'self'; img-src 'self' https: http:; media-src 'self' https: http:; "
                                      "style-src 'unsafe-inline'; frame-ancestors 'none'"));
        send_static(req, "text/html; charset=utf-8", self->page, self->page_len);
    } else if (h2o_memis(p.base, p.len, H2O_STRLIT("/demo/demo.js"))) {
        send_static(req, "text/javascript; charset=utf-8", demo_js, sizeof(demo_js) - 1);
    } else if (h2o_memis(p.base, p.len, H2O_STRLIT("/demo/tus.min.js")) && self->tus != NULL) {
        send_static(req, "text/javascript; charset=utf-8", self->tus, self->tus_len);
    } else {
        me_http_send_error(req, ME_ENOTFOUND, NULL);
    }
    return 0;
}

/* With the host's configuration (h2o_config_dispose at exit): what register made. */
static void on_dispose(h2o_handler_t *_self)
{
    demo_handler_t *self = (demo_handler_t *)_self;
    if (self->page_len != 0) /* else the literal "" */
        free(self->page);
    free(self->tus);
}

void me_demo_page_register(h2o_hostconf_t *host, const me_demo_deps_t *deps)
{
    h2o_pathconf_t *pathconf = me_http_route(host, "/demo", "/demo");
    demo_handler_t *h = (demo_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_demo;
    h->super.dispose = on_dispose;
    /* made once, for the life of the host, like the handler itself */
    size_t size = sizeof(demo_page) + 24;
    if ((h->page = malloc(size)) != NULL)
        h->page_len = (size_t)snprintf(h->page, size, demo_page, (unsigned long long)deps->chunk_size);
    else
        h->page = (char *)"", h->page_len = 0;
    h->tus = load_tus(&h->tus_len);
}
