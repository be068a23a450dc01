/* montage_sandbox.h: a montage's film made in a confined child process, `mediaedge
 * montage-decoder`, on the decoders' plumbing (sandbox/child.h: scrubbed environment, no
 * configuration, seccomp and Landlock, a scratch directory, a capped data segment).
 *
 * The child never sees storage: it asks its parent for byte ranges of the inputs (the
 * renditions, the photos' JPEGs) as its demuxers need them, so a clip costs the ranges it
 * reads, whatever the length of its source. It writes the film into its scratch directory,
 * which the parent checks (an MP4 of the size it said, moov first) before handing it on;
 * the poster's variants come over the socket, checked as a photo decoder's are.
 *
 * Time: ME_MONTAGE_SANDBOX_BASE_MS plus ME_MONTAGE_SANDBOX_PER_CLIP_MS per clip; past that the
 * child is killed. */
#ifndef ME_MONTAGE_SANDBOX_H
#define ME_MONTAGE_SANDBOX_H

#include <stdint.h>
#include "server/core/error.h"
#include "server/media/montage/montage_film.h"
#include "server/media/photo/photo.h"
#include "server/media/sandbox/decoder_wire.h"

#define ME_MONTAGE_SANDBOX_BASE_MS 60000
#define ME_MONTAGE_SANDBOX_PER_CLIP_MS 15000
#define ME_MONTAGE_READ_MAX ME_DECODER_READ_MAX /* bytes of one range the child may ask for */

typedef struct me_decoders me_montage_decoders_t; /* decoder_wire.h */

/* Takes the film made and checked, at path until it returns (store it). 0 or an me_err_t. */
typedef int (*me_montage_take_fn)(void *ctx, const me_montage_result_t *r, const char *path);

/* n montage decoder processes (started with their first film) running exe (this binary),
 * scratch directories in tmp_root/mediaedge-decoders-<pid>-montage/<slot>, data segment
 * capped at memory_limit (0: none); pc (kept by pointer) gives the poster's variants. NULL
 * with err set on failure. */
me_montage_decoders_t *me_montage_decoders_new(const me_photo_config_t *pc, int n, const char *exe,
                                               const char *tmp_root, uint64_t memory_limit, char *err, size_t errlen);

/* me_montage_film() of clips in an idle decoder (waiting for one), reading src in this
 * process as the child asks, telling progress (may be NULL; non-zero stops: ME_EDRAINING),
 * then take with the film, *out the result (no poster pixels) and *poster the poster's
 * variants (release both either way). Same codes as me_montage_film(), plus ME_EBUSY (the
 * child died, stalled or broke the protocol: out->detail says which), ME_EINTERNAL (it could
 * not set itself up or confine itself), and take's. Thread-safe. */
int me_montage_decoders_process(me_montage_decoders_t *d, const me_montage_params_t *mp, const me_montage_clip_t *clips,
                                const me_montage_source_t *src, me_montage_progress_fn progress,
                                me_montage_take_fn take, void *ctx, me_montage_result_t *out,
                                me_photo_result_t *poster) ME_MUST_CHECK;

/* Ends the processes and removes their directories. NULL is a no-op. */
void me_montage_decoders_free(me_montage_decoders_t *d);

/* The montage decoder's protocol (decoder_wire.h): its params are a me_montage_params_t (its
 * nclips at most ME_MONTAGE_CLIPS_MAX), its result a me_montage_result_t, its inputs 2 per
 * clip; for the fuzzer (tests/fuzz/fuzz_decoder_wire.c). */
const me_decoder_wire_t *me_montage_wire(void);

/* The child's side (`mediaedge montage-decoder`, socket on fd 3). Its exit status. */
int me_montage_sandbox_child(void);

#endif
