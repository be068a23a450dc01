/* storage_faults.c: a test helper: the storage backend that counts and fails another's calls. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/unit/storage_faults.h"

struct storage_faults {
    me_storage_ops_t ops; /* the store's: a copy, so that min_part_size can change */
    const me_storage_ops_t *inner_ops;
    me_storage_backend_t *inner;
    pthread_mutex_t lock; /* the store is called from many threads at once */
    int calls[FAULT_OPS];
    fault_op_t op;          /* the fault set: op's call `left` from now fails; left 0: none */
    int left, err, die;
    int dead;
    fault_op_t struck_op;
    char struck_key[ME_STORAGE_KEY_MAX + 1];
};

/* The wrapper is this file's backend; the backend it wraps is called through inner_ops. */
struct me_storage_backend {
    struct storage_faults f;
};

static int is_write(fault_op_t op)
{
    return op != FAULT_GET && op != FAULT_HEAD && op != FAULT_LIST && op != FAULT_PART_LIST;
}

static int matches(fault_op_t want, fault_op_t op)
{
    return want == FAULT_ANY || want == op || (want == FAULT_WRITE && is_write(op));
}

/* Counts a call of op on key; 0 to pass it to the backend, or the error it gets instead. */
static int enter(me_storage_backend_t *be, fault_op_t op, const char *key)
{
    struct storage_faults *f = &be->f;
    int ret = 0;

    pthread_mutex_lock(&f->lock);
    f->calls[op]++;
    if (f->dead) {
        ret = ME_EIO;
    } else if (f->left > 0 && matches(f->op, op) && --f->left == 0) {
        ret = f->die ? ME_EIO : f->err;
        f->dead = f->die;
        f->struck_op = op;
        snprintf(f->struck_key, sizeof(f->struck_key), "%s", key);
    }
    pthread_mutex_unlock(&f->lock);
    return ret;
}

static int faulty_put(me_storage_backend_t *be, const char *key, const void *data, size_t len)
{
    int ret = enter(be, FAULT_PUT, key);
    return ret != 0 ? ret : be->f.inner_ops->put(be->f.inner, key, data, len);
}

static int faulty_get(me_storage_backend_t *be, const char *key, uint64_t offset, size_t len, void *buf, size_t *got)
{
    int ret = enter(be, FAULT_GET, key);
    return ret != 0 ? ret : be->f.inner_ops->get(be->f.inner, key, offset, len, buf, got);
}

static int faulty_head(me_storage_backend_t *be, const char *key, me_storage_stat_t *out)
{
    int ret = enter(be, FAULT_HEAD, key);
    return ret != 0 ? ret : be->f.inner_ops->head(be->f.inner, key, out);
}

static int faulty_del(me_storage_backend_t *be, const char *key)
{
    int ret = enter(be, FAULT_DELETE, key);
    return ret != 0 ? ret : be->f.inner_ops->del(be->f.inner, key);
}

static int faulty_list(me_storage_backend_t *be, const char *prefix,
                       int (*cb)(const char *key, const me_storage_stat_t *stat, void *arg), void *arg)
{
    int ret = enter(be, FAULT_LIST, prefix);
    return ret != 0 ? ret : be->f.inner_ops->list(be->f.inner, prefix, cb, arg);
}

static int faulty_multipart_begin(me_storage_backend_t *be, const char *key, char *upload_id, size_t idlen)
{
    int ret = enter(be, FAULT_MULTIPART_BEGIN, key);
    return ret != 0 ? ret : be->f.inner_ops->multipart_begin(be->f.inner, key, upload_id, idlen);
}

static int faulty_part_put(me_storage_backend_t *be, const char *key, const char *upload_id, int number,
                           const void *data, size_t len, me_storage_part_t *out)
{
    int ret = enter(be, FAULT_PART_PUT, key);
    return ret != 0 ? ret : be->f.inner_ops->part_put(be->f.inner, key, upload_id, number, data, len, out);
}

static int faulty_multipart_complete(me_storage_backend_t *be, const char *key, const char *upload_id,
                                     const me_storage_part_t *parts, int nparts)
{
    int ret = enter(be, FAULT_MULTIPART_COMPLETE, key);
    return ret != 0 ? ret : be->f.inner_ops->multipart_complete(be->f.inner, key, upload_id, parts, nparts);
}

static int faulty_multipart_abort(me_storage_backend_t *be, const char *key, const char *upload_id)
{
    int ret = enter(be, FAULT_MULTIPART_ABORT, key);
    return ret != 0 ? ret : be->f.inner_ops->multipart_abort(be->f.inner, key, upload_id);
}

static int faulty_part_copy(me_storage_backend_t *be, const char *key, const char *upload_id, int number,
                            const char *src, uint64_t offset, uint64_t len, me_storage_part_t *out)
{
    int ret = enter(be, FAULT_PART_COPY, key);
    return ret != 0 ? ret : be->f.inner_ops->part_copy(be->f.inner, key, upload_id, number, src, offset, len, out);
}

static int faulty_part_list(me_storage_backend_t *be, const char *key, const char *upload_id, int after,
                            int (*cb)(const me_storage_part_t *part, void *arg), void *arg)
{
    int ret = enter(be, FAULT_PART_LIST, key);
    return ret != 0 ? ret : be->f.inner_ops->part_list(be->f.inner, key, upload_id, after, cb, arg);
}

static void faulty_close(me_storage_backend_t *be)
{
    be->f.inner_ops->close(be->f.inner);
    pthread_mutex_destroy(&be->f.lock);
    free(be);
}

static const me_storage_ops_t faulty_ops = {
    .close = faulty_close,
    .put = faulty_put,
    .get = faulty_get,
    .head = faulty_head,
    .del = faulty_del,
    .list = faulty_list,
    .multipart_begin = faulty_multipart_begin,
    .part_put = faulty_part_put,
    .multipart_complete = faulty_multipart_complete,
    .multipart_abort = faulty_multipart_abort,
    .part_copy = faulty_part_copy,
    .part_list = faulty_part_list,
};

me_storage_t *storage_faults_wrap(const me_storage_ops_t *ops, me_storage_backend_t *be, storage_faults_t **faults)
{
    me_storage_backend_t *w = calloc(1, sizeof(*w));
    me_storage_t *st;

    if (w == NULL)
        return NULL;
    w->f.ops = faulty_ops;
    w->f.ops.min_part_size = ops->min_part_size;
    w->f.ops.parts_in_any_order = ops->parts_in_any_order;
    if (ops->part_copy == NULL)
        w->f.ops.part_copy = NULL; /* storage.c's copy through memory, as over the backend alone */
    w->f.inner_ops = ops;
    w->f.inner = be;
    w->f.struck_op = FAULT_NONE;
    pthread_mutex_init(&w->f.lock, NULL);
    if ((st = me_storage_new(&w->f.ops, w)) == NULL) {
        pthread_mutex_destroy(&w->f.lock);
        free(w);
        return NULL;
    }
    *faults = &w->f;
    return st;
}

static void set_fault(storage_faults_t *f, fault_op_t op, int nth, int err, int die)
{
    pthread_mutex_lock(&f->lock);
    f->op = op;
    f->left = nth;
    f->err = err;
    f->die = die;
    pthread_mutex_unlock(&f->lock);
}

void storage_faults_fail(storage_faults_t *f, fault_op_t op, int nth, int err)
{
    set_fault(f, op, nth, err, 0);
}

void storage_faults_die(storage_faults_t *f, fault_op_t op, int nth)
{
    set_fault(f, op, nth, ME_EIO, 1);
}

int storage_faults_dead(storage_faults_t *f)
{
    pthread_mutex_lock(&f->lock);
    int dead = f->dead;
    pthread_mutex_unlock(&f->lock);
    return dead;
}

fault_op_t storage_faults_struck(storage_faults_t *f, char *key, size_t keylen)
{
    pthread_mutex_lock(&f->lock);
    fault_op_t op = f->struck_op;
    if (key != NULL && keylen > 0)
        snprintf(key, keylen, "%s", f->struck_key);
    pthread_mutex_unlock(&f->lock);
    return op;
}

int storage_faults_calls(storage_faults_t *f, fault_op_t op)
{
    int n = 0;
    pthread_mutex_lock(&f->lock);
    for (fault_op_t i = 0; i < FAULT_OPS; i++)
        n += matches(op, i) ? f->calls[i] : 0;
    pthread_mutex_unlock(&f->lock);
    return n;
}

void storage_faults_reset(storage_faults_t *f)
{
    pthread_mutex_lock(&f->lock);
    memset(f->calls, 0, sizeof(f->calls));
    f->left = f->dead = 0;
    f->struck_op = FAULT_NONE;
    f->struck_key[0] = '\0';
    pthread_mutex_unlock(&f->lock);
}

void storage_faults_set_min_part_size(storage_faults_t *f, uint64_t size)
{
    f->ops.min_part_size = size;
}
