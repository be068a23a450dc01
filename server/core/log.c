/* log.c: JSON-lines logging (application and access lines), buffered per thread for event loops. */
#include "server/core/log.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_WRITE_MAX 4096   /* PIPE_BUF on Linux: a write up to this size to a pipe is atomic */
#define LOG_FLUSH_BYTES 3072 /* me_log_flush_due() writes a buffer this full whatever its age */
#define LOG_FLUSH_MS 100
#define LOG_MSG_MAX 2048     /* a formatted message is cut to this before escaping */
#define LOG_EAGAIN_WAIT_MS 100

/* Caps on the escaped text of each field. Client-supplied fields (method, path, request id)
 * are hostile; with these caps every line fits in one atomic write. */
#define LOG_CAP_REQ 128
#define LOG_CAP_METHOD 64
#define LOG_CAP_PATH 1024
#define LOG_CAP_ROUTE 256
#define LOG_CAP_PROTO 32
#define LOG_CAP_MSG 3072
#define LOG_FIXED_MAX 512 /* keys, timestamp, numbers and flags of either kind of line */
_Static_assert(LOG_FIXED_MAX + LOG_CAP_REQ + LOG_CAP_MSG <= LOG_WRITE_MAX, "application line fits");
_Static_assert(LOG_FIXED_MAX + LOG_CAP_REQ + LOG_CAP_METHOD + LOG_CAP_PATH + LOG_CAP_ROUTE + LOG_CAP_PROTO <=
                   LOG_WRITE_MAX,
               "access line fits");

/* Set once by me_log_init() before threads start, read-only afterwards. */
static me_log_level_t log_level = ME_LOG_INFO;
static int log_access_on = 1;
static int log_fd = 2;

typedef struct {
    int buffered;
    size_t len;          /* bytes of whole lines in buf */
    uint64_t first_ms;   /* clock of the first unflushed line (see log_emit) */
    uint64_t now_ms;     /* last now_ms given to me_log_flush_due() */
    time_t ts_sec;       /* the second ts_date was computed for */
    char ts_date[20];    /* "YYYY-MM-DDTHH:MM:SS", empty until first used */
    char buf[LOG_WRITE_MAX];
} log_tls_t;

static __thread log_tls_t log_tls;

/* A line being formatted: p moves towards end; nothing is written past end. */
typedef struct {
    char *p, *end;
} log_line_t;

void me_log_init(me_log_level_t level, int access, int fd)
{
    log_level = level;
    log_access_on = access;
    log_fd = fd;
}

/* Writes all of p, retrying on EINTR, short writes and (briefly) EAGAIN. A log that cannot
 * be written is dropped: there is nowhere to report it, and the server must not stall. */
static void log_write(const char *p, size_t n)
{
    int saved = errno; /* callers log errno-related facts and may look at errno afterwards */
    while (n > 0) {
        ssize_t w = write(log_fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = log_fd, .events = POLLOUT};
            if (poll(&pfd, 1, LOG_EAGAIN_WAIT_MS) <= 0)
                break;
        } else {
            break;
        }
    }
    errno = saved;
}

static void log_flush_tls(log_tls_t *t)
{
    if (t->len > 0)
        log_write(t->buf, t->len);
    t->len = 0;
}

/* Sends one whole line. A buffered thread appends it; the first line of a batch is stamped
 * with the clock of the last me_log_flush_due() call, which is at most one loop iteration
 * old, so a batch is written 100 ms after that iteration or earlier, never later. */
static void log_emit(const char *line, size_t len, int urgent)
{
    log_tls_t *t = &log_tls;
    if (!t->buffered) {
        log_write(line, len);
        return;
    }
    if (t->len + len > sizeof(t->buf))
        log_flush_tls(t);
    if (len > sizeof(t->buf)) { /* cannot happen with the field caps; written alone */
        log_write(line, len);
        return;
    }
    if (t->len == 0)
        t->first_ms = t->now_ms;
    memcpy(t->buf + t->len, line, len);
    t->len += len;
    if (urgent)
        log_flush_tls(t);
}

void me_log_set_buffered(int on)
{
    if (!on)
        log_flush_tls(&log_tls);
    log_tls.buffered = on;
}

void me_log_flush_due(uint64_t now_ms)
{
    log_tls_t *t = &log_tls;
    t->now_ms = now_ms;
    if (t->len > 0 && (t->len >= LOG_FLUSH_BYTES || now_ms - t->first_ms >= LOG_FLUSH_MS))
        log_flush_tls(t);
}

void me_log_flush(void)
{
    log_flush_tls(&log_tls);
}

/* Length of the well-formed UTF-8 sequence at s (n bytes available), or 0 when it is not one
 * (overlong forms, surrogates and code points past U+10FFFF are not). */
static size_t log_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;
    if (s[0] < 0x80)
        return 1;
    if (s[0] < 0xC2)
        return 0;
    if (s[0] < 0xE0) {
        len = 2;
    } else if (s[0] < 0xF0) {
        len = 3;
        lo = s[0] == 0xE0 ? 0xA0 : 0x80;
        hi = s[0] == 0xED ? 0x9F : 0xBF;
    } else if (s[0] < 0xF5) {
        len = 4;
        lo = s[0] == 0xF0 ? 0x90 : 0x80;
        hi = s[0] == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/* Bytes copied into a JSON string as they are: printable ASCII but for '"' and '\\'. */
#define LOG_ROW(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
static const unsigned char log_plain[256] = {
    LOG_ROW(0), LOG_ROW(0),                         /* 0x00-0x1f: control characters */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20-0x2f: '"' */
    LOG_ROW(1), LOG_ROW(1),                         /* 0x30-0x4f */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50-0x5f: '\\' */
    LOG_ROW(1), LOG_ROW(1),                         /* 0x60-0x7f; 0x80-0xff (UTF-8) are checked */
};

/* Whether all 8 bytes of w are plain (see log_plain): none has its high bit set, none is
 * below 0x20, none is '"' or '\\' (the exact "has a zero byte" test, on each condition). */
static int log_plain8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    return ((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & high) == 0;
}

/* me_log_json_escape(), also telling how many input bytes it consumed. Escapes and UTF-8
 * sequences are never cut; a byte that is not part of well-formed UTF-8 becomes U+FFFD, so
 * the output is always valid JSON and invalid input stays visible as such. */
static size_t log_escape(char *dst, size_t dst_size, const char *src, size_t len, size_t *consumed)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)src;
    size_t i = 0, o = 0;
    if (dst_size == 0) {
        *consumed = 0;
        return 0;
    }
    while (i < len) {
        char esc[6] = {'\\', 'u', '0', '0'};
        const char *out = esc;
        size_t n = 2, in = 1;
        unsigned char c = s[i];
        if (log_plain[c]) { /* the common case, copied as it is scanned */
            size_t stop = len - i < dst_size - 1 - o ? len : i + (dst_size - 1 - o);
            if (i == stop)
                break;
            for (uint64_t w; stop - i >= 8 && (memcpy(&w, s + i, 8), log_plain8(w)); i += 8, o += 8)
                memcpy(dst + o, &w, 8);
            while (i < stop && log_plain[s[i]])
                dst[o++] = src[i++];
            continue;
        }
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
        } else if (c < 0x20) {
            const char *sh = strchr("\bb\ff\nn\rr\tt", c);
            if (c != 0 && sh != NULL) {
                esc[1] = sh[1];
            } else {
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                n = 6;
            }
        } else if ((in = log_utf8_len(s + i, len - i)) > 0) {
            out = src + i;
            n = in;
        } else {
            out = "\\ufffd";
            n = 6;
            in = 1;
        }
        if (n > dst_size - 1 - o)
            break;
        memcpy(dst + o, out, n);
        o += n;
        i += in;
    }
    dst[o] = '\0';
    *consumed = i;
    return o;
}

size_t me_log_json_escape(char *dst, size_t dst_size, const char *s, size_t len)
{
    size_t consumed;
    return log_escape(dst, dst_size, s, len, &consumed);
}

static inline void line_add(log_line_t *l, const char *s, size_t n)
{
    if (n > (size_t)(l->end - l->p))
        n = (size_t)(l->end - l->p);
    memcpy(l->p, s, n);
    l->p += n;
}

#define LINE_LIT(l, s) line_add(l, s, sizeof(s) - 1)

static void line_u64(log_line_t *l, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do
        tmp[sizeof(tmp) - ++n] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    line_add(l, tmp + sizeof(tmp) - n, n);
}

/* Writes v as exactly `digits` decimal digits at p. */
static void put_digits(char *p, unsigned v, int digits)
{
    while (digits-- > 0) {
        p[digits] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Starts a line with {"ts":"YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC); the date part is recomputed
 * only when the second changes. */
static void line_start(log_line_t *l, char *buf, size_t size)
{
    log_tls_t *t = &log_tls;
    struct timespec now;
    char ms[4] = {'.'};
    l->p = buf;
    l->end = buf + size - 2; /* room for "}\n" */
    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != t->ts_sec || t->ts_date[0] == '\0') {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        memcpy(t->ts_date, "0000-00-00T00:00:00", sizeof(t->ts_date));
        put_digits(t->ts_date, (unsigned)(tm.tm_year + 1900), 4);
        put_digits(t->ts_date + 5, (unsigned)tm.tm_mon + 1, 2);
        put_digits(t->ts_date + 8, (unsigned)tm.tm_mday, 2);
        put_digits(t->ts_date + 11, (unsigned)tm.tm_hour, 2);
        put_digits(t->ts_date + 14, (unsigned)tm.tm_min, 2);
        put_digits(t->ts_date + 17, (unsigned)tm.tm_sec, 2);
        t->ts_sec = now.tv_sec;
    }
    put_digits(ms + 1, (unsigned)(now.tv_nsec / 1000000), 3);
    LINE_LIT(l, "{\"ts\":\"");
    line_add(l, t->ts_date, sizeof(t->ts_date) - 1);
    line_add(l, ms, sizeof(ms));
    LINE_LIT(l, "Z\"");
}

/* Appends ,"key":"<s escaped, at most cap bytes>" (nothing when s is NULL) and, when s is
 * cut here or was already (cut), ,"key_truncated":true. Inlined so that strlen(key) of a
 * literal costs nothing. */
static inline __attribute__((always_inline)) void line_str(log_line_t *l, const char *key, const char *s, size_t len,
                                                           size_t cap, int cut)
{
    size_t consumed, klen = strlen(key);
    if (s == NULL)
        return;
    LINE_LIT(l, ",\"");
    line_add(l, key, klen);
    LINE_LIT(l, "\":\"");
    size_t room = (size_t)(l->end - l->p);
    l->p += log_escape(l->p, (room < cap ? room : cap) + 1, s, len, &consumed);
    LINE_LIT(l, "\"");
    if (cut || consumed < len) {
        LINE_LIT(l, ",\"");
        line_add(l, key, klen);
        LINE_LIT(l, "_truncated\":true");
    }
}

/* Ends the line and sends it. */
static void line_finish(log_line_t *l, char *buf, int urgent)
{
    l->end += 2;
    LINE_LIT(l, "}\n");
    log_emit(buf, (size_t)(l->p - buf), urgent);
}

void me_log(me_log_level_t level, const char *reqid, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char msg[LOG_MSG_MAX], buf[LOG_WRITE_MAX];
    log_line_t l;
    va_list ap;
    if (level < log_level)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t mlen = n < 0 ? 0 : (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
    const char *name = (unsigned)level <= ME_LOG_ERROR ? names[level] : "error";

    line_start(&l, buf, sizeof(buf));
    LINE_LIT(&l, ",\"level\":\"");
    line_add(&l, name, strlen(name));
    LINE_LIT(&l, "\"");
    line_str(&l, "msg", msg, mlen, LOG_CAP_MSG, n >= (int)sizeof(msg));
    line_str(&l, "req", reqid, reqid != NULL ? strnlen(reqid, LOG_CAP_REQ + 1) : 0, LOG_CAP_REQ, 0);
    line_finish(&l, buf, level >= ME_LOG_WARN);
}

void me_log_access(const me_access_t *a)
{
    char buf[LOG_WRITE_MAX];
    log_line_t l;
    if (!log_access_on || a == NULL)
        return;
    /* Input bytes never exceed escaped bytes, so cap + 1 input bytes show a cut. */
    size_t reqlen = a->reqid != NULL ? strnlen(a->reqid, LOG_CAP_REQ + 1) : 0;
    size_t routelen = a->route != NULL ? strnlen(a->route, LOG_CAP_ROUTE + 1) : 0;
    size_t protolen = a->protocol != NULL ? strnlen(a->protocol, LOG_CAP_PROTO + 1) : 0;
    double d = a->duration;
    uint64_t us = d > 0 ? (d < 1e9 ? (uint64_t)(d * 1e6 + 0.5) : (uint64_t)1e15) : 0; /* NaN: 0 */
    char frac[7];

    line_start(&l, buf, sizeof(buf));
    LINE_LIT(&l, ",\"type\":\"access\"");
    line_str(&l, "req", a->reqid, reqlen, LOG_CAP_REQ, 0);
    line_str(&l, "method", a->method, a->method_len, LOG_CAP_METHOD, 0);
    line_str(&l, "path", a->path, a->path_len, LOG_CAP_PATH, 0);
    line_str(&l, "route", a->route, routelen, LOG_CAP_ROUTE, 0);
    line_str(&l, "proto", a->protocol, protolen, LOG_CAP_PROTO, 0);
    LINE_LIT(&l, ",\"status\":");
    line_u64(&l, a->status > 0 ? (uint64_t)a->status : 0);
    LINE_LIT(&l, ",\"bytes_in\":");
    line_u64(&l, a->bytes_in);
    LINE_LIT(&l, ",\"bytes_out\":");
    line_u64(&l, a->bytes_out);
    LINE_LIT(&l, ",\"duration\":");
    line_u64(&l, us / 1000000);
    frac[0] = '.';
    put_digits(frac + 1, (unsigned)(us % 1000000), 6);
    line_add(&l, frac, sizeof(frac));
    line_finish(&l, buf, 0);
}
