/* delivery_config.c: the cdn and delivery sections' tables, their rules, and the development defaults refused in production. */
#include "server/delivery/delivery_config.h"

#include <string.h>

static int valid_base_url(const char *value);
static int valid_key(const char *value);
static int valid_proxy(const char *value);
static int valid_header(const char *value);
static int valid_domain(const char *value);

static const char *const hashes[] = {"auto", "SHA1", "SHA256", NULL}; /* in me_cdn_hash_setting_t's order */
static const char *const samesite[] = {"Strict", "Lax", "None", NULL};

#define CDN(...) ME_SETTING(me_cdn_settings_t, __VA_ARGS__)
static const me_setting_t cdn_settings[] = {
    CDN("base_url", ME_SETTING_STRING, base_url, "", .valid = valid_base_url,
        .form = "scheme://host[:port] (http or https, no path), or \"\" for this server's own"),
    CDN("keys", ME_SETTING_LIST, keys, "", .valid = valid_key, .max = ME_CF_KEYS_MAX,
        .form = "<CloudFront key id>=<PEM file>, the id of A-Z a-z 0-9 _ - (at most 64)"),
    CDN("active_key", ME_SETTING_STRING, active_key, ""),
    CDN("hash_algorithm", ME_SETTING_ENUM, hash_algorithm, "auto", .choices = hashes),
    CDN("url_ttl", ME_SETTING_DURATION, url_ttl, "1h", .min = 1000, .max = 7 * 86400000LL),
    CDN("cookie_ttl", ME_SETTING_DURATION, cookie_ttl, "12h", .min = 1000, .max = 7 * 86400000LL),
    CDN("max_ttl", ME_SETTING_DURATION, max_ttl, "24h", .min = 60000, .max = 7 * 86400000LL),
    CDN("expiry_step", ME_SETTING_DURATION, expiry_step, "5m", .max = 86400000),
    CDN("cache_entries", ME_SETTING_INT, cache_entries, "4096", .max = 1000000),
    CDN("origin_secret", ME_SETTING_SECRET, origin_secret, ""),
    CDN("origin_secret_previous", ME_SETTING_SECRET, origin_secret_previous, ""),
    CDN("origin_secret_header", ME_SETTING_STRING, origin_secret_header, "x-origin-secret", .valid = valid_header,
        .form = "a header name in lower case (a-z 0-9 -)"),
    CDN("trusted_proxies", ME_SETTING_LIST, trusted_proxies, "", .valid = valid_proxy, .max = ME_DELIVERY_PROXIES_MAX,
        .form = "IP addresses or ranges (10.0.0.0/8, 2001:db8::/32)"),
    CDN("cookie_domain", ME_SETTING_STRING, cookie_domain, "", .valid = valid_domain,
        .form = "a host name such as example.com (no scheme, no port), or \"\""),
    CDN("cookie_secure", ME_SETTING_BOOL, cookie_secure, "true"),
    CDN("cookie_samesite", ME_SETTING_STRING, cookie_samesite, "Lax", .choices = samesite),
};

#define DELIVERY(...) ME_SETTING(me_delivery_settings_t, __VA_ARGS__)
static const me_setting_t delivery_settings[] = {
    DELIVERY("serve_original", ME_SETTING_BOOL, serve_original, "false"),
    DELIVERY("chunk_size", ME_SETTING_SIZE, chunk_size, "256KiB", .min = 4 * ME_KIB, .max = 16 * ME_MIB),
    DELIVERY("hot_cache", ME_SETTING_SIZE, hot_cache, "32MiB", .max = 16 * ME_GIB),
    DELIVERY("hot_object_max", ME_SETTING_SIZE, hot_object_max, "512KiB", .min = ME_KIB, .max = 16 * ME_MIB),
    DELIVERY("hot_ttl", ME_SETTING_DURATION, hot_ttl, "1s", .max = 60000),
};

static int id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static int valid_base_url(const char *value)
{
    const char *host = !strncmp(value, "https://", 8) ? value + 8 : !strncmp(value, "http://", 7) ? value + 7 : NULL;
    if (*value == '\0')
        return 1;
    return host != NULL && *host != '\0' && strlen(value) <= 256 &&
           strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") == strlen(host);
}

static int valid_key(const char *value)
{
    const char *eq = strchr(value, '=');
    size_t n = eq != NULL ? (size_t)(eq - value) : 0;
    for (size_t i = 0; i < n; i++)
        if (!id_char(value[i]))
            return 0;
    return n > 0 && n <= ME_CF_KEY_ID_MAX && eq[1] != '\0';
}

static int valid_proxy(const char *value)
{
    me_cf_cidr_t c;
    return me_cf_cidr_parse(value, strlen(value), &c) == 0;
}

static int valid_header(const char *value)
{
    size_t n = strlen(value);
    return n > 0 && n <= 64 && strspn(value, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static int valid_domain(const char *value)
{
    size_t n = strlen(value);
    return n <= 253 && strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

static int cdn_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_cdn_settings_t *c = values;
    size_t secret = strlen(c->origin_secret), previous = strlen(c->origin_secret_previous);
    (void)cfg;

    if (c->url_ttl > c->max_ttl)
        return me_config_reject(ck, &c->url_ttl, "cdn.url_ttl is longer than cdn.max_ttl");
    if (c->cookie_ttl > c->max_ttl)
        return me_config_reject(ck, &c->cookie_ttl, "cdn.cookie_ttl is longer than cdn.max_ttl");
    if (c->expiry_step > c->max_ttl / 2)
        return me_config_reject(ck, &c->expiry_step, "cdn.expiry_step must be at most half of cdn.max_ttl");
    if ((secret != 0 && secret < ME_DELIVERY_SECRET_MIN) || secret > 256)
        return me_config_reject(ck, &c->origin_secret, "cdn.origin_secret must be %d to 256 bytes",
                                ME_DELIVERY_SECRET_MIN);
    if ((previous != 0 && previous < ME_DELIVERY_SECRET_MIN) || previous > 256)
        return me_config_reject(ck, &c->origin_secret_previous, "cdn.origin_secret_previous must be %d to 256 bytes",
                                ME_DELIVERY_SECRET_MIN);
    if (previous != 0 && secret == 0)
        return me_config_reject(ck, &c->origin_secret_previous, "cdn.origin_secret_previous needs cdn.origin_secret");
    if (!strcmp(c->cookie_samesite, "None") && !c->cookie_secure)
        return me_config_reject(ck, &c->cookie_samesite,
                                "cdn.cookie_samesite None needs cdn.cookie_secure (browsers drop it otherwise)");
    if (*c->active_key != '\0') {
        /* the active id must be one of the keys: "<id>=" at the start of an item */
        const char *p = c->keys, *item;
        size_t len, n = strlen(c->active_key);
        int found = 0;
        while (!found && me_config_list_next(&p, &item, &len))
            found = len > n && item[n] == '=' && !memcmp(item, c->active_key, n);
        if (!found)
            return me_config_reject(ck, &c->active_key, "cdn.active_key is not the id of one of cdn.keys");
    }
    return 0;
}

/* What the API roles would sign and serve with in production. */
static int cdn_refuse(const me_config_t *cfg, const void *values, me_config_refusal_t *r)
{
    const me_cdn_settings_t *c = values;

    if (cfg->role == ME_ROLE_WORKER)
        return 0; /* no key, no origin */
    if (*c->keys == '\0')
        *r = (me_config_refusal_t){ME_RISK_KEY, "cdn.keys",
                                   "the development CloudFront key (made at first start, known to no CloudFront) is",
                                   "", "set cdn.keys to <key id>=<PEM file> of the key pair CloudFront trusts"};
    else if (!c->cookie_secure)
        *r = (me_config_refusal_t){ME_RISK_TRANSPORT, "cdn.cookie_secure",
                                   "album cookies sent over plain HTTP (anyone on the way could reuse them) are", "",
                                   "set cdn.cookie_secure to true"};
    else
        return 0;
    return 1;
}

const me_config_section_t me_cdn_config_section = {
    .name = "cdn", .size = sizeof(me_cdn_settings_t), ME_CONFIG_TABLE(cdn_settings), .check = cdn_check,
    .refuse_in_production = cdn_refuse,
};

const me_config_section_t me_delivery_config_section = {
    .name = "delivery", .size = sizeof(me_delivery_settings_t), ME_CONFIG_TABLE(delivery_settings),
};

void me_delivery_config_from(const me_config_t *cfg, me_delivery_config_t *dc)
{
    const me_cdn_settings_t *c = me_cdn_settings(cfg);
    const me_delivery_settings_t *d = me_delivery_settings(cfg);

    me_delivery_config_defaults(dc);
    dc->base_url = c->base_url;
    dc->keys = c->keys;
    dc->active_key = c->active_key;
    dc->hash = c->hash_algorithm == ME_CDN_HASH_SHA1     ? ME_CF_SHA1
               : c->hash_algorithm == ME_CDN_HASH_SHA256 ? ME_CF_SHA256
                                                         : ME_CF_HASH_DEFAULT;
    dc->url_ttl = c->url_ttl / 1000;
    dc->cookie_ttl = c->cookie_ttl / 1000;
    dc->max_ttl = c->max_ttl / 1000;
    dc->expiry_step = c->expiry_step / 1000;
    dc->cache_entries = c->cache_entries;
    dc->origin_secret = c->origin_secret;
    dc->origin_secret_previous = c->origin_secret_previous;
    dc->origin_secret_header = c->origin_secret_header;
    dc->trusted_proxies = c->trusted_proxies;
    dc->cookie_domain = c->cookie_domain;
    dc->cookie_secure = c->cookie_secure;
    dc->cookie_samesite = c->cookie_samesite;
    dc->serve_original = d->serve_original;
    dc->chunk_size = d->chunk_size;
}
