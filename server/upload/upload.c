/* upload.c: resumable uploads over storage: state documents, parts and pieces, completion. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "server/core/b64.h"
#include "server/core/failpoint.h"
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/jobs/jobs.h"
#include "server/media/manifest.h"
#include "server/media/sniff.h"
#include "server/storage/layout.h"
#include "server/upload/upload.h"
#include "server/upload/upload_config.h"
#include "server/http/server_config.h"
#include "server/upload/upload_internal.h"

#define INFO_MAX (1024 * 1024)   /* an upload's state document; 10000 parts fit */
#define HASH_CHUNK (1024 * 1024)

ME_COUNTER(uploads_created, "mediaedge_uploads_created_total", "Uploads created.", NULL)
ME_COUNTER(uploads_completed, "mediaedge_uploads_completed_total", "Uploads completed into an original.", NULL)
ME_COUNTER(upload_bytes, "mediaedge_upload_bytes_total", "Upload bytes stored (acknowledged).", NULL)
ME_COUNTER(uploads_refused, "mediaedge_uploads_refused_total", "Appends refused, by reason.", "reason")
ME_COUNTER(upload_read_back, "mediaedge_upload_bytes_read_back_total",
           "Bytes of pending pieces read back from storage to become a part (each byte at most once).", NULL)
ME_COUNTER(upload_hash_read_back, "mediaedge_upload_hash_bytes_read_back_total",
           "Bytes of originals read back to hash at completion (their PATCHes came to other instances).", NULL)

static const char *const state_names[] = {"open", "completing", "joining", "completed"};
static const char *const kind_names[] = {"plain", "partial", "final"};

/* ---- ids, keys, locks ---- */

static int random_id(char out[ME_UPLOAD_ID_LEN + 1])
{
    unsigned char raw[16];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return ME_EIO;
    me_b64url_encode(raw, sizeof(raw), out);
    return 0;
}

int me_upload_id_valid(const char *id, size_t len)
{
    if (len != ME_UPLOAD_ID_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

int me_upload_metadata_valid(const char *m, size_t len)
{
    /* "key base64,key2,key3 base64": keys are printable ASCII without space or comma,
     * values standard base64 */
    if (len > ME_UPLOAD_METADATA_MAX)
        return 0;
    size_t i = 0;
    while (i < len) {
        size_t key = 0;
        while (i < len && m[i] != ' ' && m[i] != ',') {
            if (m[i] <= 0x20 || m[i] >= 0x7f)
                return 0;
            i++, key++;
        }
        if (key == 0)
            return 0;
        if (i < len && m[i] == ' ') {
            i++;
            size_t value = 0, pad = 0;
            for (; i < len && m[i] != ','; i++, value++) {
                if (m[i] == '=') {
                    pad++;
                    continue;
                }
                if (pad > 0 || !((m[i] >= 'a' && m[i] <= 'z') || (m[i] >= 'A' && m[i] <= 'Z') ||
                                 (m[i] >= '0' && m[i] <= '9') || m[i] == '+' || m[i] == '/'))
                    return 0; /* not base64, or data after its padding */
            }
            if (value % 4 != 0 || pad > 2 || (pad > 0 && value == pad))
                return 0;
        }
        if (i < len && m[i] == ',' && ++i == len)
            return 0; /* a trailing comma */
    }
    return 1;
}

/* Keys of an upload's objects (storage/layout.h). Upload ids, media ids and albums are
 * checked where they come in (ids made here, token claims), so these keys always fit. */
static void info_key(char *key, size_t len, const char *id)
{
    (void)!me_layout_upload_info(key, len, id);
}

static void piece_key(char *key, size_t len, const char *id, uint64_t offset)
{
    (void)!me_layout_upload_piece(key, len, id, offset);
}

void me_upload_data_key(char *key, size_t len, const char *id)
{
    (void)!me_layout_upload_data(key, len, id);
}

void me_upload_target_key(char *key, size_t len, const me_upload_info_t *in)
{
    if (in->pub.kind == ME_UPLOAD_PARTIAL)
        me_upload_data_key(key, len, in->pub.id);
    else
        (void)!me_layout_original(key, len, in->album, in->pub.media_id);
}

/* The upload locks this thread holds, with their fences, so that a commit of an upload's
 * state can first check that its lock was not lost meanwhile (lock.h, fencing) without every
 * caller carrying the fence: a request holds at most a final's lock and its partials'. */
#define HELD_MAX (ME_UPLOAD_CONCAT_MAX + 2)
static __thread struct {
    char id[ME_LOCK_NAME_MAX + 1];
    uint64_t fence;
} held[HELD_MAX];
static __thread int nheld;

static int held_at(const char *id)
{
    for (int i = 0; i < nheld; i++)
        if (strcmp(held[i].id, id) == 0)
            return i;
    return -1;
}

/* Before a write that counts: 0 when this thread still holds the lock of id (or holds none
 * of it: an upload nobody else knows yet), ME_ELOCKED when it lost it, ME_EIO (lock.h). */
static int still_held(me_uploads_t *u, const char *id)
{
    int i = held_at(id);
    return i >= 0 ? me_locks_check(u->locks, id, held[i].fence) : 0;
}

int me_upload_lock(me_uploads_t *u, const char *id)
{
    uint64_t fence = 0;
    int ret = me_locks_acquire(u->locks, id, &fence);
    if (ret == 0 && nheld == HELD_MAX) { /* never: but an unchecked commit is worse than a 423 */
        me_locks_release(u->locks, id, fence);
        ret = ME_ELOCKED;
    }
    if (ret == 0) {
        snprintf(held[nheld].id, sizeof(held[nheld].id), "%s", id);
        held[nheld++].fence = fence;
    }
    return ret == ME_EINVAL ? ME_ELOCKED : ret;
}

void me_upload_unlock(me_uploads_t *u, const char *id)
{
    int i = held_at(id);
    me_locks_release(u->locks, id, i >= 0 ? held[i].fence : 0);
    if (i >= 0)
        held[i] = held[--nheld];
}

/* ---- the state document ---- */

void me_upload_info_free(me_upload_info_t *in)
{
    free(in->parts);
    free(in->pieces);
    in->parts = NULL;
    in->pieces = NULL;
}

static int copy_str(json_t *obj, const char *name, char *dst, size_t size)
{
    const char *s = json_string_value(json_object_get(obj, name));
    if (s == NULL || strlen(s) >= size)
        return 0;
    strcpy(dst, s);
    return 1;
}

static int get_u64(json_t *obj, const char *name, uint64_t *out)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (uint64_t)json_integer_value(v);
    return 1;
}

/* The index of s in names[0..n), or -1. */
static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; s != NULL && i < n; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

/* The concatenation fields: absent from the documents of plain uploads stored before them. */
static int parse_concat(json_t *root, me_upload_info_t *in)
{
    json_t *kind = json_object_get(root, "kind"), *list = json_object_get(root, "partials"), *e;
    size_t i;
    int k = kind == NULL ? ME_UPLOAD_PLAIN : name_index(kind_names, 3, json_string_value(kind));
    if (k < 0 ||
        (json_object_get(root, "used_by") != NULL && !copy_str(root, "used_by", in->used_by, sizeof(in->used_by))))
        return 0;
    in->pub.kind = (me_upload_kind_t)k;
    if (list == NULL)
        return 1;
    if (!json_is_array(list) || json_array_size(list) > ME_UPLOAD_CONCAT_MAX)
        return 0;
    json_array_foreach(list, i, e) {
        const char *id = json_string_value(e);
        if (id == NULL || !me_upload_id_valid(id, strlen(id)))
            return 0;
        strcpy(in->pub.partials[in->pub.npartials++], id);
    }
    return 1;
}

static int parse_info(const char *text, size_t len, me_upload_info_t *in)
{
    json_t *root = json_loadb(text, len, 0, NULL), *v;
    uint64_t created, expires;
    char state[16];
    int ok = 0, st;
    memset(in, 0, sizeof(*in));
    if (root == NULL)
        return ME_EIO;
    if (!copy_str(root, "id", in->pub.id, sizeof(in->pub.id)) ||
        !copy_str(root, "media_id", in->pub.media_id, sizeof(in->pub.media_id)) ||
        !copy_str(root, "owner", in->owner, sizeof(in->owner)) ||
        !copy_str(root, "album", in->album, sizeof(in->album)) || !copy_str(root, "ref", in->ref, sizeof(in->ref)) ||
        !copy_str(root, "plan", in->plan, sizeof(in->plan)) ||
        !copy_str(root, "client", in->client, sizeof(in->client)) ||
        !copy_str(root, "multipart", in->multipart, sizeof(in->multipart)) ||
        !copy_str(root, "metadata", in->pub.metadata, sizeof(in->pub.metadata)) ||
        !copy_str(root, "content_type", in->pub.content_type, sizeof(in->pub.content_type)) ||
        !get_u64(root, "offset", &in->pub.offset) || !get_u64(root, "max_size", &in->pub.max_size) ||
        !get_u64(root, "created", &created) || !get_u64(root, "expires", &expires) ||
        !copy_str(root, "state", state, sizeof(state)))
        goto exit;
    if ((st = name_index(state_names, 4, state)) < 0 || !parse_concat(root, in))
        goto exit;
    in->state = (me_upload_state_t)st;
    in->pub.length = ME_UPLOAD_LENGTH_DEFERRED;
    if (!json_is_null(v = json_object_get(root, "length")) && !get_u64(root, "length", &in->pub.length))
        goto exit;
    in->created = (int64_t)created;
    in->pub.expires = (int64_t)expires;
    uint64_t next = 0;
    if (json_object_get(root, "next_part") != NULL &&
        (!get_u64(root, "next_part", &next) || next == 0 || next > ME_UPLOAD_MAX_PARTS + 1))
        goto exit;
    in->next_part = (int)next; /* 0 in documents older than it */
    in->pub.completed = in->state == ME_UPLOAD_COMPLETED;

    json_t *parts = json_object_get(root, "parts"), *pieces = json_object_get(root, "pieces");
    if (!json_is_array(parts) || !json_is_array(pieces) || json_array_size(parts) > ME_UPLOAD_MAX_PARTS ||
        json_array_size(pieces) > ME_UPLOAD_MAX_PARTS)
        goto exit;
    in->parts = calloc(json_array_size(parts) + 1, sizeof(*in->parts));
    in->pieces = calloc(json_array_size(pieces) + 1, sizeof(*in->pieces));
    if (in->parts == NULL || in->pieces == NULL)
        goto exit;
    size_t i;
    json_t *e;
    json_array_foreach(parts, i, e) {
        me_storage_part_t *p = &in->parts[in->nparts++];
        uint64_t n;
        if (!get_u64(e, "n", &n) || n == 0 || n > ME_UPLOAD_MAX_PARTS || !get_u64(e, "size", &p->size) ||
            !copy_str(e, "etag", p->etag, sizeof(p->etag)))
            goto exit;
        p->number = (int)n;
    }
    json_array_foreach(pieces, i, e) {
        me_upload_piece_t *p = &in->pieces[in->npieces++];
        if (!get_u64(e, "offset", &p->offset) || !get_u64(e, "size", &p->size))
            goto exit;
    }
    ok = 1;
exit:
    json_decref(root);
    if (!ok) {
        me_upload_info_free(in);
        return ME_EIO;
    }
    return 0;
}

/* Stores doc (JSON, consumed) at key durably. 0, ME_ENOMEM, or the storage error. */
static int put_json(me_uploads_t *u, const char *key, json_t *doc)
{
    int ret = doc != NULL ? me_storage_put_json(u->st, key, doc) : ME_ENOMEM;
    json_decref(doc);
    return ret;
}

int me_upload_info_save(me_uploads_t *u, const me_upload_info_t *in)
{
    json_t *parts = json_array(), *pieces = json_array();
    for (int i = 0; i < in->nparts; i++)
        json_array_append_new(parts, json_pack("{s:i,s:I,s:s}", "n", in->parts[i].number, "size",
                                               (json_int_t)in->parts[i].size, "etag", in->parts[i].etag));
    for (int i = 0; i < in->npieces; i++)
        json_array_append_new(pieces, json_pack("{s:I,s:I}", "offset", (json_int_t)in->pieces[i].offset, "size",
                                                (json_int_t)in->pieces[i].size));
    json_t *root = json_pack(
        "{s:i,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:s,s:o,s:o}", "v", 1, "id", in->pub.id,
        "media_id", in->pub.media_id, "owner", in->owner, "album", in->album, "ref", in->ref, "plan", in->plan,
        "client", in->client, "multipart", in->multipart, "metadata", in->pub.metadata, "content_type",
        in->pub.content_type, "length",
        in->pub.length == ME_UPLOAD_LENGTH_DEFERRED ? json_null() : json_integer((json_int_t)in->pub.length),
        "offset", (json_int_t)in->pub.offset, "max_size", (json_int_t)in->pub.max_size, "created",
        (json_int_t)in->created, "expires", (json_int_t)in->pub.expires, "state", state_names[in->state], "parts", parts,
        "pieces", pieces);
    if (root != NULL) {
        json_object_set_new(root, "kind", json_string(kind_names[in->pub.kind]));
        if (in->next_part > 0)
            json_object_set_new(root, "next_part", json_integer(in->next_part));
        if (in->pub.kind == ME_UPLOAD_PARTIAL)
            json_object_set_new(root, "used_by", json_string(in->used_by));
    }
    if (root != NULL && in->pub.kind == ME_UPLOAD_FINAL) {
        json_t *list = json_array();
        for (int i = 0; i < in->pub.npartials; i++)
            json_array_append_new(list, json_string(in->pub.partials[i]));
        json_object_set_new(root, "partials", list);
    }
    char key[ME_STORAGE_KEY_MAX];
    info_key(key, sizeof(key), in->pub.id);
    /* the commit point: refused when this thread's lock on the upload was lost meanwhile */
    int ret = still_held(u, in->pub.id);
    if (ret != 0) {
        json_decref(root);
        return ret;
    }
    return put_json(u, key, root);
}

int me_upload_info_load(me_uploads_t *u, const me_token_claims_t *who, const char *id, int64_t now,
                        me_upload_info_t *in)
{
    char key[ME_STORAGE_KEY_MAX], *text;
    size_t len;
    int ret;
    info_key(key, sizeof(key), id);
    if ((ret = me_storage_get_all(u->st, key, INFO_MAX, &text, &len)) != 0)
        return ret == ME_ENOTFOUND ? ME_ENOTFOUND : ME_EIO;
    ret = parse_info(text, len, in);
    free(text);
    if (ret != 0) {
        me_log_error(NULL, "upload %s: unreadable state document", id);
        return ME_EIO;
    }
    /* another user's upload does not exist for this one; an expired one for nobody */
    if (strcmp(in->owner, who->sub) != 0 || (in->state != ME_UPLOAD_COMPLETED && now >= in->pub.expires)) {
        me_upload_info_free(in);
        return ME_ENOTFOUND;
    }
    return 0;
}

/* ---- creation ---- */

int me_upload_info_init(me_uploads_t *u, const me_token_claims_t *who, me_upload_kind_t kind, uint64_t length,
                        const char *metadata, int64_t now, me_upload_info_t *in)
{
    char key[ME_STORAGE_KEY_MAX];
    int ret;

    memset(in, 0, sizeof(*in));
    in->pub.kind = kind;
    in->pub.max_size = u->max_size;
    if (who->max_bytes != 0 && who->max_bytes < in->pub.max_size)
        in->pub.max_size = who->max_bytes;
    if (length != ME_UPLOAD_LENGTH_DEFERRED && length > in->pub.max_size)
        return ME_EUPLOAD_SIZE;
    if (length == 0)
        return ME_EMEDIA; /* an empty file is no photo */
    /* a partial upload never becomes media by itself: no media id */
    if ((ret = random_id(in->pub.id)) != 0 || (kind != ME_UPLOAD_PARTIAL && (ret = random_id(in->pub.media_id)) != 0))
        return ret;
    in->pub.length = length;
    in->next_part = 1;
    in->pub.expires = now + u->expire_after;
    in->created = now;
    snprintf(in->pub.metadata, sizeof(in->pub.metadata), "%s", metadata);
    strcpy(in->owner, who->sub);
    strcpy(in->album, who->album);
    strcpy(in->ref, who->ref);
    snprintf(in->plan, sizeof(in->plan), "%s", me_token_plan_name(who->plan));
    snprintf(in->client, sizeof(in->client), "%s", me_token_client_name(who->client));
    me_upload_target_key(key, sizeof(key), in);
    ret = me_storage_multipart_begin(u->st, key, in->multipart, sizeof(in->multipart));
    if (ret != 0)
        return ret == ME_ENOSPACE ? ret : ME_EIO;
    return 0;
}

static int create(me_uploads_t *u, const me_token_claims_t *who, me_upload_kind_t kind, uint64_t length,
                  const char *metadata, int64_t now, me_upload_t *out)
{
    me_upload_info_t in;
    int ret = me_upload_info_init(u, who, kind, length, metadata, now, &in);
    if (ret == 0 && (ret = me_upload_info_save(u, &in)) != 0)
        me_upload_discard(u, &in);
    if (ret != 0)
        return ret;
    me_metric_add(uploads_created, NULL, 1);
    *out = in.pub;
    return 0;
}

int me_upload_create(me_uploads_t *u, const me_token_claims_t *who, uint64_t length, const char *metadata,
                     int64_t now, me_upload_t *out)
{
    return create(u, who, ME_UPLOAD_PLAIN, length, metadata, now, out);
}

int me_upload_create_partial(me_uploads_t *u, const me_token_claims_t *who, uint64_t length, const char *metadata,
                             int64_t now, me_upload_t *out)
{
    return create(u, who, ME_UPLOAD_PARTIAL, length, metadata, now, out);
}

/* ---- completion ---- */

/* SHA-256 of a stored object, read in chunks; hex into out[65]. */
static int hash_object(me_uploads_t *u, const char *key, uint64_t size, char out[65])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *buf = malloc(HASH_CHUNK), digest[32];
    int ret = ME_EIO;
    if (ctx == NULL || buf == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto exit;
    for (uint64_t off = 0; off < size;) {
        size_t got;
        if (me_storage_get(u->st, key, off, HASH_CHUNK, buf, &got) != 0 || got == 0 ||
            EVP_DigestUpdate(ctx, buf, got) != 1)
            goto exit;
        off += got;
    }
    if (EVP_DigestFinal_ex(ctx, digest, NULL) != 1)
        goto exit;
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", digest[i]);
    ret = 0;
exit:
    free(buf);
    EVP_MD_CTX_free(ctx);
    return ret;
}

static int delete_listed(const char *key, const me_storage_stat_t *stat, void *st)
{
    (void)!me_storage_delete(st, key);
    return 0;
}

/* Deletes every object under uploads/<id>/, best effort: its pieces and a partial's data
 * object, and also pieces its state no longer names (merged into a part, then a crash before
 * they were deleted). */
static void delete_objects(me_uploads_t *u, const char *id)
{
    char prefix[ME_STORAGE_KEY_MAX];
    if (me_layout_upload_objects(prefix, sizeof(prefix), id) != 0)
        return;
    (void)!me_storage_list(u->st, prefix, delete_listed, u->st);
}

void me_upload_discard(me_uploads_t *u, me_upload_info_t *in)
{
    char key[ME_STORAGE_KEY_MAX];
    me_upload_target_key(key, sizeof(key), in);
    (void)!me_storage_multipart_abort(u->st, key, in->multipart);
    delete_objects(u, in->pub.id); /* a complete partial's bytes are its target key */
    info_key(key, sizeof(key), in->pub.id);
    (void)!me_storage_delete(u->st, key);
}

/* Whether an earlier finish of this upload got as far as its media's manifest, its answer
 * lost to a failure after (Redis gone at the lock's release, a crash before the state was
 * saved): 1, and the media's job made sure of unless the media is over; 0 when not; ME_EIO.
 * That finish is not redone: the media may be processing or ready by now, and a new manifest
 * would set it back to uploaded and run its job a second time. */
static int finished_before(me_uploads_t *u, const char *media_id)
{
    json_t *m;
    int ret = me_manifest_load(u->st, media_id, &m);
    if (ret != 0)
        return ret == ME_ENOTFOUND ? 0 : ME_EIO;
    int over = me_manifest_is_final(m);
    json_decref(m);
    return over || me_jobs_submit_missing(u->st, media_id) == 0 ? 1 : ME_EIO;
}

/* The media of a complete upload whose bytes at key are of type: its manifest (status
 * uploaded) and its job document, stored. 0, ME_ENOMEM, ME_ENOSPACE or ME_EIO. */
static int store_media(me_uploads_t *u, me_upload_info_t *in, const char *key, const char *type)
{
    char sha[65];
    /* hashed as the bytes came, when they all came here in order; else read back */
    if (me_upload_hashes_take(u->hashes, in->pub.id, in->pub.length, sha) != 0) {
        me_metric_add(upload_hash_read_back, NULL, (double)in->pub.length);
        if (hash_object(u, key, in->pub.length, sha) != 0)
            return ME_EIO;
    }
    me_manifest_origin_t origin = {.media_id = in->pub.media_id,
                                   .album = in->album,
                                   .owner = in->owner,
                                   .ref = in->ref,
                                   .plan = in->plan,
                                   .client = in->client,
                                   .original_key = key,
                                   .bytes = in->pub.length,
                                   .sha256 = sha,
                                   .content_type = type,
                                   .created_at = (int64_t)time(NULL),
                                   .upload_id = in->pub.id};
    json_t *manifest = me_manifest_new(&origin);
    int ret = manifest != NULL ? me_manifest_store(u->st, manifest) : ME_ENOMEM;
    json_decref(manifest);
    if (ret == 0)
        me_failpoint("upload.manifest_stored");
    if (ret != 0 || (ret = me_jobs_submit(u->st, in->pub.media_id)) != 0)
        return ret == ME_ENOMEM || ret == ME_ENOSPACE ? ret : ME_EIO;
    return 0;
}

int me_upload_finish(me_uploads_t *u, me_upload_info_t *in)
{
    char key[ME_STORAGE_KEY_MAX], sha[65];
    unsigned char head[ME_SNIFF_HEAD];
    size_t got;
    me_storage_stat_t st;
    int ret;

    me_upload_target_key(key, sizeof(key), in);
    if ((ret = still_held(u, in->pub.id)) != 0)
        return ret;
    ret = me_storage_multipart_complete(u->st, key, in->multipart, in->parts, in->nparts);
    if (ret != 0 && (me_storage_head(u->st, key, &st) != 0 || st.size != in->pub.length))
        return ret == ME_ENOSPACE ? ret : ME_EIO; /* not completed before either */
    me_failpoint("upload.original_stored");
    if (in->pub.kind == ME_UPLOAD_PARTIAL) {
        /* kept as it is for a final upload: no media check, no original, manifest or job */
        in->state = ME_UPLOAD_COMPLETED;
        in->pub.completed = 1;
        if ((ret = me_upload_info_save(u, in)) != 0)
            return ret;
        me_log_info(NULL, "partial upload %s complete: %" PRIu64 " bytes", in->pub.id, in->pub.length);
        return 0;
    }
    if (me_storage_get(u->st, key, 0, sizeof(head), head, &got) != 0)
        return ME_EIO;
    const char *type = me_sniff(head, got);
    if (type == NULL) {
        me_log_info(NULL, "upload %s: not a photo or video; removed", in->pub.id);
        (void)!me_storage_delete(u->st, key);
        me_upload_discard(u, in);
        return ME_EMEDIA;
    }
    snprintf(in->pub.content_type, sizeof(in->pub.content_type), "%s", type);
    if ((ret = finished_before(u, in->pub.media_id)) == 1)
        (void)me_upload_hashes_take(u->hashes, in->pub.id, in->pub.length, sha); /* its hash is not needed */
    else if (ret != 0 || (ret = store_media(u, in, key, type)) != 0)
        return ret;
    if (u->on_job != NULL)
        u->on_job(u->on_job_ctx, in->pub.media_id);
    me_failpoint("upload.job_queued");
    in->state = ME_UPLOAD_COMPLETED;
    in->pub.completed = 1;
    if ((ret = me_upload_info_save(u, in)) != 0)
        return ret;
    me_metric_add(uploads_completed, NULL, 1);
    me_log_info(NULL, "upload %s complete: media %s, %" PRIu64 " bytes, %s", in->pub.id, in->pub.media_id,
                in->pub.length, type);
    return 0;
}

/* ---- the public operations ---- */

/* Parts one PATCH may become on a backend with a smallest part, uploaded at once: a tus client
 * sends one PATCH at a time, and S3 takes the parts of one upload in parallel. */
#define SPLIT_MAX 8
/* The size the parts of a PATCH are cut to (awscli's and boto's part size): each part is a
 * request with a cost of its own to S3 (on Swift, about 45 ms of CPU a request against 2.5 ms
 * a MiB), so parts of the smallest size S3 takes would cost more than their bytes. */
#define SPLIT_PART (8u << 20)

typedef struct {
    me_storage_t *st;
    const char *key, *id;
    int number;
    const char *data;
    size_t len;
    me_storage_part_t out;
    int ret;
} part_job_t;

static void *put_part_job(void *arg)
{
    part_job_t *j = arg;
    j->ret = me_storage_part_put(j->st, j->key, j->id, j->number, j->data, j->len, &j->out);
    j->out.number = j->number;
    return NULL;
}

/* Puts size bytes as the next parts of in: one part, or on a backend with a smallest part
 * (S3) up to SPLIT_MAX parts of at least that size, uploaded at once. 0 with in->parts and
 * in->nparts grown (room for SPLIT_MAX more is the caller's), or the first error. */
static int put_parts(me_uploads_t *u, me_upload_info_t *in, const char *key, const char *data, size_t size)
{
    uint64_t min = me_storage_min_part_size(u->st);
    part_job_t jobs[SPLIT_MAX];
    pthread_t threads[SPLIT_MAX];
    int started[SPLIT_MAX] = {0}, k = 1, ret = 0;

    uint64_t target = min > SPLIT_PART ? min : SPLIT_PART;
    if (min > 0 && size / target > 1)
        k = size / target < SPLIT_MAX ? (int)(size / target) : SPLIT_MAX;
    if (in->next_part + k - 1 > ME_UPLOAD_MAX_PARTS)
        k = 1;
    for (int i = 0; i < k; i++) {
        size_t each = size / (size_t)k, at = each * (size_t)i;
        jobs[i] = (part_job_t){u->st, key, in->multipart, in->next_part + i, data + at, i == k - 1 ? size - at : each};
    }
    for (int i = 1; i < k && me_storage_parts_in_any_order(u->st); i++)
        started[i] = pthread_create(&threads[i], NULL, put_part_job, &jobs[i]) == 0;
    put_part_job(&jobs[0]);
    for (int i = 1; i < k; i++) {
        if (started[i])
            pthread_join(threads[i], NULL);
        else
            put_part_job(&jobs[i]); /* in order (the backend wants it), or no thread to be had */
    }
    for (int i = 0; i < k && ret == 0; i++)
        ret = jobs[i].ret;
    if (ret != 0)
        return ret; /* parts put count when they follow the state's without a gap (me_upload_derive()) */
    for (int i = 0; i < k; i++)
        in->parts[in->nparts + i] = jobs[i].out;
    in->nparts += k;
    in->next_part += k;
    return 0;
}

typedef struct {
    me_uploads_t *u;
    const me_upload_info_t *in;
} stale_t;

static int drop_if_stale(const char *key, const me_storage_stat_t *stat, void *arg)
{
    stale_t *s = arg;
    uint64_t offset;
    if (!me_layout_upload_piece_offset(key, s->in->pub.id, &offset))
        return 0;
    for (int i = 0; i < s->in->npieces; i++)
        if (s->in->pieces[i].offset == offset)
            return 0;
    (void)!me_storage_delete(s->u->st, key);
    return 0;
}

/* Deletes the pieces of in that its state (saved) no longer names: merged into a part, their
 * deletion cut short by a crash. Best effort. */
static void drop_stale_pieces(me_uploads_t *u, const me_upload_info_t *in)
{
    char prefix[ME_STORAGE_KEY_MAX];
    stale_t s = {u, in};
    if (me_layout_upload_objects(prefix, sizeof(prefix), in->pub.id) == 0)
        (void)!me_storage_list(u->st, prefix, drop_if_stale, &s);
}

/* Writes data (len bytes at in->pub.offset) as a part, merging pending pieces in front of it,
 * or as a piece when part and pieces together are still too small for the backend. */
static int store_bytes(me_uploads_t *u, me_upload_info_t *in, const void *data, size_t len, int last)
{
    char key[ME_STORAGE_KEY_MAX], okey[ME_STORAGE_KEY_MAX];
    uint64_t pending = 0;
    int ret;
    for (int i = 0; i < in->npieces; i++)
        pending += in->pieces[i].size;
    if (len == 0 && pending == 0)
        return 0; /* a deferred length set with an empty body: nothing to store */

    if (!last && pending + len < me_storage_min_part_size(u->st)) {
        piece_key(key, sizeof(key), in->pub.id, in->pub.offset);
        if ((ret = me_storage_put(u->st, key, data, len)) != 0)
            return ret;
        in->pieces[in->npieces++] = (me_upload_piece_t){in->pub.offset, len};
        return 0;
    }
    if (in->next_part < 1)
        return ME_EIO; /* never: me_upload_derive() ran */
    if (in->nparts >= ME_UPLOAD_MAX_PARTS || in->next_part > ME_UPLOAD_MAX_PARTS)
        return ME_EUPLOAD_SIZE;
    const void *part = data;
    char *merged = NULL;
    if (pending != 0) {
        if ((merged = malloc(pending + len)) == NULL)
            return ME_ENOMEM;
        size_t at = 0;
        for (int i = 0; i < in->npieces; i++) {
            size_t got;
            piece_key(key, sizeof(key), in->pub.id, in->pieces[i].offset);
            if (me_storage_get(u->st, key, 0, in->pieces[i].size, merged + at, &got) != 0 || got != in->pieces[i].size) {
                free(merged);
                return ME_EIO;
            }
            at += got;
        }
        if (len > 0)
            memcpy(merged + at, data, len);
        part = merged;
        me_metric_add(upload_read_back, NULL, (double)at);
    }
    me_upload_target_key(okey, sizeof(okey), in);
    ret = put_parts(u, in, okey, part, pending + len);
    free(merged);
    if (ret != 0)
        return ret;
    in->npieces = 0; /* their bytes are in the part now; the objects go after the state is saved */
    return 0;
}

/* 1 when storage holds every byte of in (after me_upload_derive()). */
static int all_stored(const me_upload_info_t *in)
{
    return in->state == ME_UPLOAD_OPEN && in->pub.length != ME_UPLOAD_LENGTH_DEFERRED &&
           in->pub.offset == in->pub.length;
}

/* With upload in's lock held: when storage holds its every byte while its state says open
 * (the PATCH that stored the last ones died before saving so), completes it as that PATCH
 * would have. 0 (in->state says whether it is completed now) or an error. */
static int complete_if_stored(me_uploads_t *u, me_upload_info_t *in)
{
    int stale = 0, ret = 0;
    if (in->state == ME_UPLOAD_OPEN && in->pub.kind != ME_UPLOAD_FINAL &&
        (ret = me_upload_derive(u, in, 1, &stale)) == 0 && all_stored(in)) {
        me_storage_part_t *parts = realloc(in->parts, sizeof(*parts) * (size_t)(in->nparts + SPLIT_MAX));
        if (parts == NULL) {
            ret = ME_ENOMEM;
        } else {
            in->parts = parts;
            /* pieces left at the end (a length declared after them): into a last part */
            if ((ret = store_bytes(u, in, NULL, 0, 1)) == 0) {
                in->state = ME_UPLOAD_COMPLETING;
                ret = me_upload_info_save(u, in);
            }
        }
        if (ret == 0 && stale > 0)
            drop_stale_pieces(u, in);
    }
    if (ret == 0 && in->state == ME_UPLOAD_COMPLETING)
        ret = me_upload_finish(u, in);
    return ret;
}

/* HEAD found every byte of upload id stored while its state says open: loads it again under
 * its lock and completes it: 0 with *in loaded (free it), or an error (*in freed). */
static int complete_stored(me_uploads_t *u, const me_token_claims_t *who, const char *id, int64_t now,
                           me_upload_info_t *in)
{
    int ret = me_upload_info_load(u, who, id, now, in);
    if (ret == 0 && (ret = complete_if_stored(u, in)) != 0)
        me_upload_info_free(in);
    return ret;
}

int me_upload_head(me_uploads_t *u, const me_token_claims_t *who, const char *id, int64_t now, me_upload_t *out)
{
    me_upload_info_t in;
    int stale, ret = me_upload_info_load(u, who, id, now, &in);
    if (ret != 0)
        return ret;
    /* the offset is what storage holds: another instance may have died before saving it.
     * Every byte in but the media not made: finished here, or the answer says to come back
     * (423, or the lock backend's error), never "all there" with nothing made: a client would
     * stop at that offset, and nothing else would ever finish it */
    if (in.state == ME_UPLOAD_OPEN && in.pub.kind != ME_UPLOAD_FINAL &&
        (ret = me_upload_derive(u, &in, 0, &stale)) == 0 && all_stored(&in)) {
        me_upload_info_free(&in);
        if ((ret = me_upload_lock(u, id)) != 0)
            return ret;
        ret = complete_stored(u, who, id, now, &in);
        me_upload_unlock(u, id);
        if (ret != 0)
            return ret;
    }
    if (ret == 0 && in.state == ME_UPLOAD_COMPLETING && (ret = me_upload_lock(u, id)) == 0) {
        ret = me_upload_finish(u, &in);
        me_upload_unlock(u, id);
    }
    if (ret == 0)
        *out = in.pub;
    me_upload_info_free(&in);
    return ret;
}

/* An append's bytes hashed in a thread of their own, beside their storage, from this size on. */
#define HASH_BESIDE (1024 * 1024)

typedef struct {
    me_upload_hash_step_t step;
    const void *data;
    size_t len;
} hash_job_t;

static void *hash_job(void *arg)
{
    hash_job_t *j = arg;
    me_upload_hash_step_update(&j->step, j->data, j->len);
    return NULL;
}

int me_upload_append(me_uploads_t *u, const me_token_claims_t *who, const char *id, uint64_t offset,
                     uint64_t new_length, const void *data, size_t len, const me_checksum_t *ck, int64_t now,
                     me_upload_t *out)
{
    me_upload_info_t in;
    const char *reason = NULL;
    hash_job_t hashing = {{NULL, 0, 0}, NULL, 0};
    pthread_t hasher;
    int ret;

    if ((ret = me_upload_lock(u, id)) != 0) {
        reason = ret == ME_ELOCKED ? "locked" : "lock_unavailable";
        goto refused;
    }
    if ((ret = me_upload_info_load(u, who, id, now, &in)) != 0) {
        me_upload_unlock(u, id);
        return ret;
    }
    me_upload_piece_t *old_pieces = NULL, *pieces;
    me_storage_part_t *parts;
    int stale = 0, npieces_before;
    /* the offset is what storage holds: another instance may have died before saving it */
    if (in.state == ME_UPLOAD_OPEN && in.pub.kind != ME_UPLOAD_FINAL &&
        (ret = me_upload_derive(u, &in, 1, &stale)) != 0)
        goto exit;
    /* room for one more piece, or the parts of one PATCH, beyond what is there */
    parts = realloc(in.parts, sizeof(*parts) * (size_t)(in.nparts + SPLIT_MAX));
    pieces = realloc(in.pieces, sizeof(*pieces) * (size_t)(in.npieces + 1));
    if (parts != NULL)
        in.parts = parts;
    if (pieces != NULL)
        in.pieces = pieces;
    npieces_before = in.npieces;

    if (parts == NULL || pieces == NULL) {
        ret = ME_ENOMEM;
        goto exit;
    }
    if (in.pub.kind == ME_UPLOAD_FINAL) {
        ret = ME_EFINAL, reason = "final";
        goto exit;
    }
    if (in.state == ME_UPLOAD_COMPLETING) {
        ret = me_upload_finish(u, &in); /* finish a completion a crash cut short */
        if (ret == 0)
            ret = ME_EOFFSET;
        goto exit;
    }
    if (offset != in.pub.offset || in.state == ME_UPLOAD_COMPLETED) {
        ret = ME_EOFFSET, reason = "offset";
        goto exit;
    }
    if (new_length != ME_UPLOAD_LENGTH_DEFERRED) {
        if (in.pub.length != ME_UPLOAD_LENGTH_DEFERRED && in.pub.length != new_length) {
            ret = ME_ECONFLICT, reason = "length";
            goto exit;
        }
        if (new_length > in.pub.max_size || new_length < offset + len) {
            ret = new_length > in.pub.max_size ? ME_EUPLOAD_SIZE : ME_ECONFLICT, reason = "length";
            goto exit;
        }
        in.pub.length = new_length;
    }
    uint64_t limit = in.pub.length != ME_UPLOAD_LENGTH_DEFERRED ? in.pub.length : in.pub.max_size;
    if (offset + len > limit) {
        ret = ME_EUPLOAD_SIZE, reason = "size";
        goto exit;
    }
    if (ck != NULL && (ret = me_checksum_verify(ck, data, len)) != 0) {
        reason = "checksum";
        goto exit;
    }
    int last = in.pub.length != ME_UPLOAD_LENGTH_DEFERRED && offset + len == in.pub.length;
    if (len == 0 && !last && new_length == ME_UPLOAD_LENGTH_DEFERRED) {
        *out = in.pub; /* nothing to store */
        goto exit;
    }
    if (npieces_before != 0 && (old_pieces = malloc(sizeof(*old_pieces) * (size_t)npieces_before)) == NULL) {
        ret = ME_ENOMEM;
        goto exit;
    }
    if (old_pieces != NULL)
        memcpy(old_pieces, in.pieces, sizeof(*old_pieces) * (size_t)npieces_before);
    /* the bytes are hashed while they go to storage; the hash keeps them once they count */
    me_upload_hashes_begin(u->hashes, in.pub.id, offset, &hashing.step);
    hashing.data = data, hashing.len = len;
    int beside =
        hashing.step.ctx != NULL && len >= HASH_BESIDE && pthread_create(&hasher, NULL, hash_job, &hashing) == 0;
    if (!beside)
        hash_job(&hashing);
    if (len > 0 || last) {
        /* a part written after the lock was lost would replace the new holder's (lock.h) */
        if ((ret = still_held(u, id)) == 0 && (ret = store_bytes(u, &in, data, len, last)) == 0)
            me_failpoint("upload.part_stored");
    }
    if (beside)
        pthread_join(hasher, NULL);
    if (ret != 0)
        goto exit;
    in.pub.offset += len;
    if (last)
        in.state = ME_UPLOAD_COMPLETING;
    if ((ret = me_upload_info_save(u, &in)) != 0)
        goto exit; /* the bytes stored count all the same: the offset is what storage holds */
    me_failpoint("upload.offset_saved");
    me_metric_add(upload_bytes, NULL, (double)len);
    me_upload_hashes_keep(u->hashes, in.pub.id, &hashing.step);
    if (stale > 0)
        drop_stale_pieces(u, &in);
    else if (in.npieces == 0 && old_pieces != NULL) {
        for (int i = 0; i < npieces_before; i++) {
            char key[ME_STORAGE_KEY_MAX];
            piece_key(key, sizeof(key), in.pub.id, old_pieces[i].offset);
            (void)!me_storage_delete(u->st, key);
        }
    }
    if (last)
        ret = me_upload_finish(u, &in);
    if (ret == 0)
        *out = in.pub;

exit:
    me_upload_hash_step_drop(&hashing.step);
    free(old_pieces);
    me_upload_info_free(&in);
    me_upload_unlock(u, id);
    if (reason == NULL)
        return ret;
refused:
    me_metric_add(uploads_refused, &reason, 1);
    return ret;
}

int me_upload_delete(me_uploads_t *u, const me_token_claims_t *who, const char *id)
{
    me_upload_info_t in;
    int ret;
    if ((ret = me_upload_lock(u, id)) != 0)
        return ret;
    if ((ret = me_upload_info_load(u, who, id, INT64_MIN, &in)) == 0) {
        /* a complete partial no final uses is still only bytes waiting: it may go too */
        int unused_partial =
            in.pub.kind == ME_UPLOAD_PARTIAL && in.state == ME_UPLOAD_COMPLETED && in.used_by[0] == '\0';
        if (in.state != ME_UPLOAD_OPEN && !unused_partial)
            ret = ME_ECONFLICT;
        else
            me_upload_discard(u, &in);
        me_upload_info_free(&in);
    }
    me_upload_unlock(u, id);
    return ret;
}

typedef struct {
    me_uploads_t *u;
    int64_t now;
    int removed;
} sweep_t;

static int sweep_one(const char *key, const me_storage_stat_t *stat, void *arg)
{
    sweep_t *s = arg;
    char id[ME_UPLOAD_ID_LEN + 1], *text;
    size_t tlen;
    me_upload_info_t in;
    /* uploads/<id>.info only; pieces live under uploads/<id>/ */
    if (!me_layout_doc_id(key, ME_LAYOUT_UPLOADS, ".info", id, sizeof(id)) || !me_upload_id_valid(id, strlen(id)) ||
        me_upload_lock(s->u, id) != 0)
        return 0;
    if (me_storage_get_all(s->u->st, key, INFO_MAX, &text, &tlen) == 0) {
        if (parse_info(text, tlen, &in) == 0) {
            if (in.state == ME_UPLOAD_COMPLETING && in.pub.kind != ME_UPLOAD_FINAL) {
                /* a completion cut short whose client did not come back (its HEAD would finish it) */
                if (me_upload_finish(s->u, &in) == 0)
                    me_log_info(NULL, "upload %s: a completion cut short, finished by the sweep", id);
            } else if (s->now >= in.pub.expires && in.state != ME_UPLOAD_COMPLETING) {
                /* every byte stored, but the PATCH that stored the last ones died before saving
                 * so and its client did not come back: completed, not discarded (on a storage
                 * error, the next sweep tries again) */
                int was_open = in.state == ME_UPLOAD_OPEN, ret = was_open ? complete_if_stored(s->u, &in) : 0;
                if (ret != 0) {
                    me_log_error(NULL, "upload %s: expired, its stored bytes not checked or not completed: %s", id,
                                 me_err_code(ret));
                } else if (was_open && in.state == ME_UPLOAD_COMPLETED) {
                    me_log_info(NULL, "upload %s: expired with every byte stored, completed by the sweep", id);
                } else if (in.state == ME_UPLOAD_COMPLETED && in.pub.kind != ME_UPLOAD_PARTIAL) {
                    delete_objects(s->u, id); /* pieces a crash kept from going */
                    (void)!me_storage_delete(s->u->st, key);
                } else {
                    me_upload_discard(s->u, &in);
                }
                s->removed++;
            }
            me_upload_info_free(&in);
        }
        free(text);
    }
    me_upload_unlock(s->u, id);
    return 0;
}

int me_upload_sweep(me_uploads_t *u, int64_t now, int *removed)
{
    sweep_t s = {u, now, 0};
    int orphans = 0, ret = me_storage_list(u->st, ME_LAYOUT_UPLOADS, sweep_one, &s);
    if (ret == 0)
        ret = me_upload_sweep_orphans(u, now, &orphans);
    *removed = s.removed + orphans;
    return ret == 0 ? 0 : ME_EIO;
}

me_uploads_t *me_uploads_new(me_storage_t *st, me_locks_t *locks, const me_config_t *cfg)
{
    me_uploads_t *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    if (locks == NULL && (u->own_locks = locks = me_locks_local_new(ME_UPLOAD_LOCKS)) == NULL) {
        free(u);
        return NULL;
    }
    if ((u->hashes = me_upload_hashes_new()) == NULL) {
        me_locks_free(u->own_locks);
        free(u);
        return NULL;
    }
    u->locks = locks;
    u->st = st;
    u->max_size = me_upload_settings(cfg)->max_size;
    u->expire_after = (int64_t)(me_upload_settings(cfg)->expire_after / 1000);
    u->join_part = me_http_settings(cfg)->max_patch_size;
    return u;
}

void me_uploads_on_job(me_uploads_t *u, void (*cb)(void *ctx, const char *media_id), void *ctx)
{
    u->on_job = cb;
    u->on_job_ctx = ctx;
}

void me_uploads_free(me_uploads_t *u)
{
    if (u == NULL)
        return;
    me_locks_free(u->own_locks);
    me_upload_hashes_free(u->hashes);
    free(u);
}
