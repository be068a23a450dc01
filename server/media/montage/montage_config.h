/* montage_config.h: the montages section of the configuration. */
#ifndef ME_MONTAGE_CONFIG_H
#define ME_MONTAGE_CONFIG_H

#include <stdint.h>
#include "server/core/config.h"

typedef struct {
    int max_media;        /* media one montage may name (at most ME_MONTAGE_CLIPS_MAX) */
    int preset;           /* libx264's preset: the index in me_video_presets */
    int crf;              /* libx264's quality target */
    int audio_bitrate;    /* kbit/s of the AAC track */
    uint64_t max_request; /* bytes of a request's JSON body */
} me_montage_settings_t;

extern const me_config_section_t me_montage_config_section;

/* cfg's montages section (owned by cfg). */
static inline const me_montage_settings_t *me_montage_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_montage_config_section);
}

#endif
