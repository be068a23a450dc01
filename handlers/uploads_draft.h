/* uploads_draft.h: the IETF resumable-upload draft on the tus resources (/v1/uploads):
 * interop versions 5 (draft -03, tus-js-client's "ietf-draft-03") and 6 (drafts -04 and
 * -05, "ietf-draft-05"). What its requests say and its responses carry beyond tus 1.0;
 * uploads.c runs the same core for both. */
#ifndef ME_UPLOADS_DRAFT_H
#define ME_UPLOADS_DRAFT_H

#include <stdint.h>
#include <h2o.h>
#include "server/core/config.h"
#include "server/upload/upload.h"

/* The interop version a request asks for: 5 or 6; 0 when it has no
 * Upload-Draft-Interop-Version (a tus request); -1 when it names another version. */
int me_draft_version(h2o_req_t *req);

/* Upload-Complete: 1 for ?1, 0 for ?0, -1 when missing or not a structured boolean. */
int me_draft_complete(h2o_req_t *req);

/* The media type a draft append's body must have for version (NULL: any). */
const char *me_draft_append_type(int version);

/* Adds Upload-Draft-Interop-Version, and Upload-Limit (max-size, max-append-size,
 * min-append-size and, when up is not NULL, expires: seconds left at now) for cfg's limits
 * and up's cap. */
void me_draft_add_headers(h2o_req_t *req, int version, const me_config_t *cfg, const me_upload_t *up, int64_t now);

/* Adds Upload-Complete: ?1 or ?0. */
void me_draft_add_complete(h2o_req_t *req, int complete);

/* Problem details (RFC 9457, application/problem+json) for the draft's three problem types,
 * with our stable error code as the member "error". */
void me_draft_send_offset_mismatch(h2o_req_t *req, uint64_t expected, uint64_t provided);
void me_draft_send_completed(h2o_req_t *req);
void me_draft_send_inconsistent_length(h2o_req_t *req, const char *detail);

#endif
