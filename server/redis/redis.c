/* redis.c: URL parsing, the connection pool, calls with one reconnection, and scripts by SHA-1. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <openssl/sha.h>
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/redis/redis.h"

#define LOG_EVERY_MS 10000 /* a Redis outage logs one line per this, not one per call */

struct me_redis {
    me_redis_url_t url;
    me_redis_options_t opt;
    char shown[ME_REDIS_HOST_MAX + ME_REDIS_PATH_MAX + 32]; /* the URL without credentials */
    pthread_mutex_t lock;
    redisContext **idle; /* opt.max_idle connections at most */
    int nidle;
    uint64_t failures;
    int64_t logged_at; /* me_clock_mono_ms() of the last outage line */
};

/* ---- URLs ---- */

static int hexval(int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Copies [s, s + n) into out (size bytes) decoding %XX. 0, or -1 when it does not fit or a
 * %-escape is malformed. */
static int unescape(const char *s, size_t n, char *out, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return -1;
            c = hexval(s[i + 1]) * 16 + hexval(s[i + 2]);
            i += 2;
        }
        if (c == 0 || o + 1 >= size)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* A decimal number in [min, max] spelling all of [s, s + n). */
static int number(const char *s, size_t n, int min, int max, int *out)
{
    long v = 0;
    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

int me_redis_url_parse(const char *url, me_redis_url_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->port = 6379;
    if (strncmp(url, "rediss://", 9) == 0) {
        snprintf(err, errlen,
                 "rediss:// (TLS) is not supported: Debian 12's hiredis 0.14 has no TLS; reach Redis "
                 "on a private network, or through a local TLS tunnel with redis://");
        return ME_EINVAL;
    }
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7, *q = strchr(path, '?');
        size_t n = q != NULL ? (size_t)(q - path) : strlen(path);
        if (n == 0 || path[0] != '/' || n > ME_REDIS_PATH_MAX) {
            snprintf(err, errlen, "a unix:// Redis URL needs an absolute socket path of at most %d bytes",
                     ME_REDIS_PATH_MAX);
            return ME_EINVAL;
        }
        memcpy(out->path, path, n);
        if (q != NULL && (strncmp(q, "?db=", 4) != 0 || number(q + 4, strlen(q + 4), 0, 65535, &out->db) != 0)) {
            snprintf(err, errlen, "a unix:// Redis URL takes only ?db=<number>");
            return ME_EINVAL;
        }
        return 0;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "a Redis URL is redis://[[user]:password@]host[:port][/db] or unix:///path[?db=N]");
        return ME_EINVAL;
    }
    const char *p = url + 8, *end = p + strcspn(p, "/?#"), *at = NULL;
    for (const char *s = p; s < end; s++)
        if (*s == '@')
            at = s; /* the last one: a password may hold '@' only escaped, but be lenient */
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL) { /* redis://password@host, as some providers write it */
            if (unescape(p, (size_t)(at - p), out->password, sizeof(out->password)) != 0)
                goto bad_credentials;
        } else if (unescape(p, (size_t)(colon - p), out->user, sizeof(out->user)) != 0 ||
                   unescape(colon + 1, (size_t)(at - colon - 1), out->password, sizeof(out->password)) != 0) {
            goto bad_credentials;
        }
        p = at + 1;
    }
    const char *hend = end;
    if (*p == '[') { /* [v6]:port */
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (close == NULL) {
            snprintf(err, errlen, "a Redis URL's IPv6 address lacks its ']'");
            return ME_EINVAL;
        }
        if ((size_t)(close - p - 1) > ME_REDIS_HOST_MAX || close == p + 1)
            goto bad_host;
        memcpy(out->host, p + 1, (size_t)(close - p - 1));
        hend = close + 1;
        if (hend < end && *hend != ':')
            goto bad_host;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        hend = colon != NULL ? colon : end;
        if (hend == p || (size_t)(hend - p) > ME_REDIS_HOST_MAX)
            goto bad_host;
        memcpy(out->host, p, (size_t)(hend - p));
        for (const char *s = out->host; *s; s++)
            if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-' && *s != '_')
                goto bad_host;
    }
    if (hend < end && number(hend + 1, (size_t)(end - hend - 1), 1, 65535, &out->port) != 0) {
        snprintf(err, errlen, "a Redis URL's port must be 1..65535");
        return ME_EINVAL;
    }
    if (*end == '/' && end[1] != '\0' && number(end + 1, strlen(end + 1), 0, 65535, &out->db) != 0) {
        snprintf(err, errlen, "a Redis URL's path is its database number (/0, /1, ...)");
        return ME_EINVAL;
    }
    if (*end == '?' || *end == '#') {
        snprintf(err, errlen, "a redis:// URL takes no query or fragment");
        return ME_EINVAL;
    }
    return 0;
bad_host:
    snprintf(err, errlen, "a Redis URL needs a host name or address (letters, digits, '.', '-', '_', or [IPv6])");
    return ME_EINVAL;
bad_credentials:
    memset(out, 0, sizeof(*out));
    snprintf(err, errlen, "a Redis URL's user or password is too long (%d bytes at most) or wrongly %%-escaped",
             ME_REDIS_CRED_MAX);
    return ME_EINVAL;
}

void me_redis_url_redacted(const me_redis_url_t *u, char *out, size_t len)
{
    if (u->path[0] != '\0')
        snprintf(out, len, "unix://%s?db=%d", u->path, u->db);
    else
        snprintf(out, len, strchr(u->host, ':') != NULL ? "redis://[%s]:%d/%d" : "redis://%s:%d/%d", u->host, u->port,
                 u->db);
}

/* ---- connections ---- */

static struct timeval tv_of(uint64_t ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* Logs what went wrong with Redis, at most once per LOG_EVERY_MS. */
static void outage(me_redis_t *r, const char *what, const char *detail)
{
    int64_t now = me_clock_mono_ms();
    pthread_mutex_lock(&r->lock);
    r->failures++;
    int log = r->logged_at == 0 || now - r->logged_at >= LOG_EVERY_MS;
    if (log)
        r->logged_at = now;
    pthread_mutex_unlock(&r->lock);
    if (log)
        me_log_warn(NULL, "redis %s: %s: %s", r->shown, what, detail);
}

/* Runs a set-up command; 0 when it was answered without error. */
static int setup(redisContext *c, int argc, const char **argv, char *why, size_t whylen)
{
    redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
    int ok = rep != NULL && rep->type != REDIS_REPLY_ERROR;
    if (!ok) /* the server's words, which never echo the password back */
        snprintf(why, whylen, "%s: %s", argv[0], rep != NULL ? rep->str : c->errstr);
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

/* A new connection, authenticated and on the URL's database; NULL (logged) when none. */
static redisContext *connect_one(me_redis_t *r, char *why, size_t whylen)
{
    const me_redis_url_t *u = &r->url;
    struct timeval ct = tv_of(r->opt.connect_timeout);
    redisContext *c =
        u->path[0] != '\0' ? redisConnectUnixWithTimeout(u->path, ct) : redisConnectWithTimeout(u->host, u->port, ct);
    char db[16];
    if (c == NULL || c->err != 0) {
        snprintf(why, whylen, "cannot connect: %s", c != NULL ? c->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(c, tv_of(r->opt.timeout)) != REDIS_OK) {
        snprintf(why, whylen, "cannot set the timeout");
        goto fail;
    }
    if (u->path[0] == '\0')
        (void)redisEnableKeepAlive(c);
    if (u->password[0] != '\0' &&
        (u->user[0] != '\0' ? setup(c, 3, (const char *[]){"AUTH", u->user, u->password}, why, whylen)
                            : setup(c, 2, (const char *[]){"AUTH", u->password}, why, whylen)) != 0)
        goto fail;
    snprintf(db, sizeof(db), "%d", u->db);
    if (u->db != 0 && setup(c, 2, (const char *[]){"SELECT", db}, why, whylen) != 0)
        goto fail;
    return c;
fail:
    if (c != NULL)
        redisFree(c);
    return NULL;
}

/* An idle connection (*reused 1) or a new one; NULL when none could be made (logged). */
static redisContext *take(me_redis_t *r, int *reused)
{
    char why[256];
    pthread_mutex_lock(&r->lock);
    redisContext *c = r->nidle > 0 ? r->idle[--r->nidle] : NULL;
    pthread_mutex_unlock(&r->lock);
    *reused = c != NULL;
    if (c == NULL && (c = connect_one(r, why, sizeof(why))) == NULL)
        outage(r, "no connection", why);
    return c;
}

redisContext *me_redis_take(me_redis_t *r)
{
    int reused;
    return take(r, &reused);
}

void me_redis_put(me_redis_t *r, redisContext *c, int broken)
{
    if (c == NULL)
        return;
    if (!broken && c->err == 0) {
        pthread_mutex_lock(&r->lock);
        if (r->nidle < r->opt.max_idle) {
            r->idle[r->nidle++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&r->lock);
    }
    if (c != NULL)
        redisFree(c);
}

/* Closes every idle connection: after one was found closed by the server (it restarted), the
 * others, as old, are too. */
static void drop_idle(me_redis_t *r)
{
    pthread_mutex_lock(&r->lock);
    while (r->nidle > 0)
        redisFree(r->idle[--r->nidle]);
    pthread_mutex_unlock(&r->lock);
}

/* A pooled connection that the server closed meanwhile: the command never reached it. */
static int stale(const redisContext *c, int err_no)
{
    return c->err == REDIS_ERR_EOF || (c->err == REDIS_ERR_IO && (err_no == ECONNRESET || err_no == EPIPE));
}

redisReply *me_redis_call(me_redis_t *r, int argc, const char **argv, const size_t *lens)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused;
        redisContext *c = take(r, &reused);
        if (c == NULL)
            return NULL;
        errno = 0;
        redisReply *rep = redisCommandArgv(c, argc, argv, lens);
        int err_no = errno;
        if (rep != NULL) {
            me_redis_put(r, c, 0);
            return rep;
        }
        int again = attempt == 0 && reused && stale(c, err_no);
        if (!again)
            outage(r, argv[0], c->errstr);
        me_redis_put(r, c, 1);
        if (!again)
            break;
        drop_idle(r); /* the retry gets a new connection */
    }
    return NULL;
}

redisReply *me_redis_callf(me_redis_t *r, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused;
        redisContext *c = take(r, &reused);
        if (c == NULL)
            return NULL;
        va_list ap;
        va_start(ap, fmt);
        errno = 0;
        redisReply *rep = redisvCommand(c, fmt, ap);
        int err_no = errno;
        va_end(ap);
        if (rep != NULL) {
            me_redis_put(r, c, 0);
            return rep;
        }
        int again = attempt == 0 && reused && stale(c, err_no);
        if (!again)
            outage(r, "command", c->errstr);
        me_redis_put(r, c, 1);
        if (!again)
            break;
        drop_idle(r); /* the retry gets a new connection */
    }
    return NULL;
}

redisReply *me_redis_call_on(me_redis_t *r, redisContext *c, uint64_t wait_ms, int argc, const char **argv)
{
    if (wait_ms > 0 && redisSetTimeout(c, tv_of(r->opt.timeout + wait_ms)) != REDIS_OK)
        return NULL;
    redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
    if (rep != NULL && wait_ms > 0 && redisSetTimeout(c, tv_of(r->opt.timeout)) != REDIS_OK)
        c->err = REDIS_ERR_OTHER; /* not to be reused with the long timeout */
    return rep;
}

/* ---- scripts ---- */

static void script_sha(me_redis_t *r, me_redis_script_t *s)
{
    pthread_mutex_lock(&r->lock);
    if (s->sha[0] == '\0') {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)s->source, strlen(s->source), md);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
    }
    pthread_mutex_unlock(&r->lock);
}

#define EVAL_ARGS_MAX 64

redisReply *me_redis_eval(me_redis_t *r, me_redis_script_t *s, int nkeys, int argc, const char **argv)
{
    const char *args[EVAL_ARGS_MAX + 3];
    char n[16];
    if (argc > EVAL_ARGS_MAX)
        return NULL;
    script_sha(r, s);
    snprintf(n, sizeof(n), "%d", nkeys);
    args[0] = "EVALSHA", args[1] = s->sha, args[2] = n;
    memcpy(args + 3, argv, sizeof(*argv) * (size_t)argc);
    redisReply *rep = me_redis_call(r, argc + 3, args, NULL);
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(rep);
        args[0] = "EVAL", args[1] = s->source; /* loads it too, for the next EVALSHA */
        rep = me_redis_call(r, argc + 3, args, NULL);
    }
    return rep;
}

/* ---- the pool ---- */

me_redis_t *me_redis_new(const me_redis_url_t *url, const me_redis_options_t *opt, char *err, size_t errlen)
{
    char why[256];
    me_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->idle = calloc((size_t)(opt->max_idle > 0 ? opt->max_idle : 1), sizeof(*r->idle))) == NULL) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->url = *url, r->opt = *opt;
    me_redis_url_redacted(url, r->shown, sizeof(r->shown));
    pthread_mutex_init(&r->lock, NULL);
    redisContext *c = connect_one(r, why, sizeof(why));
    redisReply *rep = c != NULL ? redisCommand(c, "PING") : NULL;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis %s: %s", r->shown, c == NULL ? why : rep != NULL ? rep->str : c->errstr);
        freeReplyObject(rep);
        if (c != NULL)
            redisFree(c);
        me_redis_free(r);
        return NULL;
    }
    freeReplyObject(rep);
    me_redis_put(r, c, 0);
    return r;
}

void me_redis_free(me_redis_t *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->nidle; i++)
        redisFree(r->idle[i]);
    free(r->idle);
    pthread_mutex_destroy(&r->lock);
    explicit_bzero(&r->url, sizeof(r->url));
    free(r);
}

uint64_t me_redis_failures(me_redis_t *r)
{
    pthread_mutex_lock(&r->lock);
    uint64_t n = r->failures;
    pthread_mutex_unlock(&r->lock);
    return n;
}

int me_redis_random_hex(char *out, size_t bytes)
{
    unsigned char raw[64];
    if (bytes > sizeof(raw) || getrandom(raw, bytes, 0) != (ssize_t)bytes)
        return ME_EIO;
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    return 0;
}
