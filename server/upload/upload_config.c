/* upload_config.c: the uploads section's table. */
#include "server/upload/upload_config.h"

#define UPLOADS(...) ME_SETTING(me_upload_settings_t, __VA_ARGS__)
static const me_setting_t upload_settings[] = {
    UPLOADS("max_size", ME_SETTING_SIZE, max_size, "4GiB", .min = 1, .max = 5497558138880),
    UPLOADS("expire_after", ME_SETTING_DURATION, expire_after, "24h", .min = 10000, .max = 2592000000),
    UPLOADS("sweep_every", ME_SETTING_DURATION, sweep_every, "10m", .min = 1000, .max = 86400000),
};

const me_config_section_t me_upload_config_section = {
    .name = "uploads", .size = sizeof(me_upload_settings_t), ME_CONFIG_TABLE(upload_settings),
};
