/* s3_config.h: the s3 section of the configuration: where the bucket is, how requests to it
 * are made (addressing, payload signing, server-side encryption), timeouts and retries. */
#ifndef ME_S3_CONFIG_H
#define ME_S3_CONFIG_H

#include <stdint.h>
#include "server/core/config.h"

typedef enum { ME_S3_ADDRESSING_VIRTUAL, ME_S3_ADDRESSING_PATH } me_s3_addressing_t;
typedef enum { ME_S3_SSE_NONE, ME_S3_SSE_S3, ME_S3_SSE_KMS } me_s3_sse_t;

/* s3: */
typedef struct {
    char *endpoint;           /* "" = https://s3.<region>.amazonaws.com; else scheme://host[:port] */
    char *region;             /* the SigV4 region */
    char *bucket;             /* required with storage.backend s3 */
    int addressing;           /* me_s3_addressing_t: virtual (bucket.host) or path (host/bucket) */
    int sse;                  /* me_s3_sse_t: server-side encryption asked for on every write */
    char *sse_kms_key_id;     /* with sse kms: the key's id or ARN ("" = the bucket's AWS managed key) */
    int sign_payload;         /* SHA-256 of every body in the signature; off = UNSIGNED-PAYLOAD (https only) */
    uint64_t connect_timeout; /* ms */
    uint64_t timeout;         /* ms: one request, whole */
    int max_attempts;         /* tries of a retryable step (500, 503, SlowDown, connection errors) */
    uint64_t retry_base;      /* ms: the first backoff's cap, doubled each try (full jitter) */
    uint64_t retry_max;       /* ms: the cap of any one backoff */
    char *sts_endpoint;       /* "" = https://sts.<region>.amazonaws.com (IRSA's AssumeRoleWithWebIdentity) */
    char *ca_file;            /* "" = the system's CAs */
} me_s3_settings_t;

extern const me_config_section_t me_s3_config_section;

/* cfg's s3 section (owned by cfg). */
static inline const me_s3_settings_t *me_s3_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_s3_config_section);
}

#endif
