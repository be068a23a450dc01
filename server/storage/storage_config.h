/* storage_config.h: the storage section of the configuration; it also says whether a deployment is a production one. */
#ifndef ME_STORAGE_CONFIG_H
#define ME_STORAGE_CONFIG_H

#include "server/core/config.h"

/* storage: */
typedef struct {
    char *backend; /* "file" or "s3"; any but "file" is the production profile */
    char *root;    /* file backend's directory */
} me_storage_settings_t;

extern const me_config_section_t me_storage_config_section;

/* cfg's storage section (owned by cfg). */
static inline const me_storage_settings_t *me_storage_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_storage_config_section);
}

#endif
