/* storage_conformance.c: a test helper: the contract of storage.h, case by case, for any backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "tests/unit/storage_conformance.h"
#include "tests/unit/storage_faults.h"

#define MIB (1024 * 1024)

typedef struct {
    const storage_conformance_backend_t *backend;
    storage_faults_t *faults; /* counts what reaches the backend */
    me_storage_t *st;
} fixture_t;

static int setup(void **state)
{
    const storage_conformance_backend_t *b = *state;
    fixture_t *fx = calloc(1, sizeof(*fx));
    me_storage_backend_t *be = NULL;

    if (fx == NULL || (be = b->open(b->arg)) == NULL)
        goto fail;
    fx->backend = b;
    if ((fx->st = storage_faults_wrap(b->ops, be, &fx->faults)) == NULL) {
        b->ops->close(be);
        goto fail;
    }
    *state = fx;
    return 0;
fail:
    if (be != NULL && b->cleanup != NULL)
        b->cleanup(b->arg);
    free(fx);
    return -1;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    const storage_conformance_backend_t *b = fx->backend;

    me_storage_close(fx->st);
    if (b->cleanup != NULL)
        b->cleanup(b->arg);
    free(fx);
    return 0;
}

/* ---- helpers ---- */

static void put_bytes(me_storage_t *st, const char *key, const void *data, size_t len)
{
    assert_int_equal(me_storage_put(st, key, data, len), 0);
}

static void put_str(me_storage_t *st, const char *key, const char *s)
{
    put_bytes(st, key, s, strlen(s));
}

void storage_assert_object(me_storage_t *st, const char *key, const void *want, size_t len)
{
    char *data;
    size_t got;
    assert_int_equal(me_storage_get_all(st, key, len, &data, &got), 0);
    assert_int_equal(got, len);
    assert_memory_equal(data, want, len);
    assert_int_equal(data[len], '\0');
    free(data);
}

static void assert_absent(me_storage_t *st, const char *key)
{
    me_storage_stat_t stat;
    assert_int_equal(me_storage_head(st, key, &stat), ME_ENOTFOUND);
}

/* len bytes of a sequence that seed picks: parts that differ, with every byte value. */
static unsigned char *random_bytes(size_t len, unsigned seed)
{
    unsigned char *buf = malloc(len + 1);
    assert_non_null(buf);
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 16);
    }
    return buf;
}

/* The size of a part that is not the last: the backend's minimum, or 64 KiB on a backend
 * that takes any size. */
static size_t part_size(me_storage_t *st)
{
    uint64_t min = me_storage_min_part_size(st);
    return min > 64 * 1024 ? (size_t)min : 64 * 1024;
}

/* Puts parts 1..n of sizes[i] random bytes, fills parts[], and returns their concatenation. */
static unsigned char *put_parts(me_storage_t *st, const char *key, const char *id, const size_t *sizes, int n,
                                me_storage_part_t *parts, size_t *total)
{
    unsigned char *whole;
    size_t at = 0;

    *total = 0;
    for (int i = 0; i < n; i++)
        *total += sizes[i];
    assert_non_null(whole = malloc(*total + 1));
    for (int i = 0; i < n; i++) {
        unsigned char *data = random_bytes(sizes[i], (unsigned)i + 1);
        assert_int_equal(me_storage_part_put(st, key, id, i + 1, data, sizes[i], &parts[i]), 0);
        assert_int_equal(parts[i].number, i + 1);
        assert_int_equal(parts[i].size, sizes[i]);
        assert_true(strlen(parts[i].etag) > 0 && strlen(parts[i].etag) <= ME_STORAGE_ETAG_MAX);
        memcpy(whole + at, data, sizes[i]);
        at += sizes[i];
        free(data);
    }
    return whole;
}

static void begin(me_storage_t *st, const char *key, char id[ME_STORAGE_UPLOAD_ID_MAX + 1])
{
    assert_int_equal(me_storage_multipart_begin(st, key, id, ME_STORAGE_UPLOAD_ID_MAX + 1), 0);
    assert_true(strlen(id) > 0 && strlen(id) <= ME_STORAGE_UPLOAD_ID_MAX);
}

/* ---- objects ---- */

static void conformance_round_trips(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    unsigned char bin[256], *big = random_bytes(3 * MIB, 7);
    me_storage_stat_t stat;

    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)i; /* NUL bytes included */
    put_str(st, "media/m1.json", "{\"status\":\"uploaded\"}");
    put_bytes(st, "originals/al/bin", bin, sizeof(bin));
    put_bytes(st, "originals/al/big", big, 3 * MIB);
    put_bytes(st, "empty", "", 0);

    storage_assert_object(st, "media/m1.json", "{\"status\":\"uploaded\"}", 21);
    storage_assert_object(st, "originals/al/bin", bin, sizeof(bin));
    storage_assert_object(st, "originals/al/big", big, 3 * MIB);
    storage_assert_object(st, "empty", "", 0);

    assert_int_equal(me_storage_head(st, "originals/al/big", &stat), 0);
    assert_int_equal(stat.size, 3 * MIB);
    assert_true(stat.mtime > 1700000000);
    assert_true(strlen(stat.etag) > 0 && strlen(stat.etag) <= ME_STORAGE_ETAG_MAX);
    assert_int_equal(me_storage_head(st, "empty", &stat), 0);
    assert_int_equal(stat.size, 0);

    /* only what was put is an object: not the beginning of a key, nor a key under one */
    assert_absent(st, "missing");
    assert_absent(st, "originals/al");
    assert_absent(st, "originals/al/bi");
    assert_absent(st, "empty/x");

    /* a put replaces the whole object, a longer one by a shorter one too */
    put_str(st, "originals/al/big", "short");
    storage_assert_object(st, "originals/al/big", "short", 5);
    free(big);
}

static void conformance_ranged_get(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    char buf[16];
    size_t got;

    put_str(st, "r", "0123456789");
    assert_int_equal(me_storage_get(st, "r", 3, 4, buf, &got), 0);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "3456", 4);
    assert_int_equal(me_storage_get(st, "r", 8, sizeof(buf), buf, &got), 0); /* the end */
    assert_int_equal(got, 2);
    assert_memory_equal(buf, "89", 2);
    assert_int_equal(me_storage_get(st, "r", 10, sizeof(buf), buf, &got), 0); /* offset == size */
    assert_int_equal(got, 0);
    assert_int_equal(me_storage_get(st, "r", 0, 0, buf, &got), 0);
    assert_int_equal(got, 0);
    got = 99;
    assert_int_equal(me_storage_get(st, "r", 11, sizeof(buf), buf, &got), ME_EINVAL); /* past the end */
    assert_int_equal(got, 0);
    assert_int_equal(me_storage_get(st, "r", UINT64_MAX, sizeof(buf), buf, &got), ME_EINVAL);
    assert_int_equal(me_storage_get(st, "nope", 0, sizeof(buf), buf, &got), ME_ENOTFOUND);
    assert_int_equal(me_storage_get(st, "r", 0, sizeof(buf), buf, NULL), ME_EINVAL);
}

static void conformance_get_all_max(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    char *data;
    size_t len;

    put_str(st, "g/ten", "0123456789");
    storage_assert_object(st, "g/ten", "0123456789", 10); /* max == the size */
    data = (char *)1, len = 99;
    assert_int_equal(me_storage_get_all(st, "g/ten", 9, &data, &len), ME_ETOOLARGE);
    assert_null(data);
    assert_int_equal(len, 0);
    assert_int_equal(me_storage_get_all(st, "g/none", 10, &data, &len), ME_ENOTFOUND);
    assert_null(data);
    put_str(st, "g/empty", "");
    assert_int_equal(me_storage_get_all(st, "g/empty", 0, &data, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);
    assert_int_equal(me_storage_get_all(st, "g/ten", 10, NULL, &len), ME_EINVAL);
    assert_int_equal(me_storage_get_all(st, "g/ten", 10, &data, NULL), ME_EINVAL);
}

static void conformance_json(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    static const char *not_objects[] = {"[1,2]", "42", "\"text\"", "null", "not json", "{\"a\":", ""};
    json_t *doc = json_pack("{s:s,s:i,s:[b,n]}", "name", "m1", "n", 42, "list", 1), *got = (json_t *)1;
    char key[32];

    const char *compact = "{\"name\":\"m1\",\"n\":42,\"list\":[true,null]}";
    assert_int_equal(me_storage_put_json(st, "j/doc", doc), 0);
    storage_assert_object(st, "j/doc", compact, strlen(compact));
    assert_int_equal(me_storage_get_json(st, "j/doc", strlen(compact), &got), 0);
    assert_true(json_equal(doc, got));
    json_decref(got);
    assert_int_equal(me_storage_get_json(st, "j/doc", strlen(compact) - 1, &got), ME_ETOOLARGE);
    assert_null(got);
    assert_int_equal(me_storage_get_json(st, "j/none", 100, &got), ME_ENOTFOUND);
    assert_null(got);
    for (size_t i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++) {
        snprintf(key, sizeof(key), "j/not/%zu", i);
        put_str(st, key, not_objects[i]);
        got = (json_t *)1;
        assert_int_equal(me_storage_get_json(st, key, 100, &got), ME_EINVAL);
        assert_null(got);
    }
    json_decref(doc);
}

static void conformance_etag_follows_the_content(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    me_storage_stat_t a, b, c;

    put_str(st, "x/y", "first");
    assert_int_equal(me_storage_head(st, "x/y", &a), 0);
    assert_int_equal(me_storage_head(st, "x/y", &b), 0);
    assert_string_equal(a.etag, b.etag); /* stable while unchanged */
    put_str(st, "x/y", "other"); /* the same size */
    assert_int_equal(me_storage_head(st, "x/y", &c), 0);
    assert_string_not_equal(a.etag, c.etag);
    assert_int_equal(c.size, 5);
    storage_assert_object(st, "x/y", "other", 5);
}

static void conformance_delete(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    char buf[4];
    size_t got;

    put_str(st, "d/a/b", "x");
    put_str(st, "d/keep", "k");
    assert_int_equal(me_storage_delete(st, "d/a/b"), 0);
    assert_absent(st, "d/a/b");
    assert_int_equal(me_storage_get(st, "d/a/b", 0, sizeof(buf), buf, &got), ME_ENOTFOUND);
    assert_int_equal(me_storage_delete(st, "d/a/b"), 0); /* a missing key: not an error */
    assert_int_equal(me_storage_delete(st, "never/was/here"), 0);
    /* the beginning of other keys is no object: deleting it removes none of them */
    assert_int_equal(me_storage_delete(st, "d"), 0);
    assert_int_equal(me_storage_delete(st, "d/ke"), 0);
    storage_assert_object(st, "d/keep", "k", 1);
}

/* ---- listing ---- */

typedef struct {
    char keys[32][64];
    me_storage_stat_t stats[32];
    int n, stop_at;
} listed_t;

static int collect(const char *key, const me_storage_stat_t *stat, void *arg)
{
    listed_t *l = arg;
    assert_true(l->n < 32);
    snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
    l->stats[l->n] = *stat;
    return ++l->n == l->stop_at ? 7 : 0;
}

static void assert_listing(me_storage_t *st, const char *prefix, const char *const *want, int nwant)
{
    listed_t l = {0};
    assert_int_equal(me_storage_list(st, prefix, collect, &l), 0);
    assert_int_equal(l.n, nwant);
    for (int i = 0; i < nwant; i++)
        assert_string_equal(l.keys[i], want[i]);
}

static void conformance_list_order_and_prefixes(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    static const char *keys[] = {"uploads/abc.info", "uploads/ab/x", "uploads/ac", "uploads/a", "uploadsX",
                                 "a0", "a/b", "a.b", "a-b", "media/m.json", "Z"};
    static const char *all[] = {"Z", "a-b", "a.b", "a/b", "a0", "media/m.json", "uploads/a", "uploads/ab/x",
                                "uploads/abc.info", "uploads/ac", "uploadsX"};
    static const char *ab[] = {"uploads/ab/x", "uploads/abc.info"};
    static const char *uploads_dir[] = {"uploads/a", "uploads/ab/x", "uploads/abc.info", "uploads/ac"};
    static const char *up[] = {"uploads/a", "uploads/ab/x", "uploads/abc.info", "uploads/ac", "uploadsX"};
    static const char *a[] = {"a-b", "a.b", "a/b", "a0"};
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1];
    me_storage_part_t part;
    me_storage_stat_t stat;
    listed_t l = {.stop_at = 2};

    assert_listing(st, "", NULL, 0);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        put_str(st, keys[i], keys[i]);
    /* an upload in progress is no object yet */
    begin(st, "uploads/zz", id);
    assert_int_equal(me_storage_part_put(st, "uploads/zz", id, 1, "p", 1, &part), 0);

    /* byte order, '-' < '.' < '/' < '0'; a prefix need not end at a '/' */
    assert_listing(st, "", all, 11);
    assert_listing(st, "uploads/ab", ab, 2);
    assert_listing(st, "uploads/", uploads_dir, 4);
    assert_listing(st, "up", up, 5);
    assert_listing(st, "a", a, 4);
    assert_listing(st, "uploads/abc.info", ab + 1, 1);
    assert_listing(st, "nothing/", NULL, 0);
    assert_listing(st, "Z/", NULL, 0); /* an object, not a beginning of keys */
    assert_listing(st, "uploads/zz", NULL, 0);

    /* the stat each listed object gets is its head */
    assert_int_equal(me_storage_list(st, "media/", collect, &l), 0);
    assert_int_equal(me_storage_head(st, "media/m.json", &stat), 0);
    assert_int_equal(l.stats[0].size, stat.size);
    assert_int_equal(l.stats[0].mtime, stat.mtime);
    assert_string_equal(l.stats[0].etag, stat.etag);

    /* a non-zero return stops the walk and is returned */
    l = (listed_t){.stop_at = 2};
    assert_int_equal(me_storage_list(st, "", collect, &l), 7);
    assert_int_equal(l.n, 2);
    assert_int_equal(me_storage_multipart_abort(st, "uploads/zz", id), 0);
}

typedef struct {
    me_storage_part_t parts[8];
    int n, stop_at; /* the callback returns 99 at part stop_at (0: never) */
} parts_seen_t;

static int parts_collect(const me_storage_part_t *part, void *arg)
{
    parts_seen_t *s = arg;
    if (s->n < 8)
        s->parts[s->n] = *part;
    s->n++;
    return s->stop_at != 0 && part->number == s->stop_at ? 99 : 0;
}

/* ---- what storage.c refuses ---- */

static void conformance_invalid_keys_never_reach_the_backend(void **state)
{
    fixture_t *fx = *state;
    me_storage_t *st = fx->st;
    static const char *bad[] = {"", "/a", "a/", "a//b", "../a", "a/../b", ".tmp/x", ".multipart", ".a", "a/.b",
                                "a b", "a\\b", "a%2f", "caf\xc3\xa9", NULL, "long"};
    static const char *bad_prefixes[] = {"/a", "a//", ".tmp/", "a/.b", "a b", NULL};
    char long_key[ME_STORAGE_KEY_MAX + 2], buf[4], id[ME_STORAGE_UPLOAD_ID_MAX + 1], *data;
    const char *upload = "0123456789abcdef0123456789abcdef";
    me_storage_part_t part = {.number = 1};
    me_storage_stat_t stat;
    json_t *doc = json_object(), *got;
    listed_t l = {0};
    parts_seen_t ps = {0};
    size_t len;

    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0'; /* one byte over ME_STORAGE_KEY_MAX */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *k = bad[i] != NULL && strcmp(bad[i], "long") == 0 ? long_key : bad[i];
        assert_false(me_storage_key_valid(k));
        assert_int_equal(me_storage_put(st, k, "x", 1), ME_EINVAL);
        assert_int_equal(me_storage_get(st, k, 0, sizeof(buf), buf, &len), ME_EINVAL);
        assert_int_equal(me_storage_get_all(st, k, 10, &data, &len), ME_EINVAL);
        assert_null(data);
        assert_int_equal(me_storage_get_json(st, k, 10, &got), ME_EINVAL);
        assert_null(got);
        assert_int_equal(me_storage_put_json(st, k, doc), ME_EINVAL);
        assert_int_equal(me_storage_head(st, k, &stat), ME_EINVAL);
        assert_int_equal(me_storage_delete(st, k), ME_EINVAL);
        assert_int_equal(me_storage_multipart_begin(st, k, id, sizeof(id)), ME_EINVAL);
        assert_string_equal(id, "");
        assert_int_equal(me_storage_part_put(st, k, upload, 1, "x", 1, &part), ME_EINVAL);
        assert_int_equal(me_storage_multipart_complete(st, k, upload, &part, 1), ME_EINVAL);
        assert_int_equal(me_storage_multipart_abort(st, k, upload), ME_EINVAL);
        assert_int_equal(me_storage_part_list(st, k, upload, 0, parts_collect, &ps), ME_EINVAL);
    }
    for (size_t i = 0; i < sizeof(bad_prefixes) / sizeof(bad_prefixes[0]); i++)
        assert_int_equal(me_storage_list(st, bad_prefixes[i], collect, &l), ME_EINVAL);
    assert_int_equal(me_storage_list(st, "a", NULL, NULL), ME_EINVAL);
    assert_int_equal(storage_faults_calls(fx->faults, FAULT_ANY), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(ps.n, 0);
    json_decref(doc);
}

/* Arguments storage.c refuses (ME_EINVAL) before they reach the backend. */
static void conformance_multipart_arguments(void **state)
{
    fixture_t *fx = *state;
    me_storage_t *st = fx->st;
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], too_long[ME_STORAGE_UPLOAD_ID_MAX + 2], one[1] = {'x'};
    me_storage_part_t p, twice[2];

    begin(st, "a/k", id);
    assert_int_equal(me_storage_part_put(st, "a/k", id, 1, "abc", 3, &p), 0);
    storage_faults_reset(fx->faults);
    memset(too_long, 'a', sizeof(too_long) - 1);
    too_long[sizeof(too_long) - 1] = '\0';

    assert_int_equal(me_storage_multipart_begin(st, "a/k", NULL, 10), ME_EINVAL);
    assert_int_equal(me_storage_multipart_begin(st, "a/k", one, 0), ME_EINVAL);
    assert_int_equal(me_storage_part_put(st, "a/k", id, 0, "x", 1, &p), ME_EINVAL);
    assert_int_equal(me_storage_part_put(st, "a/k", id, 10001, "x", 1, &p), ME_EINVAL);
    assert_int_equal(me_storage_part_put(st, "a/k", id, 1, NULL, 1, &p), ME_EINVAL);
    assert_int_equal(me_storage_part_put(st, "a/k", id, 1, "x", 1, NULL), ME_EINVAL);
    twice[0] = twice[1] = p;
    assert_int_equal(me_storage_multipart_complete(st, "a/k", id, &p, 0), ME_EINVAL);
    assert_int_equal(me_storage_multipart_complete(st, "a/k", id, NULL, 1), ME_EINVAL);
    assert_int_equal(me_storage_multipart_complete(st, "a/k", id, &p, 10001), ME_EINVAL);
    assert_int_equal(me_storage_multipart_complete(st, "a/k", id, twice, 2), ME_EINVAL); /* not ascending */
    twice[0].number = 2, twice[1].number = 1;
    assert_int_equal(me_storage_multipart_complete(st, "a/k", id, twice, 2), ME_EINVAL);
    twice[0].number = 0;
    assert_int_equal(me_storage_multipart_complete(st, "a/k", id, twice, 1), ME_EINVAL);
    const char *ids[] = {"", too_long, NULL};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        assert_int_equal(me_storage_part_put(st, "a/k", ids[i], 1, "x", 1, &p), ME_EINVAL);
        assert_int_equal(me_storage_multipart_complete(st, "a/k", ids[i], &p, 1), ME_EINVAL);
        assert_int_equal(me_storage_multipart_abort(st, "a/k", ids[i]), ME_EINVAL);
    }
    assert_int_equal(storage_faults_calls(fx->faults, FAULT_ANY), 0);

    /* no backend's id fits in one byte */
    one[0] = 'x';
    assert_int_equal(me_storage_multipart_begin(st, "a/k", one, 1), ME_EINVAL);
    assert_int_equal(one[0], '\0');

    /* none of that changed the upload, nor p */
    assert_int_equal(me_storage_multipart_complete(st, "a/k", id, &p, 1), 0);
    storage_assert_object(st, "a/k", "abc", 3);
}

/* ---- multipart ---- */

static void conformance_multipart(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    size_t sizes[3] = {part_size(st), part_size(st) + 1, 3}, total;
    me_storage_part_t parts[3];
    me_storage_stat_t stat;
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], other[ME_STORAGE_UPLOAD_ID_MAX + 1];

    begin(st, "originals/al/m1", id);
    begin(st, "originals/al/m1", other);
    assert_string_not_equal(id, other);
    unsigned char *whole = put_parts(st, "originals/al/m1", id, sizes, 3, parts, &total);
    assert_absent(st, "originals/al/m1"); /* nothing shows before completion */
    assert_listing(st, "originals/", NULL, 0);
    assert_int_equal(me_storage_multipart_complete(st, "originals/al/m1", id, parts, 3), 0);
    storage_assert_object(st, "originals/al/m1", whole, total);
    assert_int_equal(me_storage_head(st, "originals/al/m1", &stat), 0);
    assert_int_equal(stat.size, total);
    assert_int_equal(me_storage_multipart_abort(st, "originals/al/m1", other), 0);
    free(whole);
}

static void conformance_part_put_twice_last_wins(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    size_t ps = part_size(st);
    unsigned char *first = random_bytes(ps, 1), *again = random_bytes(ps + 7, 2), *want = malloc(ps + 11);
    me_storage_part_t old, parts[2];
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1];

    begin(st, "k/twice", id);
    assert_int_equal(me_storage_part_put(st, "k/twice", id, 1, first, ps, &old), 0);
    assert_int_equal(me_storage_part_put(st, "k/twice", id, 1, again, ps + 7, &parts[0]), 0);
    assert_string_not_equal(old.etag, parts[0].etag);
    assert_int_equal(me_storage_part_put(st, "k/twice", id, 2, "tail", 4, &parts[1]), 0);
    assert_int_equal(me_storage_multipart_complete(st, "k/twice", id, (me_storage_part_t[]){old, parts[1]}, 2),
                     ME_ECONFLICT);
    assert_int_equal(me_storage_multipart_complete(st, "k/twice", id, parts, 2), 0);
    memcpy(want, again, ps + 7);
    memcpy(want + ps + 7, "tail", 4);
    storage_assert_object(st, "k/twice", want, ps + 11);
    free(first);
    free(again);
    free(want);
}

/* ---- listing an upload's parts ---- */

static void assert_part(const me_storage_part_t *got, const me_storage_part_t *want)
{
    assert_int_equal(got->number, want->number);
    assert_int_equal(got->size, want->size);
    assert_string_equal(got->etag, want->etag);
}

/* What any instance learns of an upload after another put parts and died: every part as its
 * last put left it, in order; an upload not (or no longer) there is ME_ENOTFOUND. */
static void conformance_part_list(void **state)
{
    fixture_t *fx = *state;
    me_storage_t *st = fx->st;
    size_t ps = part_size(st), sizes[3] = {ps, ps, 5}, total;
    me_storage_part_t parts[3], again;
    parts_seen_t s = {0};
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], gone[ME_STORAGE_UPLOAD_ID_MAX + 1];

    begin(st, "up/listed", id);
    assert_int_equal(me_storage_part_list(st, "up/listed", id, 0, parts_collect, &s), 0);
    assert_int_equal(s.n, 0); /* none yet */
    unsigned char *whole = put_parts(st, "up/listed", id, sizes, 3, parts, &total);
    assert_int_equal(me_storage_part_list(st, "up/listed", id, 0, parts_collect, &s), 0);
    assert_int_equal(s.n, 3);
    for (int i = 0; i < 3; i++)
        assert_part(&s.parts[i], &parts[i]);

    /* the parts above a number only */
    s = (parts_seen_t){0};
    assert_int_equal(me_storage_part_list(st, "up/listed", id, 2, parts_collect, &s), 0);
    assert_int_equal(s.n, 1);
    assert_part(&s.parts[0], &parts[2]);
    s = (parts_seen_t){0};
    assert_int_equal(me_storage_part_list(st, "up/listed", id, 3, parts_collect, &s), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(me_storage_part_list(st, "up/listed", id, -1, parts_collect, &s), ME_EINVAL);
    assert_int_equal(me_storage_part_list(st, "up/listed", id, 10001, parts_collect, &s), ME_EINVAL);

    /* the callback stops it */
    s = (parts_seen_t){.stop_at = 2};
    assert_int_equal(me_storage_part_list(st, "up/listed", id, 0, parts_collect, &s), 99);
    assert_int_equal(s.n, 2);

    /* the last part put again, smaller: the listing shows the last put */
    assert_int_equal(me_storage_part_put(st, "up/listed", id, 3, "abc", 3, &again), 0);
    s = (parts_seen_t){0};
    assert_int_equal(me_storage_part_list(st, "up/listed", id, 0, parts_collect, &s), 0);
    assert_int_equal(s.n, 3);
    assert_part(&s.parts[1], &parts[1]);
    assert_part(&s.parts[2], &again);
    assert_int_equal(s.parts[2].size, 3);
    assert_string_not_equal(s.parts[2].etag, parts[2].etag);

    /* for another key, aborted, never begun or completed: no such upload */
    assert_int_equal(me_storage_part_list(st, "up/other", id, 0, parts_collect, &s), ME_ENOTFOUND);
    begin(st, "up/gone", gone);
    assert_int_equal(me_storage_multipart_abort(st, "up/gone", gone), 0);
    assert_int_equal(me_storage_part_list(st, "up/gone", gone, 0, parts_collect, &s), ME_ENOTFOUND);
    assert_int_equal(me_storage_part_list(st, "up/listed", id, 0, NULL, NULL), ME_EINVAL);
    parts[2] = again;
    assert_int_equal(me_storage_multipart_complete(st, "up/listed", id, parts, 3), 0);
    memcpy(whole + 2 * ps, "abc", 3);
    storage_assert_object(st, "up/listed", whole, 2 * ps + 3);
    s = (parts_seen_t){0};
    /* completed: gone (file, AWS S3), or as it was completed (Swift's s3api, for a while) */
    int after = me_storage_part_list(st, "up/listed", id, 0, parts_collect, &s);
    assert_true(after == ME_ENOTFOUND || (after == 0 && s.n == 3));
    free(whole);
}

static void conformance_complete_with_wrong_parts(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    size_t sizes[2] = {part_size(st), 3}, total;
    me_storage_part_t parts[2], bad;
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], other[ME_STORAGE_UPLOAD_ID_MAX + 1];

    begin(st, "k", id);
    begin(st, "k", other);
    unsigned char *whole = put_parts(st, "k", id, sizes, 2, parts, &total);

    bad = parts[1];
    bad.etag[0] = bad.etag[0] == '0' ? '1' : '0';
    assert_int_equal(me_storage_multipart_complete(st, "k", id, (me_storage_part_t[]){parts[0], bad}, 2), ME_ECONFLICT);
    bad = parts[1];
    bad.size++;
    assert_int_equal(me_storage_multipart_complete(st, "k", id, (me_storage_part_t[]){parts[0], bad}, 2), ME_ECONFLICT);
    bad = parts[1];
    bad.number = 3; /* never put */
    assert_int_equal(me_storage_multipart_complete(st, "k", id, (me_storage_part_t[]){parts[0], bad}, 2), ME_ECONFLICT);
    assert_int_equal(me_storage_multipart_complete(st, "k", other, parts, 2), ME_ECONFLICT); /* another's parts */
    assert_absent(st, "k");

    /* still completable after all that */
    assert_int_equal(me_storage_multipart_complete(st, "k", id, parts, 2), 0);
    storage_assert_object(st, "k", whole, total);
    assert_int_equal(me_storage_multipart_abort(st, "k", other), 0);
    free(whole);
}

static void conformance_unknown_upload(void **state)
{
    me_storage_t *st = ((fixture_t *)*state)->st;
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], gone[ME_STORAGE_UPLOAD_ID_MAX + 1];
    me_storage_part_t p, q;

    begin(st, "u/k", id);
    assert_int_equal(me_storage_part_put(st, "u/k", id, 1, "abc", 3, &p), 0);

    /* aborted: gone, and aborting again is no error */
    begin(st, "u/gone", gone);
    assert_int_equal(me_storage_part_put(st, "u/gone", gone, 1, "x", 1, &q), 0);
    assert_int_equal(me_storage_multipart_abort(st, "u/gone", gone), 0);
    assert_int_equal(me_storage_multipart_abort(st, "u/gone", gone), 0);
    assert_int_equal(me_storage_part_put(st, "u/gone", gone, 1, "x", 1, &q), ME_ENOTFOUND);
    assert_int_equal(me_storage_multipart_complete(st, "u/gone", gone, &q, 1), ME_ENOTFOUND);
    assert_absent(st, "u/gone");

    /* an upload belongs to the key it was begun for: for another key it does not exist */
    assert_int_equal(me_storage_part_put(st, "u/other", id, 1, "x", 1, &q), ME_ENOTFOUND);
    assert_int_equal(me_storage_multipart_complete(st, "u/other", id, &p, 1), ME_ENOTFOUND);
    assert_int_equal(me_storage_multipart_abort(st, "u/other", id), 0);
    assert_absent(st, "u/other");

    /* none of which touched it */
    assert_int_equal(me_storage_multipart_complete(st, "u/k", id, &p, 1), 0);
    storage_assert_object(st, "u/k", "abc", 3);
}

static void conformance_min_part_size(void **state)
{
    fixture_t *fx = *state;
    me_storage_t *st = fx->st;
    uint64_t min = me_storage_min_part_size(st);
    size_t sizes[3] = {(size_t)min, (size_t)min, (size_t)(min / 2 + 1)}, total;
    me_storage_part_t parts[3];
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1];

    assert_int_equal(min, fx->backend->ops->min_part_size);
    /* parts of exactly the minimum, and a shorter last one, make an object */
    begin(st, "m/min", id);
    unsigned char *whole = put_parts(st, "m/min", id, sizes, 3, parts, &total);
    assert_int_equal(me_storage_multipart_complete(st, "m/min", id, parts, 3), 0);
    storage_assert_object(st, "m/min", whole, total);
    free(whole);
}

/* Parts copied from ranges of other objects, mixed with parts put: the object is their bytes
 * in order; a missing source, an unknown upload and a range past the end are refused. */
static void conformance_part_copy(void **state)
{
    fixture_t *fx = *state;
    me_storage_t *st = fx->st;
    size_t ps = part_size(st), total = 2 * ps + 11;
    unsigned char *a = random_bytes(2 * ps + 7, 11), *b = random_bytes(ps, 12), *want = malloc(total);
    me_storage_part_t parts[3], p;
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1];
    const char *key = "originals/al/joined";

    put_bytes(st, "uploads/p1/data", a, 2 * ps + 7);
    put_bytes(st, "uploads/p2/data", b, ps);
    begin(st, key, id);
    storage_faults_reset(fx->faults);
    /* part 1: a range in the middle of a; part 2: all of b; part 3: put */
    assert_int_equal(me_storage_part_copy(st, key, id, 1, "uploads/p1/data", 3, ps + 1, &parts[0]), 0);
    assert_int_equal(parts[0].number, 1);
    assert_int_equal(parts[0].size, ps + 1);
    assert_true(strlen(parts[0].etag) > 0 && strlen(parts[0].etag) <= ME_STORAGE_ETAG_MAX);
    assert_int_equal(me_storage_part_copy(st, key, id, 2, "uploads/p2/data", 0, ps, &parts[1]), 0);
    assert_int_equal(parts[1].size, ps);
    if (fx->backend->ops->part_copy != NULL) /* copied by the backend: nothing read through us */
        assert_int_equal(storage_faults_calls(fx->faults, FAULT_GET), 0);
    assert_int_equal(me_storage_part_put(st, key, id, 3, "tail-bytes", 10, &parts[2]), 0);

    /* refusals, which change nothing */
    assert_int_equal(me_storage_part_copy(st, key, id, 4, "uploads/none/data", 0, 1, &p), ME_ENOTFOUND);
    assert_int_equal(me_storage_part_copy(st, key, id, 4, "uploads/p1/data", 2 * ps, 8, &p), ME_EINVAL);
    assert_int_equal(me_storage_part_copy(st, key, id, 4, "uploads/p1/data", 0, 0, &p), ME_EINVAL);
    assert_int_equal(me_storage_part_copy(st, key, id, 4, "uploads/p1/data", UINT64_MAX, 2, &p), ME_EINVAL);
    assert_int_equal(me_storage_part_copy(st, "u/other", id, 1, "uploads/p1/data", 0, 1, &p), ME_ENOTFOUND);
    assert_int_equal(me_storage_part_copy(st, key, id, 4, "../x", 0, 1, &p), ME_EINVAL);

    assert_int_equal(me_storage_multipart_complete(st, key, id, parts, 3), 0);
    memcpy(want, a + 3, ps + 1);
    memcpy(want + ps + 1, b, ps);
    memcpy(want + 2 * ps + 1, "tail-bytes", 10);
    storage_assert_object(st, key, want, total);
    storage_assert_object(st, "uploads/p1/data", a, 2 * ps + 7); /* the sources are untouched */
    free(a);
    free(b);
    free(want);
}

/* ---- threads ---- */

enum { WRITERS = 6, ROUNDS = 15, OBJ = 64 * 1024 };

typedef struct {
    me_storage_t *st;
    size_t me;
    const char *failed; /* NULL, or the first failure */
    int may_miss;       /* the backend's racing_reads_may_miss */
} writer_t;

/* Writer me puts OBJ + me bytes of value me, and reads back after each put: whatever it reads
 * must be whole and one writer's. */
static void *same_key_writer(void *arg)
{
    writer_t *w = arg;
    size_t len = OBJ + w->me;
    unsigned char *buf = malloc(len);

    memset(buf, (int)w->me, len);
    for (int r = 0; r < ROUNDS && w->failed == NULL; r++) {
        char *data;
        size_t got;
        int ret;
        if (me_storage_put(w->st, "same/key", buf, len) != 0) {
            w->failed = "put";
        } else if ((ret = me_storage_get_all(w->st, "same/key", 2 * OBJ, &data, &got)) != 0) {
            if (ret != ME_ENOTFOUND || !w->may_miss)
                w->failed = ret == ME_ENOTFOUND ? "get_all: not found" : "get_all: an error";
        } else {
            if (got < OBJ || got >= OBJ + WRITERS)
                w->failed = "size";
            for (size_t i = 0; w->failed == NULL && i < got; i++)
                if ((unsigned char)data[i] != got - OBJ)
                    w->failed = "mixed content";
            free(data);
        }
    }
    free(buf);
    return NULL;
}

static void conformance_concurrent_puts_to_one_key(void **state)
{
    fixture_t *f = *state;
    me_storage_t *st = f->st;
    pthread_t t[WRITERS];
    writer_t w[WRITERS];
    me_storage_stat_t stat;

    for (size_t i = 0; i < WRITERS; i++) {
        w[i] = (writer_t){st, i, NULL, f->backend->racing_reads_may_miss};
        assert_int_equal(pthread_create(&t[i], NULL, same_key_writer, &w[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++) /* all joined before any assertion can end the test */
        pthread_join(t[i], NULL);
    for (int i = 0; i < WRITERS; i++)
        if (w[i].failed != NULL)
            fail_msg("writer %d: %s", i, w[i].failed);
    assert_int_equal(me_storage_head(st, "same/key", &stat), 0);
    assert_true(stat.size >= OBJ && stat.size < OBJ + WRITERS);
}

static const struct {
    const char *name;
    CMUnitTestFunction run;
} cases[] = {
#define CASE(f) {#f, f}
    CASE(conformance_round_trips),
    CASE(conformance_ranged_get),
    CASE(conformance_get_all_max),
    CASE(conformance_json),
    CASE(conformance_etag_follows_the_content),
    CASE(conformance_delete),
    CASE(conformance_list_order_and_prefixes),
    CASE(conformance_invalid_keys_never_reach_the_backend),
    CASE(conformance_multipart_arguments),
    CASE(conformance_multipart),
    CASE(conformance_part_put_twice_last_wins),
    CASE(conformance_complete_with_wrong_parts),
    CASE(conformance_unknown_upload),
    CASE(conformance_min_part_size),
    CASE(conformance_concurrent_puts_to_one_key),
    CASE(conformance_part_copy),
    CASE(conformance_part_list),
#undef CASE
};

_Static_assert(sizeof(cases) / sizeof(cases[0]) == STORAGE_CONFORMANCE_CASES, "STORAGE_CONFORMANCE_CASES");

void storage_conformance_cases(const storage_conformance_backend_t *backend, struct CMUnitTest *tests)
{
    for (size_t i = 0; i < STORAGE_CONFORMANCE_CASES; i++)
        tests[i] = (struct CMUnitTest){cases[i].name, cases[i].run, setup, teardown, (void *)backend};
}
