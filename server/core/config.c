/* config.c: the settings table, its YAML and environment loaders, validation, and printing. */
#include "server/core/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "server/core/cgroup.h"
#include "server/media/photo/photo.h"

#define KIB 1024ull
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define SECRET_FILE_MAX (64 * KIB)
#define ECHO_MAX 64 /* bytes of a bad value or unknown name quoted back in an error */

typedef enum { T_STRING, T_SECRET, T_LIST, T_BOOL, T_INT, T_SIZE, T_DURATION, T_ENUM } type_t;

enum { F_AUTO = 1 }; /* 0 means "derive it": me_config_resolve() fills it in */

/* One setting. def is parsed like a value from the file, except that strings point at it
 * (unowned, never freed). When max != 0 the value must lie in [min, max] (every T_INT has a
 * range, so it fits an int). T_ENUM stores the index of the value in choices; a T_STRING
 * with choices must be one of them. valid() vets other strings (each item of a T_LIST), form
 * says what it wants. A T_LIST is stored as its items joined by commas; max caps their number. */
typedef struct {
    const char *section, *key;
    type_t type;
    size_t offset;
    const char *def;
    unsigned flags;
    int64_t min, max;
    const char *const *choices;
    int (*valid)(const char *value);
    const char *form;
} setting_t;

static int valid_listen(const char *value);
static int valid_origin(const char *value);
static int valid_url(const char *value);
static int valid_variant(const char *value);

static const char *const roles[] = {"all", "api", "worker", NULL};
static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const algorithms[] = {"HS256", "ES256", NULL};
static const char *const backends[] = {"file", "s3", NULL};
#define LISTEN .valid = valid_listen, .form = "host:port with a port from 1 to 65535, or \"\" to disable"
#define ORIGINS .valid = valid_origin, .max = 64,                                                  \
                .form = "origins such as https://app.example.com (scheme://host[:port]: no path, no wildcard)"

#define SET(sec, name, kind, field, value, ...)                                          \
    {.section = sec, .key = name, .type = kind, .offset = offsetof(me_config_t, field),     \
     .def = value, __VA_ARGS__}

/* Adding a setting is one line here, a field in me_config_t and a key in conf/mediaedge.yaml. */
static const setting_t settings[] = {
    SET("server", "role", T_ENUM, role, "all", .choices = roles),
    SET("server", "data_dir", T_STRING, data_dir, "./var"),
    SET("server", "threads", T_INT, threads, "0", .flags = F_AUTO, .max = 256),
    SET("server", "pool_threads", T_INT, pool_threads, "0", .flags = F_AUTO, .max = 256),
    SET("server", "demo_page", T_BOOL, demo_page, "true"),
    SET("listen", "http", T_STRING, listen_http, "0.0.0.0:8080", LISTEN),
    SET("listen", "https", T_STRING, listen_https, "0.0.0.0:8443", LISTEN),
    SET("tls", "cert_file", T_STRING, tls_cert_file, ""),
    SET("tls", "key_file", T_STRING, tls_key_file, ""),
    SET("http", "max_patch_size", T_SIZE, max_patch_size, "16MiB", .min = 64 * KIB, .max = GIB),
    SET("http", "min_client_rate", T_SIZE, min_client_rate, "64KiB", .min = KIB, .max = INT64_MAX),
    SET("http", "http1_request_timeout", T_DURATION, http1_request_timeout, "0", .flags = F_AUTO),
    SET("http", "idle_timeout", T_DURATION, idle_timeout, "30s"),
    SET("http", "http2_max_streams", T_INT, http2_max_streams, "100", .min = 1, .max = 1000),
    SET("http", "max_connections", T_INT, max_connections, "4096", .min = 1, .max = 1000000),
    SET("http", "body_spill_threshold", T_SIZE, body_spill_threshold, "0", .flags = F_AUTO),
    SET("http", "max_body_memory", T_SIZE, max_body_memory, "0", .flags = F_AUTO),
    SET("http", "min_free_disk", T_SIZE, min_free_disk, "1GiB"),
    SET("http", "cors_origins", T_LIST, cors_origins, "", ORIGINS),
    SET("http", "cors_max_age", T_DURATION, cors_max_age, "1h", .max = 86400000),
    SET("storage", "backend", T_STRING, storage_backend, "file", .choices = backends),
    SET("storage", "root", T_STRING, storage_root, "./var/storage"),
    SET("tokens", "algorithm", T_ENUM, token_alg, "HS256", .choices = algorithms),
    SET("tokens", "hs256_secret", T_SECRET, token_hs256_secret, ME_DEV_HS256_SECRET),
    SET("tokens", "es256_public_key_file", T_STRING, token_es256_public_key_file, ""),
    SET("tokens", "es256_private_key_file", T_STRING, token_es256_private_key_file, ""),
    SET("tokens", "issuer", T_STRING, token_issuer, "mediaedge-dev"),
    SET("tokens", "audience", T_STRING, token_audience, "mediaedge"),
    SET("tokens", "leeway", T_DURATION, token_leeway, "30s"),
    SET("tokens", "allow_hs256_in_production", T_BOOL, token_allow_hs256_in_production, "false"),
    SET("tokens", "cache_entries", T_INT, token_cache_entries, "4096", .max = 1000000),
    SET("log", "level", T_ENUM, log_level, "info", .choices = levels),
    SET("log", "access", T_BOOL, log_access, "true"),
    SET("uploads", "max_size", T_SIZE, upload_max_size, "4GiB", .min = 1, .max = 5497558138880),
    SET("uploads", "expire_after", T_DURATION, upload_expire_after, "24h", .min = 60000, .max = 2592000000),
    SET("photos", "max_pixels", T_INT, photo_max_pixels, "100000000", .min = 1, .max = 1000000000),
    SET("photos", "max_bytes", T_SIZE, photo_max_bytes, "64MiB", .min = KIB, .max = GIB),
    SET("photos", "jpeg_quality", T_INT, photo_jpeg_quality, "82", .min = 1, .max = 100),
    SET("photos", "webp_quality", T_INT, photo_webp_quality, "80", .min = 1, .max = 100),
    SET("photos", "webp_effort", T_INT, photo_webp_effort, "4", .min = 0, .max = 6),
    SET("photos", "keep_location", T_BOOL, photo_keep_location, "false"),
    SET("photos", "variants", T_LIST, photo_variants, "thumb:320x320,small:640,medium:1280,large:2048",
        .valid = valid_variant, .max = ME_PHOTO_VARIANTS_MAX,
        .form = "name:size (the longest edge) or name:sizexsize (a square crop), name of a-z 0-9 _ -, "
                "size from 16 to 8192"),
    SET("photos", "sandbox", T_BOOL, photo_sandbox, "true"),
    SET("photos", "timeout", T_DURATION, photo_timeout, "60s", .min = 1000, .max = 3600000),
    SET("shutdown", "delay", T_DURATION, shutdown_delay, "5s"),
    SET("shutdown", "drain_timeout", T_DURATION, shutdown_drain_timeout, "25s"),
    SET("jobs", "workers", T_INT, job_workers, "0", .flags = F_AUTO, .max = 256),
    SET("jobs", "max_attempts", T_INT, job_max_attempts, "5", .min = 1, .max = 100),
    SET("jobs", "retry_after", T_DURATION, job_retry_after, "2s", .min = 100, .max = 3600000),
    SET("jobs", "reconcile_every", T_DURATION, job_reconcile_every, "5m", .min = 1000, .max = 86400000),
    SET("jobs", "stale_after", T_DURATION, job_stale_after, "10m", .min = 1000, .max = 604800000),
    SET("webhooks", "url", T_STRING, webhook_url, "", .valid = valid_url,
        .form = "an http:// or https:// URL, or \"\" for no webhooks"),
    SET("webhooks", "secret", T_SECRET, webhook_secret, ""),
    SET("webhooks", "timeout", T_DURATION, webhook_timeout, "10s", .min = 100, .max = 300000),
    SET("webhooks", "max_attempts", T_INT, webhook_max_attempts, "12", .min = 1, .max = 100),
    SET("webhooks", "retry_after", T_DURATION, webhook_retry_after, "10s", .min = 100, .max = 3600000),
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

_Static_assert(N_SETTINGS <= 64, "auto_resolved has one bit per setting");
_Static_assert(sizeof(me_role_t) == sizeof(int) && sizeof(me_log_level_t) == sizeof(int) &&
                   sizeof(me_token_alg_t) == sizeof(int),
               "enum settings are stored as int");

typedef struct {
    const char *suffix;
    uint64_t mult;
} unit_t;

/* Sorted by multiplier, largest first: printing uses the first unit that divides a value. */
static const unit_t size_units[] = {{"GiB", GIB}, {"G", GIB}, {"MiB", MIB}, {"M", MIB},
                                    {"KiB", KIB}, {"K", KIB}, {"k", KIB}, {"", 1}, {NULL, 0}};
static const unit_t duration_units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"", 1000},
                                        {"ms", 1}, {NULL, 0}};
static const unit_t plain_units[] = {{"", 1}, {NULL, 0}};

/* Even indexes are false, odd ones true. */
static const char *const bool_words[] = {"false", "true", "no", "yes", "off", "on", NULL};

/* Where a value came from: a file line (line > 0), a file, or an environment variable. */
typedef struct {
    const char *name;
    int len;
    unsigned line;
} origin_t;

enum { PLACE_FILE, PLACE_ENV }; /* a value and its _file may not both be set in one place */

typedef struct {
    me_config_t *cfg;
    const char *path;
    char *err;
    size_t errlen;
    unsigned char given[N_SETTINGS]; /* bit (2 * place + from_file) per way it was set */
    origin_t origin[N_SETTINGS];     /* name NULL: the default */
} load_t;

/* Parses digits followed by exactly one of units' suffixes. 0 or ME_EINVAL (also on overflow). */
static int parse_scaled(const char *s, const unit_t *units, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;

    if (!isdigit((unsigned char)*p))
        return ME_EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return ME_EINVAL;
        v = v * 10 + d;
    }
    for (const unit_t *u = units; u->suffix; u++) {
        if (strcmp(p, u->suffix))
            continue;
        if (v > UINT64_MAX / u->mult)
            return ME_EINVAL;
        *out = v * u->mult;
        return 0;
    }
    return ME_EINVAL;
}

int me_config_parse_size(const char *s, uint64_t *out)
{
    return parse_scaled(s, size_units, out);
}

int me_config_parse_duration(const char *s, uint64_t *out)
{
    return parse_scaled(s, duration_units, out);
}

static void format_scaled(uint64_t v, const unit_t *units, char *buf, size_t len)
{
    const unit_t *u = units;

    while (v && v % u->mult)
        u++; /* the last unit of each table divides everything */
    snprintf(buf, len, "%llu%s", (unsigned long long)(v ? v / u->mult : 0), v ? u->suffix : "");
}

static void format_number(type_t type, uint64_t v, char *buf, size_t len)
{
    if (type == T_SIZE)
        format_scaled(v, size_units, buf, len);
    else if (type == T_DURATION)
        format_scaled(v, duration_units, buf, len);
    else
        snprintf(buf, len, "%lld", (long long)(int64_t)v);
}

/* The index of word in words (case-insensitive), or the index of the terminating NULL. */
static size_t find_word(const char *const *words, const char *word)
{
    size_t i = 0;

    while (words[i] && strcasecmp(words[i], word))
        i++;
    return i;
}

static int valid_listen(const char *value)
{
    const char *colon = strrchr(value, ':');
    char host[INET6_ADDRSTRLEN + 2];
    struct in6_addr addr;
    uint64_t port;
    size_t hlen;

    if (!*value)
        return 1;
    if (!colon || parse_scaled(colon + 1, plain_units, &port) || port < 1 || port > 65535)
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
 * in brackets), an optional port; no path. "*" passes here for validate() to refuse with
 * its reason. */
static int valid_url(const char *value)
{
    if (!*value)
        return 1;
    if (strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
        return 0;
    for (const char *p = value; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return 0;
    return strlen(value) < 2048;
}

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
        if (!(end = strchr(host, ']')) || (size_t)(end - host - 1) >= sizeof(addr))
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
    return *end == ':' && !parse_scaled(end + 1, plain_units, &port) && port >= 1 && port <= 65535;
}

static int valid_variant(const char *value)
{
    me_photo_variant_t v;
    return me_photo_variant_parse(value, strlen(value), &v);
}

int me_config_list_next(const char **p, const char **item, size_t *len)
{
    const char *s = *p;

    s += strspn(s, ", \t");
    *p = s;
    if (!*s)
        return 0;
    size_t n = strcspn(s, ",");
    *item = s;
    *p = s + n;
    while (s[n - 1] == ' ' || s[n - 1] == '\t')
        n--;
    *len = n;
    return 1;
}

static int is_string(const setting_t *s)
{
    return s->type == T_STRING || s->type == T_SECRET || s->type == T_LIST;
}

static uint64_t get_number(const me_config_t *cfg, const setting_t *s)
{
    const char *p = (const char *)cfg + s->offset;

    if (s->type == T_SIZE || s->type == T_DURATION)
        return *(const uint64_t *)p;
    return (uint64_t)(int64_t)*(const int *)p;
}

static void set_number(me_config_t *cfg, const setting_t *s, uint64_t v)
{
    char *p = (char *)cfg + s->offset;

    if (s->type == T_SIZE || s->type == T_DURATION)
        *(uint64_t *)p = v;
    else
        *(int *)p = (int)(int64_t)v;
}

static char **string_field(me_config_t *cfg, const setting_t *s)
{
    return (char **)((char *)cfg + s->offset);
}

/* Stores v (owned, or the default) in a string setting, freeing the owned value it replaces. */
static void replace_string(me_config_t *cfg, const setting_t *s, char *v)
{
    char **p = string_field(cfg, s);

    if (*p && *p != s->def) {
        if (s->type == T_SECRET)
            explicit_bzero(*p, strlen(*p));
        free(*p);
    }
    *p = v;
}

static const setting_t *setting_at(size_t offset)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (settings[i].offset == offset)
            return &settings[i];
    return NULL;
}

/* Describes the values s accepts ("a size such as ..."). */
static void expected_form(const setting_t *s, char *buf, size_t len)
{
    static const char *const forms[] = {
        [T_BOOL] = "true or false (or yes/no, on/off)",
        [T_INT] = "an integer",
        [T_SIZE] = "a size such as 1048576, 512KiB, 16MiB or 1GiB",
        [T_DURATION] = "a duration such as 250ms, 30s, 2m or 1h (a bare number is seconds)",
    };
    int n;

    if (s->form || !s->choices) {
        snprintf(buf, len, "%s", s->form ? s->form : forms[s->type]);
        return;
    }
    n = snprintf(buf, len, "one of");
    for (size_t i = 0; s->choices[i] && n >= 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, "%s %s", i ? "," : "", s->choices[i]);
}

/* store() for a T_LIST: each item of the comma-separated text vetted, at most s->max of them,
 * kept as "a,b,c". */
static int store_list(me_config_t *cfg, const setting_t *s, const char *text, char *why, size_t whylen)
{
    char form[160], *out = malloc(strlen(text) + 1); /* the items never grow */
    const char *p = text, *item;
    size_t used = 0, len;
    int64_t count = 0;

    if (!out)
        return ME_ENOMEM;
    while (me_config_list_next(&p, &item, &len)) {
        if (used)
            out[used++] = ',';
        memcpy(out + used, item, len);
        out[used + len] = '\0';
        if (++count > s->max) {
            snprintf(why, whylen, "at most %lld items, got more", (long long)s->max);
            goto invalid;
        }
        if (!s->valid(out + used)) {
            expected_form(s, form, sizeof(form));
            snprintf(why, whylen, "expected %s, got '%.*s'", form, ECHO_MAX, out + used);
            goto invalid;
        }
        used += len;
    }
    out[used] = '\0';
    replace_string(cfg, s, out);
    return 0;
invalid:
    free(out);
    return ME_EINVAL;
}

/* Parses text as s's value into cfg. Returns 0, ME_ENOMEM, or ME_EINVAL with why saying what
 * is wrong (quoting text: only non-secret settings can be wrong). cfg is unchanged on error. */
static int store(me_config_t *cfg, const setting_t *s, const char *text, char *why, size_t whylen)
{
    char form[160], lo[32], hi[32];
    uint64_t v = 0;
    int64_t n;
    int neg = text[0] == '-';
    int ok = 0;

    switch (s->type) {
    case T_LIST:
        return store_list(cfg, s, text, why, whylen);
    case T_STRING:
    case T_SECRET:
        v = s->choices ? find_word(s->choices, text) : 0;
        ok = s->choices ? s->choices[v] != NULL : !s->valid || s->valid(text);
        break;
    case T_BOOL:
        v = find_word(bool_words, text);
        ok = bool_words[v] != NULL;
        v %= 2;
        break;
    case T_ENUM:
        v = find_word(s->choices, text);
        ok = s->choices[v] != NULL;
        break;
    case T_INT:
        ok = !parse_scaled(text + neg, plain_units, &v);
        break;
    case T_SIZE:
        ok = !neg && !me_config_parse_size(text, &v);
        break;
    case T_DURATION:
        ok = !neg && !me_config_parse_duration(text, &v);
        break;
    }
    if (!ok) {
        expected_form(s, form, sizeof(form));
        snprintf(why, whylen, "expected %s, got '%.*s'", form, ECHO_MAX, text);
        return ME_EINVAL;
    }
    if (is_string(s)) {
        char *dup = strdup(s->choices ? s->choices[v] : text); /* a choice as the table spells it */
        if (!dup)
            return ME_ENOMEM;
        replace_string(cfg, s, dup);
        return 0;
    }
    n = v > INT64_MAX ? INT64_MAX : (int64_t)v;
    n = neg ? -n : n;
    if (s->max && (n < s->min || n > s->max)) {
        format_number(s->type, (uint64_t)s->min, lo, sizeof(lo));
        format_number(s->type, (uint64_t)s->max, hi, sizeof(hi));
        if (s->max == INT64_MAX)
            snprintf(why, whylen, "must be at least %s, got '%.*s'", lo, ECHO_MAX, text);
        else
            snprintf(why, whylen, "must be between %s and %s, got '%.*s'", lo, hi, ECHO_MAX, text);
        return ME_EINVAL;
    }
    set_number(cfg, s, s->type == T_INT ? (uint64_t)n : v);
    return 0;
}

void me_config_defaults(me_config_t *cfg)
{
    char why[256];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting_t *s = &settings[i];
        if (is_string(s))
            *string_field(cfg, s) = (char *)s->def;
        else if (store(cfg, s, s->def, why, sizeof(why)))
            abort(); /* a bad default in the table; test_config checks every one */
    }
}

void me_config_forget_token_keys(me_config_t *cfg)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting_t *s = &settings[i];
        char **p = string_field(cfg, s), *empty;
        if (s->type != T_SECRET || strcmp(s->section, "tokens") != 0)
            continue;
        if ((empty = calloc(1, 1)) != NULL)
            replace_string(cfg, s, empty);
        else if (*p != s->def)
            explicit_bzero(*p, strlen(*p)); /* no memory for "": empty it where it is */
    }
}

void me_config_free(me_config_t *cfg)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (is_string(&settings[i]))
            replace_string(cfg, &settings[i], NULL);
    free(cfg->path);
    me_config_defaults(cfg);
}

static int reject(load_t *ld, origin_t o, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes "origin: message" to the caller's buffer; returns ME_ECONFIG. */
static int reject(load_t *ld, origin_t o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!ld->err || !ld->errlen)
        return ME_ECONFIG;
    if (o.line)
        n = snprintf(ld->err, ld->errlen, "%.*s:%u: ", o.len, o.name, o.line);
    else
        n = snprintf(ld->err, ld->errlen, "%.*s: ", o.len, o.name);
    if (n >= 0 && (size_t)n < ld->errlen) {
        va_start(ap, fmt);
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return ME_ECONFIG;
}

static origin_t file_origin(const load_t *ld, unsigned line)
{
    const char *name = ld->path ? ld->path : "config";
    return (origin_t){name, (int)strlen(name), line};
}

/* Where the value of the setting at offset came from, for cross-setting errors. */
static origin_t origin_of(const load_t *ld, size_t offset)
{
    origin_t o = ld->origin[setting_at(offset) - settings];
    return o.name ? o : file_origin(ld, 0);
}

/* Reads a secret from the file at path: at most 64 KiB, trailing whitespace removed. Returns
 * a malloc'd string the caller frees (after wiping it), or NULL with why set. */
static char *read_secret(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL, *out = NULL;
    size_t n = 0;

    if (!f) {
        snprintf(why, whylen, "cannot open '%s': %s", path, strerror(errno));
        goto done;
    }
    setvbuf(f, NULL, _IONBF, 0); /* read straight into buf: no stdio buffer keeps a copy */
    if (!(buf = malloc(SECRET_FILE_MAX + 1))) {
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    n = fread(buf, 1, SECRET_FILE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(why, whylen, "cannot read '%s': %s", path, strerror(errno));
        goto done;
    }
    if (n > SECRET_FILE_MAX) {
        snprintf(why, whylen, "'%s' is larger than 64KiB", path);
        goto done;
    }
    if (memchr(buf, '\0', n)) {
        snprintf(why, whylen, "'%s' contains a NUL byte", path);
        goto done;
    }
    while (n && isspace((unsigned char)buf[n - 1]))
        n--;
    buf[n] = '\0';
    out = buf;
    buf = NULL;
done:
    if (buf) {
        explicit_bzero(buf, SECRET_FILE_MAX + 1);
        free(buf);
    }
    if (f)
        fclose(f);
    return out;
}

/* Sets s from text (len bytes), or from the file text names when from_file. */
static int apply(load_t *ld, const setting_t *s, int from_file, const char *text, size_t len,
                 origin_t o, int place)
{
    size_t i = (size_t)(s - settings);
    char why[512], *secret = NULL;
    int rc;

    if (strlen(text) != len)
        return reject(ld, o, "%s.%s%s: contains a NUL byte", s->section, s->key, from_file ? "_file" : "");
    if (ld->given[i] & (1u << (2 * place + !from_file)))
        return reject(ld, o, "%s.%s is set both as a value and as a file (%s_file); set only one",
                    s->section, s->key, s->key);
    ld->given[i] |= (unsigned char)(1u << (2 * place + from_file));
    if (from_file && !(text = secret = read_secret(text, why, sizeof(why))))
        return reject(ld, o, "%s.%s_file: %s", s->section, s->key, why);
    rc = store(ld->cfg, s, text, why, sizeof(why));
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
    if (rc == ME_ENOMEM)
        return reject(ld, o, "out of memory");
    if (rc)
        return reject(ld, o, "%s.%s: %s", s->section, s->key, why);
    ld->origin[i] = o;
    return 0;
}

/* The setting section.key, or the secret whose "<key>_file" key is (then *from_file = 1). */
static const setting_t *lookup(const char *section, const char *key, int *from_file)
{
    size_t klen = strlen(key);

    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting_t *s = &settings[i];
        size_t n = strlen(s->key);
        if (strcmp(s->section, section))
            continue;
        *from_file = s->type == T_SECRET && klen == n + 5 && !strncmp(key, s->key, n) &&
                     !strcmp(key + n, "_file");
        if (*from_file || !strcmp(s->key, key))
            return s;
    }
    return NULL;
}

static int section_known(const char *section)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!strcmp(settings[i].section, section))
            return 1;
    return 0;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static const char *node_kind(const yaml_node_t *n)
{
    return n->type == YAML_MAPPING_NODE ? "mapping" : n->type == YAML_SEQUENCE_NODE ? "list" : "single value";
}

static origin_t node_origin(const load_t *ld, const yaml_node_t *n)
{
    return file_origin(ld, (unsigned)n->start_mark.line + 1);
}

/* 1 when a pair before p in map has the same (scalar) key as p. */
static int duplicate(yaml_document_t *doc, const yaml_node_t *map, const yaml_node_pair_t *p)
{
    const char *key = scalar(yaml_document_get_node(doc, p->key));

    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
        const char *other = scalar(yaml_document_get_node(doc, q->key));
        if (other && !strcmp(other, key))
            return 1;
    }
    return 0;
}

/* Sets the list setting s from a YAML sequence of single values, joined by commas; errors in
 * the value name the line of its key, o. */
static int load_list(load_t *ld, yaml_document_t *doc, const setting_t *s, yaml_node_t *seq, origin_t o)
{
    size_t size = 1, used = 0;
    yaml_node_item_t *i;
    char *joined;
    int rc;

    for (i = seq->data.sequence.items.start; i < seq->data.sequence.items.top; i++) {
        yaml_node_t *item = yaml_document_get_node(doc, *i);
        if (item->type != YAML_SCALAR_NODE)
            return reject(ld, node_origin(ld, item), "%s.%s: expected a list of single values, got a %s in it",
                          s->section, s->key, node_kind(item));
        size += item->data.scalar.length + 1;
    }
    if (!(joined = malloc(size)))
        return reject(ld, o, "out of memory");
    for (i = seq->data.sequence.items.start; i < seq->data.sequence.items.top; i++) {
        yaml_node_t *item = yaml_document_get_node(doc, *i);
        if (used)
            joined[used++] = ',';
        memcpy(joined + used, item->data.scalar.value, item->data.scalar.length);
        used += item->data.scalar.length;
    }
    joined[used] = '\0';
    rc = apply(ld, s, 0, joined, used, o, PLACE_FILE);
    free(joined);
    return rc;
}

static int load_section(load_t *ld, yaml_document_t *doc, const char *section, yaml_node_t *map)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar(k);
        const setting_t *s;
        int from_file = 0, rc;

        if (!key)
            return reject(ld, node_origin(ld, k), "expected a key in section '%s', got a %s",
                        section, node_kind(k));
        if (!(s = lookup(section, key, &from_file)))
            return reject(ld, node_origin(ld, k), "unknown key '%.*s' in section '%s'", ECHO_MAX,
                        key, section);
        if (duplicate(doc, map, p))
            return reject(ld, node_origin(ld, k), "duplicate key '%s' in section '%s'", key, section);
        if (v->type == YAML_SEQUENCE_NODE && s->type == T_LIST)
            rc = load_list(ld, doc, s, v, node_origin(ld, k));
        else if (v->type != YAML_SCALAR_NODE)
            return reject(ld, node_origin(ld, v), "%s.%s: expected a single value, got a %s",
                        section, key, node_kind(v));
        else
            rc = apply(ld, s, from_file, (const char *)v->data.scalar.value, v->data.scalar.length,
                       node_origin(ld, v), PLACE_FILE);
        if (rc)
            return rc;
    }
    return 0;
}

static int load_document(load_t *ld, yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);

    if (!root)
        return 0; /* an empty file: the defaults */
    if (root->type != YAML_MAPPING_NODE)
        return reject(ld, node_origin(ld, root), "expected sections such as 'server:', got a %s",
                    node_kind(root));
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        const char *section = scalar(k);
        int rc;

        if (!section)
            return reject(ld, node_origin(ld, k), "expected a section name, got a %s", node_kind(k));
        if (!section_known(section))
            return reject(ld, node_origin(ld, k), "unknown section '%.*s'", ECHO_MAX, section);
        if (duplicate(doc, root, p))
            return reject(ld, node_origin(ld, k), "duplicate section '%s'", section);
        if (v->type == YAML_SCALAR_NODE && !v->data.scalar.length &&
            v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            continue; /* "section:" with every key commented out */
        if (v->type != YAML_MAPPING_NODE)
            return reject(ld, node_origin(ld, v), "section '%s' must be a mapping of key: value, got a %s",
                        section, node_kind(v));
        if ((rc = load_section(ld, doc, section, v)))
            return rc;
    }
    return 0;
}

static int syntax_error(load_t *ld, const yaml_parser_t *parser)
{
    if (parser->error == YAML_MEMORY_ERROR)
        return reject(ld, file_origin(ld, 0), "out of memory");
    if (parser->context)
        return reject(ld, file_origin(ld, (unsigned)parser->problem_mark.line + 1),
                    "YAML syntax error: %s (%s that starts at line %zu)", parser->problem,
                    parser->context, parser->context_mark.line + 1);
    return reject(ld, file_origin(ld, (unsigned)parser->problem_mark.line + 1),
                "YAML syntax error: %s", parser->problem ? parser->problem : "unreadable input");
}

static int load_file(load_t *ld)
{
    yaml_parser_t parser;
    yaml_document_t doc, next;
    FILE *f = fopen(ld->path, "rb");
    int rc;

    memset(&parser, 0, sizeof(parser));
    memset(&doc, 0, sizeof(doc));
    memset(&next, 0, sizeof(next));
    if (!f) {
        rc = reject(ld, file_origin(ld, 0), "cannot open: %s", strerror(errno));
        goto done;
    }
    if (!yaml_parser_initialize(&parser)) {
        rc = reject(ld, file_origin(ld, 0), "out of memory");
        goto done;
    }
    yaml_parser_set_input_file(&parser, f);
    /* Load the next document too so that errors anywhere in the file are found first. */
    if (!yaml_parser_load(&parser, &doc) || !yaml_parser_load(&parser, &next)) {
        rc = syntax_error(ld, &parser);
        goto done;
    }
    if (yaml_document_get_root_node(&next)) {
        rc = reject(ld, file_origin(ld, (unsigned)next.start_mark.line + 1),
                  "expected one YAML document, found another");
        goto done;
    }
    rc = load_document(ld, &doc);
done:
    yaml_document_delete(&next);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (f)
        fclose(f);
    return rc;
}

/* Writes MEDIAEDGE_<SECTION>_<KEY>[_FILE] for s into buf. */
static void env_name(const setting_t *s, int from_file, char *buf, size_t len)
{
    snprintf(buf, len, "MEDIAEDGE_%s_%s%s", s->section, s->key, from_file ? "_FILE" : "");
    for (; *buf; buf++)
        *buf = (char)toupper((unsigned char)*buf);
}

/* The setting whose variable is the name of nlen bytes (*from_file = 1 for a _FILE one). */
static const setting_t *env_lookup(const char *name, size_t nlen, int *from_file)
{
    char want[128];

    for (size_t i = 0; i < N_SETTINGS; i++)
        for (*from_file = 0; *from_file <= (settings[i].type == T_SECRET); ++*from_file) {
            env_name(&settings[i], *from_file, want, sizeof(want));
            if (strlen(want) == nlen && !strncmp(name, want, nlen))
                return &settings[i];
        }
    return NULL;
}

static int load_env(load_t *ld, char *const *envp)
{
    static const char ignored[] = "MEDIAEDGE_CONFIG"; /* the config path, read by main */

    for (; envp && *envp; envp++) {
        const char *e = *envp, *eq = strchr(e, '=');
        origin_t o = {e, eq ? (int)(eq - e) : 0, 0};
        const setting_t *s;
        int from_file, rc;

        if (strncmp(e, "MEDIAEDGE_", 10) || !eq ||
            ((size_t)o.len == sizeof(ignored) - 1 && !strncmp(e, ignored, sizeof(ignored) - 1)))
            continue;
        if (!(s = env_lookup(e, (size_t)o.len, &from_file)))
            return reject(ld, o, "unknown setting (expected MEDIAEDGE_<SECTION>_<KEY> for a key of conf/mediaedge.yaml)");
        if ((rc = apply(ld, s, from_file, eq + 1, strlen(eq + 1), o, PLACE_ENV)))
            return rc;
    }
    return 0;
}

#define ORIGIN(ld, field) origin_of(ld, offsetof(me_config_t, field))

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

/* 1 when two of the (valid) variants in photos.variants have the same name. */
static int variants_repeat(const me_config_t *c)
{
    me_photo_config_t pc;

    me_photo_config_init(&pc, c); /* the pipeline's own reading of the list */
    for (int i = 0; i < pc.nvariants; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(pc.variants[i].name, pc.variants[j].name))
                return 1;
    return 0;
}

/* The rules that span settings; each setting's own form was checked as it was read. */
static int validate(load_t *ld)
{
    const me_config_t *c = ld->cfg;

    if (!*c->listen_http && !*c->listen_https)
        return reject(ld, ORIGIN(ld, listen_https),
                    "listen.http and listen.https are both empty; at least one listener is needed");
    if (!*c->tls_cert_file != !*c->tls_key_file)
        return reject(ld, *c->tls_cert_file ? ORIGIN(ld, tls_cert_file) : ORIGIN(ld, tls_key_file),
                    "tls.cert_file and tls.key_file must both be set, or both be empty for a self-signed certificate");
    if (c->token_alg == ME_ALG_ES256 && !*c->token_es256_public_key_file)
        return reject(ld, ORIGIN(ld, token_alg),
                    "tokens.algorithm is ES256 but tokens.es256_public_key_file is empty");
    if (c->token_alg == ME_ALG_HS256 && strlen(c->token_hs256_secret) < 32)
        return reject(ld, ORIGIN(ld, token_hs256_secret),
                    "tokens.hs256_secret must be at least 32 bytes for HS256");
    if (!*c->photo_variants)
        return reject(ld, ORIGIN(ld, photo_variants), "photos.variants is empty; list at least one, such as thumb:320x320");
    if (variants_repeat(c))
        return reject(ld, ORIGIN(ld, photo_variants), "photos.variants names a variant twice; each name is a file name");
    if (list_has(c->cors_origins, "*"))
        return reject(ld, ORIGIN(ld, cors_origins),
                      "http.cors_origins: \"*\" (any origin) is not allowed: requests carry credentials "
                      "(Authorization), so list each origin, such as https://app.example.com");
    return 0;
}

int me_config_load(me_config_t *cfg, const char *path, char *const *envp, char *err, size_t errlen)
{
    load_t ld = {.cfg = cfg, .path = path, .err = err, .errlen = errlen};
    int rc = 0;

    me_config_defaults(cfg);
    if (err && errlen)
        err[0] = '\0';
    if (path && !(cfg->path = strdup(path)))
        rc = reject(&ld, file_origin(&ld, 0), "out of memory");
    if (!rc && path)
        rc = load_file(&ld);
    if (!rc)
        rc = load_env(&ld, envp);
    if (!rc)
        rc = validate(&ld);
    return rc;
}

/* Sets an auto setting still at 0 to v (capped at its maximum) and remembers it did. */
static void fill_auto(me_config_t *cfg, size_t offset, uint64_t v)
{
    const setting_t *s = setting_at(offset);

    if (get_number(cfg, s))
        return;
    if (s->max && v > (uint64_t)s->max)
        v = (uint64_t)s->max;
    set_number(cfg, s, v);
    cfg->auto_resolved |= 1ull << (s - settings);
}

void me_config_resolve(me_config_t *cfg)
{
    const char *root = getenv("ME_CGROUP_ROOT"); /* tests point it at fake cgroup files */
    uint64_t cpus, rate = cfg->min_client_rate ? cfg->min_client_rate : 1;
    uint64_t spill;

    if (!root || !*root)
        root = "/sys/fs/cgroup";
    if (!cfg->cpu_limit)
        cfg->cpu_limit = me_cgroup_cpus(root);
    if (!cfg->memory_limit)
        cfg->memory_limit = me_cgroup_memory(root);
    cpus = (uint64_t)cfg->cpu_limit;
    spill = cfg->memory_limit / 256;
    spill = spill < MIB ? MIB : spill > 32 * MIB ? 32 * MIB : spill;
    fill_auto(cfg, offsetof(me_config_t, threads), cpus);
    fill_auto(cfg, offsetof(me_config_t, pool_threads), 2 * cpus < 4 ? 4 : 2 * cpus);
    fill_auto(cfg, offsetof(me_config_t, job_workers), cpus);
    fill_auto(cfg, offsetof(me_config_t, http1_request_timeout),
              10000 + cfg->max_patch_size * 1000 / rate);
    fill_auto(cfg, offsetof(me_config_t, body_spill_threshold), spill);
    fill_auto(cfg, offsetof(me_config_t, max_body_memory),
              cfg->memory_limit / 4 > 2 * cfg->max_patch_size ? cfg->memory_limit / 4 : 2 * cfg->max_patch_size);
}

int me_config_is_production(const me_config_t *cfg)
{
    return cfg->storage_backend && strcmp(cfg->storage_backend, "file") != 0;
}

int me_config_check_production(const me_config_t *cfg, char *err, size_t errlen)
{
    const char *setting, *what, *unless = "", *fix;
    int hs256 = cfg->token_alg == ME_ALG_HS256;

    if (!me_config_is_production(cfg))
        return 0;
    /* With ES256 the verifier refuses HS256 tokens, so the secret is not checked then; a
     * worker checks no tokens at all (and forgets the secret: me_config_forget_token_keys). */
    if (cfg->role == ME_ROLE_WORKER)
        hs256 = 0;
    if (hs256 && !strcmp(cfg->token_hs256_secret, ME_DEV_HS256_SECRET)) {
        setting = "tokens.hs256_secret";
        what = "the development key is";
        fix = "set MEDIAEDGE_TOKENS_HS256_SECRET_FILE";
    } else if (hs256 && !cfg->token_allow_hs256_in_production) {
        setting = "tokens.algorithm";
        what = "HS256 is";
        unless = " unless tokens.allow_hs256_in_production is true";
        fix = "use ES256";
    } else if (*cfg->listen_https && !*cfg->tls_cert_file) {
        setting = "tls.cert_file";
        what = "a self-signed certificate (tls.cert_file empty while listen.https is set) is";
        fix = "set tls.cert_file and tls.key_file, or disable listen.https";
    } else if (cfg->role != ME_ROLE_API && !strncmp(cfg->webhook_url, "http://", 7)) {
        setting = "webhooks.url";
        what = "a plain http:// URL (the events, about families' media, could be read on the way) is";
        fix = "use an https:// URL";
    } else if (cfg->demo_page) {
        setting = "server.demo_page";
        what = "the demo page is";
        fix = "set server.demo_page to false";
    } else {
        return 0;
    }
    if (err && errlen)
        snprintf(err, errlen, "%s: %s not allowed in production (storage.backend is %s)%s; %s",
                 setting, what, cfg->storage_backend, unless, fix);
    return ME_ECONFIG;
}

static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* A list as a YAML flow sequence: ["a", "b"], or [] when empty. */
static void print_list(FILE *out, const char *list)
{
    const char *item;
    size_t len;
    char buf[512];

    fputc('[', out);
    for (int first = 1; me_config_list_next(&list, &item, &len); first = 0) {
        snprintf(buf, sizeof(buf), "%.*s", (int)len, item);
        fputs(first ? "" : ", ", out);
        print_quoted(out, buf);
    }
    fputc(']', out);
}

void me_config_print(const me_config_t *cfg, FILE *out)
{
    const char *section = NULL;
    char buf[32];

    fprintf(out, "# mediaedge effective configuration%s%s\n", cfg->path ? ": " : "",
            cfg->path ? cfg->path : "");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const setting_t *s = &settings[i];
        const char *str = is_string(s) ? *(char *const *)((const char *)cfg + s->offset) : NULL;
        uint64_t v = is_string(s) ? 0 : get_number(cfg, s);

        if (!section || strcmp(section, s->section))
            fprintf(out, "\n%s:\n", section = s->section);
        fprintf(out, "  %s: ", s->key);
        if (s->type == T_STRING)
            print_quoted(out, str);
        else if (s->type == T_LIST)
            print_list(out, str);
        else if (s->type == T_SECRET)
            print_quoted(out, str && *str ? "<redacted>" : "");
        else if (s->type == T_BOOL)
            fputs(v ? "true" : "false", out);
        else if (s->type == T_ENUM)
            fputs(s->choices[v], out);
        else {
            format_number(s->type, v, buf, sizeof(buf));
            fputs(buf, out);
        }
        if ((s->flags & F_AUTO) && (!v || (cfg->auto_resolved & (1ull << i))))
            fputs("  # auto", out);
        fputc('\n', out);
    }
    if (cfg->cpu_limit && cfg->memory_limit) {
        format_number(T_SIZE, cfg->memory_limit, buf, sizeof(buf));
        fprintf(out, "\n# machine limits (cgroup): %d CPUs, %s of memory\n", cfg->cpu_limit, buf);
    }
}
