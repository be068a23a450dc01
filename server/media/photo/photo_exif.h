/* photo_exif.h: the facts a photo's EXIF gives (when it was taken, where), read from the
 * fields libvips parsed out of it ("exif-ifd2-DateTimeOriginal", "exif-ifd3-GPSLatitude"). */
#ifndef ME_PHOTO_EXIF_H
#define ME_PHOTO_EXIF_H

#include <stddef.h>
#include <vips/vips.h>
#include "server/media/photo/photo.h"

/* Sets out->taken_at, has_location and, when keep_location, the coordinates, from img's
 * EXIF fields. Missing or malformed fields leave the facts unknown; never fails. */
void me_photo_exif_facts(VipsImage *img, int keep_location, me_photo_result_t *out);

/* Formats EXIF "YYYY:MM:DD HH:MM:SS" (dt) and an optional "+HH:MM" (offset, NULL or
 * malformed: left out) as ISO 8601 into out. 0, or ME_EINVAL (out is then ""). */
int me_photo_exif_datetime(const char *dt, const char *offset, char *out, size_t len) ME_MUST_CHECK;

/* Parses a GPS coordinate as libvips gives it ("51/1 30/1 666/25 (51, 30, 26.64, ...)")
 * with its reference ("N", "S", "E", "W"; S and W negate) into degrees. 0, or ME_EINVAL. */
int me_photo_exif_coordinate(const char *value, const char *ref, double *out) ME_MUST_CHECK;

#endif
