/* metrics.h: counters, gauges and histograms, rendered in the Prometheus text format. */
#ifndef ME_METRICS_H
#define ME_METRICS_H

#include <stddef.h>

#define ME_METRIC_MAX_LABELS 3
/* Series (label sets) per metric. Past it, every new label set is counted in one overflow
 * series whose label values are all "_overflow", so cardinality stays bounded and the loss
 * shows in the output. Label values are copied, cut to 127 bytes (at a UTF-8 boundary); they
 * must be chosen by the server (route templates, status codes), never raw client input. */
#define ME_METRIC_MAX_SERIES 512

typedef enum { ME_METRIC_COUNTER, ME_METRIC_GAUGE, ME_METRIC_HISTOGRAM } me_metric_type_t;
typedef struct me_metric me_metric_t;

/* Registers a metric (process-global, lives until exit). label_names is a comma-separated
 * list ("route,status") or NULL. For histograms, buckets are upper bounds in ascending
 * order (copied); +Inf is implied. Safe to call from constructors (before main).
 * Returns NULL (and logs an error) if allocation fails or the definition is invalid: a name
 * that is not a Prometheus name, more than ME_METRIC_MAX_LABELS labels, "le" on a histogram,
 * buckets not strictly ascending. The functions below ignore a NULL metric. Registering the
 * same name twice returns the first one. */
me_metric_t *me_metric_new(me_metric_type_t type, const char *name, const char *help,
                           const char *label_names, const double *buckets, size_t nbuckets);

/* Adds v to a counter or gauge (v may be negative for gauges), or observes v in a
 * histogram. labels holds one value per label name (NULL when the metric has none; extra
 * values are ignored). A NaN, or a negative v for a counter, is ignored.
 * Thread-safe and lock-free once the label set exists. */
void me_metric_add(me_metric_t *m, const char *const *labels, double v);

/* Sets a gauge (ignored for other types). */
void me_metric_set(me_metric_t *m, const char *const *labels, double v);

/* Current value of a counter or gauge (a histogram's count); 0 for an unseen label set. */
double me_metric_value(me_metric_t *m, const char *const *labels);

/* Renders every registered metric in the Prometheus text exposition format 0.0.4 (HELP,
 * TYPE, escaped label values, histogram _bucket/_sum/_count). Returns a malloc'd string
 * (length in *len) the caller frees, or NULL on allocation failure. */
char *me_metrics_render(size_t *len);

/* Declares a metric in one line at file scope:
 *   ME_COUNTER(uploads_created, "mediaedge_uploads_created_total", "Uploads created.", NULL);
 * then: me_metric_add(uploads_created, NULL, 1); */
#define ME_METRIC_DECLARE_(var, type, name, help, labels, buckets, n)                         \
    static me_metric_t *var;                                                                  \
    __attribute__((constructor)) static void var##_register_(void)                            \
    {                                                                                         \
        var = me_metric_new(type, name, help, labels, buckets, n);                            \
    }
#define ME_COUNTER(var, name, help, labels) ME_METRIC_DECLARE_(var, ME_METRIC_COUNTER, name, help, labels, NULL, 0)
#define ME_GAUGE(var, name, help, labels) ME_METRIC_DECLARE_(var, ME_METRIC_GAUGE, name, help, labels, NULL, 0)
#define ME_HISTOGRAM(var, name, help, labels, buckets)                                        \
    ME_METRIC_DECLARE_(var, ME_METRIC_HISTOGRAM, name, help, labels, buckets,                 \
                       sizeof(buckets) / sizeof((buckets)[0]))

#endif
