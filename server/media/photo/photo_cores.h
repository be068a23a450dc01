/* photo_cores.h: the cores the photo pipelines keep busy, counted in one budget for the
 * process (or shared by the decoder processes: me_photo_cores_share()), and the helper
 * threads a pipeline borrows while some are idle.
 *
 * Why: the job pool runs as many photos at once as there are cores, each on one thread,
 * which is the best throughput when the pool is full; a photo alone on an idle machine
 * would leave the other cores idle. A running photo counts its caller's thread as one busy
 * core; work of it that can run in parallel borrows more cores only while fewer than its
 * limit are busy, never waits for one, and gives each back when that work is done or as
 * soon as more are busy than the limit (a photo started meanwhile): with the pool full,
 * every photo runs on its own thread alone.
 *
 * Every function is thread-safe; nothing is allocated but the helper threads. */
#ifndef ME_PHOTO_CORES_H
#define ME_PHOTO_CORES_H

#include <stdatomic.h>
#include <stdint.h>
#include "server/core/error.h"

#define ME_PHOTO_CORES_RUN_MAX 16 /* threads one me_photo_cores_run() uses at most, its caller's included */

/* Makes the budget shared by several processes (the photo decoders, photo_sandbox.h): shared
 * holds n counters in memory they all map, one per process; this one counts its busy cores in
 * shared[slot] and the busy cores are the sum. Call it once, before any other function, while
 * the counters are 0 (whoever starts a process again after a crash zeroes its counter). */
void me_photo_cores_share(atomic_int *shared, int n, int slot);

/* Counts the caller's thread as one busy core until me_photo_cores_leave(). Cannot fail. */
void me_photo_cores_enter(void);
void me_photo_cores_leave(void);

/* Borrows up to want cores, each only while fewer than limit are busy; never waits.
 * Returns how many it took (0..want): the caller gives them back with me_photo_cores_give(). */
int me_photo_cores_borrow(int want, int limit) ME_MUST_CHECK;
void me_photo_cores_give(int n);

/* One task of a run: i is which (0..n-1); returns 0, or non-zero when it failed (the task
 * keeps its own account of why). */
typedef int (*me_photo_cores_task_fn)(void *arg, int i);

/* Runs task(arg, i) for every i of 0..n-1, started in that order, on the caller's thread and
 * on one helper thread per core it can borrow (at most n - 1, at most
 * ME_PHOTO_CORES_RUN_MAX - 1). A helper ends, giving its core back, when no task is left to
 * start or when more than limit cores are busy; the caller's thread does what is left. Once
 * a task has failed no other starts. Returns when every started task has ended: 0 when all
 * n ran and returned 0, -1 otherwise. Helpers call vips_thread_shutdown() before they end. */
int me_photo_cores_run(int n, me_photo_cores_task_fn task, void *arg, int limit) ME_MUST_CHECK;

/* Cores busy now, and helper threads started since the process began: for tests and metrics. */
int me_photo_cores_busy(void);
uint64_t me_photo_cores_helpers(void);

#endif
