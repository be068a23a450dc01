/* photo_variant.c: the variants' configured form, "name:size" or "name:sizexsize". */
#include <string.h>
#include "server/media/photo/photo.h"

/* Reads a size of 1 to 5 digits from *p, moving *p past it; 0 when there is none. */
static int read_size(const char **p, const char *end)
{
    int n = 0, digits = 0;

    while (*p < end && **p >= '0' && **p <= '9' && digits < 6)
        n = n * 10 + (*(*p)++ - '0'), digits++;
    return digits >= 1 && digits <= 5 ? n : 0;
}

int me_photo_variant_parse(const char *text, size_t len, me_photo_variant_t *out)
{
    const char *end = text + len, *colon = memchr(text, ':', len), *p;
    size_t name_len = colon != NULL ? (size_t)(colon - text) : 0;
    int size, side;

    if (name_len == 0 || name_len > ME_PHOTO_NAME_MAX ||
        strspn(text, "abcdefghijklmnopqrstuvwxyz0123456789_-") < name_len)
        return 0;
    p = colon + 1;
    size = read_size(&p, end);
    if (size < ME_PHOTO_SIZE_MIN || size > ME_PHOTO_SIZE_MAX)
        return 0;
    side = 0;
    if (p < end && *p == 'x') {
        p++;
        if ((side = read_size(&p, end)) != size) /* a crop is square */
            return 0;
    }
    if (p != end)
        return 0;
    memset(out, 0, sizeof(*out));
    memcpy(out->name, text, name_len);
    out->size = size;
    out->square = side != 0;
    return 1;
}
