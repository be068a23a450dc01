/* photo_webp.c: WebP without metadata: the RIFF chunks EXIF, XMP and ICCP dropped. */
#include "server/media/photo/photo_webp.h"

#include <stdint.h>
#include <string.h>

#define HEADER 12 /* "RIFF" size "WEBP" */
#define CHUNK 8   /* fourcc size */
#define VP8X_FLAGS_METADATA (0x20 | 0x08 | 0x04) /* ICC, EXIF, XMP */

static uint32_t get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16), p[3] = (unsigned char)(v >> 24);
}

size_t me_photo_webp_strip(unsigned char *data, size_t len)
{
    size_t pos = HEADER, out = HEADER;

    if (len < HEADER || len > UINT32_MAX || memcmp(data, "RIFF", 4) != 0 || memcmp(data + 8, "WEBP", 4) != 0 ||
        get_le32(data + 4) != len - 8)
        return 0;
    while (pos < len) {
        size_t size, whole;
        if (len - pos < CHUNK)
            return 0;
        size = get_le32(data + pos + 4);
        whole = CHUNK + size + (size & 1);
        if (whole > len - pos)
            return 0;
        if (memcmp(data + pos, "EXIF", 4) != 0 && memcmp(data + pos, "XMP ", 4) != 0 &&
            memcmp(data + pos, "ICCP", 4) != 0) {
            memmove(data + out, data + pos, whole);
            if (memcmp(data + out, "VP8X", 4) == 0 && size > 0)
                data[out + CHUNK] &= (unsigned char)~VP8X_FLAGS_METADATA;
            out += whole;
        }
        pos += whole;
    }
    if (out == HEADER)
        return 0; /* no image chunk at all */
    put_le32(data + 4, (uint32_t)(out - 8));
    return out;
}
