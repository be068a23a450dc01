/* redis_server.c: a real redis-server for unit tests, on a unix socket in a temp directory. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "tests/unit/redis_server.h"

/* 1 once the socket accepts a connection and answers PING. */
static int answers(const char *path)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char buf[16];
    int fd = socket(AF_UNIX, SOCK_STREAM, 0), ok = 0;
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && write(fd, "PING\r\n", 6) == 6 &&
        read(fd, buf, sizeof(buf)) > 0 && strncmp(buf, "+PONG", 5) == 0)
        ok = 1;
    if (fd >= 0)
        close(fd);
    return ok;
}

static int launch(redis_server_t *s)
{
    if (access("/usr/bin/redis-server", X_OK) != 0)
        return -1;
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1), dup2(null, 2);
        execl("/usr/bin/redis-server", "redis-server", "--port", "0", "--unixsocket", s->socket, "--dir", s->dir,
              "--save", "", "--appendonly", s->aof ? "yes" : "no", "--appendfsync", "always", "--daemonize", "no",
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        if (answers(s->socket))
            return 0;
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    redis_server_stop(s);
    return -1;
}

int redis_server_start(redis_server_t *s, int aof)
{
    signal(SIGPIPE, SIG_IGN); /* as the server does: a write to a closed connection is an error, not death */
    memset(s, 0, sizeof(*s));
    s->aof = aof;
    snprintf(s->dir, sizeof(s->dir), "/tmp/me-redis-XXXXXX");
    if (mkdtemp(s->dir) == NULL)
        return -1;
    snprintf(s->socket, sizeof(s->socket), "%s/redis.sock", s->dir);
    snprintf(s->url, sizeof(s->url), "unix://%s", s->socket);
    return launch(s);
}

void redis_server_stop(redis_server_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

int redis_server_restart(redis_server_t *s)
{
    redis_server_stop(s);
    return launch(s);
}

void redis_server_free(redis_server_t *s)
{
    char cmd[128];
    redis_server_stop(s);
    if (s->dir[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", s->dir);
    }
}
