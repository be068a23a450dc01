/* storage_backend.h: what a storage backend implements for storage.c, and a store made of any
 * backend. Only backends, storage.c and tests include it; everything else uses storage.h.
 *
 * storage.c checks every argument (keys, prefixes, part numbers and order, the presence and
 * length of upload ids, NULL pointers) before it calls an operation, so a backend never sees
 * an invalid key: it need not check one again. */
#ifndef ME_STORAGE_BACKEND_H
#define ME_STORAGE_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/config.h"
#include "server/storage/storage.h"

typedef struct me_storage_backend me_storage_backend_t; /* each backend's own state */

/* A backend's operations. Each returns what the me_storage_* function of the same name
 * documents in storage.h (del: me_storage_delete), with the same durability, atomicity and
 * thread safety: they are called from many threads at once. get is called with *got = 0. */
typedef struct {
    uint64_t min_part_size; /* see me_storage_min_part_size() */
    int parts_in_any_order;  /* see me_storage_parts_in_any_order() */
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
    int (*part_list)(me_storage_backend_t *be, const char *key, const char *upload_id, int after,
                     int (*cb)(const me_storage_part_t *part, void *arg), void *arg);
    /* Optional (NULL: storage.c reads the range and puts it as a part). Called with a valid
     * src key, len in 1..ME_STORAGE_COPY_MAX and offset + len not overflowing. */
    int (*part_copy)(me_storage_backend_t *be, const char *key, const char *upload_id, int number, const char *src,
                     uint64_t offset, uint64_t len, me_storage_part_t *out);
    /* Optional (NULL: the backend keeps no multipart upload anyone could lose track of).
     * Called with a valid prefix. */
    int (*multipart_list)(me_storage_backend_t *be, const char *prefix,
                          int (*cb)(const char *key, const char *upload_id, int64_t initiated, void *arg), void *arg);
} me_storage_ops_t;

/* A store over be, a backend already open (through ops->open, or made by a wrapper such as a
 * test's), whose calls go through storage.c's checks to ops. The store owns be from then on:
 * me_storage_close() closes it with ops->close. ops must outlive the store. NULL when out of
 * memory; be is then still the caller's, open. */
me_storage_t *me_storage_new(const me_storage_ops_t *ops, me_storage_backend_t *be);

#endif
