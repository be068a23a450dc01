/* config.c: the configuration engine: the sections' tables read from YAML and the environment, validated, printed. */
#include "server/core/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "server/core/cgroup.h"

#define KIB ME_KIB
#define MIB ME_MIB
#define GIB ME_GIB
#define SECRET_FILE_MAX (64 * KIB)
#define ECHO_MAX 64 /* bytes of a bad value or unknown name quoted back in an error */

/* One setting of one configuration: the bookkeeping each needs beyond its table line. */
typedef struct {
    const me_config_section_t *sec;
    const me_setting_t *s;
    size_t k;           /* sec's index in the list */
    char *owned;        /* the string this engine allocated for it, or NULL */
    int auto_filled;    /* me_config_auto() set it */
} slot_t;

struct me_config_store {
    const me_config_section_t *const *sections; /* the list cfg follows, NULL-terminated */
    size_t nsections, nslots;
    void **values; /* values[k]: sections[k]'s struct */
    slot_t *slots; /* every setting of every section, in order */
};

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

/* One load in progress; check hooks see it as me_config_check_t. */
struct me_config_check {
    me_config_t *cfg;
    const char *path;
    char *err;
    size_t errlen;
    unsigned char *given; /* per slot: bit (2 * place + from_file) per way it was set */
    origin_t *origin;     /* per slot; name NULL: the default */
};
typedef struct me_config_check load_t;

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
    for (const unit_t *u = units; u->suffix != NULL; u++) {
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

int me_config_parse_uint(const char *s, uint64_t *out)
{
    return parse_scaled(s, plain_units, out);
}

static void format_scaled(uint64_t v, const unit_t *units, char *buf, size_t len)
{
    const unit_t *u = units;

    while (v && v % u->mult)
        u++; /* the last unit of each table divides everything */
    snprintf(buf, len, "%llu%s", (unsigned long long)(v ? v / u->mult : 0), v ? u->suffix : "");
}

static void format_number(me_setting_type_t type, uint64_t v, char *buf, size_t len)
{
    if (type == ME_SETTING_SIZE)
        format_scaled(v, size_units, buf, len);
    else if (type == ME_SETTING_DURATION)
        format_scaled(v, duration_units, buf, len);
    else
        snprintf(buf, len, "%lld", (long long)(int64_t)v);
}

/* The index of word in words (case-insensitive), or the index of the terminating NULL. */
static size_t find_word(const char *const *words, const char *word)
{
    size_t i = 0;

    while (words[i] != NULL && strcasecmp(words[i], word))
        i++;
    return i;
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

static int is_string(const me_setting_t *s)
{
    return s->type == ME_SETTING_STRING || s->type == ME_SETTING_SECRET || s->type == ME_SETTING_LIST;
}

static int is_u64(const me_setting_t *s)
{
    return s->type == ME_SETTING_SIZE || s->type == ME_SETTING_DURATION;
}

/* Where the value of sl lives in cfg. */
static char *field_of(const me_config_t *cfg, const slot_t *sl)
{
    char *base = sl->s->flags & ME_SETTING_CORE ? (char *)cfg : (char *)cfg->store->values[sl->k];
    return base + sl->s->offset;
}

static uint64_t get_number(const me_config_t *cfg, const slot_t *sl)
{
    const char *p = field_of(cfg, sl);

    if (is_u64(sl->s))
        return *(const uint64_t *)p;
    return (uint64_t)(int64_t)*(const int *)p;
}

static void set_number(me_config_t *cfg, const slot_t *sl, uint64_t v)
{
    char *p = field_of(cfg, sl);

    if (is_u64(sl->s))
        *(uint64_t *)p = v;
    else
        *(int *)p = (int)(int64_t)v;
}

static const char *get_string(const me_config_t *cfg, const slot_t *sl)
{
    return *(char *const *)field_of(cfg, sl);
}

/* Points the string setting sl at v (malloc'd: then owned here) or at its default (v NULL),
 * freeing what was owned for it, wiped first for a secret. */
static void set_string(me_config_t *cfg, slot_t *sl, char *v)
{
    if (sl->owned != NULL) {
        if (sl->s->type == ME_SETTING_SECRET)
            explicit_bzero(sl->owned, strlen(sl->owned));
        free(sl->owned);
    }
    sl->owned = v;
    *(char **)field_of(cfg, sl) = v != NULL ? v : (char *)sl->s->def;
}

/* The slot whose value is at field in cfg, or NULL. */
static slot_t *slot_at(const me_config_t *cfg, const void *field)
{
    me_config_store_t *st = cfg->store;

    for (size_t i = 0; st != NULL && i < st->nslots; i++)
        if (field_of(cfg, &st->slots[i]) == (const char *)field)
            return &st->slots[i];
    return NULL;
}

static size_t section_index(const me_config_t *cfg, const me_config_section_t *sec)
{
    size_t k = 0;

    while (k < cfg->store->nsections && cfg->store->sections[k] != sec)
        k++;
    return k;
}

const void *me_config_section(const me_config_t *cfg, const me_config_section_t *sec)
{
    return me_config_section_mut((me_config_t *)cfg, sec);
}

void *me_config_section_mut(me_config_t *cfg, const me_config_section_t *sec)
{
    size_t k;

    if (cfg->store == NULL || (k = section_index(cfg, sec)) == cfg->store->nsections)
        return NULL;
    return cfg->store->values[k];
}

/* Describes the values s accepts ("a size such as ..."). */
static void expected_form(const me_setting_t *s, char *buf, size_t len)
{
    static const char *const forms[] = {
        [ME_SETTING_BOOL] = "true or false (or yes/no, on/off)",
        [ME_SETTING_INT] = "an integer",
        [ME_SETTING_SIZE] = "a size such as 1048576, 512KiB, 16MiB or 1GiB",
        [ME_SETTING_DURATION] = "a duration such as 250ms, 30s, 2m or 1h (a bare number is seconds)",
    };
    int n;

    if (s->form != NULL || s->choices == NULL) {
        snprintf(buf, len, "%s", s->form != NULL ? s->form : forms[s->type]);
        return;
    }
    n = snprintf(buf, len, "one of");
    for (size_t i = 0; s->choices[i] != NULL && n >= 0 && (size_t)n < len; i++)
        n += snprintf(buf + n, len - (size_t)n, "%s %s", i ? "," : "", s->choices[i]);
}

/* store() for a list: each item of the comma-separated text vetted, at most s->max of them,
 * kept as "a,b,c". */
static int store_list(me_config_t *cfg, slot_t *sl, const char *text, char *why, size_t whylen)
{
    const me_setting_t *s = sl->s;
    char form[160], *out = malloc(strlen(text) + 1); /* the items never grow */
    const char *p = text, *item;
    size_t used = 0, len;
    int64_t count = 0;

    if (out == NULL)
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
    set_string(cfg, sl, out);
    return 0;
invalid:
    free(out);
    return ME_EINVAL;
}

/* Parses text as sl's value into cfg. Returns 0, ME_ENOMEM, or ME_EINVAL with why saying what
 * is wrong (quoting text: only non-secret settings can be wrong). cfg is unchanged on error. */
static int store(me_config_t *cfg, slot_t *sl, const char *text, char *why, size_t whylen)
{
    const me_setting_t *s = sl->s;
    char form[160], lo[32], hi[32];
    uint64_t v = 0;
    int64_t n;
    int neg = text[0] == '-';
    int ok = 0;

    switch (s->type) {
    case ME_SETTING_LIST:
        return store_list(cfg, sl, text, why, whylen);
    case ME_SETTING_STRING:
    case ME_SETTING_SECRET:
        v = s->choices != NULL ? find_word(s->choices, text) : 0;
        ok = s->choices != NULL ? s->choices[v] != NULL : s->valid == NULL || s->valid(text);
        break;
    case ME_SETTING_BOOL:
        v = find_word(bool_words, text);
        ok = bool_words[v] != NULL;
        v %= 2;
        break;
    case ME_SETTING_ENUM:
        v = find_word(s->choices, text);
        ok = s->choices[v] != NULL;
        break;
    case ME_SETTING_INT:
        ok = !parse_scaled(text + neg, plain_units, &v);
        break;
    case ME_SETTING_SIZE:
        ok = !neg && !me_config_parse_size(text, &v);
        break;
    case ME_SETTING_DURATION:
        ok = !neg && !me_config_parse_duration(text, &v);
        break;
    }
    if (!ok) {
        expected_form(s, form, sizeof(form));
        snprintf(why, whylen, "expected %s, got '%.*s'", form, ECHO_MAX, text);
        return ME_EINVAL;
    }
    if (is_string(s)) {
        char *dup = strdup(s->choices != NULL ? s->choices[v] : text); /* a choice as the table spells it */
        if (dup == NULL)
            return ME_ENOMEM;
        set_string(cfg, sl, dup);
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
    set_number(cfg, sl, s->type == ME_SETTING_INT ? (uint64_t)n : v);
    return 0;
}

/* Makes cfg's store for the sections of list, every value at its default. Returns 0 or
 * ME_ENOMEM (cfg then holds nothing). */
static int init_store(me_config_t *cfg, const me_config_section_t *const *list)
{
    me_config_store_t *st;
    char why[256];
    size_t i = 0;

    memset(cfg, 0, sizeof(*cfg));
    if ((st = cfg->store = calloc(1, sizeof(*st))) == NULL)
        return ME_ENOMEM;
    st->sections = list;
    for (; list[st->nsections] != NULL; st->nsections++)
        st->nslots += list[st->nsections]->nsettings;
    st->values = calloc(st->nsections + 1, sizeof(*st->values));
    st->slots = calloc(st->nslots + 1, sizeof(*st->slots));
    if (st->values == NULL || st->slots == NULL)
        goto nomem;
    for (size_t k = 0; k < st->nsections; k++) {
        if ((st->values[k] = calloc(1, list[k]->size ? list[k]->size : 1)) == NULL)
            goto nomem;
        for (size_t j = 0; j < list[k]->nsettings; j++)
            st->slots[i++] = (slot_t){.sec = list[k], .s = &list[k]->settings[j], .k = k};
    }
    for (i = 0; i < st->nslots; i++) {
        slot_t *sl = &st->slots[i];
        if (is_string(sl->s))
            set_string(cfg, sl, NULL);
        else if (store(cfg, sl, sl->s->def, why, sizeof(why)))
            abort(); /* a bad default in a table; test_config checks every one */
    }
    return 0;
nomem:
    me_config_free(cfg);
    return ME_ENOMEM;
}

int me_config_defaults(me_config_t *cfg)
{
    return init_store(cfg, me_config_sections);
}

void me_config_forget_secrets(me_config_t *cfg, const me_config_section_t *sec)
{
    for (size_t i = 0; cfg->store != NULL && i < cfg->store->nslots; i++) {
        slot_t *sl = &cfg->store->slots[i];
        if (sl->sec != sec || sl->s->type != ME_SETTING_SECRET)
            continue;
        set_string(cfg, sl, NULL); /* wipes an owned value; a default is a literal */
        *(char **)field_of(cfg, sl) = (char *)"";
    }
}

void me_config_free(me_config_t *cfg)
{
    me_config_store_t *st = cfg->store;

    if (st != NULL) {
        for (size_t i = 0; st->slots != NULL && i < st->nslots; i++)
            if (is_string(st->slots[i].s))
                set_string(cfg, &st->slots[i], NULL);
        for (size_t k = 0; st->values != NULL && k < st->nsections; k++)
            free(st->values[k]);
        free(st->values);
        free(st->slots);
        free(st);
    }
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

static int vreject(load_t *ld, origin_t o, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

static int vreject(load_t *ld, origin_t o, const char *fmt, va_list ap)
{
    int n;

    if (ld->err == NULL || !ld->errlen)
        return ME_ECONFIG;
    if (o.line)
        n = snprintf(ld->err, ld->errlen, "%.*s:%u: ", o.len, o.name, o.line);
    else
        n = snprintf(ld->err, ld->errlen, "%.*s: ", o.len, o.name);
    if (n >= 0 && (size_t)n < ld->errlen)
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
    return ME_ECONFIG;
}

static int reject(load_t *ld, origin_t o, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Writes "origin: message" to the caller's buffer; returns ME_ECONFIG. */
static int reject(load_t *ld, origin_t o, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreject(ld, o, fmt, ap);
    va_end(ap);
    return ME_ECONFIG;
}

static origin_t file_origin(const load_t *ld, unsigned line)
{
    const char *name = ld->path != NULL ? ld->path : "config";
    return (origin_t){name, (int)strlen(name), line};
}

int me_config_reject(me_config_check_t *ck, const void *field, const char *fmt, ...)
{
    const slot_t *sl = slot_at(ck->cfg, field);
    origin_t o = sl != NULL ? ck->origin[sl - ck->cfg->store->slots] : (origin_t){0};
    va_list ap;

    va_start(ap, fmt);
    vreject(ck, o.name != NULL ? o : file_origin(ck, 0), fmt, ap);
    va_end(ap);
    return ME_ECONFIG;
}

/* Reads a secret from the file at path: at most 64 KiB, trailing whitespace removed. Returns
 * a malloc'd string the caller frees (after wiping it), or NULL with why set. */
static char *read_secret(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL, *out = NULL;
    size_t n = 0;

    if (f == NULL) {
        snprintf(why, whylen, "cannot open '%s': %s", path, strerror(errno));
        goto done;
    }
    setvbuf(f, NULL, _IONBF, 0); /* read straight into buf: no stdio buffer keeps a copy */
    if ((buf = malloc(SECRET_FILE_MAX + 1)) == NULL) {
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
    if (memchr(buf, '\0', n) != NULL) {
        snprintf(why, whylen, "'%s' contains a NUL byte", path);
        goto done;
    }
    while (n && isspace((unsigned char)buf[n - 1]))
        n--;
    buf[n] = '\0';
    out = buf;
    buf = NULL;
done:
    if (buf != NULL) {
        explicit_bzero(buf, SECRET_FILE_MAX + 1);
        free(buf);
    }
    if (f != NULL)
        fclose(f);
    return out;
}

/* Sets slot i from text (len bytes), or from the file text names when from_file. */
static int apply(load_t *ld, size_t i, int from_file, const char *text, size_t len, origin_t o, int place)
{
    slot_t *sl = &ld->cfg->store->slots[i];
    const char *section = sl->sec->name, *key = sl->s->key;
    char why[512], *secret = NULL;
    int rc;

    if (strlen(text) != len)
        return reject(ld, o, "%s.%s%s: contains a NUL byte", section, key, from_file ? "_file" : "");
    if (ld->given[i] & (1u << (2 * place + !from_file)))
        return reject(ld, o, "%s.%s is set both as a value and as a file (%s_file); set only one",
                      section, key, key);
    ld->given[i] |= (unsigned char)(1u << (2 * place + from_file));
    if (from_file && (text = secret = read_secret(text, why, sizeof(why))) == NULL)
        return reject(ld, o, "%s.%s_file: %s", section, key, why);
    rc = store(ld->cfg, sl, text, why, sizeof(why));
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
    if (rc == ME_ENOMEM)
        return reject(ld, o, "out of memory");
    if (rc)
        return reject(ld, o, "%s.%s: %s", section, key, why);
    ld->origin[i] = o;
    return 0;
}

/* The section called name in cfg, or NULL. */
static const me_config_section_t *find_section(const me_config_t *cfg, const char *name)
{
    for (size_t k = 0; k < cfg->store->nsections; k++)
        if (!strcmp(cfg->store->sections[k]->name, name))
            return cfg->store->sections[k];
    return NULL;
}

/* The slot of setting key of sec, or of the secret whose "<key>_file" key is (then
 * *from_file = 1). Returns its index, or -1. */
static ptrdiff_t lookup(const me_config_t *cfg, const me_config_section_t *sec, const char *key, int *from_file)
{
    size_t klen = strlen(key);

    for (size_t i = 0; i < cfg->store->nslots; i++) {
        const me_setting_t *s = cfg->store->slots[i].s;
        size_t n = strlen(s->key);
        if (cfg->store->slots[i].sec != sec)
            continue;
        *from_file = s->type == ME_SETTING_SECRET && klen == n + 5 && !strncmp(key, s->key, n) &&
                     !strcmp(key + n, "_file");
        if (*from_file || !strcmp(s->key, key))
            return (ptrdiff_t)i;
    }
    return -1;
}

static const char *scalar(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
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
        if (other != NULL && !strcmp(other, key))
            return 1;
    }
    return 0;
}

/* Sets the list setting of slot i from a YAML sequence of single values, joined by commas;
 * errors in the value name the line of its key, o. */
static int load_list(load_t *ld, yaml_document_t *doc, size_t i, yaml_node_t *seq, origin_t o)
{
    const slot_t *sl = &ld->cfg->store->slots[i];
    size_t size = 1, used = 0;
    yaml_node_item_t *it;
    char *joined;
    int rc;

    for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(doc, *it);
        if (item->type != YAML_SCALAR_NODE)
            return reject(ld, node_origin(ld, item), "%s.%s: expected a list of single values, got a %s in it",
                          sl->sec->name, sl->s->key, node_kind(item));
        size += item->data.scalar.length + 1;
    }
    if ((joined = malloc(size)) == NULL)
        return reject(ld, o, "out of memory");
    for (it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
        yaml_node_t *item = yaml_document_get_node(doc, *it);
        if (used)
            joined[used++] = ',';
        memcpy(joined + used, item->data.scalar.value, item->data.scalar.length);
        used += item->data.scalar.length;
    }
    joined[used] = '\0';
    rc = apply(ld, i, 0, joined, used, o, PLACE_FILE);
    free(joined);
    return rc;
}

static int load_section(load_t *ld, yaml_document_t *doc, const me_config_section_t *sec, yaml_node_t *map)
{
    const char *section = sec->name;

    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar(k);
        ptrdiff_t i;
        int from_file = 0, rc;

        if (key == NULL)
            return reject(ld, node_origin(ld, k), "expected a key in section '%s', got a %s",
                          section, node_kind(k));
        if ((i = lookup(ld->cfg, sec, key, &from_file)) < 0)
            return reject(ld, node_origin(ld, k), "unknown key '%.*s' in section '%s'", ECHO_MAX,
                          key, section);
        if (duplicate(doc, map, p))
            return reject(ld, node_origin(ld, k), "duplicate key '%s' in section '%s'", key, section);
        if (v->type == YAML_SEQUENCE_NODE && ld->cfg->store->slots[i].s->type == ME_SETTING_LIST)
            rc = load_list(ld, doc, (size_t)i, v, node_origin(ld, k));
        else if (v->type != YAML_SCALAR_NODE)
            return reject(ld, node_origin(ld, v), "%s.%s: expected a single value, got a %s",
                          section, key, node_kind(v));
        else
            rc = apply(ld, (size_t)i, from_file, (const char *)v->data.scalar.value, v->data.scalar.length,
                       node_origin(ld, v), PLACE_FILE);
        if (rc)
            return rc;
    }
    return 0;
}

static int load_document(load_t *ld, yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);

    if (root == NULL)
        return 0; /* an empty file: the defaults */
    if (root->type != YAML_MAPPING_NODE)
        return reject(ld, node_origin(ld, root), "expected sections such as 'server:', got a %s",
                      node_kind(root));
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        const char *section = scalar(k);
        const me_config_section_t *sec;
        int rc;

        if (section == NULL)
            return reject(ld, node_origin(ld, k), "expected a section name, got a %s", node_kind(k));
        if ((sec = find_section(ld->cfg, section)) == NULL)
            return reject(ld, node_origin(ld, k), "unknown section '%.*s'", ECHO_MAX, section);
        if (duplicate(doc, root, p))
            return reject(ld, node_origin(ld, k), "duplicate section '%s'", section);
        if (v->type == YAML_SCALAR_NODE && !v->data.scalar.length &&
            v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            continue; /* "section:" with every key commented out */
        if (v->type != YAML_MAPPING_NODE)
            return reject(ld, node_origin(ld, v), "section '%s' must be a mapping of key: value, got a %s",
                          section, node_kind(v));
        if ((rc = load_section(ld, doc, sec, v)))
            return rc;
    }
    return 0;
}

static int syntax_error(load_t *ld, const yaml_parser_t *parser)
{
    if (parser->error == YAML_MEMORY_ERROR)
        return reject(ld, file_origin(ld, 0), "out of memory");
    if (parser->context != NULL)
        return reject(ld, file_origin(ld, (unsigned)parser->problem_mark.line + 1),
                      "YAML syntax error: %s (%s that starts at line %zu)", parser->problem,
                      parser->context, parser->context_mark.line + 1);
    return reject(ld, file_origin(ld, (unsigned)parser->problem_mark.line + 1), "YAML syntax error: %s",
                  parser->problem != NULL ? parser->problem : "unreadable input");
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
    if (f == NULL) {
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
    if (yaml_document_get_root_node(&next) != NULL) {
        rc = reject(ld, file_origin(ld, (unsigned)next.start_mark.line + 1),
                    "expected one YAML document, found another");
        goto done;
    }
    rc = load_document(ld, &doc);
done:
    yaml_document_delete(&next);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (f != NULL)
        fclose(f);
    return rc;
}

/* Writes MEDIAEDGE_<SECTION>_<KEY>[_FILE] for sl into buf. */
static void env_name(const slot_t *sl, int from_file, char *buf, size_t len)
{
    snprintf(buf, len, "MEDIAEDGE_%s_%s%s", sl->sec->name, sl->s->key, from_file ? "_FILE" : "");
    for (; *buf; buf++)
        *buf = (char)toupper((unsigned char)*buf);
}

/* The slot whose variable is the name of nlen bytes (*from_file = 1 for a _FILE one), or -1. */
static ptrdiff_t env_lookup(const me_config_t *cfg, const char *name, size_t nlen, int *from_file)
{
    char want[256];

    for (size_t i = 0; i < cfg->store->nslots; i++) {
        const slot_t *sl = &cfg->store->slots[i];
        for (*from_file = 0; *from_file <= (sl->s->type == ME_SETTING_SECRET); ++*from_file) {
            env_name(sl, *from_file, want, sizeof(want));
            if (strlen(want) == nlen && !strncmp(name, want, nlen))
                return (ptrdiff_t)i;
        }
    }
    return -1;
}

static int load_env(load_t *ld, char *const *envp)
{
    static const char ignored[] = "MEDIAEDGE_CONFIG"; /* the config path, read by main */
    static const char failpoint[] = "MEDIAEDGE_FAILPOINT"; /* tests only, read at start (failpoint.h) */

    for (; envp != NULL && *envp; envp++) {
        const char *e = *envp, *eq = strchr(e, '=');
        origin_t o = {e, eq != NULL ? (int)(eq - e) : 0, 0};
        ptrdiff_t i;
        int from_file, rc;

        if (strncmp(e, "MEDIAEDGE_", 10) || eq == NULL ||
            ((size_t)o.len == sizeof(ignored) - 1 && !strncmp(e, ignored, sizeof(ignored) - 1)) ||
            ((size_t)o.len == sizeof(failpoint) - 1 && !strncmp(e, failpoint, sizeof(failpoint) - 1)))
            continue;
        if ((i = env_lookup(ld->cfg, e, (size_t)o.len, &from_file)) < 0)
            return reject(ld, o, "unknown setting (expected MEDIAEDGE_<SECTION>_<KEY> for a key of conf/mediaedge.yaml)");
        if ((rc = apply(ld, (size_t)i, from_file, eq + 1, strlen(eq + 1), o, PLACE_ENV)))
            return rc;
    }
    return 0;
}

/* Runs the sections' check hooks, in order: the first refusal wins. */
static int run_checks(load_t *ld)
{
    const me_config_store_t *st = ld->cfg->store;
    int rc;

    for (size_t k = 0; k < st->nsections; k++)
        if (st->sections[k]->check != NULL && (rc = st->sections[k]->check(ld->cfg, st->values[k], ld)))
            return rc;
    return 0;
}

/* me_config_load() over the sections of list. */
static int load_with(me_config_t *cfg, const me_config_section_t *const *list, const char *path,
                char *const *envp, char *err, size_t errlen)
{
    load_t ld = {.cfg = cfg, .path = path, .err = err, .errlen = errlen};
    int rc = 0;

    if (err != NULL && errlen)
        err[0] = '\0';
    if (init_store(cfg, list))
        return reject(&ld, file_origin(&ld, 0), "out of memory");
    ld.given = calloc(cfg->store->nslots + 1, sizeof(*ld.given));
    ld.origin = calloc(cfg->store->nslots + 1, sizeof(*ld.origin));
    if (ld.given == NULL || ld.origin == NULL || (path != NULL && (cfg->path = strdup(path)) == NULL))
        rc = reject(&ld, file_origin(&ld, 0), "out of memory");
    if (!rc && path != NULL)
        rc = load_file(&ld);
    if (!rc)
        rc = load_env(&ld, envp);
    if (!rc)
        rc = run_checks(&ld);
    free(ld.given);
    free(ld.origin);
    return rc;
}

int me_config_load(me_config_t *cfg, const char *path, char *const *envp, char *err, size_t errlen)
{
    return load_with(cfg, me_config_sections, path, envp, err, errlen);
}

void me_config_auto(me_config_t *cfg, void *field, uint64_t v)
{
    slot_t *sl = slot_at(cfg, field);

    if (sl == NULL)
        abort(); /* a resolve hook named a field that is no setting: test_config runs every hook */
    if (get_number(cfg, sl))
        return;
    if (sl->s->max && v > (uint64_t)sl->s->max)
        v = (uint64_t)sl->s->max;
    set_number(cfg, sl, v);
    sl->auto_filled = 1;
}

void me_config_resolve(me_config_t *cfg)
{
    const char *root = getenv("ME_CGROUP_ROOT"); /* tests point it at fake cgroup files */
    me_config_store_t *st = cfg->store;

    if (root == NULL || !*root)
        root = "/sys/fs/cgroup";
    if (!cfg->cpu_limit)
        cfg->cpu_limit = me_cgroup_cpus(root);
    if (!cfg->memory_limit)
        cfg->memory_limit = me_cgroup_memory(root);
    for (size_t k = 0; st != NULL && k < st->nsections; k++)
        if (st->sections[k]->resolve != NULL)
            st->sections[k]->resolve(cfg, st->values[k]);
}

/* 1 when a section's profile hook makes cfg a production deployment, with why set. */
static int profile(const me_config_t *cfg, char *why, size_t len)
{
    const me_config_store_t *st = cfg->store;

    for (size_t k = 0; st != NULL && k < st->nsections; k++)
        if (st->sections[k]->profile != NULL && st->sections[k]->profile(st->values[k], why, len))
            return 1;
    return 0;
}

int me_config_is_production(const me_config_t *cfg)
{
    char why[160];
    return profile(cfg, why, sizeof(why));
}

int me_config_check_production(const me_config_t *cfg, char *err, size_t errlen)
{
    const me_config_store_t *st = cfg->store;
    me_config_refusal_t worst = {0}, r;
    char why[160];
    int found = 0;

    if (!profile(cfg, why, sizeof(why)))
        return 0;
    for (size_t k = 0; k < st->nsections; k++) {
        const me_config_section_t *sec = st->sections[k];
        if (sec->refuse_in_production != NULL && sec->refuse_in_production(cfg, st->values[k], &r) &&
            (!found || r.risk < worst.risk)) {
            worst = r;
            found = 1;
        }
    }
    if (!found)
        return 0;
    if (err != NULL && errlen)
        snprintf(err, errlen, "%s: %s not allowed in production (%s)%s; %s", worst.setting, worst.what, why,
                 worst.unless != NULL ? worst.unless : "", worst.fix);
    return ME_ECONFIG;
}

static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (; s != NULL && *s; s++) {
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
    const me_config_store_t *st = cfg->store;
    const me_config_section_t *section = NULL;
    char buf[32];

    fprintf(out, "# mediaedge effective configuration%s%s\n", cfg->path != NULL ? ": " : "",
            cfg->path != NULL ? cfg->path : "");
    for (size_t i = 0; st != NULL && i < st->nslots; i++) {
        const slot_t *sl = &st->slots[i];
        const me_setting_t *s = sl->s;
        const char *str = is_string(s) ? get_string(cfg, sl) : NULL;
        uint64_t v = is_string(s) ? 0 : get_number(cfg, sl);

        if (section != sl->sec)
            fprintf(out, "\n%s:\n", (section = sl->sec)->name);
        fprintf(out, "  %s: ", s->key);
        if (s->type == ME_SETTING_STRING)
            print_quoted(out, str);
        else if (s->type == ME_SETTING_LIST)
            print_list(out, str);
        else if (s->type == ME_SETTING_SECRET)
            print_quoted(out, str != NULL && *str ? "<redacted>" : "");
        else if (s->type == ME_SETTING_BOOL)
            fputs(v ? "true" : "false", out);
        else if (s->type == ME_SETTING_ENUM)
            fputs(s->choices[v], out);
        else {
            format_number(s->type, v, buf, sizeof(buf));
            fputs(buf, out);
        }
        if ((s->flags & ME_SETTING_AUTO) && (!v || sl->auto_filled))
            fputs("  # auto", out);
        fputc('\n', out);
    }
    if (cfg->cpu_limit && cfg->memory_limit) {
        format_number(ME_SETTING_SIZE, cfg->memory_limit, buf, sizeof(buf));
        fprintf(out, "\n# machine limits (cgroup): %d CPUs, %s of memory\n", cfg->cpu_limit, buf);
    }
}
