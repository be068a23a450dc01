/* log_config.c: the log section's table. */
#include "server/core/log_config.h"

static const char *const levels[] = {"debug", "info", "warn", "error", NULL}; /* in me_log_level_t's order */

#define LOG(...) ME_SETTING(me_log_settings_t, __VA_ARGS__)
static const me_setting_t log_settings[] = {
    LOG("level", ME_SETTING_ENUM, level, "info", .choices = levels),
    LOG("access", ME_SETTING_BOOL, access, "true"),
};

const me_config_section_t me_log_config_section = {
    .name = "log", .size = sizeof(me_log_settings_t), ME_CONFIG_TABLE(log_settings),
};
