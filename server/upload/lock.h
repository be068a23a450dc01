/* lock.h: named locks taken without waiting, so that an upload's appends, its completion and
 * a concatenation that uses it exclude each other. The interface has a backend per
 * deployment: local (this process only; the default) and, when several instances serve the
 * same uploads, Redis (lock_redis.c: expiry, renewal, fencing tokens). A request that finds
 * its lock taken is answered 423 and retried by its client, never queued: a phone that lost
 * its connection and resent its PATCH must not wait behind its own first attempt.
 *
 * Fencing. A Redis lock lives redis.lock_ttl unless its process renews it (a thread renews
 * every held lock each third of the TTL). A process frozen longer than that (a stopped VM, a
 * long GC-like stall, SIGSTOP) loses its lock, and another instance may take it and go on.
 * When the frozen holder wakes it must not commit what it was doing: so every commit of an
 * upload's state is preceded by me_locks_check(), which in one Redis script verifies that the
 * lock still holds this holder's fence and extends it to a full TTL; a lost lock refuses the
 * commit (ME_ELOCKED: 423, the client resumes from HEAD). Storage itself (a directory, S3)
 * has no conditional write that could carry the fence, so one window stays open: a holder
 * that passes the check and then stalls for longer than the whole TTL before its write lands
 * can still overwrite a newer state. The write after the check must therefore take less than
 * lock_ttl: the storage backend's timeout must be shorter (README, "Several instances").
 * Data written before the check (a part, a piece) sits at a key named by its offset, and a
 * resent PATCH carries the same bytes for the same offset, so a late data write is harmless;
 * only the state document decides what counts. */
#ifndef ME_LOCK_H
#define ME_LOCK_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"

#define ME_LOCK_NAME_MAX 64

typedef struct me_locks me_locks_t;

/* A backend's operations, on its own state be. acquire: 0 with *fence set (a number that
 * grows with each acquisition of any lock: storage writes can carry it so that a holder
 * whose lock expired is refused), ME_ELOCKED when held (or no room), ME_ELOCK_UNAVAILABLE
 * when the backend does not answer (503: retry later), ME_EIO when it answers nonsense.
 * release: drops the lock if fence still holds it. */
typedef struct {
    const char *name;
    int (*acquire)(void *be, const char *name, uint64_t *fence);
    void (*release)(void *be, const char *name, uint64_t fence);
    void (*free)(void *be);
    /* 0 when fence still holds name and will for at least a full TTL from now; ME_ELOCKED
     * when it lost it; ME_ELOCK_UNAVAILABLE when the backend does not answer. NULL: a lock is never lost (local). */
    int (*check)(void *be, const char *name, uint64_t fence);
} me_lock_ops_t;

/* Locks over a backend (be owned from then on, freed by ops->free with the set). NULL when
 * out of memory (be is then freed too). */
me_locks_t *me_locks_new(const me_lock_ops_t *ops, void *be);

/* In-process locks, at most max held at once. NULL when out of memory. */
me_locks_t *me_locks_local_new(size_t max);

struct me_redis;

/* Locks in Redis (lock_redis.c) over r (not owned: it must outlive the set) under
 * "<prefix>lock:<name>", each living ttl_ms unless renewed; a thread of the set renews the
 * held ones every ttl_ms / 3. NULL with err filled when out of memory or the thread cannot
 * start. */
me_locks_t *me_locks_redis_new(struct me_redis *r, const char *prefix, uint64_t ttl_ms, char *err, size_t errlen);

/* Takes the lock name (1..ME_LOCK_NAME_MAX bytes) without waiting: 0 with *fence set (fence
 * may be NULL), ME_ELOCKED, ME_EINVAL (a bad name), ME_ELOCK_UNAVAILABLE (the backend does
 * not answer: the request gets 503 with Retry-After, not 423) or ME_EIO. */
int me_locks_acquire(me_locks_t *l, const char *name, uint64_t *fence) ME_MUST_CHECK;

/* Before committing what the lock guards: 0 when name is still held with fence (and, in
 * Redis, now has a full TTL ahead: the commit must land within it), ME_ELOCKED when the lock
 * was lost (expired while this process stalled; another may hold it): do not commit,
 * ME_ELOCK_UNAVAILABLE when the backend does not answer (do not commit either). */
int me_locks_check(me_locks_t *l, const char *name, uint64_t fence) ME_MUST_CHECK;

/* Releases name, taken with fence (0 when the caller did not keep it). */
void me_locks_release(me_locks_t *l, const char *name, uint64_t fence);

/* The backend's name ("local", "redis"). */
const char *me_locks_backend(const me_locks_t *l);

/* Frees the set and its backend; NULL is fine. No lock may be held. */
void me_locks_free(me_locks_t *l);

#endif
