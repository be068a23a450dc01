/* sniff.h: what a file is, from its first bytes, never from its name or the client's word:
 * the media type stored in the manifest and the kind (photo or video) that picks its
 * pipeline. */
#ifndef ME_SNIFF_H
#define ME_SNIFF_H

#include <stddef.h>

/* Bytes of a file's head that me_sniff() looks at (fewer is fine, more is ignored). */
#define ME_SNIFF_HEAD 32

/* The media type of a file starting with head (len bytes): image/jpeg, image/png,
 * image/gif, image/webp, image/heic, image/heif, video/mp4 or video/quicktime; NULL for
 * anything else. A static string. */
const char *me_sniff(const unsigned char *head, size_t len);

/* "photo" or "video" for a media type me_sniff() gives, NULL for any other. */
const char *me_sniff_kind(const char *type);

#endif
