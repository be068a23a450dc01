/* montage_cli.c: `mediaedge montage-film`: a film from local files, as the server makes one
 * (tests, benchmarks, trying a clip). */
#include "server/media/montage/montage_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include "server/media/montage/montage_sandbox.h"

typedef struct {
    int fds[2 * ME_MONTAGE_CLIPS_MAX];
    const char *out;
} files_t;

static int read_file(void *ctx, int input, uint64_t offset, void *buf, size_t len, size_t *got)
{
    files_t *f = ctx;
    ssize_t n;
    *got = 0;
    if (f->fds[input] < 0)
        return ME_EIO;
    do
        n = pread(f->fds[input], buf, len, (off_t)offset);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return ME_EIO;
    *got = (size_t)n;
    return 0;
}

/* Copies the film the child made to the output path. */
static int take(void *ctx, const me_montage_result_t *r, const char *path)
{
    files_t *f = ctx;
    char buf[1 << 16];
    int in = open(path, O_RDONLY | O_CLOEXEC), out = open(f->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    ssize_t n = 0;
    (void)r;
    while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
        if (write(out, buf, (size_t)n) != n) {
            n = -1;
            break;
        }
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) != 0)
        n = -1;
    return in >= 0 && out >= 0 && n == 0 ? 0 : ME_EIO;
}

/* Opens path as input i; its size into *bytes. 0 or -1. */
static int open_input(files_t *f, int i, const char *path, uint64_t *bytes)
{
    struct stat st;
    if (path == NULL)
        return 0;
    if ((f->fds[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(f->fds[i], &st) != 0) {
        fprintf(stderr, "mediaedge montage-film: %s: %s\n", path, strerror(errno));
        return -1;
    }
    *bytes = (uint64_t)st.st_size;
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: mediaedge montage-film SPEC.json OUT.mp4 [--sandbox]\n"
                    "  SPEC: {\"clips\":[{\"kind\":\"video\"|\"photo\",\"file\",\"small\",\"width\",\"height\","
                    "\"duration\",\"start\",\"caption\"},...],\"preset\",\"crf\",\"threads\"}\n");
    return 2;
}

int me_montage_cli(int argc, char **argv, const me_photo_config_t *pc)
{
    static me_montage_clip_t clips[ME_MONTAGE_CLIPS_MAX];
    static files_t files;
    me_montage_params_t mp = {.preset = "veryfast", .crf = 23, .audio_kbps = 128};
    me_montage_result_t r = {0};
    me_photo_result_t poster = {0};
    json_error_t jerr;
    json_t *spec, *c;
    size_t i;
    int sandbox = argc == 4 && strcmp(argv[3], "--sandbox") == 0, rc, status = 1;

    if (argc != 3 && !sandbox)
        return usage();
    if ((spec = json_load_file(argv[1], 0, &jerr)) == NULL) {
        fprintf(stderr, "mediaedge montage-film: %s: %s\n", argv[1], jerr.text);
        return 2;
    }
    for (i = 0; i < 2 * ME_MONTAGE_CLIPS_MAX; i++)
        files.fds[i] = -1;
    files.out = argv[2];
    if (json_is_string(json_object_get(spec, "preset")))
        snprintf(mp.preset, sizeof(mp.preset), "%s", json_string_value(json_object_get(spec, "preset")));
    if (json_is_integer(json_object_get(spec, "crf")))
        mp.crf = (int)json_integer_value(json_object_get(spec, "crf"));
    if (json_is_integer(json_object_get(spec, "threads")))
        mp.threads = (int)json_integer_value(json_object_get(spec, "threads"));
    json_array_foreach(json_object_get(spec, "clips"), i, c)
    {
        me_montage_clip_t *mc = &clips[i];
        json_t *start = json_object_get(c, "start");
        if (i >= ME_MONTAGE_CLIPS_MAX)
            goto exit;
        mc->kind = strcmp(json_string_value(json_object_get(c, "kind")) ?: "", "photo") == 0 ? ME_MONTAGE_PHOTO
                                                                                             : ME_MONTAGE_VIDEO;
        mc->width = (int)json_integer_value(json_object_get(c, "width"));
        mc->height = (int)json_integer_value(json_object_get(c, "height"));
        mc->duration = json_number_value(json_object_get(c, "duration"));
        mc->start = json_is_number(start) ? json_number_value(start) : -1;
        snprintf(mc->caption, sizeof(mc->caption), "%s", json_string_value(json_object_get(c, "caption")) ?: "");
        if (open_input(&files, 2 * (int)i, json_string_value(json_object_get(c, "file")), &mc->bytes) != 0 ||
            open_input(&files, 2 * (int)i + 1, json_string_value(json_object_get(c, "small")), &mc->small_bytes) != 0)
            goto exit;
        mp.nclips = (int)i + 1;
    }
    me_montage_source_t src = {read_file, &files};
    if (sandbox) {
        char err[256], exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        const char *tmp = getenv("TMPDIR");
        me_montage_decoders_t *d = NULL;
        if (n > 0) {
            exe[n] = '\0';
            d = me_montage_decoders_new(pc, 1, exe, tmp != NULL && *tmp ? tmp : "/tmp", 2ull << 30, err, sizeof(err));
        }
        if (d == NULL) {
            fprintf(stderr, "mediaedge montage-film: %s\n", n > 0 ? err : "cannot find this program");
            goto exit;
        }
        rc = me_montage_decoders_process(d, &mp, clips, &src, NULL, take, &files, &r, &poster);
        me_montage_decoders_free(d);
    } else
        rc = me_montage_film(&mp, clips, &src, argv[2], NULL, NULL, &r);
    if (rc != 0) {
        printf("{\"error\":\"%s\",\"clip\":%d,\"detail\":\"%s\"}\n", me_err_code(rc), r.failed_clip, r.detail);
        goto exit;
    }
    printf("{\"width\":%d,\"height\":%d,\"duration\":%.3f,\"bytes\":%llu,\"poster_variants\":%d,\"starts\":[", r.width,
           r.height, r.duration, (unsigned long long)r.bytes, poster.noutputs);
    for (int k = 0; k < mp.nclips; k++)
        printf("%s%.3f", k ? "," : "", r.starts[k]);
    printf("]}\n");
    status = 0;
exit:
    for (i = 0; i < 2 * ME_MONTAGE_CLIPS_MAX; i++)
        if (files.fds[i] >= 0)
            close(files.fds[i]);
    me_photo_result_free(&poster);
    me_montage_result_free(&r);
    json_decref(spec);
    return status;
}
