/* upload_header.c: the upload protocols' request header values, parsed from bytes. */
#include "server/upload/upload_header.h"

#include <string.h>

int me_upload_header_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t n = 0;
    if (s == NULL || len == 0 || len > 20)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || n > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return 0;
        n = n * 10 + (uint64_t)(s[i] - '0');
    }
    *out = n;
    return 1;
}

static int is(const char *s, size_t len, const char *lit)
{
    return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

int me_upload_header_complete(const char *s, size_t len)
{
    if (s == NULL)
        return -1;
    return is(s, len, "?1") ? 1 : is(s, len, "?0") ? 0 : -1;
}

int me_upload_header_draft_version(const char *s, size_t len)
{
    if (s == NULL)
        return -1;
    return is(s, len, "5") ? 5 : is(s, len, "6") ? 6 : -1;
}
