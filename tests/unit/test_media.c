/* test_media.c: unit tests of server/media/sniff.c, server/media/manifest.c,
 * server/media/deletion.c and server/storage/layout.c: what a file is, the manifest's states,
 * deleting media and albums, and the storage keys. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "server/media/deletion.h"
#include "server/media/manifest.h"
#include "server/media/sniff.h"
#include "server/storage/layout.h"
#include "server/storage/storage_config.h"

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
        const char *t = me_sniff((const unsigned char *)cases[i].head, cases[i].len);
        print_message("case %zu\n", i);
        if (cases[i].type == NULL)
            assert_null(t);
        else
            assert_string_equal(t, cases[i].type);
    }
}

static void test_sniff_kind(void **state)
{
    (void)state;
    assert_string_equal(me_sniff_kind("image/heic"), "photo");
    assert_string_equal(me_sniff_kind("video/quicktime"), "video");
    assert_null(me_sniff_kind("application/pdf"));
    assert_null(me_sniff_kind(NULL));
}

/* Every key of the layout, and refusals of ids that would leave it. */
static void test_layout_keys(void **state)
{
    char key[ME_STORAGE_KEY_MAX + 1], small[16];
    (void)state;
    assert_int_equal(me_layout_upload_info(key, sizeof(key), "u1"), 0);
    assert_string_equal(key, "uploads/u1.info");
    assert_int_equal(me_layout_upload_piece(key, sizeof(key), "u1", 5242880), 0);
    assert_string_equal(key, "uploads/u1/piece-00000000000005242880");
    assert_int_equal(me_layout_upload_data(key, sizeof(key), "u1"), 0);
    assert_string_equal(key, "uploads/u1/data");
    assert_int_equal(me_layout_upload_objects(key, sizeof(key), "u1"), 0);
    assert_string_equal(key, "uploads/u1/");
    assert_int_equal(me_layout_upload_objects(key, sizeof(key), "u1/.."), ME_EINVAL);
    assert_int_equal(me_layout_original(key, sizeof(key), "alb", "m1"), 0);
    assert_string_equal(key, "originals/alb/m1");
    assert_int_equal(me_layout_manifest(key, sizeof(key), "m1"), 0);
    assert_string_equal(key, "media/m1.json");
    assert_int_equal(me_layout_job(key, sizeof(key), "m1"), 0);
    assert_string_equal(key, "jobs/m1.json");
    assert_int_equal(me_layout_variant(key, sizeof(key), "alb", "m1", "thumb", "webp"), 0);
    assert_string_equal(key, "variants/alb/m1/thumb.webp");
    assert_int_equal(me_layout_webhook(key, sizeof(key), "e1"), 0);
    assert_string_equal(key, "webhooks/e1.json");
    assert_int_equal(me_layout_tombstone(key, sizeof(key), "m1"), 0);
    assert_string_equal(key, "tombstones/m1.json");
    assert_int_equal(me_layout_media_variants(key, sizeof(key), "alb", "m1"), 0);
    assert_string_equal(key, "variants/alb/m1/");
    assert_int_equal(me_layout_album_originals(key, sizeof(key), "alb"), 0);
    assert_string_equal(key, "originals/alb/");
    assert_int_equal(me_layout_album_variants(key, sizeof(key), "alb"), 0);
    assert_string_equal(key, "variants/alb/");
    assert_int_equal(me_layout_media_variants(key, sizeof(key), "alb", "../m1"), ME_EINVAL);
    assert_int_equal(me_layout_album_variants(key, sizeof(key), ".tmp"), ME_EINVAL);
    assert_int_equal(me_layout_album_originals(key, sizeof(key), ""), ME_EINVAL);

    /* no id can move a key to another place, and a key that does not fit is refused */
    assert_int_equal(me_layout_original(key, sizeof(key), "alb/../x", "m1"), ME_EINVAL);
    assert_int_equal(me_layout_variant(key, sizeof(key), "alb", "m1", "../thumb", "webp"), ME_EINVAL);
    assert_int_equal(me_layout_variant(key, sizeof(key), "alb", "m1", "thumb", "x/y"), ME_EINVAL);
    assert_int_equal(me_layout_manifest(key, sizeof(key), ".hidden"), ME_EINVAL); /* backends' own names */
    assert_int_equal(me_layout_original(key, sizeof(key), ".tmp", "m1"), ME_EINVAL);
    assert_int_equal(me_layout_manifest(key, sizeof(key), ""), ME_EINVAL);
    assert_int_equal(me_layout_job(small, sizeof(small), "a-long-media-id"), ME_EINVAL);
    assert_string_equal(small, "");
}

static void test_layout_doc_id(void **state)
{
    char id[8];
    (void)state;
    assert_int_equal(me_layout_doc_id("jobs/abc.json", ME_LAYOUT_JOBS, ".json", id, sizeof(id)), 1);
    assert_string_equal(id, "abc");
    assert_int_equal(me_layout_doc_id("media/abc.json", ME_LAYOUT_JOBS, ".json", id, sizeof(id)), 0);
    assert_int_equal(me_layout_doc_id("jobs/abc.txt", ME_LAYOUT_JOBS, ".json", id, sizeof(id)), 0);
    assert_int_equal(me_layout_doc_id("jobs/.json", ME_LAYOUT_JOBS, ".json", id, sizeof(id)), 0);
    assert_int_equal(me_layout_doc_id("jobs/a/b.json", ME_LAYOUT_JOBS, ".json", id, sizeof(id)), 0);
    assert_int_equal(me_layout_doc_id("jobs/abcdefgh.json", ME_LAYOUT_JOBS, ".json", id, sizeof(id)), 0); /* too long */
    assert_int_equal(me_layout_doc_id("uploads/u1.info", ME_LAYOUT_UPLOADS, ".info", id, sizeof(id)), 1);
    assert_string_equal(id, "u1");
    assert_int_equal(me_layout_doc_id("uploads/u1/piece-1", ME_LAYOUT_UPLOADS, ".info", id, sizeof(id)), 0);
}

static json_t *new_manifest(const char *type)
{
    me_manifest_origin_t o = {.media_id = "m1", .album = "alb", .owner = "u", .ref = "r", .plan = "free",
                              .client = "app", .original_key = "originals/alb/m1", .bytes = 1234,
                              .sha256 = "00", .content_type = type, .created_at = 1000};
    return me_manifest_new(&o);
}

/* uploaded -> processing -> (back to uploaded) -> ready; failed keeps the error. */
static void test_manifest_states(void **state)
{
    (void)state;
    json_t *m = new_manifest("video/mp4");
    assert_non_null(m);
    assert_string_equal(me_manifest_kind(m), "video");
    assert_string_equal(me_manifest_status(m), "uploaded");
    assert_string_equal(me_manifest_id(m), "m1");
    assert_string_equal(me_manifest_album(m), "alb");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(m, "original"), "bytes")), 1234);
    assert_int_equal(me_manifest_since(m), 1000);
    assert_false(me_manifest_is_final(m));

    assert_int_equal(me_manifest_set_processing(m, 2000), 0);
    assert_string_equal(me_manifest_status(m), "processing");
    assert_int_equal(me_manifest_since(m), 2000);
    json_t *moving = json_deep_copy(m); /* a video's progress: a sign of life, capped below 1 */
    assert_int_equal(me_manifest_set_progress(moving, 1.5, 2500), 0);
    assert_true(json_real_value(json_object_get(moving, "progress")) == 0.999);
    assert_int_equal(me_manifest_set_progress(moving, 0.42371, 2600), 0);
    assert_true(json_real_value(json_object_get(moving, "progress")) == 0.423);
    assert_int_equal(me_manifest_since(moving), 2600);
    json_decref(moving);
    assert_int_equal(me_manifest_set_waiting(m), 0);
    assert_string_equal(me_manifest_status(m), "uploaded");
    assert_null(json_object_get(m, "processing_at"));
    assert_int_equal(me_manifest_since(m), 1000);

    assert_int_equal(me_manifest_set_failed(m, "corrupt", "damaged", 3000), 0);
    assert_true(me_manifest_is_final(m));
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "error"), "code")), "corrupt");

    json_t *result = json_pack("{s:i,s:{}}", "width", 640, "variants");
    assert_int_equal(me_manifest_add_variant(json_object_get(result, "variants"), "alb", "m1", "thumb", "jpg", 320,
                                             240, 999, "image/jpeg"), 0);
    assert_int_equal(me_manifest_add_variant(json_object_get(result, "variants"), "alb", "m1", "a/b", "jpg", 1, 1,
                                             1, "image/jpeg"), ME_EINVAL);
    assert_int_equal(me_manifest_set_ready(m, result, 4000), 0);
    assert_string_equal(me_manifest_status(m), "ready");
    assert_null(json_object_get(m, "error")); /* a retry that worked leaves no error behind */
    assert_int_equal(json_integer_value(json_object_get(m, "processed_at")), 4000);
    json_t *thumb = json_object_get(json_object_get(m, "variants"), "thumb.jpg");
    assert_string_equal(json_string_value(json_object_get(thumb, "key")), "variants/alb/m1/thumb.jpg");
    assert_int_equal(json_integer_value(json_object_get(thumb, "height")), 240);
    json_decref(result);
    json_decref(m);

    assert_null(new_manifest("application/pdf"));
}

/* A file backend in the temp directory dir (a mkdtemp template, filled in). */
static me_storage_t *open_store(char *dir)
{
    char err[256];
    assert_non_null(mkdtemp(dir));
    me_config_t cfg;
    assert_int_equal(me_config_defaults(&cfg), 0);
    me_storage_settings_t *storage = me_config_section_mut(&cfg, &me_storage_config_section);
    storage->root = dir; /* not owned by cfg: never freed through it */
    me_storage_t *st = me_storage_open(&cfg, err, sizeof(err));
    me_config_free(&cfg); /* the backend keeps the directory open, not the settings */
    assert_non_null(st);
    return st;
}

/* Stored at media/<id>.json on a real (file) backend, and read back the same. */
static void test_manifest_store_load(void **state)
{
    char dir[] = "/tmp/me-test-media-XXXXXX";
    (void)state;
    me_storage_t *st = open_store(dir);
    json_t *m = new_manifest("image/jpeg"), *back = NULL;
    assert_int_equal(me_manifest_load(st, "m1", &back), ME_ENOTFOUND);
    assert_int_equal(me_manifest_store(st, m), 0);
    me_storage_stat_t stat;
    assert_int_equal(me_storage_head(st, "media/m1.json", &stat), 0);
    assert_int_equal(me_manifest_load(st, "m1", &back), 0);
    assert_true(json_equal(m, back));
    json_decref(back);
    assert_int_equal(me_storage_put(st, "media/m2.json", "[1]", 3), 0);
    assert_int_equal(me_manifest_load(st, "m2", &back), ME_EINVAL);
    json_object_del(m, "id");
    assert_int_equal(me_manifest_store(st, m), ME_EINVAL);
    json_decref(m);
    me_storage_close(st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static int collect_ids(const char *id, void *arg)
{
    char *out = arg;
    strcat(out, id);
    strcat(out, " ");
    return 0;
}

/* A deletion takes everything of a media but its tombstone, and may be repeated; an album's
 * media are found by their originals and variants. */
static void test_deletion(void **state)
{
    char dir[] = "/tmp/me-test-deletion-XXXXXX", ids[256] = "";
    me_storage_stat_t stat;
    (void)state;
    me_storage_t *st = open_store(dir);
    const char *keys[] = {"originals/a1/m1", "variants/a1/m1/thumb.jpg", "variants/a1/m1/large.webp", "jobs/m1.json",
                          "originals/a1/m2", "variants/a1/m3/thumb.jpg", "originals/a2/m4", "variants/a10/m5/t.jpg"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_int_equal(me_storage_put(st, keys[i], "x", 1), 0);
    json_t *m = json_pack("{s:s,s:s,s:s,s:s}", "id", "m1", "album", "a1", "owner", "u1", "status", "ready");
    assert_int_equal(me_manifest_store(st, m), 0);
    assert_int_equal(me_media_list_album(st, "a1", collect_ids, ids), 0);
    assert_string_equal(ids, "m1 m2 m3 "); /* not a10's */
    assert_int_equal(me_media_deleted(st, "m1"), 0);
    assert_int_equal(me_media_delete(st, NULL, m, 1800000000), 0);
    assert_int_equal(me_media_deleted(st, "m1"), 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(me_storage_head(st, keys[i], &stat), ME_ENOTFOUND);
    assert_int_equal(me_storage_head(st, "media/m1.json", &stat), ME_ENOTFOUND);
    assert_int_equal(me_storage_head(st, "originals/a1/m2", &stat), 0);
    json_t *t = NULL;
    assert_int_equal(me_media_tombstone(st, "m1", &t), 0);
    assert_string_equal(json_string_value(json_object_get(t, "owner")), "u1");
    assert_int_equal(json_integer_value(json_object_get(t, "deleted_at")), 1800000000);
    json_decref(t);
    assert_int_equal(me_media_delete(st, NULL, m, 1800000001), 0); /* again: nothing to remove, still fine */
    assert_int_equal(me_media_purge(st, "a1", "m3"), 0);
    assert_int_equal(me_storage_head(st, "variants/a1/m3/thumb.jpg", &stat), ME_ENOTFOUND);
    ids[0] = '\0';
    assert_int_equal(me_media_list_album(st, "a1", collect_ids, ids), 0);
    assert_string_equal(ids, "m2 ");
    assert_int_equal(me_media_list_album(st, "../a1", collect_ids, ids), ME_EINVAL);
    json_t *no_album = json_pack("{s:s}", "id", "m9");
    assert_int_equal(me_media_delete(st, NULL, no_album, 1), ME_EINVAL);
    json_decref(no_album);
    json_decref(m);
    me_storage_close(st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sniff_table),   cmocka_unit_test(test_sniff_kind),
        cmocka_unit_test(test_layout_keys),   cmocka_unit_test(test_layout_doc_id),
        cmocka_unit_test(test_manifest_states), cmocka_unit_test(test_manifest_store_load),
        cmocka_unit_test(test_deletion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
