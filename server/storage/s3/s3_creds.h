/* s3_creds.h: where the S3 backend's AWS credentials come from, and keeping them fresh.
 *
 * Sources, the first that is configured wins (the order of the AWS SDKs):
 *   1. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN): fixed.
 *   2. IRSA: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (AWS_ROLE_SESSION_NAME optional):
 *      STS AssumeRoleWithWebIdentity at s3.sts_endpoint with the file's token, read again at
 *      every exchange (the kubelet rotates it).
 *   3. EKS Pod Identity (or ECS): AWS_CONTAINER_CREDENTIALS_FULL_URI (or _RELATIVE_URI, on
 *      169.254.170.2) with the token of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (read at every
 *      exchange) or AWS_CONTAINER_AUTHORIZATION_TOKEN in the Authorization header; plain http
 *      only to loopback or the agents' link-local addresses.
 *   4. The shared credentials file: AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, the
 *      profile AWS_PROFILE (or "default"): aws_access_key_id, aws_secret_access_key,
 *      aws_session_token.
 * Credentials that expire (2 and 3) are exchanged again ME_S3_CREDS_REFRESH_BEFORE seconds
 * before they do, by the first request that needs them; if that fails while the old ones
 * still hold, the old ones are used and the exchange is tried again at most every 10 s.
 * No secret or token is ever logged. */
#ifndef ME_S3_CREDS_H
#define ME_S3_CREDS_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"
#include "server/storage/s3/s3_config.h"

#define ME_S3_CREDS_REFRESH_BEFORE 300
#define ME_S3_KEY_ID_MAX 128
#define ME_S3_SECRET_MAX 128
#define ME_S3_TOKEN_MAX 4096

typedef struct {
    char access_key[ME_S3_KEY_ID_MAX + 1];
    char secret_key[ME_S3_SECRET_MAX + 1];
    char token[ME_S3_TOKEN_MAX + 1]; /* "" without a session token */
    int64_t expires;                 /* seconds since the epoch; 0: never */
} me_s3_credentials_t;

typedef struct me_s3_creds me_s3_creds_t;

/* Finds the source (from the process environment) and gets a first set of credentials.
 * NULL with err set ("s3: ...", naming the variables) when there is none or the first
 * exchange fails. Free with me_s3_creds_free(). */
me_s3_creds_t *me_s3_creds_new(const me_s3_settings_t *s, char *err, size_t errlen);
void me_s3_creds_free(me_s3_creds_t *c);

/* Copies valid credentials into *out, exchanging them first when they are near their end.
 * 0, or ME_EIO when they have expired and cannot be renewed. Thread-safe; may block for one
 * exchange (s3.connect_timeout, s3.timeout). */
int me_s3_creds_get(me_s3_creds_t *c, me_s3_credentials_t *out) ME_MUST_CHECK;

/* "env", "irsa", "pod-identity" or "file": for logs and tests. */
const char *me_s3_creds_source(const me_s3_creds_t *c);

#endif
