/* test_upload.c: the upload state machine on the real file backend in a temp dir. Linked with
 * --wrap for me_storage_min_part_size (to exercise pieces as S3 would need them) and
 * me_storage_multipart_complete (to cut a completion short, as a crash would). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "server/upload.h"

static uint64_t min_part;  /* what the wrapped backend claims */
static int fail_completes; /* how many multipart completes fail before they work again */

uint64_t __real_me_storage_min_part_size(const me_storage_t *st);
uint64_t __wrap_me_storage_min_part_size(const me_storage_t *st)
{
    return min_part;
}

int __real_me_storage_multipart_complete(me_storage_t *st, const char *key, const char *upload_id,
                                         const me_storage_part_t *parts, int nparts);
int __wrap_me_storage_multipart_complete(me_storage_t *st, const char *key, const char *upload_id,
                                         const me_storage_part_t *parts, int nparts)
{
    if (fail_completes > 0) {
        fail_completes--;
        return ME_EIO;
    }
    return __real_me_storage_multipart_complete(st, key, upload_id, parts, nparts);
}

typedef struct {
    char dir[64];
    me_config_t cfg;
    me_storage_t *st;
    me_uploads_t *u;
} fixture_t;

static const me_token_claims_t alice = {.sub = "alice", .album = "fam1", .ref = "r-1", .scope = ME_SCOPE_UPLOAD,
                                        .plan = ME_PLAN_PREMIUM, .client = ME_CLIENT_APP};
static const me_token_claims_t bob = {.sub = "bob", .album = "fam1", .scope = ME_SCOPE_UPLOAD,
                                      .plan = ME_PLAN_FREE, .client = ME_CLIENT_APP};
static const int64_t T0 = 1800000000;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[256];
    strcpy(f->dir, "/tmp/me-upload-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    me_config_defaults(&f->cfg);
    f->cfg.storage_root = f->dir; /* not owned by cfg: never freed through it */
    f->cfg.upload_max_size = 1 << 20;
    f->cfg.upload_expire_after = 3600 * 1000;
    assert_non_null(f->st = me_storage_open(&f->cfg, err, sizeof(err)));
    assert_non_null(f->u = me_uploads_new(f->st, &f->cfg));
    min_part = 0;
    fail_completes = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    me_uploads_free(f->u);
    me_storage_close(f->st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static unsigned char *photo(size_t len)
{
    unsigned char *p = malloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(i * 7 + i / 251);
    memcpy(p, "\xff\xd8\xff\xe0", 4);
    return p;
}

static char *read_key(fixture_t *f, const char *key, size_t *len)
{
    char *data;
    if (me_storage_get_all(f->st, key, 64 << 20, &data, len) != 0)
        return NULL;
    return data;
}

static void append_all(fixture_t *f, const char *id, const unsigned char *data, size_t len, size_t chunk,
                       me_upload_t *out)
{
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        assert_int_equal(me_upload_append(f->u, &alice, id, off, ME_UPLOAD_LENGTH_DEFERRED, data + off, n, NULL, T0, out), 0);
        assert_int_equal(out->offset, off + n);
    }
}

static void assert_original(fixture_t *f, const me_upload_t *up, const unsigned char *data, size_t len)
{
    char key[256];
    size_t got;
    snprintf(key, sizeof(key), "originals/fam1/%s", up->media_id);
    char *stored = read_key(f, key, &got);
    assert_non_null(stored);
    assert_int_equal(got, len);
    assert_memory_equal(stored, data, len);
    free(stored);

    unsigned char digest[32];
    char hex[65];
    EVP_Digest(data, len, digest, NULL, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", digest[i]);
    snprintf(key, sizeof(key), "media/%s.json", up->media_id);
    char *text = read_key(f, key, &got);
    assert_non_null(text);
    json_t *m = json_loads(text, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(m, "status")), "uploaded");
    assert_string_equal(json_string_value(json_object_get(m, "sha256")), hex);
    assert_string_equal(json_string_value(json_object_get(m, "owner")), "alice");
    assert_string_equal(json_string_value(json_object_get(m, "album")), "fam1");
    assert_string_equal(json_string_value(json_object_get(m, "ref")), "r-1");
    assert_string_equal(json_string_value(json_object_get(m, "plan")), "premium");
    assert_string_equal(json_string_value(json_object_get(m, "content_type")), "image/jpeg");
    assert_int_equal(json_integer_value(json_object_get(m, "size")), len);
    json_decref(m);
    free(text);
    snprintf(key, sizeof(key), "jobs/%s.json", up->media_id);
    me_storage_stat_t st;
    assert_int_equal(me_storage_head(f->st, key, &st), 0);
}

static int count_cb(const char *key, const me_storage_stat_t *st, void *arg)
{
    ++*(int *)arg;
    return 0;
}

static int count(fixture_t *f, const char *prefix)
{
    int n = 0;
    assert_int_equal(me_storage_list(f->st, prefix, count_cb, &n), 0);
    return n;
}

static void test_chunks_become_the_original(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    unsigned char *data = photo(100000);
    assert_int_equal(me_upload_create(f->u, &alice, 100000, "filename a2lkLmpwZw==", T0, &up), 0);
    assert_true(me_upload_id_valid(up.id, strlen(up.id)));
    assert_int_equal(up.offset, 0);
    assert_int_equal(up.expires, T0 + 3600);
    append_all(f, up.id, data, 100000, 30000, &out);
    assert_true(out.completed);
    assert_string_equal(out.content_type, "image/jpeg");
    assert_original(f, &out, data, 100000);
    assert_int_equal(me_upload_head(f->u, &alice, up.id, T0, &out), 0);
    assert_true(out.completed);
    assert_string_equal(out.metadata, "filename a2lkLmpwZw==");
    free(data);
}

static void test_small_appends_wait_as_pieces_until_a_part_is_due(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    char prefix[64];
    unsigned char *data = photo(10000);
    min_part = 4096; /* as S3's 5 MiB, scaled down */
    assert_int_equal(me_upload_create(f->u, &alice, 10000, "", T0, &up), 0);
    snprintf(prefix, sizeof(prefix), "uploads/%s/", up.id);
    append_all(f, up.id, data, 3000, 1000, &out);
    assert_int_equal(count(f, prefix), 3); /* three pieces, no part yet */
    append_all(f, up.id, data, 0, 1000, &out); /* nothing */
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 3000, ME_UPLOAD_LENGTH_DEFERRED, data + 3000, 1500, NULL,
                                      T0, &out), 0);
    assert_int_equal(count(f, prefix), 0); /* merged into part 1 */
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 4500, ME_UPLOAD_LENGTH_DEFERRED, data + 4500, 5500, NULL,
                                      T0, &out), 0);
    assert_true(out.completed);
    assert_original(f, &out, data, 10000);
    free(data);
}

static void test_refusals_change_nothing(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    me_checksum_t ck;
    const char *bad = "md5 XrY7u+Ae7tCTyyK7j1rNww=="; /* md5 of "hello world" */
    unsigned char *data = photo(2000);
    assert_int_equal(me_upload_create(f->u, &alice, 2000, "", T0, &up), 0);
    assert_int_equal(me_checksum_parse(bad, strlen(bad), &ck), 0);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 1000, &ck, T0, &out),
                     ME_ECHECKSUM);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 5, ME_UPLOAD_LENGTH_DEFERRED, data, 10, NULL, T0, &out),
                     ME_EOFFSET);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 2001, NULL, T0, &out),
                     ME_EUPLOAD_SIZE);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 0, 3000, data, 10, NULL, T0, &out), ME_ECONFLICT);
    assert_int_equal(me_upload_append(f->u, &bob, up.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 10, NULL, T0, &out),
                     ME_ENOTFOUND);
    assert_int_equal(me_upload_head(f->u, &bob, up.id, T0, &out), ME_ENOTFOUND);
    assert_int_equal(me_upload_head(f->u, &alice, up.id, T0, &out), 0);
    assert_int_equal(out.offset, 0);
    free(data);
}

static void test_limits_at_creation(void **state)
{
    fixture_t *f = *state;
    me_upload_t up;
    me_token_claims_t capped = alice;
    capped.max_bytes = 100;
    assert_int_equal(me_upload_create(f->u, &alice, (1 << 20) + 1, "", T0, &up), ME_EUPLOAD_SIZE);
    assert_int_equal(me_upload_create(f->u, &capped, 101, "", T0, &up), ME_EUPLOAD_SIZE);
    assert_int_equal(me_upload_create(f->u, &alice, 0, "", T0, &up), ME_EMEDIA);
    assert_int_equal(me_upload_create(f->u, &capped, ME_UPLOAD_LENGTH_DEFERRED, "", T0, &up), 0);
    assert_int_equal(up.max_size, 100);
}

static void test_deferred_length(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    unsigned char *data = photo(3000);
    assert_int_equal(me_upload_create(f->u, &alice, ME_UPLOAD_LENGTH_DEFERRED, "", T0, &up), 0);
    append_all(f, up.id, data, 2000, 1000, &out);
    assert_false(out.completed);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 2000, 3000, data + 2000, 1000, NULL, T0, &out), 0);
    assert_true(out.completed);
    assert_original(f, &out, data, 3000);

    /* the length may also come with an empty PATCH after the last bytes */
    me_upload_t up2;
    assert_int_equal(me_upload_create(f->u, &alice, ME_UPLOAD_LENGTH_DEFERRED, "", T0, &up2), 0);
    append_all(f, up2.id, data, 3000, 1000, &out);
    assert_false(out.completed);
    assert_int_equal(me_upload_append(f->u, &alice, up2.id, 3000, 3000, "", 0, NULL, T0, &out), 0);
    assert_true(out.completed);
    assert_original(f, &out, data, 3000);
    free(data);
}

static void test_completion_cut_short_is_finished_by_head(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    unsigned char *data = photo(5000);
    assert_int_equal(me_upload_create(f->u, &alice, 5000, "", T0, &up), 0);
    fail_completes = 1;
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 5000, NULL, T0, &out),
                     ME_EIO);
    assert_int_equal(me_upload_head(f->u, &alice, up.id, T0, &out), 0);
    assert_true(out.completed);
    assert_int_equal(out.offset, 5000);
    assert_original(f, &out, data, 5000);
    free(data);
}

static void test_not_media_is_removed(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    assert_int_equal(me_upload_create(f->u, &alice, 12, "", T0, &up), 0);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 0, ME_UPLOAD_LENGTH_DEFERRED, "%PDF-1.4 abc", 12, NULL, T0,
                                      &out), ME_EMEDIA);
    assert_int_equal(me_upload_head(f->u, &alice, up.id, T0, &out), ME_ENOTFOUND);
    assert_int_equal(count(f, ""), 0);
}

static void test_delete_and_sweep(void **state)
{
    fixture_t *f = *state;
    me_upload_t a, b, done, out;
    unsigned char *data = photo(100);
    int removed;
    min_part = 4096;
    assert_int_equal(me_upload_create(f->u, &alice, 1000, "", T0, &a), 0);
    assert_int_equal(me_upload_append(f->u, &alice, a.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 100, NULL, T0, &out), 0);
    assert_int_equal(me_upload_delete(f->u, &bob, a.id), ME_ENOTFOUND);
    assert_int_equal(me_upload_delete(f->u, &alice, a.id), 0);
    assert_int_equal(me_upload_head(f->u, &alice, a.id, T0, &out), ME_ENOTFOUND);
    assert_int_equal(count(f, ""), 0);

    assert_int_equal(me_upload_create(f->u, &alice, 1000, "", T0, &b), 0);
    assert_int_equal(me_upload_append(f->u, &alice, b.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 100, NULL, T0, &out), 0);
    assert_int_equal(me_upload_create(f->u, &alice, 100, "", T0, &done), 0);
    assert_int_equal(me_upload_append(f->u, &alice, done.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 100, NULL, T0, &out), 0);
    assert_int_equal(me_upload_sweep(f->u, T0 + 10, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(me_upload_head(f->u, &alice, b.id, T0 + 3600, &out), ME_ENOTFOUND); /* expired */
    assert_int_equal(me_upload_sweep(f->u, T0 + 3600, &removed), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(count(f, "uploads/"), 0);
    assert_int_equal(count(f, "originals/"), 1); /* the finished one's original stays */
    free(data);
}

static void test_sniff_table(void **state)
{
    static const struct {
        const char *head;
        size_t len;
        const char *type;
    } cases[] = {
        {"\xff\xd8\xff\xe1", 4, "image/jpeg"},
        {"\x89PNG\r\n\x1a\n", 8, "image/png"},
        {"GIF89a", 6, "image/gif"},
        {"RIFF\0\0\0\0WEBPVP8 ", 16, "image/webp"},
        {"\0\0\0\x18" "ftypheic\0\0\0\0", 16, "image/heic"},
        {"\0\0\0\x18" "ftypmif1\0\0\0\0", 16, "image/heif"},
        {"\0\0\0\x18" "ftypisom\0\0\0\0", 16, "video/mp4"},
        {"\0\0\0\x14" "ftypqt  \0\0\0\0", 16, "video/quicktime"},
        {"\0\0\0\x08" "wide", 8, "video/quicktime"},
        {"\0\0\0\x18" "ftypavif\0\0\0\0", 16, NULL},
        {"%PDF-1.4", 8, NULL},
        {"\xff\xd8", 2, NULL},
        {"", 0, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = me_upload_sniff((const unsigned char *)cases[i].head, cases[i].len);
        print_message("case %zu\n", i);
        if (cases[i].type == NULL)
            assert_null(t);
        else
            assert_string_equal(t, cases[i].type);
    }
}

static void test_metadata_and_ids(void **state)
{
    static const struct {
        const char *m;
        int ok;
    } cases[] = {
        {"", 1}, {"filename a2lkLmpwZw==", 1}, {"filename a2lkLmpwZw==,is_confidential", 1},
        {"a YQ==,b Yg==", 1}, {"filename", 1}, {",", 0}, {"a YQ==,", 0}, {"a  YQ==", 0},
        {"a YQ=", 0}, {"a Y!==", 0}, {"k\x01 YQ==", 0}, {" YQ==", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("'%s'\n", cases[i].m);
        assert_int_equal(me_upload_metadata_valid(cases[i].m, strlen(cases[i].m)), cases[i].ok);
    }
    assert_true(me_upload_id_valid("AAAAAAAAAAAAAAAAAAAAAA", 22));
    assert_true(me_upload_id_valid("a-_9zZ0AAAAAAAAAAAAAAA", 22));
    assert_false(me_upload_id_valid("AAAAAAAAAAAAAAAAAAAAA", 21));
    assert_false(me_upload_id_valid("AAAAAAAAAAAAAAAAAAAA/A", 22));
    assert_false(me_upload_id_valid("AAAAAAAAAAAAAAAAAAAA.A", 22));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunks_become_the_original, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_appends_wait_as_pieces_until_a_part_is_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_at_creation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_completion_cut_short_is_finished_by_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_media_is_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_and_sweep, setup, teardown),
        cmocka_unit_test(test_sniff_table),
        cmocka_unit_test(test_metadata_and_ids),
    };
    return cmocka_run_group_tests_name("upload", tests, NULL, NULL);
}
