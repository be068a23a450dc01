/* lock.c: the lock interface, and its local backend (a mutex and a table of held names). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "server/upload/lock.h"

struct me_locks {
    const me_lock_ops_t *ops;
    void *be;
};

me_locks_t *me_locks_new(const me_lock_ops_t *ops, void *be)
{
    me_locks_t *l = malloc(sizeof(*l));
    if (l == NULL) {
        ops->free(be);
        return NULL;
    }
    l->ops = ops, l->be = be;
    return l;
}

int me_locks_acquire(me_locks_t *l, const char *name, uint64_t *fence)
{
    uint64_t ignored;
    size_t len = strlen(name);
    if (len == 0 || len > ME_LOCK_NAME_MAX)
        return ME_EINVAL;
    return l->ops->acquire(l->be, name, fence != NULL ? fence : &ignored);
}

int me_locks_check(me_locks_t *l, const char *name, uint64_t fence)
{
    return l->ops->check != NULL ? l->ops->check(l->be, name, fence) : 0;
}

void me_locks_release(me_locks_t *l, const char *name, uint64_t fence)
{
    l->ops->release(l->be, name, fence);
}

const char *me_locks_backend(const me_locks_t *l)
{
    return l->ops->name;
}

void me_locks_free(me_locks_t *l)
{
    if (l == NULL)
        return;
    l->ops->free(l->be);
    free(l);
}

/* ---- local: one process ---- */

typedef struct {
    pthread_mutex_t mutex;
    uint64_t next_fence;
    size_t max;
    char (*held)[ME_LOCK_NAME_MAX + 1]; /* max names; "" is a free slot */
} local_t;

static int local_acquire(void *be, const char *name, uint64_t *fence)
{
    local_t *t = be;
    size_t free_slot = t->max;
    int ret = ME_ELOCKED;
    pthread_mutex_lock(&t->mutex);
    for (size_t i = 0; i < t->max; i++) {
        if (strcmp(t->held[i], name) == 0)
            goto exit;
        if (t->held[i][0] == '\0' && free_slot == t->max)
            free_slot = i;
    }
    if (free_slot < t->max) {
        strcpy(t->held[free_slot], name);
        *fence = ++t->next_fence;
        ret = 0;
    }
exit:
    pthread_mutex_unlock(&t->mutex);
    return ret;
}

/* The fence is not needed here: only this process takes these locks, and a holder cannot
 * lose its lock to time. */
static void local_release(void *be, const char *name, uint64_t fence)
{
    local_t *t = be;
    (void)fence;
    pthread_mutex_lock(&t->mutex);
    for (size_t i = 0; i < t->max; i++)
        if (strcmp(t->held[i], name) == 0)
            t->held[i][0] = '\0';
    pthread_mutex_unlock(&t->mutex);
}

static void local_free(void *be)
{
    local_t *t = be;
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->mutex);
    free(t->held);
    free(t);
}

static const me_lock_ops_t local_ops = {"local", local_acquire, local_release, local_free};

me_locks_t *me_locks_local_new(size_t max)
{
    local_t *t = calloc(1, sizeof(*t));
    if (t == NULL || max == 0 || (t->held = calloc(max, sizeof(*t->held))) == NULL) {
        free(t);
        return NULL;
    }
    t->max = max;
    pthread_mutex_init(&t->mutex, NULL);
    return me_locks_new(&local_ops, t);
}
