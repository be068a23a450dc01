/* deletion.c: tombstones, and the removal of a media's (or an album's) objects. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/core/log.h"
#include "server/core/failpoint.h"
#include "server/media/deletion.h"
#include "server/media/manifest.h"
#include "server/storage/layout.h"

#define TOMBSTONE_MAX 4096
#define ID_MAX 64

int me_media_tombstone(me_storage_t *st, const char *media_id, json_t **t)
{
    char key[ME_STORAGE_KEY_MAX + 1];
    if (me_layout_tombstone(key, sizeof(key), media_id) != 0)
        return ME_ENOTFOUND;
    int ret = me_storage_get_json(st, key, TOMBSTONE_MAX, t);
    return ret == 0 || ret == ME_ENOTFOUND ? ret : ME_EIO;
}

int me_media_deleted(me_storage_t *st, const char *media_id)
{
    char key[ME_STORAGE_KEY_MAX + 1];
    me_storage_stat_t stat;
    if (me_layout_tombstone(key, sizeof(key), media_id) != 0)
        return 0;
    int ret = me_storage_head(st, key, &stat);
    return ret == 0 ? 1 : ret == ME_ENOTFOUND ? 0 : ME_EIO;
}

/* Removes each listed object; listing first, then deleting, so that the listing is not
 * disturbed by its own deletions. */
typedef struct {
    char (*keys)[ME_STORAGE_KEY_MAX + 1];
    size_t n, cap;
} keys_t;

static int collect_key(const char *key, const me_storage_stat_t *stat, void *arg)
{
    keys_t *k = arg;
    (void)stat;
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 16;
        void *p = realloc(k->keys, cap * sizeof(*k->keys));
        if (p == NULL)
            return ME_ENOMEM;
        k->keys = p, k->cap = cap;
    }
    snprintf(k->keys[k->n++], sizeof(*k->keys), "%s", key);
    return 0;
}

static int delete_prefix(me_storage_t *st, const char *prefix)
{
    keys_t k = {0};
    int ret = me_storage_list(st, prefix, collect_key, &k);
    for (size_t i = 0; ret == 0 && i < k.n; i++) {
        ret = me_storage_delete(st, k.keys[i]);
        me_failpoint("deletion.object_removed");
    }
    free(k.keys);
    return ret == 0 ? 0 : ME_EIO;
}

int me_media_purge(me_storage_t *st, const char *album, const char *media_id)
{
    char key[ME_STORAGE_KEY_MAX + 1];
    int ret = 0;
    /* the job first (nothing starts again), the manifest last (a retry finds the media) */
    if (me_layout_job(key, sizeof(key), media_id) != 0 || me_storage_delete(st, key) != 0)
        ret = ME_EIO;
    if (me_layout_media_variants(key, sizeof(key), album, media_id) != 0 || delete_prefix(st, key) != 0)
        ret = ME_EIO;
    if (me_layout_original(key, sizeof(key), album, media_id) != 0 || me_storage_delete(st, key) != 0)
        ret = ME_EIO;
    if (ret == 0 && (me_layout_manifest(key, sizeof(key), media_id) != 0 || me_storage_delete(st, key) != 0))
        ret = ME_EIO;
    return ret;
}

int me_media_delete(me_storage_t *st, me_webhooks_t *hooks, const json_t *m, int64_t now)
{
    const char *id = me_manifest_id(m), *album = me_manifest_album(m);
    const char *owner = json_string_value(json_object_get(m, "owner"));
    const char *upload_id = json_string_value(json_object_get(m, "upload_id"));
    char key[ME_STORAGE_KEY_MAX + 1], pending[ME_STORAGE_KEY_MAX + 1];
    json_t *tomb = NULL, *event = NULL;
    int ret = ME_EINVAL;

    if (id == NULL || album == NULL || me_layout_tombstone(key, sizeof(key), id) != 0 ||
        me_layout_deletion(pending, sizeof(pending), id) != 0)
        return ME_EINVAL;
    tomb = json_pack("{s:s,s:s,s:s?,s:s?,s:I}", "id", id, "album", album, "owner", owner, "upload_id", upload_id,
                     "deleted_at", (json_int_t)now);
    /* the deletion under way first: a crash anywhere after it is finished by the reconciler
     * (me_media_finish_deletions()), with or without the client asking again */
    if (tomb == NULL || me_storage_put_json(st, pending, tomb) != 0 || me_storage_put_json(st, key, tomb) != 0) {
        ret = tomb == NULL ? ME_ENOMEM : ME_EIO;
        goto exit;
    }
    /* told before the objects go: a deletion cut short still reached the backend, and the
     * retry sends the same event id again, which the backend drops */
    if ((event = json_deep_copy(m)) == NULL || json_object_set_new(event, "status", json_string("deleted")) != 0 ||
        json_object_set_new(event, "deleted_at", json_integer(now)) != 0) {
        ret = ME_ENOMEM;
        goto exit;
    }
    if (hooks != NULL && me_webhooks_raise(hooks, "media.deleted", event) != 0) {
        ret = ME_EIO;
        goto exit;
    }
    /* the upload's state document names the file and its owner: it goes too (before the
     * manifest, which a retry needs to find it) */
    if (upload_id != NULL && me_layout_upload_info(key, sizeof(key), upload_id) == 0 &&
        me_storage_delete(st, key) != 0) {
        ret = ME_EIO;
        goto exit;
    }
    if ((ret = me_media_purge(st, album, id)) != 0 || (ret = me_storage_delete(st, pending)) != 0) {
        me_log_error(NULL, "media %s: deleted, but some of its objects remain; a retry removes them", id);
        ret = ME_EIO;
    }
exit:
    json_decref(event);
    json_decref(tomb);
    return ret;
}

/* Finishes the deletion of id that a crash (or a storage failure) cut short: all of it again
 * while the manifest is there (the event is raised again, under the same id), else what may
 * remain (the upload's state, the objects) and the mark. 0 or ME_EIO. */
static int finish_one(me_storage_t *st, me_webhooks_t *hooks, const char *id)
{
    char key[ME_STORAGE_KEY_MAX + 1], pending[ME_STORAGE_KEY_MAX + 1];
    json_t *mark = NULL, *m = NULL;
    int ret = ME_EIO;

    if (me_layout_deletion(pending, sizeof(pending), id) != 0)
        return ME_EIO;
    if ((ret = me_storage_get_json(st, pending, TOMBSTONE_MAX, &mark)) != 0)
        return ret == ME_ENOTFOUND ? 0 : ME_EIO; /* finished meanwhile */
    const char *album = json_string_value(json_object_get(mark, "album"));
    const char *upload_id = json_string_value(json_object_get(mark, "upload_id"));
    json_int_t at = json_integer_value(json_object_get(mark, "deleted_at"));
    if (album == NULL) {
        ret = me_storage_delete(st, pending) == 0 ? 0 : ME_EIO; /* not one of ours */
    } else if ((ret = me_manifest_load(st, id, &m)) == 0 && me_manifest_album(m) != NULL &&
               strcmp(me_manifest_album(m), album) == 0) {
        ret = me_media_delete(st, hooks, m, at);
    } else if (ret == 0 || ret == ME_ENOTFOUND || ret == ME_EINVAL) {
        ret = ME_EIO;
        if (me_layout_tombstone(key, sizeof(key), id) == 0 && me_storage_put_json(st, key, mark) == 0 &&
            (upload_id == NULL || me_layout_upload_info(key, sizeof(key), upload_id) != 0 ||
             me_storage_delete(st, key) == 0) &&
            me_media_purge(st, album, id) == 0 && me_storage_delete(st, pending) == 0)
            ret = 0;
    } else {
        ret = ME_EIO;
    }
    json_decref(m);
    json_decref(mark);
    return ret;
}

static int collect_pending(const char *key, const me_storage_stat_t *stat, void *arg)
{
    keys_t *k = arg;
    char id[ID_MAX + 1];
    if (!me_layout_doc_id(key, ME_LAYOUT_DELETIONS, ".json", id, sizeof(id)))
        return 0;
    return collect_key(id, stat, k);
}

int me_media_finish_deletions(me_storage_t *st, me_webhooks_t *hooks)
{
    keys_t k = {0};
    int finished = 0, ret = me_storage_list(st, ME_LAYOUT_DELETIONS, collect_pending, &k);
    for (size_t i = 0; ret == 0 && i < k.n; i++)
        if (finish_one(st, hooks, k.keys[i]) == 0)
            finished++;
    free(k.keys);
    if (finished > 0)
        me_log_info(NULL, "media: finished %d deletions that were cut short", finished);
    return ret == 0 ? finished : ret == ME_ENOMEM ? ret : ME_EIO;
}

/* Collects the distinct media ids of "<prefix><id>" or "<prefix><id>/..." keys, in order. */
typedef struct {
    size_t prefix_len;
    char (*ids)[ID_MAX + 1];
    size_t n, cap;
} album_ids_t;

static int collect_id(const char *key, const me_storage_stat_t *stat, void *arg)
{
    album_ids_t *a = arg;
    const char *id = key + a->prefix_len;
    size_t len = strcspn(id, "/");
    (void)stat;
    if (len == 0 || len > ID_MAX || (a->n > 0 && strlen(a->ids[a->n - 1]) == len && !memcmp(a->ids[a->n - 1], id, len)))
        return 0;
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        void *p = realloc(a->ids, cap * sizeof(*a->ids));
        if (p == NULL)
            return ME_ENOMEM;
        a->ids = p, a->cap = cap;
    }
    memcpy(a->ids[a->n], id, len);
    a->ids[a->n++][len] = '\0';
    return 0;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

int me_media_list_album(me_storage_t *st, const char *album, int (*cb)(const char *media_id, void *arg), void *arg)
{
    char originals[ME_STORAGE_KEY_MAX + 1], variants[ME_STORAGE_KEY_MAX + 1];
    album_ids_t a = {0};
    int ret;
    if (me_layout_album_originals(originals, sizeof(originals), album) != 0 ||
        me_layout_album_variants(variants, sizeof(variants), album) != 0)
        return ME_EINVAL;
    a.prefix_len = strlen(originals);
    if ((ret = me_storage_list(st, originals, collect_id, &a)) == 0) {
        a.prefix_len = strlen(variants);
        ret = me_storage_list(st, variants, collect_id, &a);
    }
    if (ret != 0) {
        free(a.ids);
        return ret == ME_ENOMEM ? ret : ME_EIO;
    }
    /* two sorted runs: sort once and skip repeats */
    if (a.n > 1)
        qsort(a.ids, a.n, sizeof(*a.ids), by_id);
    for (size_t i = 0; ret == 0 && i < a.n; i++)
        if (i == 0 || strcmp(a.ids[i], a.ids[i - 1]) != 0)
            ret = cb(a.ids[i], arg);
    free(a.ids);
    return ret;
}
