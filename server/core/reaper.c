/* reaper.c: waits for orphaned children (we are PID 1 in a container), never for our own. */
#include "server/core/reaper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t *watched; /* guarded by lock; unordered, a few entries (one per decoder slot) */
static size_t nwatched, capacity;

void me_reaper_lock(void)
{
    pthread_mutex_lock(&lock);
}

void me_reaper_unlock(void)
{
    pthread_mutex_unlock(&lock);
}

/* Call with lock held. */
static int is_watched(pid_t pid)
{
    for (size_t i = 0; i < nwatched; i++)
        if (watched[i] == pid)
            return 1;
    return 0;
}

int me_reaper_watch(pid_t pid)
{
    int rc = 0;

    if (nwatched == capacity) { /* the caller holds lock (me_reaper_lock) */
        size_t n = capacity ? 2 * capacity : 16;
        pid_t *p = realloc(watched, n * sizeof(*p));
        if (p == NULL) {
            rc = ME_ENOMEM;
            goto out;
        }
        watched = p, capacity = n;
    }
    watched[nwatched++] = pid;
out:
    return rc;
}

void me_reaper_forget(pid_t pid)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < nwatched; i++)
        if (watched[i] == pid) {
            watched[i] = watched[--nwatched];
            break;
        }
    pthread_mutex_unlock(&lock);
}

/* The parent of pid from /proc/<pid>/stat ("pid (comm) state ppid ..."; comm may hold
 * spaces and parentheses, so the last ')' ends it), its state into *state. -1 when gone. */
static pid_t parent_of(const char *pid, char *state)
{
    char path[64], buf[512], *p;
    ssize_t n;
    int fd, ppid;

    snprintf(path, sizeof(path), "/proc/%s/stat", pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 1, " %c %d", state, &ppid) != 2)
        return -1;
    return (pid_t)ppid;
}

int me_reaper_reap(void)
{
    pid_t self = getpid();
    DIR *d;
    struct dirent *e;
    int reaped = 0;

    /* /proc/<pid>/task/<tid>/children would list only ours, but not every kernel has it;
     * a container's /proc is a few entries */
    if ((d = opendir("/proc")) == NULL)
        return 0;
    pthread_mutex_lock(&lock);
    while ((e = readdir(d)) != NULL) {
        char state = 0, *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || parent_of(e->d_name, &state) != self || state != 'Z' || is_watched((pid_t)pid))
            continue;
        if (waitpid((pid_t)pid, NULL, WNOHANG) == (pid_t)pid)
            reaped++;
    }
    pthread_mutex_unlock(&lock);
    closedir(d);
    return reaped;
}
