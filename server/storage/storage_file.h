/* storage_file.h: the interface every storage backend implements for storage.c, and the file
 * backend (a local directory) that implements it.
 *
 * The file backend keeps key "a/b/c" at <storage.root>/a/b/c, so an operator can look at it.
 * Its own files live under names starting with '.', which no key can have:
 *     <root>/.tmp/<random>                  files being written (renamed into place when whole)
 *     <root>/.multipart/<upload-id>/key     the key a multipart upload will complete into
 *     <root>/.multipart/<upload-id>/data    the upload's bytes: each part at its offset, right
 *                                           after the part before it; completing truncates it
 *                                           to the parts' total and renames it to the key, so
 *                                           no byte is written twice
 *     <root>/.multipart/<upload-id>/00001.rec   part 1's record, written once its bytes are
 *                                           durable: "<MD5 hex> <offset> <size>\n"
 * A filesystem cannot hold a file "a" and a file "a/b" at once: putting one while the other
 * exists fails with ME_EIO (the storage layout in DESIGN.md never does). */
#ifndef ME_STORAGE_FILE_H
#define ME_STORAGE_FILE_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/config.h"
#include "server/storage/storage.h"

typedef struct me_storage_backend me_storage_backend_t; /* each backend's own state */

/* A backend's operations. storage.c checks keys, prefixes, part numbers and the presence and
 * length of upload ids before calling them; each returns what the me_storage_* function of
 * the same name documents in storage.h. */
typedef struct {
    const char *name;       /* the storage.backend value that selects it */
    uint64_t min_part_size; /* see me_storage_min_part_size() */
    /* NULL with err set (naming the setting) when the backend cannot start */
    me_storage_backend_t *(*open)(const me_config_t *cfg, char *err, size_t errlen);
    void (*close)(me_storage_backend_t *be);
    int (*put)(me_storage_backend_t *be, const char *key, const void *data, size_t len);
    int (*get)(me_storage_backend_t *be, const char *key, uint64_t offset, size_t len, void *buf, size_t *got);
    int (*head)(me_storage_backend_t *be, const char *key, me_storage_stat_t *out);
    int (*del)(me_storage_backend_t *be, const char *key);
    int (*list)(me_storage_backend_t *be, const char *prefix,
                int (*cb)(const char *key, const me_storage_stat_t *stat, void *arg), void *arg);
    int (*multipart_begin)(me_storage_backend_t *be, const char *key, char *upload_id, size_t idlen);
    int (*part_put)(me_storage_backend_t *be, const char *key, const char *upload_id, int number,
                    const void *data, size_t len, me_storage_part_t *out);
    int (*multipart_complete)(me_storage_backend_t *be, const char *key, const char *upload_id,
                              const me_storage_part_t *parts, int nparts);
    int (*multipart_abort)(me_storage_backend_t *be, const char *key, const char *upload_id);
} me_storage_ops_t;

/* The file backend. Its upload ids are 32 lowercase hex digits; any other id is ME_EINVAL.
 * Completing or putting a part of an upload that does not exist (or was begun for another
 * key) is ME_ENOTFOUND; aborting one is 0. Completing with a part that is missing or whose
 * size or etag differs is ME_ECONFLICT.
 * Parts must be put in order: part n goes right after part n-1, so putting part n before
 * part n-1 is ME_ECONFLICT (gaps are refused). Putting part n again (the last wins) drops
 * parts n+1 and later, which must then be put again. Completing takes parts 1..k, each as
 * last put; any other list is ME_ECONFLICT. Part puts and completions of one upload exclude
 * each other (a lock on its data file). */
extern const me_storage_ops_t me_storage_file_ops;

#endif
