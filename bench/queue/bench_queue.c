/* bench_queue.c: what the Redis backends cost against the in-process ones, on one Redis:
 * upload lock acquire (+ check + release) latency, and jobs per second through the queue
 * (push, then pop + done from several threads). Run by bench/queue/run, which starts the
 * redis-server; prints figures, asserts nothing. usage: bench_queue URL [N] */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/jobs/jobq.h"
#include "server/redis/redis.h"
#include "server/upload/lock.h"

#define THREADS 4

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* p50 and p99 of v[0..n) in microseconds, printed after label. */
static void percentiles(const char *label, double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp);
    printf("  %-34s p50 %7.1f us   p99 %7.1f us\n", label, v[n / 2] * 1e6, v[n * 99 / 100] * 1e6);
}

static void bench_locks(const char *name, me_locks_t *l, int n)
{
    double *acq = malloc(sizeof(double) * (size_t)n), *chk = malloc(sizeof(double) * (size_t)n),
           *rel = malloc(sizeof(double) * (size_t)n);
    char label[64], id[32];
    for (int i = 0; i < n; i++) {
        uint64_t fence;
        snprintf(id, sizeof(id), "upload-%d", i % 64);
        double t0 = now_s();
        if (me_locks_acquire(l, id, &fence) != 0) {
            fprintf(stderr, "acquire failed\n");
            exit(1);
        }
        double t1 = now_s();
        if (me_locks_check(l, id, fence) != 0) {
            fprintf(stderr, "check failed\n");
            exit(1);
        }
        double t2 = now_s();
        me_locks_release(l, id, fence);
        acq[i] = t1 - t0, chk[i] = t2 - t1, rel[i] = now_s() - t2;
    }
    snprintf(label, sizeof(label), "%s lock acquire", name);
    percentiles(label, acq, n);
    snprintf(label, sizeof(label), "%s lock check (before a commit)", name);
    percentiles(label, chk, n);
    snprintf(label, sizeof(label), "%s lock release", name);
    percentiles(label, rel, n);
    free(acq), free(chk), free(rel);
}

typedef struct {
    me_jobq_t *q;
    int *left;
    pthread_mutex_t *m;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    char id[ME_JOBQ_ID_MAX + 1];
    for (;;) {
        pthread_mutex_lock(w->m);
        int more = *w->left > 0;
        if (more)
            --*w->left;
        pthread_mutex_unlock(w->m);
        if (!more || me_jobq_pop(w->q, id) != 0)
            return NULL;
        me_jobq_done(w->q, id);
    }
}

/* Returns jobs per second through pop + done with THREADS threads. */
static double bench_queue(const char *name, me_jobq_t *q, int n)
{
    char id[32];
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "media-%d", i);
        if (me_jobq_push(q, id, 0) != 0) {
            fprintf(stderr, "push failed\n");
            exit(1);
        }
    }
    double pushed = now_s() - t0;
    pthread_t t[THREADS];
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    int left = n;
    worker_t w = {q, &left, &m};
    t0 = now_s();
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, work, &w);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    double ran = now_s() - t0;
    printf("  %-34s push %8.0f /s   pop+done %8.0f /s (%d threads)\n", name, n / pushed, n / ran, THREADS);
    return n / ran;
}

int main(int argc, char **argv)
{
    me_redis_url_t url;
    char err[256];
    int n = argc > 2 ? atoi(argv[2]) : 5000;
    if (argc < 2 || me_redis_url_parse(argv[1], &url, err, sizeof(err)) != 0) {
        fprintf(stderr, "usage: bench_queue URL [N]\n");
        return 2;
    }
    me_redis_options_t opt = {.connect_timeout = 2000, .timeout = 2000, .max_idle = 16};
    me_redis_t *r = me_redis_new(&url, &opt, err, sizeof(err));
    if (r == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double *ping = malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        double t0 = now_s();
        freeReplyObject(me_redis_callf(r, "PING"));
        ping[i] = now_s() - t0;
    }
    printf("%s\n", argv[1]);
    percentiles("redis PING (the floor: one round trip)", ping, n);
    free(ping);
    me_locks_t *local = me_locks_local_new(1024), *shared = me_locks_redis_new(r, "bench:", 10000, err, sizeof(err));
    bench_locks("local", local, n);
    bench_locks("redis", shared, n);
    me_locks_free(local);
    me_locks_free(shared);
    me_jobq_t *lq = me_jobq_local_new(), *rq = me_jobq_redis_new(r, "bench:", "photo", 30000, err, sizeof(err));
    if (rq == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double a = bench_queue("local queue", lq, 4 * n), b = bench_queue("redis queue (streams)", rq, 4 * n);
    printf("  redis / local jobs per second: %.3f\n", b / a);
    me_jobq_close(lq);
    me_jobq_free(lq);
    me_jobq_free(rq);
    me_redis_free(r);
    return 0;
}
