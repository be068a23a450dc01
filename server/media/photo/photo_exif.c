/* photo_exif.c: when and where a photo was taken, from the EXIF fields libvips parsed. */
#include "server/media/photo/photo_exif.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_DATETIME "exif-ifd2-DateTimeOriginal"
#define FIELD_OFFSET "exif-ifd2-OffsetTimeOriginal"
#define FIELD_LAT "exif-ifd3-GPSLatitude"
#define FIELD_LAT_REF "exif-ifd3-GPSLatitudeRef"
#define FIELD_LON "exif-ifd3-GPSLongitude"
#define FIELD_LON_REF "exif-ifd3-GPSLongitudeRef"

/* 1 when s starts with the digits and separators of form ('9' a digit, others themselves). */
static int matches(const char *s, const char *form)
{
    for (; *form; s++, form++)
        if (*form == '9' ? !isdigit((unsigned char)*s) : *s != *form)
            return 0;
    return 1;
}

static int number(const char *s, int n)
{
    int v = 0;
    while (n--)
        v = v * 10 + (*s++ - '0');
    return v;
}

int me_photo_exif_datetime(const char *dt, const char *offset, char *out, size_t len)
{
    int mo, d, h, mi, sec;

    if (len)
        out[0] = '\0';
    /* cameras without a clock write "0000:00:00 00:00:00" or blanks: unknown */
    if (dt == NULL || !matches(dt, "9999:99:99 99:99:99") || number(dt, 4) < 1800)
        return ME_EINVAL;
    mo = number(dt + 5, 2), d = number(dt + 8, 2);
    h = number(dt + 11, 2), mi = number(dt + 14, 2), sec = number(dt + 17, 2);
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return ME_EINVAL;
    if (offset != NULL && !((offset[0] == '+' || offset[0] == '-') && matches(offset + 1, "99:99") &&
                            number(offset + 1, 2) <= 14 && number(offset + 4, 2) <= 59))
        offset = NULL;
    if ((size_t)snprintf(out, len, "%.4s-%.2s-%.2sT%.2s:%.2s:%.2s%.6s", dt, dt + 5, dt + 8, dt + 11, dt + 14, dt + 17,
                         offset != NULL ? offset : "") >= len) {
        if (len)
            out[0] = '\0';
        return ME_EINVAL;
    }
    return 0;
}

/* Reads "n/d" at *s (advancing past it) into *out. 1 when it is one with d != 0. */
static int rational(const char **s, double *out)
{
    char *end;
    long long n, d;

    while (**s == ' ')
        ++*s;
    n = strtoll(*s, &end, 10);
    if (end == *s || *end != '/')
        return 0;
    *s = end + 1;
    d = strtoll(*s, &end, 10);
    if (end == *s || d <= 0 || n < 0)
        return 0;
    *s = end;
    *out = (double)n / (double)d;
    return 1;
}

int me_photo_exif_coordinate(const char *value, const char *ref, double *out)
{
    double deg, min, sec, v;
    const char *s = value;

    if (value == NULL || ref == NULL || !rational(&s, &deg) || !rational(&s, &min) || !rational(&s, &sec))
        return ME_EINVAL;
    v = deg + min / 60 + sec / 3600;
    if (ref[0] == 'S' || ref[0] == 'W')
        v = -v;
    else if (ref[0] != 'N' && ref[0] != 'E')
        return ME_EINVAL;
    if (!isfinite(v) || v < -180 || v > 180)
        return ME_EINVAL;
    *out = v;
    return 0;
}

/* The string field name of img, or NULL when it has none. */
static const char *field(VipsImage *img, const char *name)
{
    const char *s = NULL;
    if (vips_image_get_typeof(img, name) == 0 || vips_image_get_string(img, name, &s) != 0) {
        vips_error_clear();
        return NULL;
    }
    return s;
}

void me_photo_exif_facts(VipsImage *img, int keep_location, me_photo_result_t *out)
{
    const char *lat = field(img, FIELD_LAT), *lon = field(img, FIELD_LON);
    double y, x;

    (void)!me_photo_exif_datetime(field(img, FIELD_DATETIME), field(img, FIELD_OFFSET), out->taken_at,
                                  sizeof(out->taken_at));
    out->has_location = lat != NULL || lon != NULL;
    if (!keep_location || me_photo_exif_coordinate(lat, field(img, FIELD_LAT_REF), &y) != 0 ||
        me_photo_exif_coordinate(lon, field(img, FIELD_LON_REF), &x) != 0 || y < -90 || y > 90)
        return;
    out->has_coordinates = 1;
    out->latitude = y;
    out->longitude = x;
}
