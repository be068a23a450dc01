/* upload_concat.c: final uploads made of partial uploads (tus concatenation): the list of
 * partial upload URLs, and building a final crash-safely from the partials' stored bytes.
 *
 * The order that makes a crash anywhere harmless, and a retry of the same request (on any
 * instance) carry on where it stopped:
 *   1. the final's state document is saved (state joining, with its list of partials);
 *   2. each partial is marked used by it (used_by), so that no other final can take it;
 *   3. the final's parts are written from the partials' data objects, then its state moves
 *      to completing (every byte there), and it completes like any upload;
 *   4. only then do the partials' data objects go; their state documents stay, marked used,
 *      until they expire (a retry finds its final through them).
 * A partial marked used by a final that names exactly the same list is that final's, so the
 * same request again answers the same final; any other final naming it is refused. */
#include <stdlib.h>
#include <string.h>
#include "server/core/log.h"
#include "server/upload/upload.h"
#include "server/upload/upload_internal.h"

/* ---- the list of partial upload URLs ---- */

/* Skips "scheme://authority" at the start of url[0..*len): 1 when it was there (and a path
 * follows), 0 when url is not an absolute URL of that form. */
static int skip_origin(const char **url, size_t *len)
{
    const char *s = *url, *end = s + *len;
    const char *colon = memchr(s, ':', *len);
    if (colon == NULL || colon == s || end - colon < 3 || memcmp(colon, "://", 3) != 0)
        return 0;
    for (const char *c = s; c < colon; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
              (c > s && ((*c >= '0' && *c <= '9') || *c == '+' || *c == '-' || *c == '.'))))
            return 0;
    const char *path = memchr(colon + 3, '/', (size_t)(end - colon - 3));
    if (path == NULL || path == colon + 3)
        return 0;
    *len -= (size_t)(path - s);
    *url = path;
    return 1;
}

int me_upload_concat_parse(const char *list, size_t len, const char *prefix, char (*ids)[ME_UPLOAD_ID_LEN + 1],
                           int *n)
{
    size_t plen = strlen(prefix), i = 0;
    *n = 0;
    while (i < len) {
        if (list[i] == ' ') {
            i++;
            continue;
        }
        const char *url = list + i;
        size_t ulen = 0;
        while (i < len && list[i] != ' ')
            i++, ulen++;
        if (url[0] != '/' && !skip_origin(&url, &ulen))
            return ME_ECONCAT;
        if (ulen == plen + ME_UPLOAD_ID_LEN + 1 && url[ulen - 1] == '/')
            ulen--;
        if (ulen != plen + ME_UPLOAD_ID_LEN || memcmp(url, prefix, plen) != 0 ||
            !me_upload_id_valid(url + plen, ME_UPLOAD_ID_LEN) || *n == ME_UPLOAD_CONCAT_MAX)
            return ME_ECONCAT;
        for (int k = 0; k < *n; k++)
            if (memcmp(ids[k], url + plen, ME_UPLOAD_ID_LEN) == 0)
                return ME_ECONCAT;
        memcpy(ids[*n], url + plen, ME_UPLOAD_ID_LEN);
        ids[(*n)++][ME_UPLOAD_ID_LEN] = '\0';
    }
    return *n > 0 ? 0 : ME_ECONCAT;
}

/* ---- building a final ---- */

/* Loads the partials ids[0..n) of who (their locks held) into p: each must be a partial
 * upload of who's album; one whose completion a crash cut short is completed here. */
static int load_partials(me_uploads_t *u, const me_token_claims_t *who, const char (*ids)[ME_UPLOAD_ID_LEN + 1],
                         int n, int64_t now, me_upload_info_t *p)
{
    for (int i = 0; i < n; i++) {
        int ret = me_upload_info_load(u, who, ids[i], now, &p[i]);
        if (ret != 0)
            return ret;
        if (p[i].pub.kind != ME_UPLOAD_PARTIAL || strcmp(p[i].album, who->album) != 0)
            return ME_ECONCAT;
        if (p[i].state == ME_UPLOAD_COMPLETING && (ret = me_upload_finish(u, &p[i])) != 0)
            return ret;
    }
    return 0;
}

/* The final that already uses the partials p[0..n), if it names exactly them in this order
 * (the same request again): its id is copied to id and 0 returned. ME_ENOTFOUND when no
 * final uses any of them; ME_EPARTIAL_USED when another final uses one. */
static int final_of(me_uploads_t *u, const me_token_claims_t *who, const me_upload_info_t *p, int n, int64_t now,
                    char id[ME_UPLOAD_ID_LEN + 1])
{
    const char *used_by = NULL;
    me_upload_info_t f;
    for (int i = 0; i < n; i++) {
        if (p[i].used_by[0] == '\0')
            continue;
        if (used_by != NULL && strcmp(used_by, p[i].used_by) != 0)
            return ME_EPARTIAL_USED;
        used_by = p[i].used_by;
    }
    if (used_by == NULL)
        return ME_ENOTFOUND;
    int ret = me_upload_info_load(u, who, used_by, now, &f);
    if (ret != 0)
        return ret == ME_ENOTFOUND ? ME_EPARTIAL_USED : ret;
    int same = f.pub.kind == ME_UPLOAD_FINAL && f.pub.npartials == n;
    for (int i = 0; same && i < n; i++)
        same = strcmp(f.pub.partials[i], p[i].pub.id) == 0;
    me_upload_info_free(&f);
    if (!same)
        return ME_EPARTIAL_USED;
    strcpy(id, used_by);
    return 0;
}

/* Fills *f for a new final of the partials p[0..n), all complete, for who (not saved yet). */
static int new_final(me_uploads_t *u, const me_token_claims_t *who, const me_upload_info_t *p, int n,
                     const char *metadata, int64_t now, me_upload_info_t *f)
{
    uint64_t length = 0;
    int ret;
    for (int i = 0; i < n; i++) {
        if (p[i].state != ME_UPLOAD_COMPLETED)
            return ME_EPARTIAL_INCOMPLETE;
        if (p[i].pub.length > UINT64_MAX - 1 - length)
            return ME_EUPLOAD_SIZE;
        length += p[i].pub.length;
    }
    if ((ret = me_upload_info_init(u, who, ME_UPLOAD_FINAL, length, metadata, now, f)) != 0)
        return ret;
    f->state = ME_UPLOAD_JOINING;
    f->pub.npartials = n;
    for (int i = 0; i < n; i++)
        strcpy(f->pub.partials[i], p[i].pub.id);
    return 0;
}

/* Marks every partial not yet marked as used by f (step 2); a partial now lives as long as
 * its final, so that none expires while it is being built. */
static int claim(me_uploads_t *u, const me_upload_info_t *f, me_upload_info_t *p, int n)
{
    for (int i = 0; i < n; i++) {
        if (p[i].used_by[0] != '\0')
            continue;
        strcpy(p[i].used_by, f->pub.id);
        if (p[i].pub.expires < f->pub.expires)
            p[i].pub.expires = f->pub.expires;
        int ret = me_upload_info_save(u, &p[i]);
        if (ret != 0)
            return ret;
    }
    return 0;
}

/* Writes the final's parts from the partials' data objects, and saves it completing (step 3).
 * A run of at least the backend's smallest part is copied by the backend as parts of at most
 * ME_STORAGE_COPY_MAX (on S3 UploadPartCopy: the bytes stay in S3); smaller partials, and
 * what tops up the bytes before a copy to a whole part, are read through the storage
 * interface into one buffer of a part's size (http.max_patch_size: the memory a PATCH may
 * hold). Parts are written again from the first on a retry: a part put again replaces the
 * one before. */
static int join(me_uploads_t *u, me_upload_info_t *f, const me_upload_info_t *p, int n)
{
    char key[ME_STORAGE_KEY_MAX], data[ME_STORAGE_KEY_MAX];
    uint64_t min = me_storage_min_part_size(u->st), chunk = u->join_part > 0 ? u->join_part : 1, fill = 0;
    uint64_t copy_min = min > 0 ? min : chunk; /* on file any run a part's size or more is copied */
    int ret = 0, max_parts = ME_UPLOAD_MAX_PARTS;

    if (chunk < min)
        chunk = min;
    if (f->pub.length / chunk >= ME_UPLOAD_MAX_PARTS)
        chunk = f->pub.length / (ME_UPLOAD_MAX_PARTS - 1) + 1;
    unsigned char *buf = malloc((size_t)chunk);
    me_storage_part_t *parts = calloc((size_t)max_parts, sizeof(*parts));
    if (buf == NULL || parts == NULL) {
        ret = ME_ENOMEM;
        goto exit;
    }
    f->nparts = 0;
    me_upload_target_key(key, sizeof(key), f);
    for (int i = 0; i < n; i++) {
        me_upload_data_key(data, sizeof(data), p[i].pub.id);
        for (uint64_t off = 0; off < p[i].pub.length;) {
            uint64_t rest = p[i].pub.length - off;
            if (fill == 0 && rest >= copy_min && chunk < ME_STORAGE_COPY_MAX) {
                /* the rest of this partial as parts copied by the backend, each at least min */
                uint64_t nranges = (rest + ME_STORAGE_COPY_MAX - 1) / ME_STORAGE_COPY_MAX;
                uint64_t size = (rest + nranges - 1) / nranges;
                for (; off < p[i].pub.length; off += size) {
                    if (size > p[i].pub.length - off)
                        size = p[i].pub.length - off;
                    if (f->nparts >= max_parts) {
                        ret = ME_EUPLOAD_SIZE;
                        goto exit;
                    }
                    me_storage_part_t *part = &parts[f->nparts];
                    if ((ret = me_storage_part_copy(u->st, key, f->multipart, f->nparts + 1, data, off, size, part)) !=
                        0) {
                        me_log_error(NULL, "final upload %s: cannot copy partial upload %s", f->pub.id, p[i].pub.id);
                        goto exit;
                    }
                    part->number = ++f->nparts;
                }
                continue;
            }
            /* into the buffer: up to a part's size; or, before a run that can be copied, just
             * enough to make the buffered bytes a part of the smallest size */
            uint64_t want = chunk - fill < rest ? chunk - fill : rest;
            if (fill > 0 && fill < copy_min && rest > copy_min - fill && rest - (copy_min - fill) >= copy_min)
                want = copy_min - fill;
            size_t got;
            if (me_storage_get(u->st, data, off, (size_t)want, buf + fill, &got) != 0 || got != want) {
                me_log_error(NULL, "final upload %s: partial upload %s lacks bytes", f->pub.id, p[i].pub.id);
                ret = ME_EIO;
                goto exit;
            }
            off += want, fill += want;
            int last = i == n - 1 && off == p[i].pub.length;
            if (fill < chunk && !last && !(fill >= copy_min && p[i].pub.length - off >= copy_min))
                continue;
            if (f->nparts >= max_parts) {
                ret = ME_EUPLOAD_SIZE;
                goto exit;
            }
            me_storage_part_t *part = &parts[f->nparts];
            if ((ret = me_storage_part_put(u->st, key, f->multipart, f->nparts + 1, buf, (size_t)fill, part)) != 0)
                goto exit;
            part->number = ++f->nparts;
            fill = 0;
        }
    }
    free(f->parts);
    f->parts = parts;
    parts = NULL;
    f->pub.offset = f->pub.length;
    f->state = ME_UPLOAD_COMPLETING;
    ret = me_upload_info_save(u, f);
exit:
    free(parts);
    free(buf);
    return ret;
}

/* Steps 2 to 4 for the final f (its lock and its partials' held), from wherever a crash or an
 * error left it. */
static int build(me_uploads_t *u, me_upload_info_t *f, me_upload_info_t *p, int n)
{
    char key[ME_STORAGE_KEY_MAX];
    int ret = 0;
    if (f->state == ME_UPLOAD_JOINING) {
        for (int i = 0; i < n; i++)
            if (p[i].state != ME_UPLOAD_COMPLETED)
                return ME_EPARTIAL_INCOMPLETE;
        if ((ret = claim(u, f, p, n)) != 0 || (ret = join(u, f, p, n)) != 0)
            return ret;
    }
    if (f->state == ME_UPLOAD_COMPLETING)
        ret = me_upload_finish(u, f);
    if (ret == ME_EMEDIA) {
        for (int i = 0; i < n; i++) /* their bytes made no photo: nothing of them is worth keeping */
            me_upload_discard(u, &p[i]);
        return ret;
    }
    for (int i = 0; ret == 0 && i < n; i++) {
        me_upload_data_key(key, sizeof(key), p[i].pub.id);
        (void)!me_storage_delete(u->st, key); /* a leftover costs space until the sweep */
    }
    return ret;
}

int me_upload_concat(me_uploads_t *u, const me_token_claims_t *who, const char (*ids)[ME_UPLOAD_ID_LEN + 1], int n,
                     const char *metadata, int64_t now, me_upload_t *out)
{
    me_upload_info_t *p = NULL, f = {0};
    char fid[ME_UPLOAD_ID_LEN + 1] = "";
    int nlocked = 0, final_locked = 0, ret;

    if (n < 1 || n > ME_UPLOAD_CONCAT_MAX)
        return ME_ECONCAT;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < i; k++)
            if (strcmp(ids[i], ids[k]) == 0)
                return ME_ECONCAT;
    if ((p = calloc((size_t)n, sizeof(*p))) == NULL)
        return ME_ENOMEM;
    /* the partials' locks for the whole request: no append, delete or other final meanwhile */
    for (; nlocked < n; nlocked++)
        if ((ret = me_upload_lock(u, ids[nlocked])) != 0)
            goto exit;
    if ((ret = load_partials(u, who, ids, n, now, p)) != 0)
        goto exit;
    ret = final_of(u, who, p, n, now, fid);
    if (ret == ME_ENOTFOUND && (ret = new_final(u, who, p, n, metadata, now, &f)) == 0)
        strcpy(fid, f.pub.id);
    if (ret != 0)
        goto exit;
    /* the final's lock too, before it is saved: a HEAD could otherwise finish it meanwhile */
    if ((ret = me_upload_lock(u, fid)) != 0) {
        if (f.pub.id[0] != '\0')
            me_upload_discard(u, &f);
        goto exit;
    }
    final_locked = 1;
    if (f.pub.id[0] != '\0') { /* step 1 */
        if ((ret = me_upload_info_save(u, &f)) != 0) {
            me_upload_discard(u, &f);
            goto exit;
        }
    } else { /* the same request again: the final as a crash or an error left it */
        if ((ret = me_upload_info_load(u, who, fid, now, &f)) != 0)
            goto exit;
        me_log_info(NULL, "final upload %s asked for again: carrying on", fid);
    }
    if ((ret = build(u, &f, p, n)) == 0)
        *out = f.pub;
exit:
    if (final_locked)
        me_upload_unlock(u, fid);
    for (int i = 0; i < nlocked; i++)
        me_upload_unlock(u, ids[i]);
    for (int i = 0; i < n; i++)
        me_upload_info_free(&p[i]);
    free(p);
    me_upload_info_free(&f);
    return ret;
}
