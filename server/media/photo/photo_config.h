/* photo_config.h: the photos section of the configuration (me_photo_config_init() turns it into the pipeline's me_photo_config_t). */
#ifndef ME_PHOTO_CONFIG_H
#define ME_PHOTO_CONFIG_H

#include <stdint.h>
#include "server/core/config.h"

/* photos: */
typedef struct {
    int max_pixels;     /* width x height a photo may declare; larger ones are refused unread */
    uint64_t max_bytes; /* bytes of a photo the pipeline reads; larger ones are refused */
    int jpeg_quality;   /* 1..100 */
    int webp_quality;   /* 1..100 */
    int webp_effort;    /* libwebp's method, 0 (fastest) ..6 (smallest) */
    int keep_location;  /* return GPS coordinates in the facts (never in variants) */
    char *variants;     /* "name:size,name:sizexsize,...": the variants made of each photo */
    int sandbox;        /* decode in confined child processes (photo_sandbox.h) */
    uint64_t timeout;   /* ms one photo may take in a decoder before it is killed */
} me_photo_settings_t;

extern const me_config_section_t me_photo_config_section;

/* cfg's photos section (owned by cfg). */
static inline const me_photo_settings_t *me_photo_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_photo_config_section);
}

#endif
