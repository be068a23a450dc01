/* test_montage.c: a montage request parsed and refused, its id (the same for the same request
 * in any order, another for anything else), the frame-fit and lively-second rules, and the
 * request made durable on the real file backend: refusals naming the media, capture order,
 * the montage and its job stored once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "server/media/manifest.h"
#include "server/media/montage/montage.h"
#include "server/storage/storage_config.h"

#define ID(x) "AAAAAAAAAAAAAAAAAAAA" x

static int parse(const char *body, me_montage_request_t *req)
{
    char message[256];
    return me_montage_parse(body, strlen(body), 400, req, message, sizeof(message));
}

static void test_parse_and_refusals(void **state)
{
    static me_montage_request_t req;
    (void)state;
    assert_int_equal(parse("{\"period\":\"2026-11\",\"media\":[{\"id\":\"" ID("b2") "\",\"start\":1.5},{\"id\":\"" ID(
                               "a1") "\"}],\"caption\":\"date\"}",
                           &req),
                     0);
    assert_string_equal(req.period, "2026-11");
    assert_int_equal(req.n, 2);
    assert_int_equal(req.caption_date, 1);
    assert_string_equal(req.items[0].id, ID("a1")); /* sorted: the canonical order */
    assert_true(req.items[0].start < 0);
    assert_true(req.items[1].start == 1.5);
    static const char *const bad[] = {
        "",
        "[]",
        "{\"media\":[{\"id\":\"" ID("a1") "\"}]}",                                            /* no period */
        "{\"period\":\"a/b\",\"media\":[{\"id\":\"" ID("a1") "\"}]}",                         /* a path */
        "{\"period\":\"p\",\"media\":[]}",                                                    /* none */
        "{\"period\":\"p\",\"media\":[{\"id\":\"../x\"}]}",                                   /* not an id */
        "{\"period\":\"p\",\"media\":[{\"id\":\"" ID("a1") "\"},{\"id\":\"" ID("a1") "\"}]}", /* twice */
        "{\"period\":\"p\",\"media\":[{\"id\":\"" ID("a1") "\",\"start\":-1}]}",
        "{\"period\":\"p\",\"media\":[{\"id\":\"" ID("a1") "\",\"start\":\"3\"}]}",
        "{\"period\":\"p\",\"media\":[{\"id\":\"" ID("a1") "\"}],\"caption\":\"time\"}",
        "{\"period\":\"p\",\"period\":\"q\",\"media\":[{\"id\":\"" ID("a1") "\"}]}", /* duplicate keys */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &req), ME_EINVAL);
    /* the configured maximum */
    char message[128];
    const char *two = "{\"period\":\"p\",\"media\":[{\"id\":\"" ID("a1") "\"},{\"id\":\"" ID("a2") "\"}]}";
    assert_int_equal(me_montage_parse(two, strlen(two), 1, &req, message, sizeof(message)), ME_EINVAL);
    assert_non_null(strstr(message, "1 to 1"));
}

static void test_ids(void **state)
{
    static me_montage_request_t a, b;
    char id1[32], id2[32], sha1[65], sha2[65];
    (void)state;
    assert_int_equal(parse("{\"period\":\"2026\",\"media\":[{\"id\":\"" ID("a1") "\"},{\"id\":\"" ID("b2") "\"}]}", &a),
                     0);
    assert_int_equal(parse("{\"period\":\"2026\",\"media\":[{\"id\":\"" ID("b2") "\"},{\"id\":\"" ID("a1") "\"}]}", &b),
                     0);
    me_montage_id("al", &a, NULL, id1, sha1);
    me_montage_id("al", &b, NULL, id2, sha2);
    assert_int_equal(strlen(id1), ME_MONTAGE_ID_LEN);
    assert_string_equal(id1, id2); /* the same media in another order */
    assert_string_equal(sha1, sha2);
    me_montage_id("other", &a, NULL, id2, sha2);
    assert_string_not_equal(id1, id2);
    b.items[0].start = 2;
    me_montage_id("al", &b, NULL, id2, sha2);
    assert_string_not_equal(id1, id2);
    b.items[0].start = -1, b.caption_date = 1;
    me_montage_id("al", &b, NULL, id2, sha2);
    assert_string_not_equal(id1, id2);
    /* a key: the id from the key, the request's digest still the request's */
    me_montage_id("al", &a, "k", id2, sha2);
    assert_string_not_equal(id1, id2);
    assert_string_equal(sha1, sha2);
    char id3[32];
    me_montage_id("al", &b, "k", id3, sha2);
    assert_string_equal(id2, id3);
    assert_true(me_montage_key_valid("k-1", 3));
    assert_false(me_montage_key_valid("", 0));
    assert_false(me_montage_key_valid("a\nb", 3));
}

static void test_frame_and_fit_rules(void **state)
{
    me_montage_clip_t clips[3] = {
        {.width = 720, .height = 1280}, {.width = 1280, .height = 720}, {.width = 1, .height = 2}};
    int w, h, cx, cy, cw, ch, dx, dy, dw, dh;
    (void)state;
    me_montage_frame_size(clips, 3, &w, &h);
    assert_int_equal(w * 10000 + h, 720 * 10000 + 1280); /* most are portrait */
    me_montage_frame_size(clips, 2, &w, &h);
    assert_int_equal(w * 10000 + h, 1280 * 10000 + 720); /* a tie: landscape */
    /* 16:9 in 16:9: all of it */
    me_montage_fit(1280, 720, 1280, 720, &cx, &cy, &cw, &ch, &dx, &dy, &dw, &dh);
    assert_int_equal(cx + cy + dx + dy, 0);
    assert_int_equal(cw * 10000 + ch, 1280 * 10000 + 720);
    /* 4:3 covers 16:9: a quarter of its height cropped, centred */
    me_montage_fit(640, 480, 1280, 720, &cx, &cy, &cw, &ch, &dx, &dy, &dw, &dh);
    assert_int_equal(cw, 640);
    assert_int_equal(ch, 360);
    assert_int_equal(cy, 60);
    assert_int_equal(dw * 10000 + dh, 1280 * 10000 + 720);
    /* portrait in landscape: whole, pillarboxed in the middle */
    me_montage_fit(720, 1280, 1280, 720, &cx, &cy, &cw, &ch, &dx, &dy, &dw, &dh);
    assert_int_equal(cw * 10000 + ch, 720 * 10000 + 1280);
    assert_int_equal(dh, 720);
    assert_int_equal(dw, 404);
    assert_int_equal(dx, 438);
    /* a square: fitted, not cropped by 44 % */
    me_montage_fit(1000, 1000, 1280, 720, &cx, &cy, &cw, &ch, &dx, &dy, &dw, &dh);
    assert_int_equal(dw * 10000 + dh, 720 * 10000 + 720);
    assert_int_equal(cw, 1000);
}

static void test_lively_pick(void **state)
{
    double bins[36] = {0};
    (void)state;
    bins[0] = bins[1] = 100; /* the shake of pressing record: skipped */
    bins[13] = bins[14] = bins[15] = bins[16] = 5;
    assert_true(me_montage_lively_pick(bins, 36, 20) == 3.25);
    assert_true(me_montage_lively_pick(bins, 36, 4) == 3.0); /* windows end where the video does */
    bins[13] = bins[14] = bins[15] = bins[16] = 0;
    bins[2] = 1;
    assert_true(me_montage_lively_pick(bins, 36, 20) == 0.5);
    assert_true(me_montage_lively_pick(bins, 36, 1.2) == 0); /* too short to choose */
    memset(bins, 0, sizeof(bins));
    assert_true(me_montage_lively_pick(bins, 36, 20) < 0); /* nothing to go by */
}

/* ---- made durable, on the file backend ---- */

typedef struct {
    char dir[64];
    me_config_t cfg;
    me_storage_t *st;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    char err[256];
    strcpy(f->dir, "/tmp/me-montage-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(me_config_defaults(&f->cfg), 0);
    ((me_storage_settings_t *)me_config_section_mut(&f->cfg, &me_storage_config_section))->root = f->dir;
    assert_non_null(f->st = me_storage_open(&f->cfg, err, sizeof(err)));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    me_storage_close(f->st);
    me_config_free(&f->cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* A ready photo of album taken at taken_at (NULL: none) with one JPEG variant. */
static void photo(fixture_t *f, const char *id, const char *album, const char *status, const char *taken_at)
{
    json_t *m = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s?,s:{s:{s:s,s:i,s:i,s:i,s:s}}}", "id", id, "album", album, "kind",
                          "photo", "status", status, "created_at", (json_int_t)1795600000, "taken_at", taken_at,
                          "variants", "medium.jpg", "key", "variants/x/y/medium.jpg", "width", 1280, "height", 960,
                          "bytes", 1000, "content_type", "image/jpeg");
    assert_int_equal(me_manifest_store(f->st, m), 0);
    json_decref(m);
}

static me_token_claims_t who(void)
{
    me_token_claims_t w = {.scope = ME_SCOPE_MONTAGE, .plan = ME_PLAN_PREMIUM};
    strcpy(w.sub, "backend");
    strcpy(w.album, "a1");
    return w;
}

static int create(fixture_t *f, const char *body, const char *key, json_t **problems, int *created, char *id)
{
    static me_montage_request_t req;
    me_token_claims_t w = who();
    char sha[65], status[16];
    const char *message;
    assert_int_equal(parse(body, &req), 0);
    me_montage_id(w.album, &req, key, id, sha);
    return me_montage_create(f->st, &w, &req, id, sha, 1795600100, problems, created, &message, status, sizeof(status));
}

static void test_refused_media_are_named_and_nothing_is_made(void **state)
{
    fixture_t *f = *state;
    json_t *problems = NULL, *m = NULL;
    char id[32];
    int created;
    photo(f, ID("a1"), "a1", "ready", NULL);
    photo(f, ID("b2"), "a2", "ready", NULL); /* another album's */
    photo(f, ID("c3"), "a1", "processing", NULL);
    photo(f, ID("d4"), "a1", "failed", NULL);
    assert_int_equal(
        create(f,
               "{\"period\":\"p\",\"media\":[{\"id\":\"" ID("a1") "\"},{\"id\":\"" ID("b2") "\"},{\"id\":\"" ID(
                   "c3") "\"},{\"id\":\"" ID("d4") "\"},{\"id\":\"" ID("e5") "\"}]}",
               NULL, &problems, &created, id),
        ME_EMEDIA_NOT_READY);
    char *text = json_dumps(problems, JSON_COMPACT);
    assert_string_equal(text,
                        "[{\"id\":\"" ID("b2") "\",\"reason\":\"not_found\"},{\"id\":\"" ID(
                            "c3") "\",\"reason\":\"not_ready\"},{\"id\":\"" ID("d4") "\",\"reason\":\"failed\"},{"
                                                                                     "\"id\":\"" ID("e5") "\","
                                                                                                          "\"reason\":"
                                                                                                          "\"not_"
                                                                                                          "found\"}]");
    free(text);
    json_decref(problems);
    assert_int_equal(me_manifest_load(f->st, id, &m), ME_ENOTFOUND);
}

static void test_made_once_in_capture_order(void **state)
{
    fixture_t *f = *state;
    json_t *problems = NULL, *m = NULL;
    char id[32], again[32], key[128];
    int created;
    me_storage_stat_t st;
    photo(f, ID("a1"), "a1", "ready", "2026-11-03T10:00:00+02:00");
    photo(f, ID("b2"), "a1", "ready", "2026-11-03T09:30:00Z"); /* later than a1 in UTC */
    photo(f, ID("c3"), "a1", "ready", NULL);                   /* created_at: 2026-11-25 (UTC) */
    const char *body = "{\"period\":\"p\",\"caption\":\"date\",\"media\":[{\"id\":\"" ID("c3") "\"},{\"id\":\"" ID(
        "b2") "\"},{\"id\":\"" ID("a1") "\"}]}";
    assert_int_equal(create(f, body, NULL, &problems, &created, id), 0);
    assert_int_equal(created, 1);
    assert_int_equal(me_manifest_load(f->st, id, &m), 0);
    assert_string_equal(me_manifest_kind(m), "montage");
    assert_string_equal(me_manifest_status(m), "uploaded");
    json_t *clips = json_object_get(m, "clips");
    assert_string_equal(json_string_value(json_object_get(json_array_get(clips, 0), "id")), ID("a1"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(clips, 1), "id")), ID("b2"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(clips, 2), "id")), ID("c3"));
    assert_string_equal(json_string_value(json_object_get(json_array_get(clips, 0), "caption")), "3 Nov 2026");
    assert_string_equal(json_string_value(json_object_get(json_array_get(clips, 2), "caption")), "25 Nov 2026");
    json_decref(m);
    snprintf(key, sizeof(key), "jobs/%s.json", id);
    assert_int_equal(me_storage_head(f->st, key, &st), 0);
    /* again: the same id, nothing made */
    assert_int_equal(me_storage_delete(f->st, key), 0);
    assert_int_equal(create(f, body, NULL, &problems, &created, again), 0);
    assert_string_equal(id, again);
    assert_int_equal(created, 0);
    assert_int_equal(me_storage_head(f->st, key, &st), ME_ENOTFOUND);
    /* a key: its own montage; the same key for another request is a conflict */
    assert_int_equal(create(f, body, "k", &problems, &created, again), 0);
    assert_int_equal(created, 1);
    assert_int_equal(
        create(f, "{\"period\":\"q\",\"media\":[{\"id\":\"" ID("a1") "\"}]}", "k", &problems, &created, again),
        ME_ECONFLICT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_and_refusals),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_frame_and_fit_rules),
        cmocka_unit_test(test_lively_pick),
        cmocka_unit_test_setup_teardown(test_refused_media_are_named_and_nothing_is_made, setup, teardown),
        cmocka_unit_test_setup_teardown(test_made_once_in_capture_order, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
