/* error.c: the one table that maps core error codes to HTTP status and stable JSON codes. */
#include "server/core/error.h"

static const struct {
    int err;
    int status;
    const char *code;
    const char *message;
} errors[] = {
    {ME_OK, 200, "ok", "OK"},
    {ME_EINVAL, 400, "bad_request", "The request is malformed."},
    {ME_EUNAUTHORIZED, 401, "unauthorized", "A valid bearer token is required."},
    {ME_ETOKEN_EXPIRED, 401, "token_expired", "The token has expired or is not yet valid."},
    {ME_EFORBIDDEN, 403, "forbidden", "The token does not allow this."},
    {ME_ENOTFOUND, 404, "not_found", "No such resource."},
    {ME_ECONFLICT, 409, "conflict", "The resource is not in a state that allows this."},
    {ME_ETOOLARGE, 413, "too_large", "The request is larger than allowed."},
    {ME_EUNSUPPORTED, 415, "unsupported", "This is not supported."},
    {ME_EBUSY, 503, "busy", "The server is busy; retry later."},
    {ME_EIO, 500, "storage_error", "A storage operation failed; retry later."},
    {ME_ENOMEM, 500, "out_of_memory", "The server ran out of memory; retry later."},
    {ME_ECONFIG, 500, "config_error", "The server is misconfigured."},
    {ME_EDRAINING, 503, "draining", "The server is shutting down; retry on another instance."},
    {ME_EINTERNAL, 500, "internal_error", "Internal error."},
    {ME_EMETHOD, 405, "method_not_allowed", "This method is not allowed on this resource."},
    {ME_EOFFSET, 409, "offset_mismatch", "Upload-Offset does not match the upload's offset; ask for it with HEAD."},
    {ME_ECHECKSUM, 460, "checksum_mismatch", "The body does not match Upload-Checksum; nothing was stored."},
    {ME_ELOCKED, 423, "upload_locked", "Another request is writing this upload; retry after it finishes."},
    {ME_EMEDIA, 415, "unsupported_media_type",
     "Only photos (JPEG, PNG, HEIC, WebP, GIF) and videos (MP4, MOV) are accepted."},
    {ME_EVERSION, 412, "unsupported_version", "This protocol version is not supported (Tus-Resumable: 1.0.0)."},
    {ME_EUPLOAD_SIZE, 413, "upload_too_large", "The upload is larger than allowed."},
    {ME_EORIGIN, 403, "origin_not_allowed", "This website may not send requests to this server from a browser."},
    {ME_EBROWSER_PLAN, 403, "browser_upload_requires_premium",
     "Uploading from a web browser needs the premium plan. Use the mobile app, or upgrade to premium."},
    {ME_ECONCAT, 400, "invalid_concat",
     "Upload-Concat must be 'partial', or 'final;' and 1 to 16 different URLs of complete partial uploads of this "
     "album (and no Upload-Length or body)."},
    {ME_EPARTIAL_INCOMPLETE, 409, "partial_incomplete",
     "A partial upload named in Upload-Concat has not received all its bytes yet."},
    {ME_EPARTIAL_USED, 410, "partial_used",
     "A partial upload named in Upload-Concat is already part of another final upload."},
    {ME_EFINAL, 403, "final_upload", "A final upload is made of its partial uploads; it takes no PATCH."},
    {ME_ECORRUPT, 422, "corrupt", "The file is damaged or truncated and cannot be read."},
    {ME_ERANGE, 416, "range_not_satisfiable", "The requested range starts past the end of the file."},
    {ME_EVIDEO_TOO_LONG, 422, "video_too_long", "The video is longer than your plan allows."},
    {ME_EMONTAGE_PLAN, 403, "montage_requires_premium",
     "One-second films of a month or a year come with the premium plan. Upgrade to premium to get them."},
    {ME_EMEDIA_NOT_READY, 422, "media_not_ready",
     "Some of the photos and videos named are missing, of another album, or not processed yet; nothing was made."},
    {ME_ENOSPACE, 507, "storage_full",
     "The server's storage is full; nothing you sent before was lost. Retry this request later."},
    {ME_ELOCK_UNAVAILABLE, 503, "lock_unavailable",
     "The server cannot lock this upload right now (its lock service does not answer); nothing was stored. Retry "
     "later."},
};

static int find(int err)
{
    for (unsigned i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
        if (errors[i].err == err)
            return (int)i;
    return -1;
}

const char *me_err_code(int err)
{
    int i = find(err);
    return i < 0 ? "internal_error" : errors[i].code;
}

int me_err_status(int err)
{
    int i = find(err);
    return i < 0 ? 500 : errors[i].status;
}

const char *me_err_message(int err)
{
    int i = find(err);
    return i < 0 ? "Internal error." : errors[i].message;
}
