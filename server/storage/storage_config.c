/* storage_config.c: the storage section's table, and the production profile it implies. */
#include "server/storage/storage_config.h"

#include <stdio.h>
#include <string.h>

static const char *const backends[] = {"file", "s3", NULL};

#define STORAGE(...) ME_SETTING(me_storage_settings_t, __VA_ARGS__)
static const me_setting_t storage_settings[] = {
    STORAGE("backend", ME_SETTING_STRING, backend, "file", .choices = backends),
    STORAGE("root", ME_SETTING_STRING, root, "./var/storage"),
};

/* Anything but local files is shared storage, so a deployment others rely on. */
static int storage_profile(const void *values, char *why, size_t len)
{
    const me_storage_settings_t *s = values;

    if (s->backend == NULL || !strcmp(s->backend, "file"))
        return 0;
    snprintf(why, len, "storage.backend is %s", s->backend);
    return 1;
}

const me_config_section_t me_storage_config_section = {
    .name = "storage", .size = sizeof(me_storage_settings_t), ME_CONFIG_TABLE(storage_settings),
    .profile = storage_profile,
};
