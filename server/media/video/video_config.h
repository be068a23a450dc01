/* video_config.h: the videos and plans sections of the configuration (me_video_params_init()
 * turns them into a run's me_video_params_t). */
#ifndef ME_VIDEO_CONFIG_H
#define ME_VIDEO_CONFIG_H

#include <stdint.h>
#include "server/core/config.h"
#include "server/media/video/video.h"

/* videos: */
typedef struct {
    char *renditions;   /* "name:size[:max_kbps],...": the renditions made of each video */
    int preset;         /* libx264's preset: the index in me_video_presets */
    int crf;            /* libx264's quality target */
    int audio_bitrate;  /* kbit/s of the AAC track */
    int max_fps;        /* renditions' frame rate cap */
    uint64_t max_bytes; /* the caps, checked before decoding (me_video_caps_t) */
    int max_width, max_height, max_streams, max_input_fps, max_bitrate;
    uint64_t max_side_data;
    int sandbox;     /* the whole job in a confined child (video_sandbox.h) */
    uint64_t memory; /* bytes of data segment a video decoder child may use */
} me_video_settings_t;

/* plans: */
typedef struct {
    char *longest_video; /* "plan:duration,...": the longest video each plan takes */
} me_plan_settings_t;

extern const me_config_section_t me_video_config_section;
extern const me_config_section_t me_plan_config_section;
extern const char *const me_video_presets[]; /* NULL-terminated */

/* cfg's videos and plans sections (owned by cfg). */
static inline const me_video_settings_t *me_video_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_video_config_section);
}

static inline const me_plan_settings_t *me_plan_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_plan_config_section);
}

/* The longest video plan may upload, in seconds, from plans.longest_video; a plan the table
 * does not name gets the shortest limit it has (the safe side). Cannot fail. */
double me_video_plan_limit(const me_config_t *cfg, const char *plan);

/* Fills vp from cfg's videos section, with plan's limit (plan NULL: no limit). Cannot fail:
 * the configuration was validated. */
void me_video_params_init(me_video_params_t *vp, const me_config_t *cfg, const char *plan);

#endif
