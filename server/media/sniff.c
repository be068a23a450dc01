/* sniff.c: media types by magic bytes and ISO-BMFF brands. */
#include <string.h>
#include "server/media/sniff.h"

const char *me_sniff(const unsigned char *h, size_t len)
{
    static const struct {
        const char *brand, *type;
    } brands[] = {{"heic", "image/heic"}, {"heix", "image/heic"}, {"heim", "image/heic"}, {"heis", "image/heic"},
                  {"hevc", "image/heic"}, {"hevx", "image/heic"}, {"mif1", "image/heif"}, {"msf1", "image/heif"},
                  {"isom", "video/mp4"},  {"iso2", "video/mp4"},  {"iso4", "video/mp4"},  {"iso5", "video/mp4"},
                  {"iso6", "video/mp4"},  {"mp41", "video/mp4"},  {"mp42", "video/mp4"},  {"avc1", "video/mp4"},
                  {"M4V ", "video/mp4"},  {"3gp4", "video/mp4"},  {"3gp5", "video/mp4"},  {"qt  ", "video/quicktime"}};
    if (len >= 3 && h[0] == 0xFF && h[1] == 0xD8 && h[2] == 0xFF)
        return "image/jpeg";
    if (len >= 8 && memcmp(h, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "image/png";
    if (len >= 6 && (memcmp(h, "GIF87a", 6) == 0 || memcmp(h, "GIF89a", 6) == 0))
        return "image/gif";
    if (len >= 12 && memcmp(h, "RIFF", 4) == 0 && memcmp(h + 8, "WEBP", 4) == 0)
        return "image/webp";
    if (len >= 12 && memcmp(h + 4, "ftyp", 4) == 0)
        for (size_t i = 0; i < sizeof(brands) / sizeof(brands[0]); i++)
            if (memcmp(h + 8, brands[i].brand, 4) == 0)
                return brands[i].type;
    /* QuickTime files may open with other atoms before any ftyp */
    if (len >= 8 && (memcmp(h + 4, "moov", 4) == 0 || memcmp(h + 4, "mdat", 4) == 0 || memcmp(h + 4, "wide", 4) == 0))
        return "video/quicktime";
    return NULL;
}

const char *me_sniff_kind(const char *type)
{
    if (type == NULL)
        return NULL;
    if (strncmp(type, "image/", 6) == 0)
        return "photo";
    if (strncmp(type, "video/", 6) == 0)
        return "video";
    return NULL;
}
