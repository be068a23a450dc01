/* storage.c: the storage interface: checks every key and argument, then calls the backend. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/storage/storage.h"
#include "server/storage/storage_backend.h"
#include "server/storage/storage_file.h"
#include "server/storage/storage_config.h"
#include "server/storage/s3/storage_s3.h"

#define PART_MAX 10000
#define FIRST_READ (64 * 1024) /* see me_storage_get_all() */

struct me_storage {
    const me_storage_ops_t *ops;
    me_storage_backend_t *be;
};

/* Every value of storage.backend: adding a backend is one entry. NULL ops: known by name,
 * not built yet. */
static const struct {
    const char *name;
    const me_storage_ops_t *ops;
} backends[] = {
    {"file", &me_storage_file_ops},
    {"s3", &me_storage_s3_ops},
};

me_storage_t *me_storage_new(const me_storage_ops_t *ops, me_storage_backend_t *be)
{
    me_storage_t *st = malloc(sizeof(*st));
    if (st == NULL)
        return NULL;
    st->ops = ops;
    st->be = be;
    return st;
}

me_storage_t *me_storage_open(const me_config_t *cfg, char *err, size_t errlen)
{
    const char *backend = me_storage_settings(cfg)->backend, *name = backend != NULL ? backend : "";
    const me_storage_ops_t *ops;
    me_storage_backend_t *be;
    me_storage_t *st;

    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        if (strcmp(name, backends[i].name) != 0)
            continue;
        if ((ops = backends[i].ops) == NULL) {
            snprintf(err, errlen, "storage.backend: %s is not available in this build yet", name);
            return NULL;
        }
        if ((be = ops->open(cfg, err, errlen)) == NULL)
            return NULL;
        if ((st = me_storage_new(ops, be)) == NULL) {
            ops->close(be);
            snprintf(err, errlen, "storage.backend: out of memory");
        }
        return st;
    }
    snprintf(err, errlen, "storage.backend: unknown backend '%s'", name);
    return NULL;
}

void me_storage_close(me_storage_t *st)
{
    if (st == NULL)
        return;
    st->ops->close(st->be);
    free(st);
}

/* 1 when s is a key, or (partial) the beginning of one: "" or ending inside or after a
 * segment. No segment may be empty or start with '.'; bytes are [A-Za-z0-9._-] and '/'. */
static int key_check(const char *s, int partial)
{
    size_t n = 0, seg = 0; /* seg: bytes in the current segment */

    if (s == NULL)
        return 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n >= ME_STORAGE_KEY_MAX)
            return 0;
        if (c == '/') {
            if (seg == 0)
                return 0;
            seg = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                   c == '_' || (c == '.' && seg > 0)) {
            seg++;
        } else {
            return 0;
        }
    }
    return partial || seg > 0;
}

int me_storage_key_valid(const char *key)
{
    return key_check(key, 0);
}

static int upload_id_valid(const char *id)
{
    return id != NULL && id[0] != '\0' && strnlen(id, ME_STORAGE_UPLOAD_ID_MAX + 1) <= ME_STORAGE_UPLOAD_ID_MAX;
}

int me_storage_put(me_storage_t *st, const char *key, const void *data, size_t len)
{
    if (!key_check(key, 0) || (data == NULL && len > 0))
        return ME_EINVAL;
    return st->ops->put(st->be, key, data, len);
}

int me_storage_get(me_storage_t *st, const char *key, uint64_t offset, size_t len, void *buf, size_t *got)
{
    if (!key_check(key, 0) || (buf == NULL && len > 0) || got == NULL)
        return ME_EINVAL;
    *got = 0;
    return st->ops->get(st->be, key, offset, len, buf, got);
}

int me_storage_get_all(me_storage_t *st, const char *key, size_t max, char **data, size_t *len)
{
    size_t limit = max < SIZE_MAX ? max + 1 : SIZE_MAX, cap, got;
    me_storage_stat_t stat;
    char *buf = NULL;
    int ret;

    if (data == NULL || len == NULL)
        return ME_EINVAL;
    *data = NULL;
    *len = 0;
    if (!key_check(key, 0))
        return ME_EINVAL;
    /* Most objects read whole are small (upload states, manifests): one read of up to
     * FIRST_READ bytes gets them without asking their size first (on S3 a request less). */
    cap = max < FIRST_READ ? max + 1 : FIRST_READ;
    if ((buf = malloc(cap + 1)) == NULL)
        return ME_ENOMEM;
    got = 0;
    if ((ret = st->ops->get(st->be, key, 0, cap, buf, &got)) != 0) {
        free(buf);
        return ret;
    }
    if (got < cap) {
        buf[got] = '\0';
        *data = buf;
        *len = got;
        return 0;
    }
    free(buf);
    buf = NULL;
    if (cap == max + 1)
        return ME_ETOOLARGE;
    if ((ret = me_storage_head(st, key, &stat)) != 0)
        return ret;
    if (stat.size > max)
        return ME_ETOOLARGE;
    /* One get reads one object, whole when it returns less than it was asked for. The object
     * may be replaced by a bigger one after head: then ask again for twice as much, up to max. */
    for (cap = (size_t)stat.size + 1;; cap = cap < limit / 2 ? 2 * cap : limit) {
        char *more = realloc(buf, cap);
        if (more == NULL) {
            ret = ME_ENOMEM;
            break;
        }
        buf = more;
        if ((ret = st->ops->get(st->be, key, 0, cap, buf, &got)) != 0)
            break;
        if (got < cap) {
            buf[got] = '\0';
            *data = buf;
            *len = got;
            return 0;
        }
        if (cap == limit) {
            ret = ME_ETOOLARGE;
            break;
        }
    }
    free(buf);
    return ret;
}

int me_storage_get_json(me_storage_t *st, const char *key, size_t max, json_t **doc)
{
    char *text = NULL;
    size_t len = 0;
    int ret = me_storage_get_all(st, key, max, &text, &len);
    *doc = NULL;
    if (ret != 0)
        return ret;
    *doc = json_loadb(text, len, 0, NULL);
    free(text);
    if (*doc == NULL || !json_is_object(*doc)) {
        json_decref(*doc);
        *doc = NULL;
        return ME_EINVAL;
    }
    return 0;
}

int me_storage_put_json(me_storage_t *st, const char *key, const json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    int ret = text != NULL ? me_storage_put(st, key, text, strlen(text)) : ME_ENOMEM;
    free(text);
    return ret;
}

int me_storage_head(me_storage_t *st, const char *key, me_storage_stat_t *out)
{
    if (!key_check(key, 0) || out == NULL)
        return ME_EINVAL;
    return st->ops->head(st->be, key, out);
}

int me_storage_delete(me_storage_t *st, const char *key)
{
    if (!key_check(key, 0))
        return ME_EINVAL;
    return st->ops->del(st->be, key);
}

int me_storage_list(me_storage_t *st, const char *prefix,
                    int (*cb)(const char *key, const me_storage_stat_t *stat, void *arg), void *arg)
{
    if (!key_check(prefix, 1) || cb == NULL)
        return ME_EINVAL;
    return st->ops->list(st->be, prefix, cb, arg);
}

int me_storage_multipart_begin(me_storage_t *st, const char *key, char *upload_id, size_t idlen)
{
    if (upload_id == NULL || idlen == 0)
        return ME_EINVAL;
    upload_id[0] = '\0';
    if (!key_check(key, 0))
        return ME_EINVAL;
    return st->ops->multipart_begin(st->be, key, upload_id, idlen);
}

int me_storage_part_put(me_storage_t *st, const char *key, const char *upload_id, int number, const void *data,
                        size_t len, me_storage_part_t *out)
{
    if (!key_check(key, 0) || !upload_id_valid(upload_id) || number < 1 || number > PART_MAX ||
        (data == NULL && len > 0) || out == NULL)
        return ME_EINVAL;
    return st->ops->part_put(st->be, key, upload_id, number, data, len, out);
}

int me_storage_multipart_complete(me_storage_t *st, const char *key, const char *upload_id,
                                  const me_storage_part_t *parts, int nparts)
{
    /* as on S3: at least one part, numbers ascending */
    if (!key_check(key, 0) || !upload_id_valid(upload_id) || parts == NULL || nparts < 1 || nparts > PART_MAX)
        return ME_EINVAL;
    for (int i = 0; i < nparts; i++)
        if (parts[i].number < 1 || parts[i].number > PART_MAX || (i > 0 && parts[i].number <= parts[i - 1].number))
            return ME_EINVAL;
    return st->ops->multipart_complete(st->be, key, upload_id, parts, nparts);
}

int me_storage_multipart_abort(me_storage_t *st, const char *key, const char *upload_id)
{
    if (!key_check(key, 0) || !upload_id_valid(upload_id))
        return ME_EINVAL;
    return st->ops->multipart_abort(st->be, key, upload_id);
}

int me_storage_part_list(me_storage_t *st, const char *key, const char *upload_id, int after,
                         int (*cb)(const me_storage_part_t *part, void *arg), void *arg)
{
    if (!key_check(key, 0) || !upload_id_valid(upload_id) || after < 0 || after > PART_MAX || cb == NULL)
        return ME_EINVAL;
    return st->ops->part_list(st->be, key, upload_id, after, cb, arg);
}

int me_storage_multipart_list(me_storage_t *st, const char *prefix,
                              int (*cb)(const char *key, const char *upload_id, int64_t initiated, void *arg),
                              void *arg)
{
    if (!key_check(prefix, 1) || cb == NULL)
        return ME_EINVAL;
    return st->ops->multipart_list != NULL ? st->ops->multipart_list(st->be, prefix, cb, arg) : 0;
}

int me_storage_part_copy(me_storage_t *st, const char *key, const char *upload_id, int number, const char *src,
                         uint64_t offset, uint64_t len, me_storage_part_t *out)
{
    if (!key_check(key, 0) || !key_check(src, 0) || !upload_id_valid(upload_id) || number < 1 || number > PART_MAX ||
        len == 0 || len > ME_STORAGE_COPY_MAX || offset > UINT64_MAX - len || out == NULL)
        return ME_EINVAL;
    if (st->ops->part_copy != NULL)
        return st->ops->part_copy(st->be, key, upload_id, number, src, offset, len, out);
    /* no copy of the backend's own: through memory */
    if (len > ME_STORAGE_COPY_BUFFER_MAX)
        return ME_ETOOLARGE;
    char *buf = malloc((size_t)len);
    size_t got = 0;
    int ret;
    if (buf == NULL)
        return ME_ENOMEM;
    if ((ret = st->ops->get(st->be, src, offset, (size_t)len, buf, &got)) == 0)
        ret = got == len ? st->ops->part_put(st->be, key, upload_id, number, buf, (size_t)len, out) : ME_EINVAL;
    free(buf);
    return ret;
}

int me_storage_parts_in_any_order(const me_storage_t *st)
{
    return st->ops->parts_in_any_order;
}

uint64_t me_storage_min_part_size(const me_storage_t *st)
{
    return st->ops->min_part_size;
}
