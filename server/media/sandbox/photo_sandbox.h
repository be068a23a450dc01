/* photo_sandbox.h: the photo pipeline (photo.h) in a confined child process (sandbox.h).
 *
 * Photos come from anyone, and the decoders (libjpeg, libpng, libheif/libde265, libwebp,
 * giflib) are large C code bases. The child is `mediaedge photo-decoder`, started with a
 * scrubbed environment and no configuration file read: it holds no token key, webhook
 * secret or storage credential, cannot open a socket, run a program or signal another
 * process, and sees only the system's libraries and a scratch directory of its own. A file
 * that crashes it (or takes it over) loses only that child: the caller gets ME_EBUSY and the
 * next call starts a fresh one.
 *
 * Wire (a socketpair on the child's fd 3, both ends on this machine and this binary): the
 * photo configuration once, then per photo a request (the file's bytes) and a reply (the
 * result and each output's bytes). The parent checks every field of a reply. The count of
 * busy cores is shared memory on the child's fd 4. */
#ifndef ME_PHOTO_SANDBOX_H
#define ME_PHOTO_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include "server/core/error.h"
#include "server/media/photo/photo.h"

typedef struct me_photo_decoders me_photo_decoders_t;

/* n decoder processes for pc (kept by pointer: it must outlive them), each running exe (this
 * binary) with a scratch directory of its own, in tmp_root/mediaedge-decoders-<pid> (those of
 * servers no longer running are removed first: a kill -9 leaves them), each photo allowed
 * timeout_ms. A process starts with its first photo. The decoders share one count of busy
 * cores (photo_cores.h), so that a photo alone borrows the idle ones and n photos at once
 * run on one core each. NULL with err set when out of memory or a directory or the shared
 * count could not be made. */
me_photo_decoders_t *me_photo_decoders_new(const me_photo_config_t *pc, int n, const char *exe,
                                           const char *tmp_root, uint64_t timeout_ms, char *err, size_t errlen);

/* me_photo_process() in an idle decoder (waiting for one when all n are busy): the same
 * contract and results, and also
 *   ME_EBUSY      the decoder died, stalled past the timeout or answered nonsense (out->detail
 *                 says which); it was killed and its next photo starts another;
 *   ME_EINTERNAL  also when the decoder could not set up libvips or confine itself (this
 *                 machine's fault, logged as an error).
 * Thread-safe. */
int me_photo_decoders_process(me_photo_decoders_t *d, const void *data, size_t len,
                              me_photo_result_t *out) ME_MUST_CHECK;

/* Ends the processes (SIGKILL: they hold nothing to save) and removes their scratch
 * directories. Call it when no photo is in a decoder. NULL is a no-op. */
void me_photo_decoders_free(me_photo_decoders_t *d);

/* The photo result on the wire (also a video's poster, video_sandbox.h): send writes r
 * (pointers zeroed, then each output's index and bytes); recv reads one into out, checking
 * every field against pc, before deadline (me_clock_mono_ms()). 0, or -1 (recv: release
 * out with me_photo_result_free() either way). */
int me_photo_wire_send(int fd, const me_photo_config_t *pc, const me_photo_result_t *r) ME_MUST_CHECK;
int me_photo_wire_recv(int fd, const me_photo_config_t *pc, int64_t deadline, me_photo_result_t *out) ME_MUST_CHECK;

/* The child's side, run by `mediaedge photo-decoder` (socket on fd 3, busy cores on fd 4):
 * reads the configuration, sets up libvips, confines itself, then answers photos until the
 * socket closes. Returns the process's exit status (0 at a clean end). */
int me_photo_sandbox_child(void);

#endif
