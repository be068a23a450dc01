/* photo_config.c: the photos section's table and its rules on the list of variants. */
#include "server/media/photo/photo_config.h"

#include <string.h>

#include "server/media/photo/photo.h"

static int valid_variant(const char *value)
{
    me_photo_variant_t v;
    return me_photo_variant_parse(value, strlen(value), &v);
}

#define PHOTOS(...) ME_SETTING(me_photo_settings_t, __VA_ARGS__)
static const me_setting_t photo_settings[] = {
    PHOTOS("max_pixels", ME_SETTING_INT, max_pixels, "100000000", .min = 1, .max = 1000000000),
    PHOTOS("max_bytes", ME_SETTING_SIZE, max_bytes, "64MiB", .min = ME_KIB, .max = ME_GIB),
    PHOTOS("jpeg_quality", ME_SETTING_INT, jpeg_quality, "82", .min = 1, .max = 100),
    PHOTOS("webp_quality", ME_SETTING_INT, webp_quality, "80", .min = 1, .max = 100),
    PHOTOS("webp_effort", ME_SETTING_INT, webp_effort, "4", .min = 0, .max = 6),
    PHOTOS("keep_location", ME_SETTING_BOOL, keep_location, "false"),
    PHOTOS("variants", ME_SETTING_LIST, variants, "thumb:320x320,small:640,medium:1280,large:2048",
           .valid = valid_variant, .max = ME_PHOTO_VARIANTS_MAX,
           .form = "name:size (the longest edge) or name:sizexsize (a square crop), name of a-z 0-9 _ -, "
                   "size from 16 to 8192"),
    PHOTOS("sandbox", ME_SETTING_BOOL, sandbox, "true"),
    PHOTOS("timeout", ME_SETTING_DURATION, timeout, "60s", .min = 1000, .max = 3600000),
};

/* 1 when two of the (valid) variants in photos.variants have the same name. */
static int variants_repeat(const me_config_t *cfg)
{
    me_photo_config_t pc;

    me_photo_config_init(&pc, cfg); /* the pipeline's own reading of the list */
    for (int i = 0; i < pc.nvariants; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(pc.variants[i].name, pc.variants[j].name))
                return 1;
    return 0;
}

static int photo_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const me_photo_settings_t *p = values;

    if (!*p->variants)
        return me_config_reject(ck, &p->variants, "photos.variants is empty; list at least one, such as thumb:320x320");
    if (variants_repeat(cfg))
        return me_config_reject(ck, &p->variants, "photos.variants names a variant twice; each name is a file name");
    return 0;
}

const me_config_section_t me_photo_config_section = {
    .name = "photos", .size = sizeof(me_photo_settings_t), ME_CONFIG_TABLE(photo_settings), .check = photo_check,
};
