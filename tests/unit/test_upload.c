/* test_upload.c: the upload state machine (upload.c, upload_concat.c) on the real file backend
 * in a temp dir, wrapped in storage_faults: to claim S3's part size on a fast backend, and to
 * cut work short at any storage call as a failure or a crash would. */
#include <dirent.h>
#include <pthread.h>
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
#include "server/storage/storage_file.h"
#include "server/upload/upload.h"
#include "tests/unit/storage_faults.h"
#include "server/upload/upload_config.h"
#include "server/http/server_config.h"
#include "server/storage/storage_config.h"

typedef struct {
    char dir[64];
    me_config_t cfg;
    me_storage_t *st;
    storage_faults_t *faults; /* st's backend */
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
    me_storage_settings_t *storage;
    me_upload_settings_t *uploads;
    me_http_settings_t *http;
    char err[256];
    strcpy(f->dir, "/tmp/me-upload-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(me_config_defaults(&f->cfg), 0);
    storage = me_config_section_mut(&f->cfg, &me_storage_config_section);
    storage->root = f->dir; /* not owned by cfg: never freed through it */
    uploads = me_config_section_mut(&f->cfg, &me_upload_config_section);
    uploads->max_size = 1 << 20;
    uploads->expire_after = 3600 * 1000;
    http = me_config_section_mut(&f->cfg, &me_http_config_section);
    http->max_patch_size = 4096; /* finals are built in parts of this size */
    me_storage_backend_t *be = me_storage_file_ops.open(&f->cfg, err, sizeof(err));
    assert_non_null(be);
    assert_non_null(f->st = storage_faults_wrap(&me_storage_file_ops, be, &f->faults));
    assert_non_null(f->u = me_uploads_new(f->st, NULL, &f->cfg));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    me_uploads_free(f->u);
    me_storage_close(f->st);
    me_config_free(&f->cfg);
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
    json_t *orig = json_object_get(m, "original");
    assert_string_equal(json_string_value(json_object_get(orig, "sha256")), hex);
    assert_string_equal(json_string_value(json_object_get(m, "owner")), "alice");
    assert_string_equal(json_string_value(json_object_get(m, "album")), "fam1");
    assert_string_equal(json_string_value(json_object_get(m, "ref")), "r-1");
    assert_string_equal(json_string_value(json_object_get(m, "plan")), "premium");
    assert_string_equal(json_string_value(json_object_get(m, "kind")), "photo");
    assert_string_equal(json_string_value(json_object_get(orig, "content_type")), "image/jpeg");
    assert_int_equal(json_integer_value(json_object_get(orig, "bytes")), len);
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
    storage_faults_set_min_part_size(f->faults, 4096); /* as S3's 5 MiB, scaled down */
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
    storage_faults_fail(f->faults, FAULT_MULTIPART_COMPLETE, 1, ME_EIO);
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
    storage_faults_set_min_part_size(f->faults, 4096);
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

static void test_metadata_and_ids(void **state)
{
    static const struct {
        const char *m;
        int ok;
    } cases[] = {
        {"", 1}, {"filename a2lkLmpwZw==", 1}, {"filename a2lkLmpwZw==,is_confidential", 1},
        {"a YQ==,b Yg==", 1}, {"filename", 1}, {",", 0}, {"a YQ==,", 0}, {"a  YQ==", 0},
        {"a YQ=", 0}, {"a Y!==", 0}, {"k\x01 YQ==", 0}, {" YQ==", 0},
        /* padding only at the end, at most two, after some data */
        {"a YWI=", 1}, {"a ====", 0}, {"a Y===", 0}, {"a YQ==YQ==", 0}, {"a =YQ=", 0}, {"a YQ=a", 0},
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

/* ---- concatenation ---- */

typedef char upload_id_t[ME_UPLOAD_ID_LEN + 1];

/* A complete partial upload of who with data[0..len). */
static void partial(fixture_t *f, const me_token_claims_t *who, const void *data, size_t len, upload_id_t id)
{
    me_upload_t up, out;
    assert_int_equal(me_upload_create_partial(f->u, who, len, "", T0, &up), 0);
    assert_int_equal(up.kind, ME_UPLOAD_PARTIAL);
    assert_int_equal(me_upload_append(f->u, who, up.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, len, NULL, T0, &out), 0);
    assert_true(out.completed);
    strcpy(id, up.id);
}

/* Three partials of alice holding data[0..len) in order. */
static void three_partials(fixture_t *f, const unsigned char *data, size_t len, upload_id_t ids[3])
{
    partial(f, &alice, data, len / 3, ids[0]);
    partial(f, &alice, data + len / 3, len / 3, ids[1]);
    partial(f, &alice, data + 2 * (len / 3), len - 2 * (len / 3), ids[2]);
}

static int has_key(fixture_t *f, const char *fmt, const char *id)
{
    char key[256];
    me_storage_stat_t st;
    snprintf(key, sizeof(key), fmt, id);
    return me_storage_head(f->st, key, &st) == 0;
}

static int visible(const struct dirent *de)
{
    return de->d_name[0] != '.';
}

/* The file backend's multipart uploads in progress (none may leak). */
static int multiparts(fixture_t *f)
{
    char path[128];
    struct dirent **names;
    snprintf(path, sizeof(path), "%s/.multipart", f->dir);
    int n = scandir(path, &names, visible, NULL);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return n;
}

/* Pieces merged into a part whose delete failed are no longer in the state: a DELETE of the
 * upload removes them all the same. */
static void test_delete_takes_pieces_the_state_forgot(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    unsigned char *data = photo(5000);
    storage_faults_set_min_part_size(f->faults, 4096);
    assert_int_equal(me_upload_create(f->u, &alice, 10000, "", T0, &up), 0);
    append_all(f, up.id, data, 3000, 1500, &out); /* two pieces */
    storage_faults_fail(f->faults, FAULT_DELETE, 1, ME_EIO);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 3000, ME_UPLOAD_LENGTH_DEFERRED, data + 3000, 2000, NULL,
                                      T0, &out), 0); /* merged into part 1; a piece stays */
    assert_int_equal(storage_faults_struck(f->faults, NULL, 0), FAULT_DELETE);
    assert_int_equal(count(f, "uploads/"), 2);
    assert_int_equal(me_upload_delete(f->u, &alice, up.id), 0);
    assert_int_equal(count(f, ""), 0);
    assert_int_equal(multiparts(f), 0);
    free(data);
}

static void test_partial_never_becomes_media(void **state)
{
    fixture_t *f = *state;
    me_upload_t out;
    upload_id_t id;
    partial(f, &alice, "%PDF-1.4 not a photo", 20, id); /* no media check: not refused */
    assert_int_equal(me_upload_head(f->u, &alice, id, T0, &out), 0);
    assert_true(out.completed);
    assert_int_equal(out.kind, ME_UPLOAD_PARTIAL);
    assert_string_equal(out.media_id, "");
    assert_int_equal(out.offset, 20);
    assert_int_equal(count(f, "originals/"), 0);
    assert_int_equal(count(f, "media/"), 0);
    assert_int_equal(count(f, "jobs/"), 0);
    assert_true(has_key(f, "uploads/%s/data", id));
}

static void test_final_joins_partials_in_order(void **state)
{
    fixture_t *f = *state;
    me_upload_t fin, out;
    upload_id_t ids[3];
    unsigned char *data = photo(100000);
    storage_faults_set_min_part_size(f->faults, 4096); /* the partials' last bytes wait as pieces */
    three_partials(f, data, 100000, ids);
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 3, "filename YS5qcGc=", T0, &fin), 0);
    assert_true(fin.completed);
    assert_int_equal(fin.kind, ME_UPLOAD_FINAL);
    assert_int_equal(fin.length, 100000);
    assert_int_equal(fin.offset, 100000);
    assert_string_equal(fin.content_type, "image/jpeg");
    assert_original(f, &fin, data, 100000);
    assert_int_equal(me_upload_head(f->u, &alice, fin.id, T0, &out), 0);
    assert_int_equal(out.npartials, 3);
    assert_string_equal(out.metadata, "filename YS5qcGc=");
    for (int i = 0; i < 3; i++) {
        me_upload_t used;
        assert_string_equal(out.partials[i], ids[i]);
        assert_false(has_key(f, "uploads/%s/data", ids[i])); /* their bytes are in the original now */
        assert_int_equal(me_upload_head(f->u, &alice, ids[i], T0, &used), 0); /* their state stays */
        assert_true(used.completed);
    }
    free(data);
}

static void test_concat_refusals_change_nothing(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    upload_id_t ids[ME_UPLOAD_CONCAT_MAX + 1], unfinished, plain, bobs, elsewhere;
    unsigned char *data = photo(3000);
    me_token_claims_t album2 = alice, capped = alice;
    strcpy(album2.album, "fam2");
    capped.max_bytes = 2999;
    three_partials(f, data, 3000, ids);
    assert_int_equal(me_upload_create_partial(f->u, &alice, 100, "", T0, &up), 0);
    strcpy(unfinished, up.id);
    assert_int_equal(me_upload_create(f->u, &alice, 100, "", T0, &up), 0);
    strcpy(plain, up.id);
    partial(f, &bob, data, 100, bobs);            /* another user's: not there for alice */
    partial(f, &album2, data, 100, elsewhere);    /* alice's, but for another album */
    int uploads = count(f, "uploads/"), pending = multiparts(f);

    static const struct {
        const char *which;
        int err;
    } cases[] = {{"bobs", ME_ENOTFOUND}, {"unfinished", ME_EPARTIAL_INCOMPLETE}, {"plain", ME_ECONCAT},
                 {"elsewhere", ME_ECONCAT}, {"twice", ME_ECONCAT}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *c = cases[i].which;
        strcpy(ids[3], !strcmp(c, "bobs") ? bobs : !strcmp(c, "unfinished") ? unfinished
                     : !strcmp(c, "plain") ? plain : !strcmp(c, "elsewhere") ? elsewhere : ids[0]);
        print_message("%s\n", c);
        assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 4, "", T0, &out), cases[i].err);
    }
    for (int i = 3; i <= ME_UPLOAD_CONCAT_MAX; i++)
        strcpy(ids[i], "AAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, ME_UPLOAD_CONCAT_MAX + 1, "", T0, &out),
                     ME_ECONCAT);
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 0, "", T0, &out), ME_ECONCAT);
    assert_int_equal(me_upload_concat(f->u, &capped, (const upload_id_t *)ids, 3, "", T0, &out), ME_EUPLOAD_SIZE);
    assert_int_equal(count(f, "uploads/"), uploads); /* no final recorded, no partial touched */
    assert_int_equal(multiparts(f), pending);
    assert_int_equal(count(f, "originals/"), 0);

    /* none of that used a partial up */
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 3, "", T0, &out), 0);
    assert_original(f, &out, data, 3000);
    free(data);
}

static void test_partial_is_used_once_and_a_retry_gets_the_same_final(void **state)
{
    fixture_t *f = *state;
    me_upload_t fin, again, out;
    upload_id_t ids[3], swapped[2], spare;
    unsigned char *data = photo(3000);
    three_partials(f, data, 3000, ids);
    partial(f, &alice, data, 100, spare);
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 2, "", T0, &fin), 0);

    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 1, "", T0, &out), ME_EPARTIAL_USED);
    strcpy(swapped[0], ids[1]);
    strcpy(swapped[1], ids[0]);
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)swapped, 2, "", T0, &out), ME_EPARTIAL_USED);
    strcpy(swapped[0], ids[2]);
    strcpy(swapped[1], ids[1]); /* one unused, one used */
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)swapped, 2, "", T0, &out), ME_EPARTIAL_USED);
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 2, "", T0, &again), 0);
    assert_string_equal(again.id, fin.id);
    assert_string_equal(again.media_id, fin.media_id);
    assert_int_equal(count(f, "media/"), 1);

    assert_int_equal(me_upload_append(f->u, &alice, fin.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 10, NULL, T0, &out),
                     ME_EFINAL);
    assert_int_equal(me_upload_append(f->u, &alice, fin.id, 2000, ME_UPLOAD_LENGTH_DEFERRED, data, 10, NULL, T0,
                                      &out), ME_EFINAL);
    assert_int_equal(me_upload_delete(f->u, &alice, fin.id), ME_ECONFLICT);
    assert_int_equal(me_upload_delete(f->u, &alice, ids[0]), ME_ECONFLICT); /* used */
    assert_int_equal(me_upload_delete(f->u, &alice, spare), 0);              /* complete, unused */
    assert_false(has_key(f, "uploads/%s/data", spare));
    assert_int_equal(me_upload_head(f->u, &alice, spare, T0, &out), ME_ENOTFOUND);
    free(data);
}

static void test_final_that_is_no_media_takes_its_partials(void **state)
{
    fixture_t *f = *state;
    me_upload_t out;
    upload_id_t ids[2];
    partial(f, &alice, "%PDF-1.4 ", 9, ids[0]);
    partial(f, &alice, "not a photo", 11, ids[1]);
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 2, "", T0, &out), ME_EMEDIA);
    assert_int_equal(count(f, ""), 0);
}

static void test_expired_partials_are_swept(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    upload_id_t done;
    int removed;
    storage_faults_set_min_part_size(f->faults, 4096);
    partial(f, &alice, "abc", 3, done);
    assert_int_equal(me_upload_create_partial(f->u, &alice, 1000, "", T0, &up), 0);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 0, ME_UPLOAD_LENGTH_DEFERRED, "abc", 3, NULL, T0, &out), 0);
    assert_int_equal(me_upload_sweep(f->u, T0 + 3599, &removed), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(me_upload_sweep(f->u, T0 + 3600, &removed), 0);
    assert_int_equal(removed, 2);
    assert_int_equal(count(f, ""), 0);
}

static void test_used_partials_live_as_long_as_their_final(void **state)
{
    fixture_t *f = *state;
    me_upload_t fin, out;
    upload_id_t ids[3];
    unsigned char *data = photo(3000);
    int removed;
    three_partials(f, data, 3000, ids);
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 3, "", T0 + 3000, &fin), 0);
    assert_int_equal(me_upload_sweep(f->u, T0 + 3600, &removed), 0); /* the partials' own expiry */
    assert_int_equal(removed, 0);
    assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 3, "", T0 + 3600, &out), 0);
    assert_string_equal(out.id, fin.id); /* a late retry still finds its final */
    assert_int_equal(me_upload_sweep(f->u, T0 + 6600, &removed), 0);
    assert_int_equal(removed, 4);
    assert_int_equal(count(f, "uploads/"), 0);
    assert_int_equal(count(f, "media/"), 1);
    free(data);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The process storage_faults_die() stopped, or not: what the fault struck (its key into key),
 * then a new process (no locks held). *orphans: the multipart uploads dying left named
 * nowhere: 1 when it struck the first save of an upload's state, which names the multipart
 * upload me_upload_info_init() began just before. upload.c cannot close that window (the
 * backend picks the id); backends expire such uploads (S3: a lifecycle rule; file: not yet). */
static fault_op_t restart(fixture_t *f, char key[ME_STORAGE_KEY_MAX + 1], int *orphans)
{
    fault_op_t op = storage_faults_struck(f->faults, key, ME_STORAGE_KEY_MAX + 1);
    storage_faults_reset(f->faults);
    *orphans = op == FAULT_PUT && ends_with(key, ".info") && !has_key(f, "%s", key);
    me_uploads_free(f->u);
    assert_non_null(f->u = me_uploads_new(f->st, NULL, &f->cfg));
    return op;
}

/* After the expiry nothing of the uploads is left but orphans; then a new fixture. */
static fixture_t *expire_and_start_over(void **state, int orphans)
{
    fixture_t *f = *state;
    int removed;
    assert_int_equal(me_upload_sweep(f->u, T0 + 2 * 3600, &removed), 0);
    assert_int_equal(count(f, "uploads/"), 0);
    assert_int_equal(multiparts(f), orphans);
    teardown(state);
    setup(state);
    return *state;
}

/* The process dies (no storage call gets through) at the kth write of a final's building, for
 * every k; then it starts again and the client sends the same request: one final,
 * byte-identical, partials used once, and after the expiry nothing is left but the media
 * (and the orphan restart() tells of).
 * The kth write may be any: a state document saved inside me_storage_put_json() too. */
static void test_final_survives_a_crash_at_every_step(void **state)
{
    fixture_t *f = *state;
    int k, finished = 0, state_saves = 0, part_copies = 0;
    for (k = 1; !finished; k++) {
        me_upload_t first, out;
        upload_id_t ids[3], single;
        unsigned char *data = photo(30000);
        char key[ME_STORAGE_KEY_MAX + 1];
        int orphans;
        three_partials(f, data, 30000, ids);
        storage_faults_die(f->faults, FAULT_WRITE, k);
        int ret = me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 3, "", T0, &first);
        finished = !storage_faults_dead(f->faults); /* every step was passed */
        fault_op_t op = restart(f, key, &orphans);
        state_saves += op == FAULT_PUT && ends_with(key, ".info");
        part_copies += op == FAULT_PART_COPY;
        print_message("dead at write %d (op %d, %s): %d\n", k, op, key, ret);

        assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)ids, 3, "", T0 + 1, &out), 0);
        if (ret == 0)
            assert_string_equal(out.id, first.id);
        assert_original(f, &out, data, 30000);
        assert_int_equal(count(f, "originals/"), 1);
        assert_int_equal(count(f, "media/"), 1);
        for (int i = 0; i < 3; i++)
            assert_false(has_key(f, "uploads/%s/data", ids[i]));
        strcpy(single, ids[2]); /* never a second final for a partial, however it died */
        assert_int_equal(me_upload_concat(f->u, &alice, (const upload_id_t *)&single, 1, "", T0, &out),
                         ME_EPARTIAL_USED);

        free(data);
        f = expire_and_start_over(state, orphans);
    }
    /* it died at every one of a real building's 16 writes, 6 of them state saves: the final's
     * (joining), each partial's claim (3), the final's once its parts are in (completing) and
     * once it is complete; and 3 parts, each partial copied whole by the backend (a part's
     * size or more: no read through the upload module) */
    assert_true(k > 15);
    assert_int_equal(state_saves, 6);
    assert_int_equal(part_copies, 3);
}

/* The process dies at the kth write of a plain upload sent in appends smaller than a part (so
 * pieces are stored, merged into parts and deleted), for every k; then it starts again and
 * the client resumes from HEAD's offset: the original is byte-identical, and after the expiry
 * nothing of the upload is left (but a multipart upload begun just before dying, as above). */
static void test_plain_survives_a_crash_at_every_step(void **state)
{
    fixture_t *f = *state;
    int k, finished = 0, piece_deletes = 0;
    for (k = 1; !finished; k++) {
        me_upload_t up, out;
        unsigned char *data = photo(10000);
        char key[ME_STORAGE_KEY_MAX + 1];
        int orphans, created;
        storage_faults_set_min_part_size(f->faults, 4096);
        storage_faults_die(f->faults, FAULT_WRITE, k);
        created = me_upload_create(f->u, &alice, 10000, "", T0, &up) == 0;
        for (size_t off = 0; created && off < 10000; off += 1500)
            if (me_upload_append(f->u, &alice, up.id, off, ME_UPLOAD_LENGTH_DEFERRED, data + off,
                                 10000 - off < 1500 ? 10000 - off : 1500, NULL, T0, &out) != 0)
                break;
        finished = !storage_faults_dead(f->faults);
        fault_op_t op = restart(f, key, &orphans);
        piece_deletes += op == FAULT_DELETE && strstr(key, "/piece-") != NULL;
        print_message("dead at write %d (op %d, %s)\n", k, op, key);

        if (!created) /* the client got no upload: it creates one again */
            assert_int_equal(me_upload_create(f->u, &alice, 10000, "", T0, &up), 0);
        assert_int_equal(me_upload_head(f->u, &alice, up.id, T0, &out), 0);
        for (size_t off = out.offset; !out.completed; off += 1500)
            assert_int_equal(me_upload_append(f->u, &alice, up.id, off, ME_UPLOAD_LENGTH_DEFERRED, data + off,
                                              10000 - off < 1500 ? 10000 - off : 1500, NULL, T0, &out), 0);
        assert_original(f, &out, data, 10000);
        free(data);
        f = expire_and_start_over(state, orphans);
    }
    assert_true(k > 20);
    assert_int_equal(piece_deletes, 4); /* after each merge of pieces into a part: 2 and 2 */
}

/* The state document as it was before a PATCH, put back after it: what storage holds when
 * the instance that took the PATCH died after storing its bytes and before saving the state. */
static char *info_before(fixture_t *f, const char *id, size_t *len)
{
    char key[128];
    snprintf(key, sizeof(key), "uploads/%s.info", id);
    return read_key(f, key, len);
}

static void info_put_back(fixture_t *f, const char *id, char *text, size_t len)
{
    char key[128];
    snprintf(key, sizeof(key), "uploads/%s.info", id);
    assert_int_equal(me_storage_put(f->st, key, text, len), 0);
    free(text);
}

static int pieces_of(fixture_t *f, const char *id)
{
    char prefix[128];
    snprintf(prefix, sizeof(prefix), "uploads/%s/piece-", id);
    return count(f, prefix);
}

/* HEAD's offset is what storage holds, not what the state document saved: a piece, then a
 * part merging it, stored by PATCHes whose state was never saved, count; the upload resumed
 * by a new process (no running hash) completes byte-identical, sha256 included, and the
 * piece merged into that part goes. */
static void test_offset_comes_from_storage(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    unsigned char *data = photo(10000);
    char *saved, key[ME_STORAGE_KEY_MAX + 1];
    size_t len;
    int orphans;
    storage_faults_set_min_part_size(f->faults, 4096);
    assert_int_equal(me_upload_create(f->u, &alice, 10000, "", T0, &up), 0);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 5000, NULL, T0, &out),
                     0);

    /* a piece: 1500 bytes, too few for a part */
    saved = info_before(f, up.id, &len);
    assert_int_equal(
        me_upload_append(f->u, &alice, up.id, 5000, ME_UPLOAD_LENGTH_DEFERRED, data + 5000, 1500, NULL, T0, &out), 0);
    info_put_back(f, up.id, saved, len);
    assert_int_equal(me_upload_head(f->u, &alice, up.id, T0, &out), 0);
    assert_int_equal(out.offset, 6500);
    assert_int_equal(
        me_upload_append(f->u, &alice, up.id, 5000, ME_UPLOAD_LENGTH_DEFERRED, data + 5000, 1500, NULL, T0, &out),
        ME_EOFFSET);

    /* a part merging that piece with 3000 more bytes; the piece stays behind */
    saved = info_before(f, up.id, &len);
    assert_int_equal(
        me_upload_append(f->u, &alice, up.id, 6500, ME_UPLOAD_LENGTH_DEFERRED, data + 6500, 3000, NULL, T0, &out), 0);
    assert_int_equal(pieces_of(f, up.id), 0);
    info_put_back(f, up.id, saved, len); /* it names the piece (already deleted) and one part */
    assert_int_equal(me_upload_head(f->u, &alice, up.id, T0, &out), 0);
    assert_int_equal(out.offset, 9500);

    restart(f, key, &orphans); /* the running hash is gone: completion reads the original back */
    assert_int_equal(me_upload_head(f->u, &alice, up.id, T0, &out), 0);
    assert_int_equal(out.offset, 9500);
    assert_int_equal(
        me_upload_append(f->u, &alice, up.id, 9500, ME_UPLOAD_LENGTH_DEFERRED, data + 9500, 500, NULL, T0, &out), 0);
    assert_true(out.completed);
    assert_original(f, &out, data, 10000);
    assert_int_equal(pieces_of(f, up.id), 0);
    free(data);
}

/* A merge whose pieces' deletion was cut short, then the state put back: the piece is not
 * counted twice, and the next PATCH's save takes it away. */
static void test_pieces_merged_count_once(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    unsigned char *data = photo(10000);
    char *saved;
    size_t len;
    storage_faults_set_min_part_size(f->faults, 4096);
    assert_int_equal(me_upload_create(f->u, &alice, 10000, "", T0, &up), 0);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 2000, NULL, T0, &out),
                     0);
    assert_int_equal(pieces_of(f, up.id), 1);
    saved = info_before(f, up.id, &len);
    storage_faults_die(f->faults, FAULT_DELETE, 1); /* the merged piece's deletion */
    assert_int_equal(
        me_upload_append(f->u, &alice, up.id, 2000, ME_UPLOAD_LENGTH_DEFERRED, data + 2000, 4000, NULL, T0, &out), 0);
    storage_faults_reset(f->faults);
    info_put_back(f, up.id, saved, len);
    assert_int_equal(pieces_of(f, up.id), 1);
    assert_int_equal(me_upload_head(f->u, &alice, up.id, T0, &out), 0);
    assert_int_equal(out.offset, 6000);
    assert_int_equal(
        me_upload_append(f->u, &alice, up.id, 6000, ME_UPLOAD_LENGTH_DEFERRED, data + 6000, 1000, NULL, T0, &out), 0);
    assert_int_equal(pieces_of(f, up.id), 1); /* the new one only */
    assert_int_equal(
        me_upload_append(f->u, &alice, up.id, 7000, ME_UPLOAD_LENGTH_DEFERRED, data + 7000, 3000, NULL, T0, &out), 0);
    assert_true(out.completed);
    assert_original(f, &out, data, 10000);
    free(data);
}

/* The PATCH that stored the last bytes died before saving anything: the next HEAD finds every
 * byte stored, and completes the upload as that PATCH would have. */
static void test_head_completes_what_storage_holds(void **state)
{
    fixture_t *f = *state;
    me_upload_t up, out;
    unsigned char *data = photo(10000);
    char key[ME_STORAGE_KEY_MAX + 1];
    int orphans;
    storage_faults_set_min_part_size(f->faults, 4096);
    assert_int_equal(me_upload_create(f->u, &alice, 10000, "", T0, &up), 0);
    assert_int_equal(me_upload_append(f->u, &alice, up.id, 0, ME_UPLOAD_LENGTH_DEFERRED, data, 6000, NULL, T0, &out),
                     0);
    storage_faults_die(f->faults, FAULT_PUT, 1); /* the state save after the last part */
    assert_int_equal(
        me_upload_append(f->u, &alice, up.id, 6000, ME_UPLOAD_LENGTH_DEFERRED, data + 6000, 4000, NULL, T0, &out),
        ME_EIO);
    assert_int_equal(restart(f, key, &orphans), FAULT_PUT);
    assert_false(has_key(f, "media/%s.json", up.media_id));
    assert_int_equal(me_upload_head(f->u, &alice, up.id, T0, &out), 0);
    assert_int_equal(out.offset, 10000);
    assert_true(out.completed);
    assert_original(f, &out, data, 10000);
    free(data);
}

typedef struct {
    fixture_t *f;
    upload_id_t ids[3];
    int n, ret;
    pthread_barrier_t *go;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    me_upload_t out;
    pthread_barrier_wait(r->go);
    r->ret = me_upload_concat(r->f->u, &alice, (const upload_id_t *)r->ids, r->n, "", T0, &out);
    return NULL;
}

/* Finals naming the same partial at once, in other lists: one wins, the others are refused. */
static void test_concurrent_finals_one_wins(void **state)
{
    fixture_t *f = *state;
    upload_id_t ids[3];
    unsigned char *data = photo(600000);
    pthread_barrier_t go;
    pthread_t t[4];
    racer_t r[4];
    three_partials(f, data, 600000, ids);
    /* different lists, all starting with the first partial (the JPEG's first bytes) */
    const int lists[4][3] = {{0, 1, -1}, {0, 2, -1}, {0, -1, -1}, {0, 2, 1}};
    pthread_barrier_init(&go, NULL, 4);
    for (int i = 0; i < 4; i++) {
        r[i] = (racer_t){.f = f, .go = &go};
        for (; r[i].n < 3 && lists[i][r[i].n] >= 0; r[i].n++)
            strcpy(r[i].ids[r[i].n], ids[lists[i][r[i].n]]);
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    int won = 0;
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL); /* all of them before any assertion ends the test */
    for (int i = 0; i < 4; i++) {
        print_message("final %d: %d\n", i, r[i].ret);
        won += r[i].ret == 0;
        assert_true(r[i].ret == 0 || r[i].ret == ME_ELOCKED || r[i].ret == ME_EPARTIAL_USED);
    }
    pthread_barrier_destroy(&go);
    assert_int_equal(won, 1);
    assert_int_equal(count(f, "media/"), 1);
    free(data);
}

static void test_concat_parse_table(void **state)
{
    static const struct {
        const char *list;
        int n; /* -1: refused */
    } cases[] = {
        {"/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", 1},
        {"http://cdn.example:8443/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA https://h/v1/uploads/BBBBBBBBBBBBBBBBBBBBBB", 2},
        {"  /v1/uploads/AAAAAAAAAAAAAAAAAAAAAA/   /v1/uploads/a-_9zZ0AAAAAAAAAAAAAAA ", 2}, /* tusd's leniency */
        {"", -1},
        {"   ", -1},
        {"/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA /v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", -1}, /* twice */
        {"http://h/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA /v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", -1},
        {"/v2/uploads/AAAAAAAAAAAAAAAAAAAAAA", -1},
        {"/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA?x=1", -1},
        {"/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA//", -1},
        {"/v1/uploads/AAAAAAAAAAAAAAAAAAAAA", -1},
        {"/v1/uploads/AAAAAAAAAAAAAAAAAAAA.A", -1},
        {"/v1/uploads/../uploads/AAAAAAAAAAAAAAAAAAAAAA", -1},
        {"v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", -1},
        {"http:/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", -1},
        {"http:///v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", -1},
        {"://h/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", -1},
        {"1http://h/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA", -1},
        {"http://h", -1},
        {"/v1/uploads/AAAAAAAAAAAAAAAAAAAAAA,/v1/uploads/BBBBBBBBBBBBBBBBBBBBBB", -1},
    };
    upload_id_t ids[ME_UPLOAD_CONCAT_MAX];
    char many[(ME_UPLOAD_CONCAT_MAX + 1) * 40] = "";
    int n;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("'%s'\n", cases[i].list);
        int ret = me_upload_concat_parse(cases[i].list, strlen(cases[i].list), "/v1/uploads/", ids, &n);
        assert_int_equal(ret, cases[i].n < 0 ? ME_ECONCAT : 0);
        if (ret == 0)
            assert_int_equal(n, cases[i].n);
    }
    assert_int_equal(me_upload_concat_parse(cases[1].list, strlen(cases[1].list), "/v1/uploads/", ids, &n), 0);
    assert_string_equal(ids[0], "AAAAAAAAAAAAAAAAAAAAAA");
    assert_string_equal(ids[1], "BBBBBBBBBBBBBBBBBBBBBB");
    /* cut at every byte: never a read past the end, never an id that was not whole */
    for (size_t len = 0; len <= strlen(cases[2].list); len++) {
        char *cut = malloc(len + 1);
        memcpy(cut, cases[2].list, len);
        if (me_upload_concat_parse(cut, len, "/v1/uploads/", ids, &n) == 0)
            for (int i = 0; i < n; i++)
                assert_true(me_upload_id_valid(ids[i], strlen(ids[i])));
        free(cut);
    }
    /* at most ME_UPLOAD_CONCAT_MAX */
    for (int i = 0; i < ME_UPLOAD_CONCAT_MAX + 1; i++)
        sprintf(many + strlen(many), "/v1/uploads/AAAAAAAAAAAAAAAAAAAA%02d ", i);
    assert_int_equal(me_upload_concat_parse(many, strlen(many), "/v1/uploads/", ids, &n), ME_ECONCAT);
    assert_int_equal(me_upload_concat_parse(many, strlen(many) - 36, "/v1/uploads/", ids, &n), 0);
    assert_int_equal(n, ME_UPLOAD_CONCAT_MAX);
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
        cmocka_unit_test_setup_teardown(test_delete_takes_pieces_the_state_forgot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_never_becomes_media, setup, teardown),
        cmocka_unit_test_setup_teardown(test_final_joins_partials_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concat_refusals_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_is_used_once_and_a_retry_gets_the_same_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_final_that_is_no_media_takes_its_partials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_partials_are_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_used_partials_live_as_long_as_their_final, setup, teardown),
        cmocka_unit_test_setup_teardown(test_final_survives_a_crash_at_every_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_finals_one_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_survives_a_crash_at_every_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_comes_from_storage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pieces_merged_count_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_head_completes_what_storage_holds, setup, teardown),
        cmocka_unit_test(test_concat_parse_table),
        cmocka_unit_test(test_metadata_and_ids),
    };
    return cmocka_run_group_tests_name("upload", tests, NULL, NULL);
}
