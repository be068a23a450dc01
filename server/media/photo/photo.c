/* photo.c: the photo pipeline on libvips: recognise, check limits, decode once, make every variant. */
#include "server/media/photo/photo.h"
#include "server/media/photo/photo_config.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <vips/vips.h>

#include "server/core/log.h"
#include "server/core/failpoint.h"
#include "server/media/photo/photo_cores.h"
#include "server/media/photo/photo_exif.h"
#include "server/media/photo/photo_webp.h"
#include "server/media/sniff.h"
#include "server/storage/layout.h"

typedef enum { FMT_JPEG, FMT_PNG, FMT_HEIF, FMT_WEBP, FMT_GIF } format_t;

/* The formats we take, the media type me_sniff() gives each, and the libvips loader
 * class left unblocked for it. */
static const struct {
    const char *name, *sniffed, *loader;
} formats[] = {
    [FMT_JPEG] = {"jpeg", "image/jpeg", "VipsForeignLoadJpeg"},
    [FMT_PNG] = {"png", "image/png", "VipsForeignLoadPng"},
    [FMT_HEIF] = {"heif", "image/heif", "VipsForeignLoadHeif"},
    [FMT_WEBP] = {"webp", "image/webp", "VipsForeignLoadWebp"},
    [FMT_GIF] = {"gif", "image/gif", "VipsForeignLoadNsgif"},
};
#define N_FORMATS (int)(sizeof(formats) / sizeof(formats[0]))

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_status = ME_EINTERNAL;

void me_photo_config_init(me_photo_config_t *pc, const me_config_t *cfg)
{
    const me_photo_settings_t *ps = me_photo_settings(cfg);
    memset(pc, 0, sizeof(*pc));
    pc->threads = cfg->cpu_limit > 0 ? cfg->cpu_limit : 1;
    pc->max_pixels = (uint64_t)ps->max_pixels;
    pc->max_bytes = ps->max_bytes;
    pc->jpeg_quality = ps->jpeg_quality;
    pc->webp_quality = ps->webp_quality;
    pc->webp_effort = ps->webp_effort;
    pc->keep_location = ps->keep_location;
    const char *p = ps->variants, *item;
    size_t len;
    while (pc->nvariants < ME_PHOTO_VARIANTS_MAX && me_config_list_next(&p, &item, &len))
        if (me_photo_variant_parse(item, len, &pc->variants[pc->nvariants]))
            pc->nvariants++;
}

/* libvips' warnings (mostly about damaged input: "error in tile ...") become debug lines
 * of our log: stderr carries JSON lines only, and a bad upload is not a server problem. */
static void log_vips(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
    me_log_debug(NULL, "libvips: %s", message);
}

static void init_vips(void)
{
    if (VIPS_INIT("mediaedge") != 0) {
        vips_error_clear();
        return;
    }
    /* Jobs run in parallel on the pool's threads: one libvips worker each, no shared cache
     * (the cache would hold decoded photos of other users for nothing). */
    g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG,
                      log_vips, NULL);
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    vips_concurrency_set(1);
    /* Photos come from anyone: nothing flagged untrusted (ImageMagick, poppler, librsvg,
     * ...) may ever run, and of the loaders only ours. */
    vips_block_untrusted_set(TRUE);
    vips_operation_block_set("VipsForeignLoad", TRUE);
    for (int i = 0; i < N_FORMATS; i++)
        vips_operation_block_set(formats[i].loader, FALSE);
    init_status = 0;
}

int me_photo_init(void)
{
    pthread_once(&init_once, init_vips);
    return init_status;
}

static int sniff(const void *data, size_t len)
{
    const char *type = me_sniff(data, len);

    if (type != NULL && strcmp(type, "image/heic") == 0)
        type = "image/heif";
    for (int i = 0; type != NULL && i < N_FORMATS; i++)
        if (strcmp(type, formats[i].sniffed) == 0)
            return i;
    return -1;
}

/* Opens data with fmt's loader only, reading the header (pixels come on demand, in order).
 * shrink (1, 2, 4, 8) is applied on load where the format can (JPEG's DCT scaling, WebP's
 * scaled decode). Damage anywhere fails the read (fail_on error: truncation included). */
static int load(format_t fmt, const void *data, size_t len, int shrink, VipsImage **out)
{
    void *buf = (void *)data; /* libvips takes a non-const pointer and only reads */
    VipsAccess seq = VIPS_ACCESS_SEQUENTIAL;
    VipsFailOn fail = VIPS_FAIL_ON_ERROR;

    switch (fmt) {
    case FMT_JPEG:
        return vips_jpegload_buffer(buf, len, out, "access", seq, "fail_on", fail, "shrink", shrink, NULL);
    case FMT_PNG:
        return vips_pngload_buffer(buf, len, out, "access", seq, "fail_on", fail, NULL);
    case FMT_HEIF: /* libheif applies irot/imir; libvips then drops the EXIF orientation */
        return vips_heifload_buffer(buf, len, out, "access", seq, "fail_on", fail, NULL);
    case FMT_WEBP:
        return vips_webpload_buffer(buf, len, out, "access", seq, "fail_on", fail, "scale", 1.0 / shrink, NULL);
    case FMT_GIF: /* the first frame */
        return vips_gifload_buffer(buf, len, out, "access", seq, "fail_on", fail, NULL);
    }
    return -1;
}

/* The block shrink to decode with, for a final scale s (<= 1): at most a power of two that
 * leaves a factor of two to the real resize (a block shrink alone aliases), at most 8. */
static int load_shrink(format_t fmt, double s)
{
    int k = 1;
    if (fmt != FMT_JPEG && fmt != FMT_WEBP)
        return 1;
    while (k < 8 && 4.0 * k * s <= 1.0)
        k *= 2;
    return k;
}

/* Copies the libvips error text into detail ("stage: text") and clears it. */
static void take_error(char *detail, size_t size, const char *stage)
{
    char *msg = vips_error_buffer_copy();
    size_t n;

    snprintf(detail, size, "%s: %s", stage, msg != NULL && *msg ? msg : "failed");
    n = strlen(detail);
    while (n && (detail[n - 1] == '\n' || detail[n - 1] == ' '))
        detail[--n] = '\0';
    g_free(msg);
}

/* Resizes in to exactly w x h (any alpha premultiplied meanwhile, so that transparent
 * pixels do not darken their neighbours); *out is in itself when the size is right. Images
 * made on the way belong to ctx. */
static int resize_to(VipsObject *ctx, VipsImage *in, int w, int h, VipsImage **out)
{
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 4);
    double hs = (double)w / in->Xsize, vs = (double)h / in->Ysize;

    if (w == in->Xsize && h == in->Ysize) {
        *out = in;
        return 0;
    }
    if (!vips_image_hasalpha(in)) {
        if (vips_resize(in, &t[0], hs, "vscale", vs, NULL))
            return -1;
        *out = t[0];
        return 0;
    }
    if (vips_premultiply(in, &t[0], NULL) || vips_resize(t[0], &t[1], hs, "vscale", vs, NULL) ||
        vips_unpremultiply(t[1], &t[2], NULL) || vips_cast(t[2], &t[3], in->BandFmt, NULL))
        return -1;
    *out = t[3];
    return 0;
}

/* Converts in to 8-bit sRGB through its embedded ICC profile (CMYK without one: libvips'
 * default CMYK profile; other images without one are taken as sRGB already). */
static int to_srgb(VipsObject *ctx, VipsImage *in, VipsImage **out)
{
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);
    int cmyk = in->Type == VIPS_INTERPRETATION_CMYK;

    if (cmyk || vips_image_get_typeof(in, VIPS_META_ICC_NAME)) {
        if (vips_icc_transform(in, &t[0], "srgb", "embedded", TRUE, "input_profile", cmyk ? "cmyk" : "srgb",
                               "intent", VIPS_INTENT_RELATIVE, "depth", 8, NULL))
            return -1;
    } else if (vips_colourspace(in, &t[0], VIPS_INTERPRETATION_sRGB, NULL)) {
        return -1;
    }
    if (t[0]->BandFmt == VIPS_FORMAT_UCHAR) {
        *out = t[0];
        return 0;
    }
    if (vips_cast(t[0], &t[1], VIPS_FORMAT_UCHAR, NULL))
        return -1;
    *out = t[1];
    return 0;
}

/* Removes every metadata field (EXIF, XMP, IPTC, ICC, orientation, comments, ...) from a
 * private copy of in's header; the pixels are shared. */
static int strip(VipsObject *ctx, VipsImage *in, VipsImage **out)
{
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 1);
    gchar **fields;

    if (vips_copy(in, &t[0], NULL))
        return -1;
    fields = vips_image_get_fields(t[0]);
    for (int i = 0; fields != NULL && fields[i] != NULL; i++)
        vips_image_remove(t[0], fields[i]); /* the built-in ones (width, ...) are not removable */
    g_strfreev(fields);
    *out = t[0];
    return 0;
}

/* The scale of the largest variant: every variant is made from the original scaled by it.
 * long_edge, short_edge: the original's. */
static double master_scale(const me_photo_config_t *pc, int long_edge, int short_edge)
{
    double s = 0;

    for (int i = 0; i < pc->nvariants; i++) {
        const me_photo_variant_t *v = &pc->variants[i];
        double vs = (double)v->size / (v->square ? short_edge : long_edge);
        s = vs > s ? vs : s;
    }
    return s > 1 || s <= 0 ? 1 : s;
}

static int scaled(int n, double s)
{
    long v = lround(n * s);
    return v < 1 ? 1 : (int)v;
}

/* in computed into a new image in memory (owned by ctx) by threads libvips workers: the
 * count is a hint on this pipeline alone (vips_concurrency_set() would change every
 * pipeline of the process), not passed on to what is made from the result. */
static VipsImage *to_memory(VipsObject *ctx, VipsImage *in, int threads)
{
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);

    if (vips_copy(in, &t[0], NULL))
        return NULL;
    if (threads > 1)
        vips_image_set_int(t[0], VIPS_META_CONCURRENCY, threads);
    if ((t[1] = vips_image_copy_memory(t[0])) == NULL)
        return NULL;
    vips_image_remove(t[1], VIPS_META_CONCURRENCY);
    return t[1];
}

/* Decodes the photo once into memory, at the master scale, upright, sRGB, no metadata, on
 * threads libvips workers (the loader is serial; the others resize and convert what it
 * has decoded). */
static int decode_master(VipsObject *ctx, const me_photo_config_t *pc, format_t fmt, const void *data,
                         size_t len, VipsImage *header, int threads, VipsImage **out)
{
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);
    VipsImage *img = header, *sized, *srgb, *decoded, *bare;
    int w = header->Xsize, h = header->Ysize;
    double s = master_scale(pc, w > h ? w : h, w < h ? w : h);
    int shrink = load_shrink(fmt, s);

    if (shrink > 1) {
        if (load(fmt, data, len, shrink, &t[0]))
            return -1;
        img = t[0];
    }
    /* shrink before the colour transform and the rotation: both then work on fewer pixels */
    if (resize_to(ctx, img, scaled(w, s), scaled(h, s), &sized) || to_srgb(ctx, sized, &srgb))
        return -1;
    if ((decoded = to_memory(ctx, srgb, threads)) == NULL) /* the only full decode */
        return -1;
    if (vips_autorot(decoded, &t[1], NULL) || strip(ctx, t[1], &bare))
        return -1;
    *out = bare;
    /* keep it turned in memory rather than turning it again for every variant */
    if (vips_image_get_orientation(header) != 1 && (*out = to_memory(ctx, bare, threads)) == NULL)
        return -1;
    /* The master is in memory, so any order of reading it is fine; saying it is sequential
     * keeps libvips' vertical shrink (the thumb's 2048 -> 320) on its line cache: without
     * the hint (strip() removes it) that resize costs four times as much. */
    vips_image_set_int(*out, VIPS_META_SEQUENTIAL, 1);
    return 0;
}

/* One photo's variants while they are made, by tasks that may run on several threads. */
typedef struct {
    const me_photo_config_t *pc;
    VipsImage *master;
    int long_edge, short_edge;                /* the original's, as displayed */
    int order[ME_PHOTO_OUTPUTS_MAX];          /* the outputs, costliest first: task i makes order[i] */
    int maker[ME_PHOTO_VARIANTS_MAX];         /* the task that makes a variant's pixels: its first */
    pthread_mutex_t lock;                     /* guards images; made is signalled when one is set */
    pthread_cond_t made;
    VipsImage *images[ME_PHOTO_VARIANTS_MAX]; /* each variant's pixels, a reference each */
    me_photo_result_t *out;
    atomic_int failed;                        /* a task has written out->detail */
} variants_t;

/* A task failed: the first failure's libvips error becomes out->detail (read once every
 * task has ended). The error buffer is the process's: take it before another task does. */
static void task_failed(variants_t *vs)
{
    if (atomic_exchange(&vs->failed, 1) == 0)
        take_error(vs->out->detail, sizeof(vs->out->detail), "variant");
}

/* The pixels of variant v in memory, a new reference in *out (the master itself when it has
 * the variant's size: nothing to copy). */
static int make_image(variants_t *vs, const me_photo_variant_t *v, VipsImage **out)
{
    VipsObject *ctx = VIPS_OBJECT(vips_image_new());
    VipsImage **t = (VipsImage **)vips_object_local_array(ctx, 2);
    VipsImage *master = vs->master, *sized;
    int mw = master->Xsize, mh = master->Ysize, mlong = mw > mh ? mw : mh, mshort = mw < mh ? mw : mh;
    int side = v->size < vs->short_edge ? v->size : vs->short_edge;
    int target = v->size < vs->long_edge ? v->size : vs->long_edge;
    double s = v->square ? (double)side / mshort : (double)target / mlong;
    int ret = -1;

    if (resize_to(ctx, master, scaled(mw, s), scaled(mh, s), &sized))
        goto exit;
    if (v->square) {
        /* smartcrop reads its input several times: from memory, not through the resize */
        if ((t[0] = vips_image_copy_memory(sized)) == NULL ||
            vips_smartcrop(t[0], &t[1], side < t[0]->Xsize ? side : t[0]->Xsize,
                           side < t[0]->Ysize ? side : t[0]->Ysize, "interesting", VIPS_INTERESTING_ATTENTION, NULL))
            goto exit;
        sized = t[1];
    }
    if (sized == master)
        g_object_ref(*out = master);
    else if ((*out = vips_image_copy_memory(sized)) == NULL) /* read by both encoders */
        goto exit;
    ret = 0;
exit:
    g_object_unref(ctx);
    return ret;
}

/* The pixels task i needs for its variant v: made by it when it is the variant's first
 * task, else made (or being made) by an earlier task, which it waits for. NULL on failure. */
static VipsImage *variant_image(variants_t *vs, int i, int v)
{
    VipsImage *img = NULL;
    int failed = 0;

    if (vs->maker[v] == i && (failed = make_image(vs, &vs->pc->variants[v], &img)) != 0)
        task_failed(vs); /* before waking the waiters: they look at vs->failed */
    pthread_mutex_lock(&vs->lock);
    if (vs->maker[v] == i) {
        vs->images[v] = img;
        pthread_cond_broadcast(&vs->made);
    }
    while (vs->images[v] == NULL && !atomic_load(&vs->failed))
        pthread_cond_wait(&vs->made, &vs->lock);
    img = failed ? NULL : vs->images[v];
    pthread_mutex_unlock(&vs->lock);
    return img;
}

/* Task i: output k = vs->order[i] of out, variant k / 2 as JPEG (k even) or WebP. */
static int encode(void *arg, int i)
{
    variants_t *vs = arg;
    const me_photo_config_t *pc = vs->pc;
    int k = vs->order[i], v = k / ME_PHOTO_FORMATS, jpeg = k % ME_PHOTO_FORMATS == 0;
    VipsImage *img = variant_image(vs, i, v), *flat = NULL;
    me_photo_output_t *o = &vs->out->outputs[k];
    int ret = -1;

    if (img == NULL)
        return -1;
    *o = (me_photo_output_t){.name = pc->variants[v].name, .ext = jpeg ? "jpg" : "webp",
                             .content_type = jpeg ? "image/jpeg" : "image/webp",
                             .width = img->Xsize, .height = img->Ysize};
    if (jpeg && vips_image_hasalpha(img)) { /* JPEG has no alpha: onto white */
        VipsArrayDouble *white = vips_array_double_newv(1, 255.0);
        int rc = vips_flatten(img, &flat, "background", white, NULL);
        vips_area_unref(VIPS_AREA(white));
        if (rc)
            goto exit;
        img = flat;
    }
    if (jpeg ? vips_jpegsave_buffer(img, &o->data, &o->len, "Q", pc->jpeg_quality, "optimize_coding", TRUE,
                                    "interlace", TRUE, "strip", TRUE, NULL)
             : vips_webpsave_buffer(img, &o->data, &o->len, "Q", pc->webp_quality, "effort", pc->webp_effort,
                                    "strip", TRUE, NULL))
        goto exit;
    if (!jpeg && (o->len = me_photo_webp_strip(o->data, o->len)) == 0) {
        vips_error("mediaedge", "libvips wrote a malformed WebP");
        goto exit;
    }
    ret = 0;
exit:
    if (flat != NULL)
        g_object_unref(flat);
    if (ret != 0)
        task_failed(vs);
    return ret;
}

/* Makes pc's variants of master into out->outputs, in pc's order. One task per output,
 * costliest first so that the threads of the run end together (WebP at libvips' default
 * effort costs about four times the progressive JPEG of the same pixels); a variant's
 * first task makes its pixels, its other waits for them. The tasks run on helper threads
 * while cores are idle (photo_cores.h). Returns 0, or -1 with out->detail set; either way
 * out->noutputs covers every output, for me_photo_result_free(). */
static int make_variants(const me_photo_config_t *pc, VipsImage *master, int long_edge, int short_edge,
                         me_photo_result_t *out)
{
    variants_t vs = {.pc = pc, .master = master, .long_edge = long_edge, .short_edge = short_edge, .out = out};
    double cost[ME_PHOTO_OUTPUTS_MAX];
    int ret;

    out->noutputs = pc->nvariants * ME_PHOTO_FORMATS;
    for (int k = 0; k < out->noutputs; k++) {
        const me_photo_variant_t *v = &pc->variants[k / ME_PHOTO_FORMATS];
        double edge = v->size < (v->square ? short_edge : long_edge) ? v->size : (v->square ? short_edge : long_edge);
        double area = v->square ? edge * edge : edge * edge * short_edge / long_edge;
        int j = k;
        cost[k] = area * (k % ME_PHOTO_FORMATS ? 4 : 1);
        for (; j > 0 && cost[vs.order[j - 1]] < cost[k]; j--) /* insertion: ties keep pc's order */
            vs.order[j] = vs.order[j - 1];
        vs.order[j] = k;
    }
    for (int i = out->noutputs - 1; i >= 0; i--)
        vs.maker[vs.order[i] / ME_PHOTO_FORMATS] = i;
    pthread_mutex_init(&vs.lock, NULL);
    pthread_cond_init(&vs.made, NULL);
    ret = me_photo_cores_run(out->noutputs, encode, &vs, pc->threads);
    pthread_cond_destroy(&vs.made);
    pthread_mutex_destroy(&vs.lock);
    for (int v = 0; v < pc->nvariants; v++)
        if (vs.images[v] != NULL)
            g_object_unref(vs.images[v]);
    return ret;
}

/* The start of a run: a core taken (finish() gives it back), out emptied, libvips set up.
 * 0 or ME_EINTERNAL. */
static int begin(me_photo_result_t *out)
{
    me_photo_cores_enter();
    memset(out, 0, sizeof(*out));
    out->orientation = 1;
    return me_photo_init();
}

/* The end of a run: the libvips error into out->detail on failure (what was made is freed,
 * the detail kept), ctx released, the cores given back. Returns ret. */
static int finish(int ret, const char *stage, VipsObject *ctx, me_photo_result_t *out)
{
    if (ret != 0 && !out->detail[0])
        take_error(out->detail, sizeof(out->detail), stage);
    else
        vips_error_clear();
    if (ctx != NULL)
        g_object_unref(ctx);
    me_photo_cores_leave();
    if (ret != 0) {
        char detail[sizeof(out->detail)];
        memcpy(detail, out->detail, sizeof(detail));
        me_photo_result_free(out);
        memcpy(out->detail, detail, sizeof(detail));
    }
    return ret;
}

int me_photo_process(const me_photo_config_t *pc, const void *data, size_t len, me_photo_result_t *out)
{
    VipsObject *ctx = NULL;
    VipsImage **t, *master;
    const char *stage = "init";
    int ret, rc, fmt, w, h, spare;

    if ((ret = begin(out)) != 0)
        goto exit;
    ret = ME_ETOOLARGE;
    stage = "limits";
    if (len > pc->max_bytes) {
        snprintf(out->detail, sizeof(out->detail), "%zu bytes, over photos.max_bytes (%llu)", len,
                 (unsigned long long)pc->max_bytes);
        goto exit;
    }
    ret = ME_EMEDIA;
    if ((fmt = sniff(data, len)) < 0) {
        snprintf(out->detail, sizeof(out->detail), "not a JPEG, PNG, HEIF, WebP or GIF");
        goto exit;
    }
    snprintf(out->format, sizeof(out->format), "%s", formats[fmt].name);
    snprintf(out->content_type, sizeof(out->content_type), "%s",
             fmt == FMT_HEIF ? me_sniff(data, len) : formats[fmt].sniffed);
    ctx = VIPS_OBJECT(vips_image_new());
    t = (VipsImage **)vips_object_local_array(ctx, 1);
    ret = ME_ECORRUPT;
    stage = "header";
    if (load(fmt, data, len, 1, &t[0]))
        goto exit;
    w = t[0]->Xsize, h = t[0]->Ysize;
    if ((uint64_t)w * (uint64_t)h > pc->max_pixels) {
        snprintf(out->detail, sizeof(out->detail), "%dx%d pixels, over photos.max_pixels (%llu)", w, h,
                 (unsigned long long)pc->max_pixels);
        ret = ME_ETOOLARGE;
        goto exit;
    }
    out->orientation = vips_image_get_orientation(t[0]);
    out->width = vips_image_get_orientation_swap(t[0]) ? h : w;
    out->height = vips_image_get_orientation_swap(t[0]) ? w : h;
    me_photo_exif_facts(t[0], pc->keep_location, out);
    stage = "decode";
    /* With a core to spare, a second libvips worker resizes and converts the strips the
     * loader has decoded (12 MP JPEG: about a third less wall time). libheif decodes the
     * whole picture on one thread before the first strip comes out: there it only adds CPU. */
    spare = fmt == FMT_HEIF ? 0 : me_photo_cores_borrow(1, pc->threads);
    rc = decode_master(ctx, pc, (format_t)fmt, data, len, t[0], 1 + spare, &master);
    me_photo_cores_give(spare);
    if (rc)
        goto exit;
    ret = ME_EINTERNAL;
    stage = "variant";
    if (make_variants(pc, master, out->width > out->height ? out->width : out->height,
                      out->width < out->height ? out->width : out->height, out))
        goto exit;
    ret = 0;
exit:
    return finish(ret, stage, ctx, out);
}

int me_photo_process_pixels(const me_photo_config_t *pc, const void *rgb, int width, int height,
                            me_photo_result_t *out)
{
    VipsObject *ctx = NULL;
    VipsImage **t, *sized, *master;
    const char *stage = "init";
    int ret, long_edge = width > height ? width : height, short_edge = width < height ? width : height;
    double s;

    if ((ret = begin(out)) != 0)
        goto exit;
    ret = ME_ETOOLARGE;
    stage = "limits";
    if (width < 1 || height < 1 || (uint64_t)width * (uint64_t)height > pc->max_pixels) {
        snprintf(out->detail, sizeof(out->detail), "%dx%d pixels, over photos.max_pixels (%llu)", width, height,
                 (unsigned long long)pc->max_pixels);
        goto exit;
    }
    out->width = width, out->height = height;
    ctx = VIPS_OBJECT(vips_image_new());
    t = (VipsImage **)vips_object_local_array(ctx, 1);
    ret = ME_EINTERNAL;
    stage = "decode";
    if ((t[0] = vips_image_new_from_memory(rgb, (size_t)width * height * 3, width, height, 3, VIPS_FORMAT_UCHAR)) == NULL)
        goto exit;
    t[0]->Type = VIPS_INTERPRETATION_sRGB;
    s = master_scale(pc, long_edge, short_edge);
    if (resize_to(ctx, t[0], scaled(width, s), scaled(height, s), &sized) ||
        (master = to_memory(ctx, sized, 1)) == NULL)
        goto exit;
    vips_image_set_int(master, VIPS_META_SEQUENTIAL, 1); /* as decode_master() says */
    stage = "variant";
    if (make_variants(pc, master, long_edge, short_edge, out))
        goto exit;
    ret = 0;
exit:
    return finish(ret, stage, ctx, out);
}

void me_photo_result_free(me_photo_result_t *out)
{
    char format[sizeof(out->format)], type[sizeof(out->content_type)];

    for (int i = 0; i < out->noutputs; i++)
        g_free(out->outputs[i].data);
    memcpy(format, out->format, sizeof(format)); /* still true of the input */
    memcpy(type, out->content_type, sizeof(type));
    memset(out, 0, sizeof(*out));
    memcpy(out->format, format, sizeof(format));
    memcpy(out->content_type, type, sizeof(type));
}

int me_photo_store(me_storage_t *st, const char *album, const char *media_id, const me_photo_result_t *r)
{
    char key[ME_STORAGE_KEY_MAX + 1];
    int ret;

    for (int i = 0; i < r->noutputs; i++) {
        const me_photo_output_t *o = &r->outputs[i];
        if (me_layout_variant(key, sizeof(key), album, media_id, o->name, o->ext) != 0)
            return ME_EINVAL;
        if ((ret = me_storage_put(st, key, o->data, o->len)) != 0)
            return ret;
        me_failpoint("photo.variant_stored");
    }
    return 0;
}

json_t *me_photo_facts_json(const me_photo_result_t *r)
{
    json_t *facts = json_pack("{s:s,s:s?,s:i,s:i,s:s?,s:b}", "kind", "photo", "format", r->format[0] ? r->format : NULL, "width",
                              r->width, "height", r->height, "taken_at", r->taken_at[0] ? r->taken_at : NULL,
                              "has_location", r->has_location);
    json_t *variants = json_array();

    if (facts == NULL || variants == NULL || json_object_set(facts, "variants", variants))
        goto fail;
    if (r->has_coordinates &&
        json_object_set_new(facts, "location", json_pack("{s:f,s:f}", "lat", r->latitude, "lon", r->longitude)))
        goto fail;
    for (int i = 0; i < r->noutputs; i++) {
        const me_photo_output_t *o = &r->outputs[i];
        if (json_array_append_new(variants, json_pack("{s:s,s:s,s:s,s:i,s:i,s:I}", "name", o->name, "format", o->ext,
                                                      "content_type", o->content_type, "width", o->width,
                                                      "height", o->height, "bytes", (json_int_t)o->len)))
            goto fail;
    }
    json_decref(variants);
    return facts;
fail:
    json_decref(variants);
    json_decref(facts);
    return NULL;
}
