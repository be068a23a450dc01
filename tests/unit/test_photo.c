/* test_photo.c: the photo pipeline in process: EXIF fact parsing and the WebP chunk filter
 * (tables, every cut), the budget of cores and its runs of tasks, then whole photos made
 * here with libvips' savers: error codes, limits, variants, the same bytes on one thread
 * or several, storage keys, and no leak of memory, images or descriptors over many runs,
 * several threads at once. The pixel-level checks (orientation, colour, metadata by
 * exiftool) are in tests/integration/test_photo.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vips/vips.h>

#include "server/media/photo/photo.h"
#include "server/storage/storage_config.h"
#include "server/media/photo/photo_cores.h"
#include "server/media/photo/photo_exif.h"
#include "server/media/photo/photo_webp.h"

static me_photo_config_t pc;

/* ---- EXIF facts ---- */

static void test_exif_datetime_table(void **state)
{
    static const struct {
        const char *dt, *offset, *want;
    } cases[] = {
        {"2021:05:01 12:34:56", NULL, "2021-05-01T12:34:56"},
        {"2021:05:01 12:34:56 (2021:05:01 12:34:56, ASCII, 20 components, 20 bytes)", NULL, "2021-05-01T12:34:56"},
        {"2021:05:01 12:34:56", "+02:00 (+02:00, ASCII, 7 components, 7 bytes)", "2021-05-01T12:34:56+02:00"},
        {"2021:05:01 12:34:56", "-04:30", "2021-05-01T12:34:56-04:30"},
        {"2021:05:01 12:34:56", "02:00", "2021-05-01T12:34:56"},  /* no sign: offset ignored */
        {"2021:05:01 12:34:56", "+99:00", "2021-05-01T12:34:56"}, /* impossible offset */
        {"0000:00:00 00:00:00", NULL, ""},                         /* a camera without a clock */
        {"    :  :     :  :  ", NULL, ""},
        {"2021:13:01 12:34:56", NULL, ""},
        {"2021:05:01 24:00:00", NULL, ""},
        {"2021-05-01 12:34:56", NULL, ""},
        {"2021:05:01 12:34", NULL, ""},
        {"", NULL, ""},
        {NULL, NULL, ""},
    };
    char out[32];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = me_photo_exif_datetime(cases[i].dt, cases[i].offset, out, sizeof(out));
        assert_int_equal(rc, cases[i].want[0] ? 0 : ME_EINVAL);
        assert_string_equal(out, cases[i].want);
    }
    assert_int_equal(me_photo_exif_datetime("2021:05:01 12:34:56", "+02:00", out, 20), ME_EINVAL);
    assert_string_equal(out, "");
}

static void test_exif_coordinate_table(void **state)
{
    static const struct {
        const char *value, *ref;
        int rc;
        double want;
    } cases[] = {
        {"51/1 30/1 666/25 (51, 30, 26.64, Rational, 3 components, 24 bytes)", "N (N, ASCII, 2 components, 2 bytes)", 0,
         51.5074},
        {"0/1 7/1 1002/25", "W", 0, -0.1278},
        {"33/1 52/1 0/1", "S", 0, -33.866667},
        {"151/1 12/1 36/1", "E", 0, 151.21},
        {"51/1 30/1 666/0", "N", ME_EINVAL, 0}, /* division by zero */
        {"51/1 30/1", "N", ME_EINVAL, 0},
        {"-51/1 30/1 0/1", "N", ME_EINVAL, 0},
        {"51/1 30/1 0/1", "X", ME_EINVAL, 0},
        {"200/1 0/1 0/1", "E", ME_EINVAL, 0},
        {"51 30 26.64", "N", ME_EINVAL, 0},
        {"", "N", ME_EINVAL, 0},
        {NULL, "N", ME_EINVAL, 0},
        {"51/1 30/1 0/1", NULL, ME_EINVAL, 0},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double v = 12345;
        assert_int_equal(me_photo_exif_coordinate(cases[i].value, cases[i].ref, &v), cases[i].rc);
        if (cases[i].rc == 0)
            assert_float_equal(v, cases[i].want, 1e-4);
        else
            assert_float_equal(v, 12345, 0);
    }
}

/* ---- the WebP chunk filter ---- */

static size_t chunk(unsigned char *p, const char *fourcc, const char *payload, size_t n)
{
    memcpy(p, fourcc, 4);
    p[4] = (unsigned char)n, p[5] = (unsigned char)(n >> 8), p[6] = 0, p[7] = 0;
    memcpy(p + 8, payload, n);
    if (n & 1)
        p[8 + n] = 0;
    return 8 + n + (n & 1);
}

/* A WebP with VP8X (ICC, EXIF, XMP and alpha flags), ICCP, ALPH, VP8, EXIF, XMP. */
static size_t sample_webp(unsigned char *buf)
{
    size_t n = 12;
    memcpy(buf, "RIFF\0\0\0\0WEBP", 12);
    n += chunk(buf + n, "VP8X", "\x3c\0\0\0\x09\0\0\x09\0\0", 10);
    n += chunk(buf + n, "ICCP", "icc", 3);
    n += chunk(buf + n, "ALPH", "alpha", 5);
    n += chunk(buf + n, "VP8 ", "pixels", 6);
    n += chunk(buf + n, "EXIF", "GPS here", 8);
    n += chunk(buf + n, "XMP ", "<x:xmpmeta/>", 12);
    buf[4] = (unsigned char)(n - 8), buf[5] = (unsigned char)((n - 8) >> 8);
    return n;
}

static void test_webp_strip_keeps_only_the_image(void **state)
{
    unsigned char buf[256];
    size_t len = sample_webp(buf), got;
    (void)state;

    got = me_photo_webp_strip(buf, len);
    assert_int_equal(got, 12 + 18 + 14 + 14);
    assert_memory_equal(buf, "RIFF", 4);
    assert_int_equal(buf[4] | buf[5] << 8, got - 8);
    assert_memory_equal(buf + 12, "VP8X", 4);
    assert_int_equal(buf[20], 0x10); /* only the alpha flag is left */
    assert_memory_equal(buf + 30, "ALPH", 4);
    assert_memory_equal(buf + 44, "VP8 ", 4);
    assert_memory_equal(buf + 52, "pixels", 6);
    assert_null(memmem(buf, got, "GPS", 3));
    assert_null(memmem(buf, got, "xmpmeta", 7));
    /* a second pass changes nothing */
    assert_int_equal(me_photo_webp_strip(buf, got), got);
}

static void test_webp_strip_refuses_every_cut_and_bad_sizes(void **state)
{
    unsigned char good[256], buf[256];
    size_t len = sample_webp(good);
    (void)state;

    for (size_t cut = 0; cut < len; cut++) {
        memcpy(buf, good, cut);
        assert_int_equal(me_photo_webp_strip(buf, cut), 0);
    }
    /* the RIFF size agrees with the length but a chunk claims more than is there */
    memcpy(buf, good, len);
    buf[12 + 4] = 0xff;
    assert_int_equal(me_photo_webp_strip(buf, len), 0);
    /* nothing but metadata */
    len = 12 + chunk(buf + 12, "EXIF", "x", 1);
    memcpy(buf, "RIFF", 4), buf[4] = (unsigned char)(len - 8), buf[5] = buf[6] = buf[7] = 0;
    memcpy(buf + 8, "WEBP", 4);
    assert_int_equal(me_photo_webp_strip(buf, len), 0);
}

/* ---- the budget of cores ---- */

static void test_cores_borrow_within_the_limit(void **state)
{
    (void)state;

    assert_int_equal(me_photo_cores_busy(), 0);
    me_photo_cores_enter();
    assert_int_equal(me_photo_cores_borrow(5, 3), 2);
    assert_int_equal(me_photo_cores_busy(), 3);
    assert_int_equal(me_photo_cores_borrow(1, 3), 0);
    assert_int_equal(me_photo_cores_borrow(1, 1), 0);
    me_photo_cores_give(2);
    assert_int_equal(me_photo_cores_borrow(0, 3), 0);
    me_photo_cores_enter(); /* a photo always runs, over the limit or not */
    me_photo_cores_enter();
    assert_int_equal(me_photo_cores_busy(), 3);
    assert_int_equal(me_photo_cores_borrow(1, 2), 0);
    me_photo_cores_leave();
    me_photo_cores_leave();
    me_photo_cores_leave();
    assert_int_equal(me_photo_cores_busy(), 0);
}

/* Decoder processes share one count: cores another process holds are not borrowed. In a
 * child process, since sharing is for good. */
static void test_cores_shared_between_processes(void **state)
{
    atomic_int *slots = mmap(NULL, 2 * sizeof(atomic_int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    (void)state;
    assert_true(slots != MAP_FAILED);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int ok = 1;
        me_photo_cores_share(slots, 2, 1);
        atomic_store(&slots[0], 1); /* the other decoder runs a photo */
        me_photo_cores_enter();
        ok &= me_photo_cores_busy() == 2 && atomic_load(&slots[1]) == 1;
        ok &= me_photo_cores_borrow(1, 2) == 0;
        atomic_store(&slots[0], 0); /* ... and is done */
        ok &= me_photo_cores_borrow(3, 2) == 1 && atomic_load(&slots[1]) == 2;
        me_photo_cores_give(1);
        me_photo_cores_leave();
        ok &= me_photo_cores_busy() == 0;
        _exit(ok ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    munmap(slots, 2 * sizeof(atomic_int));
}

#define TASKS 12

typedef struct {
    int ran[TASKS];
    pthread_t thread[TASKS];
    int fail_at;               /* this task fails; -1: none */
    int crowd;                 /* tasks 0 and 1 wait for each other, then one more photo starts */
    pthread_barrier_t barrier;
} tasks_t;

static int task(void *arg, int i)
{
    tasks_t *t = arg;

    __atomic_add_fetch(&t->ran[i], 1, __ATOMIC_SEQ_CST);
    t->thread[i] = pthread_self();
    if (t->crowd && i < 2) { /* both running; then the photo starts before either goes on */
        pthread_barrier_wait(&t->barrier);
        if (i == 0)
            me_photo_cores_enter();
        pthread_barrier_wait(&t->barrier);
    }
    return i == t->fail_at;
}

/* Runs are made by a photo: its caller's thread is busy already. */
static void test_cores_run_every_task_once(void **state)
{
    tasks_t t = {.fail_at = -1};
    uint64_t helpers = me_photo_cores_helpers();
    (void)state;

    me_photo_cores_enter();
    assert_int_equal(me_photo_cores_run(TASKS, task, &t, 1), 0); /* limit 1: the caller alone */
    for (int i = 0; i < TASKS; i++) {
        assert_int_equal(t.ran[i], 1);
        assert_true(pthread_equal(t.thread[i], pthread_self()));
    }
    assert_int_equal(me_photo_cores_helpers(), helpers);
    memset(&t, 0, sizeof(t));
    t.fail_at = -1;
    assert_int_equal(me_photo_cores_run(TASKS, task, &t, 4), 0);
    for (int i = 0; i < TASKS; i++)
        assert_int_equal(t.ran[i], 1);
    assert_true(me_photo_cores_helpers() > helpers);
    assert_int_equal(me_photo_cores_busy(), 1); /* every helper gave its core back */
    assert_int_equal(me_photo_cores_run(0, task, &t, 4), 0);
    me_photo_cores_leave();
}

static void test_cores_run_stops_after_a_failure(void **state)
{
    tasks_t t = {.fail_at = 3};
    (void)state;

    me_photo_cores_enter();
    assert_int_equal(me_photo_cores_run(TASKS, task, &t, 1), -1);
    for (int i = 0; i < TASKS; i++)
        assert_int_equal(t.ran[i], i <= 3);
    memset(&t, 0, sizeof(t));
    t.fail_at = 0;
    assert_int_equal(me_photo_cores_run(TASKS, task, &t, 3), -1);
    assert_int_equal(t.ran[0], 1);
    assert_int_equal(me_photo_cores_busy(), 1);
    me_photo_cores_leave();
}

/* A helper gives its core back as soon as a photo starts beyond the limit: after tasks 0
 * and 1 (on two threads at once), everything is left to the caller's thread. */
static void test_cores_helper_leaves_when_a_photo_starts(void **state)
{
    tasks_t t = {.fail_at = -1, .crowd = 1};
    (void)state;

    assert_int_equal(pthread_barrier_init(&t.barrier, NULL, 2), 0);
    me_photo_cores_enter();
    assert_int_equal(me_photo_cores_run(TASKS, task, &t, 2), 0);
    for (int i = 0; i < TASKS; i++) {
        assert_int_equal(t.ran[i], 1);
        if (i >= 2)
            assert_true(pthread_equal(t.thread[i], pthread_self()));
    }
    assert_int_equal(me_photo_cores_busy(), 2); /* the caller's and the photo task 0 started */
    me_photo_cores_leave();
    me_photo_cores_leave();
    pthread_barrier_destroy(&t.barrier);
}

/* ---- whole photos ---- */

/* A w x h noisy 3-band image saved by saver ("jpeg", "png", "webp"; "png-alpha": with a
 * translucent alpha band); g_free the result. */
static void *make_photo(const char *saver, int w, int h, size_t *len)
{
    VipsImage *n = NULL, *c = NULL, *b = NULL;
    void *buf = NULL;
    int rc, alpha = strcmp(saver, "png-alpha") == 0;

    assert_int_equal(vips_gaussnoise(&n, w, h, "sigma", 40.0, "mean", 128.0, NULL), 0);
    assert_int_equal(vips_cast(n, &c, VIPS_FORMAT_UCHAR, NULL), 0);
    assert_int_equal(vips_bandjoin_const(c, &b, (double[]){60, 200, 180}, alpha ? 3 : 2, NULL), 0);
    b->Type = VIPS_INTERPRETATION_sRGB;
    if (strcmp(saver, "jpeg") == 0)
        rc = vips_jpegsave_buffer(b, &buf, len, "Q", 90, NULL);
    else if (strncmp(saver, "png", 3) == 0)
        rc = vips_pngsave_buffer(b, &buf, len, NULL);
    else
        rc = vips_webpsave_buffer(b, &buf, len, NULL);
    assert_int_equal(rc, 0);
    g_object_unref(n);
    g_object_unref(c);
    g_object_unref(b);
    return buf;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static void test_variants_of_each_format(void **state)
{
    static const char *const savers[] = {"jpeg", "png", "webp"};
    static const char *const formats[] = {"jpeg", "png", "webp"};
    static const int want[][2] = {{320, 320}, {640, 480}, {1280, 960}, {1600, 1200}};
    (void)state;

    for (int s = 0; s < 3; s++) {
        size_t len;
        void *data = make_photo(savers[s], 1600, 1200, &len);
        me_photo_result_t r;
        assert_int_equal(me_photo_process(&pc, data, len, &r), 0);
        assert_string_equal(r.format, formats[s]);
        assert_int_equal(r.width, 1600);
        assert_int_equal(r.height, 1200);
        assert_int_equal(r.noutputs, 8);
        for (int i = 0; i < r.noutputs; i++) {
            const me_photo_output_t *o = &r.outputs[i];
            assert_string_equal(o->name, pc.variants[i / 2].name);
            assert_string_equal(o->ext, i % 2 ? "webp" : "jpg");
            assert_int_equal(o->width, want[i / 2][0]);
            assert_int_equal(o->height, want[i / 2][1]);
            assert_true(o->len > 100);
            assert_memory_equal(o->data, i % 2 ? "RIFF" : "\xff\xd8\xff", i % 2 ? 4 : 3);
        }
        json_t *facts = me_photo_facts_json(&r);
        assert_non_null(facts);
        assert_string_equal(json_string_value(json_object_get(facts, "format")), formats[s]);
        assert_true(json_is_null(json_object_get(facts, "taken_at")));
        assert_int_equal(json_array_size(json_object_get(facts, "variants")), 8);
        json_decref(facts);
        me_photo_result_free(&r);
        assert_int_equal(r.noutputs, 0);
        g_free(data);
    }
}

static void test_refusals_and_their_codes(void **state)
{
    me_photo_config_t small = pc;
    me_photo_result_t r;
    size_t len;
    unsigned char *jpeg = make_photo("jpeg", 400, 300, &len);
    static const unsigned char gif_garbage[] = "GIF89a\x10\x00\x10\x00garbage that is not a GIF at all";
    (void)state;

    assert_int_equal(me_photo_process(&pc, "", 0, &r), ME_EMEDIA);
    assert_string_equal(r.format, "");
    me_photo_result_free(&r);
    assert_int_equal(me_photo_process(&pc, "<svg xmlns=\"http://www.w3.org/2000/svg\"/>", 40, &r), ME_EMEDIA);
    me_photo_result_free(&r);
    assert_int_equal(me_photo_process(&pc, "%PDF-1.4\n", 9, &r), ME_EMEDIA);
    me_photo_result_free(&r);
    assert_int_equal(me_photo_process(&pc, gif_garbage, sizeof(gif_garbage), &r), ME_ECORRUPT);
    assert_string_equal(r.format, "gif");
    assert_true(strlen(r.detail) > 0);
    me_photo_result_free(&r);
    /* a JPEG cut anywhere after its header is corrupt, never a crash nor a success */
    for (size_t cut = len / 8; cut < len - 2; cut += len / 8) {
        assert_int_equal(me_photo_process(&pc, jpeg, cut, &r), ME_ECORRUPT);
        assert_int_equal(r.noutputs, 0);
        me_photo_result_free(&r);
    }
    small.max_bytes = len - 1;
    assert_int_equal(me_photo_process(&small, jpeg, len, &r), ME_ETOOLARGE);
    assert_non_null(strstr(r.detail, "max_bytes"));
    me_photo_result_free(&r);
    small = pc;
    small.max_pixels = 400 * 300 - 1;
    assert_int_equal(me_photo_process(&small, jpeg, len, &r), ME_ETOOLARGE);
    assert_non_null(strstr(r.detail, "400x300"));
    me_photo_result_free(&r);
    small.max_pixels = 400 * 300;
    assert_int_equal(me_photo_process(&small, jpeg, len, &r), 0);
    me_photo_result_free(&r);
    g_free(jpeg);
}

static void assert_same_outputs(const me_photo_result_t *a, const me_photo_result_t *b)
{
    assert_int_equal(a->noutputs, b->noutputs);
    for (int i = 0; i < a->noutputs; i++) {
        assert_string_equal(a->outputs[i].name, b->outputs[i].name);
        assert_string_equal(a->outputs[i].ext, b->outputs[i].ext);
        assert_int_equal(a->outputs[i].width, b->outputs[i].width);
        assert_int_equal(a->outputs[i].height, b->outputs[i].height);
        assert_int_equal(a->outputs[i].len, b->outputs[i].len);
        assert_memory_equal(a->outputs[i].data, b->outputs[i].data, a->outputs[i].len);
    }
}

/* With idle cores a photo borrows helper threads; with none (threads 1, or every core busy)
 * it stays on its caller's thread. The outputs are the same bytes in pc's order either way. */
static void test_parallel_outputs_are_the_serial_ones(void **state)
{
    static const char *const savers[] = {"jpeg", "png-alpha"};
    (void)state;

    for (int s = 0; s < 2; s++) {
        me_photo_config_t one = pc, two = pc;
        me_photo_result_t serial, parallel, crowded;
        size_t len;
        void *data = make_photo(savers[s], 1200, 900, &len);
        uint64_t helpers = me_photo_cores_helpers();

        one.threads = 1;
        two.threads = 2;
        assert_int_equal(me_photo_process(&one, data, len, &serial), 0);
        assert_int_equal(me_photo_cores_helpers(), helpers);
        assert_int_equal(me_photo_process(&two, data, len, &parallel), 0);
        assert_true(me_photo_cores_helpers() > helpers);
        assert_same_outputs(&serial, &parallel);
        helpers = me_photo_cores_helpers();
        me_photo_cores_enter(); /* another photo takes the other core */
        assert_int_equal(me_photo_process(&two, data, len, &crowded), 0);
        me_photo_cores_leave();
        assert_int_equal(me_photo_cores_helpers(), helpers);
        assert_same_outputs(&serial, &crowded);
        assert_int_equal(me_photo_cores_busy(), 0);
        me_photo_result_free(&serial);
        me_photo_result_free(&parallel);
        me_photo_result_free(&crowded);
        g_free(data);
    }
}

/* An encoder's failure surfaces as before, from a helper thread or not: ME_EINTERNAL, the
 * libvips words in detail, no output left. */
static void test_variant_failure_on_any_thread(void **state)
{
    me_photo_config_t bad = pc;
    size_t len;
    void *data = make_photo("jpeg", 16500, 16, &len);
    (void)state;

    bad.variants[bad.nvariants - 1].size = 20000; /* wider than WebP can be: that encode fails */
    for (bad.threads = 1; bad.threads <= 4; bad.threads += 3) {
        me_photo_result_t r;
        assert_int_equal(me_photo_process(&bad, data, len, &r), ME_EINTERNAL);
        assert_int_equal(r.noutputs, 0);
        assert_non_null(strstr(r.detail, "variant: ")); /* and libvips' words, caught on their thread: */
        assert_null(strstr(r.detail, "variant: failed"));
        me_photo_result_free(&r);
    }
    assert_int_equal(me_photo_cores_busy(), 0);
    g_free(data);
}

typedef struct {
    const void *data;
    size_t len;
    int runs, failures;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    me_photo_config_t two = pc;

    two.threads = 2; /* helpers while another worker is between photos, none while all run */
    for (int i = 0; i < w->runs; i++) {
        me_photo_result_t r;
        if (me_photo_process(&two, w->data, w->len, &r) != 0 || r.noutputs != 8)
            w->failures++;
        me_photo_result_free(&r);
    }
    return NULL;
}

/* Many runs on several threads: every run succeeds, and afterwards libvips holds no pixel
 * memory, no image is alive and no descriptor is left open. */
static void test_no_leaks_over_runs_and_threads(void **state)
{
    size_t len;
    void *data = make_photo("jpeg", 900, 700, &len);
    worker_t w[3] = {{data, len, 4, 0}, {data, len, 4, 0}, {data, len, 4, 0}};
    pthread_t t[3];
    int fds;
    me_photo_result_t r;
    (void)state;

    assert_int_equal(me_photo_process(&pc, data, len, &r), 0); /* warm up libvips' threads */
    me_photo_result_free(&r);
    fds = open_fds();
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].failures, 0);
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(me_photo_process(&pc, "GIF89a\x01", 7, &r), ME_ECORRUPT); /* failures too */
        me_photo_result_free(&r);
    }
    assert_int_equal(open_fds(), fds);
    assert_int_equal(vips_tracked_get_allocs(), 0);
    assert_int_equal(vips_tracked_get_mem(), 0);
    g_free(data);
}

static void test_store_writes_every_variant_under_its_key(void **state)
{
    char dir[] = "/tmp/me-photo-XXXXXX", err[256], key[256], cmd[128];
    me_config_t cfg;
    me_storage_settings_t *storage;
    me_storage_t *st;
    me_storage_stat_t sb;
    me_photo_result_t r;
    size_t len;
    void *data = make_photo("png", 500, 400, &len);
    (void)state;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(me_config_defaults(&cfg), 0);
    storage = me_config_section_mut(&cfg, &me_storage_config_section);
    storage->root = dir;
    assert_non_null(st = me_storage_open(&cfg, err, sizeof(err)));
    me_config_free(&cfg); /* the store keeps what it needs */
    assert_int_equal(me_photo_process(&pc, data, len, &r), 0);
    assert_int_equal(me_photo_store(st, "fam1", "m-1", &r), 0);
    for (int i = 0; i < r.noutputs; i++) {
        snprintf(key, sizeof(key), "variants/fam1/m-1/%s.%s", r.outputs[i].name, r.outputs[i].ext);
        assert_int_equal(me_storage_head(st, key, &sb), 0);
        assert_int_equal(sb.size, r.outputs[i].len);
    }
    assert_int_equal(me_storage_head(st, "variants/fam1/m-1/thumb.webp", &sb), 0);
    assert_int_equal(me_photo_store(st, "fam1/x", "m-1", &r), ME_EINVAL);
    assert_int_equal(me_photo_store(st, "fam1", "..", &r), ME_EINVAL);
    assert_int_equal(me_photo_store(st, "", "m-1", &r), ME_EINVAL);
    me_photo_result_free(&r);
    me_storage_close(st);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    g_free(data);
}

static int group_setup(void **state)
{
    me_config_t cfg;
    (void)state;
    if (me_config_defaults(&cfg) != 0)
        return 1;
    me_photo_config_init(&pc, &cfg); /* pc holds copies */
    me_config_free(&cfg);
    return me_photo_init();
}

static int group_teardown(void **state)
{
    (void)state;
    vips_shutdown();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exif_datetime_table),
        cmocka_unit_test(test_exif_coordinate_table),
        cmocka_unit_test(test_webp_strip_keeps_only_the_image),
        cmocka_unit_test(test_webp_strip_refuses_every_cut_and_bad_sizes),
        cmocka_unit_test(test_cores_borrow_within_the_limit),
        cmocka_unit_test(test_cores_shared_between_processes),
        cmocka_unit_test(test_cores_run_every_task_once),
        cmocka_unit_test(test_cores_run_stops_after_a_failure),
        cmocka_unit_test(test_cores_helper_leaves_when_a_photo_starts),
        cmocka_unit_test(test_variants_of_each_format),
        cmocka_unit_test(test_refusals_and_their_codes),
        cmocka_unit_test(test_parallel_outputs_are_the_serial_ones),
        cmocka_unit_test(test_variant_failure_on_any_thread),
        cmocka_unit_test(test_no_leaks_over_runs_and_threads),
        cmocka_unit_test(test_store_writes_every_variant_under_its_key),
    };
    return cmocka_run_group_tests_name("photo", tests, group_setup, group_teardown);
}
