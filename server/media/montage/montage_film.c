/* montage_film.c: a montage's film: clips from renditions and photos, one encoder, one MP4. */
#include "server/media/montage/montage_film.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libavcodec/avcodec.h>
#include <libavcodec/bsf.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
#include "server/media/video/video.h"

#define IO_BUFFER (256 * 1024) /* bytes the demuxer reads from a source at a time */
#define FORMATS "mov,mp4,m4a,3gp,3g2,mj2"
#define GOP 60
#define AUDIO_FRAME 1024

/* ---- the input: ranges from the source, the demuxer, the decoders ---- */

typedef struct {
    const me_montage_source_t *src;
    int input;
    int64_t pos, size;
    AVIOContext *avio;
    AVFormatContext *fmt;
    int vidx, aidx;
    AVCodecContext *vdec, *adec;
    double origin; /* the file's start, seconds */
} input_t;

static int io_read(void *opaque, uint8_t *buf, int size)
{
    input_t *in = opaque;
    size_t got = 0;
    if (in->pos >= in->size)
        return AVERROR_EOF;
    if (in->src->read(in->src->ctx, in->input, (uint64_t)in->pos, buf, (size_t)size, &got) != 0)
        return AVERROR(EIO);
    if (got == 0)
        return AVERROR_EOF;
    in->pos += (int64_t)got;
    return (int)got;
}

static int64_t io_seek(void *opaque, int64_t offset, int whence)
{
    input_t *in = opaque;
    return me_video_avio_seek(&in->pos, in->size, offset, whence);
}

/* A rendition asking to open anything else (a data reference) is refused. */
static int refuse_open(AVFormatContext *s, AVIOContext **pb, const char *url, int flags, AVDictionary **options)
{
    (void)s, (void)pb, (void)url, (void)flags, (void)options;
    return AVERROR(EPERM);
}

static void close_input(input_t *in)
{
    avcodec_free_context(&in->vdec);
    avcodec_free_context(&in->adec);
    avformat_close_input(&in->fmt);
    if (in->avio != NULL)
        av_freep(&in->avio->buffer);
    avio_context_free(&in->avio);
}

static int open_decoder(AVStream *st, AVCodecContext **out)
{
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    int rc;
    if (codec == NULL)
        return AVERROR_DECODER_NOT_FOUND;
    if ((*out = avcodec_alloc_context3(codec)) == NULL)
        return AVERROR(ENOMEM);
    if ((rc = avcodec_parameters_to_context(*out, st->codecpar)) < 0)
        return rc;
    (*out)->thread_count = 1; /* a second or a few: threads would only add their start-up */
    (*out)->pkt_timebase = st->time_base;
    return avcodec_open2(*out, codec, NULL);
}

/* Opens input number input (size bytes) of src as an MP4 with decoders for its first video
 * and (want_audio) audio streams. 0 or an AVERROR. */
static int open_input(input_t *in, const me_montage_source_t *src, int input, uint64_t size, int want_video,
                      int want_audio)
{
    AVDictionary *opts = NULL;
    uint8_t *buf = av_malloc(IO_BUFFER);
    int rc;

    memset(in, 0, sizeof(*in));
    in->src = src, in->input = input, in->size = (int64_t)size, in->vidx = in->aidx = -1;
    if (buf == NULL || (in->avio = avio_alloc_context(buf, IO_BUFFER, 0, in, io_read, NULL, io_seek)) == NULL ||
        (in->fmt = avformat_alloc_context()) == NULL) {
        if (in->avio == NULL)
            av_free(buf);
        return AVERROR(ENOMEM);
    }
    in->fmt->pb = in->avio;
    in->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    in->fmt->io_open = refuse_open;
    av_dict_set(&opts, "format_whitelist", FORMATS, 0);
    av_dict_set(&opts, "protocol_whitelist", "", 0);
    av_dict_set(&opts, "codec_whitelist", "h264,aac", 0);
    av_dict_set(&opts, "enable_drefs", "0", 0);
    av_dict_set(&opts, "max_streams", "16", 0);
    rc = avformat_open_input(&in->fmt, NULL, av_find_input_format("mp4"), &opts);
    av_dict_free(&opts);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < in->fmt->nb_streams; i++) {
        enum AVMediaType t = in->fmt->streams[i]->codecpar->codec_type;
        if (t == AVMEDIA_TYPE_VIDEO && in->vidx < 0)
            in->vidx = (int)i;
        else if (t == AVMEDIA_TYPE_AUDIO && in->aidx < 0)
            in->aidx = (int)i;
    }
    in->origin = in->fmt->start_time != AV_NOPTS_VALUE ? (double)in->fmt->start_time / AV_TIME_BASE : 0;
    if (want_video && in->vidx < 0)
        return AVERROR_INVALIDDATA;
    if (want_video && (rc = open_decoder(in->fmt->streams[in->vidx], &in->vdec)) < 0)
        return rc;
    if (want_audio && in->aidx >= 0 && (rc = open_decoder(in->fmt->streams[in->aidx], &in->adec)) < 0)
        return rc;
    return 0;
}

/* Seconds from the file's start of a frame's (or packet's) timestamp ts in stream idx. */
static double seconds(const input_t *in, int idx, int64_t ts)
{
    return (double)ts * av_q2d(in->fmt->streams[idx]->time_base) - in->origin;
}

static double duration_of(const input_t *in)
{
    return in->fmt->duration > 0 ? (double)in->fmt->duration / AV_TIME_BASE : 0;
}

/* ---- the rules ---- */

void me_montage_frame_size(const me_montage_clip_t *clips, int n, int *width, int *height)
{
    int portrait = 0;
    for (int i = 0; i < n; i++)
        portrait += clips[i].height > clips[i].width;
    *width = 2 * portrait > n ? 720 : 1280;
    *height = 2 * portrait > n ? 1280 : 720;
}

/* v rounded down to even, at least 2. */
static int even(double v)
{
    int i = (int)v & ~1;
    return i < 2 ? 2 : i;
}

void me_montage_fit(int w, int h, int fw, int fh, int *cx, int *cy, int *cw, int *ch, int *dx, int *dy, int *dw,
                    int *dh)
{
    double cover = fmax((double)fw / w, (double)fh / h), fit = fmin((double)fw / w, (double)fh / h);
    double kept = (double)fw * fh / (w * cover * h * cover);
    if (kept >= 0.75 - 1e-6) { /* cover: the overflow cropped, centred */
        *cw = even(fmin(w, fw / cover + 0.5)), *ch = even(fmin(h, fh / cover + 0.5));
        *cx = ((w - *cw) / 2) & ~1, *cy = ((h - *ch) / 2) & ~1;
        *dx = *dy = 0, *dw = fw, *dh = fh;
    } else { /* fit: whole, on black */
        *cx = *cy = 0, *cw = even(w), *ch = even(h);
        *dw = even(fmin(fw, w * fit + 0.5)), *dh = even(fmin(fh, h * fit + 0.5));
        *dx = ((fw - *dw) / 2) & ~1, *dy = ((fh - *dh) / 2) & ~1;
    }
}

double me_montage_lively_pick(const double *bins, int nbins, double duration)
{
    int first = (int)(ME_MONTAGE_LIVELY_SKIP * 4), last = (int)floor((duration - 1) * 4), best = -1;
    double most = 0;
    if (duration < 1.5)
        return 0;
    for (int k = first; k <= last && k + 3 < nbins; k++) {
        double sum = bins[k] + bins[k + 1] + bins[k + 2] + bins[k + 3];
        if (sum > most * 1.000001 || (best < 0 && sum > 0))
            most = sum, best = k;
    }
    return best < 0 ? -1 : best / 4.0;
}

#define NBINS ((int)(ME_MONTAGE_LIVELY_SPAN * 4) + 4)

/* Sound energy (motion = 0) or picture change (motion = 1) per quarter second of the first
 * ME_MONTAGE_LIVELY_SPAN seconds of input. 0 or an AVERROR. */
static int measure(const me_montage_source_t *src, int input, uint64_t size, int motion, double *bins, double *duration)
{
    input_t in;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    uint8_t *prev = NULL;
    int rc, gw = 0, gh = 0, done = 0;

    memset(bins, 0, sizeof(double) * NBINS);
    if (pkt == NULL || frame == NULL) {
        rc = AVERROR(ENOMEM);
        goto exit;
    }
    if ((rc = open_input(&in, src, input, size, motion, !motion)) < 0)
        goto out;
    *duration = duration_of(&in);
    if (!motion && in.adec == NULL)
        goto out; /* no sound: all zero */
    int idx = motion ? in.vidx : in.aidx;
    AVCodecContext *dec = motion ? in.vdec : in.adec;
    while (!done && (rc = av_read_frame(in.fmt, pkt)) >= 0) {
        /* past the span on any track: done, even when this one ended early */
        if (pkt->dts != AV_NOPTS_VALUE && seconds(&in, pkt->stream_index, pkt->dts) > ME_MONTAGE_LIVELY_SPAN + 2)
            done = 1;
        if (pkt->stream_index != idx) {
            av_packet_unref(pkt);
            continue;
        }
        rc = avcodec_send_packet(dec, pkt);
        av_packet_unref(pkt);
        if (rc < 0)
            break;
        while (avcodec_receive_frame(dec, frame) >= 0) {
            double t = seconds(&in, idx, frame->best_effort_timestamp);
            if (frame->best_effort_timestamp == AV_NOPTS_VALUE || !(t > -1 && t < ME_MONTAGE_LIVELY_SPAN + 2)) {
                av_frame_unref(frame); /* no place in the span */
                continue;
            }
            if (t >= ME_MONTAGE_LIVELY_SPAN + 1)
                done = 1;
            if (!motion && frame->format == AV_SAMPLE_FMT_FLTP) {
                for (int s = 0; s < frame->nb_samples; s++) {
                    int b = (int)((t + (double)s / frame->sample_rate) * 4);
                    double e = 0;
                    for (int c = 0; c < frame->ch_layout.nb_channels; c++) {
                        float x = ((const float *)frame->extended_data[c])[s];
                        e += (double)x * x;
                    }
                    if (b >= 0 && b < NBINS)
                        bins[b] += e;
                }
            } else if (motion) {
                int nw = frame->width / 8, nh = frame->height / 8;
                if (prev == NULL && (prev = calloc((size_t)nw * nh, 1)) != NULL)
                    gw = nw, gh = nh;
                if (prev != NULL && nw == gw && nh == gh) {
                    double diff = 0;
                    int b = (int)(t * 4);
                    for (int y = 0; y < gh; y++)
                        for (int x = 0; x < gw; x++) {
                            uint8_t v = frame->data[0][(ptrdiff_t)y * 8 * frame->linesize[0] + x * 8];
                            diff += abs((int)v - prev[y * gw + x]);
                            prev[y * gw + x] = v;
                        }
                    if (t > 0.05 && b >= 0 && b < NBINS)
                        bins[b] += diff / (gw * gh);
                }
            }
            av_frame_unref(frame);
        }
    }
    rc = 0;
out:
    close_input(&in);
exit:
    free(prev);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    return rc;
}

/* The lively second of clip i (its small rendition when there is one). */
static double lively(const me_montage_source_t *src, const me_montage_clip_t *c, int i)
{
    double bins[NBINS], duration = c->duration, at = -1;
    int input = c->small_bytes > 0 ? 2 * i + 1 : 2 * i;
    uint64_t size = c->small_bytes > 0 ? c->small_bytes : c->bytes;

    if (c->duration < 1.5)
        return 0;
    if (measure(src, input, size, 0, bins, &duration) == 0)
        at = me_montage_lively_pick(bins, NBINS, duration);
    if (at < 0 && measure(src, input, size, 1, bins, &duration) == 0)
        at = me_montage_lively_pick(bins, NBINS, duration);
    return at < 0 ? fmin(ME_MONTAGE_LIVELY_SKIP, fmax(0, duration - 1)) : at;
}

/* ---- the film: encoders, captions, the MP4 ---- */

typedef struct {
    const me_montage_params_t *mp;
    const me_montage_clip_t *clips;
    const me_montage_source_t *src;
    me_montage_result_t *out;
    int fw, fh;
    AVCodecContext *venc, *aenc;
    AVBSFContext *bsf;
    AVFormatContext *mux;
    AVStream *vst, *ast;
    AVFilterGraph *graph;
    AVFilterContext *gsrc, *gsink;
    AVFrame *picture; /* the frame being shown, in the film's size */
    AVFrame *aframe;
    AVPacket *pkt;
    AVAudioFifo *fifo;
    struct SwsContext *sws;
    float *sound[2]; /* one clip's second, each channel */
    int64_t vpts, apts;
    int clip; /* the clip at work */
} film_t;

static int open_encoders(film_t *f)
{
    const AVCodec *x264 = avcodec_find_encoder_by_name("libx264"), *aac = avcodec_find_encoder(AV_CODEC_ID_AAC);
    AVDictionary *opts = NULL;
    AVCodecContext *c;
    char crf[16];
    int rc;

    if (x264 == NULL || aac == NULL)
        return AVERROR_ENCODER_NOT_FOUND;
    if ((f->venc = c = avcodec_alloc_context3(x264)) == NULL)
        return AVERROR(ENOMEM);
    c->width = f->fw, c->height = f->fh;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->sample_aspect_ratio = (AVRational){1, 1};
    c->time_base = (AVRational){1, ME_MONTAGE_FPS};
    c->framerate = (AVRational){ME_MONTAGE_FPS, 1};
    c->gop_size = GOP;
    c->color_primaries = AVCOL_PRI_BT709, c->color_trc = AVCOL_TRC_BT709, c->colorspace = AVCOL_SPC_BT709;
    c->color_range = AVCOL_RANGE_MPEG;
    c->thread_count = f->mp->threads;
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    snprintf(crf, sizeof(crf), "%d", f->mp->crf);
    av_dict_set(&opts, "preset", f->mp->preset, 0);
    av_dict_set(&opts, "profile", "high", 0);
    av_dict_set(&opts, "crf", crf, 0);
    rc = avcodec_open2(c, x264, &opts);
    av_dict_free(&opts);
    if (rc < 0)
        return rc;
    const AVBitStreamFilter *bsf = av_bsf_get_by_name("filter_units"); /* x264's settings message goes */
    if (bsf == NULL)
        return AVERROR_BSF_NOT_FOUND;
    if ((rc = av_bsf_alloc(bsf, &f->bsf)) < 0 || (rc = avcodec_parameters_from_context(f->bsf->par_in, c)) < 0 ||
        (rc = av_opt_set(f->bsf->priv_data, "remove_types", "6", 0)) < 0)
        return rc;
    f->bsf->time_base_in = c->time_base;
    if ((rc = av_bsf_init(f->bsf)) < 0)
        return rc;
    if ((f->aenc = c = avcodec_alloc_context3(aac)) == NULL)
        return AVERROR(ENOMEM);
    c->sample_fmt = AV_SAMPLE_FMT_FLTP;
    c->sample_rate = ME_MONTAGE_RATE;
    av_channel_layout_default(&c->ch_layout, 2);
    c->bit_rate = (int64_t)f->mp->audio_kbps * 1000;
    c->profile = FF_PROFILE_AAC_LOW;
    c->time_base = (AVRational){1, ME_MONTAGE_RATE};
    c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER | AV_CODEC_FLAG_BITEXACT;
    return avcodec_open2(c, aac, NULL);
}

static int open_output(film_t *f, const char *path)
{
    AVDictionary *opts = NULL;
    int rc;

    if ((rc = avformat_alloc_output_context2(&f->mux, NULL, "mp4", path)) < 0)
        return rc;
    f->mux->flags |= AVFMT_FLAG_BITEXACT;
    if ((f->mux->protocol_whitelist = av_strdup("file")) == NULL ||
        (f->vst = avformat_new_stream(f->mux, NULL)) == NULL || (f->ast = avformat_new_stream(f->mux, NULL)) == NULL)
        return AVERROR(ENOMEM);
    if ((rc = avcodec_parameters_copy(f->vst->codecpar, f->bsf->par_out)) < 0 ||
        (rc = avcodec_parameters_from_context(f->ast->codecpar, f->aenc)) < 0)
        return rc;
    f->vst->time_base = f->venc->time_base;
    f->ast->time_base = f->aenc->time_base;
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    rc = avio_open2(&f->mux->pb, path, AVIO_FLAG_WRITE, NULL, &opts);
    av_dict_free(&opts);
    if (rc < 0)
        return rc;
    av_dict_set(&opts, "movflags", "+faststart", 0);
    rc = avformat_write_header(f->mux, &opts);
    av_dict_free(&opts);
    return rc;
}

/* The caption's graph: drawtext writes each frame's "caption" metadata in the bottom right
 * corner, white on a dark outline, sized to the frame. */
static int open_captions(film_t *f)
{
    char args[160], desc[512];
    AVFilterInOut *in = avfilter_inout_alloc(), *out = avfilter_inout_alloc();
    int size = (f->fw < f->fh ? f->fw : f->fh) / 20, margin = size, rc;

    if ((f->graph = avfilter_graph_alloc()) == NULL || in == NULL || out == NULL) {
        rc = AVERROR(ENOMEM);
        goto exit;
    }
    f->graph->nb_threads = 1;
    snprintf(args, sizeof(args), "video_size=%dx%d:pix_fmt=%d:time_base=1/%d:pixel_aspect=1/1", f->fw, f->fh,
             AV_PIX_FMT_YUV420P, ME_MONTAGE_FPS);
    snprintf(desc, sizeof(desc),
             "drawtext=fontfile=" ME_MONTAGE_FONT ":text='%%{metadata\\:caption}':fontsize=%d:fontcolor=white:"
             "borderw=%d:bordercolor=black@0.6:x=w-tw-%d:y=h-th-%d",
             size, size / 12 > 1 ? size / 12 : 1, margin, margin);
    if ((rc = avfilter_graph_create_filter(&f->gsrc, avfilter_get_by_name("buffer"), "in", args, NULL, f->graph)) < 0 ||
        (rc = avfilter_graph_create_filter(&f->gsink, avfilter_get_by_name("buffersink"), "out", NULL, NULL,
                                           f->graph)) < 0)
        goto exit;
    out->name = av_strdup("in"), out->filter_ctx = f->gsrc;
    in->name = av_strdup("out"), in->filter_ctx = f->gsink;
    if ((rc = avfilter_graph_parse_ptr(f->graph, desc, &in, &out, NULL)) < 0)
        goto exit;
    rc = avfilter_graph_config(f->graph, NULL);
exit:
    avfilter_inout_free(&in);
    avfilter_inout_free(&out);
    return rc;
}

static int write_packets(film_t *f, AVCodecContext *enc, AVStream *st, int video)
{
    int rc;
    for (;;) {
        if ((rc = avcodec_receive_packet(enc, f->pkt)) < 0)
            return rc == AVERROR(EAGAIN) || rc == AVERROR_EOF ? 0 : rc;
        if (video) {
            if (f->pkt->duration <= 0)
                f->pkt->duration = 1;
            if ((rc = av_bsf_send_packet(f->bsf, f->pkt)) < 0)
                return rc;
            while ((rc = av_bsf_receive_packet(f->bsf, f->pkt)) >= 0) {
                av_packet_rescale_ts(f->pkt, enc->time_base, st->time_base);
                f->pkt->stream_index = st->index;
                if ((rc = av_interleaved_write_frame(f->mux, f->pkt)) < 0)
                    return rc;
            }
            if (rc != AVERROR(EAGAIN) && rc != AVERROR_EOF)
                return rc;
        } else {
            av_packet_rescale_ts(f->pkt, enc->time_base, st->time_base);
            f->pkt->stream_index = st->index;
            if ((rc = av_interleaved_write_frame(f->mux, f->pkt)) < 0)
                return rc;
        }
    }
}

static int encode_video(film_t *f, AVFrame *frame)
{
    int rc = avcodec_send_frame(f->venc, frame);
    return rc < 0 && rc != AVERROR_EOF ? rc : write_packets(f, f->venc, f->vst, 1);
}

/* Shows f->picture for the next frame of the film (with the clip's caption). */
static int show(film_t *f)
{
    const char *caption = f->clips[f->clip].caption;
    AVFrame *frame = av_frame_clone(f->picture);
    int rc;

    if (frame == NULL)
        return AVERROR(ENOMEM);
    frame->pts = f->vpts++;
    frame->pict_type = AV_PICTURE_TYPE_NONE;
    if (f->graph == NULL) {
        rc = encode_video(f, frame);
        av_frame_free(&frame);
        return rc;
    }
    av_dict_set(&frame->metadata, "caption", caption, 0);
    if ((rc = av_buffersrc_add_frame(f->gsrc, frame)) < 0) {
        av_frame_free(&frame);
        return rc;
    }
    av_frame_free(&frame);
    AVFrame *drawn = av_frame_alloc();
    if (drawn == NULL)
        return AVERROR(ENOMEM);
    while ((rc = av_buffersink_get_frame(f->gsink, drawn)) >= 0) {
        rc = encode_video(f, drawn);
        av_frame_unref(drawn);
        if (rc < 0)
            break;
    }
    av_frame_free(&drawn);
    return rc == AVERROR(EAGAIN) || rc == AVERROR_EOF ? 0 : rc;
}

/* Paints rect (cx, cy, cw, ch) of src into f->picture at (dx, dy, dw, dh) by the fit rule,
 * the rest black. */
static int paint(film_t *f, const AVFrame *src, int cx, int cy, int cw, int ch, int dx, int dy, int dw, int dh)
{
    AVFrame *p = f->picture;
    const uint8_t *in[4] = {NULL};
    uint8_t *out[4] = {NULL};
    int rc, hs, vs;
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(src->format);

    if (d == NULL || (rc = av_frame_make_writable(p)) < 0)
        return d == NULL ? AVERROR_INVALIDDATA : rc;
    if (dw != f->fw || dh != f->fh) {
        ptrdiff_t lines[4] = {p->linesize[0], p->linesize[1], p->linesize[2], 0};
        if ((rc = av_image_fill_black(p->data, lines, p->format, AVCOL_RANGE_MPEG, f->fw, f->fh)) < 0)
            return rc;
    }
    f->sws =
        sws_getCachedContext(f->sws, cw, ch, src->format, dw, dh, AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
    if (f->sws == NULL)
        return AVERROR(ENOMEM);
    hs = d->log2_chroma_w, vs = d->log2_chroma_h;
    for (int i = 0; i < 4 && src->data[i] != NULL; i++) {
        int chroma = i == 1 || i == 2, sx = chroma ? cx >> hs : cx, sy = chroma ? cy >> vs : cy;
        in[i] = src->data[i] + (ptrdiff_t)sy * src->linesize[i] +
                (ptrdiff_t)sx * d->comp[i < d->nb_components ? i : 0].step;
    }
    for (int i = 0; i < 3; i++)
        out[i] = p->data[i] + (ptrdiff_t)(i == 0 ? dy : dy / 2) * p->linesize[i] + (i == 0 ? dx : dx / 2);
    return sws_scale(f->sws, in, src->linesize, 0, ch, out, p->linesize) > 0 ? 0 : AVERROR(EINVAL);
}

/* Keeps the poster: the picture as RGB. */
static int keep_poster(film_t *f)
{
    me_montage_result_t *out = f->out;
    struct SwsContext *s =
        sws_getContext(f->fw, f->fh, AV_PIX_FMT_YUV420P, f->fw, f->fh, AV_PIX_FMT_RGB24, SWS_BICUBIC, NULL, NULL, NULL);
    uint8_t *px = malloc((size_t)f->fw * f->fh * 3);
    int stride = f->fw * 3, rc = 0;

    if (s == NULL || px == NULL)
        rc = AVERROR(ENOMEM);
    else {
        uint8_t *dst[4] = {px, NULL, NULL, NULL};
        int lines[4] = {stride, 0, 0, 0};
        sws_scale(s, (const uint8_t *const *)f->picture->data, f->picture->linesize, 0, f->fh, dst, lines);
        free(out->poster);
        out->poster = px, px = NULL;
        out->poster_width = f->fw, out->poster_height = f->fh;
    }
    free(px);
    sws_freeContext(s);
    return rc;
}

/* The clip's second of sound (f->sound, silence where none came) into the encoder, faded
 * in and out. */
static int encode_sound(film_t *f, int flush)
{
    int fade = ME_MONTAGE_RATE * ME_MONTAGE_FADE_MS / 1000, rc;
    if (!flush) {
        for (int s = 0; s < fade; s++) {
            float g = (float)s / fade;
            for (int c = 0; c < 2; c++)
                f->sound[c][s] *= g, f->sound[c][ME_MONTAGE_RATE - 1 - s] *= g;
        }
        if (av_audio_fifo_write(f->fifo, (void **)f->sound, ME_MONTAGE_RATE) < ME_MONTAGE_RATE)
            return AVERROR(ENOMEM);
    }
    while (av_audio_fifo_size(f->fifo) >= AUDIO_FRAME || (flush && av_audio_fifo_size(f->fifo) > 0)) {
        int n = av_audio_fifo_size(f->fifo) < AUDIO_FRAME ? av_audio_fifo_size(f->fifo) : AUDIO_FRAME;
        av_frame_unref(f->aframe);
        f->aframe->nb_samples = n;
        f->aframe->format = AV_SAMPLE_FMT_FLTP;
        f->aframe->sample_rate = ME_MONTAGE_RATE;
        av_channel_layout_default(&f->aframe->ch_layout, 2);
        if ((rc = av_frame_get_buffer(f->aframe, 0)) < 0)
            return rc;
        if (av_audio_fifo_read(f->fifo, (void **)f->aframe->extended_data, n) < n)
            return AVERROR(EINVAL);
        f->aframe->pts = f->apts;
        f->apts += n;
        if ((rc = avcodec_send_frame(f->aenc, f->aframe)) < 0 || (rc = write_packets(f, f->aenc, f->ast, 0)) < 0)
            return rc;
    }
    return 0;
}

/* One video clip: the keyframe before its start, decoded up to its end. */
typedef struct {
    film_t *f;
    input_t in;
    double start;
    int shown;     /* frames of the clip sent */
    AVFrame *held; /* the latest picture at or before the next frame's time */
    int painted;   /* held is in f->picture */
    int cx, cy, cw, ch, dx, dy, dw, dh, fitted_w, fitted_h;
    SwrContext *swr;
    int64_t apos; /* the next sample's place in the clip's second (INT64_MIN: not yet) */
    int vdone, adone;
} clip_t;

static int show_held(clip_t *c)
{
    film_t *f = c->f;
    int rc;
    if (!c->painted) {
        if (c->held->width != c->fitted_w || c->held->height != c->fitted_h) {
            c->fitted_w = c->held->width, c->fitted_h = c->held->height;
            me_montage_fit(c->fitted_w, c->fitted_h, f->fw, f->fh, &c->cx, &c->cy, &c->cw, &c->ch, &c->dx, &c->dy,
                           &c->dw, &c->dh);
        }
        if ((rc = paint(f, c->held, c->cx, c->cy, c->cw, c->ch, c->dx, c->dy, c->dw, c->dh)) < 0)
            return rc;
        c->painted = 1;
    }
    if (f->clip == 0 && c->shown == ME_MONTAGE_FPS / 2 && (rc = keep_poster(f)) < 0)
        return rc;
    c->shown++;
    return show(f);
}

static int on_picture(clip_t *c, AVFrame *frame)
{
    double t = seconds(&c->in, c->in.vidx, frame->best_effort_timestamp);
    int rc;
    if (c->vdone)
        return 0;
    if (c->held->buf[0] == NULL) {
        av_frame_move_ref(c->held, frame);
        c->painted = 0;
    }
    while (c->shown < ME_MONTAGE_FPS && c->start + (double)c->shown / ME_MONTAGE_FPS < t - 0.001)
        if ((rc = show_held(c)) < 0)
            return rc;
    if (frame->buf[0] != NULL) {
        av_frame_unref(c->held);
        av_frame_move_ref(c->held, frame);
        c->painted = 0;
    }
    c->vdone = c->shown >= ME_MONTAGE_FPS || t >= c->start + 1;
    return 0;
}

static int on_sound(clip_t *c, AVFrame *frame)
{
    film_t *f = c->f;
    float buf[2][4096];
    uint8_t *outp[2] = {(uint8_t *)buf[0], (uint8_t *)buf[1]};
    int rc;

    if (c->adone)
        return 0;
    if (c->swr == NULL) {
        AVChannelLayout stereo = AV_CHANNEL_LAYOUT_STEREO;
        if ((rc = swr_alloc_set_opts2(&c->swr, &stereo, AV_SAMPLE_FMT_FLTP, ME_MONTAGE_RATE, &frame->ch_layout,
                                      frame->format, frame->sample_rate, 0, NULL)) < 0 ||
            (rc = swr_init(c->swr)) < 0)
            return rc;
    }
    if (c->apos == INT64_MIN) {
        double t = seconds(&c->in, c->in.aidx, frame->best_effort_timestamp) - c->start;
        c->apos = frame->best_effort_timestamp != AV_NOPTS_VALUE && t > -60 && t < 60 ? llround(t * ME_MONTAGE_RATE)
                                                                                        : 0;
    }
    const uint8_t **inp = (const uint8_t **)frame->extended_data;
    int n = frame->nb_samples;
    do {
        int got = swr_convert(c->swr, outp, 4096, inp, n);
        if (got < 0)
            return got;
        for (int s = 0; s < got; s++, c->apos++)
            if (c->apos >= 0 && c->apos < ME_MONTAGE_RATE)
                f->sound[0][c->apos] = buf[0][s], f->sound[1][c->apos] = buf[1][s];
        inp = NULL, n = 0;
        if (got < 4096)
            break;
    } while (1);
    c->adone = c->apos >= ME_MONTAGE_RATE;
    return 0;
}

static int drain(clip_t *c, AVCodecContext *dec, AVFrame *frame, int video)
{
    int rc;
    while ((rc = avcodec_receive_frame(dec, frame)) >= 0) {
        rc = video ? on_picture(c, frame) : on_sound(c, frame);
        av_frame_unref(frame);
        if (rc < 0)
            return rc;
    }
    return rc == AVERROR(EAGAIN) || rc == AVERROR_EOF ? 0 : rc;
}

static int video_clip(film_t *f, int i)
{
    const me_montage_clip_t *mc = &f->clips[i];
    clip_t c = {.f = f, .apos = INT64_MIN};
    AVFrame *frame = av_frame_alloc();
    int rc;

    c.held = av_frame_alloc();
    if (frame == NULL || c.held == NULL) {
        rc = AVERROR(ENOMEM);
        goto exit;
    }
    c.start = mc->start >= 0 ? mc->start : lively(f->src, mc, i);
    if ((rc = open_input(&c.in, f->src, 2 * i, mc->bytes, 1, 1)) < 0)
        goto exit;
    double duration = duration_of(&c.in);
    if (duration > 0 && c.start > duration - 1)
        c.start = fmax(0, duration - 1);
    f->out->starts[i] = c.start;
    c.adone = c.in.adec == NULL;
    /* the keyframe before a little before the start: the sound's decoder warms up too */
    int64_t ts = (int64_t)((c.start + c.in.origin - 0.1) * AV_TIME_BASE);
    if (c.start > 0.1 && (rc = av_seek_frame(c.in.fmt, -1, ts, AVSEEK_FLAG_BACKWARD)) < 0)
        goto exit;
    while (!(c.vdone && c.adone)) {
        if ((rc = av_read_frame(c.in.fmt, f->pkt)) < 0)
            break;
        /* well past the second on any track (one that ended early never says done): the rest
         * of the file is not read */
        if (f->pkt->dts != AV_NOPTS_VALUE && seconds(&c.in, f->pkt->stream_index, f->pkt->dts) > c.start + 3) {
            av_packet_unref(f->pkt);
            break;
        }
        int video = f->pkt->stream_index == c.in.vidx, audio = f->pkt->stream_index == c.in.aidx && !c.adone;
        if ((video && !c.vdone) || audio) {
            AVCodecContext *dec = video ? c.in.vdec : c.in.adec;
            rc = avcodec_send_packet(dec, f->pkt);
            av_packet_unref(f->pkt);
            if (rc < 0 || (rc = drain(&c, dec, frame, video)) < 0)
                goto exit;
        } else
            av_packet_unref(f->pkt);
    }
    if (rc == AVERROR_EOF || rc >= 0) { /* the end of the file (or of the second): what the decoders hold */
        if (!c.vdone && avcodec_send_packet(c.in.vdec, NULL) >= 0 && (rc = drain(&c, c.in.vdec, frame, 1)) < 0)
            goto exit;
        if (!c.adone && c.in.adec != NULL && avcodec_send_packet(c.in.adec, NULL) >= 0 &&
            (rc = drain(&c, c.in.adec, frame, 0)) < 0)
            goto exit;
        rc = 0;
    } else
        goto exit;
    if (c.held->buf[0] == NULL) {
        rc = AVERROR_INVALIDDATA; /* not one picture */
        goto exit;
    }
    while (c.shown < ME_MONTAGE_FPS)
        if ((rc = show_held(&c)) < 0)
            goto exit;
    rc = encode_sound(f, 0);
exit:
    swr_free(&c.swr);
    close_input(&c.in);
    av_frame_free(&c.held);
    av_frame_free(&frame);
    return rc;
}

/* One photo: its JPEG decoded, a second of slow zoom, silence. */
static int photo_clip(film_t *f, int i)
{
    const me_montage_clip_t *mc = &f->clips[i];
    const AVCodec *mjpeg = avcodec_find_decoder(AV_CODEC_ID_MJPEG);
    AVCodecContext *dec = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    int rc = 0;
    size_t have = 0;

    if (mc->bytes == 0 || mc->bytes > ME_MONTAGE_PHOTO_MAX)
        return AVERROR_INVALIDDATA;
    if (pkt == NULL || frame == NULL || mjpeg == NULL || (rc = av_new_packet(pkt, (int)mc->bytes)) < 0) {
        rc = rc < 0 ? rc : AVERROR(ENOMEM);
        goto exit;
    }
    while (have < mc->bytes) {
        size_t got = 0;
        if (f->src->read(f->src->ctx, 2 * i, have, pkt->data + have, (size_t)mc->bytes - have, &got) != 0 || got == 0) {
            rc = AVERROR(EIO);
            goto exit;
        }
        have += got;
    }
    if ((dec = avcodec_alloc_context3(mjpeg)) == NULL) {
        rc = AVERROR(ENOMEM);
        goto exit;
    }
    dec->thread_count = 1;
    if ((rc = avcodec_open2(dec, mjpeg, NULL)) < 0 || (rc = avcodec_send_packet(dec, pkt)) < 0 ||
        (rc = avcodec_send_packet(dec, NULL)) < 0 || (rc = avcodec_receive_frame(dec, frame)) < 0)
        goto exit;
    f->out->starts[i] = 0;
    int cx, cy, cw, ch, dx, dy, dw, dh;
    me_montage_fit(frame->width, frame->height, f->fw, f->fh, &cx, &cy, &cw, &ch, &dx, &dy, &dw, &dh);
    for (int k = 0; k < ME_MONTAGE_FPS; k++) {
        double z = 1 + ME_MONTAGE_ZOOM * k / (ME_MONTAGE_FPS - 1);
        int zw = (int)(cw / z) & ~1, zh = (int)(ch / z) & ~1;
        int zx = (cx + (cw - zw) / 2) & ~1, zy = (cy + (ch - zh) / 2) & ~1;
        if ((rc = paint(f, frame, zx, zy, zw, zh, dx, dy, dw, dh)) < 0)
            goto exit;
        if (i == 0 && k == ME_MONTAGE_FPS / 2 && (rc = keep_poster(f)) < 0)
            goto exit;
        if ((rc = show(f)) < 0)
            goto exit;
    }
    rc = encode_sound(f, 0);
exit:
    avcodec_free_context(&dec);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    return rc;
}

static int finish(film_t *f)
{
    int rc;
    if (f->graph != NULL && (rc = av_buffersrc_add_frame(f->gsrc, NULL)) < 0)
        return rc;
    if ((rc = encode_video(f, NULL)) < 0 || (rc = av_bsf_send_packet(f->bsf, NULL)) < 0)
        return rc;
    while ((rc = av_bsf_receive_packet(f->bsf, f->pkt)) >= 0) {
        av_packet_rescale_ts(f->pkt, f->venc->time_base, f->vst->time_base);
        f->pkt->stream_index = f->vst->index;
        if ((rc = av_interleaved_write_frame(f->mux, f->pkt)) < 0)
            return rc;
    }
    if ((rc = encode_sound(f, 1)) < 0 || (rc = avcodec_send_frame(f->aenc, NULL)) < 0 ||
        (rc = write_packets(f, f->aenc, f->ast, 0)) < 0)
        return rc;
    if ((rc = av_write_trailer(f->mux)) < 0)
        return rc;
    return 0;
}

static int failure(me_montage_result_t *out, int err, int clip, int averr, const char *stage)
{
    char text[AV_ERROR_MAX_STRING_SIZE] = "";
    av_strerror(averr, text, sizeof(text));
    out->failed_clip = clip;
    if (clip >= 0)
        snprintf(out->detail, sizeof(out->detail), "%s clip %d: %s", stage, clip, text);
    else
        snprintf(out->detail, sizeof(out->detail), "%s: %s", stage, text);
    return err;
}

int me_montage_film(const me_montage_params_t *mp, const me_montage_clip_t *clips, const me_montage_source_t *src,
                    const char *path, me_montage_progress_fn progress, void *ctx, me_montage_result_t *out)
{
    film_t f = {.mp = mp, .clips = clips, .src = src, .out = out};
    int ret = 0, rc, captions = 0;

    memset(out, 0, sizeof(*out));
    out->failed_clip = -1;
    if (mp->nclips < 1 || mp->nclips > ME_MONTAGE_CLIPS_MAX) {
        snprintf(out->detail, sizeof(out->detail), "%d clips", mp->nclips);
        return ME_EINTERNAL;
    }
    av_log_set_level(AV_LOG_ERROR);
    me_montage_frame_size(clips, mp->nclips, &f.fw, &f.fh);
    for (int i = 0; i < mp->nclips; i++)
        captions |= clips[i].caption[0] != '\0';
    f.sound[0] = malloc(sizeof(float) * ME_MONTAGE_RATE);
    f.sound[1] = malloc(sizeof(float) * ME_MONTAGE_RATE);
    f.picture = av_frame_alloc(), f.aframe = av_frame_alloc(), f.pkt = av_packet_alloc();
    f.fifo = av_audio_fifo_alloc(AV_SAMPLE_FMT_FLTP, 2, ME_MONTAGE_RATE * 2);
    if (f.sound[0] == NULL || f.sound[1] == NULL || f.picture == NULL || f.aframe == NULL || f.pkt == NULL ||
        f.fifo == NULL) {
        ret = ME_ENOMEM;
        goto exit;
    }
    f.picture->width = f.fw, f.picture->height = f.fh, f.picture->format = AV_PIX_FMT_YUV420P;
    if ((rc = av_frame_get_buffer(f.picture, 0)) < 0 || (rc = open_encoders(&f)) < 0 ||
        (captions && (rc = open_captions(&f)) < 0)) {
        ret = failure(out, rc == AVERROR(ENOMEM) ? ME_ENOMEM : ME_EINTERNAL, -1, rc, "setting up");
        goto exit;
    }
    if ((rc = open_output(&f, path)) < 0) {
        ret = failure(out, ME_EIO, -1, rc, "opening the output");
        goto exit;
    }
    for (f.clip = 0; f.clip < mp->nclips; f.clip++) {
        memset(f.sound[0], 0, sizeof(float) * ME_MONTAGE_RATE);
        memset(f.sound[1], 0, sizeof(float) * ME_MONTAGE_RATE);
        rc = clips[f.clip].kind == ME_MONTAGE_PHOTO ? photo_clip(&f, f.clip) : video_clip(&f, f.clip);
        if (rc < 0) {
            ret = failure(out,
                          rc == AVERROR(ENOMEM) ? ME_ENOMEM
                          : rc == AVERROR(EIO)  ? ME_EIO
                                                : ME_ECORRUPT,
                          f.clip, rc, "reading");
            goto exit;
        }
        if (progress != NULL && progress(ctx, f.clip + 1, mp->nclips) != 0) {
            snprintf(out->detail, sizeof(out->detail), "stopped after %d clips", f.clip + 1);
            ret = ME_EDRAINING;
            goto exit;
        }
    }
    if ((rc = finish(&f)) < 0) {
        ret = failure(out, ME_EIO, -1, rc, "finishing");
        goto exit;
    }
    out->width = f.fw, out->height = f.fh;
    out->duration = fmax((double)f.vpts / ME_MONTAGE_FPS, (double)f.apts / ME_MONTAGE_RATE);
exit:
    if (f.mux != NULL) {
        avio_closep(&f.mux->pb);
        avformat_free_context(f.mux);
    }
    struct stat st;
    if (ret == 0 && stat(path, &st) == 0)
        out->bytes = (uint64_t)st.st_size;
    if (ret != 0)
        remove(path);
    avfilter_graph_free(&f.graph);
    avcodec_free_context(&f.venc);
    avcodec_free_context(&f.aenc);
    av_bsf_free(&f.bsf);
    sws_freeContext(f.sws);
    av_audio_fifo_free(f.fifo);
    av_frame_free(&f.picture);
    av_frame_free(&f.aframe);
    av_packet_free(&f.pkt);
    free(f.sound[0]);
    free(f.sound[1]);
    return ret;
}

void me_montage_result_free(me_montage_result_t *out)
{
    free(out->poster);
    out->poster = NULL;
}
