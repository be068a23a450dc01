/* video.h: the video pipeline: one untrusted MP4/MOV in, its facts, H.264/AAC MP4 renditions
 * and a poster frame out (libavformat, libavcodec, libavfilter; decoded once).
 *
 * Reading: only the MOV/MP4 demuxer family, over our own AVIOContext on the file's
 * descriptor, with every nested open refused: an HLS or concat playlist renamed .mp4, a
 * file: or http: reference, an mov data reference never make libavformat open anything
 * (the file is not even probed as anything but MOV/MP4). Only the decoders of the codecs
 * phones record (H.264, HEVC; AAC, ALAC, MP3, AC-3, E-AC-3, Opus, PCM) are allowed.
 *
 * Before anything is decoded the header is held to caps (me_video_caps_t: streams,
 * dimensions, frame rate, bitrate, side data) and its duration, the longest of what the
 * movie header, the track headers and the sample tables claim, to the plan's limit. The
 * limit holds on decoded timestamps too: a header that lies fails on the frames.
 *
 * Renditions: decoded once, one filter graph (frame rate capped, scaled to the largest
 * rendition, turned upright by the display matrix, HDR (HLG, PQ) tone-mapped to 8-bit SDR
 * BT.709) split into one branch per rendition, each scaled on the long edge (never up) and
 * encoded by libx264 (High, preset, CRF with a bitrate cap, a keyframe every 2 s); the audio
 * is decoded once, resampled to 48 kHz stereo and encoded once as AAC-LC, the same packets
 * muxed into every rendition. MP4 with the moov atom first (faststart); no metadata at all
 * (no location, make, model, creation time or software; the encoder's version SEI removed).
 * Variable frame rate is kept as it is (timestamps pass through), so picture and sound stay
 * in step. The poster is a frame of the largest rendition's size, the first at or after
 * params->poster_at seconds (the first frame for a shorter video), as RGB pixels for the
 * photo pipeline (me_video_poster()).
 *
 * Every function blocks (CPU) and is thread-safe; call them from worker threads or, as the
 * server does, in a confined decoder process (sandbox/video_sandbox.h). */
#ifndef ME_VIDEO_H
#define ME_VIDEO_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "server/core/error.h"
#include "server/media/photo/photo.h"

#define ME_VIDEO_RENDITIONS_MAX 4
#define ME_VIDEO_NAME_MAX 15 /* a rendition's name: [a-z0-9_-], a storage key segment */
#define ME_VIDEO_SIZE_MIN 64 /* a rendition's long edge in pixels: [MIN, MAX] */
#define ME_VIDEO_SIZE_MAX 4096
/* Seconds a video may run past its limit (a "3:00" recording lasts 180.2 s: its audio ends
 * a few frames late). */
#define ME_VIDEO_TOLERANCE 0.5

/* One rendition: <name>.mp4, the long edge at most size pixels (never upscaled), the
 * video's bitrate capped at max_kbps (VBV), its quality otherwise by the CRF. */
typedef struct {
    char name[ME_VIDEO_NAME_MAX + 1];
    int size;
    int max_kbps;
} me_video_rendition_t;

/* What a file may declare before a single frame is decoded. */
typedef struct {
    uint64_t max_bytes;        /* the file */
    int max_width, max_height; /* each frame as stored (before rotation) */
    int max_streams;           /* iPhones write video, audio and four metadata tracks */
    double max_fps;            /* declared average (and, for the decoder, real) frame rate */
    int64_t max_bitrate;       /* bits/s, the container's or any stream's */
    int max_side_data;         /* bytes of any stream's extradata or side data item */
} me_video_caps_t;

/* The settings of a run. A plain struct of arrays (no pointers): it crosses to the decoder
 * process as it is. me_video_params_default() fills it. */
typedef struct {
    int nrenditions;
    me_video_rendition_t renditions[ME_VIDEO_RENDITIONS_MAX];
    char preset[16];     /* libx264's: ultrafast .. placebo */
    int crf;             /* libx264's quality target, 0..51 (23) */
    int audio_kbps;      /* AAC bitrate (128) */
    double max_fps;      /* renditions' frame rate cap (60) */
    double max_duration; /* seconds the plan allows (0: no limit) */
    char plan[16];       /* the plan's name, for the message when too long */
    double poster_at;    /* seconds into the video of the poster frame (1) */
    int threads;         /* decoder and encoder threads each (0: as libav* choose) */
    me_video_caps_t caps;
} me_video_params_t;

/* What a video is. Sizes are as displayed (after rotation). Strings are "" when unknown. */
typedef struct {
    char container[8];    /* "mp4" or "mov" (by the major brand) */
    char video_codec[16]; /* "h264", "hevc" */
    char audio_codec[16]; /* "aac", ...; "" when it has no sound */
    double duration;      /* seconds: the header's claim at probe; decoded after a transcode */
    int width, height;
    int rotation;                                 /* clockwise degrees applied to be upright: 0, 90, 180, 270 */
    double fps;                                   /* average frame rate */
    int vfr;                                      /* the frame rate varies (from the sample table, then the frames) */
    int bit_depth;                                /* 8, 10 */
    char dynamic_range[4];                        /* "sdr", "hlg", "pq" */
    char color_primaries[16], color_transfer[16]; /* libavutil's names ("bt2020", "arib-std-b67") */
    int audio_channels, audio_rate;
    int64_t bitrate;   /* bits/s of the whole file */
    char taken_at[32]; /* creation time, ISO 8601 with its offset when the file has one */
    int has_location;  /* the file says where it was shot (never copied to a rendition) */
} me_video_facts_t;

/* One rendition made: <name>.mp4 in the output directory. */
typedef struct {
    char name[ME_VIDEO_NAME_MAX + 1];
    int width, height;
    double duration; /* seconds, the longest of its tracks */
    uint64_t bytes;
    int has_audio;
} me_video_output_t;

typedef struct {
    me_video_facts_t facts;
    int noutputs;
    me_video_output_t outputs[ME_VIDEO_RENDITIONS_MAX];
    int poster_width, poster_height;
    double poster_time; /* seconds into the video */
    uint8_t *poster;    /* RGB, 3 bytes a pixel, rows packed; malloc'd, owned by the result */
    char message[256];  /* on failure, for people (the plan's limit when too long) */
    char detail[256];   /* on failure, what went wrong: for logs only */
} me_video_result_t;

/* Told of the decoding's progress: seconds of video decoded so far, of total (the header's
 * claim). Called at most once per decoded second. Returns 0 to go on, non-zero to stop (the
 * run then fails with ME_EDRAINING). */
typedef int (*me_video_progress_fn)(void *ctx, double done, double total);

/* What a file's header declares, held to the caps before anything is decoded. */
typedef struct {
    uint64_t bytes;
    int streams;
    int width, height; /* the video stream's, as stored */
    double fps;        /* its declared frame rate (the higher of average and base) */
    int64_t bitrate;   /* the highest of the container's and the streams' */
    int side_data;     /* the largest extradata or side data item of any stream, bytes */
} me_video_header_t;

/* The defaults: renditions 720p:1280 (4000 kbit/s) and 360p:640 (1000 kbit/s), veryfast,
 * CRF 23, AAC 128 kbit/s, 60 fps, no duration limit, poster at 1 s; caps: 4 GiB, 4096x4096,
 * 16 streams, 240 fps, 200 Mbit/s, 1 MiB of side data. Cannot fail. */
void me_video_params_default(me_video_params_t *vp);

/* Reads one rendition as configured: "name:size" or "name:size:max_kbps" (size from
 * ME_VIDEO_SIZE_MIN to ME_VIDEO_SIZE_MAX, name 1 to ME_VIDEO_NAME_MAX of [a-z0-9_-],
 * max_kbps from 100 to 100000, default size * 3). text need not end at len. 1 with *out
 * set, or 0. */
int me_video_rendition_parse(const char *text, size_t len, me_video_rendition_t *out);

/* The size of a rendition of long edge size for a video displayed width x height (square
 * pixels): the long edge at most size, never larger than the video, the aspect kept, both
 * even (H.264 4:2:0), at least 2. */
void me_video_rendition_size(int width, int height, int size, int *out_width, int *out_height);

/* Holds h to caps: 0, or ME_ETOOLARGE with message (for people) and detail (for logs,
 * naming the cap) filled; either may be NULL. */
int me_video_caps_check(const me_video_caps_t *caps, const me_video_header_t *h, char *message, size_t mlen,
                        char *detail, size_t dlen) ME_MUST_CHECK;

/* "4 minutes 2 seconds", "3 minutes", "1 minute 1 second", "45 seconds": seconds rounded
 * down, for messages to people. */
void me_video_format_duration(double seconds, char *buf, size_t len);

/* The message for people of a video too long for its plan: "Videos on the free plan can be
 * up to 3 minutes long; this one is 4 minutes 2 seconds." (plan "" or NULL: "Videos can be
 * up to ..."). */
void me_video_too_long_message(const char *plan, double limit, double duration, char *buf, size_t len);

/* Probes the video readable at fd (seekable; read with pread, the offset is not moved; not
 * closed) without decoding it: fills *facts and checks vp's caps and duration limit (on
 * what the header claims). Returns 0, or:
 *   ME_ETOOLARGE       over a cap (detail says which);
 *   ME_EVIDEO_TOO_LONG the header claims more than vp->max_duration (message set);
 *   ME_EMEDIA          not an MP4/MOV, no video stream (audio only), a codec we do not take;
 *   ME_ECORRUPT        an MP4/MOV that cannot be read;
 *   ME_ENOMEM, ME_EINTERNAL.
 * message (for people) and detail (for logs) are filled on failure; either may be NULL. */
int me_video_probe(const me_video_params_t *vp, int fd, me_video_facts_t *facts, char *message, size_t mlen,
                   char *detail, size_t dlen) ME_MUST_CHECK;

/* Probes as above, then makes every rendition of vp into outdir/<name>.mp4 (replacing
 * files of those names) and the poster, calling progress (may be NULL) as it goes. On
 * success out holds the facts (duration, frame rate and vfr as decoded), the outputs in vp's
 * order and the poster. Returns 0, the codes of me_video_probe() (ME_EVIDEO_TOO_LONG also
 * when the decoded timestamps pass the limit, out->facts.duration then the real length when
 * the rest of the file says it), ME_ECORRUPT (damaged or truncated on the way),
 * ME_ETOOLARGE (also when memory ran out: the process's limit), ME_EIO (outdir not
 * writable), ME_EDRAINING (progress asked to stop). On failure no output file is left and
 * out->message says why for people. In every case release out with me_video_result_free(). */
int me_video_transcode(const me_video_params_t *vp, int fd, const char *outdir, me_video_progress_fn progress,
                       void *ctx, me_video_result_t *out) ME_MUST_CHECK;

/* An AVIOContext's seek over a reader at *pos of a file of size bytes (AVSEEK_SIZE, SEEK_SET,
 * SEEK_CUR, SEEK_END; AVSEEK_FORCE ignored): the new position (also into *pos), the size, or
 * AVERROR(EINVAL). For our own readers (the video pipeline's, the montage's). */
int64_t me_video_avio_seek(int64_t *pos, int64_t size, int64_t offset, int whence);

/* Frees the poster and empties out (the facts stay); safe on an empty result. */
void me_video_result_free(me_video_result_t *out);

/* The poster of r through the photo pipeline: its variants (thumb.jpg, thumb.webp, ...) as
 * me_photo_process_pixels() makes them. Same contract as that function. */
int me_video_poster(const me_photo_config_t *pc, const me_video_result_t *r, me_photo_result_t *poster) ME_MUST_CHECK;

/* The facts as a new JSON object (the caller owns it; NULL on allocation failure), in the
 * shape of the photo facts: {"kind":"video","format","width","height","duration",
 * "rotation","fps","vfr","bit_depth","dynamic_range","color_primaries","color_transfer",
 * "video_codec","audio_codec" (or null),"audio_channels","audio_rate","bitrate",
 * "taken_at" (or null),"has_location","renditions":[{"name","format":"mp4",
 * "content_type":"video/mp4","width","height","duration","bytes","video_codec":"h264",
 * "audio_codec":"aac" or null}, ...]} (renditions only when r has outputs). */
json_t *me_video_facts_json(const me_video_result_t *r);

#endif
