/* delivery_config.h: the cdn and delivery sections of the configuration: CloudFront keys, URL and cookie lifetimes, the origin's secret and trusted proxies, and how the origin serves. */
#ifndef ME_DELIVERY_CONFIG_H
#define ME_DELIVERY_CONFIG_H

#include <stdint.h>
#include "server/core/config.h"
#include "server/delivery/delivery.h"

typedef enum { ME_CDN_HASH_AUTO, ME_CDN_HASH_SHA1, ME_CDN_HASH_SHA256 } me_cdn_hash_setting_t;

/* cdn: */
typedef struct {
    char *base_url;               /* scheme://host[:port]; "" = this server's own */
    char *keys;                   /* "<id>=<PEM file>,...": CloudFront's key ids and their keys */
    char *active_key;             /* the id that signs; "" = the first */
    int hash_algorithm;           /* me_cdn_hash_setting_t: auto, SHA1, SHA256 */
    uint64_t url_ttl;             /* ms */
    uint64_t cookie_ttl;          /* ms */
    uint64_t max_ttl;             /* ms */
    uint64_t expiry_step;         /* ms */
    int cache_entries;
    char *origin_secret;          /* secret: the custom origin header CloudFront sends */
    char *origin_secret_previous; /* secret: accepted too, during a rotation */
    char *origin_secret_header;
    char *trusted_proxies;        /* "cidr,cidr" */
    char *cookie_domain;
    int cookie_secure;
    char *cookie_samesite;        /* Strict, Lax, None */
} me_cdn_settings_t;

/* delivery: */
typedef struct {
    int serve_original;
    uint64_t chunk_size;          /* bytes */
    uint64_t hot_cache;           /* bytes of small objects kept in memory; 0: none */
    uint64_t hot_object_max;      /* bytes: larger objects are always read from storage */
    uint64_t hot_ttl;             /* ms an object in memory is served without asking storage */
} me_delivery_settings_t;

/* Its secrets are the origin secrets: a worker forgets them (me_config_forget_secrets()); it
 * loads no CloudFront key either. */
extern const me_config_section_t me_cdn_config_section;
extern const me_config_section_t me_delivery_config_section;

/* Each section's values in cfg (owned by cfg). */
static inline const me_cdn_settings_t *me_cdn_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_cdn_config_section);
}

static inline const me_delivery_settings_t *me_delivery_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_delivery_config_section);
}

/* Fills dc from cfg's cdn and delivery sections (dc's strings point into cfg: dc lives no
 * longer than cfg). Cannot fail: the sections were checked when cfg was loaded. */
void me_delivery_config_from(const me_config_t *cfg, me_delivery_config_t *dc);

#endif
