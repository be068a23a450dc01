/* server.c: listening sockets, one h2o context per event-loop thread, signals and the drain. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <h2o.h>
#include "server/app.h"
#include "server/http/h2o_private.h"
#include "server/http/http.h"
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/reaper.h"
#include "server/core/metrics.h"
#include "server/http/server.h"
#include "server/http/server_config.h"
#include "server/http/tls.h"

enum { PHASE_SERVING, PHASE_CLOSING, PHASE_STOPPING };
enum { LISTEN_HTTP, LISTEN_HTTPS, LISTEN_COUNT };

typedef struct loop {
    me_server_t *srv;
    pthread_t tid;
    h2o_evloop_t *evloop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept[LISTEN_COUNT];
    int fds[LISTEN_COUNT];  /* this loop's duplicates of the listening sockets; -1: none */
    h2o_socket_t *listeners[LISTEN_COUNT];
    h2o_multithread_receiver_t jobs;
    h2o_linklist_t conns;   /* accepted connections still open (conn_t) */
    int nconns, max_conns;  /* open here; past max_conns accepting pauses */
    int paused;
    _Atomic int busy;       /* during the drain: requests or partial requests still here */
    int closed;
} loop_t;

typedef struct {
    h2o_linklist_t link;
    h2o_socket_t *sock;
    struct loop *loop;
} conn_t;

struct me_server {
    me_config_t *cfg;
    me_app_t *app;
    h2o_globalconf_t globalconf;
    int globalconf_made;
    SSL_CTX *ssl_ctx;
    int fds[LISTEN_COUNT];
    int nloops;
    loop_t *loops;
    _Atomic int started; /* loops serving */
    _Atomic int draining;
    _Atomic int phase;
};

ME_GAUGE(draining_gauge, "mediaedge_draining", "1 while the process drains after a shutdown signal.", NULL)
ME_GAUGE(connections_gauge, "mediaedge_connections", "Client connections open.", NULL)
ME_COUNTER(accept_pauses, "mediaedge_accept_pauses_total",
           "Times a loop stopped accepting because it held http.max_connections / loops connections.", NULL)
ME_COUNTER(build_info, "mediaedge_build_info", "Build information; the value is always 1.", "version")

/* For /readyz: every loop serves and no shutdown signal has come. */
static int is_ready(void *arg)
{
    me_server_t *srv = arg;
    return atomic_load(&srv->started) == srv->nloops && !atomic_load(&srv->draining);
}

/* ---- listening sockets ---- */

/* Opens a listening TCP socket on "host:port" ("[v6]:port" too). Returns the fd or -1 with
 * err set. */
static int open_listener(const char *hostport, char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    size_t hostlen = colon != NULL ? (size_t)(colon - hostport) : 0;
    if (colon == NULL || hostlen >= sizeof(host)) {
        snprintf(err, errlen, "bad listen address '%s'", hostport);
        return -1;
    }
    memcpy(host, hostport, hostlen);
    host[hostlen] = '\0';
    if (hostlen >= 2 && host[0] == '[' && host[hostlen - 1] == ']') {
        memmove(host, host + 1, hostlen - 2);
        host[hostlen - 2] = '\0';
    }

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int gai = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address '%s': %s", hostport, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0 ||
        fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", hostport, strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void on_accept(h2o_socket_t *listener, const char *err);

/* Stops or resumes reading every listener of loop: connections past the cap wait in the
 * kernel's backlog instead of adding request bodies this process would have to hold. */
static void set_paused(loop_t *loop, int paused)
{
    loop->paused = paused;
    for (int i = 0; i < LISTEN_COUNT; i++) {
        if (loop->listeners[i] == NULL)
            continue;
        if (paused)
            h2o_socket_read_stop(loop->listeners[i]);
        else
            h2o_socket_read_start(loop->listeners[i], on_accept);
    }
}

static void on_conn_close(void *data)
{
    conn_t *conn = data;
    loop_t *loop = conn->loop;
    h2o_linklist_unlink(&conn->link);
    free(conn);
    me_metric_add(connections_gauge, NULL, -1);
    if (--loop->nconns < loop->max_conns && loop->paused)
        set_paused(loop, 0);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_accept_ctx_t *accept_ctx = listener->data;
    loop_t *loop = H2O_STRUCT_FROM_MEMBER(loop_t, ctx, accept_ctx->ctx);
    h2o_socket_t *sock;
    if (err != NULL)
        return;
    /* take what is waiting, a bounded batch per wake-up so that one loop cannot starve */
    for (int i = 0; i < 16; i++) {
        if (loop->nconns >= loop->max_conns) {
            set_paused(loop, 1);
            me_metric_add(accept_pauses, NULL, 1);
            return;
        }
        if ((sock = h2o_evloop_socket_accept(listener)) == NULL)
            return;
        conn_t *conn = calloc(1, sizeof(*conn));
        if (conn == NULL) {
            h2o_socket_close(sock);
            continue;
        }
        conn->sock = sock;
        conn->loop = loop;
        loop->nconns++;
        h2o_linklist_insert(&loop->conns, &conn->link);
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = conn;
        me_metric_add(connections_gauge, NULL, 1);
        h2o_accept(accept_ctx, sock);
    }
}

/* ---- event loops ---- */

/* Requests this loop still owes an answer: HTTP/2 streams open, and HTTP/1 connections
 * holding part of a request (their body is still arriving). Idle keep-alive connections do
 * not hold the drain. */
static int loop_busy(loop_t *loop)
{
    int n = me_h2o_http2_requests(&loop->ctx);
    for (h2o_linklist_t *l = loop->conns.next; l != &loop->conns; l = l->next) {
        conn_t *conn = H2O_STRUCT_FROM_MEMBER(conn_t, link, l);
        if (me_h2o_socket_holds_input(conn->sock))
            n++;
    }
    return n;
}

static void close_listeners(loop_t *loop)
{
    for (int i = 0; i < LISTEN_COUNT; i++) {
        if (loop->listeners[i] != NULL) {
            h2o_socket_read_stop(loop->listeners[i]);
            h2o_socket_close(loop->listeners[i]);
            loop->listeners[i] = NULL;
        }
    }
    h2o_context_request_shutdown(&loop->ctx);
    loop->closed = 1;
}

static void *loop_main(void *arg)
{
    loop_t *loop = arg;
    me_server_t *srv = loop->srv;
    char name[16];
    snprintf(name, sizeof(name), "loop-%d", (int)(loop - srv->loops));
    pthread_setname_np(pthread_self(), name);
    me_log_set_buffered(1);

    loop->evloop = h2o_evloop_create();
    h2o_context_init(&loop->ctx, loop->evloop, &srv->globalconf);
    me_http_context_init(&loop->ctx, &loop->jobs);
    h2o_linklist_init_anchor(&loop->conns);
    loop->max_conns = (me_http_settings(srv->cfg)->max_connections + srv->nloops - 1) / srv->nloops;
    for (int i = 0; i < LISTEN_COUNT; i++) {
        if (loop->fds[i] < 0)
            continue;
        loop->accept[i] = (h2o_accept_ctx_t){.ctx = &loop->ctx, .hosts = srv->globalconf.hosts,
                                             .ssl_ctx = i == LISTEN_HTTPS ? srv->ssl_ctx : NULL};
        loop->listeners[i] = h2o_evloop_socket_create(loop->evloop, loop->fds[i], H2O_SOCKET_FLAG_DONT_READ);
        loop->fds[i] = -1; /* libh2o's now: closed with the listener */
        loop->listeners[i]->data = &loop->accept[i];
        h2o_socket_read_start(loop->listeners[i], on_accept);
    }
    atomic_fetch_add(&srv->started, 1);

    while (atomic_load(&srv->phase) != PHASE_STOPPING) {
        h2o_evloop_run(loop->evloop, 100);
        if (atomic_load(&srv->phase) == PHASE_CLOSING) {
            if (!loop->closed)
                close_listeners(loop);
            atomic_store(&loop->busy, loop_busy(loop));
        }
        me_log_flush_due((uint64_t)me_clock_mono_ms());
    }
    me_log_flush();
    return NULL;
}

/* ---- configuration of h2o ---- */

static int setup_globalconf(me_server_t *srv, char *err, size_t errlen)
{
    me_config_t *cfg = srv->cfg;
    const me_server_settings_t *ss = me_server_settings(cfg);
    const me_http_settings_t *hs = me_http_settings(cfg);
    h2o_config_init(&srv->globalconf);
    srv->globalconf_made = 1;
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("mediaedge"));
    srv->globalconf.max_request_entity_size = hs->max_patch_size;
    srv->globalconf.http1.req_timeout = hs->http1_request_timeout;
    srv->globalconf.http2.idle_timeout = hs->idle_timeout;
    srv->globalconf.http2.max_concurrent_requests_per_connection = (size_t)hs->http2_max_streams;
    srv->globalconf.http2.graceful_shutdown_timeout = me_shutdown_settings(cfg)->drain_timeout;

    /* large bodies spill to files on disk under the data directory, not to tmpfs */
    char dir[FILENAME_MAX - 32];
    snprintf(dir, sizeof(dir), "%s/tmp", ss->data_dir);
    if ((mkdir(ss->data_dir, 0700) != 0 && errno != EEXIST) || (mkdir(dir, 0700) != 0 && errno != EEXIST)) {
        snprintf(err, errlen, "cannot create %s (server.data_dir): %s", dir, strerror(errno));
        return ME_EIO;
    }
    h2o_socket_buffer_mmap_settings.threshold = hs->body_spill_threshold;
    snprintf(h2o_socket_buffer_mmap_settings.fn_template, sizeof(h2o_socket_buffer_mmap_settings.fn_template),
             "%s/h2o.b.XXXXXX", dir);

    h2o_hostconf_t *host = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    me_app_routes(srv->app, host, is_ready, srv);
    return 0;
}

/* ---- start-up and shutdown ---- */

/* "0.0.0.0:8443" -> "localhost:8443" for a URL a person can paste. */
static const char *pasteable(const char *hostport, char *buf, size_t len)
{
    const char *port = strrchr(hostport, ':');
    if (strncmp(hostport, "0.0.0.0:", 8) == 0 || strncmp(hostport, "[::]:", 5) == 0 || hostport[0] == ':')
        snprintf(buf, len, "localhost%s", port);
    else
        snprintf(buf, len, "%s", hostport);
    return buf;
}

static void announce(me_server_t *srv)
{
    const me_config_t *cfg = srv->cfg;
    const me_listen_settings_t *ls = me_listen_settings(cfg);
    char https[300], http[300], err[256];
    me_token_claims_t claims = {.sub = "demo-user", .album = "demo-album", .scope = ME_SCOPE_UPLOAD,
                                .plan = ME_PLAN_PREMIUM, .client = ME_CLIENT_APP};
    char *token = me_token_mint(cfg, &claims, (int64_t)time(NULL), 3600, err, sizeof(err));

    printf("mediaedge %s is serving (%s profile)\n", ME_VERSION,
           me_config_is_production(cfg) ? "production" : "development");
    if (ls->https[0])
        printf("  https://%s  HTTP/2 and HTTP/1.1 over TLS%s\n", pasteable(ls->https, https, sizeof(https)),
               me_tls_settings(cfg)->cert_file[0] ? "" : " (self-signed certificate: curl -k)");
    if (ls->http[0])
        printf("  http://%s   HTTP/1.1 and h2c\n", pasteable(ls->http, http, sizeof(http)));
    if (token != NULL) {
        printf("Try it, with an upload token for user demo-user, album demo-album (premium, one hour):\n"
               "  TOKEN=%s\n", token);
        if (ls->https[0])
            printf("  curl -sk --http2 -H \"Authorization: Bearer $TOKEN\" https://%s/v1/whoami\n", https);
        else
            printf("  curl -s --http2-prior-knowledge -H \"Authorization: Bearer $TOKEN\" http://%s/v1/whoami\n", http);
        /* the upload page, with an upload and a view token in its fragment (never sent to a server) */
        claims.scope = ME_SCOPE_VIEW;
        char *view = me_server_settings(cfg)->demo_page && cfg->role != ME_ROLE_WORKER
                         ? me_token_mint(cfg, &claims, (int64_t)time(NULL), 3600, err, sizeof(err))
                         : NULL;
        if (view != NULL)
            printf("Upload photos from a browser, and see them:\n  %s://%s/demo#upload=%s&view=%s\n",
                   ls->http[0] ? "http" : "https", ls->http[0] ? http : https, token, view);
        free(view);
        free(token);
    } else {
        printf("Try it:\n  curl %s%s/readyz\n", ls->https[0] ? "-k https://" : "http://",
               ls->https[0] ? https : http);
    }
    fflush(stdout);
}

/* Waits up to 50 ms, and never past deadline_ms, for SIGTERM/SIGINT (a SIGCHLD meanwhile
 * collects orphans). Returns 1 on a shutdown signal, 0 once the deadline has passed, -1
 * after a tick (the caller re-checks its condition). */
static int wait_signal(const sigset_t *set, uint64_t deadline_ms)
{
    uint64_t now = (uint64_t)me_clock_mono_ms();
    if (now >= deadline_ms)
        return 0;
    uint64_t wait = deadline_ms - now > 50 ? 50 : deadline_ms - now;
    struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000};
    int sig = sigtimedwait(set, NULL, &ts);
    if (sig == SIGCHLD) {
        me_reaper_reap();
        return -1;
    }
    if (sig > 0)
        return 1;
    return errno == EAGAIN || errno == EINTR ? -1 : 0;
}

static int drained(me_server_t *srv)
{
    if (me_http_inflight() != 0)
        return 0;
    for (int i = 0; i < srv->nloops; i++)
        if (atomic_load(&srv->loops[i].busy) != 0)
            return 0;
    return 1;
}

/* The shutdown sequence; returns the exit status. */
static int drain(me_server_t *srv, const sigset_t *set)
{
    const me_shutdown_settings_t *sd = me_shutdown_settings(srv->cfg);
    atomic_store(&srv->draining, 1);
    me_metric_set(draining_gauge, NULL, 1);
    me_log_info(NULL, "shutdown signal: not ready; closing listeners in %llu ms",
                (unsigned long long)sd->delay);

    uint64_t deadline = (uint64_t)me_clock_mono_ms() + sd->delay;
    int r;
    while ((r = wait_signal(set, deadline)) != 0)
        if (r == 1)
            goto again;

    atomic_store(&srv->phase, PHASE_CLOSING);
    me_log_info(NULL, "listeners closed; draining requests in flight for at most %llu ms",
                (unsigned long long)sd->drain_timeout);
    deadline = (uint64_t)me_clock_mono_ms() + sd->drain_timeout;
    /* give every loop one turn to close its listener and report before judging */
    usleep(150 * 1000);
    while (!drained(srv)) {
        if ((r = wait_signal(set, deadline)) == 1)
            goto again;
        if (r == 0) {
            me_log_warn(NULL, "drain timeout: %lld requests still in flight are cut",
                        (long long)me_http_inflight());
            break;
        }
    }
    /* blocking work still queued or running (also for requests the timeout cut, or whose
     * client left) finishes while the loops run, so that every job's answer reaches a live
     * loop; only then do the loops stop */
    me_app_quiesce(srv->app);
    atomic_store(&srv->phase, PHASE_STOPPING);
    for (int i = 0; i < srv->nloops; i++)
        pthread_join(srv->loops[i].tid, NULL);
    me_log_info(NULL, "drained; exiting");
    return 0;

again:
    me_log_warn(NULL, "second shutdown signal: exiting at once");
    me_log_flush();
    _exit(1);
}

/* The signals the main thread takes: those that start a drain, and SIGCHLD, on which it
 * collects orphans (as a container's PID 1 every orphan becomes our child: reaper.h). */
static void shutdown_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGCHLD);
}

void me_server_block_signals(void)
{
    sigset_t set;
    shutdown_signals(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int me_server_run(me_config_t *cfg, me_app_t *app, int announce_start)
{
    const me_server_settings_t *ss = me_server_settings(cfg);
    const me_listen_settings_t *ls = me_listen_settings(cfg);
    char err[512];
    int status = 1, sig;
    me_server_t *srv = calloc(1, sizeof(*srv));
    sigset_t set;

    if (srv == NULL)
        return 1;
    srv->cfg = cfg;
    srv->app = app;
    srv->fds[LISTEN_HTTP] = srv->fds[LISTEN_HTTPS] = -1;
    me_metric_add(build_info, (const char *[]){ME_VERSION}, 1);

    /* blocked already in every thread (me_server_block_signals); this one takes them */
    me_server_block_signals();
    shutdown_signals(&set);

    if (ls->https[0] != '\0' && (srv->ssl_ctx = me_tls_ctx_new(cfg, err, sizeof(err))) == NULL)
        goto fail;
    if (setup_globalconf(srv, err, sizeof(err)) != 0)
        goto fail;
    if (ls->http[0] != '\0' && (srv->fds[LISTEN_HTTP] = open_listener(ls->http, err, sizeof(err))) < 0)
        goto fail;
    if (ls->https[0] != '\0' &&
        (srv->fds[LISTEN_HTTPS] = open_listener(ls->https, err, sizeof(err))) < 0)
        goto fail;
    srv->nloops = ss->threads;
    if ((srv->loops = calloc((size_t)srv->nloops, sizeof(loop_t))) == NULL) {
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    /* each loop listens on its own duplicate of the listening sockets, close-on-exec like the
     * originals (decoder children must not inherit listeners); made here, where a failure
     * can still stop the start */
    for (int i = 0; i < srv->nloops; i++)
        for (int l = 0; l < LISTEN_COUNT; l++)
            srv->loops[i].fds[l] = -1;
    for (int i = 0; i < srv->nloops; i++)
        for (int l = 0; l < LISTEN_COUNT; l++)
            if (srv->fds[l] >= 0 && (srv->loops[i].fds[l] = fcntl(srv->fds[l], F_DUPFD_CLOEXEC, 0)) < 0) {
                snprintf(err, sizeof(err), "cannot duplicate a listening socket: %s", strerror(errno));
                goto fail;
            }
    /* the originals go: connections made after the loops close theirs would wait forever */
    for (int l = 0; l < LISTEN_COUNT; l++)
        if (srv->fds[l] >= 0)
            close(srv->fds[l]), srv->fds[l] = -1;
    for (int i = 0; i < srv->nloops; i++) {
        srv->loops[i].srv = srv;
        h2o_multithread_create_thread(&srv->loops[i].tid, NULL, loop_main, &srv->loops[i]);
    }
    while (atomic_load(&srv->started) != srv->nloops)
        usleep(1000);

    me_log_info(NULL, "serving: http=%s https=%s loops=%d pool=%d profile=%s", ls->http[0] ? ls->http : "off",
                ls->https[0] ? ls->https : "off", srv->nloops, ss->pool_threads,
                me_config_is_production(cfg) ? "production" : "development");
    if (announce_start)
        announce(srv);
    me_app_start(app);

    me_reaper_reap(); /* orphans that came before we took SIGCHLD */
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig != SIGCHLD)
            break;
        me_reaper_reap();
    }
    status = drain(srv, &set);
    goto exit;

fail:
    me_log_error(NULL, "cannot start: %s", err);
exit:
    /* the loops have stopped (or never started); libh2o's contexts are left to the exit (a
     * drain that timed out leaves connections in them), its configuration is not */
    if (srv->globalconf_made)
        h2o_config_dispose(&srv->globalconf);
    for (int l = 0; l < LISTEN_COUNT; l++)
        if (srv->fds[l] >= 0)
            close(srv->fds[l]);
    for (int i = 0; srv->loops != NULL && i < srv->nloops; i++)
        for (int l = 0; l < LISTEN_COUNT; l++)
            if (srv->loops[i].fds[l] >= 0)
                close(srv->loops[i].fds[l]); /* never handed to a loop */
    if (srv->ssl_ctx != NULL)
        SSL_CTX_free(srv->ssl_ctx);
    free(srv->loops);
    free(srv);
    return status;
}
