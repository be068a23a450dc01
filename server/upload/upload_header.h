/* upload_header.h: the values of the upload protocols' request headers, parsed from bytes
 * (tus 1.0's Upload-Offset and Upload-Length, the IETF draft's Upload-Complete structured
 * boolean and Upload-Draft-Interop-Version). Pure functions of their arguments, no
 * allocation; handlers/uploads*.c look the headers up and call these. A fuzz target
 * (tests/fuzz/fuzz_upload_headers.c) drives every one of them. */
#ifndef ME_UPLOAD_HEADER_H
#define ME_UPLOAD_HEADER_H

#include <stddef.h>
#include <stdint.h>

/* A strict unsigned decimal of len bytes (no sign, no blanks, no overflow, 1 to 20 digits).
 * 1 with *out set, or 0 (s may be NULL: 0). */
int me_upload_header_u64(const char *s, size_t len, uint64_t *out);

/* A structured-field boolean (RFC 8941) as the draft's Upload-Complete uses it: 1 for "?1",
 * 0 for "?0", -1 for anything else. */
int me_upload_header_complete(const char *s, size_t len);

/* Upload-Draft-Interop-Version: 5 or 6, or -1 for any other value. */
int me_upload_header_draft_version(const char *s, size_t len);

#endif
