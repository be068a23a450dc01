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
 * result and each output's bytes). The parent checks every field of a reply. */
#ifndef ME_PHOTO_SANDBOX_H
#define ME_PHOTO_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include "server/error.h"
#include "server/photo.h"

typedef struct me_photo_sandbox me_photo_sandbox_t;

/* A decoder process for pc (kept by pointer: it must outlive the sandbox), running exe (this
 * binary) with a scratch directory made under tmp_root, each photo allowed timeout_ms. The
 * process starts on the first photo. NULL when out of memory or the scratch directory could
 * not be made. */
me_photo_sandbox_t *me_photo_sandbox_new(const me_photo_config_t *pc, const char *exe, const char *tmp_root,
                                         uint64_t timeout_ms);

/* me_photo_process() in the child: the same contract and results, and also
 *   ME_EBUSY      the decoder died, stalled past the timeout or answered nonsense (out->detail
 *                 says which); it was killed and the next call starts another;
 *   ME_EINTERNAL  also when the decoder could not set up libvips or confine itself (this
 *                 machine's fault, logged as an error).
 * One thread at a time per sandbox. */
int me_photo_sandbox_process(me_photo_sandbox_t *sb, const void *data, size_t len,
                             me_photo_result_t *out) ME_MUST_CHECK;

/* The decoder's pid, 0 when none runs (for tests and logs). */
int me_photo_sandbox_pid(const me_photo_sandbox_t *sb);

/* Stops the child (it exits when its socket closes) and removes the scratch directory. NULL is
 * a no-op. */
void me_photo_sandbox_free(me_photo_sandbox_t *sb);

/* The child's side, run by `mediaedge photo-decoder` with its socket on fd: reads the
 * configuration, sets up libvips, confines itself, then answers photos until the socket
 * closes. Returns the process's exit status (0 at a clean end). */
int me_photo_sandbox_child(int fd);

#endif
