/* redis_config.c: the queue and redis sections' tables, and their checks. */
#include "server/redis/redis_config.h"

#include <string.h>
#include "server/redis/redis.h"

static const char *const queue_backends[] = {"local", "redis", NULL};

static int valid_prefix(const char *value);

#define QUEUE(...) ME_SETTING(me_queue_settings_t, __VA_ARGS__)
static const me_setting_t queue_settings[] = {
    QUEUE("backend", ME_SETTING_ENUM, backend, "local", .choices = queue_backends),
    QUEUE("claim_after", ME_SETTING_DURATION, claim_after, "30s", .min = 1000, .max = 3600000),
};

#define REDIS(...) ME_SETTING(me_redis_settings_t, __VA_ARGS__)
static const me_setting_t redis_settings[] = {
    REDIS("url", ME_SETTING_SECRET, url, ""),
    REDIS("connect_timeout", ME_SETTING_DURATION, connect_timeout, "2s", .min = 10, .max = 60000),
    REDIS("timeout", ME_SETTING_DURATION, timeout, "2s", .min = 10, .max = 60000),
    REDIS("prefix", ME_SETTING_STRING, prefix, "mediaedge:", .valid = valid_prefix,
          .form = "at most 64 of [A-Za-z0-9:._-]"),
    REDIS("lock_ttl", ME_SETTING_DURATION, lock_ttl, "10s", .min = 300, .max = 300000),
    REDIS("pool_size", ME_SETTING_INT, pool_size, "16", .min = 1, .max = 1024),
};

static int valid_prefix(const char *value)
{
    size_t n = strlen(value);
    if (n > ME_REDIS_PREFIX_MAX)
        return 0;
    for (const char *p = value; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == ':' ||
              *p == '.' || *p == '_' || *p == '-'))
            return 0;
    return 1;
}

static int queue_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_queue_settings_t *q = values;
    if (q->backend == ME_QUEUE_REDIS && *me_redis_settings(cfg)->url == '\0')
        return me_config_reject(ck, &q->backend,
                                "queue.backend is redis but redis.url is empty "
                                "(set MEDIAEDGE_REDIS_URL or MEDIAEDGE_REDIS_URL_FILE)");
    return 0;
}

/* The URL's form is checked even when the queue is local, so that a typo shows at once; the
 * message never quotes it (it may hold a password). */
static int redis_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_redis_settings_t *r = values;
    me_redis_url_t url;
    char why[256];
    (void)cfg;
    if (*r->url != '\0' && me_redis_url_parse(r->url, &url, why, sizeof(why)) != 0)
        return me_config_reject(ck, &r->url, "redis.url: %s", why);
    explicit_bzero(&url, sizeof(url));
    return 0;
}

const me_config_section_t me_queue_config_section = {
    .name = "queue",
    .size = sizeof(me_queue_settings_t),
    ME_CONFIG_TABLE(queue_settings),
    .check = queue_check,
};

const me_config_section_t me_redis_config_section = {
    .name = "redis",
    .size = sizeof(me_redis_settings_t),
    ME_CONFIG_TABLE(redis_settings),
    .check = redis_check,
};
