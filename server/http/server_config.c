/* server_config.c: the HTTP server's sections (server, listen, tls, http, shutdown): tables, rules, auto values. */
#include "server/http/server_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <string.h>
#include <strings.h>

static int valid_listen(const char *value);
static int valid_origin(const char *value);

static const char *const roles[] = {"all", "api", "worker", NULL}; /* in me_role_t's order */
#define HOSTPORT .valid = valid_listen, .form = "host:port with a port from 1 to 65535, or \"\" to disable"
#define ORIGINS .valid = valid_origin, .max = 64,                                                  \
                .form = "origins such as https://app.example.com (scheme://host[:port]: no path, no wildcard)"

#define SERVER(...) ME_SETTING(me_server_settings_t, __VA_ARGS__)
static const me_setting_t server_settings[] = {
    ME_SETTING(me_config_t, "role", ME_SETTING_ENUM, role, "all", .flags = ME_SETTING_CORE, .choices = roles),
    SERVER("data_dir", ME_SETTING_STRING, data_dir, "./var"),
    SERVER("threads", ME_SETTING_INT, threads, "0", .flags = ME_SETTING_AUTO, .max = 256),
    SERVER("pool_threads", ME_SETTING_INT, pool_threads, "0", .flags = ME_SETTING_AUTO, .max = 256),
    SERVER("demo_page", ME_SETTING_BOOL, demo_page, "true"),
};

#define LISTEN(...) ME_SETTING(me_listen_settings_t, __VA_ARGS__)
static const me_setting_t listen_settings[] = {
    LISTEN("http", ME_SETTING_STRING, http, "0.0.0.0:8080", HOSTPORT),
    LISTEN("https", ME_SETTING_STRING, https, "0.0.0.0:8443", HOSTPORT),
};

#define TLS(...) ME_SETTING(me_tls_settings_t, __VA_ARGS__)
static const me_setting_t tls_settings[] = {
    TLS("cert_file", ME_SETTING_STRING, cert_file, ""),
    TLS("key_file", ME_SETTING_STRING, key_file, ""),
};

#define HTTP(...) ME_SETTING(me_http_settings_t, __VA_ARGS__)
static const me_setting_t http_settings[] = {
    HTTP("max_patch_size", ME_SETTING_SIZE, max_patch_size, "16MiB", .min = 64 * ME_KIB, .max = ME_GIB),
    HTTP("min_client_rate", ME_SETTING_SIZE, min_client_rate, "64KiB", .min = ME_KIB, .max = INT64_MAX),
    HTTP("http1_request_timeout", ME_SETTING_DURATION, http1_request_timeout, "0", .flags = ME_SETTING_AUTO),
    HTTP("idle_timeout", ME_SETTING_DURATION, idle_timeout, "30s"),
    HTTP("http2_max_streams", ME_SETTING_INT, http2_max_streams, "100", .min = 1, .max = 1000),
    HTTP("max_connections", ME_SETTING_INT, max_connections, "4096", .min = 1, .max = 1000000),
    HTTP("body_spill_threshold", ME_SETTING_SIZE, body_spill_threshold, "0", .flags = ME_SETTING_AUTO),
    HTTP("max_body_memory", ME_SETTING_SIZE, max_body_memory, "0", .flags = ME_SETTING_AUTO),
    HTTP("min_free_disk", ME_SETTING_SIZE, min_free_disk, "1GiB"),
    HTTP("cors_origins", ME_SETTING_LIST, cors_origins, "", ORIGINS),
    HTTP("cors_max_age", ME_SETTING_DURATION, cors_max_age, "1h", .max = 86400000),
};

#define SHUTDOWN(...) ME_SETTING(me_shutdown_settings_t, __VA_ARGS__)
static const me_setting_t shutdown_settings[] = {
    SHUTDOWN("delay", ME_SETTING_DURATION, delay, "5s"),
    SHUTDOWN("drain_timeout", ME_SETTING_DURATION, drain_timeout, "25s"),
};

static int valid_listen(const char *value)
{
    const char *colon = strrchr(value, ':');
    char host[INET6_ADDRSTRLEN + 2];
    struct in6_addr addr;
    uint64_t port;
    size_t hlen;

    if (!*value)
        return 1;
    if (colon == NULL || me_config_parse_uint(colon + 1, &port) || port < 1 || port > 65535)
        return 0;
    hlen = (size_t)(colon - value);
    if (hlen >= 2 && value[0] == '[' && value[hlen - 1] == ']' && hlen - 2 < sizeof(host)) {
        memcpy(host, value + 1, hlen - 2);
        host[hlen - 2] = '\0';
        return inet_pton(AF_INET6, host, &addr) == 1;
    }
    if (!hlen)
        return 0;
    for (const char *p = value; p < colon; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            return 0;
    return 1;
}

/* An origin as browsers send it in Origin: http or https, a host name or an IP address (IPv6
 * in brackets), an optional port; no path. "*" passes here for http_check() to refuse with
 * its reason. */
static int valid_origin(const char *value)
{
    const char *host, *end;
    uint64_t port;

    if (!strcmp(value, "*"))
        return 1;
    if (!strncasecmp(value, "https://", 8))
        host = value + 8;
    else if (!strncasecmp(value, "http://", 7))
        host = value + 7;
    else
        return 0;
    if (*host == '[') {
        char addr[INET6_ADDRSTRLEN];
        struct in6_addr a;
        if ((end = strchr(host, ']')) == NULL || (size_t)(end - host - 1) >= sizeof(addr))
            return 0;
        memcpy(addr, host + 1, (size_t)(end - host - 1));
        addr[end - host - 1] = '\0';
        if (inet_pton(AF_INET6, addr, &a) != 1)
            return 0;
        end++;
    } else {
        for (end = host; isalnum((unsigned char)*end) || *end == '.' || *end == '-'; end++)
            ;
        if (end == host || end - host > 253)
            return 0;
    }
    if (!*end)
        return 1;
    return *end == ':' && !me_config_parse_uint(end + 1, &port) && port >= 1 && port <= 65535;
}

static int server_refuse(const me_config_t *cfg, const void *values, me_config_refusal_t *r)
{
    const me_server_settings_t *s = values;

    if (!s->demo_page)
        return 0;
    *r = (me_config_refusal_t){ME_RISK_EXPOSURE, "server.demo_page", "the demo page is", "",
                               "set server.demo_page to false"};
    return 1;
}

static void server_resolve(me_config_t *cfg, void *values)
{
    me_server_settings_t *s = values;
    uint64_t cpus = (uint64_t)cfg->cpu_limit;

    me_config_auto(cfg, &s->threads, cpus);
    me_config_auto(cfg, &s->pool_threads, 2 * cpus < 4 ? 4 : 2 * cpus);
}

static int listen_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_listen_settings_t *l = values;

    if (!*l->http && !*l->https)
        return me_config_reject(ck, &l->https,
                                "listen.http and listen.https are both empty; at least one listener is needed");
    return 0;
}

static int tls_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_tls_settings_t *t = values;

    if (!*t->cert_file != !*t->key_file)
        return me_config_reject(ck, *t->cert_file ? &t->cert_file : &t->key_file,
                                "tls.cert_file and tls.key_file must both be set, or both be empty for a "
                                "self-signed certificate");
    return 0;
}

static int tls_refuse(const me_config_t *cfg, const void *values, me_config_refusal_t *r)
{
    const me_tls_settings_t *t = values;

    if (!*me_listen_settings(cfg)->https || *t->cert_file)
        return 0;
    *r = (me_config_refusal_t){ME_RISK_TRANSPORT, "tls.cert_file",
                               "a self-signed certificate (tls.cert_file empty while listen.https is set) is", "",
                               "set tls.cert_file and tls.key_file, or disable listen.https"};
    return 1;
}

/* 1 when the list value has an item equal to word. */
static int list_has(const char *list, const char *word)
{
    const char *item;
    size_t len;

    while (me_config_list_next(&list, &item, &len))
        if (len == strlen(word) && !strncmp(item, word, len))
            return 1;
    return 0;
}

static int http_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_http_settings_t *h = values;

    if (list_has(h->cors_origins, "*"))
        return me_config_reject(ck, &h->cors_origins,
                                "http.cors_origins: \"*\" (any origin) is not allowed: requests carry credentials "
                                "(Authorization), so list each origin, such as https://app.example.com");
    return 0;
}

static void http_resolve(me_config_t *cfg, void *values)
{
    me_http_settings_t *h = values;
    uint64_t rate = h->min_client_rate ? h->min_client_rate : 1;
    uint64_t spill = cfg->memory_limit / 256;

    spill = spill < ME_MIB ? ME_MIB : spill > 32 * ME_MIB ? 32 * ME_MIB : spill;
    me_config_auto(cfg, &h->http1_request_timeout, 10000 + h->max_patch_size * 1000 / rate);
    me_config_auto(cfg, &h->body_spill_threshold, spill);
    me_config_auto(cfg, &h->max_body_memory,
                   cfg->memory_limit / 4 > 2 * h->max_patch_size ? cfg->memory_limit / 4 : 2 * h->max_patch_size);
}

const me_config_section_t me_server_config_section = {
    .name = "server", .size = sizeof(me_server_settings_t), ME_CONFIG_TABLE(server_settings),
    .refuse_in_production = server_refuse, .resolve = server_resolve,
};

const me_config_section_t me_listen_config_section = {
    .name = "listen", .size = sizeof(me_listen_settings_t), ME_CONFIG_TABLE(listen_settings), .check = listen_check,
};

const me_config_section_t me_tls_config_section = {
    .name = "tls", .size = sizeof(me_tls_settings_t), ME_CONFIG_TABLE(tls_settings), .check = tls_check,
    .refuse_in_production = tls_refuse,
};

const me_config_section_t me_http_config_section = {
    .name = "http", .size = sizeof(me_http_settings_t), ME_CONFIG_TABLE(http_settings), .check = http_check,
    .resolve = http_resolve,
};

const me_config_section_t me_shutdown_config_section = {
    .name = "shutdown", .size = sizeof(me_shutdown_settings_t), ME_CONFIG_TABLE(shutdown_settings),
};
