/* fuzz_s3_xml.c: what an S3 or STS endpoint (or whoever sits between us and it) could answer
 * (server/storage/s3/s3_xml.c): the body of an error, CreateMultipartUpload, ListObjectsV2,
 * ListParts, ListMultipartUploads, UploadPartCopy, CompleteMultipartUpload or
 * AssumeRoleWithWebIdentity, read with
 * the paths the client reads; and the times it sends.
 *
 * Input: a byte choosing the call (text at one of the client's paths, the root's name, a
 * listing of objects, parts or multipart uploads, a time), a byte for the size of the caller's buffer (so that
 * a text too long for it is tried), then the body. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "server/storage/s3/s3_xml.h"

static const char *const paths[] = {
    "Error/Code",
    "ErrorResponse/Error/Code",
    "InitiateMultipartUploadResult/UploadId",
    "CopyPartResult/ETag",
    "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials/AccessKeyId",
    "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials/SecretAccessKey",
    "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials/SessionToken",
    "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials/Expiration",
};

typedef struct {
    int parts, n;
} listing_t;

static int entry(const me_s3_xml_entry_t *e, void *arg)
{
    listing_t *l = arg;
    if (e->etag == NULL || (l->parts ? e->number < 1 || e->number > 10000 || e->key != NULL : e->key == NULL))
        abort();
    (void)strlen(e->etag);
    if (e->key != NULL)
        (void)strlen(e->key);
    return ++l->n >= 1000 ? 1 : 0; /* a caller may stop: its value comes back */
}

static int upload(const me_s3_xml_upload_t *u, void *arg)
{
    int *n = arg;
    if (u->key == NULL || u->upload_id == NULL) /* initiated: any time S3 says, 1900 too */
        abort();
    (void)strlen(u->key), (void)strlen(u->upload_id);
    return ++*n >= 1000 ? 1 : 0;
}

/* out holds a NUL-terminated text without space at either end. */
static void check_text(const char *out, size_t outlen)
{
    size_t n = strnlen(out, outlen);
    if (n == outlen || (n > 0 && (isspace((unsigned char)out[0]) || isspace((unsigned char)out[n - 1]))))
        abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    me_s3_xml_init();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const int op = data[0] % 6;
    const size_t outlen = 1 + data[1] % 128;
    const char *body = (const char *)data + 2;
    const size_t len = size - 2;
    char *out = malloc(outlen); /* exactly the caller's size: a byte past it is a report */
    int ret;

    if (out == NULL)
        abort();
    switch (op) {
    case 0: {
        const char *path = paths[(data[0] / 6) % (sizeof(paths) / sizeof(paths[0]))];
        ret = me_s3_xml_text(body, len, path, out, outlen);
        if (ret != 0 && ret != ME_ENOTFOUND && ret != ME_ETOOLARGE)
            abort();
        check_text(out, outlen);
        if (ret != 0 && out[0] != '\0')
            abort();
        break;
    }
    case 1:
        ret = me_s3_xml_root(body, len, out, outlen);
        if ((ret != 0 && ret != ME_ENOTFOUND) || strnlen(out, outlen) == outlen || (ret == 0 && out[0] == '\0'))
            abort();
        break;
    case 2:
    case 3: {
        listing_t l = {op == 3, 0};
        int truncated = -1;
        ret = me_s3_xml_list(body, len, op == 3, entry, &l, &truncated, out, outlen);
        if ((ret != 0 && ret != 1 && ret != ME_EIO) || (truncated != 0 && truncated != 1) ||
            strnlen(out, outlen) == outlen || (ret == 1 && l.n != 1000))
            abort();
        break;
    }
    case 4: {
        /* the two markers share the caller's buffer size: both must end within it */
        char *id = malloc(outlen);
        int n = 0, truncated = -1;
        if (id == NULL)
            abort();
        ret = me_s3_xml_uploads(body, len, upload, &n, &truncated, out, outlen, id, outlen);
        if ((ret != 0 && ret != 1 && ret != ME_EIO) || (truncated != 0 && truncated != 1) ||
            strnlen(out, outlen) == outlen || strnlen(id, outlen) == outlen || (ret == 1 && n != 1000))
            abort();
        free(id);
        break;
    }
    default: {
        char *s = malloc(len + 1);
        if (s == NULL)
            abort();
        memcpy(s, body, len);
        s[len] = '\0';
        (void)me_s3_xml_time(s);
        free(s);
    }
    }
    free(out);
    return 0;
}
