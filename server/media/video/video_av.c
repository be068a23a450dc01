/* video_av.c: the video pipeline on libav*: our own reader, the probe and its caps, then one
 * decode, one filter graph, one encoder and muxer per rendition, and the poster. */
#include "server/media/video/video.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <libavutil/display.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>

#include "server/core/log.h"
#include "server/media/sniff.h"

#define IO_BUFFER (64 << 10)
#define QUEUE_MAX 4096                    /* audio packets held until the first picture is decoded */
#define FORMATS "mov,mp4,m4a,3gp,3g2,mj2" /* the MOV/MP4 demuxer's names: nothing else opens */
#define VIDEO_CODECS "h264,hevc"
#define AUDIO_CODECS "aac,alac,mp3,ac3,eac3,opus,pcm_s16le,pcm_s16be,pcm_s24le,pcm_s24be,pcm_f32le"
#define GOP_SECONDS 2 /* a keyframe this often: players seek, and montages cut, on them */
/* HDR to SDR: to linear light with HDR's diffuse white (BT.2408: 203 cd/m2) as 1.0, so SDR
 * content graded into HDR comes back as it was; BT.709 primaries; then highlights above
 * 0.6 rolled off smoothly to the signal's peak (mobius) rather than clipped (washed out) or
 * compressed everywhere (hable: a third darker). */
#define TONEMAP                                                                                                        \
    "zscale=t=linear:npl=203,format=gbrpf32le,zscale=p=bt709,tonemap=mobius:param=0.6:desat=0,"                        \
    "zscale=t=bt709:m=bt709:r=tv,format=yuv420p"

static pthread_once_t log_once = PTHREAD_ONCE_INIT;

/* libav*'s messages (mostly about damaged input) become debug lines of our log: stderr
 * carries JSON lines only, and a bad upload is not a server problem. */
static void log_av(void *avcl, int level, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    if (level > AV_LOG_WARNING)
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
        line[--n] = '\0';
    me_log_debug(NULL, "libav: %s", line);
}

static void init_log(void)
{
    av_log_set_callback(log_av);
}

/* ---- the input: our reader, the demuxer, the probe ---- */

typedef struct {
    int fd;
    int64_t pos, size;
    int refused; /* the file asked to open something else */
    AVFormatContext *fmt;
    AVStream *vst, *ast;
} input_t;

static int read_fd(void *opaque, uint8_t *buf, int size)
{
    input_t *in = opaque;
    ssize_t n;

    do
        n = pread(in->fd, buf, (size_t)size, in->pos);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return AVERROR(errno);
    if (n == 0)
        return AVERROR_EOF;
    in->pos += n;
    return (int)n;
}

int64_t me_video_avio_seek(int64_t *pos, int64_t size, int64_t offset, int whence)
{
    int64_t to;

    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE: return size;
    case SEEK_SET: to = offset; break;
    case SEEK_CUR: to = *pos + offset; break;
    case SEEK_END: to = size + offset; break;
    default: return AVERROR(EINVAL);
    }
    if (to < 0)
        return AVERROR(EINVAL);
    return *pos = to;
}

static int64_t seek_fd(void *opaque, int64_t offset, int whence)
{
    input_t *in = opaque;
    return me_video_avio_seek(&in->pos, in->size, offset, whence);
}

/* Every open a demuxer asks for (a data reference, a playlist's entries, ...): refused.
 * The file gets our reader and nothing else. */
static int refuse_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags, AVDictionary **options)
{
    input_t *in = s->opaque;
    in->refused = 1;
    return AVERROR(EPERM);
}

static void set(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

/* The failure's words: message for people, detail for logs. Returns err. */
static int failure(me_video_result_t *out, int err, const char *message, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int failure(me_video_result_t *out, int err, const char *message, const char *fmt, ...)
{
    va_list ap;
    if (!out->message[0])
        set(out->message, sizeof(out->message), message);
    if (!out->detail[0]) {
        va_start(ap, fmt);
        vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
        va_end(ap);
    }
    return err;
}

#define MSG_CORRUPT "The video is damaged or cut short; upload it again from the phone."
#define MSG_MEDIA "This file is not a video we can read (MP4 or MOV, H.264 or HEVC)."
#define MSG_MEMORY "The video needs more memory than this server gives one video."

/* A libav* error met on the way: out of memory is the process's limit (the file's fault,
 * since caps let it in); anything else is damage. */
static int av_failure(me_video_result_t *out, int averr, const char *stage)
{
    char text[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(averr, text, sizeof(text));
    if (averr == AVERROR(ENOMEM) || averr == AVERROR(EAGAIN)) /* EAGAIN: no memory for a decoder thread */
        return failure(out, ME_ETOOLARGE, MSG_MEMORY, "%s: out of memory (%s)", stage, text);
    return failure(out, ME_ECORRUPT, MSG_CORRUPT, "%s: %s", stage, text);
}

/* An encoder's error: the input is our own frames, so short of memory (libx264 says only
 * "external library") it is ours, not the file's. */
static int encoder_failure(me_video_result_t *out, int averr)
{
    char text[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(averr, text, sizeof(text));
    if (averr == AVERROR(ENOMEM) || averr == AVERROR_EXTERNAL)
        return failure(out, ME_ETOOLARGE, MSG_MEMORY, "encode: %s (out of memory?)", text);
    return failure(out, ME_EINTERNAL, "The video could not be processed this time.", "encode: %s", text);
}

/* Clockwise degrees to turn the picture upright, from the display matrix: 0, 90, 180, 270. */
static int rotation_of(const AVStream *st)
{
    size_t size = 0;
    const uint8_t *m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    double theta;

    if (m == NULL || size < 9 * sizeof(int32_t))
        return 0;
    theta = -av_display_rotation_get((const int32_t *)m); /* counterclockwise in the matrix */
    if (isnan(theta))
        return 0;
    theta -= 360 * floor(theta / 360 + 0.9 / 360);
    return ((int)lround(theta / 90) % 4) * 90;
}

/* The largest extradata or side data item of st. */
static int side_data_of(const AVStream *st)
{
    int n = st->codecpar->extradata_size;
    for (int i = 0; i < st->nb_side_data; i++)
        if (st->side_data[i].size > (size_t)n)
            n = st->side_data[i].size > INT_MAX ? INT_MAX : (int)st->side_data[i].size;
    return n;
}

/* "2021-05-01T12:34:56" plus "+02:00" or "Z" from a creation date ("2021-05-01T12:34:56+0200",
 * "2021-05-01T12:34:56.000000Z"); "" when it is not one. */
static void taken_at_of(const char *v, char *out, size_t len)
{
    int y, mo, d, h, mi, s, n = 0, oh, om;
    char sign;

    out[0] = '\0';
    if (v == NULL || sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6 || n != 19 || y < 1971 ||
        y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return;
    v += n;
    if (*v == '.')
        for (v++; *v >= '0' && *v <= '9'; v++)
            ;
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d", y, mo, d, h, mi, s);
    if (*v == 'Z' && v[1] == '\0')
        snprintf(out + 19, len - 19, "Z");
    else if ((sscanf(v, "%c%2d:%2d", &sign, &oh, &om) == 3 || sscanf(v, "%c%2d%2d", &sign, &oh, &om) == 3) &&
             (sign == '+' || sign == '-') && oh <= 14 && om <= 59)
        snprintf(out + 19, len - 19, "%c%02d:%02d", sign, oh, om);
}

/* Creation time and whether the file says where it was shot, from every metadata list. */
static void metadata_facts(const AVFormatContext *fmt, me_video_facts_t *f)
{
    const AVDictionary *lists[64];
    int n = 0;
    char apple[32] = "", plain[32] = "";

    lists[n++] = fmt->metadata;
    for (unsigned i = 0; i < fmt->nb_streams && n < 64; i++)
        lists[n++] = fmt->streams[i]->metadata;
    for (int i = 0; i < n; i++) {
        const AVDictionaryEntry *e = NULL;
        while ((e = av_dict_get(lists[i], "", e, AV_DICT_IGNORE_SUFFIX)) != NULL) {
            if (strstr(e->key, "location") || strstr(e->key, "ISO6709") || strstr(e->key, "xyz"))
                f->has_location = 1;
            if (!strcmp(e->key, "com.apple.quicktime.creationdate") && !apple[0])
                taken_at_of(e->value, apple, sizeof(apple));
            if (!strcmp(e->key, "creation_time") && !plain[0])
                taken_at_of(e->value, plain, sizeof(plain));
        }
    }
    set(f->taken_at, sizeof(f->taken_at), apple[0] ? apple : plain); /* Apple's has the local offset */
}

/* The longest the header says the video lasts: movie header, track headers and sample
 * tables (the last sample of each track), in seconds from the file's start. */
static double claimed_duration(const input_t *in)
{
    double d = in->fmt->duration > 0 ? (double)in->fmt->duration / AV_TIME_BASE : 0;
    AVStream *streams[] = {in->vst, in->ast};

    for (int i = 0; i < 2; i++) {
        AVStream *st = streams[i];
        int n;
        if (st == NULL)
            continue;
        double tb = av_q2d(st->time_base), start = st->start_time != AV_NOPTS_VALUE ? st->start_time * tb : 0;
        if (st->duration > 0 && st->duration * tb > d)
            d = st->duration * tb;
        if ((n = avformat_index_get_entries_count(st)) > 0) {
            const AVIndexEntry *e = avformat_index_get_entry(st, n - 1);
            double rate = av_q2d(st->avg_frame_rate), last = rate > 0 ? 1 / rate : 0; /* the last sample lasts too */
            if (e != NULL && e->timestamp * tb - start + last > d)
                d = e->timestamp * tb - start + last;
        }
    }
    return d;
}

static void close_input(input_t *in)
{
    if (in->fmt) {
        AVIOContext *pb = in->fmt->pb;
        avformat_close_input(&in->fmt); /* custom I/O: the context is ours to free */
        if (pb)
            av_freep(&pb->buffer);
        avio_context_free(&pb);
    }
}

/* Opens the file at fd with the MOV/MP4 demuxer over our reader, picks its streams, holds
 * its header to the caps and the duration limit, and fills out->facts. */
static int open_input(const me_video_params_t *vp, int fd, input_t *in, me_video_result_t *out)
{
    me_video_facts_t *f = &out->facts;
    unsigned char head[ME_SNIFF_HEAD];
    AVDictionary *opts = NULL;
    uint8_t *buf = NULL;
    AVIOContext *pb = NULL;
    struct stat st;
    const char *type;
    ssize_t n;
    int rc;

    pthread_once(&log_once, init_log);
    memset(in, 0, sizeof(*in));
    in->fd = fd;
    if (fstat(fd, &st) != 0)
        return failure(out, ME_EIO, "The video could not be read.", "fstat: %s", strerror(errno));
    in->size = st.st_size;
    if ((uint64_t)in->size > vp->caps.max_bytes)
        return failure(out, ME_ETOOLARGE, "The video is larger than this server processes.", "%lld bytes, over %llu",
                       (long long)in->size, (unsigned long long)vp->caps.max_bytes);
    n = pread(fd, head, sizeof(head), 0);
    if (n <= 0 || (type = me_sniff(head, (size_t)n)) == NULL || strncmp(type, "video/", 6) != 0)
        return failure(out, ME_EMEDIA, MSG_MEDIA, "not an MP4 or MOV");
    set(f->container, sizeof(f->container), strcmp(type, "video/quicktime") == 0 ? "mov" : "mp4");

    if ((in->fmt = avformat_alloc_context()) == NULL || (buf = av_malloc(IO_BUFFER)) == NULL ||
        (pb = avio_alloc_context(buf, IO_BUFFER, 0, in, read_fd, NULL, seek_fd)) == NULL) {
        av_free(buf);
        return failure(out, ME_ENOMEM, "Out of memory.", "out of memory");
    }
    in->fmt->pb = pb;
    in->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    in->fmt->opaque = in;
    in->fmt->io_open = refuse_open;
    /* the same again as options: belt and braces should libav* reach around io_open */
    av_dict_set(&opts, "format_whitelist", FORMATS, 0);
    av_dict_set(&opts, "protocol_whitelist", "", 0);
    av_dict_set(&opts, "codec_whitelist", VIDEO_CODECS "," AUDIO_CODECS, 0);
    av_dict_set(&opts, "enable_drefs", "0", 0);
    av_dict_set(&opts, "use_absolute_path", "0", 0);
    av_dict_set_int(&opts, "max_streams", vp->caps.max_streams + 1, 0);
    rc = avformat_open_input(&in->fmt, "", av_find_input_format("mov"), &opts);
    av_dict_free(&opts);
    if (rc < 0) { /* avformat_open_input freed the context, not our reader */
        av_freep(&pb->buffer);
        avio_context_free(&pb);
        if (in->refused)
            return failure(out, ME_EMEDIA, MSG_MEDIA, "refers to other files");
        return rc == AVERROR(ENOMEM) ? av_failure(out, rc, "header")
                                     : failure(out, ME_ECORRUPT, MSG_CORRUPT, "header: not a readable MP4/MOV");
    }

    me_video_header_t h = {
        .bytes = (uint64_t)in->size, .streams = (int)in->fmt->nb_streams, .bitrate = in->fmt->bit_rate};
    for (unsigned i = 0; i < in->fmt->nb_streams; i++) {
        AVStream *s = in->fmt->streams[i];
        enum AVMediaType kind = s->codecpar->codec_type;
        s->discard = AVDISCARD_ALL;
        if (kind == AVMEDIA_TYPE_VIDEO && !(s->disposition & AV_DISPOSITION_ATTACHED_PIC) && !in->vst)
            in->vst = s;
        else if (kind == AVMEDIA_TYPE_AUDIO && !in->ast)
            in->ast = s;
        if (s->codecpar->bit_rate > h.bitrate)
            h.bitrate = s->codecpar->bit_rate;
        if (side_data_of(s) > h.side_data)
            h.side_data = side_data_of(s);
    }
    if (in->vst == NULL)
        return failure(out, ME_EMEDIA,
                       in->ast ? "This file has sound but no picture: upload it as a video." : MSG_MEDIA,
                       in->ast ? "audio only" : "no video stream");
    const AVCodecParameters *vpar = in->vst->codecpar;
    h.width = vpar->width, h.height = vpar->height;
    h.fps = fmax(av_q2d(in->vst->avg_frame_rate), av_q2d(in->vst->r_frame_rate));
    if ((rc = me_video_caps_check(&vp->caps, &h, out->message, sizeof(out->message), out->detail,
                                  sizeof(out->detail))) != 0)
        return rc;
    if (h.width < 1 || h.height < 1)
        return failure(out, ME_ECORRUPT, MSG_CORRUPT, "no picture size");
    const char *vname = avcodec_get_name(vpar->codec_id);
    if (av_match_list(vname, VIDEO_CODECS, ',') <= 0)
        return failure(out, ME_EMEDIA, MSG_MEDIA, "video codec %s", vname);
    if (in->ast && av_match_list(avcodec_get_name(in->ast->codecpar->codec_id), AUDIO_CODECS, ',') <= 0) {
        me_log_info(NULL, "video: audio codec %s not taken; the renditions are silent",
                    avcodec_get_name(in->ast->codecpar->codec_id));
        in->ast = NULL;
    }
    in->vst->discard = AVDISCARD_DEFAULT;
    if (in->ast)
        in->ast->discard = AVDISCARD_DEFAULT;

    set(f->video_codec, sizeof(f->video_codec), vname);
    f->rotation = rotation_of(in->vst);
    f->width = f->rotation % 180 ? vpar->height : vpar->width;
    f->height = f->rotation % 180 ? vpar->width : vpar->height;
    f->fps = av_q2d(in->vst->avg_frame_rate) > 0 ? av_q2d(in->vst->avg_frame_rate) : av_q2d(in->vst->r_frame_rate);
    f->vfr =
        av_q2d(in->vst->r_frame_rate) > 0 && f->fps > 0 && fabs(av_q2d(in->vst->r_frame_rate) - f->fps) > 0.01 * f->fps;
    f->bit_depth = vpar->bits_per_raw_sample > 0 ? vpar->bits_per_raw_sample : 0;
    set(f->color_primaries, sizeof(f->color_primaries),
        vpar->color_primaries != AVCOL_PRI_UNSPECIFIED ? av_color_primaries_name(vpar->color_primaries) : "");
    set(f->color_transfer, sizeof(f->color_transfer),
        vpar->color_trc != AVCOL_TRC_UNSPECIFIED ? av_color_transfer_name(vpar->color_trc) : "");
    set(f->dynamic_range, sizeof(f->dynamic_range),
        vpar->color_trc == AVCOL_TRC_ARIB_STD_B67 ? "hlg"
        : vpar->color_trc == AVCOL_TRC_SMPTE2084  ? "pq"
                                                  : "sdr");
    if (in->ast) {
        set(f->audio_codec, sizeof(f->audio_codec), avcodec_get_name(in->ast->codecpar->codec_id));
        f->audio_channels = in->ast->codecpar->ch_layout.nb_channels;
        f->audio_rate = in->ast->codecpar->sample_rate;
    }
    metadata_facts(in->fmt, f);
    f->duration = claimed_duration(in);
    f->bitrate = h.bitrate > 0 ? h.bitrate : f->duration > 0 ? (int64_t)(in->size * 8 / f->duration) : 0;
    if (vp->max_duration > 0 && f->duration > vp->max_duration + ME_VIDEO_TOLERANCE) {
        me_video_too_long_message(vp->plan, vp->max_duration, f->duration, out->message, sizeof(out->message));
        return failure(out, ME_EVIDEO_TOO_LONG, NULL, "the header says %.3f s, over %.3f s", f->duration,
                       vp->max_duration);
    }
    return 0;
}

int me_video_probe(const me_video_params_t *vp, int fd, me_video_facts_t *facts, char *message, size_t mlen,
                   char *detail, size_t dlen)
{
    me_video_result_t *r = calloc(1, sizeof(*r));
    input_t in;
    int ret;

    if (r == NULL)
        return ME_ENOMEM;
    ret = open_input(vp, fd, &in, r);
    close_input(&in);
    *facts = r->facts;
    if (message && mlen)
        snprintf(message, mlen, "%s", r->message);
    if (detail && dlen)
        snprintf(detail, dlen, "%s", r->detail);
    free(r);
    return ret;
}

/* ---- the transcode ---- */

typedef struct {
    const me_video_rendition_t *spec;
    int width, height;
    char path[PATH_MAX];
    AVCodecContext *enc;
    AVBSFContext *bsf; /* drops the encoder's SEI (it names x264 and its settings) */
    AVFormatContext *mux;
    AVStream *vst, *ast;
    AVFilterContext *sink;
    double end; /* seconds: the end of its last packet */
} rendition_t;

typedef struct {
    const me_video_params_t *vp;
    me_video_result_t *out;
    input_t in;
    me_video_progress_fn progress;
    void *progress_ctx;
    AVCodecContext *vdec, *adec, *aenc;
    AVFilterGraph *vgraph, *agraph;
    AVFilterContext *vsrc, *psink, *asrc, *asink;
    int n;
    rendition_t r[ME_VIDEO_RENDITIONS_MAX];
    AVPacket *pkt, *opkt;
    AVFrame *frame, *aframe, *filtered; /* the picture's and the sound's decoded frames: the held sound
                                         * is decoded while a picture is in hand */
    AVPacket **queue;                   /* audio held until the outputs have started */
    int nqueue;
    int started; /* the first picture came: graph, encoders and outputs are set up */
    int frame_width, frame_height, frame_format;
    int64_t vorigin, aorigin; /* the file's start in each stream's time base */
    int64_t prev_pts, min_delta, max_delta, frames;
    int64_t apts;      /* the next audio frame's pts at 48 kHz, when the decoder gives none */
    double vend, aend; /* seconds decoded, each track */
    double next_progress;
    int vpackets; /* video packets read: a truncated file has fewer than its index */
} run_t;

static int open_decoder(run_t *t, AVStream *st, AVCodecContext **out)
{
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    AVCodecContext *c;
    int rc;

    if (codec == NULL)
        return failure(t->out, ME_EMEDIA, MSG_MEDIA, "no decoder for %s", avcodec_get_name(st->codecpar->codec_id));
    if ((*out = c = avcodec_alloc_context3(codec)) == NULL)
        return failure(t->out, ME_ENOMEM, "Out of memory.", "out of memory");
    if ((rc = avcodec_parameters_to_context(c, st->codecpar)) < 0)
        return av_failure(t->out, rc, "decoder");
    c->pkt_timebase = st->time_base;
    c->thread_count = t->vp->threads;
    c->max_pixels = (int64_t)t->vp->caps.max_width * t->vp->caps.max_height;
    if ((rc = avcodec_open2(c, codec, NULL)) < 0)
        return av_failure(t->out, rc, "decoder");
    return 0;
}

/* A chain of filters from our source to named sinks, parsed from desc. */
static int parse_graph(AVFilterGraph *g, const char *desc, AVFilterContext *src, AVFilterContext **sinks,
                       const char *const *names, int nsinks)
{
    AVFilterInOut *outputs = avfilter_inout_alloc(), *inputs = NULL;
    int rc = AVERROR(ENOMEM);

    if (outputs == NULL || (outputs->name = av_strdup("in")) == NULL)
        goto exit;
    outputs->filter_ctx = src;
    for (int i = nsinks - 1; i >= 0; i--) {
        AVFilterInOut *io = avfilter_inout_alloc();
        if (io == NULL)
            goto exit;
        io->next = inputs, inputs = io;
        if ((io->name = av_strdup(names[i])) == NULL)
            goto exit;
        io->filter_ctx = sinks[i];
    }
    if ((rc = avfilter_graph_parse_ptr(g, desc, &inputs, &outputs, NULL)) >= 0)
        rc = avfilter_graph_config(g, NULL);
exit:
    avfilter_inout_free(&inputs);
    avfilter_inout_free(&outputs);
    return rc;
}

/* swscale's name of a frame's YUV matrix; an untagged one is BT.709 from 720 lines up,
 * BT.601 below (what players assume, and what encoders wrote). */
static const char *matrix_of(const AVFrame *frame)
{
    switch (frame->colorspace) {
    case AVCOL_SPC_UNSPECIFIED: return frame->width >= 1280 || frame->height >= 720 ? "bt709" : "bt601";
    case AVCOL_SPC_BT709: return "bt709";
    case AVCOL_SPC_BT470BG:
    case AVCOL_SPC_SMPTE170M: return "bt601";
    case AVCOL_SPC_SMPTE240M: return "smpte240m";
    case AVCOL_SPC_FCC: return "fcc";
    case AVCOL_SPC_BT2020_NCL:
    case AVCOL_SPC_BT2020_CL: return "bt2020";
    default: return "auto";
    }
}

/* The picture's graph, from the first decoded frame: frame rate cap, one scale to the
 * largest rendition, tone mapping, rotation, then a split into each rendition's size and the
 * poster's pick. Sizes before rotation are the displayed ones swapped. */
static int build_video_graph(run_t *t, const AVFrame *frame)
{
    const me_video_params_t *vp = t->vp;
    const me_video_facts_t *f = &t->out->facts;
    const AVStream *st = t->in.vst;
    char args[512], desc[4096], names[ME_VIDEO_RENDITIONS_MAX + 1][8];
    const char *labels[ME_VIDEO_RENDITIONS_MAX + 1];
    AVFilterContext *sinks[ME_VIDEO_RENDITIONS_MAX + 1];
    AVRational sar = frame->sample_aspect_ratio.num > 0 ? frame->sample_aspect_ratio : (AVRational){1, 1};
    int largest = 0, pw, ph,
        hdr = frame->color_trc == AVCOL_TRC_ARIB_STD_B67 || frame->color_trc == AVCOL_TRC_SMPTE2084;
    int sw = (int)lround(frame->width * av_q2d(sar)), sh = frame->height; /* square pixels */
    int dw = f->rotation % 180 ? sh : sw, dh = f->rotation % 180 ? sw : sh;
    size_t len = 0;
    int rc;

    if ((t->vgraph = avfilter_graph_alloc()) == NULL)
        return AVERROR(ENOMEM);
    t->vgraph->nb_threads = vp->threads;
    snprintf(args, sizeof(args), "video_size=%dx%d:pix_fmt=%d:time_base=%d/%d:pixel_aspect=%d/%d", frame->width,
             frame->height, frame->format, st->time_base.num, st->time_base.den, sar.num, sar.den);
    if ((rc = avfilter_graph_create_filter(&t->vsrc, avfilter_get_by_name("buffer"), "in", args, NULL, t->vgraph)) < 0)
        return rc;
    for (int i = 0; i < t->n; i++) {
        me_video_rendition_size(dw, dh, vp->renditions[i].size, &t->r[i].width, &t->r[i].height);
        if (t->r[i].width * t->r[i].height > t->r[largest].width * t->r[largest].height)
            largest = i;
    }
    pw = t->r[largest].width, ph = t->r[largest].height;

#define ADD(...) (len += (size_t)snprintf(desc + len, len < sizeof(desc) ? sizeof(desc) - len : 0, __VA_ARGS__))
    ADD("[in]");
    if (f->fps > vp->max_fps * 1.01)
        ADD("fps=%g,", vp->max_fps);
    ADD("scale=%d:%d:flags=bicubic", f->rotation % 180 ? ph : pw, f->rotation % 180 ? pw : ph);
    if (hdr)
        ADD("," TONEMAP);
    else /* named, not "auto": converting between two equal matrices is then free, where auto
          * took swscale's slow path (a third of the CPU of a 1080p job) */
        ADD(":in_color_matrix=%s:in_range=%s:out_color_matrix=bt709:out_range=tv,format=yuv420p", matrix_of(frame),
            frame->color_range == AVCOL_RANGE_JPEG ? "pc" : "tv");
    ADD(f->rotation == 90    ? ",transpose=clock"
        : f->rotation == 180 ? ",hflip,vflip"
        : f->rotation == 270 ? ",transpose=cclock"
                             : "");
    ADD(",setsar=1,split=%d", t->n + 1);
    for (int i = 0; i <= t->n; i++)
        ADD("[s%d]", i);
    for (int i = 0; i < t->n; i++) {
        if (t->r[i].width == pw && t->r[i].height == ph)
            ADD(";[s%d]null[o%d]", i, i);
        else
            ADD(";[s%d]scale=%d:%d:flags=bicubic[o%d]", i, t->r[i].width, t->r[i].height, i);
    }
    /* the poster: the first frame, and the first at or after poster_at; only those two are
     * converted to RGB */
    ADD(";[s%d]select='eq(n\\,0)+gte(t\\,%g)*lt(selected_n\\,2)',scale=in_color_matrix=bt709:in_range=tv,"
        "format=rgb24[o%d]",
        t->n, vp->poster_at, t->n);
#undef ADD
    if (len >= sizeof(desc))
        return AVERROR(EINVAL);
    for (int i = 0; i <= t->n; i++) {
        snprintf(names[i], sizeof(names[i]), "o%d", i);
        labels[i] = names[i];
        if ((rc = avfilter_graph_create_filter(&sinks[i], avfilter_get_by_name("buffersink"), names[i], NULL, NULL,
                                               t->vgraph)) < 0)
            return rc;
        if (i < t->n)
            t->r[i].sink = sinks[i];
    }
    t->psink = sinks[t->n];
    me_log_debug(NULL, "video: filter graph %s", desc);
    return parse_graph(t->vgraph, desc, t->vsrc, sinks, labels, t->n + 1);
}

/* The sound's graph, from the first decoded audio frame: 48 kHz stereo float planar, in
 * frames of the AAC encoder's size. */
static int build_audio_graph(run_t *t, const AVFrame *frame)
{
    char args[512], layout[128] = "";
    const char *name = "out";
    AVChannelLayout cl = {0};
    int rc;

    if ((t->agraph = avfilter_graph_alloc()) == NULL)
        return AVERROR(ENOMEM);
    t->agraph->nb_threads = 1;
    if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || av_channel_layout_check(&frame->ch_layout) == 0)
        av_channel_layout_default(&cl, frame->ch_layout.nb_channels > 0 ? frame->ch_layout.nb_channels : 2);
    else if ((rc = av_channel_layout_copy(&cl, &frame->ch_layout)) < 0)
        return rc;
    av_channel_layout_describe(&cl, layout, sizeof(layout));
    av_channel_layout_uninit(&cl);
    snprintf(args, sizeof(args), "time_base=%d/%d:sample_rate=%d:sample_fmt=%s:channel_layout=%s",
             t->in.ast->time_base.num, t->in.ast->time_base.den, frame->sample_rate,
             av_get_sample_fmt_name(frame->format), layout);
    if ((rc = avfilter_graph_create_filter(&t->asrc, avfilter_get_by_name("abuffer"), "in", args, NULL, t->agraph)) <
            0 ||
        (rc = avfilter_graph_create_filter(&t->asink, avfilter_get_by_name("abuffersink"), "out", NULL, NULL,
                                           t->agraph)) < 0)
        return rc;
    rc = parse_graph(t->agraph,
                     "[in]aresample=48000,aformat=sample_fmts=fltp:sample_rates=48000:channel_layouts=stereo[out]",
                     t->asrc, &t->asink, &name, 1);
    if (rc >= 0)
        av_buffersink_set_frame_size(t->asink, t->aenc->frame_size);
    return rc;
}

static int open_audio_encoder(run_t *t)
{
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_AAC);
    AVCodecContext *c;

    if (codec == NULL || (t->aenc = c = avcodec_alloc_context3(codec)) == NULL)
        return AVERROR(ENOMEM);
    c->sample_fmt = AV_SAMPLE_FMT_FLTP;
    c->sample_rate = 48000;
    av_channel_layout_default(&c->ch_layout, 2);
    c->bit_rate = (int64_t)t->vp->audio_kbps * 1000;
    c->profile = FF_PROFILE_AAC_LOW;
    c->time_base = (AVRational){1, 48000};
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER | AV_CODEC_FLAG_BITEXACT; /* bitexact: no "Lavc" version in the stream */
    return avcodec_open2(c, codec, NULL);
}

static int open_video_encoder(run_t *t, rendition_t *r)
{
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    AVRational rate = av_buffersink_get_frame_rate(r->sink);
    AVDictionary *opts = NULL;
    AVCodecContext *c;
    char crf[16];
    int rc;

    if (codec == NULL)
        return AVERROR_ENCODER_NOT_FOUND;
    if ((r->enc = c = avcodec_alloc_context3(codec)) == NULL)
        return AVERROR(ENOMEM);
    if (rate.num <= 0 || rate.den <= 0)
        rate = av_d2q(t->out->facts.fps > 0 ? fmin(t->out->facts.fps, t->vp->max_fps) : 30, 1001000);
    c->width = r->width, c->height = r->height;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->sample_aspect_ratio = (AVRational){1, 1};
    c->time_base = av_buffersink_get_time_base(r->sink);
    c->framerate = rate;
    c->gop_size = (int)fmax(1, lround(GOP_SECONDS * av_q2d(rate)));
    c->rc_max_rate = (int64_t)r->spec->max_kbps * 1000;
    c->rc_buffer_size = (int)(2 * c->rc_max_rate);
    c->color_primaries = AVCOL_PRI_BT709, c->color_trc = AVCOL_TRC_BT709, c->colorspace = AVCOL_SPC_BT709;
    c->color_range = AVCOL_RANGE_MPEG;
    c->thread_count = t->vp->threads;
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    snprintf(crf, sizeof(crf), "%d", t->vp->crf);
    av_dict_set(&opts, "preset", t->vp->preset, 0);
    av_dict_set(&opts, "profile", "high", 0);
    av_dict_set(&opts, "crf", crf, 0);
    rc = avcodec_open2(c, codec, &opts);
    av_dict_free(&opts);
    if (rc < 0)
        return rc;
    const AVBitStreamFilter *f = av_bsf_get_by_name("filter_units");
    if (f == NULL || (rc = av_bsf_alloc(f, &r->bsf)) < 0)
        return f ? rc : AVERROR_BSF_NOT_FOUND;
    if ((rc = avcodec_parameters_from_context(r->bsf->par_in, c)) < 0 ||
        (rc = av_opt_set(r->bsf->priv_data, "remove_types", "6", 0)) < 0)
        return rc;
    r->bsf->time_base_in = c->time_base;
    return av_bsf_init(r->bsf);
}

/* The rendition's MP4: streams from the encoders, moov first, nothing about the source or
 * the software (bitexact: no encoder tag), written to its path only. */
static int open_output(run_t *t, rendition_t *r)
{
    AVDictionary *opts = NULL;
    int rc;

    if ((rc = avformat_alloc_output_context2(&r->mux, NULL, "mp4", r->path)) < 0)
        return rc;
    r->mux->flags |= AVFMT_FLAG_BITEXACT;
    /* faststart reopens the file to move the moov atom: only as a file */
    if ((r->mux->protocol_whitelist = av_strdup("file")) == NULL ||
        (r->vst = avformat_new_stream(r->mux, NULL)) == NULL)
        return AVERROR(ENOMEM);
    if ((rc = avcodec_parameters_copy(r->vst->codecpar, r->bsf->par_out)) < 0)
        return rc;
    r->vst->time_base = r->enc->time_base;
    if (t->aenc) {
        if ((r->ast = avformat_new_stream(r->mux, NULL)) == NULL)
            return AVERROR(ENOMEM);
        if ((rc = avcodec_parameters_from_context(r->ast->codecpar, t->aenc)) < 0)
            return rc;
        r->ast->time_base = t->aenc->time_base;
    }
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    rc = avio_open2(&r->mux->pb, r->path, AVIO_FLAG_WRITE, NULL, &opts);
    av_dict_free(&opts);
    if (rc < 0)
        return rc;
    av_dict_set(&opts, "movflags", "+faststart", 0);
    rc = avformat_write_header(r->mux, &opts);
    av_dict_free(&opts);
    return rc;
}

/* Writes pkt (in tb; consumed) to r's stream st. */
static int write_packet(rendition_t *r, AVStream *st, AVPacket *pkt, AVRational tb)
{
    double end = (double)(pkt->pts + pkt->duration) * av_q2d(tb);
    if (pkt->pts != AV_NOPTS_VALUE && end > r->end)
        r->end = end;
    av_packet_rescale_ts(pkt, tb, st->time_base);
    pkt->stream_index = st->index;
    return av_interleaved_write_frame(r->mux, pkt);
}

/* Sends frame (NULL: the end) to r's encoder and writes what comes out. */
static int encode_video(run_t *t, rendition_t *r, AVFrame *frame)
{
    int rc = avcodec_send_frame(r->enc, frame);

    if (rc < 0 && rc != AVERROR_EOF)
        return encoder_failure(t->out, rc);

    while (rc >= 0) {
        if ((rc = avcodec_receive_packet(r->enc, t->opkt)) < 0) {
            if (rc != AVERROR(EAGAIN) && rc != AVERROR_EOF)
                return encoder_failure(t->out, rc);
            break;
        }
        if (t->opkt->duration <= 0) /* the last picture lasts as long as the others */
            t->opkt->duration = av_rescale_q(1, av_inv_q(r->enc->framerate), r->enc->time_base);
        if ((rc = av_bsf_send_packet(r->bsf, t->opkt)) < 0)
            return rc;
        while ((rc = av_bsf_receive_packet(r->bsf, t->opkt)) >= 0)
            if ((rc = write_packet(r, r->vst, t->opkt, r->bsf->time_base_out)) < 0)
                return rc;
        if (rc != AVERROR(EAGAIN))
            return rc;
        rc = 0;
    }
    if (rc == AVERROR_EOF && frame == NULL) { /* the end: what the bsf still holds */
        if ((rc = av_bsf_send_packet(r->bsf, NULL)) < 0)
            return rc;
        while ((rc = av_bsf_receive_packet(r->bsf, t->opkt)) >= 0)
            if ((rc = write_packet(r, r->vst, t->opkt, r->bsf->time_base_out)) < 0)
                return rc;
    }
    return rc == AVERROR(EAGAIN) || rc == AVERROR_EOF ? 0 : rc;
}

/* Sends frame (NULL: the end) to the AAC encoder; every packet goes to every rendition. */
static int encode_audio(run_t *t, AVFrame *frame)
{
    int rc = avcodec_send_frame(t->aenc, frame);

    if (rc < 0 && rc != AVERROR_EOF)
        return encoder_failure(t->out, rc);

    while (rc >= 0) {
        if ((rc = avcodec_receive_packet(t->aenc, t->opkt)) < 0)
            break;
        for (int i = 0; i < t->n && rc >= 0; i++) {
            AVPacket *copy = i + 1 < t->n ? av_packet_clone(t->opkt) : NULL;
            if (i + 1 < t->n && copy == NULL)
                rc = AVERROR(ENOMEM);
            else
                rc = write_packet(&t->r[i], t->r[i].ast, copy ? copy : t->opkt, t->aenc->time_base);
            av_packet_free(&copy);
        }
    }
    return rc == AVERROR(EAGAIN) || rc == AVERROR_EOF ? 0 : rc;
}

/* Keeps the poster frame (RGB) from the graph's poster branch: the last one it gives. */
static int take_poster(run_t *t, const AVFrame *frame)
{
    me_video_result_t *out = t->out;
    size_t row = (size_t)frame->width * 3;
    uint8_t *px = malloc(row * (size_t)frame->height);

    if (px == NULL)
        return AVERROR(ENOMEM);
    for (int y = 0; y < frame->height; y++)
        memcpy(px + row * (size_t)y, frame->data[0] + (ptrdiff_t)y * frame->linesize[0], row);
    free(out->poster);
    out->poster = px;
    out->poster_width = frame->width, out->poster_height = frame->height;
    out->poster_time = frame->pts * av_q2d(av_buffersink_get_time_base(t->psink));
    return 0;
}

/* Takes what the picture's graph has ready (flush: the graph's end) to the encoders and
 * the poster. */
static int pull_video(run_t *t, int flush)
{
    int rc;
    for (int i = 0; i < t->n; i++) {
        while ((rc = av_buffersink_get_frame(t->r[i].sink, t->filtered)) >= 0) {
            t->filtered->pict_type = AV_PICTURE_TYPE_NONE;
            rc = encode_video(t, &t->r[i], t->filtered);
            av_frame_unref(t->filtered);
            if (rc < 0)
                return rc;
        }
        if (rc != AVERROR(EAGAIN) && rc != AVERROR_EOF)
            return rc;
        if (flush && (rc = encode_video(t, &t->r[i], NULL)) < 0)
            return rc;
    }
    while ((rc = av_buffersink_get_frame(t->psink, t->filtered)) >= 0) {
        rc = take_poster(t, t->filtered);
        av_frame_unref(t->filtered);
        if (rc < 0)
            return rc;
    }
    return rc == AVERROR(EAGAIN) || rc == AVERROR_EOF ? 0 : rc;
}

static int pull_audio(run_t *t, int flush)
{
    int rc;
    while ((rc = av_buffersink_get_frame(t->asink, t->filtered)) >= 0) {
        t->filtered->pts = av_rescale_q(t->filtered->pts, av_buffersink_get_time_base(t->asink), t->aenc->time_base);
        rc = encode_audio(t, t->filtered);
        av_frame_unref(t->filtered);
        if (rc < 0)
            return rc;
    }
    if (rc != AVERROR(EAGAIN) && rc != AVERROR_EOF)
        return rc;
    return flush ? encode_audio(t, NULL) : 0;
}

/* A decoded time past the plan's limit: the video is too long. Its real length is what the
 * rest of the file holds (read, not decoded), for the message. */
static int too_long(run_t *t, double at)
{
    me_video_result_t *out = t->out;
    double end = at;

    while (av_read_frame(t->in.fmt, t->pkt) >= 0) {
        AVStream *st = t->in.fmt->streams[t->pkt->stream_index];
        int64_t origin = st == t->in.vst ? t->vorigin : t->aorigin;
        if (t->pkt->pts != AV_NOPTS_VALUE)
            end = fmax(end, (t->pkt->pts - origin + t->pkt->duration) * av_q2d(st->time_base));
        av_packet_unref(t->pkt);
    }
    out->facts.duration = end;
    me_video_too_long_message(t->vp->plan, t->vp->max_duration, end, out->message, sizeof(out->message));
    return failure(out, ME_EVIDEO_TOO_LONG, NULL, "decoded past %.3f s (the header said %.3f s)", t->vp->max_duration,
                   claimed_duration(&t->in));
}

/* Seconds from the file's start of a decoded frame (its pts moved to that origin). */
static double frame_time(AVFrame *frame, int64_t origin, AVRational tb)
{
    int64_t ts = frame->best_effort_timestamp != AV_NOPTS_VALUE ? frame->best_effort_timestamp : frame->pts;
    if (ts == AV_NOPTS_VALUE)
        return NAN;
    frame->pts = ts - origin;
    return frame->pts * av_q2d(tb);
}

static int decode_audio(run_t *t, AVPacket *pkt);

/* The first picture: the graph, the encoders, the outputs; then the sound held meanwhile. */
static int start(run_t *t, const AVFrame *frame)
{
    me_video_facts_t *f = &t->out->facts;
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(frame->format);
    int rc;

    if (d)
        f->bit_depth = d->comp[0].depth;
    if (frame->color_primaries != AVCOL_PRI_UNSPECIFIED)
        set(f->color_primaries, sizeof(f->color_primaries), av_color_primaries_name(frame->color_primaries));
    if (frame->color_trc != AVCOL_TRC_UNSPECIFIED)
        set(f->color_transfer, sizeof(f->color_transfer), av_color_transfer_name(frame->color_trc));
    set(f->dynamic_range, sizeof(f->dynamic_range),
        frame->color_trc == AVCOL_TRC_ARIB_STD_B67 ? "hlg"
        : frame->color_trc == AVCOL_TRC_SMPTE2084  ? "pq"
                                                   : "sdr");
    t->frame_width = frame->width, t->frame_height = frame->height, t->frame_format = frame->format;
    if ((rc = build_video_graph(t, frame)) < 0)
        return rc;
    if (t->in.ast && (rc = open_audio_encoder(t)) < 0)
        return encoder_failure(t->out, rc);
    for (int i = 0; i < t->n; i++) {
        if ((rc = open_video_encoder(t, &t->r[i])) < 0)
            return encoder_failure(t->out, rc);
        if ((rc = open_output(t, &t->r[i])) < 0)
            return rc;
    }
    t->started = 1;
    for (int i = 0; i < t->nqueue; i++) {
        rc = rc < 0 ? rc : decode_audio(t, t->queue[i]);
        av_packet_free(&t->queue[i]);
    }
    t->nqueue = 0;
    return rc;
}

/* One decoded picture: held to the caps and the limit, counted, filtered, encoded. */
static int on_picture(run_t *t, AVFrame *frame)
{
    double at = frame_time(frame, t->vorigin, t->in.vst->time_base);
    int rc;

    if (isnan(at))
        return failure(t->out, ME_ECORRUPT, MSG_CORRUPT, "a picture without a timestamp");
    if (t->vp->max_duration > 0 && at > t->vp->max_duration + ME_VIDEO_TOLERANCE)
        return too_long(t, at);
    if (!t->started && (rc = start(t, frame)) < 0)
        return rc;
    if (frame->width != t->frame_width || frame->height != t->frame_height || frame->format != t->frame_format)
        return failure(t->out, ME_ECORRUPT, MSG_CORRUPT, "the picture changes size or format midway");
    if (t->frames++ > 0) {
        int64_t delta = frame->pts - t->prev_pts;
        if (delta > 0 && (t->min_delta == 0 || delta < t->min_delta))
            t->min_delta = delta;
        if (delta > t->max_delta)
            t->max_delta = delta;
    }
    t->prev_pts = frame->pts;
    t->vend = fmax(t->vend, at + (frame->pkt_duration > 0 ? frame->pkt_duration * av_q2d(t->in.vst->time_base) : 0));
    if (t->progress && at >= t->next_progress) {
        t->next_progress = floor(at) + 1;
        if (t->progress(t->progress_ctx, at, t->out->facts.duration) != 0)
            return failure(t->out, ME_EDRAINING, "Processing was stopped.", "stopped at %.1f s", at);
    }
    if ((rc = av_buffersrc_add_frame_flags(t->vsrc, frame, AV_BUFFERSRC_FLAG_KEEP_REF)) < 0)
        return rc;
    return pull_video(t, 0);
}

static int on_sound(run_t *t, AVFrame *frame)
{
    double at = frame_time(frame, t->aorigin, t->in.ast->time_base);
    int rc;

    if (isnan(at)) { /* follow on from the last frame */
        frame->pts = t->apts;
        at = t->apts * av_q2d(t->in.ast->time_base);
    }
    if (t->vp->max_duration > 0 && at > t->vp->max_duration + ME_VIDEO_TOLERANCE)
        return too_long(t, at);
    t->apts = frame->pts + av_rescale_q(frame->nb_samples, (AVRational){1, frame->sample_rate}, t->in.ast->time_base);
    t->aend = fmax(t->aend, at + (double)frame->nb_samples / frame->sample_rate);
    if (t->agraph == NULL && (rc = build_audio_graph(t, frame)) < 0)
        return rc;
    if ((rc = av_buffersrc_add_frame_flags(t->asrc, frame, AV_BUFFERSRC_FLAG_KEEP_REF)) < 0)
        return rc;
    return pull_audio(t, 0);
}

/* Decodes pkt (NULL: the end) and handles every frame that comes out. */
static int decode(run_t *t, AVCodecContext *dec, AVPacket *pkt, AVFrame *frame, int (*on_frame)(run_t *, AVFrame *))
{
    int rc = avcodec_send_packet(dec, pkt);

    if (rc < 0 && rc != AVERROR_EOF)
        return rc;
    for (;;) {
        if ((rc = avcodec_receive_frame(dec, frame)) < 0)
            return rc == AVERROR(EAGAIN) || rc == AVERROR_EOF ? 0 : rc;
        rc = on_frame(t, frame);
        av_frame_unref(frame);
        if (rc != 0)
            return rc;
    }
}

static int decode_audio(run_t *t, AVPacket *pkt)
{
    return decode(t, t->adec, pkt, t->aframe, on_sound);
}

/* Our error for a libav* error code (our own codes pass through). */
static int result_of(run_t *t, int rc, const char *stage)
{
    if (rc >= 0)
        return 0;
    if (rc >= ME_EVIDEO_TOO_LONG && rc <= ME_EINVAL && t->out->detail[0]) /* one of ours, set by failure() */
        return rc;
    return av_failure(t->out, rc, stage);
}

/* Reads every packet, decoding the picture and holding or decoding the sound. */
static int run(run_t *t)
{
    int rc;

    while ((rc = av_read_frame(t->in.fmt, t->pkt)) >= 0) {
        if (t->pkt->flags & AV_PKT_FLAG_CORRUPT) {
            av_packet_unref(t->pkt);
            return failure(t->out, ME_ECORRUPT, MSG_CORRUPT, "a damaged packet");
        }
        if (t->pkt->stream_index == t->in.vst->index) {
            t->vpackets++;
            rc = decode(t, t->vdec, t->pkt, t->frame, on_picture);
        } else if (t->in.ast && t->pkt->stream_index == t->in.ast->index) {
            if (t->started)
                rc = decode_audio(t, t->pkt);
            else if (t->nqueue == QUEUE_MAX)
                rc = failure(t->out, ME_ECORRUPT, MSG_CORRUPT, "no picture in the first %d sound packets", QUEUE_MAX);
            else if ((t->queue[t->nqueue] = av_packet_clone(t->pkt)) == NULL)
                rc = AVERROR(ENOMEM);
            else
                t->nqueue++;
        }
        av_packet_unref(t->pkt);
        if (rc != 0)
            return result_of(t, rc, "decode");
    }
    if (rc != AVERROR_EOF)
        return result_of(t, rc, "read");
    if (t->vpackets < avformat_index_get_entries_count(t->in.vst))
        return failure(t->out, ME_ECORRUPT, MSG_CORRUPT, "cut short: %d of %d pictures", t->vpackets,
                       avformat_index_get_entries_count(t->in.vst));
    if ((rc = decode(t, t->vdec, NULL, t->frame, on_picture)) != 0)
        return result_of(t, rc, "decode");
    if (!t->started)
        return failure(t->out, ME_ECORRUPT, MSG_CORRUPT, "no picture could be decoded");
    if (t->adec && (rc = decode_audio(t, NULL)) != 0)
        return result_of(t, rc, "decode");
    if ((rc = av_buffersrc_add_frame(t->vsrc, NULL)) < 0 || (rc = pull_video(t, 1)) < 0)
        return result_of(t, rc, "encode");
    if (t->aenc && t->asrc && ((rc = av_buffersrc_add_frame(t->asrc, NULL)) < 0 || (rc = pull_audio(t, 1)) < 0))
        return result_of(t, rc, "encode");
    for (int i = 0; i < t->n; i++)
        if ((rc = av_write_trailer(t->r[i].mux)) < 0 || (rc = avio_closep(&t->r[i].mux->pb)) < 0)
            return result_of(t, rc, "write");
    return 0;
}

/* The facts as decoded, and each output's. */
static int finish(run_t *t)
{
    me_video_facts_t *f = &t->out->facts;
    struct stat st;

    f->duration = fmax(t->vend, t->aend);
    if (t->frames > 1 && t->vend > 0)
        f->fps = t->frames / t->vend;
    f->vfr = t->max_delta > 0 && t->min_delta > 0 && t->max_delta - t->min_delta > t->min_delta / 10;
    for (int i = 0; i < t->n; i++) {
        me_video_output_t *o = &t->out->outputs[i];
        if (stat(t->r[i].path, &st) != 0)
            return failure(t->out, ME_EIO, "The video could not be processed this time.", "%s: %s", t->r[i].path,
                           strerror(errno));
        set(o->name, sizeof(o->name), t->r[i].spec->name);
        o->width = t->r[i].width, o->height = t->r[i].height;
        o->duration = t->r[i].end;
        o->bytes = (uint64_t)st.st_size;
        o->has_audio = t->aenc != NULL;
        t->out->noutputs = i + 1;
    }
    return 0;
}

static void cleanup(run_t *t, int failed)
{
    for (int i = 0; i < t->n; i++) {
        rendition_t *r = &t->r[i];
        if (r->mux) {
            if (r->mux->pb)
                avio_closep(&r->mux->pb);
            avformat_free_context(r->mux);
        }
        if (failed && r->path[0])
            unlink(r->path);
        av_bsf_free(&r->bsf);
        avcodec_free_context(&r->enc);
    }
    for (int i = 0; i < t->nqueue; i++)
        av_packet_free(&t->queue[i]);
    free(t->queue);
    avfilter_graph_free(&t->vgraph);
    avfilter_graph_free(&t->agraph);
    avcodec_free_context(&t->vdec);
    avcodec_free_context(&t->adec);
    avcodec_free_context(&t->aenc);
    av_packet_free(&t->pkt);
    av_packet_free(&t->opkt);
    av_frame_free(&t->frame);
    av_frame_free(&t->aframe);
    av_frame_free(&t->filtered);
    close_input(&t->in);
}

int me_video_transcode(const me_video_params_t *vp, int fd, const char *outdir, me_video_progress_fn progress,
                       void *ctx, me_video_result_t *out)
{
    run_t t = {.vp = vp, .out = out, .progress = progress, .progress_ctx = ctx, .n = vp->nrenditions};
    int ret;

    memset(out, 0, sizeof(*out));
    if (t.n < 1 || t.n > ME_VIDEO_RENDITIONS_MAX) {
        ret = failure(out, ME_EINTERNAL, "The video could not be processed this time.", "%d renditions", t.n);
        goto exit;
    }
    for (int i = 0; i < t.n; i++) {
        t.r[i].spec = &vp->renditions[i];
        if ((size_t)snprintf(t.r[i].path, sizeof(t.r[i].path), "%s/%s.mp4", outdir, vp->renditions[i].name) >=
            sizeof(t.r[i].path)) {
            ret = failure(out, ME_EIO, "The video could not be processed this time.", "output path too long");
            goto exit;
        }
    }
    if ((ret = open_input(vp, fd, &t.in, out)) != 0)
        goto exit;
    if ((t.pkt = av_packet_alloc()) == NULL || (t.opkt = av_packet_alloc()) == NULL ||
        (t.frame = av_frame_alloc()) == NULL || (t.aframe = av_frame_alloc()) == NULL ||
        (t.filtered = av_frame_alloc()) == NULL || (t.queue = calloc(QUEUE_MAX, sizeof(*t.queue))) == NULL) {
        ret = failure(out, ME_ENOMEM, "Out of memory.", "out of memory");
        goto exit;
    }
    /* timestamps count from the file's start: the renditions begin at 0, in step */
    int64_t origin = t.in.fmt->start_time != AV_NOPTS_VALUE ? t.in.fmt->start_time : 0;
    t.vorigin = av_rescale_q(origin, AV_TIME_BASE_Q, t.in.vst->time_base);
    if (t.in.ast)
        t.aorigin = av_rescale_q(origin, AV_TIME_BASE_Q, t.in.ast->time_base);
    if ((ret = open_decoder(&t, t.in.vst, &t.vdec)) != 0 ||
        (t.in.ast && (ret = open_decoder(&t, t.in.ast, &t.adec)) != 0))
        goto exit;
    if ((ret = run(&t)) != 0)
        goto exit;
    ret = finish(&t);
exit:
    if (ret != 0 && t.in.refused) { /* a track whose data is in another file */
        out->message[0] = '\0';
        ret = failure(out, ME_EMEDIA, MSG_MEDIA, "refers to other files");
    }
    cleanup(&t, ret != 0);
    if (ret != 0) {
        free(out->poster);
        out->poster = NULL;
        out->noutputs = 0;
        if (!out->message[0])
            set(out->message, sizeof(out->message), "The video could not be processed this time.");
    }
    return ret;
}
