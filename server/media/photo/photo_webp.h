/* photo_webp.h: removes metadata chunks from a WebP file that libvips wrote.
 *
 * Why: Debian 12's libvips 8.14.1 writes an EXIF chunk into every WebP it saves, "strip"
 * or not (it rebuilds one from the image's header: orientation, resolution, and whatever
 * EXIF fields are left), so variants would not be clean without this pass. */
#ifndef ME_PHOTO_WEBP_H
#define ME_PHOTO_WEBP_H

#include <stddef.h>

/* Removes the EXIF, XMP and ICCP chunks of the WebP file in data (len bytes), in place, and
 * clears their flags in the VP8X header. Returns the new length (at most len), or 0 when
 * data is not a well-formed WebP file (then data may be partly rewritten). */
size_t me_photo_webp_strip(unsigned char *data, size_t len);

#endif
