/* server_config.h: the HTTP server's sections of the configuration: server, listen, tls, http, shutdown. */
#ifndef ME_SERVER_CONFIG_H
#define ME_SERVER_CONFIG_H

#include <stdint.h>
#include "server/core/config.h"

/* server: (server.role is cfg->role: every module asks for it) */
typedef struct {
    char *data_dir;   /* spill files, self-signed certificate */
    int threads;      /* event loops; 0 = auto (cgroup cpu.max) */
    int pool_threads; /* blocking-work threads; 0 = auto */
    int demo_page;    /* development page at / */
} me_server_settings_t;

/* listen: */
typedef struct {
    char *http;  /* "host:port"; empty disables */
    char *https; /* "host:port"; empty disables */
} me_listen_settings_t;

/* tls: */
typedef struct {
    char *cert_file; /* empty = self-signed, made at start under server.data_dir */
    char *key_file;
} me_tls_settings_t;

/* http: */
typedef struct {
    uint64_t max_patch_size;        /* largest request body accepted */
    uint64_t min_client_rate;       /* bytes/s a client must sustain while sending a body */
    uint64_t http1_request_timeout; /* ms; 0 = auto: 10 s + max_patch_size / min_client_rate */
    uint64_t idle_timeout;          /* ms */
    int http2_max_streams;          /* concurrent streams per HTTP/2 connection */
    int max_connections;            /* open client connections per process; past it accepting pauses */
    uint64_t body_spill_threshold;  /* bodies above this go to a file; 0 = auto from memory.max */
    uint64_t max_body_memory;       /* upload bytes held past arrival, per process; 0 = auto */
    uint64_t min_free_disk;         /* upload bodies get 503 while data_dir has less free */
    char *cors_origins;             /* origins browsers may call the API from: "a,b" (no "*") */
    uint64_t cors_max_age;          /* ms browsers may cache a preflight's answer */
} me_http_settings_t;

/* shutdown: */
typedef struct {
    uint64_t delay;         /* ms listeners stay open after SIGTERM */
    uint64_t drain_timeout; /* ms in-flight requests get after that */
} me_shutdown_settings_t;

extern const me_config_section_t me_server_config_section;
extern const me_config_section_t me_listen_config_section;
extern const me_config_section_t me_tls_config_section;
extern const me_config_section_t me_http_config_section;
extern const me_config_section_t me_shutdown_config_section;

/* Each section's values in cfg (owned by cfg). */
static inline const me_server_settings_t *me_server_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_server_config_section);
}

static inline const me_listen_settings_t *me_listen_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_listen_config_section);
}

static inline const me_tls_settings_t *me_tls_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_tls_config_section);
}

static inline const me_http_settings_t *me_http_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_http_config_section);
}

static inline const me_shutdown_settings_t *me_shutdown_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_shutdown_config_section);
}

#endif
