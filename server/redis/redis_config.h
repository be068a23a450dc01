/* redis_config.h: the queue section (where jobs, webhooks, upload locks and leases live) and
 * the redis section (how to reach Redis). */
#ifndef ME_REDIS_CONFIG_H
#define ME_REDIS_CONFIG_H

#include <stdint.h>
#include "server/core/config.h"

typedef enum { ME_QUEUE_LOCAL, ME_QUEUE_REDIS } me_queue_backend_t;

/* queue: */
typedef struct {
    int backend;          /* me_queue_backend_t: local (one instance) or redis (several) */
    uint64_t claim_after; /* ms a job or delivery may go without its worker's heartbeat before another takes it */
} me_queue_settings_t;

/* redis: */
typedef struct {
    char *url;                /* secret when it holds a password */
    uint64_t connect_timeout; /* ms */
    uint64_t timeout;         /* ms for one command's answer */
    char *prefix;             /* of every key, so that several deployments can share a server */
    uint64_t lock_ttl;        /* ms an upload lock lives unless renewed (every third of it) */
    int pool_size;            /* idle connections kept per process */
} me_redis_settings_t;

extern const me_config_section_t me_queue_config_section;
extern const me_config_section_t me_redis_config_section;

/* cfg's queue section (owned by cfg). */
static inline const me_queue_settings_t *me_queue_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_queue_config_section);
}

/* cfg's redis section (owned by cfg). */
static inline const me_redis_settings_t *me_redis_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_redis_config_section);
}

#endif
