/* upload_offset.c: an open upload's offset from what storage holds: its parts and pending
 * pieces, so that any instance answers after another died between storing bytes and saving
 * the state document that counts them. */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "server/core/log.h"
#include "server/storage/layout.h"
#include "server/upload/upload_internal.h"

typedef struct {
    me_storage_part_t *v;
    int n, cap;
} parts_t;

typedef struct {
    const char *id;
    me_upload_piece_t *v;
    int n, cap;
} pieces_t;

/* v (n elements of size bytes, room for *cap) with room for one more: v itself, or a larger
 * copy (*cap grown), or NULL when memory ran out (v as it was). */
static void *room_for_one(void *v, int n, int *cap, size_t size)
{
    if (n < *cap)
        return v;
    int more = *cap == 0 ? 16 : 2 * *cap;
    void *grown = realloc(v, size * (size_t)more);
    if (grown != NULL)
        *cap = more;
    return grown;
}

static int part_seen(const me_storage_part_t *part, void *arg)
{
    parts_t *l = arg;
    me_storage_part_t *v = room_for_one(l->v, l->n, &l->cap, sizeof(*v));
    if (v == NULL)
        return ME_ENOMEM;
    l->v = v;
    l->v[l->n++] = *part;
    return 0;
}

/* pieces come in key order, which is offset order (the offset is zero-padded in the key) */
static int piece_seen(const char *key, const me_storage_stat_t *stat, void *arg)
{
    pieces_t *l = arg;
    uint64_t offset;
    if (!me_layout_upload_piece_offset(key, l->id, &offset))
        return 0; /* a partial's data object */
    if (l->n == ME_UPLOAD_MAX_PARTS)
        return ME_EIO;
    me_upload_piece_t *v = room_for_one(l->v, l->n, &l->cap, sizeof(*v));
    if (v == NULL)
        return ME_ENOMEM;
    l->v = v;
    l->v[l->n++] = (me_upload_piece_t){offset, stat->size};
    return 0;
}

typedef struct {
    me_storage_t *st;
    const char *prefix;
    pieces_t *pieces;
    int ret;
} pieces_job_t;

static void *list_pieces(void *arg)
{
    pieces_job_t *j = arg;
    j->ret = me_storage_list(j->st, j->prefix, piece_seen, j->pieces);
    return NULL;
}

/* 0 when every part the document names is listed as it names it (the document says which
 * part numbers are ours; storage says what they hold). */
static int named_parts_held(const me_upload_info_t *in, const parts_t *listed)
{
    int j = 0;
    for (int i = 0; i < in->nparts; i++) {
        const me_storage_part_t *p = &in->parts[i];
        while (j < listed->n && listed->v[j].number < p->number)
            j++;
        if (j == listed->n || listed->v[j].number != p->number || listed->v[j].size != p->size ||
            strcmp(listed->v[j].etag, p->etag) != 0) {
            me_log_error(NULL, "upload %s: storage does not hold part %d as its state names it", in->pub.id, p->number);
            return ME_EIO;
        }
    }
    return 0;
}

int me_upload_derive(me_uploads_t *u, me_upload_info_t *in, int locked, int *stale)
{
    char key[ME_STORAGE_KEY_MAX], prefix[ME_STORAGE_KEY_MAX];
    parts_t listed = {0};
    pieces_t pieces = {in->pub.id, NULL, 0, 0};
    int ret, adopted = 0, last = 0;
    /* the parts past the document's only: it says which part numbers are ours (a document
     * older than next_part: every part, and each it names must be there as it names it) */
    int after = in->next_part > 0 ? in->next_part - 1 : 0;

    *stale = 0;
    me_upload_target_key(key, sizeof(key), in);
    if ((ret = me_layout_upload_objects(prefix, sizeof(prefix), in->pub.id)) != 0)
        return ME_EIO;
    /* A piece goes only once a part holding its bytes is in, and a part never goes: without
     * the lock (HEAD), the parts are listed after the pieces, so that a PATCH running
     * meanwhile cannot make this see neither; with it (PATCH), nothing changes meanwhile and
     * both listings, each a round trip to storage, run at once. */
    pieces_job_t job = {u->st, prefix, &pieces, 0};
    pthread_t thread;
    int beside = locked && pthread_create(&thread, NULL, list_pieces, &job) == 0;
    if (!beside)
        list_pieces(&job);
    if (job.ret == 0 || beside)
        ret = me_storage_part_list(u->st, key, in->multipart, after, part_seen, &listed);
    if (beside)
        pthread_join(thread, NULL);
    if (ret != 0 || (ret = job.ret) != 0 || (after == 0 && (ret = named_parts_held(in, &listed)) != 0))
        goto out;
    for (int i = 0; i < in->nparts; i++)
        last = in->parts[i].number > last ? in->parts[i].number : last;
    /* parts a PATCH put after the document was last saved: numbers from its next_part on,
     * without a gap (a part missing in between was not acknowledged: what follows it is not
     * known to follow the bytes before it) */
    int want = in->next_part;
    for (int j = 0; j < listed.n; j++) {
        if (want > 0 && listed.v[j].number == want)
            adopted++, want++;
        last = listed.v[j].number > last ? listed.v[j].number : last;
    }
    if (adopted > 0) {
        me_storage_part_t *parts = realloc(in->parts, sizeof(*parts) * (size_t)(in->nparts + adopted));
        if (parts == NULL) {
            ret = ME_ENOMEM;
            goto out;
        }
        in->parts = parts;
        for (int j = 0; j < listed.n; j++)
            if (listed.v[j].number >= in->next_part && listed.v[j].number < in->next_part + adopted)
                in->parts[in->nparts++] = listed.v[j];
    }
    /* the next part goes past every part listed: one left by a PATCH that failed halfway is
     * never taken for one of a later PATCH */
    in->next_part = last + 1 > in->next_part ? last + 1 : in->next_part;

    /* then the pieces that follow the parts' bytes, one after the other */
    uint64_t at = 0;
    for (int i = 0; i < in->nparts; i++)
        at += in->parts[i].size;
    in->npieces = 0;
    for (int j = 0; j < pieces.n; j++) {
        if (pieces.v[j].offset == at) {
            pieces.v[in->npieces++] = pieces.v[j];
            at += pieces.v[j].size;
        } else {
            (*stale)++; /* merged into a part, its deletion cut short */
        }
    }
    uint64_t limit = in->pub.length != ME_UPLOAD_LENGTH_DEFERRED ? in->pub.length : in->pub.max_size;
    if (at > limit) {
        me_log_error(NULL, "upload %s: storage holds %" PRIu64 " bytes, more than %" PRIu64, in->pub.id, at, limit);
        ret = ME_EIO;
        goto out;
    }
    if (at != in->pub.offset)
        me_log_info(NULL, "upload %s: %" PRIu64 " bytes stored, %" PRIu64 " counted by its state", in->pub.id, at,
                    in->pub.offset);
    free(in->pieces);
    in->pieces = pieces.v; /* the chain, compacted at its front */
    pieces.v = NULL;
    in->pub.offset = at;
out:
    free(listed.v);
    free(pieces.v);
    if (ret != 0 && ret != ME_ENOMEM)
        ret = ME_EIO;
    return ret;
}
