/* fuzz_decoder_wire.c: what a compromised video or montage decoder child could send back to
 * the server (me_decoder_wire_recv in server/media/sandbox/decoder_wire.c, with the video's
 * and the montage's protocols, video_sandbox.c and montage_sandbox.c): progress, ranges asked
 * for (served from a small source, whose answers go back on the socket), the result and the
 * poster's variants. The parent must refuse anything out of protocol without trusting a
 * length, a count, a code, a pointer or a string of the child's, and free what it took.
 *
 * Input: a byte choosing the protocol (bit 0: montage), a byte for the montage's clip count
 * (1 + b % 8), then the child's bytes. ME_FUZZ_WRITE_SEED=DIR writes the answers a real child
 * gives there as seeds and exits; ME_FUZZ_VERBOSE=1 says how each input ended. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "server/core/clock.h"
#include "server/media/montage/montage_sandbox.h"
#include "server/media/sandbox/decoder_wire.h"
#include "server/media/sandbox/photo_sandbox.h"
#include "server/media/sandbox/video_sandbox.h"

#define SOURCE_SIZE 4096 /* bytes of each input the source has */
#define STOP_AT 3        /* progress that says done == 3 stops the job */

static me_photo_config_t pc;
static me_video_params_t vp;
static me_montage_params_t mp;
static int verbose; /* ME_FUZZ_VERBOSE=1: how each input ended, for replaying seeds */

static int source_read(void *ctx, int input, uint64_t offset, void *buf, size_t len, size_t *got)
{
    (void)ctx;
    *got = 0;
    if (offset == 13) /* a storage failure, answered to the child */
        return ME_EIO;
    if (offset >= SOURCE_SIZE)
        return 0;
    size_t n = len < 64 ? len : 64; /* small answers: the socket's buffer holds them all */
    if (n > SOURCE_SIZE - offset)
        n = SOURCE_SIZE - offset;
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)buf)[i] = (uint8_t)(offset + i + (uint64_t)input);
    *got = n;
    return 0;
}

static int told(void *ctx, const me_decoder_msg_t *m)
{
    (void)ctx;
    return m->done == STOP_AT;
}

static void job_for(int montage, int nclips, me_decoder_job_t *job)
{
    memset(job, 0, sizeof(*job));
    job->pc = &pc;
    job->progress = told;
    if (montage) {
        mp.nclips = nclips;
        job->wire = me_montage_wire(), job->params = &mp, job->ninputs = 2 * nclips, job->read = source_read;
    } else {
        job->wire = me_video_wire(), job->params = &vp;
    }
}

/* Every string of r ends within its array. */
#define TERMINATED(s) (memchr((s), '\0', sizeof(s)) != NULL)

static void check_video(int ret, const me_video_result_t *r)
{
    const me_video_facts_t *f = &r->facts;
    if (r->poster != NULL || !TERMINATED(f->container) || !TERMINATED(f->video_codec) || !TERMINATED(f->audio_codec) ||
        !TERMINATED(f->dynamic_range) || !TERMINATED(f->color_primaries) || !TERMINATED(f->color_transfer) ||
        !TERMINATED(f->taken_at) || !TERMINATED(r->message) || !TERMINATED(r->detail) || !isfinite(f->duration) ||
        f->duration < 0)
        abort();
    if (r->noutputs != (ret == 0 ? vp.nrenditions : 0))
        abort();
    for (int i = 0; i < r->noutputs; i++) {
        const me_video_output_t *o = &r->outputs[i];
        if (strcmp(o->name, vp.renditions[i].name) != 0 || o->width > vp.renditions[i].size ||
            o->height > vp.renditions[i].size || o->bytes == 0 || o->bytes > ME_VIDEO_SANDBOX_OUTPUT_MAX)
            abort();
    }
}

static void check_montage(int ret, const me_montage_result_t *r)
{
    if (r->poster != NULL || !TERMINATED(r->detail) || r->failed_clip < -1 || r->failed_clip >= mp.nclips)
        abort();
    if (ret == 0 && (r->bytes == 0 || fabs(r->duration - mp.nclips) > 0.5))
        abort();
    for (int i = 0; ret == 0 && i < mp.nclips; i++)
        if (!isfinite(r->starts[i]) || r->starts[i] < 0 || r->starts[i] > 86400)
            abort();
}

static void check_poster(int ret, const me_photo_result_t *p)
{
    if (p->noutputs != (ret == 0 ? 2 * pc.nvariants : 0))
        abort();
    for (int i = 0; i < p->noutputs; i++) {
        const me_photo_output_t *o = &p->outputs[i];
        if (o->name == NULL || o->ext == NULL || o->data == NULL || o->len == 0)
            abort();
        volatile char last = ((const char *)o->data)[o->len - 1]; /* all of it ours and readable */
        (void)last;
    }
}

/* ---- seeds: what a real child sends ---- */

typedef struct {
    uint8_t *data;
    size_t len;
} seed_t;

static void add(seed_t *s, const void *p, size_t n)
{
    if ((s->data = realloc(s->data, s->len + n)) == NULL)
        abort();
    memcpy(s->data + s->len, p, n);
    s->len += n;
}

static void add_msg(seed_t *s, uint32_t magic, uint32_t kind, int ret, int input, uint64_t offset, uint64_t len,
                    double done, double total)
{
    me_decoder_msg_t m = {magic, kind, ret, input, offset, len, done, total, 1};
    add(s, &m, sizeof(m));
}

static void add_poster(seed_t *s, int n)
{
    me_photo_result_t r;
    char bytes[8] = "JPEGDATA";
    int sv[2];
    memset(&r, 0, sizeof(r));
    snprintf(r.format, sizeof(r.format), "raw");
    r.width = 64, r.height = 36, r.orientation = 1, r.noutputs = n;
    for (int i = 0; i < n; i++) {
        r.outputs[i].name = pc.variants[(i / 2) % pc.nvariants].name;
        r.outputs[i].ext = i % 2 ? "webp" : "jpg";
        r.outputs[i].width = 32, r.outputs[i].height = 18;
        r.outputs[i].data = bytes, r.outputs[i].len = sizeof(bytes);
    }
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || me_photo_wire_send(sv[0], &pc, &r) != 0)
        abort();
    close(sv[0]);
    char buf[65536];
    ssize_t got;
    while ((got = read(sv[1], buf, sizeof(buf))) > 0)
        add(s, buf, (size_t)got);
    close(sv[1]);
}

/* The end of an answer: RESULT with ret, the result struct, a poster of n variants. */
static void add_answer(seed_t *s, uint32_t magic, int ret, const void *result, size_t len, int n)
{
    add_msg(s, magic, ME_DECODER_MSG_RESULT, ret, 0, 0, 0, 0, 0);
    add(s, result, len);
    add_poster(s, n);
}

static void write_seed(const char *dir, const char *name, seed_t *s)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(s->data, 1, s->len, f) != s->len || fclose(f) != 0)
        abort();
    free(s->data);
    s->data = NULL, s->len = 0;
}

static void write_seeds(const char *dir)
{
    const uint32_t vm = me_video_wire()->magic, mm = me_montage_wire()->magic;
    seed_t s = {NULL, 0};
    me_video_result_t v;
    me_montage_result_t m;

    /* a video made: progress, the result, every rendition, the poster */
    memset(&v, 0, sizeof(v));
    snprintf(v.facts.container, sizeof(v.facts.container), "mp4");
    snprintf(v.facts.video_codec, sizeof(v.facts.video_codec), "h264");
    v.facts.duration = 2, v.facts.width = 640, v.facts.height = 360, v.facts.fps = 30;
    v.noutputs = vp.nrenditions;
    for (int i = 0; i < vp.nrenditions; i++) {
        snprintf(v.outputs[i].name, sizeof(v.outputs[i].name), "%s", vp.renditions[i].name);
        v.outputs[i].width = 2, v.outputs[i].height = 2, v.outputs[i].duration = 2, v.outputs[i].bytes = 1000;
    }
    add(&s, "\x00\x00", 2);
    add_msg(&s, vm, ME_DECODER_MSG_PROGRESS, 0, 0, 0, 0, 1, 2);
    add_msg(&s, vm, ME_DECODER_MSG_PROGRESS, 0, 0, 0, 0, 2, 2);
    add_answer(&s, vm, 0, &v, sizeof(v), 2 * pc.nvariants);
    write_seed(dir, "video-made", &s);

    /* a video refused: the code, an empty result, no poster */
    memset(&v, 0, sizeof(v));
    snprintf(v.message, sizeof(v.message), "Not a video we accept.");
    add(&s, "\x00\x00", 2);
    add_answer(&s, vm, ME_EMEDIA, &v, sizeof(v), 0);
    write_seed(dir, "video-refused", &s);

    /* a video stopped by the server while going */
    add(&s, "\x00\x00", 2);
    add_msg(&s, vm, ME_DECODER_MSG_PROGRESS, 0, 0, 0, 0, STOP_AT, 10);
    write_seed(dir, "video-stopped", &s);

    /* a montage of 2 clips made: ranges read, progress, the result, the poster */
    memset(&m, 0, sizeof(m));
    m.width = 1280, m.height = 720, m.duration = 2, m.bytes = 5000, m.failed_clip = -1, m.starts[1] = 0.5;
    add(&s, "\x01\x01", 2);
    add_msg(&s, mm, ME_DECODER_MSG_READ, 0, 0, 0, 4096, 0, 0);
    add_msg(&s, mm, ME_DECODER_MSG_READ, 0, 2, 13, 100, 0, 0);
    add_msg(&s, mm, ME_DECODER_MSG_PROGRESS, 0, 0, 0, 0, 1, 2);
    add_msg(&s, mm, ME_DECODER_MSG_READ, 0, 3, 4000, 1 << 20, 0, 0);
    add_msg(&s, mm, ME_DECODER_MSG_PROGRESS, 0, 0, 0, 0, 2, 2);
    add_answer(&s, mm, 0, &m, sizeof(m), 2 * pc.nvariants);
    write_seed(dir, "montage-made", &s);

    /* a montage whose second clip could not be read */
    memset(&m, 0, sizeof(m));
    m.failed_clip = 1;
    snprintf(m.detail, sizeof(m.detail), "clip 1: not a video");
    add(&s, "\x01\x01", 2);
    add_msg(&s, mm, ME_DECODER_MSG_READ, 0, 1, 0, 64, 0, 0);
    add_answer(&s, mm, ME_ECORRUPT, &m, sizeof(m), 0);
    write_seed(dir, "montage-corrupt", &s);

    /* a montage stopped by the server */
    add(&s, "\x01\x07", 2);
    add_msg(&s, mm, ME_DECODER_MSG_PROGRESS, 0, 0, 0, 0, STOP_AT, 8);
    write_seed(dir, "montage-stopped", &s);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    me_config_t cfg;
    if (me_config_defaults(&cfg) != 0)
        abort();
    me_photo_config_init(&pc, &cfg);
    me_config_free(&cfg);
    me_video_params_default(&vp);
    memset(&mp, 0, sizeof(mp));
    snprintf(mp.preset, sizeof(mp.preset), "veryfast");
    verbose = getenv("ME_FUZZ_VERBOSE") != NULL;
    const char *dir = getenv("ME_FUZZ_WRITE_SEED");
    if (dir != NULL) {
        write_seeds(dir);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    union {
        me_video_result_t video;
        me_montage_result_t montage;
    } out;
    me_photo_result_t poster;
    me_decoder_job_t job;
    char why[160];
    int sv[2], ret = 1, montage;

    if (size < 2 || size > 65536) /* within the socket's buffer: written at once, then shut */
        return 0;
    montage = data[0] & 1;
    job_for(montage, 1 + data[1] % 8, &job);
    data += 2, size -= 2;

    /* the child's bytes, direct: the checks are functions of a buffer */
    me_decoder_msg_t m;
    if (me_decoder_wire_message(&job, data, size < sizeof(m) ? size : sizeof(m), &m) == ME_DECODER_MSG_READ &&
        (m.len == 0 || m.len > ME_DECODER_READ_MAX || m.input < 0 || m.input >= job.ninputs))
        abort();

    /* and on a socket, as the parent reads them */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int buf = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
    if (size > 0 && write(sv[0], data, size) != (ssize_t)size)
        abort();
    shutdown(sv[0], SHUT_WR); /* the child has said all; the ranges served to it still go in */
    memset(&out, 0, sizeof(out));
    job.begun = me_clock_mono_ms(), job.deadline = job.begun + 2000;
    int rc = me_decoder_wire_recv(sv[1], &job, &out, &poster, &ret, why, sizeof(why));
    if (verbose)
        fprintf(stderr, "%s: %s\n", job.wire->name,
                rc == 0   ? (ret == 0 ? "made" : "refused by the child")
                : rc == 1 ? "stopped"
                          : why);
    if (rc == 0) {
        int i;
        for (i = 0; i < (int)job.wire->ncodes && job.wire->codes[i] != ret; i++)
            ;
        if (i == (int)job.wire->ncodes)
            abort(); /* a code the protocol does not list */
        if (montage)
            check_montage(ret, &out.montage);
        else
            check_video(ret, &out.video);
        check_poster(ret, &poster);
        job.wire->release(&out);
        me_photo_result_free(&poster);
    } else if (rc == 1) {
        if (!job.stopped || job.stopped_at != STOP_AT)
            abort();
    } else if (rc != -1 || why[0] == '\0') {
        abort(); /* a refusal always says why */
    }
    close(sv[0]);
    close(sv[1]);
    return 0;
}
