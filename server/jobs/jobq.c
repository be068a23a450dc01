/* jobq.c: the job queue's operations, handed to the queue's backend (jobq_local.c, in
 * process), and the worker loop every backend shares. */
#include <string.h>
#include "server/core/clock.h"
#include "server/jobs/jobq_backend.h"

void me_jobq_free(me_jobq_t *q)
{
    if (q != NULL)
        q->ops->free(q);
}

int me_jobq_push(me_jobq_t *q, const char *id, int64_t not_before)
{
    size_t len = strlen(id);
    if (len == 0 || len > ME_JOBQ_ID_MAX)
        return ME_EINVAL;
    return q->ops->push(q, id, not_before);
}

int me_jobq_pop(me_jobq_t *q, char *id)
{
    return q->ops->pop(q, id);
}

void me_jobq_done(me_jobq_t *q, const char *id)
{
    q->ops->done(q, id);
}

void me_jobq_retry(me_jobq_t *q, const char *id, int64_t not_before)
{
    q->ops->retry(q, id, not_before);
}

size_t me_jobq_length(me_jobq_t *q)
{
    return q->ops->length(q);
}

void me_jobq_close(me_jobq_t *q)
{
    q->ops->close(q);
}

void me_jobq_work(me_jobq_t *q, int (*run)(void *ctx, const char *id, int64_t now, int64_t *retry_at), void *ctx)
{
    char id[ME_JOBQ_ID_MAX + 1];
    while (me_jobq_pop(q, id) == 0) {
        int64_t retry_at = 0;
        if (run(ctx, id, me_clock_wall_ms(), &retry_at) == ME_EBUSY)
            me_jobq_retry(q, id, retry_at);
        else
            me_jobq_done(q, id);
    }
}
