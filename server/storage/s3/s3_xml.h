/* s3_xml.h: the few XML documents S3 and STS answer with, read with libxml2 (no network, no
 * entities, no DTD): errors, CreateMultipartUpload, ListObjectsV2, ListParts, UploadPartCopy,
 * CompleteMultipartUpload and AssumeRoleWithWebIdentity. Elements are matched by local name,
 * whatever their namespace. Bodies are capped by the caller (s3_client.h). */
#ifndef ME_S3_XML_H
#define ME_S3_XML_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"

/* Once per process, before threads use the parser (libxml2's own initialisation). */
void me_s3_xml_init(void);

/* The text of the first element at path (local names joined by '/', from the root element:
 * "InitiateMultipartUploadResult/UploadId") into out, trimmed. 0, ME_ENOTFOUND (no such
 * element, or the body is not XML), ME_ETOOLARGE (the text does not fit; out holds ""). */
int me_s3_xml_text(const char *body, size_t len, const char *path, char *out, size_t outlen) ME_MUST_CHECK;

/* The root element's local name ("Error", "CompleteMultipartUploadResult") into out; 0 or
 * ME_ENOTFOUND. */
int me_s3_xml_root(const char *body, size_t len, char *out, size_t outlen) ME_MUST_CHECK;

/* One entry of a listing: an object (ListObjectsV2's Contents) or a part (ListParts' Part). */
typedef struct {
    const char *key; /* objects only */
    int number;      /* parts only */
    uint64_t size;
    int64_t mtime;    /* seconds since the epoch */
    const char *etag; /* without its quotes */
} me_s3_xml_entry_t;

/* Calls cb for each Contents (ListObjectsV2) or Part (ListParts) of body, in document order;
 * a non-zero return stops and is returned. *truncated gets IsTruncated, next the
 * NextContinuationToken (objects) or NextPartNumberMarker (parts), "" when none. 0, cb's
 * value, ME_EIO when the document is not such a listing or an entry is malformed. */
int me_s3_xml_list(const char *body, size_t len, int parts, int (*cb)(const me_s3_xml_entry_t *e, void *arg), void *arg,
                   int *truncated, char *next, size_t nextlen) ME_MUST_CHECK;

/* One multipart upload in progress (ListMultipartUploads' Upload). */
typedef struct {
    const char *key;
    const char *upload_id;
    int64_t initiated; /* seconds since the epoch; -1 when absent or unreadable */
} me_s3_xml_upload_t;

/* Calls cb for each Upload of a ListMultipartUploadsResult, in document order; a non-zero
 * return stops and is returned. *truncated gets IsTruncated, next_key and next_id the
 * NextKeyMarker and NextUploadIdMarker ("" when none). 0, cb's value, ME_EIO when the
 * document is not such a listing or an entry lacks its Key or UploadId. */
int me_s3_xml_uploads(const char *body, size_t len, int (*cb)(const me_s3_xml_upload_t *u, void *arg), void *arg,
                      int *truncated, char *next_key, size_t keylen, char *next_id, size_t idlen) ME_MUST_CHECK;

/* "2026-12-04T07:45:57.000Z" (S3's and STS's times) as seconds since the epoch, or -1. */
int64_t me_s3_xml_time(const char *iso8601);

#endif
