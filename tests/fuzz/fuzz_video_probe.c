/* fuzz_video_probe.c: a video from a stranger through our limits (server/media/video/):
 * me_video_probe reads the header (libavformat's MP4/MOV demuxer, the caps checked before
 * anything is decoded); an input it accepts is then demuxed, decoded and transcoded by
 * me_video_transcode with small caps (128 x 128, 2 s, one 64-pixel rendition, ultrafast), so
 * that seeds of real tiny videos reach the decoders without any input taking long. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "server/media/video/video.h"

static me_video_params_t vp;
static char outdir[] = "/tmp/me-fuzz-video-XXXXXX";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    me_video_params_default(&vp);
    vp.nrenditions = 1;
    if (!me_video_rendition_parse("tiny:64", 7, &vp.renditions[0]))
        abort();
    snprintf(vp.preset, sizeof(vp.preset), "ultrafast");
    vp.max_duration = 2;
    vp.caps.max_bytes = 1 << 20;
    vp.caps.max_width = 128, vp.caps.max_height = 128;
    vp.caps.max_fps = 60;
    if (mkdtemp(outdir) == NULL)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char message[256], detail[256];
    me_video_facts_t facts;
    int fd = memfd_create("fuzz-video", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    if (size > 0 && write(fd, data, size) != (ssize_t)size)
        abort();
    if (me_video_probe(&vp, fd, &facts, message, sizeof(message), detail, sizeof(detail)) == 0) {
        if (facts.width > vp.caps.max_width || facts.height > vp.caps.max_height)
            abort(); /* accepted past the caps */
        me_video_result_t out;
        memset(&out, 0, sizeof(out));
        int ret = me_video_transcode(&vp, fd, outdir, NULL, NULL, &out);
        if (ret == 0 && (out.noutputs != 1 || out.outputs[0].width > 64 || out.outputs[0].height > 64))
            abort();
        me_video_result_free(&out);
        char path[sizeof(outdir) + 32];
        snprintf(path, sizeof(path), "%s/tiny.mp4", outdir);
        unlink(path);
    }
    close(fd);
    return 0;
}
