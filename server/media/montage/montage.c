/* montage.c: a montage request: parsed, its id, checked against the album's media, made
 * durable as a manifest and a job; and its status as the API shows it. */
#include "server/media/montage/montage.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "server/core/b64.h"
#include "server/delivery/view.h"
#include "server/media/deletion.h"
#include "server/media/manifest.h"
#include "server/upload/upload.h"

#define START_MAX 86400.0 /* seconds: a start past any video's length is refused */

/* ---- the request ---- */

static int period_valid(const char *p)
{
    size_t n = strlen(p);
    if (n < 1 || n > ME_MONTAGE_PERIOD_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9') ||
              p[i] == '-' || p[i] == '_'))
            return 0;
    return 1;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const me_montage_item_t *)a)->id, ((const me_montage_item_t *)b)->id);
}

int me_montage_parse(const char *body, size_t len, int max_media, me_montage_request_t *req, char *message, size_t mlen)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr), *media, *item, *caption;
    const char *period;
    size_t i;
    int ret = ME_EINVAL;

    memset(req, 0, sizeof(*req));
    if (doc == NULL || !json_is_object(doc)) {
        snprintf(message, mlen, "The body must be a JSON object: {\"period\":\"2026-11\",\"media\":[{\"id\":...}]}.");
        goto exit;
    }
    period = json_string_value(json_object_get(doc, "period"));
    if (period == NULL || !period_valid(period)) {
        snprintf(message, mlen, "\"period\" must be 1 to %d letters, digits, '-' or '_' (such as \"2026-11\").",
                 ME_MONTAGE_PERIOD_MAX);
        goto exit;
    }
    snprintf(req->period, sizeof(req->period), "%s", period);
    caption = json_object_get(doc, "caption");
    if (caption != NULL && !json_is_null(caption)) {
        const char *c = json_string_value(caption);
        if (c == NULL || (strcmp(c, "date") != 0 && strcmp(c, "none") != 0)) {
            snprintf(message, mlen, "\"caption\" must be \"date\" or \"none\".");
            goto exit;
        }
        req->caption_date = strcmp(c, "date") == 0;
    }
    media = json_object_get(doc, "media");
    if (!json_is_array(media) || json_array_size(media) < 1 || json_array_size(media) > (size_t)max_media) {
        snprintf(message, mlen, "\"media\" must list 1 to %d photos and videos of the album.", max_media);
        goto exit;
    }
    json_array_foreach(media, i, item)
    {
        const char *id = json_string_value(json_object_get(item, "id"));
        json_t *start = json_object_get(item, "start");
        me_montage_item_t *it = &req->items[i];
        if (id == NULL || !me_upload_id_valid(id, strlen(id))) {
            snprintf(message, mlen, "media[%zu]: \"id\" must be a media id.", i);
            goto exit;
        }
        snprintf(it->id, sizeof(it->id), "%s", id);
        it->start = -1;
        if (start != NULL && !json_is_null(start)) {
            if (!json_is_number(start) || !(json_number_value(start) >= 0) || json_number_value(start) > START_MAX) {
                snprintf(message, mlen, "media[%zu]: \"start\" must be seconds into the video, 0 or more.", i);
                goto exit;
            }
            it->start = round(json_number_value(start) * 1000) / 1000;
        }
    }
    req->n = (int)json_array_size(media);
    qsort(req->items, (size_t)req->n, sizeof(req->items[0]), by_id);
    for (int k = 1; k < req->n; k++)
        if (strcmp(req->items[k].id, req->items[k - 1].id) == 0) {
            snprintf(message, mlen, "Media %s is listed twice.", req->items[k].id);
            goto exit;
        }
    ret = 0;
exit:
    json_decref(doc);
    return ret;
}

int me_montage_key_valid(const char *key, size_t len)
{
    if (len < 1 || len > ME_MONTAGE_KEY_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (key[i] < 0x20 || key[i] > 0x7e)
            return 0;
    return 1;
}

static void sha256_update_str(EVP_MD_CTX *c, const char *s)
{
    EVP_DigestUpdate(c, s, strlen(s) + 1); /* with its NUL: fields cannot run into each other */
}

void me_montage_id(const char *album, const me_montage_request_t *req, const char *key, char *id, char *sha)
{
    unsigned char canon[32], named[32];
    unsigned int n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    char start[32];

    /* the canonical request: media sorted by id (me_montage_parse), starts to the ms */
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    sha256_update_str(c, "mediaedge-montage-v1");
    sha256_update_str(c, album);
    sha256_update_str(c, req->period);
    sha256_update_str(c, req->caption_date ? "date" : "none");
    for (int i = 0; i < req->n; i++) {
        sha256_update_str(c, req->items[i].id);
        snprintf(start, sizeof(start), "%.3f", req->items[i].start);
        sha256_update_str(c, req->items[i].start >= 0 ? start : "-");
    }
    EVP_DigestFinal_ex(c, canon, &n);
    for (int i = 0; i < 32; i++)
        snprintf(sha + 2 * i, 3, "%02x", canon[i]);
    if (key != NULL) {
        EVP_DigestInit_ex(c, EVP_sha256(), NULL);
        sha256_update_str(c, "mediaedge-montage-key-v1");
        sha256_update_str(c, album);
        sha256_update_str(c, key);
        EVP_DigestFinal_ex(c, named, &n);
    }
    EVP_MD_CTX_free(c);
    char b64[64];
    me_b64url_encode(key != NULL ? named : canon, 16, b64);
    memcpy(id, b64, ME_MONTAGE_ID_LEN);
    id[ME_MONTAGE_ID_LEN] = '\0';
}

/* ---- the media of a request ---- */

/* Seconds since the epoch of an ISO 8601 time "YYYY-MM-DDThh:mm:ss[.f][Z|+hh:mm]" (no
 * offset: read as UTC); 1 with *at set, or 0. */
static int parse_time(const char *s, int64_t *at)
{
    struct tm tm = {0};
    int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0;
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6)
        return 0;
    const char *p = s + n;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2 && *p == '-')
        oh = -oh, om = -om;
    tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d, tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = sec;
    *at = (int64_t)timegm(&tm) - (oh * 3600 + om * 60);
    return 1;
}

/* "12 Nov 2026": the date where it was taken (the time as written), or of created_at (UTC). */
static void date_caption(const char *taken_at, int64_t created_at, char *out, size_t len)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int y, m, d;
    if (taken_at == NULL || sscanf(taken_at, "%4d-%2d-%2d", &y, &m, &d) != 3 || m < 1 || m > 12) {
        time_t t = (time_t)created_at;
        struct tm tm;
        gmtime_r(&t, &tm);
        y = tm.tm_year + 1900, m = tm.tm_mon + 1, d = tm.tm_mday;
    }
    snprintf(out, len, "%d %s %d", d, months[m - 1], y);
}

/* The variant of manifest m to cut from: of content type type, the one whose long edge is the
 * largest at most 1280 (else the smallest); with small, the smallest. NULL when none. */
static const char *pick_variant(const json_t *m, const char *type, int small, const json_t **out)
{
    const char *name, *best = NULL;
    const json_t *v;
    int best_edge = 0;
    json_object_foreach((json_t *)json_object_get(m, "variants"), name, v)
    {
        const char *t = json_string_value(json_object_get(v, "content_type"));
        int w = (int)json_integer_value(json_object_get(v, "width")),
            h = (int)json_integer_value(json_object_get(v, "height"));
        int edge = w > h ? w : h;
        if (t == NULL || strcmp(t, type) != 0 || edge <= 0 || json_string_value(json_object_get(v, "key")) == NULL)
            continue;
        int better = best == NULL || (small ? edge < best_edge
                                            : (edge <= 1280 && (best_edge > 1280 || edge > best_edge)) ||
                                                  (edge > 1280 && best_edge > 1280 && edge < best_edge));
        if (better)
            best = name, best_edge = edge, *out = v;
    }
    return best;
}

/* The clip of media manifest m for item it, or NULL with *reason set. */
static json_t *clip_of(const json_t *m, const me_montage_item_t *it, const char *album, int caption,
                       const char **reason)
{
    const char *kind = me_manifest_kind(m), *status = me_manifest_status(m), *a = me_manifest_album(m);
    const char *taken_at = json_string_value(json_object_get(m, "taken_at"));
    int64_t created = (int64_t)json_integer_value(json_object_get(m, "created_at")), at;
    const json_t *v = NULL, *s = NULL;
    char date[32] = "";

    if (a == NULL || strcmp(a, album) != 0) {
        *reason = "not_found"; /* another album's: as if it did not exist */
        return NULL;
    }
    if (kind == NULL || (strcmp(kind, "photo") != 0 && strcmp(kind, "video") != 0)) {
        *reason = "not_a_photo_or_video";
        return NULL;
    }
    if (status == NULL || strcmp(status, "ready") != 0) {
        *reason = status != NULL && strcmp(status, "failed") == 0 ? "failed" : "not_ready";
        return NULL;
    }
    int video = strcmp(kind, "video") == 0;
    if (pick_variant(m, video ? "video/mp4" : "image/jpeg", 0, &v) == NULL) {
        *reason = "not_ready";
        return NULL;
    }
    if (!parse_time(taken_at, &at))
        at = created;
    if (caption)
        date_caption(parse_time(taken_at, &(int64_t){0}) ? taken_at : NULL, created, date, sizeof(date));
    json_t *clip = json_pack("{s:s,s:s,s:I,s:s?,s:s,s:O,s:O,s:O,s:O}", "id", it->id, "kind", kind, "at", (json_int_t)at,
                             "taken_at", taken_at, "caption", date, "key", json_object_get(v, "key"), "bytes",
                             json_object_get(v, "bytes"), "width", json_object_get(v, "width"), "height",
                             json_object_get(v, "height"));
    if (clip == NULL)
        return NULL;
    if (it->start >= 0)
        json_object_set_new(clip, "start", json_real(it->start));
    if (video) {
        json_object_set(clip, "duration", json_object_get(m, "duration"));
        if (pick_variant(m, "video/mp4", 1, &s) != NULL && s != v) {
            json_object_set(clip, "small_key", json_object_get(s, "key"));
            json_object_set(clip, "small_bytes", json_object_get(s, "bytes"));
        }
    }
    return clip;
}

/* Capture order: taken_at (else created_at), then id for equal times. */
static int by_capture(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t tx = json_integer_value(json_object_get(x, "at")), ty = json_integer_value(json_object_get(y, "at"));
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return strcmp(json_string_value(json_object_get(x, "id")), json_string_value(json_object_get(y, "id")));
}

/* The existing montage id, when there is one: 1 (found, *status set), 0 (none), or an error. */
static int existing(me_storage_t *st, const me_token_claims_t *who, const char *id, const char *sha, int keyed,
                    const char **message, char *status, size_t slen)
{
    json_t *m = NULL;
    int ret = me_manifest_load(st, id, &m);
    if (ret == ME_ENOTFOUND) {
        int gone = me_media_deleted(st, id);
        if (gone == 1) {
            *message = "This montage was deleted; to make it again, send the request with a new Idempotency-Key.";
            return ME_ECONFLICT;
        }
        return gone == 0 ? 0 : ME_EIO;
    }
    if (ret != 0)
        return ret == ME_EINVAL ? ME_ECONFLICT : ME_EIO;
    const char *kind = me_manifest_kind(m), *album = me_manifest_album(m);
    const char *was = json_string_value(json_object_get(m, "request_sha256"));
    ret = 1;
    if (kind == NULL || strcmp(kind, "montage") != 0 || album == NULL || strcmp(album, who->album) != 0) {
        *message = "This Idempotency-Key is taken; send another.";
        ret = ME_ECONFLICT;
    } else if (keyed && (was == NULL || strcmp(was, sha) != 0)) {
        *message = "This Idempotency-Key was used for another request.";
        ret = ME_ECONFLICT;
    } else
        snprintf(status, slen, "%s", me_montage_status_name(me_manifest_status(m)));
    json_decref(m);
    return ret;
}

int me_montage_create(me_storage_t *st, const me_token_claims_t *who, const me_montage_request_t *req, const char *id,
                      const char *sha, int64_t now, json_t **problems, int *created, const char **message, char *status,
                      size_t slen)
{
    json_t **clips = calloc((size_t)req->n, sizeof(*clips)), *list = NULL, *m = NULL;
    int ret, nclips = 0;
    char canonical[65];
    char canon_id[ME_MONTAGE_ID_LEN + 1];

    *problems = NULL, *created = 0, *message = NULL;
    if (clips == NULL)
        return ME_ENOMEM;
    me_montage_id(who->album, req, NULL, canon_id, canonical);
    if ((ret = existing(st, who, id, sha, strcmp(canon_id, id) != 0, message, status, slen)) != 0) {
        ret = ret == 1 ? 0 : ret;
        goto exit;
    }
    for (int i = 0; i < req->n; i++) {
        const char *reason = NULL;
        json_t *mm = NULL;
        int got = me_manifest_load(st, req->items[i].id, &mm);
        if (got == ME_ENOTFOUND || got == ME_EINVAL)
            reason = "not_found";
        else if (got != 0) {
            ret = ME_EIO;
            goto exit;
        } else if ((clips[nclips] = clip_of(mm, &req->items[i], who->album, req->caption_date, &reason)) != NULL)
            nclips++;
        else if (reason == NULL) {
            json_decref(mm);
            ret = ME_ENOMEM;
            goto exit;
        }
        json_decref(mm);
        if (reason != NULL) {
            if (*problems == NULL && (*problems = json_array()) == NULL) {
                ret = ME_ENOMEM;
                goto exit;
            }
            json_array_append_new(*problems, json_pack("{s:s,s:s}", "id", req->items[i].id, "reason", reason));
        }
    }
    if (*problems != NULL) {
        ret = ME_EMEDIA_NOT_READY;
        goto exit;
    }
    qsort(clips, (size_t)nclips, sizeof(*clips), by_capture);
    if ((list = json_array()) == NULL) {
        ret = ME_ENOMEM;
        goto exit;
    }
    for (int i = 0; i < nclips; i++) {
        json_array_append_new(list, clips[i]);
        clips[i] = NULL;
    }
    m = json_pack("{s:i,s:s,s:s,s:s,s:s?,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:O}", "v", 1, "id", id, "album", who->album,
                  "owner", who->sub, "ref", who->ref[0] ? who->ref : NULL, "plan", me_token_plan_name(who->plan),
                  "kind", "montage", "status", "uploaded", "created_at", (json_int_t)now, "period", req->period,
                  "caption", req->caption_date ? "date" : "none", "request_sha256", sha, "clips", list);
    if (m == NULL) {
        ret = ME_ENOMEM;
        goto exit;
    }
    /* the manifest first, then its job: a crash between leaves a montage the reconciler
     * gives its job back */
    if (me_manifest_store(st, m) != 0 || me_jobs_submit(st, id) != 0) {
        ret = ME_EIO;
        goto exit;
    }
    *created = 1;
    snprintf(status, slen, "queued");
exit:
    for (int i = 0; i < nclips; i++)
        json_decref(clips[i]);
    free(clips);
    json_decref(list);
    json_decref(m);
    return ret;
}

/* ---- the view ---- */

const char *me_montage_status_name(const char *status)
{
    if (status == NULL)
        return "queued";
    return strcmp(status, "uploaded") == 0 ? "queued" : status;
}

json_t *me_montage_view(me_delivery_t *d, const json_t *m, int64_t now)
{
    const char *status = me_manifest_status(m), *name;
    json_t *view = me_delivery_view(d, m, now), *out = NULL, *poster = NULL, *v;
    static const char *const copied[] = {"id",       "album", "period", "caption", "created_at",    "processed_at",
                                         "duration", "width", "height", "error",   "urls_expire_at"};
    double progress = json_number_value(json_object_get(m, "progress"));

    if (view == NULL || (out = json_object()) == NULL || (poster = json_object()) == NULL)
        goto fail;
    for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++) {
        const json_t *from = json_object_get(view, copied[i]) ? view : m;
        json_t *x = json_object_get(from, copied[i]);
        if (x != NULL && json_object_set(out, copied[i], x) != 0)
            goto fail;
    }
    if (status != NULL && strcmp(status, "ready") == 0)
        progress = 1;
    else if (status != NULL && strcmp(status, "processing") != 0)
        progress = 0;
    if (json_object_set_new(out, "status", json_string(me_montage_status_name(status))) != 0 ||
        json_object_set_new(out, "progress", json_real(progress)) != 0 ||
        json_object_set_new(out, "clips", json_integer((json_int_t)json_array_size(json_object_get(m, "clips")))) != 0)
        goto fail;
    json_object_foreach(json_object_get(view, "variants"), name, v)
    {
        if (strcmp(name, ME_MONTAGE_FILM) == 0) {
            if (json_object_set(out, "film", v) != 0)
                goto fail;
        } else if (json_object_set(poster, name, v) != 0)
            goto fail;
    }
    if (json_object_size(poster) > 0 && json_object_set(out, "poster", poster) != 0)
        goto fail;
    json_decref(poster);
    json_decref(view);
    return out;
fail:
    json_decref(poster);
    json_decref(view);
    json_decref(out);
    return NULL;
}
