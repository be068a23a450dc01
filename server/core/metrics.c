/* metrics.c: the metric registry, lock-free series lookup for the hot path, and the Prometheus text renderer. */
#include "server/core/metrics.h"

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/core/log.h"

#define METRIC_VALUE_MAX 128 /* bytes kept of a label value, NUL included */
#define METRIC_OVERFLOW "_overflow"

/* One label set. Its labels and hash never change once published; only the atomics do. */
typedef struct {
    uint64_t hash;
    size_t len[ME_METRIC_MAX_LABELS];
    char value[ME_METRIC_MAX_LABELS][METRIC_VALUE_MAX];
    _Atomic uint64_t bits;     /* a double's bits: counter or gauge value, or histogram sum */
    _Atomic uint64_t bucket[]; /* histogram: observations per bucket (not cumulative), +Inf last */
} metric_series_t;

struct me_metric {
    me_metric_t *next;
    me_metric_type_t type;
    char *name;
    char *help;
    char *label_list; /* the label names, split in place; label[] points into it */
    const char *label[ME_METRIC_MAX_LABELS];
    size_t nlabels;
    double *buckets;
    size_t nbuckets;
    pthread_mutex_t lock;  /* serialises adding series */
    _Atomic size_t nseries; /* series[0..nseries) are published (release) and never removed */
    metric_series_t *_Atomic overflow;
    metric_series_t *series[ME_METRIC_MAX_SERIES];
};

/* A label set being looked up: values cut as they would be stored. */
typedef struct {
    const char *value[ME_METRIC_MAX_LABELS];
    size_t len[ME_METRIC_MAX_LABELS];
    uint64_t hash;
} metric_key_t;

typedef struct {
    char *p;
    size_t len, cap;
    int failed;
} metric_buf_t;

/* Appended to from constructors before main: static initialisation only. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static me_metric_t *registry_head;
static me_metric_t **registry_tail = &registry_head;

static double bits_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

static uint64_t double_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

static void atomic_add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, double_bits(bits_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Prometheus names: [a-zA-Z_:][a-zA-Z0-9_:]*, without ':' for label names. */
static int metric_name_ok(const char *s, int colon)
{
    if (*s == '\0' || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              (colon && *s == ':')))
            return 0;
    return 1;
}

/* Fills k from labels (NULL values count as ""), cutting each value to METRIC_VALUE_MAX - 1
 * bytes without splitting a UTF-8 sequence, and hashes it (FNV-1a). */
static void metric_key(const me_metric_t *m, const char *const *labels, metric_key_t *k)
{
    k->hash = 14695981039346656037ULL;
    for (size_t i = 0; i < m->nlabels; i++) {
        const char *v = labels != NULL && labels[i] != NULL ? labels[i] : "";
        size_t n = strnlen(v, METRIC_VALUE_MAX);
        if (n == METRIC_VALUE_MAX)
            for (n--; n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80; n--)
                ;
        k->value[i] = v;
        k->len[i] = n;
        for (size_t j = 0; j < n; j++)
            k->hash = (k->hash ^ (unsigned char)v[j]) * 1099511628211ULL;
        k->hash = (k->hash ^ 0xFF) * 1099511628211ULL; /* 0xFF never occurs in UTF-8 */
    }
}

static metric_series_t *series_scan(const me_metric_t *m, const metric_key_t *k, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        metric_series_t *s = m->series[i];
        size_t j = 0;
        if (s->hash != k->hash)
            continue;
        while (j < m->nlabels && s->len[j] == k->len[j] && memcmp(s->value[j], k->value[j], k->len[j]) == 0)
            j++;
        if (j == m->nlabels)
            return s;
    }
    return NULL;
}

/* A new zeroed series for k, or NULL when out of memory. */
static metric_series_t *series_new(const me_metric_t *m, const metric_key_t *k)
{
    size_t nbuckets = m->type == ME_METRIC_HISTOGRAM ? m->nbuckets + 1 : 0;
    metric_series_t *s = calloc(1, sizeof(*s) + nbuckets * sizeof(s->bucket[0]));
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < m->nlabels; i++) {
        memcpy(s->value[i], k->value[i], k->len[i]);
        s->len[i] = k->len[i];
    }
    s->hash = k->hash;
    return s;
}

/* The series for labels. Lock-free when it exists; otherwise, with create, adds it under
 * the metric's lock, or past ME_METRIC_MAX_SERIES returns the overflow series. NULL when
 * absent (without create) or out of memory. */
static metric_series_t *metric_series(me_metric_t *m, const char *const *labels, int create)
{
    metric_key_t k;
    metric_key(m, labels, &k);
    size_t seen = atomic_load_explicit(&m->nseries, memory_order_acquire);
    metric_series_t *s = series_scan(m, &k, 0, seen);
    if (s == NULL && create && seen == ME_METRIC_MAX_SERIES)
        s = atomic_load_explicit(&m->overflow, memory_order_acquire);
    if (s != NULL || !create)
        return s;

    pthread_mutex_lock(&m->lock);
    size_t n = atomic_load_explicit(&m->nseries, memory_order_relaxed);
    s = series_scan(m, &k, seen, n);
    if (s == NULL && n < ME_METRIC_MAX_SERIES) {
        if ((s = series_new(m, &k)) != NULL) {
            m->series[n] = s;
            atomic_store_explicit(&m->nseries, n + 1, memory_order_release);
        }
    } else if (s == NULL && (s = atomic_load_explicit(&m->overflow, memory_order_relaxed)) == NULL) {
        const char *values[ME_METRIC_MAX_LABELS] = {METRIC_OVERFLOW, METRIC_OVERFLOW, METRIC_OVERFLOW};
        metric_key(m, values, &k);
        if ((s = series_new(m, &k)) != NULL)
            atomic_store_explicit(&m->overflow, s, memory_order_release);
    }
    pthread_mutex_unlock(&m->lock);
    return s;
}

static void metric_free(me_metric_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < atomic_load(&m->nseries); i++)
        free(m->series[i]);
    free(atomic_load(&m->overflow));
    pthread_mutex_destroy(&m->lock);
    free(m->buckets);
    free(m->label_list);
    free(m->help);
    free(m->name);
    free(m);
}

/* A new metric, or NULL when out of memory or when the definition is invalid. */
static me_metric_t *metric_create(me_metric_type_t type, const char *name, const char *help,
                                  const char *label_names, const double *buckets, size_t nbuckets)
{
    me_metric_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        goto fail;
    pthread_mutex_init(&m->lock, NULL);
    m->type = type;
    if ((unsigned)type > ME_METRIC_HISTOGRAM || !metric_name_ok(name, 1))
        goto fail;
    if ((m->name = strdup(name)) == NULL || (m->help = strdup(help != NULL ? help : "")) == NULL)
        goto fail;
    if (label_names != NULL && *label_names != '\0') {
        char *save = NULL;
        if ((m->label_list = strdup(label_names)) == NULL)
            goto fail;
        for (char *tok = strtok_r(m->label_list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
            if (m->nlabels == ME_METRIC_MAX_LABELS || !metric_name_ok(tok, 0) ||
                (type == ME_METRIC_HISTOGRAM && strcmp(tok, "le") == 0))
                goto fail;
            m->label[m->nlabels++] = tok;
        }
    }
    if (type == ME_METRIC_HISTOGRAM) {
        if (nbuckets > 0 && buckets[nbuckets - 1] == INFINITY)
            nbuckets--; /* +Inf is implied */
        if (nbuckets > 0 && (m->buckets = malloc(nbuckets * sizeof(*m->buckets))) == NULL)
            goto fail;
        for (size_t i = 0; i < nbuckets; i++) {
            if (isnan(buckets[i]) || (i > 0 && !(buckets[i] > buckets[i - 1])))
                goto fail;
            m->buckets[i] = buckets[i];
        }
        m->nbuckets = nbuckets;
    }
    if (m->nlabels == 0) { /* its one series exists from the start, so it renders as 0 */
        metric_key_t k;
        metric_key(m, NULL, &k);
        if ((m->series[0] = series_new(m, &k)) == NULL)
            goto fail;
        atomic_store(&m->nseries, 1);
    }
    return m;

fail:
    metric_free(m);
    return NULL;
}

me_metric_t *me_metric_new(me_metric_type_t type, const char *name, const char *help,
                           const char *label_names, const double *buckets, size_t nbuckets)
{
    me_metric_t *m;
    if (name == NULL)
        name = "";
    pthread_mutex_lock(&registry_lock);
    for (m = registry_head; m != NULL; m = m->next)
        if (strcmp(m->name, name) == 0)
            goto done;
    if ((m = metric_create(type, name, help, label_names, buckets, nbuckets)) != NULL) {
        *registry_tail = m;
        registry_tail = &m->next;
    }
done:
    pthread_mutex_unlock(&registry_lock);
    if (m == NULL)
        me_log_error(NULL, "metric %.100s not registered: invalid definition or out of memory", name);
    return m;
}

void me_metric_add(me_metric_t *m, const char *const *labels, double v)
{
    if (m == NULL || isnan(v) || (m->type == ME_METRIC_COUNTER && v < 0))
        return; /* a counter only goes up; NaN would poison the value for good */
    metric_series_t *s = metric_series(m, labels, 1);
    if (s == NULL)
        return; /* out of memory: the observation is lost */
    if (m->type == ME_METRIC_HISTOGRAM) {
        size_t i = 0;
        while (i < m->nbuckets && v > m->buckets[i])
            i++;
        atomic_fetch_add_explicit(&s->bucket[i], 1, memory_order_relaxed);
    }
    atomic_add_double(&s->bits, v);
}

void me_metric_set(me_metric_t *m, const char *const *labels, double v)
{
    metric_series_t *s;
    if (m != NULL && m->type == ME_METRIC_GAUGE && (s = metric_series(m, labels, 1)) != NULL)
        atomic_store_explicit(&s->bits, double_bits(v), memory_order_relaxed);
}

/* A histogram series' observation count: the sum of its buckets. */
static uint64_t series_count(const me_metric_t *m, metric_series_t *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= m->nbuckets; i++)
        n += atomic_load_explicit(&s->bucket[i], memory_order_relaxed);
    return n;
}

double me_metric_value(me_metric_t *m, const char *const *labels)
{
    metric_series_t *s = m != NULL ? metric_series(m, labels, 0) : NULL;
    if (s == NULL)
        return 0;
    if (m->type == ME_METRIC_HISTOGRAM)
        return (double)series_count(m, s);
    return bits_double(atomic_load_explicit(&s->bits, memory_order_relaxed));
}

/* ---- rendering ---- */

static void buf_add(metric_buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(metric_buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

/* Appends s escaped for HELP (backslash, newline) or, with quote, for a label value (also
 * the double quote). */
static void buf_escaped(metric_buf_t *b, const char *s, size_t n, int quote)
{
    const char *special = quote ? "\\\n\"" : "\\\n";
    while (n > 0) {
        size_t run = 0;
        while (run < n && (s[run] == '\0' || strchr(special, s[run]) == NULL))
            run++;
        buf_add(b, s, run);
        if (run == n)
            break;
        buf_add(b, s[run] == '\n' ? "\\n" : s[run] == '"' ? "\\\"" : "\\\\", 2);
        s += run + 1;
        n -= run + 1;
    }
}

/* Integral values without a decimal point, others in the shortest of %.15g/%.17g that reads
 * back exactly; +Inf, -Inf, NaN as the format spells them. Needs the "C" numeric locale. */
static void buf_number(metric_buf_t *b, double v)
{
    char tmp[32];
    if (isnan(v)) {
        buf_str(b, "NaN");
    } else if (isinf(v)) {
        buf_str(b, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        buf_add(b, tmp, (size_t)snprintf(tmp, sizeof(tmp), "%" PRId64, (int64_t)v));
    } else {
        int n = snprintf(tmp, sizeof(tmp), "%.15g", v);
        if (strtod(tmp, NULL) != v)
            n = snprintf(tmp, sizeof(tmp), "%.17g", v);
        buf_add(b, tmp, (size_t)n);
    }
}

/* {l1="v1",...,le="x"}, or nothing when there are no labels and no le. */
static void render_labels(metric_buf_t *b, const me_metric_t *m, const metric_series_t *s, const double *le)
{
    if (m->nlabels == 0 && le == NULL)
        return;
    buf_str(b, "{");
    for (size_t i = 0; i < m->nlabels; i++) {
        buf_str(b, i > 0 ? "," : "");
        buf_str(b, m->label[i]);
        buf_str(b, "=\"");
        buf_escaped(b, s->value[i], s->len[i], 1);
        buf_str(b, "\"");
    }
    if (le != NULL) {
        buf_str(b, m->nlabels > 0 ? ",le=\"" : "le=\"");
        buf_number(b, *le);
        buf_str(b, "\"");
    }
    buf_str(b, "}");
}

/* One sample line: name + suffix, the series' labels (and le), the value. */
static void render_sample(metric_buf_t *b, const me_metric_t *m, const metric_series_t *s, const char *suffix,
                          const double *le, double value)
{
    buf_str(b, m->name);
    buf_str(b, suffix);
    render_labels(b, m, s, le);
    buf_str(b, " ");
    buf_number(b, value);
    buf_str(b, "\n");
}

static void render_series(metric_buf_t *b, const me_metric_t *m, metric_series_t *s)
{
    static const double inf = INFINITY;
    double sum = bits_double(atomic_load_explicit(&s->bits, memory_order_relaxed));
    if (m->type != ME_METRIC_HISTOGRAM) {
        render_sample(b, m, s, "", NULL, sum);
        return;
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= m->nbuckets; i++) {
        cumulative += atomic_load_explicit(&s->bucket[i], memory_order_relaxed);
        render_sample(b, m, s, "_bucket", i < m->nbuckets ? &m->buckets[i] : &inf, (double)cumulative);
    }
    render_sample(b, m, s, "_sum", NULL, sum);
    render_sample(b, m, s, "_count", NULL, (double)cumulative);
}

static void render_metric(metric_buf_t *b, me_metric_t *m)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};
    buf_str(b, "# HELP ");
    buf_str(b, m->name);
    buf_str(b, " ");
    buf_escaped(b, m->help, strlen(m->help), 0);
    buf_str(b, "\n# TYPE ");
    buf_str(b, m->name);
    buf_str(b, " ");
    buf_str(b, types[m->type]);
    buf_str(b, "\n");
    size_t n = atomic_load_explicit(&m->nseries, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        render_series(b, m, m->series[i]);
    metric_series_t *overflow = atomic_load_explicit(&m->overflow, memory_order_acquire);
    if (overflow != NULL)
        render_series(b, m, overflow);
}

/* Renders into b under the "C" numeric locale, whatever the process's locale is. */
static void render_all(metric_buf_t *b)
{
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (c == (locale_t)0) {
        b->failed = 1;
        return;
    }
    locale_t old = uselocale(c);
    buf_add(b, "", 0); /* an empty registry still gives a string */
    pthread_mutex_lock(&registry_lock);
    for (me_metric_t *m = registry_head; m != NULL; m = m->next)
        render_metric(b, m);
    pthread_mutex_unlock(&registry_lock);
    uselocale(old);
    freelocale(c);
}

char *me_metrics_render(size_t *len)
{
    metric_buf_t b = {0};
    render_all(&b);
    if (b.failed) {
        free(b.p);
        b.p = NULL;
        b.len = 0;
    }
    if (len != NULL)
        *len = b.len;
    return b.p;
}
