/* decoder_wire.h: the wire every long-running decoder child speaks (the video decoder,
 * video_sandbox.h; the montage decoder, montage_sandbox.h), both sides of it, and every check
 * the parent makes on what a child sends back. The photo decoder (photo_sandbox.h) keeps its
 * own request-and-reply wire; its result is also the poster's variants here.
 *
 * A conversation, on the socket of a child (child.h), all in this machine's byte order:
 *   parent  hello (the protocol's magic, the sizes of the structs that cross, the cap on the
 *           child's data segment), then the photo configuration; once per process
 *   parent  per job: a request header (magic, a count), then the protocol's own parts
 *   child   any number of messages, fixed size (me_decoder_msg_t):
 *             PROGRESS  done of total (and the video's weight), checked by the protocol
 *             READ      up to len bytes of an input at offset (protocols with a reader):
 *                       answered by a reply header and the bytes
 *           then one RESULT message (the child's code), the protocol's result struct and the
 *           poster's variants as the photo wire sends them (photo_sandbox.h).
 *
 * The child is hostile: it may have been taken over by the file it decodes. Every message is
 * checked before anything acts on it: the magic, the kind (READ only where the protocol
 * reads), the code (one the protocol lists), an input and a length within their bounds,
 * progress the protocol accepts; the result struct is checked by the protocol (strings cut to
 * their arrays, its pointers never taken, counts and sizes in range), the poster's variants
 * by the photo wire and their count (every variant twice on success, none on failure). The
 * checks are functions of byte buffers (me_decoder_wire_message, me_decoder_wire_result), so
 * that a fuzzer reaches them (tests/fuzz/fuzz_decoder_wire.c). */
#ifndef ME_DECODER_WIRE_H
#define ME_DECODER_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "server/core/error.h"
#include "server/media/photo/photo.h"
#include "server/media/sandbox/child.h"

#define ME_DECODER_READ_MAX (1u << 20) /* bytes of one range a child may ask for */

enum { ME_DECODER_MSG_PROGRESS = 1, ME_DECODER_MSG_READ = 2, ME_DECODER_MSG_RESULT = 3 };

/* A child's message, as it crosses. */
typedef struct {
    uint32_t magic, kind;
    int32_t ret, input;         /* RESULT: the child's code; READ: the input */
    uint64_t offset, len;       /* READ */
    double done, total, weight; /* PROGRESS (weight: the protocol's, e.g. a video's pixels a second) */
} me_decoder_msg_t;

/* The hello, as it crosses (photo_size is filled by me_decoder_start). */
typedef struct {
    uint32_t magic, photo_size, params_size, item_size; /* item: a clip, for protocols with a list */
    uint64_t memory_limit;                              /* the cap on the child's data segment (0: none) */
} me_decoder_hello_t;

/* One protocol: what it allows and how it checks what is its own. */
typedef struct {
    const char *name;   /* "video", "montage": for logs */
    uint32_t magic;     /* in every struct that crosses */
    size_t result_size; /* bytes of the result struct after RESULT */
    const int *codes;   /* the codes a child may answer with (0 among them) */
    size_t ncodes;
    int reads; /* whether the child may ask for ranges (READ) */
    /* Is progress m acceptable for the job's params? 1 or 0. */
    int (*progress_ok)(const void *params, const me_decoder_msg_t *m);
    /* The deadline once progress m came (begun: when the job was sent); NULL: fixed. */
    int64_t (*deadline)(const void *params, int64_t begun, const me_decoder_msg_t *m);
    /* Checks result (result_size bytes, the child's) for the job's params and the child's
     * code ret, in place: strings cut to their arrays, pointers zeroed. 0, or -1 with why. */
    int (*result)(const void *params, int ret, void *result, char *why, size_t whylen);
    /* Frees what result holds (its pointers must be ours or NULL) and empties it. */
    void (*release)(void *result);
} me_decoder_wire_t;

/* One job on the parent's side. */
typedef struct {
    const me_decoder_wire_t *wire;
    const void *params;          /* the protocol's, for its checks */
    const me_photo_config_t *pc; /* the poster's variants */
    int ninputs;                 /* READ: inputs 0 .. ninputs-1 */
    int (*read)(void *ctx, int input, uint64_t offset, void *buf, size_t len, size_t *got); /* NULL: no READ */
    void *read_ctx;
    int (*progress)(void *ctx, const me_decoder_msg_t *m); /* NULL: not told; non-zero stops */
    void *progress_ctx;
    /* filled by me_decoder_wire_run() */
    int stopped;       /* 1 when progress stopped the job */
    double stopped_at; /* the done of the message it was told */
    int64_t begun, deadline;
} me_decoder_job_t;

/* ---- the parent's side ---- */

/* The decoders of one protocol (me_video_decoders_t, me_montage_decoders_t): the poster's
 * configuration (kept by pointer), the cap on each child's data segment, the children. */
struct me_decoders {
    const me_photo_config_t *pc;
    uint64_t memory_limit;
    me_child_pool_t *children;
};

/* n children running `exe command` (started with their first job), scratch directories in
 * tmp_root/mediaedge-decoders-<pid><suffix>/<slot>. NULL with err set on failure. */
struct me_decoders *me_decoders_new(const me_photo_config_t *pc, int n, const char *exe, const char *command,
                                    const char *tmp_root, const char *suffix, uint64_t memory_limit, char *err,
                                    size_t errlen);

/* Ends the children and removes their directories. NULL is a no-op. */
void me_decoders_free(struct me_decoders *d);

/* Makes sure c's process runs and, when it is a new one, greets it with hello and pc within
 * timeout_ms. 0, or -1 with why set (the child is stopped). */
int me_decoder_start(me_child_t *c, me_decoder_hello_t hello, const me_photo_config_t *pc, int64_t timeout_ms,
                     char *why, size_t whylen);

/* Checks one message (len bytes at buf) for job: the magic, the kind the protocol allows, a
 * RESULT's code, a READ's input and length, a PROGRESS's numbers. Fills *m. The message's
 * kind, or -1 (out of protocol). */
int me_decoder_wire_message(const me_decoder_job_t *job, const void *buf, size_t len, me_decoder_msg_t *m);

/* Checks a result struct (len bytes at buf, the child's; len must be the protocol's size)
 * for the child's code ret, in place. 0, or -1 with why set. */
int me_decoder_wire_result(const me_decoder_job_t *job, int ret, void *buf, size_t len, char *why, size_t whylen);

/* The conversation of one job on fd after the request was sent: messages until the RESULT
 * (ranges served with job->read, progress told), then the result into result (the
 * protocol's struct) and the poster's variants into *poster, everything checked, before
 * job->deadline (moved on by the protocol's deadline()). Returns 0 with *ret the child's code
 * (one of the protocol's); 1 when progress stopped the job (job->stopped, nothing kept);
 * -1 with why set (the child took too long, closed its socket or answered out of protocol):
 * result and poster are released either way but on 0. */
int me_decoder_wire_recv(int fd, me_decoder_job_t *job, void *result, me_photo_result_t *poster, int *ret, char *why,
                         size_t whylen) ME_MUST_CHECK;

/* One job in child c: sends the request (a header with count, then the parts) and receives as
 * above, timed from now with base_ms. Returns the child's code (its outputs still to be
 * checked by the caller); ME_EDRAINING when progress stopped it (the child is ended,
 * job->stopped set); or, when the child broke, me_child_fail()'s code with what happened in
 * detail, result and poster released. */
int me_decoder_run(me_child_t *c, me_decoder_job_t *job, uint32_t count, const struct iovec *parts, int nparts,
                   int64_t base_ms, void *result, me_photo_result_t *poster, char *detail, size_t dlen);

/* After the caller found an output of c wrong (why says which): releases result and poster
 * and ends the child. me_child_fail()'s code. */
int me_decoder_fail(me_child_t *c, const me_decoder_job_t *job, char *why, size_t whylen, void *result,
                    me_photo_result_t *poster, char *detail, size_t dlen);

/* ---- the child's side ---- */

/* Reads the hello (its magic and sizes must be want's) and the photo configuration, sets up
 * libvips and confines the process with the hello's memory limit. 0, or the exit status to
 * end with. */
int me_decoder_child_setup(const char *name, const me_decoder_hello_t *want, me_photo_config_t *pc);

/* A request header: 0 with *count, 1 at the socket's clean end, -1 when out of protocol. */
int me_decoder_child_request(uint32_t magic, uint32_t *count);

/* Sends progress. 0 or -1. */
int me_decoder_child_progress(uint32_t magic, double done, double total, double weight);

/* Asks the parent for up to len bytes (capped at ME_DECODER_READ_MAX) of input at offset
 * into buf; the source's contract (montage_film.h). Exits the process when the parent
 * answers out of protocol or is gone. */
int me_decoder_child_read(uint32_t magic, int input, uint64_t offset, void *buf, size_t len, size_t *got);

/* Sends the RESULT: ret, the result struct (result_size bytes; *pixels, its pointer to the
 * poster's pixels, crosses as NULL) and the poster's variants, which it then frees. 0 or -1. */
int me_decoder_child_result(uint32_t magic, int ret, void *result, size_t result_size, uint8_t **pixels,
                            const me_photo_config_t *pc, me_photo_result_t *poster);

#endif
