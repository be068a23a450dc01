/* redis.h: a small Redis client over hiredis for the parts that several instances share
 * (upload locks, job queues, leases): URL parsing, a pool of blocking connections that any
 * thread may borrow, timeouts, reconnection, and Lua scripts run by their SHA-1 (EVALSHA,
 * falling back to EVAL when the server does not know them yet, after a restart or a
 * failover).
 *
 * Replies are hiredis's redisReply (the caller frees them with freeReplyObject()). Calls
 * block for at most the configured timeout: run them on pool or worker threads, never on an
 * event loop, in a process that ignores SIGPIPE (the server does: hiredis writes to sockets
 * the server may have closed). The URL's password never reaches a log line: me_redis_url_redacted() gives the
 * form to print. */
#ifndef ME_REDIS_H
#define ME_REDIS_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis/hiredis.h>
#include "server/core/error.h"

#define ME_REDIS_HOST_MAX 255
#define ME_REDIS_PATH_MAX 107 /* sun_path */
#define ME_REDIS_CRED_MAX 255
#define ME_REDIS_PREFIX_MAX 64

/* A parsed URL: redis://[[user]:password@]host[:port][/db], or unix:///path/to.sock[?db=N].
 * host is "" for a unix socket (path set instead). */
typedef struct {
    char host[ME_REDIS_HOST_MAX + 1];
    int port;
    char path[ME_REDIS_PATH_MAX + 1];
    char user[ME_REDIS_CRED_MAX + 1];
    char password[ME_REDIS_CRED_MAX + 1];
    int db;
} me_redis_url_t;

/* Parses url into *out. 0, or ME_EINVAL with err saying what is wrong (never quoting the
 * password). rediss:// is refused: Debian 12's hiredis (0.14) has no TLS. Percent-escapes
 * in the user and password are decoded. */
int me_redis_url_parse(const char *url, me_redis_url_t *out, char *err, size_t errlen) ME_MUST_CHECK;

/* "redis://host:port/db" or "unix:///path?db=N", without credentials: for logs. */
void me_redis_url_redacted(const me_redis_url_t *u, char *out, size_t len);

typedef struct {
    uint64_t connect_timeout; /* ms */
    uint64_t timeout;         /* ms for one command's answer */
    int max_idle;             /* connections kept open between calls */
} me_redis_options_t;

typedef struct me_redis me_redis_t;

/* A pool for url (copied). Connects once to check that the server answers (PING, after AUTH
 * and SELECT): NULL with err filled when it does not, or when out of memory. */
me_redis_t *me_redis_new(const me_redis_url_t *url, const me_redis_options_t *opt, char *err, size_t errlen);

/* Closes every idle connection and frees r; NULL is fine. No call may be running. */
void me_redis_free(me_redis_t *r);

/* Runs one command (argv[0..argc), each of lens[i] bytes, or NUL-terminated when lens is
 * NULL) on a pooled connection. Returns the reply (the caller frees it; it may be an error
 * reply: REDIS_REPLY_ERROR), or NULL when the server could not be reached or did not answer
 * in time. A pooled connection found dead (the server restarted, or closed it idle) is
 * replaced and the command sent once more: a command sent on a dead socket never ran. */
redisReply *me_redis_call(me_redis_t *r, int argc, const char **argv, const size_t *lens);

/* The same with printf-like arguments (hiredis's format: %s, %b with a length, %lld). */
redisReply *me_redis_callf(me_redis_t *r, const char *fmt, ...);

/* A Lua script, run by its SHA-1. Define them static, with their source; the SHA-1 is
 * computed at their first use. */
typedef struct {
    const char *source;
    char sha[41];
} me_redis_script_t;

/* EVALSHA script with nkeys keys then the other args (argv[0..argc), NUL-terminated);
 * EVAL when the server answers NOSCRIPT. Returns as me_redis_call(). */
redisReply *me_redis_eval(me_redis_t *r, me_redis_script_t *script, int nkeys, int argc, const char **argv);

/* A connection of one's own, for a command that blocks on the server (XREADGROUP BLOCK):
 * NULL when none could be made. Give it back with me_redis_put(); broken is 1 when it must
 * not be reused. */
redisContext *me_redis_take(me_redis_t *r);
void me_redis_put(me_redis_t *r, redisContext *c, int broken);

/* Sends one command on c, waiting for its answer at most wait_ms (plus the pool's timeout).
 * Returns the reply, or NULL (c is then broken; nothing is logged: the caller knows whether
 * it closed c's socket itself). */
redisReply *me_redis_call_on(me_redis_t *r, redisContext *c, uint64_t wait_ms, int argc, const char **argv);

/* Random hex (2 x bytes characters + NUL into out): owner tokens, consumer names. 0 or ME_EIO. */
int me_redis_random_hex(char *out, size_t bytes) ME_MUST_CHECK;

/* Calls that failed (no answer, or a connection that could not be made) so far. */
uint64_t me_redis_failures(me_redis_t *r);

#endif
