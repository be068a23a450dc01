/* config.h: the configuration: a table of settings read from YAML, overridden by the environment. */
#ifndef ME_CONFIG_H
#define ME_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "server/core/error.h"

#define ME_CONFIG_DEFAULT_PATH "conf/mediaedge.yaml"
#define ME_DEV_HS256_SECRET "mediaedge-development-key-do-not-use-in-production"

typedef enum { ME_ROLE_ALL, ME_ROLE_API, ME_ROLE_WORKER } me_role_t;
typedef enum { ME_LOG_DEBUG, ME_LOG_INFO, ME_LOG_WARN, ME_LOG_ERROR } me_log_level_t;
typedef enum { ME_ALG_HS256, ME_ALG_ES256 } me_token_alg_t;

/* Every setting; strings are owned by the struct and freed by me_config_free().
 * Sizes are in bytes, durations in milliseconds. A value of 0 for a setting documented as
 * "auto" is replaced by me_config_resolve() with one derived from the machine (cgroup limits). */
typedef struct {
    char *path; /* the file it was read from, or NULL */

    /* server */
    me_role_t role;
    char *data_dir;             /* spill files, self-signed certificate */
    int threads;                /* event loops; 0 = auto (cgroup cpu.max) */
    int pool_threads;           /* blocking-work threads; 0 = auto */
    int demo_page;              /* development page at / */

    /* listen */
    char *listen_http;          /* "host:port"; empty disables */
    char *listen_https;         /* "host:port"; empty disables */

    /* tls */
    char *tls_cert_file;        /* empty = self-signed, made at start under data_dir */
    char *tls_key_file;

    /* http */
    uint64_t max_patch_size;    /* largest request body accepted */
    uint64_t min_client_rate;   /* bytes/s a client must sustain while sending a body */
    uint64_t http1_request_timeout; /* ms; 0 = auto: 10 s + max_patch_size / min_client_rate */
    uint64_t idle_timeout;      /* ms */
    int http2_max_streams;      /* concurrent streams per HTTP/2 connection */
    int max_connections;        /* open client connections per process; past it accepting pauses */
    uint64_t body_spill_threshold; /* bodies above this go to a file; 0 = auto from memory.max */
    uint64_t max_body_memory;   /* upload bytes held past arrival, per process; 0 = auto */
    uint64_t min_free_disk;     /* upload bodies get 503 while data_dir has less free */
    char *cors_origins;         /* origins browsers may call the API from: "a,b" (no "*") */
    uint64_t cors_max_age;      /* ms browsers may cache a preflight's answer */

    /* storage */
    char *storage_backend;      /* "file" or "s3" */
    char *storage_root;         /* file backend's directory */

    /* tokens */
    me_token_alg_t token_alg;
    char *token_hs256_secret;   /* secret */
    char *token_es256_public_key_file;
    char *token_es256_private_key_file; /* only for `mediaedge token` (development, tests) */
    char *token_issuer;
    char *token_audience;
    uint64_t token_leeway;      /* ms */
    int token_allow_hs256_in_production;
    int token_cache_entries;

    /* log */
    me_log_level_t log_level;
    int log_access;

    /* uploads */
    uint64_t upload_max_size;   /* largest upload (the token's max_bytes may lower it) */
    uint64_t upload_expire_after; /* ms an unfinished upload is kept after its creation */

    /* photos */
    int photo_max_pixels;       /* width x height a photo may declare; larger ones are refused unread */
    uint64_t photo_max_bytes;   /* bytes of a photo the pipeline reads; larger ones are refused */
    int photo_jpeg_quality;     /* 1..100 */
    int photo_webp_quality;     /* 1..100 */
    int photo_webp_effort;      /* libwebp's method, 0 (fastest) ..6 (smallest) */
    int photo_keep_location;    /* return GPS coordinates in the facts (never in variants) */
    char *photo_variants;       /* "name:size,name:sizexsize,...": the variants made of each photo */
    int photo_sandbox;          /* decode in confined child processes (photo_sandbox.h) */
    uint64_t photo_timeout;     /* ms one photo may take in a decoder before it is killed */

    /* shutdown */
    uint64_t shutdown_delay;    /* ms listeners stay open after SIGTERM */
    uint64_t shutdown_drain_timeout; /* ms in-flight requests get after that */

    /* jobs */
    int job_workers;            /* processing threads; 0 = auto: the CPU limit */
    int job_max_attempts;       /* tries of a job that keeps failing for a passing reason */
    uint64_t job_retry_after;   /* ms before the first retry, doubled for each next one */
    uint64_t job_reconcile_every; /* ms between two looks for media stuck before ready */
    uint64_t job_stale_after;   /* ms a media may stay uploaded or processing unqueued */

    /* webhooks */
    char *webhook_url;          /* "" = none */
    char *webhook_secret;       /* HMAC-SHA256 key of Mediaedge-Signature */
    uint64_t webhook_timeout;   /* ms for one delivery */
    int webhook_max_attempts;
    uint64_t webhook_retry_after; /* ms before the first retry, doubled for each next one */

    /* derived by me_config_resolve() (not settings) */
    uint64_t memory_limit;      /* bytes: cgroup memory.max or physical memory */
    int cpu_limit;              /* cgroup cpu.max rounded up, or online CPUs */
    uint64_t auto_resolved;     /* private to config.c: which auto settings resolve filled */
} me_config_t;

/* Wipes the token keys (secrets of the tokens section) from cfg and memory: for the worker
 * role, which checks no tokens and decodes untrusted files. The settings become "". */
void me_config_forget_token_keys(me_config_t *cfg);

/* Fills cfg with the defaults. Cannot fail. */
void me_config_defaults(me_config_t *cfg);

/* Reads the YAML file at path over the defaults, then applies MEDIAEDGE_<SECTION>_<KEY>
 * variables from envp (NULL-terminated "NAME=value" strings; NULL for none), reads secrets
 * given as files (<key>_file), and validates. path may be NULL (defaults and environment
 * only); a missing file at path is an error.
 * On error ME_ECONFIG is returned, err (of errlen bytes) holds "file:line: what is wrong"
 * (or "MEDIAEDGE_X: what is wrong" for the environment), and cfg holds partial values that
 * the caller must still release with me_config_free(). */
int me_config_load(me_config_t *cfg, const char *path, char *const *envp, char *err,
                   size_t errlen) ME_MUST_CHECK;

/* Fills the auto (0) values from the machine's limits (me_cgroup_*); idempotent. */
void me_config_resolve(me_config_t *cfg);

/* The production profile is any non-file storage. Returns 0 when cfg may run, or
 * ME_ECONFIG with err naming the first development default left in place. */
int me_config_check_production(const me_config_t *cfg, char *err, size_t errlen) ME_MUST_CHECK;

/* 1 when cfg runs with production rules (non-file storage). */
int me_config_is_production(const me_config_t *cfg);

/* Writes the effective configuration as YAML to out, secrets replaced by "<redacted>". */
void me_config_print(const me_config_t *cfg, FILE *out);

/* Frees the strings cfg owns; cfg may then be loaded again. */
void me_config_free(me_config_t *cfg);

/* Steps through a list: a list setting's value ("a,b,c") or any comma-separated text, blanks
 * around items ignored, empty items skipped. Returns 1 with *item and *len (not
 * NUL-terminated) set to the next item after *p and *p moved past it, or 0 at the end. */
int me_config_list_next(const char **p, const char **item, size_t *len);

/* Parses "16MiB", "512k", "1G", "1024" into bytes. Returns 0 or ME_EINVAL. */
int me_config_parse_size(const char *s, uint64_t *out) ME_MUST_CHECK;

/* Parses "250ms", "5s", "2m", "1h", "30" (seconds) into milliseconds. Returns 0 or ME_EINVAL. */
int me_config_parse_duration(const char *s, uint64_t *out) ME_MUST_CHECK;

#endif
