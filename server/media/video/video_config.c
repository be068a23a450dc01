/* video_config.c: the videos and plans sections' tables, and a run's settings from them. */
#include "server/media/video/video_config.h"

#include <stdio.h>
#include <string.h>
#include "server/jobs/jobs_config.h"

#define VIDEO_MEMORY_MIN (16 * ME_MIB)
#define VIDEO_MEMORY_AUTO_MAX (2 * ME_GIB)

const char *const me_video_presets[] = {"ultrafast", "superfast", "veryfast", "faster",   "fast",
                                        "medium",    "slow",      "slower",   "veryslow", NULL};

static int valid_rendition(const char *value)
{
    me_video_rendition_t r;
    return me_video_rendition_parse(value, strlen(value), &r);
}

/* "plan:duration": a plan's name and the longest video it takes, in ms into *ms. 1 or 0. */
static int plan_limit_parse(const char *value, size_t len, char *name, size_t namelen, uint64_t *ms)
{
    const char *colon = memchr(value, ':', len);
    char text[32];
    size_t n = colon != NULL ? (size_t)(colon - value) : 0;

    if (n < 1 || n >= namelen || len - n - 1 < 1 || len - n - 1 >= sizeof(text))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((value[i] >= 'a' && value[i] <= 'z') || (value[i] >= '0' && value[i] <= '9') || value[i] == '_'))
            return 0;
    memcpy(name, value, n);
    name[n] = '\0';
    memcpy(text, colon + 1, len - n - 1);
    text[len - n - 1] = '\0';
    return me_config_parse_duration(text, ms) == 0 && *ms >= 1000 && *ms <= 24 * 3600 * 1000ull;
}

static int valid_plan_limit(const char *value)
{
    char name[16];
    uint64_t ms;
    return plan_limit_parse(value, strlen(value), name, sizeof(name), &ms);
}

#define VIDEOS(...) ME_SETTING(me_video_settings_t, __VA_ARGS__)
static const me_setting_t video_settings[] = {
    VIDEOS("renditions", ME_SETTING_LIST, renditions, "720p:1280:4000,360p:640:1000", .valid = valid_rendition,
           .max = ME_VIDEO_RENDITIONS_MAX,
           .form = "name:size or name:size:max_kbps (the long edge, 64 to 4096; the video bitrate cap, 100 to "
                   "100000), name of a-z 0-9 _ -"),
    VIDEOS("preset", ME_SETTING_ENUM, preset, "veryfast", .choices = me_video_presets),
    VIDEOS("crf", ME_SETTING_INT, crf, "23", .min = 0, .max = 51),
    VIDEOS("audio_bitrate", ME_SETTING_INT, audio_bitrate, "128", .min = 32, .max = 512),
    VIDEOS("max_fps", ME_SETTING_INT, max_fps, "60", .min = 1, .max = 240),
    VIDEOS("max_bytes", ME_SETTING_SIZE, max_bytes, "4GiB", .min = ME_KIB, .max = 64 * ME_GIB),
    VIDEOS("max_width", ME_SETTING_INT, max_width, "4096", .min = 16, .max = 16384),
    VIDEOS("max_height", ME_SETTING_INT, max_height, "4096", .min = 16, .max = 16384),
    VIDEOS("max_streams", ME_SETTING_INT, max_streams, "16", .min = 1, .max = 64),
    VIDEOS("max_input_fps", ME_SETTING_INT, max_input_fps, "240", .min = 1, .max = 1000),
    VIDEOS("max_bitrate", ME_SETTING_INT, max_bitrate, "200000", .min = 100, .max = 2000000),
    VIDEOS("max_side_data", ME_SETTING_SIZE, max_side_data, "1MiB", .min = ME_KIB, .max = 64 * ME_MIB),
    VIDEOS("sandbox", ME_SETTING_BOOL, sandbox, "true"),
    VIDEOS("memory", ME_SETTING_SIZE, memory, "0", .flags = ME_SETTING_AUTO, .max = 64 * ME_GIB),
};

#define PLANS(...) ME_SETTING(me_plan_settings_t, __VA_ARGS__)
static const me_setting_t plan_settings[] = {
    PLANS("longest_video", ME_SETTING_LIST, longest_video, "free:3m,premium:10m", .valid = valid_plan_limit, .max = 16,
          .form = "plan:duration (a plan of a-z 0-9 _, a duration from 1s to 24h)"),
};

static int video_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_video_settings_t *v = values;
    me_video_params_t vp;

    if (*v->renditions == '\0')
        return me_config_reject(ck, &v->renditions, "videos.renditions is empty; list at least one, such as 720p:1280");
    if (v->memory != 0 && v->memory < VIDEO_MEMORY_MIN)
        return me_config_reject(ck, &v->memory, "videos.memory must be 0 (auto) or at least 16MiB");
    me_video_params_init(&vp, cfg, NULL);
    for (int i = 0; i < vp.nrenditions; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(vp.renditions[i].name, vp.renditions[j].name) == 0)
                return me_config_reject(ck, &v->renditions,
                                        "videos.renditions names a rendition twice; each name is a file name");
    return 0;
}

static int plan_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_plan_settings_t *p = values;

    if (*p->longest_video == '\0')
        return me_config_reject(ck, &p->longest_video, "plans.longest_video is empty; give each plan its limit");
    return 0;
}

/* videos.memory auto: half the container's memory shared by the video workers, at most
 * 2 GiB each, so that one video fails as too_large before the pod is killed for its memory. */
static void video_resolve(me_config_t *cfg, void *values)
{
    me_video_settings_t *v = values;
    uint64_t workers = (uint64_t)me_jobs_settings(cfg)->video_workers, each;

    each = cfg->memory_limit / 2 / (workers > 0 ? workers : 1);
    me_config_auto(cfg, &v->memory,
                   each > VIDEO_MEMORY_AUTO_MAX ? VIDEO_MEMORY_AUTO_MAX
                   : each < VIDEO_MEMORY_MIN    ? VIDEO_MEMORY_MIN
                                                : each);
}

const me_config_section_t me_video_config_section = {
    .name = "videos",
    .size = sizeof(me_video_settings_t),
    ME_CONFIG_TABLE(video_settings),
    .check = video_check,
    .resolve = video_resolve,
};

const me_config_section_t me_plan_config_section = {
    .name = "plans",
    .size = sizeof(me_plan_settings_t),
    ME_CONFIG_TABLE(plan_settings),
    .check = plan_check,
};

double me_video_plan_limit(const me_config_t *cfg, const char *plan)
{
    const char *p = me_plan_settings(cfg)->longest_video, *item;
    double shortest = 0;
    size_t len;

    while (me_config_list_next(&p, &item, &len)) {
        char name[16];
        uint64_t ms;
        if (!plan_limit_parse(item, len, name, sizeof(name), &ms))
            continue;
        if (plan != NULL && strcmp(name, plan) == 0)
            return (double)ms / 1000;
        if (shortest == 0 || (double)ms / 1000 < shortest)
            shortest = (double)ms / 1000;
    }
    return shortest;
}

void me_video_params_init(me_video_params_t *vp, const me_config_t *cfg, const char *plan)
{
    const me_video_settings_t *v = me_video_settings(cfg);
    const char *p = v->renditions, *item;
    size_t len;

    me_video_params_default(vp);
    vp->nrenditions = 0;
    while (vp->nrenditions < ME_VIDEO_RENDITIONS_MAX && me_config_list_next(&p, &item, &len))
        if (me_video_rendition_parse(item, len, &vp->renditions[vp->nrenditions]))
            vp->nrenditions++;
    snprintf(vp->preset, sizeof(vp->preset), "%s", me_video_presets[v->preset]);
    vp->crf = v->crf;
    vp->audio_kbps = v->audio_bitrate;
    vp->max_fps = v->max_fps;
    vp->caps = (me_video_caps_t){.max_bytes = v->max_bytes,
                                 .max_width = v->max_width,
                                 .max_height = v->max_height,
                                 .max_streams = v->max_streams,
                                 .max_fps = v->max_input_fps,
                                 .max_bitrate = (int64_t)v->max_bitrate * 1000,
                                 .max_side_data = (int)v->max_side_data};
    if (plan != NULL) {
        snprintf(vp->plan, sizeof(vp->plan), "%s", plan);
        vp->max_duration = me_video_plan_limit(cfg, plan);
    }
}
