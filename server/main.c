/* main.c: the mediaedge command: serve, check-config, token, version. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <h2o.h>
#include <openssl/crypto.h>
#include "server/app.h"
#include "server/core/config.h"
#include "server/core/log.h"
#include "server/core/log_config.h"
#include "server/media/photo/photo.h"
#include "server/media/sandbox/photo_sandbox.h"
#include "server/media/sandbox/video_sandbox.h"
#include "server/media/montage/montage_cli.h"
#include "server/media/montage/montage_sandbox.h"
#include "server/media/video/video.h"
#include "server/http/server.h"
#include "server/auth/token.h"

extern char **environ;

static int usage(FILE *out)
{
    fprintf(out, "usage: mediaedge serve [--config FILE] [--announce]\n"
                 "       mediaedge check-config [--config FILE]\n"
                 "       mediaedge token --scope upload|view|admin|montage --user ID --album ID [--plan free|premium]\n"
                 "                       [--client app|browser] [--ttl SECONDS] [--max-bytes N] [--ref TEXT]\n"
                 "                       [--config FILE]\n"
                 "       mediaedge photo-variants FILE OUTDIR [--config FILE]\n"
                 "       mediaedge montage-film SPEC.json OUT.mp4 [--sandbox]\n"
                 "       mediaedge video-transcode FILE OUTDIR [--config FILE] [--plan NAME] [--max-duration SECONDS]\n"
                 "                       [--renditions LIST] [--preset NAME] [--crf N] [--threads N] [--progress]\n"
                 "                       [--sandbox [--max-memory BYTES]]\n"
                 "       mediaedge version\n"
                 "The configuration is FILE, else $MEDIAEDGE_CONFIG, else " ME_CONFIG_DEFAULT_PATH
                 " when it exists, else the\nembedded defaults; MEDIAEDGE_<SECTION>_<KEY> variables override it.\n");
    return out == stderr ? 2 : 0;
}

/* Loads and resolves the configuration; on error prints "file:line: what is wrong" and
 * returns 2 (cfg must still be freed). */
static int load_config(me_config_t *cfg, const char *path)
{
    char err[1024];
    if (path == NULL)
        path = getenv("MEDIAEDGE_CONFIG");
    if (path == NULL && access(ME_CONFIG_DEFAULT_PATH, F_OK) == 0)
        path = ME_CONFIG_DEFAULT_PATH;
    if (me_config_load(cfg, path, environ, err, sizeof(err)) != 0 ||
        me_config_check_production(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    me_config_resolve(cfg);
    return 0;
}

static int parse_enum(const char *value, const char *a, const char *b, int *out)
{
    if (strcmp(value, a) == 0)
        *out = 1;
    else if (strcmp(value, b) == 0)
        *out = 2;
    else
        return 0;
    return 1;
}

static int cmd_token(int argc, char **argv, me_config_t *cfg)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"scope", required_argument, NULL, 's'},
        {"user", required_argument, NULL, 'u'},   {"album", required_argument, NULL, 'a'},
        {"plan", required_argument, NULL, 'p'},   {"client", required_argument, NULL, 'l'},
        {"ttl", required_argument, NULL, 't'},    {"max-bytes", required_argument, NULL, 'm'},
        {"ref", required_argument, NULL, 'r'},    {NULL, 0, NULL, 0}};
    me_token_claims_t claims = {.plan = ME_PLAN_FREE, .client = ME_CLIENT_APP};
    const char *config = NULL, *user = NULL, *album = NULL, *ref = "";
    long long ttl = 3600, max_bytes = 0;
    int scope = 0, plan = ME_PLAN_FREE, client = ME_CLIENT_APP, c;
    char err[512], *end;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's':
            for (scope = ME_SCOPE_UPLOAD; me_token_scope_name(scope) && strcmp(optarg, me_token_scope_name(scope));)
                scope++;
            if (me_token_scope_name(scope) == NULL)
                goto bad;
            break;
        case 'u': user = optarg; break;
        case 'a': album = optarg; break;
        case 'p':
            if (!parse_enum(optarg, "free", "premium", &plan))
                goto bad;
            break;
        case 'l':
            if (!parse_enum(optarg, "app", "browser", &client))
                goto bad;
            break;
        case 't':
            errno = 0;
            ttl = strtoll(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || ttl <= 0 || ttl > 366LL * 24 * 3600)
                goto bad;
            break;
        case 'm':
            errno = 0;
            max_bytes = strtoll(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || max_bytes < 0)
                goto bad;
            break;
        case 'r': ref = optarg; break;
        default: return usage(stderr);
        }
    }
    if (scope == 0 || user == NULL || album == NULL || optind != argc)
        return usage(stderr);
    if (strlen(user) > ME_TOKEN_ID_MAX || strlen(album) > ME_TOKEN_ID_MAX || strlen(ref) > ME_TOKEN_REF_MAX) {
        fprintf(stderr, "mediaedge token: --user and --album take at most %d characters, --ref %d\n",
                ME_TOKEN_ID_MAX, ME_TOKEN_REF_MAX);
        return 2;
    }
    if (load_config(cfg, config) != 0)
        return 2;
    strcpy(claims.sub, user);
    strcpy(claims.album, album);
    strcpy(claims.ref, ref);
    claims.scope = (me_scope_t)scope;
    claims.plan = (me_plan_t)plan;
    claims.client = (me_client_t)client;
    claims.max_bytes = (uint64_t)max_bytes;

    int64_t now = (int64_t)time(NULL);
    char *token = me_token_mint(cfg, &claims, now, ttl, err, sizeof(err));
    if (token == NULL) {
        fprintf(stderr, "mediaedge token: %s\n", err);
        return 2;
    }
    /* a token this server would refuse is no use to anyone: check it the way requests are */
    me_token_verifier_t *v = me_token_verifier_new(cfg, err, sizeof(err));
    me_token_claims_t check;
    int status = 0;
    if (v == NULL || me_token_verify(v, token, strlen(token), now, &check) != 0) {
        fprintf(stderr, "mediaedge token: %s\n",
                v == NULL ? err : "the token does not verify with the configured key (do the ES256 keys pair?)");
        status = 2;
    } else {
        printf("%s\n", token);
    }
    me_token_verifier_free(v);
    free(token);
    return status;

bad:
    fprintf(stderr, "mediaedge token: bad value '%s'\n", optarg);
    return usage(stderr);
}

/* libh2o grows a request body's buffer by doubling, a fresh malloc each time. With glibc's
 * defaults the large ones are mmap'd and unmapped again, so every byte of every body also
 * costs a page fault (costly on virtual machines): HTTP/2 uploads took 3.5x the CPU. Keep
 * allocations up to 32 MiB (the largest in-memory body) in the heap and let the heap keep
 * freed memory for the next body; the peak resident size is about the same. */
static void tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

/* Reads at most max + 1 bytes of path into a malloc'd buffer (so that a larger file shows as
 * larger than max without being read whole). NULL with errno set on failure. */
static void *read_capped(const char *path, uint64_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = (size_t)max + 1, n = 0;
    char *buf = f != NULL ? malloc(cap) : NULL;

    if (buf != NULL) {
        n = fread(buf, 1, cap, f);
        if (ferror(f)) {
            free(buf);
            buf = NULL;
            errno = EIO;
        }
    }
    if (f != NULL)
        fclose(f);
    *len = n;
    return buf;
}

/* The photo pipeline on one file, for tests and benchmarks: the variants are written to
 * OUTDIR/<name>.<ext>, the facts printed as JSON; a photo refused prints
 * {"error":code,"message":...,"detail":...} and exits 1. */
static int cmd_photo_variants(int argc, char **argv, me_config_t *cfg)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0}};
    const char *config = NULL;
    me_photo_config_t pc;
    me_photo_result_t r;
    size_t len;
    void *data = NULL;
    json_t *doc = NULL;
    int c, rc, status = 1;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c != 'c')
            return usage(stderr);
        config = optarg;
    }
    if (optind + 2 != argc)
        return usage(stderr);
    if (load_config(cfg, config) != 0)
        return 2;
    me_photo_config_init(&pc, cfg);
    if ((data = read_capped(argv[optind], pc.max_bytes, &len)) == NULL) {
        fprintf(stderr, "mediaedge photo-variants: %s: %s\n", argv[optind], strerror(errno));
        return 2;
    }
    rc = me_photo_process(&pc, data, len, &r);
    if (rc != 0)
        doc = json_pack("{s:s,s:s,s:s}", "error", me_err_code(rc), "message", me_err_message(rc), "detail", r.detail);
    else
        doc = me_photo_facts_json(&r);
    for (int i = 0; rc == 0 && i < r.noutputs; i++) {
        char path[4096];
        FILE *f;
        snprintf(path, sizeof(path), "%s/%s.%s", argv[optind + 1], r.outputs[i].name, r.outputs[i].ext);
        if ((f = fopen(path, "wb")) == NULL || fwrite(r.outputs[i].data, 1, r.outputs[i].len, f) != r.outputs[i].len ||
            fclose(f) != 0) {
            fprintf(stderr, "mediaedge photo-variants: %s: %s\n", path, strerror(errno));
            status = 2;
            goto exit;
        }
    }
    if (doc == NULL || json_dumpf(doc, stdout, JSON_COMPACT) != 0 || puts("") == EOF) {
        status = 2;
        goto exit;
    }
    status = rc == 0 ? 0 : 1;
exit:
    json_decref(doc);
    me_photo_result_free(&r);
    free(data);
    return status;
}

/* --progress: one JSON line on stderr per decoded second. */
static int print_progress(void *ctx, double done, double total)
{
    fprintf(stderr, "{\"progress\":%.3f,\"seconds\":%.1f}\n", total > 0 ? fmin(done / total, 1) : 0, done);
    return 0;
}

/* Writes len bytes at data to dir/name.ext. 0, or -1 with errno set. */
static int write_file(const char *dir, const char *name, const char *ext, const void *data, size_t len)
{
    char path[4096];
    FILE *f;
    snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
    if ((f = fopen(path, "wb")) == NULL)
        return -1;
    if (fwrite(data, 1, len, f) != len) {
        fclose(f);
        return -1;
    }
    return fclose(f) == 0 ? 0 : -1;
}

/* Copies everything from the descriptor in to out. 0, or -1 with errno set. */
static int copy_fd(int in, int out)
{
    char buf[1 << 16];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        for (ssize_t done = 0, w; done < n; done += w)
            if ((w = write(out, buf + done, (size_t)(n - done))) < 0)
                return -1;
    return n < 0 ? -1 : 0;
}

/* --sandbox: the source file and the output directory around the video decoder child. */
typedef struct {
    const char *src, *outdir;
    int progress;
} cli_job_t;

static int cli_fill(void *ctx, int fd)
{
    cli_job_t *job = ctx;
    int in = open(job->src, O_RDONLY | O_CLOEXEC), rc = in >= 0 ? copy_fd(in, fd) : -1;
    if (in >= 0)
        close(in);
    return rc == 0 ? 0 : ME_EIO;
}

static int cli_progress(void *ctx, double done, double total)
{
    cli_job_t *job = ctx;
    return job->progress ? print_progress(NULL, done, total) : 0;
}

static int cli_take(void *ctx, const me_video_output_t *o, const char *path)
{
    cli_job_t *job = ctx;
    char dst[4096];
    int in = open(path, O_RDONLY | O_CLOEXEC), out, rc = -1;
    snprintf(dst, sizeof(dst), "%s/%s.mp4", job->outdir, o->name);
    if (in >= 0 && (out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) >= 0) {
        rc = copy_fd(in, out);
        if (close(out) != 0)
            rc = -1;
    }
    if (in >= 0)
        close(in);
    return rc == 0 ? 0 : ME_EIO;
}

/* The job in a confined video decoder child, as the server runs it. */
static int sandboxed(const me_video_params_t *vp, const me_photo_config_t *pc, uint64_t memory, cli_job_t *job,
                     me_video_result_t *r, me_photo_result_t *poster)
{
    char exe[4096], err[256];
    const char *tmp = getenv("TMPDIR");
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    me_video_decoders_t *d;
    int rc;

    if (n <= 0)
        return ME_EINTERNAL;
    exe[n] = '\0';
    if ((d = me_video_decoders_new(pc, 1, exe, tmp && *tmp ? tmp : "/tmp", memory, err, sizeof(err))) == NULL) {
        snprintf(r->detail, sizeof(r->detail), "%s", err);
        return ME_EINTERNAL;
    }
    rc = me_video_decoders_process(d, vp, cli_fill, cli_progress, cli_take, job, r, poster);
    me_video_decoders_free(d);
    return rc;
}

/* The video pipeline on one file, for tests and benchmarks: the renditions and the poster's
 * variants go to OUTDIR, the facts (with renditions and poster variants) are printed as
 * JSON; a refused video prints {"error":code,"message":...,"detail":...} and exits 1. The
 * settings are the defaults, changed by the options (the configuration gives the photo
 * settings of the poster). */
static int cmd_video_transcode(int argc, char **argv, me_config_t *cfg)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"plan", required_argument, NULL, 'p'},
                                         {"max-duration", required_argument, NULL, 'd'},
                                         {"renditions", required_argument, NULL, 'r'},
                                         {"preset", required_argument, NULL, 's'},
                                         {"crf", required_argument, NULL, 'q'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"progress", no_argument, NULL, 'g'},
                                         {"sandbox", no_argument, NULL, 'x'},
                                         {"max-memory", required_argument, NULL, 'm'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *p, *item;
    me_video_params_t vp;
    me_video_result_t r = {0};
    me_photo_config_t pc;
    me_photo_result_t poster = {0};
    int c, rc, fd = -1, status = 2, progress = 0, sandbox = 0;
    uint64_t memory = ME_VIDEO_SANDBOX_MEMORY;
    json_t *doc = NULL;
    size_t len;
    char *end;

    me_video_params_default(&vp);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'p': snprintf(vp.plan, sizeof(vp.plan), "%s", optarg); break;
        case 'd':
            vp.max_duration = strtod(optarg, &end);
            if (*end || !(vp.max_duration >= 0))
                goto bad;
            break;
        case 'r':
            vp.nrenditions = 0;
            for (p = optarg; me_config_list_next(&p, &item, &len);)
                if (vp.nrenditions == ME_VIDEO_RENDITIONS_MAX ||
                    !me_video_rendition_parse(item, len, &vp.renditions[vp.nrenditions++]))
                    goto bad;
            if (vp.nrenditions == 0)
                goto bad;
            break;
        case 's': snprintf(vp.preset, sizeof(vp.preset), "%s", optarg); break;
        case 'q':
            vp.crf = (int)strtol(optarg, &end, 10);
            if (*end || vp.crf < 0 || vp.crf > 51)
                goto bad;
            break;
        case 't':
            vp.threads = (int)strtol(optarg, &end, 10);
            if (*end || vp.threads < 0 || vp.threads > 64)
                goto bad;
            break;
        case 'g': progress = 1; break;
        case 'x': sandbox = 1; break;
        case 'm':
            if (me_config_parse_size(optarg, &memory) != 0)
                goto bad;
            break;
        default: return usage(stderr);
        }
    }
    if (optind + 2 != argc)
        return usage(stderr);
    if (load_config(cfg, config) != 0)
        return 2;
    me_photo_config_init(&pc, cfg);
    if ((fd = open(argv[optind], O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "mediaedge video-transcode: %s: %s\n", argv[optind], strerror(errno));
        return 2;
    }
    if (sandbox) {
        cli_job_t job = {argv[optind], argv[optind + 1], progress};
        rc = sandboxed(&vp, &pc, memory, &job, &r, &poster);
    } else {
        rc = me_video_transcode(&vp, fd, argv[optind + 1], progress ? print_progress : NULL, NULL, &r);
        if (rc == 0 && (rc = me_video_poster(&pc, &r, &poster)) != 0)
            snprintf(r.detail, sizeof(r.detail), "poster: %s", poster.detail);
    }
    if (rc != 0) {
        doc = json_pack("{s:s,s:s,s:s}", "error", me_err_code(rc), "message", r.message[0] ? r.message : me_err_message(rc),
                        "detail", r.detail);
    } else {
        json_t *variants = json_array();
        doc = me_video_facts_json(&r);
        for (int i = 0; i < poster.noutputs; i++) {
            const me_photo_output_t *o = &poster.outputs[i];
            if (write_file(argv[optind + 1], o->name, o->ext, o->data, o->len) != 0) {
                fprintf(stderr, "mediaedge video-transcode: %s: %s\n", argv[optind + 1], strerror(errno));
                json_decref(variants);
                goto exit;
            }
            json_array_append_new(variants, json_pack("{s:s,s:s,s:s,s:i,s:i,s:I}", "name", o->name, "format", o->ext,
                                                      "content_type", o->content_type, "width", o->width,
                                                      "height", o->height, "bytes", (json_int_t)o->len));
        }
        if (doc)
            json_object_set_new(doc, "poster", json_pack("{s:f,s:o}", "time", r.poster_time, "variants", variants));
        else
            json_decref(variants);
    }
    if (doc == NULL || json_dumpf(doc, stdout, JSON_COMPACT) != 0 || puts("") == EOF)
        goto exit;
    status = rc == 0 ? 0 : 1;
exit:
    json_decref(doc);
    me_photo_result_free(&poster);
    me_video_result_free(&r);
    if (fd >= 0)
        close(fd);
    return status;
bad:
    fprintf(stderr, "mediaedge video-transcode: bad value '%s'\n", optarg);
    return usage(stderr);
}

/* Builds the app for cfg's role and serves until a drain; the exit status. */
static int serve(me_config_t *cfg, int announce)
{
    char err[512];
    int status = 1;
    me_server_block_signals(); /* before the app starts its threads */
    me_app_t *app = me_app_new(cfg, err, sizeof(err));
    if (app == NULL)
        me_log_error(NULL, "cannot start: %s", err);
    else
        status = me_server_run(cfg, app, announce);
    me_app_free(app);
    return status;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"announce", no_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    me_config_t cfg = {0}; /* loaded by load_config(); empty, it may be freed */
    const char *config = NULL;
    int announce = 0, status, c;

    if (argc < 2)
        return usage(stderr);
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("mediaedge %s (libh2o %s, %s)\n", ME_VERSION, H2O_VERSION, OpenSSL_version(OPENSSL_VERSION));
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0)
        return usage(stdout);
    argc--, argv++;
    if (strcmp(cmd, "token") == 0) {
        status = cmd_token(argc, argv, &cfg);
        me_config_free(&cfg);
        return status;
    }
    if (strcmp(cmd, "photo-decoder") == 0) /* started by the server itself: no configuration, no secret */
        return me_photo_sandbox_child();
    if (strcmp(cmd, "video-decoder") == 0) /* started by the server itself: no configuration, no secret */
        return me_video_sandbox_child();
    if (strcmp(cmd, "photo-variants") == 0) {
        status = cmd_photo_variants(argc, argv, &cfg);
        me_config_free(&cfg);
        return status;
    }
    if (strcmp(cmd, "video-transcode") == 0) {
        status = cmd_video_transcode(argc, argv, &cfg);
        me_config_free(&cfg);
        return status;
    }
    if (strcmp(cmd, "montage-decoder") == 0) /* started by the server itself: no configuration, no secret */
        return me_montage_sandbox_child();
    if (strcmp(cmd, "montage-film") == 0) {
        me_photo_config_t pc;
        if ((status = load_config(&cfg, NULL)) == 0) {
            me_photo_config_init(&pc, &cfg);
            status = me_montage_cli(argc, argv, &pc);
        }
        me_config_free(&cfg);
        return status;
    }
    if (strcmp(cmd, "serve") != 0 && strcmp(cmd, "check-config") != 0)
        return usage(stderr);
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'c')
            config = optarg;
        else if (c == 'a' && strcmp(cmd, "serve") == 0)
            announce = 1;
        else
            return usage(c == 'h' ? stdout : stderr);
    }
    if (optind != argc)
        return usage(stderr);
    if ((status = load_config(&cfg, config)) != 0)
        goto exit;
    if (strcmp(cmd, "check-config") == 0) {
        me_config_print(&cfg, stdout);
        goto exit;
    }
    me_log_init(me_log_settings(&cfg)->level, me_log_settings(&cfg)->access, 2);
    tune_malloc();
    /* curl_global_init() is not thread-safe, and curl_easy_init() runs it on first use from
     * whichever thread comes first (the webhook sender): run it here, before any thread */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        me_log_error(NULL, "cannot initialise libcurl");
        status = 1;
        goto exit;
    }
    status = serve(&cfg, announce);
    curl_global_cleanup();

exit:
    me_config_free(&cfg);
    return status;
}
