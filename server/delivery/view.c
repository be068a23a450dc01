/* view.c: the media API's view of a manifest, with signed URLs. */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include "server/delivery/view.h"
#include "server/media/manifest.h"

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
