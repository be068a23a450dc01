/* fuzz_photo_wire.c: what a compromised photo decoder child could send back to the server
 * (me_photo_wire_recv in server/media/sandbox/photo_sandbox.c; a video's poster comes the
 * same way): the bytes arrive on a socket, the parent must refuse anything out of protocol
 * without trusting a length, a pointer or an index of the child's, and free what it took.
 * ME_FUZZ_WRITE_SEED=DIR writes well-formed answers there as seeds and exits. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "server/core/clock.h"
#include "server/media/sandbox/photo_sandbox.h"

static me_photo_config_t pc;

static void setup(void)
{
    me_config_t cfg;
    if (me_config_defaults(&cfg) != 0)
        abort();
    me_photo_config_init(&pc, &cfg);
    me_config_free(&cfg);
}

/* A seed: the answer a real child gives for n outputs of a few bytes each. */
static void write_seed(const char *dir, int n)
{
    me_photo_result_t r;
    char path[4096], bytes[8] = "JPEGDATA";
    memset(&r, 0, sizeof(r));
    snprintf(r.format, sizeof(r.format), "jpeg");
    snprintf(r.content_type, sizeof(r.content_type), "image/jpeg");
    r.width = 640, r.height = 480, r.orientation = 1;
    r.noutputs = n;
    for (int i = 0; i < n; i++) {
        r.outputs[i].name = pc.variants[(i / 2) % pc.nvariants].name;
        r.outputs[i].ext = i % 2 ? "webp" : "jpg";
        r.outputs[i].width = 32, r.outputs[i].height = 24;
        r.outputs[i].data = bytes, r.outputs[i].len = sizeof(bytes);
    }
    snprintf(path, sizeof(path), "%s/answer-%d", dir, n);
    FILE *f = fopen(path, "wb");
    int sv[2];
    if (f == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || me_photo_wire_send(sv[0], &pc, &r) != 0)
        abort();
    close(sv[0]);
    char buf[65536];
    ssize_t got;
    while ((got = read(sv[1], buf, sizeof(buf))) > 0)
        fwrite(buf, 1, (size_t)got, f);
    fclose(f);
    close(sv[1]);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    setup();
    const char *dir = getenv("ME_FUZZ_WRITE_SEED");
    if (dir != NULL) {
        write_seed(dir, 0);
        write_seed(dir, 2);
        write_seed(dir, 2 * pc.nvariants);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    me_photo_result_t out;
    if (size > 65536) /* stays within the socket's buffer: written at once, then closed */
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int sndbuf = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    if (size > 0 && write(sv[0], data, size) != (ssize_t)size)
        abort();
    close(sv[0]); /* the child is gone after its answer: a read past it ends */
    if (me_photo_wire_recv(sv[1], &pc, me_clock_mono_ms() + 1000, &out) == 0) {
        if (out.noutputs < 0 || out.noutputs > ME_PHOTO_OUTPUTS_MAX)
            abort();
        for (int i = 0; i < out.noutputs; i++) {
            const me_photo_output_t *o = &out.outputs[i];
            if (o->name == NULL || o->ext == NULL || o->data == NULL || o->len == 0)
                abort();
            volatile char last = ((const char *)o->data)[o->len - 1]; /* all of it ours and readable */
            (void)last;
        }
    }
    me_photo_result_free(&out);
    close(sv[1]);
    return 0;
}
