/* video_sandbox.h: the whole of a video job (reading, decoding, encoding, the poster's
 * variants) in a confined child process, `mediaedge video-decoder`, beside the photo
 * decoders and on the same plumbing (child.h): scrubbed environment, no configuration read,
 * seccomp and Landlock, a scratch directory of its own, and a cap on its data segment so
 * that a memory bomb is a failed allocation in the child, not pressure on the pod.
 *
 * The parent writes the original into the child's scratch directory, sends the settings,
 * reads progress while the child works, then the result: the facts, and the renditions as
 * files in the scratch directory, which the parent checks (names, sizes, dimensions, an MP4
 * whose boxes add up with the moov before the media data) before handing them on; the
 * poster's variants come over the socket, checked as a photo decoder's are.
 *
 * Time: a job may take ME_VIDEO_SANDBOX_BASE_MS plus ME_VIDEO_SANDBOX_PER_SECOND seconds per
 * second of video (the longer of the header's claim and what has been decoded so far; the
 * plan's limit bounds both) and per ME_VIDEO_SANDBOX_UNIT of its pixels a second (at least
 * one: 4K60 counts eight): past that the child is killed. */
#ifndef ME_VIDEO_SANDBOX_H
#define ME_VIDEO_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"
#include "server/media/photo/photo.h"
#include "server/media/sandbox/decoder_wire.h"
#include "server/media/video/video.h"

#define ME_VIDEO_SANDBOX_BASE_MS 60000             /* start-up, probe, poster and writing out */
#define ME_VIDEO_SANDBOX_PER_SECOND 4              /* seconds of work per second of video... */
#define ME_VIDEO_SANDBOX_UNIT (1920.0 * 1080 * 30) /* ...per 1080p30's worth of pixels a second */
#define ME_VIDEO_SANDBOX_MEMORY (2ull << 30)       /* the default cap on a child's data segment */
#define ME_VIDEO_SANDBOX_OUTPUT_MAX (8ull << 30)   /* bytes of one rendition the parent accepts */

typedef struct me_decoders me_video_decoders_t; /* decoder_wire.h */

/* Writes the original into fd (a new file of the child's scratch directory). 0 or an
 * me_err_t (ME_EIO: storage failed; the job is tried again). */
typedef int (*me_video_fill_fn)(void *ctx, int fd);

/* Takes a rendition made and checked, at path until it returns (copy or store it). 0 or an
 * me_err_t, which the job then fails with. */
typedef int (*me_video_take_fn)(void *ctx, const me_video_output_t *o, const char *path);

/* n decoder processes for pc (kept by pointer: it must outlive them), each running exe (this
 * binary), each with a scratch directory in tmp_root/mediaedge-decoders-<pid>-video/<slot>,
 * each's data segment capped at memory_limit bytes (0: none). A process starts with its
 * first video and serves the next ones. NULL with err set when out of memory or a directory
 * could not be made. */
me_video_decoders_t *me_video_decoders_new(const me_photo_config_t *pc, int n, const char *exe, const char *tmp_root,
                                           uint64_t memory_limit, char *err, size_t errlen);

/* me_video_transcode() and me_video_poster() of the video fill writes, in an idle decoder
 * (waiting for one when all n are busy): progress (may be NULL; non-zero stops the job,
 * which then fails with ME_EDRAINING) is told as the child goes, take is given every
 * rendition, *out gets the facts and outputs (no poster pixels) and *poster the poster's
 * variants (release both either way). Same codes as those two functions, and also
 *   ME_EBUSY      the decoder died (a crash, or killed past its time), or answered out of
 *                 protocol (out->detail says which); the next video starts another;
 *   ME_EINTERNAL  also when the decoder could not set itself up or confine itself;
 *   whatever fill or take return.
 * Thread-safe. */
int me_video_decoders_process(me_video_decoders_t *d, const me_video_params_t *vp, me_video_fill_fn fill,
                              me_video_progress_fn progress, me_video_take_fn take, void *ctx, me_video_result_t *out,
                              me_photo_result_t *poster) ME_MUST_CHECK;

/* Ends the processes and removes their scratch directories. Call it when no video is in a
 * decoder. NULL is a no-op. */
void me_video_decoders_free(me_video_decoders_t *d);

/* An MP4 a child says it made (a rendition, a montage's film): a regular file of bytes bytes
 * (not followed if a link), whose top-level boxes tile it exactly, ftyp first, the moov
 * before the mdat. 0, or -1 with why set. */
int me_video_check_mp4(const char *path, uint64_t bytes, char *why, size_t whylen);

/* The video decoder's protocol (decoder_wire.h): its params are a me_video_params_t, its
 * result a me_video_result_t; for the fuzzer (tests/fuzz/fuzz_decoder_wire.c). */
const me_decoder_wire_t *me_video_wire(void);

/* The child's side, run by `mediaedge video-decoder` (socket on fd 3): reads the photo
 * configuration and its limits, sets up libvips, confines itself, then answers videos until
 * the socket closes. Returns the process's exit status (0 at a clean end). */
int me_video_sandbox_child(void);

#endif
