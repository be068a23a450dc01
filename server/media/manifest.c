/* manifest.c: making, reading, storing and changing media manifests. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "server/media/manifest.h"
#include "server/media/sniff.h"
#include "server/storage/layout.h"

json_t *me_manifest_new(const me_manifest_origin_t *o)
{
    const char *kind = me_sniff_kind(o->content_type);
    if (kind == NULL)
        return NULL;
    return json_pack("{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:{s:s,s:I,s:s,s:s},s:I,s:s*}", "v", 1, "id", o->media_id,
                     "album", o->album, "owner", o->owner, "ref", o->ref, "plan", o->plan, "client", o->client, "kind",
                     kind, "status", "uploaded", "original", "key", o->original_key, "bytes", (json_int_t)o->bytes,
                     "sha256", o->sha256, "content_type", o->content_type, "created_at", (json_int_t)o->created_at,
                     "upload_id", o->upload_id);
}

int me_manifest_load(me_storage_t *st, const char *media_id, json_t **m)
{
    char key[ME_STORAGE_KEY_MAX + 1];
    if (me_layout_manifest(key, sizeof(key), media_id) != 0)
        return ME_EINVAL;
    int ret = me_storage_get_json(st, key, ME_MANIFEST_MAX, m);
    return ret == 0 || ret == ME_ENOTFOUND || ret == ME_EINVAL ? ret : ME_EIO;
}

int me_manifest_store(me_storage_t *st, const json_t *m)
{
    char key[ME_STORAGE_KEY_MAX + 1];
    const char *id = me_manifest_id(m);
    if (id == NULL || me_layout_manifest(key, sizeof(key), id) != 0)
        return ME_EINVAL;
    return me_storage_put_json(st, key, m) == 0 ? 0 : ME_EIO;
}

static const char *member(const json_t *m, const char *name)
{
    return json_string_value(json_object_get(m, name));
}

const char *me_manifest_id(const json_t *m)
{
    return member(m, "id");
}

const char *me_manifest_album(const json_t *m)
{
    return member(m, "album");
}

const char *me_manifest_kind(const json_t *m)
{
    return member(m, "kind");
}

const char *me_manifest_status(const json_t *m)
{
    return member(m, "status");
}

int me_manifest_is_final(const json_t *m)
{
    const char *s = me_manifest_status(m);
    return s != NULL && (strcmp(s, "ready") == 0 || strcmp(s, "failed") == 0);
}

int64_t me_manifest_since(const json_t *m)
{
    const char *s = me_manifest_status(m);
    int processing = s != NULL && strcmp(s, "processing") == 0;
    int64_t since = (int64_t)json_integer_value(json_object_get(m, processing ? "processing_at" : "created_at"));
    int64_t alive = processing ? (int64_t)json_integer_value(json_object_get(m, "progress_at")) : 0;
    return alive > since ? alive : since; /* a long video that says how far it is is not stuck */
}

/* Sets status and, when at is not NULL, at to now; status last, so that a failure leaves the
 * state as it was. */
static int set_state(json_t *m, const char *status, const char *at, int64_t now)
{
    if (at != NULL && json_object_set_new(m, at, json_integer(now)) != 0)
        return ME_ENOMEM;
    return json_object_set_new(m, "status", json_string(status)) == 0 ? 0 : ME_ENOMEM;
}

int me_manifest_set_processing(json_t *m, int64_t now)
{
    return set_state(m, "processing", "processing_at", now);
}

int me_manifest_set_progress(json_t *m, double fraction, int64_t now)
{
    double f = fraction > 0.999 ? 0.999 : fraction > 0 ? fraction : 0; /* 1 is for ready */
    return json_object_set_new(m, "progress", json_real(floor(f * 1000) / 1000)) == 0 &&
                   json_object_set_new(m, "progress_at", json_integer(now)) == 0
               ? 0
               : ME_ENOMEM;
}

int me_manifest_set_waiting(json_t *m)
{
    json_object_del(m, "processing_at");
    return set_state(m, "uploaded", NULL, 0);
}

int me_manifest_set_ready(json_t *m, const json_t *result, int64_t now)
{
    if (result != NULL && json_is_object(result) && json_object_update(m, (json_t *)result) != 0)
        return ME_ENOMEM;
    json_object_del(m, "error");
    return set_state(m, "ready", "processed_at", now);
}

int me_manifest_set_failed(json_t *m, const char *code, const char *message, int64_t now)
{
    if (json_object_set_new(m, "error", json_pack("{s:s,s:s}", "code", code, "message", message)) != 0)
        return ME_ENOMEM;
    return set_state(m, "failed", "processed_at", now);
}

int me_manifest_add_variant(json_t *variants, const char *album, const char *media_id, const char *name,
                            const char *ext, int width, int height, uint64_t bytes, const char *content_type)
{
    char key[ME_STORAGE_KEY_MAX + 1], entry_name[128];
    if (me_layout_variant(key, sizeof(key), album, media_id, name, ext) != 0 ||
        (size_t)snprintf(entry_name, sizeof(entry_name), "%s.%s", name, ext) >= sizeof(entry_name))
        return ME_EINVAL;
    json_t *entry = json_pack("{s:s,s:i,s:i,s:I,s:s}", "key", key, "width", width, "height", height, "bytes",
                              (json_int_t)bytes, "content_type", content_type);
    return entry != NULL && json_object_set_new(variants, entry_name, entry) == 0 ? 0 : ME_ENOMEM;
}
