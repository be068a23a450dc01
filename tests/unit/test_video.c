/* test_video.c: the video pipeline's pure parts: rendition settings and sizes, the caps a
 * header is held to, durations and the too-long message for people, and the facts' JSON.
 * Whole videos (decoding, tone mapping, rotation, limits on frames) are in
 * tests/integration/test_video.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "server/media/video/video.h"
#include "server/media/video/video_config.h"

static void test_rendition_sizes_table(void **state)
{
    static const struct {
        int w, h, size, ow, oh;
    } cases[] = {
        {1920, 1080, 1280, 1280, 720}, {1920, 1080, 640, 640, 360},   /* landscape 16:9 */
        {1080, 1920, 1280, 720, 1280}, {2160, 3840, 640, 360, 640},   /* portrait (after rotation) */
        {320, 240, 1280, 320, 240},    {320, 240, 640, 320, 240},     /* never upscaled */
        {320, 240, 100, 100, 76},      {1440, 1080, 1280, 1280, 960}, /* 4:3, rounded to even */
        {321, 241, 1280, 320, 240},                                   /* odd sizes: even, never larger */
        {4112, 16, 1280, 1280, 4},     {16, 4112, 64, 2, 64},         /* extreme: at least 2 */
        {1280, 720, 1280, 1280, 720},  {3840, 2160, 1280, 1280, 720},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int w, h;
        me_video_rendition_size(cases[i].w, cases[i].h, cases[i].size, &w, &h);
        if (w != cases[i].ow || h != cases[i].oh)
            fail_msg("%dx%d at %d: %dx%d, want %dx%d", cases[i].w, cases[i].h, cases[i].size, w, h, cases[i].ow,
                     cases[i].oh);
    }
}

static void test_rendition_parse_table(void **state)
{
    static const struct {
        const char *text;
        int ok, size, kbps;
    } cases[] = {
        {"720p:1280", 1, 1280, 3840},
        {"360p:640:1000", 1, 640, 1000},
        {"a_b-1:64", 1, 64, 192},
        {"720p:1280:", 0, 0, 0},
        {"720p", 0, 0, 0},
        {":1280", 0, 0, 0},
        {"720P:1280", 0, 0, 0},
        {"7/0p:1280", 0, 0, 0},
        {"720p:63", 0, 0, 0},
        {"720p:4097", 0, 0, 0},
        {"720p:1280:99", 0, 0, 0},
        {"720p:1280:100001", 0, 0, 0},
        {"720p:12x0", 0, 0, 0},
        {"abcdefghijklmnop:640", 0, 0, 0}, /* 16 characters */
        {"720p:99999999999999999999", 0, 0, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        me_video_rendition_t r;
        int ok = me_video_rendition_parse(cases[i].text, strlen(cases[i].text), &r);
        if (ok != cases[i].ok)
            fail_msg("%s: %d", cases[i].text, ok);
        if (ok && (r.size != cases[i].size || r.max_kbps != cases[i].kbps))
            fail_msg("%s: %d %d", cases[i].text, r.size, r.max_kbps);
    }
    /* text need not end at len: an item of a list */
    me_video_rendition_t r;
    assert_true(me_video_rendition_parse("720p:1280,360p:640", 9, &r));
    assert_string_equal(r.name, "720p");
    assert_int_equal(r.size, 1280);
}

static void test_caps(void **state)
{
    me_video_params_t vp;
    char message[256], detail[256];
    (void)state;
    me_video_params_default(&vp);
    const me_video_header_t fine = {
        .bytes = 1000, .streams = 6, .width = 3840, .height = 2160, .fps = 60, .bitrate = 50000000, .side_data = 4096};
    assert_int_equal(me_video_caps_check(&vp.caps, &fine, message, sizeof(message), detail, sizeof(detail)), 0);
    me_video_header_t edge = fine;
    edge.width = 4096, edge.height = 4096, edge.fps = 240, edge.streams = 16;
    assert_int_equal(me_video_caps_check(&vp.caps, &edge, NULL, 0, NULL, 0), 0);

    /* one field over its cap at a time, in this order, and the words the detail must have */
    static const char *const details[] = {"bytes, over",        "17 streams",      "4097x2160 pixels, over 4096x4096",
                                          "x4097 pixels",       "frames a second", "bits a second",
                                          "codec or side data", "frames a second"};
    for (size_t i = 0; i < sizeof(details) / sizeof(details[0]); i++) {
        me_video_header_t h = fine;
        switch (i) {
        case 0: h.bytes = vp.caps.max_bytes + 1; break;
        case 1: h.streams = 17; break;
        case 2: h.width = 4097; break;
        case 3: h.height = 4097; break;
        case 4: h.fps = 240.5; break;
        case 5: h.bitrate = vp.caps.max_bitrate + 1; break;
        case 6: h.side_data = (1 << 20) + 1; break;
        default: h.fps = 0.0 / 0.0; break; /* a frame rate that is no number */
        }
        message[0] = detail[0] = '\0';
        assert_int_equal(me_video_caps_check(&vp.caps, &h, message, sizeof(message), detail, sizeof(detail)),
                         ME_ETOOLARGE);
        if (strstr(detail, details[i]) == NULL)
            fail_msg("case %zu: detail '%s'", i, detail);
        assert_true(message[0] != '\0');
    }
    me_video_header_t big = fine;
    big.width = 8192;
    assert_int_equal(me_video_caps_check(&vp.caps, &big, message, sizeof(message), NULL, 0), ME_ETOOLARGE);
    assert_string_equal(message, "The video's picture is larger than this server processes (4096x4096 at most).");
}

static void test_durations_for_people(void **state)
{
    static const struct {
        double s;
        const char *want;
    } cases[] = {{242, "4 minutes 2 seconds"},
                 {242.9, "4 minutes 2 seconds"},
                 {180, "3 minutes"},
                 {61, "1 minute 1 second"},
                 {60, "1 minute"},
                 {45.5, "45 seconds"},
                 {1, "1 second"},
                 {0.4, "0 seconds"},
                 {3600, "1 hour"},
                 {3725, "1 hour 2 minutes 5 seconds"},
                 {-1, "0 seconds"},
                 {0.0 / 0.0, "0 seconds"}};
    char buf[64];
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        me_video_format_duration(cases[i].s, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].want);
    }
    me_video_format_duration(3725, buf, 8); /* cut, still a string */
    assert_true(strlen(buf) < 8);
}

static void test_too_long_message(void **state)
{
    char buf[256];
    (void)state;
    me_video_too_long_message("free", 180, 242.3, buf, sizeof(buf));
    assert_string_equal(buf, "Videos on the free plan can be up to 3 minutes long; this one is 4 minutes 2 seconds.");
    me_video_too_long_message("premium", 600, 601, buf, sizeof(buf));
    assert_string_equal(buf,
                        "Videos on the premium plan can be up to 10 minutes long; this one is 10 minutes 1 second.");
    me_video_too_long_message(NULL, 90, 125, buf, sizeof(buf));
    assert_string_equal(buf, "Videos can be up to 1 minute 30 seconds long; this one is 2 minutes 5 seconds.");
}

static void test_facts_json(void **state)
{
    me_video_result_t r = {0};
    (void)state;
    snprintf(r.facts.container, sizeof(r.facts.container), "mov");
    snprintf(r.facts.video_codec, sizeof(r.facts.video_codec), "hevc");
    snprintf(r.facts.dynamic_range, sizeof(r.facts.dynamic_range), "hlg");
    r.facts.width = 1080, r.facts.height = 1920, r.facts.rotation = 90, r.facts.duration = 12.3456;
    r.facts.has_location = 1;
    json_t *j = me_video_facts_json(&r);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "video");
    assert_int_equal(json_integer_value(json_object_get(j, "height")), 1920);
    assert_true(json_is_null(json_object_get(j, "audio_codec")));
    assert_true(json_is_null(json_object_get(j, "taken_at")));
    assert_true(json_is_true(json_object_get(j, "has_location")));
    assert_null(json_object_get(j, "renditions")); /* none made */
    assert_true(json_real_value(json_object_get(j, "duration")) > 12.345 &&
                json_real_value(json_object_get(j, "duration")) < 12.3461);
    json_decref(j);

    r.noutputs = 1;
    r.outputs[0] = (me_video_output_t){"720p", 720, 1280, 12.3, 123456, 1};
    j = me_video_facts_json(&r);
    json_t *item = json_array_get(json_object_get(j, "renditions"), 0);
    assert_string_equal(json_string_value(json_object_get(item, "content_type")), "video/mp4");
    assert_string_equal(json_string_value(json_object_get(item, "audio_codec")), "aac");
    assert_int_equal(json_integer_value(json_object_get(item, "bytes")), 123456);
    json_decref(j);
}

/* The videos and plans sections: defaults, the environment, refusals. */
static void test_settings(void **state)
{
    char err[512];
    me_config_t c;
    me_video_params_t vp;
    (void)state;

    assert_int_equal(me_config_defaults(&c), 0);
    assert_true(me_video_plan_limit(&c, "free") == 180 && me_video_plan_limit(&c, "premium") == 600);
    assert_true(me_video_plan_limit(&c, "gold") == 180); /* not listed: the shortest */
    me_video_params_init(&vp, &c, "premium");
    assert_int_equal(vp.nrenditions, 2);
    assert_string_equal(vp.renditions[1].name, "360p");
    assert_int_equal(vp.renditions[1].max_kbps, 1000);
    assert_string_equal(vp.preset, "veryfast");
    assert_string_equal(vp.plan, "premium");
    assert_true(vp.max_duration == 600 && vp.caps.max_width == 4096 && vp.caps.max_bitrate == 200000000);
    me_config_free(&c);

    char *const env[] = {"MEDIAEDGE_PLANS_LONGEST_VIDEO=free:1m,family:20m", "MEDIAEDGE_VIDEOS_PRESET=slow",
                         "MEDIAEDGE_VIDEOS_RENDITIONS=hd:1920,sd:480:800", NULL};
    assert_int_equal(me_config_load(&c, NULL, env, err, sizeof(err)), 0);
    assert_true(me_video_plan_limit(&c, "family") == 1200 && me_video_plan_limit(&c, "premium") == 60);
    me_video_params_init(&vp, &c, NULL);
    assert_true(vp.max_duration == 0 && vp.nrenditions == 2 && vp.renditions[0].size == 1920);
    assert_string_equal(vp.preset, "slow");
    me_config_free(&c);

    static const char *const bad[] = {"MEDIAEDGE_PLANS_LONGEST_VIDEO=free:0s",   "MEDIAEDGE_PLANS_LONGEST_VIDEO=free",
                                      "MEDIAEDGE_VIDEOS_RENDITIONS=a:640,a:320", "MEDIAEDGE_VIDEOS_RENDITIONS=a:32",
                                      "MEDIAEDGE_VIDEOS_PRESET=quick",           "MEDIAEDGE_JOBS_VIDEO_WORKERS=0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *const one[] = {(char *)bad[i], NULL};
        if (me_config_load(&c, NULL, one, err, sizeof(err)) != ME_ECONFIG)
            fail_msg("%s was taken", bad[i]);
        me_config_free(&c);
    }
}

/* videos.memory follows the container: half its memory shared by the video workers, at most
 * 2 GiB each, at least 16 MiB; a value given is kept; 1..16 MiB is refused. */
static void test_memory_from_the_container(void **state)
{
    static const struct {
        uint64_t limit;
        const char *workers, *memory;
        uint64_t want;
    } cases[] = {
        {64ull << 30, "MEDIAEDGE_JOBS_VIDEO_WORKERS=1", NULL, 2ull << 30},  /* a big machine: the cap */
        {4ull << 30, "MEDIAEDGE_JOBS_VIDEO_WORKERS=1", NULL, 2ull << 30},   /* the worker Deployment */
        {1ull << 30, "MEDIAEDGE_JOBS_VIDEO_WORKERS=1", NULL, 512ull << 20}, /* docker run --memory 1g */
        {4ull << 30, "MEDIAEDGE_JOBS_VIDEO_WORKERS=4", NULL, 512ull << 20}, /* shared by four */
        {16ull << 20, "MEDIAEDGE_JOBS_VIDEO_WORKERS=1", NULL, 16ull << 20}, /* the floor */
        {1ull << 30, "MEDIAEDGE_JOBS_VIDEO_WORKERS=1", "MEDIAEDGE_VIDEOS_MEMORY=3GiB", 3ull << 30}, /* given: kept */
    };
    me_config_t c;
    char err[256];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *const env[] = {(char *)cases[i].workers, (char *)cases[i].memory, NULL};
        assert_int_equal(me_config_load(&c, NULL, env, err, sizeof(err)), 0);
        c.memory_limit = cases[i].limit, c.cpu_limit = 2; /* known: the cgroup is not read */
        me_config_resolve(&c);
        if (me_video_settings(&c)->memory != cases[i].want)
            fail_msg("case %zu: %llu, not %llu", i, (unsigned long long)me_video_settings(&c)->memory,
                     (unsigned long long)cases[i].want);
        me_config_free(&c);
    }
    char *const small[] = {"MEDIAEDGE_VIDEOS_MEMORY=1MiB", NULL};
    assert_int_equal(me_config_load(&c, NULL, small, err, sizeof(err)), ME_ECONFIG);
    assert_non_null(strstr(err, "0 (auto) or at least 16MiB"));
    me_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rendition_sizes_table),
        cmocka_unit_test(test_rendition_parse_table),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_durations_for_people),
        cmocka_unit_test(test_too_long_message),
        cmocka_unit_test(test_facts_json),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_memory_from_the_container),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
