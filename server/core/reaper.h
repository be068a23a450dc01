/* reaper.h: collects the children nobody waits for. As a container's PID 1, mediaedge is the
 * parent of every orphan in its PID namespace (what a `docker exec` or `kubectl exec` left
 * running, a grandchild whose parent died): each would stay a zombie, holding a PID, unless
 * PID 1 waits for it. Our own children (the decoder processes, server/media/sandbox/child.h)
 * are registered here and left to their owners, whose waitpid() needs their exit status. */
#ifndef ME_REAPER_H
#define ME_REAPER_H

#include <sys/types.h>
#include "server/core/error.h"

/* Held across the start of an owned child and its me_reaper_watch(), so that a reap running
 * in another thread meanwhile never takes the new child for an orphan. */
void me_reaper_lock(void);
void me_reaper_unlock(void);

/* Registers pid as a child its owner waits for: the reaper leaves it alone. Call it with
 * me_reaper_lock() held. 0, or ME_ENOMEM (then the reaper may collect it once it has
 * exited, and its owner's waitpid() fails with ECHILD). */
int me_reaper_watch(pid_t pid) ME_MUST_CHECK;

/* Unregisters pid, after its owner has collected it (or never started it). Unknown pids are
 * ignored. */
void me_reaper_forget(pid_t pid);

/* Collects every exited child of this process that is not registered; returns how many.
 * Never blocks; thread-safe. The server calls it on SIGCHLD (server/http/server.c). */
int me_reaper_reap(void);

#endif
