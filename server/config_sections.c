/* config_sections.c: every section of the configuration, in the order the file and check-config show them: the one place that knows every module's settings. */
#include "server/core/config.h"

#include "server/auth/token_config.h"
#include "server/core/log_config.h"
#include "server/delivery/delivery_config.h"
#include "server/http/server_config.h"
#include "server/jobs/jobs_config.h"
#include "server/media/montage/montage_config.h"
#include "server/media/photo/photo_config.h"
#include "server/media/video/video_config.h"
#include "server/redis/redis_config.h"
#include "server/storage/storage_config.h"
#include "server/storage/s3/s3_config.h"
#include "server/upload/upload_config.h"

/* A new section is a line here, and its keys in conf/mediaedge.yaml. */
const me_config_section_t *const me_config_sections[] = {
    &me_server_config_section,
    &me_listen_config_section,
    &me_tls_config_section,
    &me_http_config_section,
    &me_storage_config_section,
    &me_s3_config_section,
    &me_token_config_section,
    &me_log_config_section,
    &me_upload_config_section,
    &me_photo_config_section,
    &me_video_config_section,
    &me_plan_config_section,
    &me_shutdown_config_section,
    &me_jobs_config_section,
    &me_webhook_config_section,
    &me_cdn_config_section,
    &me_delivery_config_section,
    &me_montage_config_section,
    &me_queue_config_section,
    &me_redis_config_section,
    NULL,
};
