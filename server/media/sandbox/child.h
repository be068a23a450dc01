/* child.h: the plumbing every confined decoder process shares (photo_sandbox.h,
 * video_sandbox.h): a pool of child processes of this binary, each started on demand with
 * a scrubbed environment and a scratch directory of its own, spoken to over a socketpair
 * with deadlines, killed when it misbehaves; and, on the child's side, the confinement.
 *
 * A pool's scratch directories are $TMPDIR/mediaedge-decoders-<pid><suffix>/<slot>; those
 * of servers no longer running are removed when a pool is made (a kill -9 leaves them). */
#ifndef ME_CHILD_H
#define ME_CHILD_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "server/core/error.h"

#define ME_CHILD_FD 3           /* the socket, in the child */
#define ME_CHILD_EXTRA_FD 4     /* the pool's shared descriptor, when it has one */
#define ME_CHILD_EXIT_SETUP 3   /* the child's exit status when it could not set itself up */
#define ME_CHILD_EXIT_CONFINE 4 /* ... when it could not confine itself */

typedef struct me_child_pool me_child_pool_t;

/* One child: its slot in the pool, its process (pid 0: none running), its socket. */
typedef struct {
    me_child_pool_t *pool;
    int slot;
    pid_t pid;
    int fd;
    unsigned starts;    /* processes started in this slot: a new one needs its greeting */
    char dir[PATH_MAX]; /* its scratch directory */
} me_child_t;

/* n slots whose children run `exe command` (this binary, e.g. "photo-decoder"), with
 * extra_fd (-1: none; kept by the caller, who closes it after the pool) as their fd 4.
 * NULL with err set when out of memory or a directory could not be made. */
me_child_pool_t *me_child_pool_new(int n, const char *exe, const char *command, const char *tmp_root,
                                   const char *suffix, int extra_fd, char *err, size_t errlen);

/* Ends every child (SIGKILL: they hold nothing to save) and removes the scratch
 * directories. Call it when no child is in use. NULL is a no-op. */
void me_child_pool_free(me_child_pool_t *p);

/* An idle slot, waiting for one when all are in use; give it back with me_child_release().
 * Thread-safe. */
me_child_t *me_child_acquire(me_child_pool_t *p);
void me_child_release(me_child_t *c);

/* Makes sure c's process runs: one that died since its last use is collected, a missing one
 * started. 0, or -1 with why set (the process could not be started). */
int me_child_ensure(me_child_t *c, char *why, size_t whylen);

/* Ends c's process if any and collects it, saying how it ended into why (when given).
 * Returns its exit status when it exited by itself, else -1. */
int me_child_stop(me_child_t *c, char *why, size_t whylen);

/* After c failed its caller (why says how: "took longer than ...", "closed its socket",
 * ...; how the process ended is added): ends it, writes what happened into detail and
 * logs it. Returns ME_EINTERNAL when the child exited because it could not set itself up
 * or confine itself (this machine's fault, not the file's), else ME_EBUSY. */
int me_child_fail(me_child_t *c, char *why, size_t whylen, char *detail, size_t dlen);

/* Moves len bytes over fd, sending when out is set, before deadline (me_clock_mono_ms();
 * 0: blocks as long as it takes). 0, or -1 with errno: ETIMEDOUT, EPIPE (the other end
 * closed), ... */
int me_child_xfer(int fd, void *buf, size_t len, int out, int64_t deadline) ME_MUST_CHECK;

/* A descriptor moved above the child's own (ME_CHILD_EXTRA_FD), so that spawning cannot
 * overwrite it; -1 on failure (fd is closed either way when moved). */
int me_child_fd_above(int fd);

/* The child's side, after it has loaded what it needs: closes every descriptor above
 * ME_CHILD_EXTRA_FD, confines itself (sandbox.h) to reading the system's libraries and
 * writing its scratch directory ($TMPDIR), then caps its data segment at memory_limit bytes
 * (0: none; sanitizer builds skip it: their shadow memory counts). 0, or ME_CHILD_EXIT_* to
 * exit with. */
int me_child_confine(uint64_t memory_limit, int *landlock);

#endif
