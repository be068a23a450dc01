/* upload_config.h: the uploads section of the configuration. */
#ifndef ME_UPLOAD_CONFIG_H
#define ME_UPLOAD_CONFIG_H

#include <stdint.h>
#include "server/core/config.h"

/* uploads: */
typedef struct {
    uint64_t max_size;     /* largest upload (the token's max_bytes may lower it) */
    uint64_t expire_after; /* ms an unfinished upload is kept after its creation */
    uint64_t sweep_every;  /* ms between two sweeps of expired uploads (and orphaned multipart uploads) */
} me_upload_settings_t;

extern const me_config_section_t me_upload_config_section;

/* cfg's uploads section (owned by cfg). */
static inline const me_upload_settings_t *me_upload_settings(const me_config_t *cfg)
{
    return me_config_section(cfg, &me_upload_config_section);
}

#endif
