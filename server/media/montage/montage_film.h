/* montage_film.h: the film of a one-second montage (libavformat, libavcodec, libavfilter,
 * libswscale, libswresample): clips cut from renditions that are already upright, SDR and
 * H.264 (and stills of photos' JPEG variants), joined into one 720p30 H.264/AAC MP4.
 *
 * Cost: a video's clip seeks to the keyframe before its start and decodes only up to the end
 * of its second: what it reads and decodes does not grow with the length of the source. The
 * bytes come through a source (me_montage_source_t) that reads ranges on demand, so a
 * 10-minute rendition costs its header and a few seconds of its data, never a copy.
 *
 * Frame: 1280x720, or 720x1280 when most clips are portrait. Each clip is fitted by the
 * frame-fit rule: cover (scaled to fill the frame, centred, the overflow cropped) when that
 * crops at most a quarter of it (a 4:3 clip in a 16:9 frame), else fit whole inside the frame
 * on black (a portrait clip in a landscape frame, a square photo). 30 frames a second: each
 * output frame shows the clip's picture of that instant (frames repeated or dropped).
 *
 * Sound: each clip's own, 48 kHz stereo, exactly one second of it (silence where the clip has
 * none, and for photos), faded in and out over ME_MONTAGE_FADE_MS at every cut so that no cut
 * clicks; AAC-LC. Photos: a one-second still with a slow zoom (6 % over the second).
 *
 * Lively second (a video clip without a start): measured on the small rendition, in its first
 * ME_MONTAGE_LIVELY_SPAN seconds, skipping the first ME_MONTAGE_LIVELY_SKIP (the shake of
 * pressing record): the one-second window, on a quarter-second grid, with the most sound
 * energy; a video without sound (or silent) the most picture change (mean absolute
 * difference of consecutive frames' luma on a coarse grid). A video under 1.5 s starts at 0.
 *
 * Captions ("date"): the clip's date drawn in the bottom right corner by libavfilter's
 * drawtext (FreeType) with ME_MONTAGE_FONT.
 *
 * The MP4: moov first (faststart), no metadata at all (no location, device, creation time,
 * encoder tag or x264's settings message). Every function blocks (CPU); run them in a
 * confined decoder (montage_sandbox.h). */
#ifndef ME_MONTAGE_FILM_H
#define ME_MONTAGE_FILM_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"

#define ME_MONTAGE_CLIPS_MAX 400
#define ME_MONTAGE_FPS 30
#define ME_MONTAGE_RATE 48000
#define ME_MONTAGE_FADE_MS 15
#define ME_MONTAGE_LIVELY_SKIP 0.5
#define ME_MONTAGE_LIVELY_SPAN 8.0
#define ME_MONTAGE_ZOOM 0.06
#define ME_MONTAGE_FONT "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf" /* Debian's fonts-dejavu-core */
#define ME_MONTAGE_PHOTO_MAX (32u << 20)                                  /* bytes of a photo's JPEG variant read */
#define ME_MONTAGE_CAPTION_MAX 40

enum { ME_MONTAGE_VIDEO = 1, ME_MONTAGE_PHOTO = 2 };

/* One clip. A plain struct (no pointers): it crosses to the decoder process as it is. */
typedef struct {
    int kind;                                 /* ME_MONTAGE_VIDEO or ME_MONTAGE_PHOTO */
    int width, height;                        /* the picture's, as the manifest says (for the frame's orientation) */
    double start;                             /* video: seconds into it; < 0: the lively second */
    double duration;                          /* video: its length (seconds) */
    uint64_t bytes;                           /* input 2i: the rendition (video) or the JPEG (photo) */
    uint64_t small_bytes;                     /* input 2i+1: the small rendition (0: none; the rule uses 2i) */
    char caption[ME_MONTAGE_CAPTION_MAX + 1]; /* drawn when not "" */
} me_montage_clip_t;

typedef struct {
    int nclips;
    char preset[16]; /* libx264's */
    int crf;
    int audio_kbps;
    int threads; /* the encoder's (0: as libx264 chooses) */
} me_montage_params_t;

/* Where the bytes come from: input 2i is clip i's rendition or JPEG, 2i+1 its small
 * rendition. read fills buf with up to len bytes at offset, *got what it gave (0 at the
 * end): 0 or an me_err_t (ME_EIO). */
typedef struct {
    int (*read)(void *ctx, int input, uint64_t offset, void *buf, size_t len, size_t *got);
    void *ctx;
} me_montage_source_t;

/* Told after each clip: clips done, of total. Non-zero stops the film (ME_EDRAINING). */
typedef int (*me_montage_progress_fn)(void *ctx, int done, int total);

typedef struct {
    int width, height;
    double duration; /* seconds, the longest track */
    uint64_t bytes;
    double starts[ME_MONTAGE_CLIPS_MAX]; /* where each video's second began (photos: 0) */
    int poster_width, poster_height;
    uint8_t *poster;  /* RGB of the first clip's middle frame; malloc'd, owned by the result */
    char detail[256]; /* on failure, for logs */
    int failed_clip;  /* on failure, the clip at fault (-1: none) */
} me_montage_result_t;

/* Makes the film of clips into path (replaced) and the poster's pixels. 0, or ME_ECORRUPT
 * (a clip that cannot be read: out->failed_clip says which), ME_EIO (the source failed, or
 * path not writable), ME_ENOMEM, ME_EDRAINING (progress asked to stop), ME_EINTERNAL. No file
 * is left on failure. Release out with me_montage_result_free() in every case. */
int me_montage_film(const me_montage_params_t *mp, const me_montage_clip_t *clips, const me_montage_source_t *src,
                    const char *path, me_montage_progress_fn progress, void *ctx,
                    me_montage_result_t *out) ME_MUST_CHECK;

void me_montage_result_free(me_montage_result_t *out);

/* The frame for clips: 1280x720, or 720x1280 when more than half are portrait. */
void me_montage_frame_size(const me_montage_clip_t *clips, int n, int *width, int *height);

/* The frame-fit rule for a w x h picture in a fw x fh frame: the rectangle of the picture
 * taken (*cx, *cy, *cw, *ch) and where it goes in the frame (*dx, *dy, *dw, *dh); even
 * numbers throughout. */
void me_montage_fit(int w, int h, int fw, int fh, int *cx, int *cy, int *cw, int *ch, int *dx, int *dy, int *dw,
                    int *dh);

/* The lively second's start among nbins quarter-second energies (bins[k]: from k/4 s) of a
 * video of duration seconds: the window of four bins with the most, starting between
 * ME_MONTAGE_LIVELY_SKIP and duration - 1. 0 for a video under 1.5 s or no energy at all. */
double me_montage_lively_pick(const double *bins, int nbins, double duration);

#endif
