/* failpoint.c: MEDIAEDGE_FAILPOINT, read once at start; a hit of the armed point kills the process. */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/core/failpoint.h"

#define NAME_MAX_LEN 64

int me_failpoint_armed;
static char armed_name[NAME_MAX_LEN + 1];
static long armed_at = 1;
static atomic_long hits;

/* Before main(), so that no thread can race the read and no caller has to remember it. */
__attribute__((constructor)) static void failpoint_init(void)
{
    const char *v = getenv("MEDIAEDGE_FAILPOINT");
    if (v == NULL || *v == '\0')
        return;
    size_t n = strcspn(v, ":");
    char *end = NULL;
    if (v[n] == ':')
        armed_at = strtol(v + n + 1, &end, 10);
    if (n == 0 || n > NAME_MAX_LEN || strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789._") != n ||
        (end != NULL && (*end != '\0' || end == v + n + 1)) || armed_at < 1 || armed_at > 1000000) {
        fprintf(
            stderr,
            "{\"level\":\"error\",\"msg\":\"MEDIAEDGE_FAILPOINT: expected name[:n] (name in a-z0-9._, n 1 to 1000000); "
            "no failpoint armed\"}\n");
        return;
    }
    memcpy(armed_name, v, n);
    armed_name[n] = '\0';
    me_failpoint_armed = 1;
}

void me_failpoint_hit(const char *name)
{
    if (strcmp(name, armed_name) != 0 || atomic_fetch_add(&hits, 1) + 1 != armed_at)
        return;
    char line[NAME_MAX_LEN + 64];
    int len = snprintf(line, sizeof(line), "{\"level\":\"warn\",\"msg\":\"failpoint %s fired\"}\n", armed_name);
    (void)!write(STDERR_FILENO, line, (size_t)len); /* no stdio: its lock may be held by the thread we kill */
    raise(SIGKILL);
}
