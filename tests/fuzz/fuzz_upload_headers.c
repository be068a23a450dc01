/* fuzz_upload_headers.c: the tus and draft request headers a client controls, through the
 * parsers the handlers call: Upload-Offset/Length, Upload-Complete, the draft's interop
 * version (upload_header.h), Upload-Checksum (and its check over a body), Upload-Metadata,
 * Upload-Concat's list of URLs, and upload ids in paths. The first byte picks the parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "server/upload/checksum.h"
#include "server/upload/upload.h"
#include "server/upload/upload_header.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    /* a copy of exactly len bytes, so that reading one past the value is caught */
    char *v = malloc(len > 0 ? len : 1);
    if (v == NULL)
        return 0;
    memcpy(v, s, len);

    switch (data[0] % 6) {
    case 0: {
        uint64_t n = 0;
        if (me_upload_header_u64(v, len, &n) && (len == 0 || len > 20))
            abort(); /* accepted what the contract refuses */
        break;
    }
    case 1:
        (void)me_upload_header_complete(v, len);
        (void)me_upload_header_draft_version(v, len);
        break;
    case 2: {
        me_checksum_t ck;
        if (me_checksum_parse(v, len, &ck) == 0) {
            if (ck.len > sizeof(ck.digest))
                abort();
            (void)me_checksum_verify(&ck, v, len);
        }
        break;
    }
    case 3:
        (void)me_upload_metadata_valid(v, len);
        break;
    case 4: {
        char ids[ME_UPLOAD_CONCAT_MAX][ME_UPLOAD_ID_LEN + 1];
        int n = 0;
        if (me_upload_concat_parse(v, len, "/v1/uploads/", ids, &n) == 0) {
            if (n < 1 || n > ME_UPLOAD_CONCAT_MAX)
                abort();
            for (int i = 0; i < n; i++)
                if (!me_upload_id_valid(ids[i], strlen(ids[i])))
                    abort(); /* every id handed on is one of ours */
        }
        break;
    }
    default:
        (void)me_upload_id_valid(v, len);
        break;
    }
    free(v);
    return 0;
}
