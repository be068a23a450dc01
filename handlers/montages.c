/* montages.c: the montages API: requests parsed and tokens checked here, the media read and
 * the montage stored (or its status read) on the pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "handlers/montages.h"
#include "server/delivery/delivery.h"
#include "server/http/http.h"
#include "server/media/manifest.h"
#include "server/media/montage/montage.h"
#include "server/media/montage/montage_config.h"

typedef struct {
    h2o_handler_t super;
    me_montages_deps_t deps;
} montages_handler_t;

typedef struct {
    me_http_job_t hj;
    const me_montages_deps_t *deps;
    int post;
    me_token_claims_t who;
    char id[ME_MONTAGE_ID_LEN + 1], sha[65];
    me_montage_request_t req; /* POST */
    /* results */
    int err, created;
    const char *message;
    char status[16];
    json_t *problems;
    char *body;
    size_t len;
} montage_job_t;

static void job_free(montage_job_t *j)
{
    json_decref(j->problems);
    free(j->body);
    free(j);
}

static void job_work(me_http_job_t *hj)
{
    montage_job_t *j = (montage_job_t *)hj;
    const me_montages_deps_t *d = j->deps;
    int64_t now = (int64_t)time(NULL);
    json_t *m = NULL, *view = NULL;

    if (j->post) {
        j->err = me_montage_create(d->storage, &j->who, &j->req, j->id, j->sha, now, &j->problems, &j->created,
                                   &j->message, j->status, sizeof(j->status));
        if (j->err == 0 && j->created && d->on_job != NULL)
            d->on_job(d->on_job_ctx, j->id);
        return;
    }
    int ret = me_manifest_load(d->storage, j->id, &m);
    const char *kind = ret == 0 ? me_manifest_kind(m) : NULL, *album = ret == 0 ? me_manifest_album(m) : NULL;
    if (ret == ME_ENOTFOUND || ret == ME_EINVAL ||
        (ret == 0 &&
         (kind == NULL || strcmp(kind, "montage") != 0 || album == NULL || strcmp(album, j->who.album) != 0)))
        j->err = ME_ENOTFOUND;
    else if (ret != 0)
        j->err = ME_EIO;
    else if ((view = me_montage_view(d->delivery, m, now)) == NULL ||
             (j->body = json_dumps(view, JSON_COMPACT)) == NULL)
        j->err = ME_ENOMEM;
    else
        j->len = strlen(j->body);
    json_decref(view);
    json_decref(m);
}

static void job_done(me_http_job_t *hj)
{
    montage_job_t *j = (montage_job_t *)hj;
    h2o_req_t *req = hj->req;
    char *text = NULL;
    if (req == NULL)
        goto exit;
    if (j->err == ME_EMEDIA_NOT_READY) {
        json_t *doc = json_pack("{s:s,s:s,s:O}", "error", me_err_code(j->err), "message", me_err_message(j->err),
                                "media", j->problems);
        if (doc != NULL && (text = json_dumps(doc, JSON_COMPACT)) != NULL)
            me_http_send_json(req, me_err_status(j->err), text, strlen(text));
        else
            me_http_send_error(req, ME_ENOMEM, NULL);
        json_decref(doc);
    } else if (j->err != 0)
        me_http_send_error(req, j->err, j->message);
    else if (j->post) {
        char *location = h2o_mem_alloc_pool(&req->pool, 160), body[512];
        int n = snprintf(location, 160, "/v1/albums/%s/montages/%s", j->who.album, j->id);
        me_http_add_header(req, "location", location, (size_t)n);
        n = snprintf(body, sizeof(body),
                     "{\"id\":\"%s\",\"album\":\"%s\",\"status\":\"%s\",\"created\":%s,\"url\":\"%s\"}", j->id,
                     j->who.album, j->status, j->created ? "true" : "false", location);
        me_http_send_json(req, 202, body, (size_t)n);
    } else
        me_http_send_json(req, 200, j->body, j->len);
exit:
    free(text);
    job_free(j);
}

/* The token: scope montage (GET: also view or admin) for this album, and for a POST the
 * premium plan. 1, or 0 after answering. */
static int authorize(h2o_req_t *req, const montages_handler_t *self, montage_job_t *j, const char *album)
{
    if (me_http_authorize(req, self->deps.verifier, 0, &j->who) != 0)
        return 0;
    const char *refusal = NULL;
    if (j->post && j->who.scope != ME_SCOPE_MONTAGE)
        refusal = "Montages are asked for by the app's backend, with a token of scope montage.";
    else if (!j->post && j->who.scope == ME_SCOPE_UPLOAD)
        refusal = "This token does not allow viewing.";
    else if (strcmp(album, j->who.album) != 0)
        refusal = "This token is for another album.";
    if (refusal != NULL) {
        me_http_send_error(req, ME_EFORBIDDEN, refusal);
        return 0;
    }
    if (j->post && j->who.plan != ME_PLAN_PREMIUM) {
        me_http_send_error(req, ME_EMONTAGE_PLAN, NULL);
        return 0;
    }
    return 1;
}

/* Reads the POST's body and Idempotency-Key into j. 1, or 0 after answering. */
static int parse_post(h2o_req_t *req, const montages_handler_t *self, montage_job_t *j)
{
    const me_montage_settings_t *ms = me_montage_settings(self->deps.cfg);
    const h2o_iovec_t *key = me_http_header(req, "idempotency-key");
    char message[256], keytext[ME_MONTAGE_KEY_MAX + 1];

    if (req->entity.len > ms->max_request) {
        me_http_send_error(req, ME_ETOOLARGE, "The request's body is larger than montages.max_request.");
        return 0;
    }
    if (me_montage_parse(req->entity.base != NULL ? req->entity.base : "", req->entity.len, ms->max_media, &j->req,
                         message, sizeof(message)) != 0) {
        me_http_send_error(req, ME_EINVAL, h2o_strdup(&req->pool, message, SIZE_MAX).base);
        return 0;
    }
    if (key != NULL && !me_montage_key_valid(key->base, key->len)) {
        me_http_send_error(req, ME_EINVAL, "Idempotency-Key must be 1 to 255 printable ASCII characters.");
        return 0;
    }
    if (key != NULL) {
        memcpy(keytext, key->base, key->len);
        keytext[key->len] = '\0';
    }
    me_montage_id(j->who.album, &j->req, key != NULL ? keytext : NULL, j->id, j->sha);
    return 1;
}

/* /v1/albums/<album>/montages: POST; /v1/albums/<album>/montages/<id>: GET. Other album
 * paths are the media handler's. */
static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    montages_handler_t *self = (montages_handler_t *)_self;
    static const char prefix[] = "/v1/albums/", suffix[] = "/montages";
    const char *p = req->path.base, *end = p + (req->query_at != SIZE_MAX ? req->query_at : req->path.len);
    char album[ME_TOKEN_ID_MAX + 1], id[ME_MONTAGE_ID_LEN + 1] = "";
    size_t n;

    if ((size_t)(end - p) <= sizeof(prefix) - 1 || memcmp(p, prefix, sizeof(prefix) - 1) != 0)
        return -1;
    p += sizeof(prefix) - 1;
    n = me_delivery_id_span(p, (size_t)(end - p));
    if (n == 0 || n > ME_TOKEN_ID_MAX || (size_t)(end - p - n) < sizeof(suffix) - 1 ||
        memcmp(p + n, suffix, sizeof(suffix) - 1) != 0)
        return -1;
    memcpy(album, p, n);
    album[n] = '\0';
    p += n + sizeof(suffix) - 1;
    if (p != end) {
        size_t m = *p == '/' ? me_delivery_id_span(p + 1, (size_t)(end - p - 1)) : 0;
        if (m != ME_MONTAGE_ID_LEN || p + 1 + m != end) {
            me_http_send_error(req, ME_ENOTFOUND, NULL);
            return 0;
        }
        memcpy(id, p + 1, m);
        id[m] = '\0';
    }
    if (!me_http_check_method(req, id[0] ? "GET" : "POST"))
        return 0;
    montage_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        me_http_send_error(req, ME_ENOMEM, NULL);
        return 0;
    }
    j->post = id[0] == '\0';
    memcpy(j->id, id, sizeof(id));
    if (!authorize(req, self, j, album) || (j->post && !parse_post(req, self, j))) {
        job_free(j);
        return 0;
    }
    j->deps = &self->deps;
    j->hj.work = job_work;
    j->hj.done = job_done;
    int err = me_http_defer(req, self->deps.pool, &j->hj);
    if (err != 0) {
        me_http_send_error(req, err, NULL);
        job_free(j);
    }
    return 0;
}

void me_montages_register(h2o_pathconf_t *pathconf, const me_montages_deps_t *deps)
{
    montages_handler_t *h = (montages_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = on_req;
    h->deps = *deps;
}
