/* video.c: the video pipeline's settings, sizes, messages and facts (what needs no libav*). */
#include "server/media/video/video.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void me_video_params_default(me_video_params_t *vp)
{
    static const me_video_rendition_t renditions[] = {{"720p", 1280, 4000}, {"360p", 640, 1000}};

    memset(vp, 0, sizeof(*vp));
    vp->nrenditions = (int)(sizeof(renditions) / sizeof(renditions[0]));
    memcpy(vp->renditions, renditions, sizeof(renditions));
    snprintf(vp->preset, sizeof(vp->preset), "veryfast");
    vp->crf = 23;
    vp->audio_kbps = 128;
    vp->max_fps = 60;
    vp->poster_at = 1;
    vp->caps = (me_video_caps_t){.max_bytes = 4ull << 30,
                                 .max_width = 4096,
                                 .max_height = 4096,
                                 .max_streams = 16,
                                 .max_fps = 240,
                                 .max_bitrate = 200000000,
                                 .max_side_data = 1 << 20};
}

/* A decimal number of [min, max] at *p (up to end), moving *p past it. 1, or 0. */
static int number(const char **p, const char *end, long min, long max, int *out)
{
    long v = 0;
    const char *s = *p;

    while (*p < end && **p >= '0' && **p <= '9' && v <= max)
        v = v * 10 + (*(*p)++ - '0');
    if (*p == s || v < min || v > max)
        return 0;
    *out = (int)v;
    return 1;
}

int me_video_rendition_parse(const char *text, size_t len, me_video_rendition_t *out)
{
    const char *colon = memchr(text, ':', len), *end = text + len, *p;
    size_t n = colon ? (size_t)(colon - text) : 0;
    me_video_rendition_t r = {0};

    if (colon == NULL || n < 1 || n > ME_VIDEO_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= '0' && text[i] <= '9') || text[i] == '_' ||
              text[i] == '-'))
            return 0;
    memcpy(r.name, text, n);
    p = colon + 1;
    if (!number(&p, end, ME_VIDEO_SIZE_MIN, ME_VIDEO_SIZE_MAX, &r.size))
        return 0;
    r.max_kbps = r.size * 3;
    if (p < end && (*p++ != ':' || !number(&p, end, 100, 100000, &r.max_kbps)))
        return 0;
    if (p != end)
        return 0;
    *out = r;
    return 1;
}

/* n rounded to the nearest even number, at least 2. */
static int even(double n)
{
    long v = 2 * lround(n / 2);
    return v < 2 ? 2 : (int)v;
}

void me_video_rendition_size(int width, int height, int size, int *out_width, int *out_height)
{
    int long_edge = width > height ? width : height;
    double s = long_edge > size ? (double)size / long_edge : 1;

    *out_width = even(width * s);
    *out_height = even(height * s);
    /* rounding up to even must not make a rendition larger than the video (a 321-pixel
     * side stays 320, not 322) */
    if (*out_width > width && width >= 2)
        *out_width = width & ~1;
    if (*out_height > height && height >= 2)
        *out_height = height & ~1;
}

int me_video_caps_check(const me_video_caps_t *caps, const me_video_header_t *h, char *message, size_t mlen,
                        char *detail, size_t dlen)
{
    char why[160] = "";

    if (h->bytes > caps->max_bytes)
        snprintf(why, sizeof(why), "%llu bytes, over %llu", (unsigned long long)h->bytes,
                 (unsigned long long)caps->max_bytes);
    else if (h->streams > caps->max_streams)
        snprintf(why, sizeof(why), "%d streams, over %d", h->streams, caps->max_streams);
    else if (h->width > caps->max_width || h->height > caps->max_height)
        snprintf(why, sizeof(why), "%dx%d pixels, over %dx%d", h->width, h->height, caps->max_width, caps->max_height);
    else if (!(h->fps <= caps->max_fps)) /* NaN too */
        snprintf(why, sizeof(why), "%.3g frames a second, over %.3g", h->fps, caps->max_fps);
    else if (h->bitrate > caps->max_bitrate)
        snprintf(why, sizeof(why), "%lld bits a second, over %lld", (long long)h->bitrate,
                 (long long)caps->max_bitrate);
    else if (h->side_data > caps->max_side_data)
        snprintf(why, sizeof(why), "%d bytes of codec or side data, over %d", h->side_data, caps->max_side_data);
    else
        return 0;
    if (detail && dlen)
        snprintf(detail, dlen, "%s", why);
    if (message && mlen) {
        if (h->width > caps->max_width || h->height > caps->max_height)
            snprintf(message, mlen, "The video's picture is larger than this server processes (%dx%d at most).",
                     caps->max_width, caps->max_height);
        else
            snprintf(message, mlen, "The video is larger than this server processes.");
    }
    return ME_ETOOLARGE;
}

/* Appends "N unit[s]" to buf. */
static void add_unit(char *buf, size_t len, long n, const char *unit)
{
    size_t used = strlen(buf);
    if (used < len)
        snprintf(buf + used, len - used, "%s%ld %s%s", used ? " " : "", n, unit, n == 1 ? "" : "s");
}

void me_video_format_duration(double seconds, char *buf, size_t len)
{
    long s = seconds > 0 && seconds < 1e9 ? (long)floor(seconds) : 0;
    long h = s / 3600, m = s / 60 % 60, sec = s % 60;

    if (len == 0)
        return;
    buf[0] = '\0';
    if (h)
        add_unit(buf, len, h, "hour");
    if (m)
        add_unit(buf, len, m, "minute");
    if (sec || (!h && !m))
        add_unit(buf, len, sec, "second");
}

void me_video_too_long_message(const char *plan, double limit, double duration, char *buf, size_t len)
{
    char lim[64], dur[64];

    me_video_format_duration(limit, lim, sizeof(lim));
    me_video_format_duration(duration, dur, sizeof(dur));
    if (plan && *plan)
        snprintf(buf, len, "Videos on the %s plan can be up to %s long; this one is %s.", plan, lim, dur);
    else
        snprintf(buf, len, "Videos can be up to %s long; this one is %s.", lim, dur);
}

void me_video_result_free(me_video_result_t *out)
{
    me_video_facts_t facts = out->facts;

    free(out->poster);
    memset(out, 0, sizeof(*out));
    out->facts = facts;
}

int me_video_poster(const me_photo_config_t *pc, const me_video_result_t *r, me_photo_result_t *poster)
{
    if (r->poster == NULL) {
        memset(poster, 0, sizeof(*poster));
        snprintf(poster->detail, sizeof(poster->detail), "the video has no poster frame");
        return ME_ECORRUPT;
    }
    return me_photo_process_pixels(pc, r->poster, r->poster_width, r->poster_height, poster);
}

/* A string member, null when empty. */
static int set_str(json_t *o, const char *key, const char *value)
{
    return json_object_set_new(o, key, *value ? json_string(value) : json_null());
}

json_t *me_video_facts_json(const me_video_result_t *r)
{
    const me_video_facts_t *f = &r->facts;
    json_t *facts =
        json_pack("{s:s,s:s,s:i,s:i,s:f,s:i,s:f,s:b,s:i,s:s,s:I,s:b,s:i,s:i}", "kind", "video", "format", f->container,
                  "width", f->width, "height", f->height, "duration", round(f->duration * 1000) / 1000, "rotation",
                  f->rotation, "fps", round(f->fps * 1000) / 1000, "vfr", f->vfr, "bit_depth", f->bit_depth,
                  "dynamic_range", f->dynamic_range, "bitrate", (json_int_t)f->bitrate, "has_location", f->has_location,
                  "audio_channels", f->audio_channels, "audio_rate", f->audio_rate);
    json_t *renditions = NULL;

    if (facts == NULL || set_str(facts, "video_codec", f->video_codec) ||
        set_str(facts, "audio_codec", f->audio_codec) || set_str(facts, "color_primaries", f->color_primaries) ||
        set_str(facts, "color_transfer", f->color_transfer) || set_str(facts, "taken_at", f->taken_at))
        goto fail;
    if (r->noutputs == 0)
        return facts;
    if ((renditions = json_array()) == NULL || json_object_set(facts, "renditions", renditions))
        goto fail;
    for (int i = 0; i < r->noutputs; i++) {
        const me_video_output_t *o = &r->outputs[i];
        json_t *item =
            json_pack("{s:s,s:s,s:s,s:i,s:i,s:f,s:I,s:s,s:s?}", "name", o->name, "format", "mp4", "content_type",
                      "video/mp4", "width", o->width, "height", o->height, "duration", round(o->duration * 1000) / 1000,
                      "bytes", (json_int_t)o->bytes, "video_codec", "h264", "audio_codec", o->has_audio ? "aac" : NULL);
        if (json_array_append_new(renditions, item)) /* NULL too */
            goto fail;
    }
    json_decref(renditions);
    return facts;
fail:
    json_decref(renditions);
    json_decref(facts);
    return NULL;
}
