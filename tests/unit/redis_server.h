/* redis_server.h: a test helper, never linked into the server: starts a real redis-server on a
 * unix socket in a temp directory (no snapshots; AOF when asked), and stops or restarts it. */
#ifndef REDIS_SERVER_H
#define REDIS_SERVER_H

#include <sys/types.h>

typedef struct {
    pid_t pid;
    int aof;
    char dir[64];
    char socket[128];
    char url[160]; /* unix://<socket> */
} redis_server_t;

/* Starts one (aof: appendonly with appendfsync always); ignores SIGPIPE in this process, as
 * the server does (hiredis writes to sockets the server may have closed). 0, or -1 when redis-server is not
 * installed or did not answer within 5 s (the caller skips). */
int redis_server_start(redis_server_t *s, int aof);

/* Stops it (SIGTERM, waited for); its directory stays for a restart. */
void redis_server_stop(redis_server_t *s);

/* Starts it again on the same socket and directory (the AOF replayed when it has one). */
int redis_server_restart(redis_server_t *s);

/* Stops it and removes its directory. */
void redis_server_free(redis_server_t *s);

#endif
