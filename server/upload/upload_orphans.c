/* upload_orphans.c: the sweep of multipart uploads no upload state names any more: those S3
 * began although the answer to our CreateMultipartUpload was lost (a reset, a timeout: the
 * request is not repeated, and a retry of the upload begins another), and those of an upload
 * whose state went without its abort being heard. Without this they would hold their parts
 * (and their cost) until a bucket lifecycle rule removes them. */
#include <stdint.h>
#include <string.h>
#include "server/core/log.h"
#include "server/storage/layout.h"
#include "server/upload/upload_internal.h"

/* A completion that began just before its upload expired may still be running: leave its
 * multipart upload this long more (an hour at most; a quarter of the expiry when that is
 * shorter, as in tests). */
#define GRACE_MAX_S 3600

typedef struct {
    me_uploads_t *u;
    int64_t before; /* uploads begun earlier than this go */
    int aborted;
} orphans_t;

static int orphan(const char *key, const char *upload_id, int64_t initiated, void *arg)
{
    orphans_t *o = arg;
    if (initiated < 0 || initiated >= o->before)
        return 0; /* perhaps a live upload's: every live upload began after now - expire_after */
    if (me_storage_multipart_abort(o->u->st, key, upload_id) == 0) {
        me_log_info(NULL, "aborted a forgotten multipart upload of %s", key);
        o->aborted++;
    }
    return 0;
}

int me_upload_sweep_orphans(me_uploads_t *u, int64_t now, int *aborted)
{
    static const char *const prefixes[] = {"originals/", ME_LAYOUT_UPLOADS};
    int64_t grace = u->expire_after / 4 < GRACE_MAX_S ? u->expire_after / 4 : GRACE_MAX_S;
    orphans_t o = {u, now - u->expire_after - grace, 0};
    int ret = 0;

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]) && ret == 0; i++)
        ret = me_storage_multipart_list(u->st, prefixes[i], orphan, &o);
    *aborted = o.aborted;
    return ret;
}
