/* fuzz_delivery_plan.c: the origin's answer to Range, If-None-Match and If-Range
 * (me_delivery_plan, me_delivery_etag_matches in server/delivery/serve.c). Input: 8 bytes of
 * object size, then Range, If-None-Match and If-Range split by NUL bytes. A 206 must lie
 * within the object, a 200 send it whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "server/delivery/serve.h"

#define ETAG "\"abc123\""
#define MTIME 1800000000

static char *field(const char *s, size_t len, int i, size_t *flen)
{
    const char *end = s + len;
    for (; i > 0 && s < end; i--) {
        const char *nul = memchr(s, '\0', (size_t)(end - s));
        s = nul != NULL ? nul + 1 : end;
    }
    const char *nul = memchr(s, '\0', (size_t)(end - s));
    *flen = (size_t)((nul != NULL ? nul : end) - s);
    char *out = malloc(*flen > 0 ? *flen : 1);
    if (out == NULL)
        abort();
    memcpy(out, s, *flen);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t objsize = 0;
    if (size < 8 || size > 4096)
        return 0;
    memcpy(&objsize, data, 8);
    if (data[0] & 1)
        objsize %= 100000; /* small objects half the time: ranges that fit */
    const char *s = (const char *)data + 8;
    size_t len = size - 8, rlen, ilen, irlen;
    char *range = field(s, len, 0, &rlen), *inm = field(s, len, 1, &ilen), *ir = field(s, len, 2, &irlen);
    me_delivery_plan_t p = me_delivery_plan(objsize, ETAG, MTIME, rlen ? range : NULL, rlen, ilen ? inm : NULL, ilen,
                                            irlen ? ir : NULL, irlen);
    switch (p.status) {
    case 200:
        if (p.length != objsize)
            abort();
        break;
    case 206:
        if (p.length == 0 || p.offset >= objsize || p.length > objsize - p.offset)
            abort();
        break;
    case 304:
    case 416:
        if (p.length != 0)
            abort();
        break;
    default:
        abort();
    }
    (void)me_delivery_etag_matches(inm, ilen, ETAG);
    free(range), free(inm), free(ir);
    return 0;
}
