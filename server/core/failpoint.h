/* failpoint.h: named crash points for the crash tests; off (one predictable branch) unless
 * MEDIAEDGE_FAILPOINT names one.
 *
 * MEDIAEDGE_FAILPOINT=name[:n] (read once, when the program starts) makes the process kill
 * itself with SIGKILL at the n-th time (default 1) any thread reaches me_failpoint("name"),
 * after one log line {"msg":"failpoint <name> fired"} on stderr. Nothing is flushed, closed or
 * unlocked: what storage holds is exactly what a kill -9 at that point leaves. Names are
 * "<module>.<what has just happened>", e.g. "upload.part_stored"; the list is in the README
 * ("Failpoints (tests only)"). Meant for tests only: a point is placed where a kill -9 from
 * outside cannot reliably land (between two writes of one request or job). A value that is
 * not name[:n] with n from 1 to 1000000 arms nothing and says so on stderr. */
#ifndef ME_FAILPOINT_H
#define ME_FAILPOINT_H

/* Non-zero when MEDIAEDGE_FAILPOINT was set at start; never changes afterwards. */
extern int me_failpoint_armed;

/* Counts a hit of name and kills the process when it is the armed point's n-th. Call it
 * through me_failpoint(). */
void me_failpoint_hit(const char *name);

#define me_failpoint(name)                                                                                             \
    do {                                                                                                               \
        if (__builtin_expect(me_failpoint_armed, 0))                                                                   \
            me_failpoint_hit(name);                                                                                    \
    } while (0)

#endif
