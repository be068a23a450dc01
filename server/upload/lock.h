/* lock.h: named locks taken without waiting, so that an upload's appends, its completion and
 * a concatenation that uses it exclude each other. The interface has a backend per
 * deployment: local (this process only; the default) and, when several instances serve the
 * same uploads, Redis (with expiry and fencing tokens). A request that finds its lock taken
 * is answered 423 and retried by its client, never queued: a phone that lost its connection
 * and resent its PATCH must not wait behind its own first attempt. */
#ifndef ME_LOCK_H
#define ME_LOCK_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"

#define ME_LOCK_NAME_MAX 64

typedef struct me_locks me_locks_t;

/* A backend's operations, on its own state be. acquire: 0 with *fence set (a number that
 * grows with each acquisition of any lock: storage writes can carry it so that a holder
 * whose lock expired is refused), ME_ELOCKED when held (or no room), ME_EIO when the backend
 * cannot answer. release: drops the lock if fence still holds it. */
typedef struct {
    const char *name;
    int (*acquire)(void *be, const char *name, uint64_t *fence);
    void (*release)(void *be, const char *name, uint64_t fence);
    void (*free)(void *be);
} me_lock_ops_t;

/* Locks over a backend (be owned from then on, freed by ops->free with the set). NULL when
 * out of memory (be is then freed too). */
me_locks_t *me_locks_new(const me_lock_ops_t *ops, void *be);

/* In-process locks, at most max held at once. NULL when out of memory. */
me_locks_t *me_locks_local_new(size_t max);

/* Takes the lock name (1..ME_LOCK_NAME_MAX bytes) without waiting: 0 with *fence set (fence
 * may be NULL), ME_ELOCKED, ME_EINVAL (a bad name), or ME_EIO. */
int me_locks_acquire(me_locks_t *l, const char *name, uint64_t *fence) ME_MUST_CHECK;

/* Releases name, taken with fence (0 when the caller did not keep it). */
void me_locks_release(me_locks_t *l, const char *name, uint64_t fence);

/* The backend's name ("local"). */
const char *me_locks_backend(const me_locks_t *l);

/* Frees the set and its backend; NULL is fine. No lock may be held. */
void me_locks_free(me_locks_t *l);

#endif
