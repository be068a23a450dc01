/* lease.h: a lease in Redis, so that one instance at a time does a periodic task (the sweep
 * of expired uploads, the reconciler): whoever holds the key "<prefix>lease:<name>" does it,
 * and renews it each time; when the holder dies the key expires and another takes over. A
 * lease only avoids doubled work: the tasks stay safe when two run at once (a pause longer
 * than the TTL can make that happen). */
#ifndef ME_LEASE_H
#define ME_LEASE_H

#include <stdint.h>
#include "server/core/error.h"
#include "server/redis/redis.h"

typedef struct me_lease me_lease_t;

/* The lease name (at most 64 bytes) under prefix, held ttl_ms at a time, over r (not owned).
 * NULL when out of memory. */
me_lease_t *me_lease_new(me_redis_t *r, const char *prefix, const char *name, uint64_t ttl_ms);

/* Takes the lease, or renews it when this holder has it: 1 when held (for ttl_ms from now), 0
 * when another instance holds it, ME_EIO when Redis cannot answer. */
int me_lease_hold(me_lease_t *l) ME_MUST_CHECK;

/* Gives the lease back when held, and frees l; NULL is fine. */
void me_lease_free(me_lease_t *l);

#endif
