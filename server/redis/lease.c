/* lease.c: leases in Redis: a key set if absent with an owner token and an expiry, renewed by its owner. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/redis/lease.h"

/* KEYS[1] the lease; ARGV[1] the owner, ARGV[2] the TTL in ms. */
static me_redis_script_t hold_script = {
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
              "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
              "  return 1\n"
              "end\n"
              "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end\n"
              "return 0\n"};

static me_redis_script_t give_back_script = {
    .source = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
              "return 0\n"};

struct me_lease {
    me_redis_t *r;
    char key[ME_REDIS_PREFIX_MAX + 80];
    char owner[33];
    char ttl[24];
    int held;
};

me_lease_t *me_lease_new(me_redis_t *r, const char *prefix, const char *name, uint64_t ttl_ms)
{
    me_lease_t *l = calloc(1, sizeof(*l));
    if (l == NULL || strlen(prefix) > ME_REDIS_PREFIX_MAX || strlen(name) > 64 ||
        me_redis_random_hex(l->owner, 16) != 0) {
        free(l);
        return NULL;
    }
    l->r = r;
    snprintf(l->key, sizeof(l->key), "%slease:%s", prefix, name);
    snprintf(l->ttl, sizeof(l->ttl), "%" PRIu64, ttl_ms);
    return l;
}

int me_lease_hold(me_lease_t *l)
{
    redisReply *rep = me_redis_eval(l->r, &hold_script, 1, 3, (const char *[]){l->key, l->owner, l->ttl});
    int ret = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : ME_EIO;
    freeReplyObject(rep);
    l->held = ret == 1;
    return ret;
}

void me_lease_free(me_lease_t *l)
{
    if (l == NULL)
        return;
    if (l->held)
        freeReplyObject(me_redis_eval(l->r, &give_back_script, 1, 2, (const char *[]){l->key, l->owner}));
    free(l);
}
