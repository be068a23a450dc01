/* jobs_config.h: the jobs and webhooks sections of the configuration. */
#ifndef ME_JOBS_CONFIG_H
#define ME_JOBS_CONFIG_H

#include <stdint.h>
#include "server/core/config.h"

/* jobs: */
typedef struct {
    int workers;              /* processing threads; 0 = auto: the CPU limit */
    int video_workers;        /* threads of the video lane, besides workers: videos run only there */
    int max_attempts;         /* tries of a job that keeps failing for a passing reason */
    int max_deliveries;       /* starts of a job whose worker died each time before it fails */
    uint64_t retry_after;     /* ms before the first retry, doubled for each next one */
    uint64_t reconcile_every; /* ms between two looks for media stuck before ready */
    uint64_t stale_after;     /* ms a media may stay uploaded or processing unqueued */
} me_jobs_settings_t;

/* webhooks: */
typedef struct {
    char *url;            /* "" = none */
    char *secret;         /* HMAC-SHA256 key of Mediaedge-Signature */
    uint64_t timeout;     /* ms for one delivery */
    int max_attempts;
    uint64_t retry_after; /* ms before the first retry, doubled for each next one */
} me_webhook_settings_t;

extern const me_config_section_t me_jobs_config_section;
extern const me_config_section_t me_webhook_config_section;

/* cfg's jobs section (owned by cfg). */
static inline const me_jobs_settings_t *me_jobs_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_jobs_config_section);
}

/* cfg's webhooks section (owned by cfg). */
static inline const me_webhook_settings_t *me_webhook_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_webhook_config_section);
}

#endif
