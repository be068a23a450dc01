/* view.c: the media API's view of a manifest, with signed URLs, and the cache of views. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "server/delivery/view.h"
#include "server/media/deletion.h"
#include "server/media/manifest.h"
#include "server/storage/layout.h"

#define VIEW_LOCKS 16
#define ID_MAX 64

/* Copies member name of from into to when present. */
static int copy(json_t *to, const json_t *from, const char *name)
{
    json_t *v = json_object_get(from, name);
    return v == NULL || json_object_set(to, name, v) == 0 ? 0 : -1;
}

/* A signed URL of file of the media under name "url" in obj; *expires set. */
static int add_url(me_delivery_t *d, json_t *obj, const char *album, const char *id, const char *file, int64_t now,
                   int64_t *expires)
{
    char url[ME_CF_URL_MAX];
    if (me_delivery_sign_file(d, album, id, file, now, url, sizeof(url), expires) != 0)
        return -1;
    return json_object_set_new(obj, "url", json_string(url)) == 0 ? 0 : -1;
}

json_t *me_delivery_view(me_delivery_t *d, const json_t *m, int64_t now)
{
    static const char *const facts[] = {"id", "album", "kind", "status", "created_at", "processed_at", "taken_at",
                                        "has_location", "location", "duration", "error"};
    const char *id = me_manifest_id(m), *album = me_manifest_album(m), *name;
    const json_t *orig = json_object_get(m, "original"), *v;
    json_t *out = json_object(), *original = json_object(), *variants = json_object();
    int64_t expires = 0;
    int bad = out == NULL || original == NULL || variants == NULL || id == NULL || album == NULL;

    for (size_t i = 0; !bad && i < sizeof(facts) / sizeof(facts[0]); i++)
        bad |= copy(out, m, facts[i]);
    /* the photo's displayed size is the original's, once processed */
    bad |= copy(out, orig, "width") | copy(out, orig, "height");
    bad |= copy(original, orig, "bytes") | copy(original, orig, "content_type") | copy(original, orig, "width") |
           copy(original, orig, "height");
    if (!bad && me_delivery_serve_original(d))
        bad |= add_url(d, original, album, id, ME_DELIVERY_ORIGINAL, now, &expires);
    const char *status = me_manifest_status(m);
    json_object_foreach((json_t *)json_object_get(m, "variants"), name, v) {
        if (bad || status == NULL || strcmp(status, "ready") != 0)
            break;
        json_t *entry = json_deep_copy(v);
        bad |= entry == NULL || json_object_del(entry, "key") != 0 ||
               add_url(d, entry, album, id, name, now, &expires) != 0 || json_object_set_new(variants, name, entry) != 0;
    }
    bad |= json_object_set(out, "original", original) | json_object_set(out, "variants", variants);
    if (!bad && expires != 0)
        bad |= json_object_set_new(out, "urls_expire_at", json_integer(expires));
    json_decref(original);
    json_decref(variants);
    if (bad) {
        json_decref(out);
        return NULL;
    }
    return out;
}

void me_delivery_json_etag(const char *body, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(body, len, md, &n, EVP_sha256(), NULL))
        memset(md, 0, sizeof(md)); /* an ETag that matches nothing useful: the body is sent */
    out[0] = '"';
    for (int i = 0; i < 16; i++)
        snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
    out[33] = '"';
    out[34] = '\0';
}

/* ---- the cache ---- */

/* One rendered view: valid while its manifest is the object of etag manifest_etag and the
 * URLs inside expire at expires. */
typedef struct {
    char media_id[ID_MAX + 1], album[ID_MAX + 1];
    char manifest_etag[ME_STORAGE_ETAG_MAX + 1];
    int64_t expires;
    char etag[ME_DELIVERY_JSON_ETAG_MAX + 1];
    char *text;
    size_t len;
} view_slot_t;

struct me_delivery_views {
    me_delivery_t *d;
    me_storage_t *st;
    view_slot_t *slots;
    size_t n;
    pthread_mutex_t locks[VIEW_LOCKS];
    _Atomic uint64_t rendered;
};

me_delivery_views_t *me_delivery_views_new(me_delivery_t *d, me_storage_t *st, int entries)
{
    me_delivery_views_t *v = calloc(1, sizeof(*v));
    if (v == NULL || (entries > 0 && (v->slots = calloc((size_t)entries, sizeof(*v->slots))) == NULL)) {
        free(v);
        return NULL;
    }
    v->d = d, v->st = st, v->n = entries > 0 ? (size_t)entries : 0;
    for (int i = 0; i < VIEW_LOCKS; i++)
        pthread_mutex_init(&v->locks[i], NULL);
    return v;
}

void me_delivery_views_free(me_delivery_views_t *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n; i++)
        free(v->slots[i].text);
    for (int i = 0; i < VIEW_LOCKS; i++)
        pthread_mutex_destroy(&v->locks[i]);
    free(v->slots);
    free(v);
}

uint64_t me_delivery_views_rendered(const me_delivery_views_t *v)
{
    return atomic_load(&((me_delivery_views_t *)v)->rendered);
}

static size_t slot_of(const me_delivery_views_t *v, const char *id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: ids are random already, this only spreads them */
    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (size_t)(h % v->n);
}

/* Copies the cached view of id when it is still good; 1 when it was, ME_ENOTFOUND when it
 * is another album's, 0 when there is none to use. */
static int cached(me_delivery_views_t *v, const char *id, const char *album, const me_storage_stat_t *manifest,
                  int64_t expires, char **text, size_t *len, char *etag)
{
    if (v->n == 0)
        return 0;
    size_t i = slot_of(v, id);
    pthread_mutex_t *lock = &v->locks[i % VIEW_LOCKS];
    int hit = 0;
    pthread_mutex_lock(lock);
    view_slot_t *s = &v->slots[i];
    if (s->text != NULL && strcmp(s->media_id, id) == 0 && strcmp(s->manifest_etag, manifest->etag) == 0 &&
        s->expires == expires) {
        if (strcmp(s->album, album) != 0)
            hit = ME_ENOTFOUND;
        else if ((*text = malloc(s->len + 1)) != NULL) {
            memcpy(*text, s->text, s->len + 1);
            *len = s->len;
            memcpy(etag, s->etag, sizeof(s->etag));
            hit = 1;
        }
    }
    pthread_mutex_unlock(lock);
    return hit;
}

static void keep(me_delivery_views_t *v, const char *id, const char *album, const me_storage_stat_t *manifest,
                 int64_t expires, const char *text, size_t len, const char *etag)
{
    char *copy = v->n > 0 ? malloc(len + 1) : NULL;
    if (copy == NULL)
        return; /* not kept: rendered again next time */
    memcpy(copy, text, len + 1);
    size_t i = slot_of(v, id);
    pthread_mutex_t *lock = &v->locks[i % VIEW_LOCKS];
    pthread_mutex_lock(lock);
    view_slot_t *s = &v->slots[i];
    char *old = s->text;
    snprintf(s->media_id, sizeof(s->media_id), "%s", id);
    snprintf(s->album, sizeof(s->album), "%s", album);
    snprintf(s->manifest_etag, sizeof(s->manifest_etag), "%s", manifest->etag);
    snprintf(s->etag, sizeof(s->etag), "%s", etag);
    s->expires = expires;
    s->text = copy;
    s->len = len;
    pthread_mutex_unlock(lock);
    free(old);
}

int me_delivery_views_get(me_delivery_views_t *v, const char *media_id, const char *album, int64_t now, char **text,
                          size_t *len, char *etag)
{
    char key[ME_STORAGE_KEY_MAX + 1];
    me_storage_stat_t stat;
    json_t *m = NULL, *view = NULL;
    int ret;

    if (strlen(media_id) > ID_MAX || strlen(album) > ID_MAX || me_layout_manifest(key, sizeof(key), media_id) != 0)
        return ME_ENOTFOUND;
    /* the URLs of one view all expire together: the step tells whether cached ones still do */
    int64_t expires = me_delivery_url_expiry(v->d, now);
    if ((ret = me_storage_head(v->st, key, &stat)) != 0)
        return ret == ME_ENOTFOUND || ret == ME_EINVAL ? ME_ENOTFOUND : ME_EIO;
    if ((ret = cached(v, media_id, album, &stat, expires, text, len, etag)) != 0)
        return ret == 1 ? 0 : ret;
    /* read after the look: a manifest replaced in between is kept under the older etag, and
     * rendered again at the next request, never served stale */
    if ((ret = me_manifest_load(v->st, media_id, &m)) != 0) {
        ret = ret == ME_ENOTFOUND || ret == ME_EINVAL ? ME_ENOTFOUND : ME_EIO;
        goto exit;
    }
    const char *owner_album = me_manifest_album(m);
    if (owner_album == NULL || strcmp(owner_album, album) != 0) {
        ret = ME_ENOTFOUND; /* another album's: as if it did not exist */
        goto exit;
    }
    /* a deletion cut short (a crash) leaves the manifest, the last thing it removes, with
     * some variants already gone: the tombstone, its first write, says the media is gone */
    if ((ret = me_media_deleted(v->st, media_id)) != 0) {
        ret = ret == 1 ? ME_ENOTFOUND : ME_EIO;
        goto exit;
    }
    if ((view = me_delivery_view(v->d, m, now)) == NULL || (*text = json_dumps(view, JSON_COMPACT)) == NULL) {
        ret = ME_ENOMEM;
        goto exit;
    }
    atomic_fetch_add(&v->rendered, 1);
    *len = strlen(*text);
    me_delivery_json_etag(*text, *len, etag);
    keep(v, media_id, album, &stat, expires, *text, *len, etag);
exit:
    json_decref(view);
    json_decref(m);
    return ret;
}
