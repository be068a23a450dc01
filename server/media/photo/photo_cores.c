/* photo_cores.c: the process-wide count of cores photo pipelines keep busy, and runs of tasks on borrowed ones. */
#include "server/media/photo/photo_cores.h"

#include <pthread.h>
#include <stdatomic.h>
#include <vips/vips.h>

static atomic_int own;                 /* this process's busy cores, until me_photo_cores_share() */
static atomic_int *slots = &own, *mine = &own;
static int nslots = 1;
static atomic_uint_fast64_t helpers_started;

void me_photo_cores_share(atomic_int *shared, int n, int slot)
{
    slots = shared, nslots = n, mine = &shared[slot];
}

void me_photo_cores_enter(void)
{
    atomic_fetch_add(mine, 1);
}

void me_photo_cores_leave(void)
{
    atomic_fetch_sub(mine, 1);
}

int me_photo_cores_busy(void)
{
    int n = 0;
    for (int i = 0; i < nslots; i++)
        n += atomic_load(&slots[i]);
    return n;
}

int me_photo_cores_borrow(int want, int limit)
{
    int got = 0;

    /* take one, then look: two borrowers at once may both step back, never both go over */
    while (got < want) {
        atomic_fetch_add(mine, 1);
        if (me_photo_cores_busy() > limit) {
            atomic_fetch_sub(mine, 1);
            break;
        }
        got++;
    }
    return got;
}

void me_photo_cores_give(int n)
{
    if (n > 0)
        atomic_fetch_sub(mine, n);
}

uint64_t me_photo_cores_helpers(void)
{
    return atomic_load(&helpers_started);
}

typedef struct {
    int n, limit;
    me_photo_cores_task_fn task;
    void *arg;
    atomic_int next;   /* the next task to start */
    atomic_int failed; /* a task failed: start no more */
} run_t;

/* Starts tasks until none is left or one has failed; a helper also stops as soon as the
 * process is over the limit (a photo started since it borrowed its core). */
static void work(run_t *r, int helper)
{
    for (;;) {
        int i;
        if (atomic_load(&r->failed) || (helper && me_photo_cores_busy() > r->limit))
            return;
        if ((i = atomic_fetch_add(&r->next, 1)) >= r->n)
            return;
        if (r->task(r->arg, i) != 0)
            atomic_store(&r->failed, 1);
    }
}

static void *helper_main(void *arg)
{
    work(arg, 1);
    vips_thread_shutdown(); /* libvips' per-thread buffers die with the thread */
    me_photo_cores_give(1);
    return NULL;
}

int me_photo_cores_run(int n, me_photo_cores_task_fn task, void *arg, int limit)
{
    run_t r = {.n = n, .limit = limit, .task = task, .arg = arg};
    pthread_t helpers[ME_PHOTO_CORES_RUN_MAX - 1];
    int want = n - 1 < ME_PHOTO_CORES_RUN_MAX - 1 ? n - 1 : ME_PHOTO_CORES_RUN_MAX - 1;
    int got = me_photo_cores_borrow(want, limit), started = 0;

    while (started < got && pthread_create(&helpers[started], NULL, helper_main, &r) == 0)
        started++;
    me_photo_cores_give(got - started); /* threads that could not start: their tasks run here */
    atomic_fetch_add(&helpers_started, (uint_fast64_t)started);
    work(&r, 0);
    for (int i = 0; i < started; i++)
        pthread_join(helpers[i], NULL);
    return atomic_load(&r.failed) ? -1 : 0; /* the caller's thread stops early only on a failure */
}
