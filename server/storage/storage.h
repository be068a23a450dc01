/* storage.h: where everything durable lives, spoken in keys, byte ranges and parts only.
 * Backends: file (a local directory, the default) and s3 (later). No file path ever leaves a
 * backend, so callers never know which one runs.
 *
 * Keys are [A-Za-z0-9._-] segments joined by '/', at most ME_STORAGE_KEY_MAX bytes, no empty
 * segment, no segment starting with '.' (backends keep their own files under such names), no
 * leading or trailing '/'. Any other key is refused with ME_EINVAL
 * before the backend is touched: no key can escape the backend's root.
 *
 * Every function blocks (disk or network): call them from pool threads, never from a loop.
 * Every function is thread-safe. Durability: when a write returns 0 its bytes survive a
 * crash of the process or the machine (file: data fsync'd, renamed into place, directory
 * fsync'd). Objects are replaced whole: a reader sees the old object or the new one.
 * Every write (put, part put or copy, multipart begin and complete) may also return
 * ME_ENOSPACE: the backend is full (file: ENOSPC, EDQUOT); what was stored before is unchanged,
 * and the same write succeeds once there is room again. */
#ifndef ME_STORAGE_H
#define ME_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/config.h"
#include "server/core/error.h"
#include <jansson.h>

#define ME_STORAGE_KEY_MAX 512
#define ME_STORAGE_ETAG_MAX 72
#define ME_STORAGE_UPLOAD_ID_MAX 256

typedef struct me_storage me_storage_t;

typedef struct {
    uint64_t size;
    int64_t mtime;                      /* seconds since the epoch */
    char etag[ME_STORAGE_ETAG_MAX + 1]; /* opaque, changes whenever the content does */
} me_storage_stat_t;

/* A part of a multipart object, as me_storage_part_put() returned it. */
typedef struct {
    int number;                         /* 1..10000 */
    uint64_t size;
    char etag[ME_STORAGE_ETAG_MAX + 1];
} me_storage_part_t;

/* Opens the backend cfg names (storage.backend; file: storage.root, created if missing).
 * Returns NULL with err set when it cannot (the reason names the setting). The caller
 * closes it with me_storage_close(). */
me_storage_t *me_storage_open(const me_config_t *cfg, char *err, size_t errlen);
void me_storage_close(me_storage_t *st);

/* 1 when key is well formed (see above). */
int me_storage_key_valid(const char *key);

/* Stores len bytes at key, replacing any object there, durably. 0, ME_EINVAL, ME_EIO. */
int me_storage_put(me_storage_t *st, const char *key, const void *data, size_t len) ME_MUST_CHECK;

/* Reads up to len bytes of key from offset into buf; *got receives the count (less than len
 * only at the end of the object). 0, ME_ENOTFOUND, ME_EINVAL (also offset past the end), ME_EIO. */
int me_storage_get(me_storage_t *st, const char *key, uint64_t offset, size_t len, void *buf,
                   size_t *got) ME_MUST_CHECK;

/* Reads a whole object of at most max bytes into a malloc'd buffer (NUL-terminated for
 * convenience; the NUL is not counted in *len) that the caller frees. 0, ME_ENOTFOUND,
 * ME_ETOOLARGE (bigger than max), ME_EINVAL, ME_EIO, ME_ENOMEM. */
int me_storage_get_all(me_storage_t *st, const char *key, size_t max, char **data, size_t *len) ME_MUST_CHECK;

/* The JSON object stored at key (at most max bytes): 0 with *doc set (the caller owns it),
 * ME_EINVAL when the object is not a JSON object, or what me_storage_get_all() returns. */
int me_storage_get_json(me_storage_t *st, const char *key, size_t max, json_t **doc) ME_MUST_CHECK;

/* Stores doc (not consumed) at key, compact, through me_storage_put(): 0, ME_ENOMEM, or
 * what me_storage_put() returns. */
int me_storage_put_json(me_storage_t *st, const char *key, const json_t *doc) ME_MUST_CHECK;

/* Size, mtime and etag of key. 0, ME_ENOTFOUND, ME_EINVAL, ME_EIO. */
int me_storage_head(me_storage_t *st, const char *key, me_storage_stat_t *out) ME_MUST_CHECK;

/* Removes key; removing a missing key is not an error. 0, ME_EINVAL, ME_EIO. */
int me_storage_delete(me_storage_t *st, const char *key) ME_MUST_CHECK;

/* Calls cb for every object whose key starts with prefix (prefix need not end at a '/';
 * "" lists everything), in lexicographic key order. A non-zero return from cb stops the
 * listing and is returned. Objects being written (not yet in place) are not listed.
 * 0, cb's value, ME_EINVAL, ME_EIO. */
int me_storage_list(me_storage_t *st, const char *prefix,
                    int (*cb)(const char *key, const me_storage_stat_t *stat, void *arg), void *arg) ME_MUST_CHECK;

/* Multipart objects (S3's model): begin, put numbered parts (any size on file; S3 wants at
 * least 5 MiB for all but the last), complete in part order into key, or abort. The upload id
 * is opaque text (at most ME_STORAGE_UPLOAD_ID_MAX bytes) to keep in upload state: any
 * instance can continue or complete it. A part put twice under one number: the last wins.
 * Nothing of key shows before completing, which makes key appear whole and durably, and
 * releases the parts. Each returns 0, ME_EINVAL (also: begin's idlen too small for the id),
 * ME_EIO, and: an upload that does not exist (never begun, completed, aborted, or begun for
 * another key) is ME_ENOTFOUND to part_put and complete, and 0 to abort; completing with a
 * part that was not put, or whose size or etag is not its last put's, is ME_ECONFLICT. Backends
 * add refusals of their own (storage_file.h). */
int me_storage_multipart_begin(me_storage_t *st, const char *key, char *upload_id, size_t idlen) ME_MUST_CHECK;
int me_storage_part_put(me_storage_t *st, const char *key, const char *upload_id, int number, const void *data,
                        size_t len, me_storage_part_t *out) ME_MUST_CHECK;
int me_storage_multipart_complete(me_storage_t *st, const char *key, const char *upload_id,
                                  const me_storage_part_t *parts, int nparts) ME_MUST_CHECK;
int me_storage_multipart_abort(me_storage_t *st, const char *key, const char *upload_id) ME_MUST_CHECK;

/* Calls cb for every part of the upload numbered above after (0: every part) that storage
 * holds, as the last put of each number left it (number, size, etag: what
 * me_storage_part_put() returned), in ascending number order; a part whose put failed is listed when the backend kept
 * it whole (S3 may), never in part. A non-zero return from cb stops the listing and is returned. This is what any
 * instance knows of an upload's parts after another one died between a part's put and the
 * saving of its own record of it. 0, cb's value, ME_ENOTFOUND (never begun, aborted, or begun
 * for another key), ME_EINVAL (also after outside 0..10000), ME_EIO. A completed upload is ME_ENOTFOUND on file and AWS
 * S3, but Swift's s3api lists its parts for a while longer: list only uploads known to be open. */
int me_storage_part_list(me_storage_t *st, const char *key, const char *upload_id, int after,
                         int (*cb)(const me_storage_part_t *part, void *arg), void *arg) ME_MUST_CHECK;

/* Calls cb for every multipart upload in progress whose key starts with prefix, with its id
 * and when it began (seconds since the epoch, -1 when the backend does not say), including
 * those whose begin's answer was lost (S3 began them; nobody holds their id): the sweeper
 * aborts those. A non-zero return from cb stops the listing and is returned. A backend with
 * no such uploads to lose (file) lists none. 0, cb's value, ME_EINVAL, ME_EIO. */
int me_storage_multipart_list(me_storage_t *st, const char *prefix,
                              int (*cb)(const char *key, const char *upload_id, int64_t initiated, void *arg),
                              void *arg) ME_MUST_CHECK;

/* Puts part number of the upload from bytes [offset, offset + len) of the object src, without
 * the bytes passing through the caller where the backend can copy them itself (S3:
 * UploadPartCopy with a range, inside S3; file: a kernel copy). Otherwise as
 * me_storage_part_put() with those bytes as data: out filled, the last put wins, the same part
 * size rules. 0, ME_ENOTFOUND (no src, or no such upload), ME_EINVAL (len 0 or above
 * ME_STORAGE_COPY_MAX, a range that ends past src's end, or what part_put refuses), ME_EIO. A
 * backend that cannot copy gets the range read into memory: at most ME_STORAGE_COPY_BUFFER_MAX
 * bytes then, ME_ETOOLARGE above. */
#define ME_STORAGE_COPY_MAX (5ull << 30)         /* S3's largest part */
#define ME_STORAGE_COPY_BUFFER_MAX (64ull << 20) /* copies made through memory */
int me_storage_part_copy(me_storage_t *st, const char *key, const char *upload_id, int number, const char *src,
                         uint64_t offset, uint64_t len, me_storage_part_t *out) ME_MUST_CHECK;

/* 1 when parts of one upload may be put in any order and at once (S3); 0 when each must
 * follow the one before (file). */
int me_storage_parts_in_any_order(const me_storage_t *st);

/* The smallest part a backend accepts (all but the last part): 0 for file, 5 MiB for S3. */
uint64_t me_storage_min_part_size(const me_storage_t *st);

#endif
