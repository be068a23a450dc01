/* jobs_config.c: the jobs and webhooks sections' tables, and the webhook URLs refused in production. */
#include "server/jobs/jobs_config.h"

#include <string.h>

static int valid_url(const char *value);

#define JOBS(...) ME_SETTING(me_jobs_settings_t, __VA_ARGS__)
static const me_setting_t jobs_settings[] = {
    JOBS("workers", ME_SETTING_INT, workers, "0", .flags = ME_SETTING_AUTO, .max = 256),
    JOBS("video_workers", ME_SETTING_INT, video_workers, "1", .min = 1, .max = 64),
    JOBS("max_attempts", ME_SETTING_INT, max_attempts, "5", .min = 1, .max = 100),
    JOBS("max_deliveries", ME_SETTING_INT, max_deliveries, "5", .min = 1, .max = 100),
    JOBS("retry_after", ME_SETTING_DURATION, retry_after, "2s", .min = 100, .max = 3600000),
    JOBS("reconcile_every", ME_SETTING_DURATION, reconcile_every, "5m", .min = 1000, .max = 86400000),
    JOBS("stale_after", ME_SETTING_DURATION, stale_after, "10m", .min = 1000, .max = 604800000),
};

#define WEBHOOKS(...) ME_SETTING(me_webhook_settings_t, __VA_ARGS__)
static const me_setting_t webhook_settings[] = {
    WEBHOOKS("url", ME_SETTING_STRING, url, "", .valid = valid_url,
             .form = "an http:// or https:// URL, or \"\" for no webhooks"),
    WEBHOOKS("secret", ME_SETTING_SECRET, secret, ""),
    WEBHOOKS("timeout", ME_SETTING_DURATION, timeout, "10s", .min = 100, .max = 300000),
    WEBHOOKS("max_attempts", ME_SETTING_INT, max_attempts, "12", .min = 1, .max = 100),
    WEBHOOKS("retry_after", ME_SETTING_DURATION, retry_after, "10s", .min = 100, .max = 3600000),
};

/* webhooks.url: "" (no webhooks), or an http:// or https:// URL under 2 KiB with no blank or
 * control character (production asks for https://, in its own check). */
static int valid_url(const char *value)
{
    if (*value == '\0')
        return 1;
    if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
        return 0;
    for (const char *p = value; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return 0;
    return strlen(value) < 2048;
}

static void jobs_resolve(me_config_t *cfg, void *values)
{
    me_jobs_settings_t *j = values;

    me_config_auto(cfg, &j->workers, (uint64_t)cfg->cpu_limit);
}

/* Webhooks leave from every role: the ones that process media (ready, failed) and the api
 * (media.deleted). */
static int webhook_refuse(const me_config_t *cfg, const void *values, me_config_refusal_t *r)
{
    const me_webhook_settings_t *w = values;

    (void)cfg;
    if (strncmp(w->url, "http://", 7))
        return 0;
    *r = (me_config_refusal_t){ME_RISK_TRANSPORT, "webhooks.url",
                               "a plain http:// URL (the events, about families' media, could be read on the way) is",
                               "", "use an https:// URL"};
    return 1;
}

const me_config_section_t me_jobs_config_section = {
    .name = "jobs", .size = sizeof(me_jobs_settings_t), ME_CONFIG_TABLE(jobs_settings), .resolve = jobs_resolve,
};

const me_config_section_t me_webhook_config_section = {
    .name = "webhooks", .size = sizeof(me_webhook_settings_t), ME_CONFIG_TABLE(webhook_settings),
    .refuse_in_production = webhook_refuse,
};
