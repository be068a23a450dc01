/* montage_config.c: the montages section's table. */
#include "server/media/montage/montage_config.h"

#include "server/media/montage/montage_film.h"
#include "server/media/video/video_config.h"

#define MONTAGES(...) ME_SETTING(me_montage_settings_t, __VA_ARGS__)
static const me_setting_t montage_settings[] = {
    MONTAGES("max_media", ME_SETTING_INT, max_media, "400", .min = 1, .max = ME_MONTAGE_CLIPS_MAX),
    MONTAGES("preset", ME_SETTING_ENUM, preset, "veryfast", .choices = me_video_presets),
    MONTAGES("crf", ME_SETTING_INT, crf, "23", .min = 0, .max = 51),
    MONTAGES("audio_bitrate", ME_SETTING_INT, audio_bitrate, "128", .min = 32, .max = 512),
    MONTAGES("max_request", ME_SETTING_SIZE, max_request, "256KiB", .min = ME_KIB, .max = 4 * ME_MIB),
};

const me_config_section_t me_montage_config_section = {
    .name = "montages",
    .size = sizeof(me_montage_settings_t),
    ME_CONFIG_TABLE(montage_settings),
};
