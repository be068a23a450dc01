/* s3_config.c: the s3 section's table and its cross-setting rules. */
#include "server/storage/s3/s3_config.h"

#include <string.h>
#include "server/storage/storage_config.h"

static const char *const addressing[] = {"virtual", "path", NULL};
static const char *const sse[] = {"none", "s3", "kms", NULL};

/* scheme://host[:port], nothing after it */
static int endpoint_valid(const char *v)
{
    const char *host = strncmp(v, "https://", 8) == 0 ? v + 8 : strncmp(v, "http://", 7) == 0 ? v + 7 : NULL;
    if (v[0] == '\0')
        return 1;
    if (host == NULL || host[0] == '\0' || strlen(v) > 255)
        return 0;
    for (const char *c = host; *c != '\0'; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
              *c == '-' || *c == ':' || *c == '[' || *c == ']'))
            return 0;
    return 1;
}

/* S3's bucket names: 3..63 of [a-z0-9.-], starting and ending with a letter or digit */
static int bucket_valid(const char *v)
{
    size_t n = strlen(v);
    if (n == 0)
        return 1; /* checked against the backend below */
    if (n < 3 || n > 63 || v[0] == '.' || v[0] == '-' || v[n - 1] == '.' || v[n - 1] == '-')
        return 0;
    for (const char *c = v; *c != '\0'; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-'))
            return 0;
    return 1;
}

static int region_valid(const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n > 32)
        return 0;
    for (const char *c = v; *c != '\0'; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
            return 0;
    return 1;
}

#define S3(...) ME_SETTING(me_s3_settings_t, __VA_ARGS__)
static const me_setting_t s3_settings[] = {
    S3("endpoint", ME_SETTING_STRING, endpoint, "", .valid = endpoint_valid, .form = "scheme://host[:port]"),
    S3("region", ME_SETTING_STRING, region, "us-east-1", .valid = region_valid, .form = "a region (us-east-1)"),
    S3("bucket", ME_SETTING_STRING, bucket, "", .valid = bucket_valid, .form = "a bucket name (3-63 of a-z 0-9 . -)"),
    S3("addressing", ME_SETTING_ENUM, addressing, "virtual", .choices = addressing),
    S3("sse", ME_SETTING_ENUM, sse, "none", .choices = sse),
    S3("sse_kms_key_id", ME_SETTING_STRING, sse_kms_key_id, ""),
    S3("sign_payload", ME_SETTING_BOOL, sign_payload, "true"),
    S3("connect_timeout", ME_SETTING_DURATION, connect_timeout, "5s", .min = 100, .max = 300000),
    S3("timeout", ME_SETTING_DURATION, timeout, "5m", .min = 1000, .max = 3600000),
    S3("max_attempts", ME_SETTING_INT, max_attempts, "5", .min = 1, .max = 20),
    S3("retry_base", ME_SETTING_DURATION, retry_base, "100ms", .min = 1, .max = 60000),
    S3("retry_max", ME_SETTING_DURATION, retry_max, "5s", .min = 1, .max = 300000),
    S3("sts_endpoint", ME_SETTING_STRING, sts_endpoint, "", .valid = endpoint_valid, .form = "scheme://host[:port]"),
    S3("ca_file", ME_SETTING_STRING, ca_file, ""),
};

static int s3_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_s3_settings_t *s = values;
    const char *backend = me_storage_settings(cfg)->backend;

    if (backend == NULL || strcmp(backend, "s3") != 0)
        return 0;
    if (s->bucket == NULL || s->bucket[0] == '\0')
        return me_config_reject(ck, &s->bucket, "s3.bucket is required with storage.backend s3");
    if (s->addressing == ME_S3_ADDRESSING_VIRTUAL && strchr(s->bucket, '.') != NULL &&
        (s->endpoint == NULL || s->endpoint[0] == '\0' || strncmp(s->endpoint, "https://", 8) == 0))
        return me_config_reject(ck, &s->addressing,
                                "s3.addressing virtual with a dotted bucket breaks TLS certificates: use path");
    if (!s->sign_payload && s->endpoint != NULL && strncmp(s->endpoint, "http://", 7) == 0)
        return me_config_reject(ck, &s->sign_payload, "s3.sign_payload off needs an https:// endpoint");
    if (s->sse != ME_S3_SSE_KMS && s->sse_kms_key_id != NULL && s->sse_kms_key_id[0] != '\0')
        return me_config_reject(ck, &s->sse_kms_key_id, "s3.sse_kms_key_id needs s3.sse kms");
    if (s->retry_base > s->retry_max)
        return me_config_reject(ck, &s->retry_base, "s3.retry_base is longer than s3.retry_max");
    return 0;
}

const me_config_section_t me_s3_config_section = {
    .name = "s3",
    .size = sizeof(me_s3_settings_t),
    ME_CONFIG_TABLE(s3_settings),
    .check = s3_check,
};
