/* log_config.h: the log section of the configuration. */
#ifndef ME_LOG_CONFIG_H
#define ME_LOG_CONFIG_H

#include "server/core/config.h"
#include "server/core/log.h"

/* log: */
typedef struct {
    me_log_level_t level;
    int access; /* write access lines */
} me_log_settings_t;

extern const me_config_section_t me_log_config_section;

/* cfg's log section (owned by cfg). */
static inline const me_log_settings_t *me_log_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_log_config_section);
}

#endif
