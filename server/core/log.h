/* log.h: logs as one JSON object per line on stderr: application lines and access lines. */
#ifndef ME_LOG_H
#define ME_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum { ME_LOG_DEBUG, ME_LOG_INFO, ME_LOG_WARN, ME_LOG_ERROR } me_log_level_t;

/* Sets the level, whether access lines are written, and the fd (2 in production). Call
 * once before threads start; before it, lines go to fd 2 at level info. */
void me_log_init(me_log_level_t level, int access, int fd);

/* Writes {"ts":..., "level":..., "msg":..., "req":...} when level is enabled. reqid may be
 * NULL (then "req" is left out). The message is printf-formatted, truncated to 2 KiB, and
 * JSON-escaped (at most 3 KiB escaped; a cut message gets "msg_truncated":true). Never log a
 * token, a secret or a signature: callers pass ids and facts only. */
void me_log(me_log_level_t level, const char *reqid, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define me_log_debug(reqid, ...) me_log(ME_LOG_DEBUG, reqid, __VA_ARGS__)
#define me_log_info(reqid, ...) me_log(ME_LOG_INFO, reqid, __VA_ARGS__)
#define me_log_warn(reqid, ...) me_log(ME_LOG_WARN, reqid, __VA_ARGS__)
#define me_log_error(reqid, ...) me_log(ME_LOG_ERROR, reqid, __VA_ARGS__)

/* One access line. Strings are not owned; path must already be without its query. A NULL
 * string leaves its field out. Fields are capped (escaped text: path 1 KiB, method 64 bytes,
 * reqid 128, route 256, protocol 32) and a cut one gets "<field>_truncated":true, so that a
 * line always fits in one 4096-byte write. */
typedef struct {
    const char *reqid;
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    const char *route;      /* the route template, e.g. "/v1/uploads" */
    const char *protocol;   /* "HTTP/1.1", "HTTP/2" */
    int status;
    uint64_t bytes_in;
    uint64_t bytes_out;
    double duration;        /* seconds */
} me_access_t;

/* Writes an access line ({"ts":...,"type":"access",...}) when access logging is on. */
void me_log_access(const me_access_t *a);

/* Event-loop threads call this with 1 so that their lines are buffered per thread (written
 * in whole lines, at most 4096 bytes per write so that pipes never interleave them) and
 * flushed by me_log_flush_due(); other threads write each line at once. */
void me_log_set_buffered(int on);

/* Flushes this thread's buffer if it is older than 100 ms or nearly full. now_ms is any
 * monotonic clock in milliseconds. Loop threads call it once per loop iteration, and wake
 * at least every 100 ms. A buffer's age counts from the previous call (the clock the log
 * knows when its first line was added), so lines are written early rather than late. */
void me_log_flush_due(uint64_t now_ms);

/* Flushes this thread's buffer now. */
void me_log_flush(void);

/* Appends s (len bytes) to dst as the inside of a JSON string (no quotes), escaping as JSON
 * requires; bytes that are not well-formed UTF-8 become \ufffd, so the result is always valid
 * JSON. Stops before dst_size - 1 bytes without cutting an escape or a UTF-8 sequence, and
 * NUL-terminates (unless dst_size is 0). Returns the bytes written. */
size_t me_log_json_escape(char *dst, size_t dst_size, const char *s, size_t len);

#endif
