/* fuzz_photo_decode.c: a file from a stranger through the photo decoder's entry
 * (me_photo_process, what the decoder child runs): format sniffing, libvips' five loaders
 * behind our allow-list, EXIF, the pixel and byte caps, and the variants. The caps are small
 * (256 x 256 pixels, one 32-pixel variant) so that every input is quick; a file over them
 * must be refused from its header (ME_ETOOLARGE), not decoded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "server/media/photo/photo.h"

static me_photo_config_t pc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    me_config_t cfg;
    if (me_config_defaults(&cfg) != 0 || me_photo_init() != 0)
        abort();
    me_photo_config_init(&pc, &cfg);
    me_config_free(&cfg);
    pc.max_pixels = 256 * 256;
    pc.max_bytes = 1 << 20;
    pc.threads = 1;
    pc.nvariants = 1;
    if (!me_photo_variant_parse("thumb:32x32", 11, &pc.variants[0]))
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    me_photo_result_t out;
    int ret = me_photo_process(&pc, data, size, &out);
    if (ret == 0) {
        if (out.noutputs != 2 * pc.nvariants || (uint64_t)out.width * (uint64_t)out.height > pc.max_pixels)
            abort();
        for (int i = 0; i < out.noutputs; i++)
            if (out.outputs[i].data == NULL || out.outputs[i].len == 0 || out.outputs[i].width > 32 ||
                out.outputs[i].height > 32)
                abort();
    } else if (out.noutputs != 0) {
        abort(); /* a failure holds no variant */
    }
    me_photo_result_free(&out);
    return 0;
}
