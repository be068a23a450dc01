/* lock_redis.c: upload locks in Redis shared by every instance: set-if-absent with expiry and
 * an owner token carrying a fencing counter, renewed while held, released and checked only
 * by their owner (lock.h says what fencing guarantees and what it cannot). */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/redis/redis.h"
#include "server/upload/lock.h"

#define KEY_MAX (ME_REDIS_PREFIX_MAX + ME_LOCK_NAME_MAX + 16)
#define VALUE_MAX 64 /* "<fence>:<32 hex>" */
#define RENEW_BATCH 30

ME_COUNTER(lock_lost, "mediaedge_upload_locks_lost_total",
           "Upload locks found lost by their holder (expired while it stalled): at renewal or at a commit, which was "
           "then refused.",
           "at")

/* KEYS[1] the lock, KEYS[2] the fencing counter; ARGV[1] the owner's random part, ARGV[2]
 * the TTL in ms. The fence grows with every acquisition of any lock. */
static me_redis_script_t acquire_script = {.source = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
                                                     "local f = redis.call('INCR', KEYS[2])\n"
                                                     "redis.call('SET', KEYS[1], f .. ':' .. ARGV[1], 'PX', ARGV[2])\n"
                                                     "return f\n"};

/* KEYS[1] the lock; ARGV[1] the owner's value. */
static me_redis_script_t release_script = {
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
              "return 0\n"};

/* KEYS the locks; ARGV[1] the TTL in ms, ARGV[1 + i] the owner's value of KEYS[i]. Each lock
 * still the owner's gets a full TTL again; the answer says which were. */
static me_redis_script_t renew_script = {.source = "local held = {}\n"
                                                   "for i, k in ipairs(KEYS) do\n"
                                                   "  if redis.call('GET', k) == ARGV[i + 1] then\n"
                                                   "    redis.call('PEXPIRE', k, ARGV[1])\n"
                                                   "    held[i] = 1\n"
                                                   "  else\n"
                                                   "    held[i] = 0\n"
                                                   "  end\n"
                                                   "end\n"
                                                   "return held\n"};

typedef struct held {
    char name[ME_LOCK_NAME_MAX + 1];
    char value[VALUE_MAX];
    uint64_t fence;
    int lost;
    struct held *next;
} held_t;

typedef struct {
    me_redis_t *r;
    char prefix[ME_REDIS_PREFIX_MAX + 1];
    char fence_key[KEY_MAX];
    uint64_t ttl;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    held_t *held;
    int stopping, renewing;
    pthread_t renewer;
} rlocks_t;

static void key_of(const rlocks_t *t, const char *name, char *key)
{
    snprintf(key, KEY_MAX, "%slock:%s", t->prefix, name);
}

static int redis_acquire(void *be, const char *name, uint64_t *fence)
{
    rlocks_t *t = be;
    char key[KEY_MAX], rnd[33], ttl[24];
    held_t *h = calloc(1, sizeof(*h));
    if (h == NULL || me_redis_random_hex(rnd, 16) != 0) {
        free(h);
        return ME_EIO;
    }
    key_of(t, name, key);
    snprintf(ttl, sizeof(ttl), "%" PRIu64, t->ttl);
    redisReply *rep = me_redis_eval(t->r, &acquire_script, 2, 4, (const char *[]){key, t->fence_key, rnd, ttl});
    /* no answer (Redis down, unreachable): the client is told to come back (503), not that
     * another request holds the upload (423) */
    int ret = rep == NULL                        ? ME_ELOCK_UNAVAILABLE
              : rep->type != REDIS_REPLY_INTEGER ? ME_EIO
              : rep->integer == 0                ? ME_ELOCKED
                                                 : 0;
    if (ret == 0) {
        h->fence = (uint64_t)rep->integer;
        snprintf(h->name, sizeof(h->name), "%s", name);
        snprintf(h->value, sizeof(h->value), "%" PRIu64 ":%s", h->fence, rnd);
        *fence = h->fence;
        pthread_mutex_lock(&t->lock);
        h->next = t->held, t->held = h, h = NULL;
        pthread_mutex_unlock(&t->lock);
    } else if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        me_log_error(NULL, "locks: redis refused the acquire script: %s", rep->str);
    }
    freeReplyObject(rep);
    free(h);
    return ret;
}

/* Unlinks the entry of name taken with fence (any of name's when fence is 0); NULL if none. */
static held_t *unlink_held(rlocks_t *t, const char *name, uint64_t fence)
{
    for (held_t **p = &t->held; *p != NULL; p = &(*p)->next)
        if (strcmp((*p)->name, name) == 0 && (fence == 0 || (*p)->fence == fence)) {
            held_t *h = *p;
            *p = h->next;
            return h;
        }
    return NULL;
}

static void redis_release(void *be, const char *name, uint64_t fence)
{
    rlocks_t *t = be;
    char key[KEY_MAX];
    pthread_mutex_lock(&t->lock);
    held_t *h = unlink_held(t, name, fence);
    pthread_mutex_unlock(&t->lock);
    if (h == NULL)
        return;
    key_of(t, name, key);
    /* a lost lock is left alone: its key is someone else's now, and the script knows it */
    redisReply *rep = me_redis_eval(t->r, &release_script, 1, 2, (const char *[]){key, h->value});
    if (rep == NULL)
        me_log_warn(NULL, "locks: could not release the lock of %s; it expires by itself", name);
    freeReplyObject(rep);
    free(h);
}

/* Renews the given locks (values parallel to keys); marks in lost[] those no longer held.
 * 0 or ME_EIO. */
static int renew(rlocks_t *t, int n, char (*keys)[KEY_MAX], char (*values)[VALUE_MAX], int *lost)
{
    const char *argv[2 * RENEW_BATCH + 1];
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%" PRIu64, t->ttl);
    for (int i = 0; i < n; i++)
        argv[i] = keys[i], argv[n + 1 + i] = values[i];
    argv[n] = ttl;
    redisReply *rep = me_redis_eval(t->r, &renew_script, n, 2 * n + 1, argv);
    int ret = rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == (size_t)n ? 0 : ME_EIO;
    for (int i = 0; ret == 0 && i < n; i++)
        lost[i] = rep->element[i]->type != REDIS_REPLY_INTEGER || rep->element[i]->integer != 1;
    freeReplyObject(rep);
    return ret;
}

static int redis_check(void *be, const char *name, uint64_t fence)
{
    rlocks_t *t = be;
    char key[1][KEY_MAX], value[1][VALUE_MAX];
    int lost = 1, found = 0;
    pthread_mutex_lock(&t->lock);
    for (held_t *h = t->held; h != NULL; h = h->next)
        if (strcmp(h->name, name) == 0 && h->fence == fence && !h->lost) {
            snprintf(value[0], VALUE_MAX, "%s", h->value);
            found = 1;
            break;
        }
    pthread_mutex_unlock(&t->lock);
    if (!found) {
        const char *at = "commit";
        me_metric_add(lock_lost, &at, 1);
        return ME_ELOCKED;
    }
    key_of(t, name, key[0]);
    if (renew(t, 1, key, value, &lost) != 0)
        return ME_ELOCK_UNAVAILABLE; /* cannot tell: nothing is committed, the client comes back */
    if (lost) {
        const char *at = "commit";
        me_metric_add(lock_lost, &at, 1);
        me_log_warn(NULL, "locks: the lock of %s (fence %" PRIu64 ") expired while held; the commit is refused", name,
                    fence);
        return ME_ELOCKED;
    }
    return 0;
}

/* One round: every held lock not known lost is renewed, RENEW_BATCH per script. */
static void renew_all(rlocks_t *t)
{
    char keys[RENEW_BATCH][KEY_MAX], values[RENEW_BATCH][VALUE_MAX], names[RENEW_BATCH][ME_LOCK_NAME_MAX + 1];
    uint64_t fences[RENEW_BATCH];
    int lost[RENEW_BATCH];
    uint64_t after = 0; /* renew the entries past this many, next batch */
    for (;;) {
        int n = 0;
        uint64_t seen = 0;
        pthread_mutex_lock(&t->lock);
        for (held_t *h = t->held; h != NULL && n < RENEW_BATCH; h = h->next) {
            if (h->lost || seen++ < after)
                continue;
            key_of(t, h->name, keys[n]);
            snprintf(values[n], VALUE_MAX, "%s", h->value);
            snprintf(names[n], sizeof(names[n]), "%s", h->name);
            fences[n++] = h->fence;
        }
        pthread_mutex_unlock(&t->lock);
        if (n == 0 || renew(t, n, keys, values, lost) != 0)
            return; /* Redis down: the next round tries again; the commit's check decides */
        pthread_mutex_lock(&t->lock);
        for (int i = 0; i < n; i++) {
            if (!lost[i])
                continue;
            for (held_t *h = t->held; h != NULL; h = h->next)
                if (h->fence == fences[i] && strcmp(h->name, names[i]) == 0)
                    h->lost = 1;
            const char *at = "renewal";
            me_metric_add(lock_lost, &at, 1);
            me_log_warn(NULL, "locks: the lock of %s (fence %" PRIu64 ") was lost before its renewal", names[i],
                        fences[i]);
        }
        pthread_mutex_unlock(&t->lock);
        if (n < RENEW_BATCH)
            return;
        after += (uint64_t)n;
    }
}

static void *renew_loop(void *arg)
{
    rlocks_t *t = arg;
    pthread_setname_np(pthread_self(), "lock-renewer");
    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        int64_t until = me_clock_wall_ms() + (int64_t)(t->ttl / 3);
        struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000};
        while (!t->stopping && pthread_cond_timedwait(&t->wake, &t->lock, &ts) == 0)
            ;
        if (t->stopping)
            break;
        pthread_mutex_unlock(&t->lock);
        renew_all(t);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

static void redis_free(void *be)
{
    rlocks_t *t = be;
    if (t == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = 1;
    pthread_cond_broadcast(&t->wake);
    pthread_mutex_unlock(&t->lock);
    if (t->renewing)
        pthread_join(t->renewer, NULL);
    while (t->held != NULL) { /* none should be: the set is freed after its users */
        held_t *h = t->held;
        t->held = h->next;
        free(h);
    }
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static const me_lock_ops_t redis_ops = {"redis", redis_acquire, redis_release, redis_free, redis_check};

me_locks_t *me_locks_redis_new(me_redis_t *r, const char *prefix, uint64_t ttl_ms, char *err, size_t errlen)
{
    rlocks_t *t = calloc(1, sizeof(*t));
    if (t == NULL || strlen(prefix) > ME_REDIS_PREFIX_MAX) {
        free(t);
        snprintf(err, errlen, t == NULL ? "out of memory" : "redis.prefix is too long");
        return NULL;
    }
    t->r = r, t->ttl = ttl_ms;
    snprintf(t->prefix, sizeof(t->prefix), "%s", prefix);
    snprintf(t->fence_key, sizeof(t->fence_key), "%slock-fence", prefix);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, NULL);
    if (pthread_create(&t->renewer, NULL, renew_loop, t) != 0) {
        redis_free(t);
        snprintf(err, errlen, "cannot start the lock renewer thread");
        return NULL;
    }
    t->renewing = 1;
    me_locks_t *l = me_locks_new(&redis_ops, t);
    if (l == NULL)
        snprintf(err, errlen, "out of memory");
    return l;
}
