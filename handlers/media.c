/* media.c: the media API: a media's facts and signed URLs, many at once for an album page, an
 * album's signed cookies, and deletion of a media or an album: requests parsed and tokens
 * checked here, manifests read and media deleted on the pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "handlers/media.h"
#include "server/delivery/serve.h"
#include "server/delivery/view.h"
#include "server/http/http.h"
#include "server/media/deletion.h"
#include "server/media/manifest.h"

#define ID_MAX 64
#define INM_MAX 512 /* a longer If-None-Match is not honoured (the full answer goes) */

typedef struct {
    h2o_handler_t super;
    me_media_deps_t deps;
} media_handler_t;

typedef enum { OP_GET, OP_BATCH, OP_COOKIES, OP_DELETE, OP_DELETE_ALBUM } op_t;

/* One request's work for the pool, with copies of all it needs (the request may die). */
typedef struct {
    me_http_job_t hj;
    const me_media_deps_t *deps;
    op_t op;
    me_token_claims_t who;
    char album[ID_MAX + 1];
    char (*ids)[ID_MAX + 1]; /* OP_GET and OP_DELETE: one */
    int nids;
    char inm[INM_MAX];
    size_t inm_len;
    int has_inm;
    /* results */
    int err;
    const char *message;     /* for err; a literal, or NULL for the default */
    char *body;              /* malloc'd JSON */
    size_t len;
    char etag[ME_DELIVERY_JSON_ETAG_MAX + 1];
} media_job_t;

static void job_free(media_job_t *j)
{
    free(j->ids);
    free(j->body);
    free(j);
}

/* An id of the path at p (end at end): 1..64 id characters, copied into out; *next after it. */
static int take_id(const char *p, const char *end, char *out, const char **next)
{
    size_t n = me_delivery_id_span(p, (size_t)(end - p));
    if (n == 0 || n > ID_MAX)
        return 0;
    memcpy(out, p, n);
    out[n] = '\0';
    *next = p + n;
    return 1;
}

static int is_method(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

/* ---- the pool side ---- */

/* The manifest of id as this token may see it: ME_ENOTFOUND for another album's. */
static int load_visible(media_job_t *j, const char *id, json_t **m)
{
    int ret = me_manifest_load(j->deps->storage, id, m);
    if (ret == ME_ENOTFOUND || ret == ME_EINVAL)
        return ME_ENOTFOUND;
    if (ret != 0)
        return ME_EIO;
    const char *album = me_manifest_album(*m);
    if (album == NULL || strcmp(album, j->who.album) != 0) {
        json_decref(*m);
        *m = NULL;
        return ME_ENOTFOUND; /* not a 403: whether it exists is not this token's business */
    }
    return 0;
}

static int set_body(media_job_t *j, json_t *doc)
{
    j->body = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (j->body == NULL)
        return ME_ENOMEM;
    j->len = strlen(j->body);
    return 0;
}

static int get_one(media_job_t *j, int64_t now)
{
    return me_delivery_views_get(j->deps->views, j->ids[0], j->who.album, now, &j->body, &j->len, j->etag);
}

/* Appends len bytes of s to j->body (grown by doubling). */
static int append(media_job_t *j, size_t *cap, const char *s, size_t len)
{
    if (j->len + len + 1 > *cap) {
        size_t want = *cap ? *cap : 4096;
        while (j->len + len + 1 > want)
            want *= 2;
        char *p = realloc(j->body, want);
        if (p == NULL)
            return ME_ENOMEM;
        j->body = p, *cap = want;
    }
    memcpy(j->body + j->len, s, len);
    j->len += len;
    j->body[j->len] = '\0';
    return 0;
}

/* {"media":[<view>,...],"missing":["<id>",...]}: the views as the cache keeps them, joined. */
static int get_many(media_job_t *j, int64_t now)
{
    size_t cap = 0;
    int missing[ME_MEDIA_BATCH_MAX], nmissing = 0, ret = append(j, &cap, H2O_STRLIT("{\"media\":["));
    for (int i = 0; ret == 0 && i < j->nids; i++) {
        char *text = NULL, etag[ME_DELIVERY_JSON_ETAG_MAX + 1];
        size_t len;
        int found = me_delivery_views_get(j->deps->views, j->ids[i], j->who.album, now, &text, &len, etag);
        if (found == ME_ENOTFOUND)
            missing[nmissing++] = i;
        else if ((ret = found) == 0 && (i - nmissing == 0 || (ret = append(j, &cap, ",", 1)) == 0))
            ret = append(j, &cap, text, len);
        free(text);
    }
    if (ret == 0)
        ret = append(j, &cap, H2O_STRLIT("],\"missing\":["));
    for (int i = 0; ret == 0 && i < nmissing; i++) { /* ids are [A-Za-z0-9_-]: nothing to escape */
        const char *id = j->ids[missing[i]];
        if ((i == 0 || (ret = append(j, &cap, ",", 1)) == 0) && (ret = append(j, &cap, "\"", 1)) == 0 &&
            (ret = append(j, &cap, id, strlen(id))) == 0)
            ret = append(j, &cap, "\"", 1);
    }
    if (ret == 0)
        ret = append(j, &cap, "]}", 2);
    if (ret == 0)
        me_delivery_json_etag(j->body, j->len, j->etag);
    return ret;
}

/* May who delete a media of album owned by owner? Its uploader, or the app backend (an admin
 * token) for that album. */
static int may_delete(const me_token_claims_t *who, const char *owner)
{
    return who->scope == ME_SCOPE_ADMIN || (owner != NULL && strcmp(owner, who->sub) == 0);
}

static int delete_one(media_job_t *j, int64_t now)
{
    json_t *m = NULL;
    int ret = load_visible(j, j->ids[0], &m);
    if (ret == ME_ENOTFOUND) {
        /* a deletion cut short leaves its tombstone: finishing it is a deletion too */
        json_t *t = NULL;
        if (me_media_tombstone(j->deps->storage, j->ids[0], &t) != 0)
            return ME_ENOTFOUND;
        const char *album = json_string_value(json_object_get(t, "album"));
        const char *owner = json_string_value(json_object_get(t, "owner"));
        ret = album == NULL || strcmp(album, j->who.album) != 0 ? ME_ENOTFOUND
              : !may_delete(&j->who, owner)                    ? ME_EFORBIDDEN
                                                               : me_media_purge(j->deps->storage, album, j->ids[0]);
        json_decref(t);
    } else if (ret == 0) {
        if (!may_delete(&j->who, json_string_value(json_object_get(m, "owner"))))
            ret = ME_EFORBIDDEN;
        else
            ret = me_media_delete(j->deps->storage, j->deps->hooks, m, now);
    }
    if (ret == ME_EFORBIDDEN)
        j->message = "Only the person who uploaded it, or the app, may delete this media.";
    json_decref(m);
    return ret == 0 || ret == ME_ENOTFOUND || ret == ME_EFORBIDDEN ? ret : ME_EIO;
}

typedef struct {
    media_job_t *j;
    int64_t now;
    int deleted;
} album_walk_t;

static int delete_listed(const char *id, void *arg)
{
    album_walk_t *w = arg;
    json_t *m = NULL;
    int ret = me_manifest_load(w->j->deps->storage, id, &m);
    if (ret == ME_ENOTFOUND) /* objects without a manifest: a deletion cut short */
        ret = me_media_purge(w->j->deps->storage, w->j->album, id);
    else if (ret == 0 && (me_manifest_album(m) == NULL || strcmp(me_manifest_album(m), w->j->album) != 0))
        ret = me_media_purge(w->j->deps->storage, w->j->album, id); /* another album's manifest: ours are strays */
    else if (ret == 0)
        ret = me_media_delete(w->j->deps->storage, w->j->deps->hooks, m, w->now);
    json_decref(m);
    w->deleted += ret == 0;
    return ret == 0 ? 0 : ME_EIO;
}

static int delete_album(media_job_t *j, int64_t now)
{
    album_walk_t w = {.j = j, .now = now};
    int ret = me_media_list_album(j->deps->storage, j->album, delete_listed, &w);
    if (ret != 0)
        return ME_EIO;
    return set_body(j, json_pack("{s:s,s:i}", "album", j->album, "deleted", w.deleted));
}

static void job_work(me_http_job_t *hj)
{
    media_job_t *j = (media_job_t *)hj;
    int64_t now = (int64_t)time(NULL);
    switch (j->op) {
    case OP_GET:
        j->err = get_one(j, now);
        break;
    case OP_BATCH:
        j->err = get_many(j, now);
        break;
    case OP_DELETE:
        j->err = delete_one(j, now);
        me_delivery_hot_forget(j->deps->hot, j->who.album, j->ids[0]); /* the origin answers 404 from now on */
        break;
    case OP_DELETE_ALBUM:
        j->err = delete_album(j, now);
        me_delivery_hot_forget(j->deps->hot, j->album, NULL);
        break;
    case OP_COOKIES: /* answered on the loop */
        break;
    }
}

/* ---- the loop side ---- */

/* A JSON answer that clients may keep and revalidate: its ETag, and 304 when it matches. */
static void send_cacheable(h2o_req_t *req, media_job_t *j)
{
    const char *etag = h2o_strdup(&req->pool, j->etag, SIZE_MAX).base;
    me_http_add_header(req, "etag", etag, strlen(etag));
    /* the URLs inside expire: a client may keep the answer, but asks again before using it */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("private, no-cache"));
    if (j->has_inm && me_delivery_etag_matches(j->inm, j->inm_len, etag)) {
        req->res.status = 304;
        req->res.reason = me_http_reason(304);
        h2o_send_inline(req, "", 0);
        return;
    }
    req->res.status = 200;
    req->res.reason = me_http_reason(200);
    req->res.content_length = j->len;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_send_inline(req, j->body, j->len);
}

static void job_done(me_http_job_t *hj)
{
    media_job_t *j = (media_job_t *)hj;
    h2o_req_t *req = hj->req;
    if (req == NULL)
        goto exit; /* the client went away; what was deleted stays deleted */
    if (j->err != 0)
        me_http_send_error(req, j->err, j->message);
    else if (j->op == OP_DELETE)
        me_http_send_empty(req, 204);
    else if (j->op == OP_DELETE_ALBUM)
        me_http_send_json(req, 200, j->body, j->len);
    else
        send_cacheable(req, j);
exit:
    job_free(j);
}

/* ids=a,b,c (commas may come as %2C, as URLSearchParams writes them): 1..ME_MEDIA_BATCH_MAX
 * distinct ids into j, or 0 (with j->message) when the query is not that. */
static int parse_ids(h2o_req_t *req, media_job_t *j)
{
    static const char key[] = "?ids=";
    const char *q = req->query_at != SIZE_MAX ? req->path.base + req->query_at : NULL;
    const char *end = req->path.base + req->path.len;
    j->message = "The query must be ?ids=<id>,<id>,... with 1 to 100 media ids.";
    if (q == NULL || (size_t)(end - q) < sizeof(key) - 1 || memcmp(q, key, sizeof(key) - 1) != 0)
        return 0;
    if ((j->ids = calloc(ME_MEDIA_BATCH_MAX, sizeof(*j->ids))) == NULL)
        return 0;
    for (const char *p = q + sizeof(key) - 1;;) {
        char id[ID_MAX + 1];
        if (j->nids == ME_MEDIA_BATCH_MAX || !take_id(p, end, id, &p))
            return 0; /* too many, or an empty or bad id (a trailing separator too) */
        int seen = 0;
        for (int i = 0; i < j->nids && !seen; i++)
            seen = strcmp(j->ids[i], id) == 0;
        if (!seen)
            memcpy(j->ids[j->nids++], id, sizeof(id));
        if (p == end)
            break;
        if (*p == ',')
            p++;
        else if (end - p >= 3 && p[0] == '%' && p[1] == '2' && (p[2] == 'C' || p[2] == 'c'))
            p += 3;
        else
            return 0;
    }
    j->message = NULL;
    return j->nids > 0;
}

/* The album's signed cookies, set on the answer: no storage, so on the loop (the signature of
 * an album's policy is cached for the rest of its expiry step). */
static void send_cookies(h2o_req_t *req, const me_media_deps_t *deps, const char *album)
{
    me_cf_cookies_t ck;
    int64_t expires;
    char (*set)[ME_DELIVERY_COOKIE_MAX] = h2o_mem_alloc_pool(&req->pool, 4 * ME_DELIVERY_COOKIE_MAX);
    char body[ME_CF_RESOURCE_MAX + 128];
    if (me_delivery_sign_album(deps->delivery, album, (int64_t)time(NULL), &ck, &expires) != 0) {
        me_http_send_error(req, ME_EINTERNAL, NULL);
        return;
    }
    int n = me_delivery_set_cookies(deps->delivery, album, &ck, set);
    for (int i = 0; i < n; i++)
        me_http_add_header(req, "set-cookie", set[i], strlen(set[i]));
    int len = snprintf(body, sizeof(body), "{\"album\":\"%s\",\"resource\":\"%s/m/%s/*\",\"expires_at\":%lld}", album,
                       me_delivery_base_url(deps->delivery), album, (long long)expires);
    me_http_send_json(req, 200, body, (size_t)len);
}

/* Checks the token: viewing needs scope view (or admin), and for an album path its album. */
static int authorize(h2o_req_t *req, const media_handler_t *self, media_job_t *j, const char *album, int admin_only)
{
    if (me_http_authorize(req, self->deps.verifier, 0, &j->who) != 0)
        return 0;
    const char *refusal = NULL;
    if (admin_only && j->who.scope != ME_SCOPE_ADMIN)
        refusal = "Only the app may delete an album.";
    else if (j->op != OP_DELETE && j->who.scope == ME_SCOPE_UPLOAD)
        refusal = "This token does not allow viewing.";
    else if (album != NULL && strcmp(album, j->who.album) != 0)
        refusal = "This token is for another album.";
    if (refusal == NULL)
        return 1;
    me_http_send_error(req, ME_EFORBIDDEN, refusal);
    return 0;
}

static void submit(h2o_req_t *req, const media_handler_t *self, media_job_t *j)
{
    const h2o_iovec_t *inm = me_http_header(req, "if-none-match");
    if (inm != NULL && inm->len <= sizeof(j->inm)) {
        memcpy(j->inm, inm->base, inm->len);
        j->inm_len = inm->len;
        j->has_inm = 1;
    }
    j->deps = &self->deps;
    j->hj.work = job_work;
    j->hj.done = job_done;
    int err = me_http_defer(req, self->deps.pool, &j->hj);
    if (err != 0) {
        me_http_send_error(req, err, NULL);
        job_free(j);
    }
}

/* /v1/media/<id>: GET, DELETE. */
static int on_media(h2o_handler_t *_self, h2o_req_t *req)
{
    media_handler_t *self = (media_handler_t *)_self;
    static const char prefix[] = "/v1/media/";
    const char *p = req->path.base, *end = p + (req->query_at != SIZE_MAX ? req->query_at : req->path.len);
    char id[ID_MAX + 1];
    media_job_t *j;

    if ((size_t)(end - p) <= sizeof(prefix) - 1 || memcmp(p, prefix, sizeof(prefix) - 1) != 0 ||
        !take_id(p + sizeof(prefix) - 1, end, id, &p) || p != end) {
        me_http_send_error(req, ME_ENOTFOUND, NULL);
        return 0;
    }
    if (!me_http_check_method(req, "GET, DELETE"))
        return 0;
    if ((j = calloc(1, sizeof(*j))) == NULL || (j->ids = calloc(1, sizeof(*j->ids))) == NULL) {
        if (j != NULL)
            job_free(j);
        me_http_send_error(req, ME_ENOMEM, NULL);
        return 0;
    }
    j->op = is_method(req, "GET") ? OP_GET : OP_DELETE;
    memcpy(j->ids[0], id, sizeof(id));
    j->nids = 1;
    if (!authorize(req, self, j, NULL, 0)) {
        job_free(j);
        return 0;
    }
    snprintf(j->album, sizeof(j->album), "%s", j->who.album);
    submit(req, self, j);
    return 0;
}

/* /v1/albums/<album>/media?ids=..., /v1/albums/<album>/cookies: GET; /v1/albums/<album>: DELETE. */
static int on_albums(h2o_handler_t *_self, h2o_req_t *req)
{
    media_handler_t *self = (media_handler_t *)_self;
    static const char prefix[] = "/v1/albums/";
    const char *p = req->path.base, *end = p + (req->query_at != SIZE_MAX ? req->query_at : req->path.len);
    char album[ID_MAX + 1];
    media_job_t *j;

    if ((size_t)(end - p) <= sizeof(prefix) - 1 || memcmp(p, prefix, sizeof(prefix) - 1) != 0 ||
        !take_id(p + sizeof(prefix) - 1, end, album, &p)) {
        me_http_send_error(req, ME_ENOTFOUND, NULL);
        return 0;
    }
    size_t rest = (size_t)(end - p);
    if (rest >= 9 && memcmp(p, "/montages", 9) == 0 && (rest == 9 || p[9] == '/'))
        return -1; /* the montages' handler, next on this route (handlers/montages.h) */
    int media = rest == 6 && !memcmp(p, "/media", 6), cookies = rest == 8 && !memcmp(p, "/cookies", 8);
    if (!media && !cookies && rest != 0) {
        me_http_send_error(req, ME_ENOTFOUND, NULL);
        return 0;
    }
    if (!me_http_check_method(req, rest == 0 ? "DELETE" : "GET"))
        return 0;
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        me_http_send_error(req, ME_ENOMEM, NULL);
        return 0;
    }
    j->op = media ? OP_BATCH : cookies ? OP_COOKIES : OP_DELETE_ALBUM;
    memcpy(j->album, album, sizeof(album));
    if (!authorize(req, self, j, album, rest == 0)) {
        job_free(j);
        return 0;
    }
    if (cookies) {
        send_cookies(req, &self->deps, album);
        job_free(j);
        return 0;
    }
    if (media && !parse_ids(req, j)) {
        me_http_send_error(req, ME_EINVAL, j->message);
        job_free(j);
        return 0;
    }
    submit(req, self, j);
    return 0;
}

h2o_pathconf_t *me_media_register(h2o_hostconf_t *host, const me_media_deps_t *deps)
{
    h2o_pathconf_t *pathconf = me_http_api_route(host, "/v1/media", "/v1/media/{id}", deps->cors, "GET, DELETE");
    media_handler_t *h = (media_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_media;
    h->deps = *deps;
    pathconf = me_http_api_route(host, "/v1/albums", "/v1/albums/{album}", deps->cors, "GET, DELETE");
    h = (media_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_albums;
    h->deps = *deps;
    return pathconf;
}
