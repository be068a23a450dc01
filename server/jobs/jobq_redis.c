/* jobq_redis.c: the job queue backend on Redis Streams, shared by every instance. Per queue
 * "<prefix>q:<name>:..." three keys: a stream read by one consumer group (an entry per id
 * due now), a sorted set of ids waiting for a later time (moved to the stream when due, by
 * whichever pop comes first), and a hash id -> entry id ("d" while delayed) that keeps an id
 * in the queue at most once. Entries a worker took stay pending in the group until it says
 * done or retry; a worker heartbeats its running entries every claim_after / 3, so an entry
 * idle for claim_after belonged to a worker that died, and the next pop anywhere claims it
 * (XAUTOCLAIM). A push finds its id's record stale when the entry it names is gone (a Redis
 * failover lost it) and queues the id again; what Redis loses entirely, storage still holds
 * (jobs/, webhooks/), and the reconciler queues it again. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/jobs/jobq_backend.h"
#include "server/redis/redis.h"

#define KEY_MAX (ME_REDIS_PREFIX_MAX + 64)
#define ENTRY_MAX 48 /* "<ms>-<seq>" */
#define GROUP "workers"
#define BLOCK_MAX_MS 2000 /* a pop's longest wait on the server before it looks again */
#define STATS_EVERY_MS 2000
#define CHORES_EVERY_MS 250      /* due retries move to the stream, abandoned entries are claimed, this often */
#define CONSUMER_IDLE_MS 3600000 /* a consumer with nothing pending, unseen this long, is removed */

ME_GAUGE(queue_jobs, "mediaedge_queue_jobs",
         "Entries of a shared (Redis) queue by state: waiting (due, not yet taken), running (taken, not done), delayed "
         "(a retry's later time).",
         "queue,state")
ME_GAUGE(queue_oldest, "mediaedge_queue_oldest_waiting_seconds",
         "Age of the oldest entry of a shared (Redis) queue due and not yet taken (0 when none): the queue's lag.",
         "queue")
ME_COUNTER(queue_claimed, "mediaedge_queue_claimed_total",
           "Entries of a shared (Redis) queue taken over from a worker that stopped heartbeating (died, or froze).",
           "queue")

/* KEYS stream, delayed, ids; ARGV id, not_before, now. 1 queued, 0 already there. */
static me_redis_script_t push_script = {
    .source = "local e = redis.call('HGET', KEYS[3], ARGV[1])\n"
              "if e then\n"
              "  if e == 'd' then\n"
              "    if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end\n"
              "  elseif #redis.call('XRANGE', KEYS[1], e, e) > 0 then return 0 end\n"
              "end\n"
              "if tonumber(ARGV[2]) > tonumber(ARGV[3]) then\n"
              "  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])\n"
              "  redis.call('HSET', KEYS[3], ARGV[1], 'd')\n"
              "else\n"
              "  redis.call('HSET', KEYS[3], ARGV[1], redis.call('XADD', KEYS[1], '*', 'id', ARGV[1]))\n"
              "end\n"
              "return 1\n"};

/* KEYS stream, delayed, ids; ARGV now, at most how many. Moves the due ids to the stream;
 * answers the next due time, or -1. */
static me_redis_script_t promote_script = {
    .source = "local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
              "for _, id in ipairs(due) do\n"
              "  redis.call('ZREM', KEYS[2], id)\n"
              "  redis.call('HSET', KEYS[3], id, redis.call('XADD', KEYS[1], '*', 'id', id))\n"
              "end\n"
              "local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')\n"
              "if #first == 0 then return -1 end\n"
              "return tonumber(first[2])\n"};

/* KEYS stream, delayed, ids; ARGV group, entry, id, not_before ("" for done), now. The entry
 * leaves the stream; the id leaves the queue (done) or waits again (retry), unless its record
 * names another entry meanwhile (another worker took it over and queued it again). */
static me_redis_script_t finish_script = {
    .source = "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
              "redis.call('XDEL', KEYS[1], ARGV[2])\n"
              "if redis.call('HGET', KEYS[3], ARGV[3]) ~= ARGV[2] then return 0 end\n"
              "if ARGV[4] == '' then\n"
              "  redis.call('HDEL', KEYS[3], ARGV[3])\n"
              "elseif tonumber(ARGV[4]) > tonumber(ARGV[5]) then\n"
              "  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])\n"
              "  redis.call('HSET', KEYS[3], ARGV[3], 'd')\n"
              "else\n"
              "  redis.call('HSET', KEYS[3], ARGV[3], redis.call('XADD', KEYS[1], '*', 'id', ARGV[3]))\n"
              "end\n"
              "return 1\n"};

/* KEYS stream; ARGV group, consumer, entries... Resets the idle time of the entries still
 * pending for this consumer; answers how many were not (taken over by another). */
static me_redis_script_t heartbeat_script = {
    .source = "local lost = 0\n"
              "for i = 3, #ARGV do\n"
              "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
              "  if #p == 1 and p[1][2] == ARGV[2] then\n"
              "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')\n"
              "  else\n"
              "    lost = lost + 1\n"
              "  end\n"
              "end\n"
              "return lost\n"};

typedef struct running {
    char id[ME_JOBQ_ID_MAX + 1];
    char entry[ENTRY_MAX];
    struct running *next;
} running_t;

typedef struct {
    me_jobq_t super;
    me_redis_t *r;
    char name[32];
    char stream[KEY_MAX], delayed[KEY_MAX], ids[KEY_MAX];
    char consumer[128];
    char claim_idle[24]; /* claim_after in ms, as text */
    uint64_t claim_after;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    running_t *running;
    int closed;
    int64_t chores_at; /* me_clock_mono_ms() when a pop next moves due ids and claims */
    int *blocked; /* sockets of pops waiting on the server, -1 for a free slot */
    size_t nblocked;
    pthread_t keeper;
    int keeping;
} rq_t;

static int64_t now_ms(void)
{
    return me_clock_wall_ms();
}

static int ok_integer(const redisReply *rep)
{
    return rep != NULL && rep->type == REDIS_REPLY_INTEGER;
}

static void log_error_reply(rq_t *q, const char *what, const redisReply *rep)
{
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR)
        me_log_error(NULL, "queue %s: redis refused %s: %s", q->name, what, rep->str);
}

/* (Re)creates the consumer group, with its stream; 0 or ME_EIO. */
static int make_group(rq_t *q)
{
    redisReply *rep =
        me_redis_call(q->r, 6, (const char *[]){"XGROUP", "CREATE", q->stream, GROUP, "0", "MKSTREAM"}, NULL);
    int ret = rep != NULL && (rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "BUSYGROUP", 9) == 0) ? 0 : ME_EIO;
    if (ret != 0)
        log_error_reply(q, "XGROUP CREATE", rep);
    freeReplyObject(rep);
    return ret;
}

static int rq_push(me_jobq_t *_q, const char *id, int64_t not_before)
{
    rq_t *q = (rq_t *)_q;
    char nb[24], now[24];
    snprintf(nb, sizeof(nb), "%" PRId64, not_before);
    snprintf(now, sizeof(now), "%" PRId64, now_ms());
    redisReply *rep =
        me_redis_eval(q->r, &push_script, 3, 6, (const char *[]){q->stream, q->delayed, q->ids, id, nb, now});
    int ret = ok_integer(rep) ? 0 : ME_EIO;
    if (ret != 0)
        log_error_reply(q, "a push", rep);
    freeReplyObject(rep);
    return ret;
}

/* Moves due ids to the stream; *next is the next due time (ms since the epoch) or -1. */
static void promote(rq_t *q, int64_t *next)
{
    char now[24];
    snprintf(now, sizeof(now), "%" PRId64, now_ms());
    redisReply *rep =
        me_redis_eval(q->r, &promote_script, 3, 5, (const char *[]){q->stream, q->delayed, q->ids, now, "100"});
    *next = ok_integer(rep) ? (int64_t)rep->integer : -1;
    freeReplyObject(rep);
}

/* An entry [entry-id, [field, value, ...]] of ours: 1 with id and entry filled. */
static int parse_entry(const redisReply *e, char *id, char *entry)
{
    if (e == NULL || e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
        e->element[0]->len >= ENTRY_MAX)
        return 0;
    memcpy(entry, e->element[0]->str, e->element[0]->len + 1);
    const redisReply *f = e->element[1];
    if (f == NULL || f->type != REDIS_REPLY_ARRAY || f->elements != 2 || f->element[1]->type != REDIS_REPLY_STRING ||
        f->element[1]->len == 0 || f->element[1]->len > ME_JOBQ_ID_MAX || strcmp(f->element[0]->str, "id") != 0)
        return -1; /* not ours (or deleted meanwhile): acknowledged away */
    memcpy(id, f->element[1]->str, f->element[1]->len + 1);
    return 1;
}

/* Acknowledges and deletes an entry that is not a job of ours. */
static void discard_entry(rq_t *q, const char *entry)
{
    redisReply *rep = me_redis_call(q->r, 4, (const char *[]){"XACK", q->stream, GROUP, entry}, NULL);
    freeReplyObject(rep);
    rep = me_redis_call(q->r, 3, (const char *[]){"XDEL", q->stream, entry}, NULL);
    freeReplyObject(rep);
}

/* Records that this process runs id under entry: 0, or ME_ENOMEM. 1 when it runs id already:
 * Redis lost the entry and the id was queued again (by the reconciler), or this process stalled
 * past claim_after and one of its own pops took the entry over. The id does not run twice
 * here: the new entry becomes the running one's, so that its done or retry ends it. */
static int remember(rq_t *q, const char *id, const char *entry)
{
    char old[ENTRY_MAX] = "";
    int known = 0;
    pthread_mutex_lock(&q->lock);
    for (running_t *r = q->running; r != NULL && !known; r = r->next)
        if (strcmp(r->id, id) == 0) {
            known = 1;
            if (strcmp(r->entry, entry) != 0) {
                memcpy(old, r->entry, ENTRY_MAX);
                snprintf(r->entry, sizeof(r->entry), "%s", entry);
            }
        }
    pthread_mutex_unlock(&q->lock);
    if (known) {
        if (*old)
            discard_entry(q, old); /* gone with what Redis lost, most likely */
        me_log_info(NULL, "queue %s: %s came again while this process runs it; not run twice", q->name, id);
        return 1;
    }
    running_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return ME_ENOMEM;
    snprintf(r->id, sizeof(r->id), "%s", id);
    snprintf(r->entry, sizeof(r->entry), "%s", entry);
    pthread_mutex_lock(&q->lock);
    r->next = q->running, q->running = r;
    pthread_mutex_unlock(&q->lock);
    return 0;
}

/* Takes an entry idle for claim_after from a worker that stopped heartbeating: 1 with id and
 * entry filled, 0 when none. */
static int claim(rq_t *q, char *id, char *entry)
{
    redisReply *rep = me_redis_call(
        q->r, 8, (const char *[]){"XAUTOCLAIM", q->stream, GROUP, q->consumer, q->claim_idle, "0-0", "COUNT", "1"},
        NULL);
    int got = 0;
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2 &&
        rep->element[1]->type == REDIS_REPLY_ARRAY && rep->element[1]->elements > 0) {
        got = parse_entry(rep->element[1]->element[0], id, entry);
        if (got < 0 && rep->element[1]->element[0]->type == REDIS_REPLY_ARRAY)
            discard_entry(q, entry);
        if (got == 1) {
            me_metric_add(queue_claimed, (const char *[]){q->name}, 1);
            me_log_warn(NULL, "queue %s: %s taken over from a worker silent for %" PRIu64 " ms", q->name, id,
                        q->claim_after);
        }
    } else if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOGROUP", 7) == 0) {
        (void)make_group(q); /* the server lost the group (a failover, a flush): make it again */
    }
    freeReplyObject(rep);
    return got == 1;
}

static int is_closed(rq_t *q);

/* Registers or drops the socket of a pop about to wait on the server; -1 when closed. */
static int block_slot(rq_t *q, int fd)
{
    int slot = -1;
    pthread_mutex_lock(&q->lock);
    if (!q->closed) {
        for (size_t i = 0; i < q->nblocked && slot < 0; i++)
            if (q->blocked[i] < 0)
                slot = (int)i;
        if (slot < 0) {
            int *b = realloc(q->blocked, (q->nblocked + 1) * sizeof(*b));
            if (b != NULL)
                q->blocked = b, slot = (int)q->nblocked++;
        }
        if (slot >= 0)
            q->blocked[slot] = fd;
    }
    pthread_mutex_unlock(&q->lock);
    return slot;
}

static void unblock_slot(rq_t *q, int slot)
{
    pthread_mutex_lock(&q->lock);
    q->blocked[slot] = -1;
    pthread_mutex_unlock(&q->lock);
}

/* Waits on the server at most wait_ms for a new entry: 1 with id and entry filled, 0 when
 * none came, -1 when closed or Redis failed. */
static int read_new(rq_t *q, int64_t wait_ms, char *id, char *entry)
{
    char block[24];
    redisContext *c = me_redis_take(q->r);
    if (c == NULL)
        return -1;
    int slot = block_slot(q, c->fd);
    if (slot < 0) {
        me_redis_put(q->r, c, 0);
        return -1;
    }
    snprintf(block, sizeof(block), "%" PRId64, wait_ms);
    redisReply *rep = me_redis_call_on(q->r, c, (uint64_t)wait_ms, 11,
                                       (const char *[]){"XREADGROUP", "GROUP", GROUP, q->consumer, "COUNT", "1",
                                                        "BLOCK", block, "STREAMS", q->stream, ">"});
    unblock_slot(q, slot);
    int got = 0;
    /* [[stream, [entry]]], or nil when the wait ended empty */
    if (rep != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2 &&
        rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY && rep->element[0]->element[1]->elements == 1) {
        got = parse_entry(rep->element[0]->element[1]->element[0], id, entry);
        if (got < 0) {
            discard_entry(q, entry);
            got = 0;
        }
    } else if (rep != NULL && rep->type == REDIS_REPLY_ERROR) {
        if (strncmp(rep->str, "NOGROUP", 7) == 0)
            (void)make_group(q);
        else
            log_error_reply(q, "XREADGROUP", rep);
        got = -1;
    } else if (rep == NULL) {
        if (!is_closed(q))
            me_log_warn(NULL, "queue %s: no answer from redis (%s)", q->name, c->errstr);
        got = -1;
    }
    me_redis_put(q->r, c, rep == NULL);
    freeReplyObject(rep);
    return got;
}

static int is_closed(rq_t *q)
{
    pthread_mutex_lock(&q->lock);
    int closed = q->closed;
    pthread_mutex_unlock(&q->lock);
    return closed;
}

/* Sleeps ms unless closed first. */
static void pause_ms(rq_t *q, int64_t ms)
{
    int64_t until = now_ms() + ms;
    struct timespec ts = {.tv_sec = until / 1000, .tv_nsec = (long)(until % 1000) * 1000000};
    pthread_mutex_lock(&q->lock);
    while (!q->closed && pthread_cond_timedwait(&q->wake, &q->lock, &ts) == 0)
        ;
    pthread_mutex_unlock(&q->lock);
}

/* Whether this pop does the queue's chores (moving due ids, claiming abandoned entries) now:
 * one pop of the process at most every CHORES_EVERY_MS, so that a job costs the other pops
 * two round trips (read, done) rather than four. *next_chores: when they are due next. */
static int chores_due(rq_t *q, int64_t *next_chores)
{
    int64_t now = me_clock_mono_ms();
    pthread_mutex_lock(&q->lock);
    int due = now >= q->chores_at;
    if (due)
        q->chores_at = now + CHORES_EVERY_MS;
    *next_chores = q->chores_at;
    pthread_mutex_unlock(&q->lock);
    return due;
}

static int rq_pop(me_jobq_t *_q, char *id)
{
    rq_t *q = (rq_t *)_q;
    char entry[ENTRY_MAX];
    while (!is_closed(q)) {
        int64_t next = -1, next_chores, wait = BLOCK_MAX_MS;
        int got = 0;
        if (chores_due(q, &next_chores)) {
            promote(q, &next);
            got = claim(q, id, entry) ? 1 : 0;
            pthread_mutex_lock(&q->lock);
            if (next >= 0 && next - now_ms() < CHORES_EVERY_MS) /* a retry due sooner: look then */
                q->chores_at = me_clock_mono_ms() + (next - now_ms() > 0 ? next - now_ms() : 0);
            next_chores = q->chores_at;
            pthread_mutex_unlock(&q->lock);
        }
        if (!got) {
            int64_t until = next_chores - me_clock_mono_ms();
            wait = until < 1 ? 1 : until < wait ? until : wait;
            got = read_new(q, wait, id, entry);
        }
        if (got == 1) {
            int known = remember(q, id, entry);
            if (known == 0)
                return 0;
            got = known == 1 ? 0 : -1; /* out of memory: the entry stays pending, and is claimed later */
        }
        if (got < 0 && !is_closed(q))
            pause_ms(q, 500); /* Redis is down: do not spin */
    }
    return ME_EDRAINING;
}

/* Forgets the running entry of id; 1 with entry filled when there was one. */
static int forget(rq_t *q, const char *id, char *entry)
{
    int found = 0;
    pthread_mutex_lock(&q->lock);
    for (running_t **p = &q->running; *p != NULL; p = &(*p)->next)
        if (strcmp((*p)->id, id) == 0) {
            running_t *r = *p;
            *p = r->next;
            memcpy(entry, r->entry, ENTRY_MAX);
            free(r);
            found = 1;
            break;
        }
    pthread_mutex_unlock(&q->lock);
    return found;
}

static void finish(rq_t *q, const char *id, const char *not_before)
{
    char entry[ENTRY_MAX], now[24];
    if (!forget(q, id, entry))
        return;
    snprintf(now, sizeof(now), "%" PRId64, now_ms());
    redisReply *rep = me_redis_eval(q->r, &finish_script, 3, 8,
                                    (const char *[]){q->stream, q->delayed, q->ids, GROUP, entry, id, not_before, now});
    if (!ok_integer(rep)) /* the entry stays pending: another worker claims it after claim_after */
        me_log_warn(NULL, "queue %s: could not mark %s %s; it runs again after queue.claim_after", q->name, id,
                    *not_before ? "for a retry" : "done");
    freeReplyObject(rep);
}

static void rq_done(me_jobq_t *_q, const char *id)
{
    finish((rq_t *)_q, id, "");
}

static void rq_retry(me_jobq_t *_q, const char *id, int64_t not_before)
{
    char nb[24];
    snprintf(nb, sizeof(nb), "%" PRId64, not_before > 0 ? not_before : 1);
    finish((rq_t *)_q, id, nb);
}

static size_t rq_length(me_jobq_t *_q)
{
    rq_t *q = (rq_t *)_q;
    redisReply *rep = me_redis_call(q->r, 2, (const char *[]){"HLEN", q->ids}, NULL);
    size_t n = ok_integer(rep) && rep->integer > 0 ? (size_t)rep->integer : 0;
    freeReplyObject(rep);
    return n;
}

static void rq_close(me_jobq_t *_q)
{
    rq_t *q = (rq_t *)_q;
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    for (size_t i = 0; i < q->nblocked; i++) /* wakes the pops waiting on the server */
        if (q->blocked[i] >= 0)
            shutdown(q->blocked[i], SHUT_RDWR);
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->lock);
}

/* ---- the keeper: heartbeats, statistics, old consumers ---- */

#define HEARTBEAT_BATCH 48 /* entries per script: me_redis_eval() takes 64 arguments */

/* Resets the idle time of every entry this process runs, HEARTBEAT_BATCH per script. */
static void heartbeat(rq_t *q)
{
    const char *argv[HEARTBEAT_BATCH + 3];
    char entries[HEARTBEAT_BATCH][ENTRY_MAX];
    for (int skip = 0;; skip += HEARTBEAT_BATCH) {
        int n = 0, seen = 0;
        pthread_mutex_lock(&q->lock);
        for (running_t *r = q->running; r != NULL && n < HEARTBEAT_BATCH; r = r->next)
            if (seen++ >= skip)
                memcpy(entries[n++], r->entry, ENTRY_MAX);
        pthread_mutex_unlock(&q->lock);
        if (n == 0)
            return;
        argv[0] = q->stream, argv[1] = GROUP, argv[2] = q->consumer;
        for (int i = 0; i < n; i++)
            argv[3 + i] = entries[i];
        redisReply *rep = me_redis_eval(q->r, &heartbeat_script, 1, n + 3, argv);
        if (ok_integer(rep) && rep->integer > 0)
            me_log_warn(NULL, "queue %s: %lld running entries were taken over by other workers (this one stalled)",
                        q->name, (long long)rep->integer);
        freeReplyObject(rep);
        if (n < HEARTBEAT_BATCH)
            return;
    }
}

static const redisReply *field(const redisReply *map, const char *name)
{
    if (map == NULL || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2)
        if (map->element[i]->type == REDIS_REPLY_STRING && strcmp(map->element[i]->str, name) == 0)
            return map->element[i + 1];
    return NULL;
}

/* The gauges, and consumers long gone (their pending entries were claimed) removed. */
static void stats(rq_t *q)
{
    long long len = 0, pending = 0, delayed = 0;
    double oldest = 0;
    char last[ENTRY_MAX] = "0-0";
    redisReply *rep = me_redis_call(q->r, 2, (const char *[]){"XLEN", q->stream}, NULL);
    if (!ok_integer(rep)) {
        freeReplyObject(rep);
        return;
    }
    len = rep->integer;
    freeReplyObject(rep);
    if ((rep = me_redis_call(q->r, 2, (const char *[]){"ZCARD", q->delayed}, NULL)) != NULL && ok_integer(rep))
        delayed = rep->integer;
    freeReplyObject(rep);
    rep = me_redis_call(q->r, 3, (const char *[]){"XINFO", "GROUPS", q->stream}, NULL);
    for (size_t i = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *name = field(rep->element[i], "name"), *p = field(rep->element[i], "pending"),
                         *l = field(rep->element[i], "last-delivered-id");
        if (name != NULL && name->type == REDIS_REPLY_STRING && strcmp(name->str, GROUP) == 0) {
            pending = p != NULL && p->type == REDIS_REPLY_INTEGER ? p->integer : 0;
            if (l != NULL && l->type == REDIS_REPLY_STRING && l->len + 2 < sizeof(last))
                snprintf(last, sizeof(last), "(%s", l->str);
        }
    }
    freeReplyObject(rep);
    /* done entries are deleted: the stream holds the waiting and the running ones */
    if ((rep = me_redis_call(q->r, 6, (const char *[]){"XRANGE", q->stream, last, "+", "COUNT", "1"}, NULL)) != NULL &&
        rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 && rep->element[0]->type == REDIS_REPLY_ARRAY &&
        rep->element[0]->elements >= 1 && rep->element[0]->element[0]->type == REDIS_REPLY_STRING) {
        double at = strtod(rep->element[0]->element[0]->str, NULL);
        oldest = at > 0 && now_ms() > at ? ((double)now_ms() - at) / 1000.0 : 0;
    }
    freeReplyObject(rep);
    long long waiting = len - pending > 0 ? len - pending : 0;
    me_metric_set(queue_jobs, (const char *[]){q->name, "waiting"}, (double)waiting);
    me_metric_set(queue_jobs, (const char *[]){q->name, "running"}, (double)pending);
    me_metric_set(queue_jobs, (const char *[]){q->name, "delayed"}, (double)delayed);
    me_metric_set(queue_oldest, (const char *[]){q->name}, waiting > 0 ? oldest : 0);

    rep = me_redis_call(q->r, 4, (const char *[]){"XINFO", "CONSUMERS", q->stream, GROUP}, NULL);
    for (size_t i = 0; rep != NULL && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *name = field(rep->element[i], "name"), *p = field(rep->element[i], "pending"),
                         *idle = field(rep->element[i], "idle");
        if (name != NULL && name->type == REDIS_REPLY_STRING && p != NULL && p->type == REDIS_REPLY_INTEGER &&
            p->integer == 0 && idle != NULL && idle->type == REDIS_REPLY_INTEGER && idle->integer > CONSUMER_IDLE_MS) {
            redisReply *d =
                me_redis_call(q->r, 5, (const char *[]){"XGROUP", "DELCONSUMER", q->stream, GROUP, name->str}, NULL);
            freeReplyObject(d);
        }
    }
    freeReplyObject(rep);
}

static void *keep(void *arg)
{
    rq_t *q = arg;
    int64_t beat = (int64_t)q->claim_after / 3, last_stats = 0;
    pthread_setname_np(pthread_self(), "queue-keeper");
    while (!is_closed(q)) {
        heartbeat(q);
        if (me_clock_mono_ms() - last_stats >= STATS_EVERY_MS) {
            stats(q);
            last_stats = me_clock_mono_ms();
        }
        pause_ms(q, beat < STATS_EVERY_MS ? beat : STATS_EVERY_MS);
    }
    return NULL;
}

static void rq_free(me_jobq_t *_q)
{
    rq_t *q = (rq_t *)_q;
    rq_close(_q);
    if (q->keeping)
        pthread_join(q->keeper, NULL);
    while (q->running != NULL) { /* never done: pending, for another worker after claim_after */
        running_t *r = q->running;
        q->running = r->next;
        free(r);
    }
    free(q->blocked);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->wake);
    free(q);
}

static const me_jobq_ops_t redis_ops = {
    .push = rq_push,
    .pop = rq_pop,
    .done = rq_done,
    .retry = rq_retry,
    .length = rq_length,
    .close = rq_close,
    .free = rq_free,
};

me_jobq_t *me_jobq_redis_new(me_redis_t *r, const char *prefix, const char *name, uint64_t claim_after, char *err,
                             size_t errlen)
{
    char host[64] = "", rnd[9];
    rq_t *q = calloc(1, sizeof(*q));
    if (q == NULL || strlen(name) >= sizeof(q->name) || strlen(prefix) > ME_REDIS_PREFIX_MAX ||
        me_redis_random_hex(rnd, 4) != 0) {
        free(q);
        snprintf(err, errlen, "cannot make the queue %s", name);
        return NULL;
    }
    q->super.ops = &redis_ops;
    q->r = r, q->claim_after = claim_after;
    snprintf(q->name, sizeof(q->name), "%s", name);
    snprintf(q->stream, sizeof(q->stream), "%sq:%s:stream", prefix, name);
    snprintf(q->delayed, sizeof(q->delayed), "%sq:%s:delayed", prefix, name);
    snprintf(q->ids, sizeof(q->ids), "%sq:%s:ids", prefix, name);
    snprintf(q->claim_idle, sizeof(q->claim_idle), "%" PRIu64, claim_after);
    (void)gethostname(host, sizeof(host) - 1); /* the pod's name on Kubernetes: who holds what shows in XPENDING */
    snprintf(q->consumer, sizeof(q->consumer), "%s-%d-%s", host, (int)getpid(), rnd);
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    if (make_group(q) != 0) {
        snprintf(err, errlen, "queue %s: cannot create its stream's consumer group in Redis", name);
        rq_free(&q->super);
        return NULL;
    }
    if (!(q->keeping = pthread_create(&q->keeper, NULL, keep, q) == 0)) {
        snprintf(err, errlen, "queue %s: cannot start its keeper thread", name);
        rq_free(&q->super);
        return NULL;
    }
    return &q->super;
}
