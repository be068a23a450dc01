/* photo.h: the photo pipeline: one untrusted photo in memory in, its facts and every encoded
 * variant out (decoded once, on libvips with an explicit loader per format).
 *
 * Inputs: JPEG, PNG, HEIC/HEIF, WebP, GIF (its first frame), told apart by their first
 * bytes; libvips never guesses a loader, and every other loader (ImageMagick, PDF, SVG, ...)
 * is blocked in the process. Limits are checked before any pixel is decoded: the size of
 * the file (photos.max_bytes) and the width x height its header declares
 * (photos.max_pixels), so a decompression bomb fails fast in bounded memory.
 *
 * Variants: made from one decode (shrink-on-load where the format allows, then one resize
 * to the largest size any variant needs, held in memory once), each as JPEG (progressive,
 * optimised) and WebP. Orientation (EXIF, or HEIF's irot/imir) is applied exactly once;
 * colour goes through the embedded ICC profile (or CMYK's default) to sRGB; variants carry
 * no metadata at all: no EXIF, XMP, IPTC, ICC profile, GPS. The input is never modified.
 *
 * Every function is thread-safe and blocks (CPU): call it from pool threads. libvips is
 * set up once per process by the first call (cache off, one worker thread per pipeline, so
 * that parallel jobs share the cores through the pool rather than through libvips). While
 * the process has idle cores (fewer busy than pc->threads), a photo borrows them: a second
 * libvips worker for its decode, and helper threads that encode its outputs side by side,
 * costliest first (photo_cores.h); with every core busy it runs on its caller's thread
 * alone, and its outputs are the same bytes either way. */
#ifndef ME_PHOTO_H
#define ME_PHOTO_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "server/core/config.h"
#include "server/core/error.h"
#include "server/storage/storage.h"

#define ME_PHOTO_VARIANTS_MAX 8
#define ME_PHOTO_NAME_MAX 15 /* a variant's name: [a-z0-9_-], a storage key segment */
#define ME_PHOTO_SIZE_MIN 16   /* a variant's size in pixels: [MIN, MAX] */
#define ME_PHOTO_SIZE_MAX 8192
#define ME_PHOTO_FORMATS 2   /* each variant as JPEG and as WebP */
#define ME_PHOTO_OUTPUTS_MAX (ME_PHOTO_VARIANTS_MAX * ME_PHOTO_FORMATS)

/* One variant: the longest edge at most size pixels, or (square) a size x size crop of
 * the most interesting part. Never upscaled: a smaller photo keeps its size (a square one
 * becomes the largest square it holds, up to size). */
typedef struct {
    char name[ME_PHOTO_NAME_MAX + 1];
    int size;
    int square;
} me_photo_variant_t;

typedef struct {
    uint64_t max_pixels;
    uint64_t max_bytes;
    int threads; /* cores the process's photos may keep busy in all (photo_cores.h): the CPU limit */
    int jpeg_quality, webp_quality, webp_effort;
    int keep_location;
    int nvariants;
    me_photo_variant_t variants[ME_PHOTO_VARIANTS_MAX];
} me_photo_config_t;

/* One encoded variant. data is owned by the result that holds it. */
typedef struct {
    const char *name;         /* points into the config's variant */
    const char *ext;          /* "jpg" or "webp" */
    const char *content_type; /* "image/jpeg" or "image/webp" */
    int width, height;
    void *data;
    size_t len;
} me_photo_output_t;

/* What a photo is. width and height are the original's as displayed (after orientation). */
typedef struct {
    char format[8];           /* "jpeg", "png", "heif", "webp", "gif"; "" when not recognised */
    char content_type[16];    /* "image/jpeg", ... (arrays, not pointers: the result crosses from
                               * the decoder process, photo_sandbox.h) */
    int width, height;
    int orientation;          /* the EXIF orientation applied, 1..8 (1: none) */
    char taken_at[32];        /* EXIF DateTimeOriginal, ISO 8601 ("2021-05-01T12:34:56", with
                               * "+02:00" when OffsetTimeOriginal gives it); "" when unknown */
    int has_location;         /* the photo carries GPS coordinates */
    int has_coordinates;      /* latitude/longitude are set: only with keep_location */
    double latitude, longitude;
    int noutputs;
    me_photo_output_t outputs[ME_PHOTO_OUTPUTS_MAX];
    char detail[256];         /* on failure, what went wrong (libvips' words): for logs only */
} me_photo_result_t;

/* Reads one variant as configured (photos.variants): "name:size" (the longest edge at most
 * size) or "name:sizexsize" (a square crop), name 1 to ME_PHOTO_NAME_MAX of [a-z0-9_-], size
 * from ME_PHOTO_SIZE_MIN to ME_PHOTO_SIZE_MAX. text need not end at len. 1 with *out set, or 0. */
int me_photo_variant_parse(const char *text, size_t len, me_photo_variant_t *out);

/* Fills pc from cfg's photos section, the variants from photos.variants (validated by the
 * configuration: default thumb:320x320, small:640, medium:1280, large:2048). Cannot fail. */
void me_photo_config_init(me_photo_config_t *pc, const me_config_t *cfg);

/* Sets up libvips for the process (once; later calls return the first result): blocks
 * untrusted operations and every loader but the five above, turns the operation cache off,
 * sets one worker thread per pipeline. me_photo_process() calls it; a server calls it at
 * start to fail early. 0 or ME_EINTERNAL. */
int me_photo_init(void) ME_MUST_CHECK;

/* Decodes the len bytes at data (not modified, not kept) and fills *out with the facts and
 * pc's variants, in pc's order, each as JPEG then WebP. Returns 0, or:
 *   ME_ETOOLARGE  more than pc->max_bytes, or a header declaring more than pc->max_pixels;
 *   ME_EMEDIA     not one of the five formats (whatever its name or claimed type);
 *   ME_ECORRUPT   one of them but damaged or truncated;
 *   ME_ENOMEM, ME_EINTERNAL.
 * On failure out holds no variant (out->detail says why; out->format may name the format).
 * In every case the caller releases out with me_photo_result_free(). */
int me_photo_process(const me_photo_config_t *pc, const void *data, size_t len, me_photo_result_t *out) ME_MUST_CHECK;

/* me_photo_process() on an image already decoded (a video's poster frame): width x height
 * pixels of 8-bit sRGB, 3 bytes each, rows packed (rgb is not kept). No EXIF, so no
 * orientation, taken_at or location; format and content_type stay "". Returns 0,
 * ME_ETOOLARGE (more than pc->max_pixels), ME_ENOMEM, ME_EINTERNAL; out as there. */
int me_photo_process_pixels(const me_photo_config_t *pc, const void *rgb, int width, int height,
                            me_photo_result_t *out) ME_MUST_CHECK;

/* Frees the variants out holds and empties it; safe on an empty or failed result. */
void me_photo_result_free(me_photo_result_t *out);

/* Stores every output of r at variants/<album>/<media-id>/<name>.<ext>, durably. Returns 0,
 * ME_EINVAL (album or media_id not a key segment), ME_EIO (some may be stored: storing
 * again replaces them). */
int me_photo_store(me_storage_t *st, const char *album, const char *media_id, const me_photo_result_t *r) ME_MUST_CHECK;

/* The facts of r as a new JSON object (the caller owns it; NULL on allocation failure):
 * {"kind":"photo","format","width","height","taken_at" (or null),"has_location",
 *  "location":{"lat","lon"} only when r has coordinates,
 *  "variants":[{"name","format","content_type","width","height","bytes"}, ...]} */
json_t *me_photo_facts_json(const me_photo_result_t *r);

#endif
