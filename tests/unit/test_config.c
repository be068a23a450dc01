/* test_config.c: unit tests of server/core/config.c with the sections of server/config_sections.c:
 * parsers, loading, errors, environment, secrets, validation, the production profile, resolving
 * auto values and printing; and the engine with a section of the test's own. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/core/config.c"
#include "server/auth/token_config.h"
#include "server/core/log_config.h"
#include "server/http/server_config.h"
#include "server/jobs/jobs_config.h"
#include "server/media/photo/photo.h"
#include "server/media/photo/photo_config.h"
#include "server/storage/storage_config.h"

static char dir[64];           /* this run's temporary directory */
static char cfg_path[128];     /* dir/c.yaml, the file most tests load */
static char err[1024];

static const char *tmp_path(const char *name)
{
    static char path[4][160];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Writes yaml to cfg_path (unless NULL: no file) and loads it with env. */
static int load(me_config_t *c, const char *yaml, char *const *env)
{
    if (yaml != NULL)
        write_file(cfg_path, yaml);
    return me_config_load(c, yaml != NULL ? cfg_path : NULL, env, err, sizeof(err));
}

/* Asserts that loading yaml (with env) fails with exactly "<cfg_path><suffix>", or exactly
 * suffix when it does not start with ':' (errors from the environment). */
static void expect_error(const char *yaml, char *const *env, const char *suffix)
{
    me_config_t c;
    char want[1024];

    assert_int_equal(load(&c, yaml, env), ME_ECONFIG);
    snprintf(want, sizeof(want), "%s%s", suffix[0] == ':' ? cfg_path : "", suffix);
    assert_string_equal(err, want);
    me_config_free(&c);
}

static void assert_same_settings(const me_config_t *a, const me_config_t *b)
{
    assert_int_equal(a->store->nslots, b->store->nslots);
    for (size_t i = 0; i < a->store->nslots; i++) {
        const slot_t *sa = &a->store->slots[i], *sb = &b->store->slots[i];
        assert_ptr_equal(sa->s, sb->s);
        if (is_string(sa->s))
            assert_string_equal(get_string(a, sa), get_string(b, sb));
        else
            assert_int_equal(get_number(a, sa), get_number(b, sb));
    }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_config.XXXXXX");
    if (mkdtemp(dir) == NULL)
        return 1;
    snprintf(cfg_path, sizeof(cfg_path), "%s/c.yaml", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

typedef struct {
    const char *in;
    int rc;
    uint64_t out;
} parse_case_t;

/* Runs a parser over a table: the expected result, and the output untouched on error. */
static void check_parser(int (*parse)(const char *, uint64_t *), const parse_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t out = 12345;
        print_message("'%s'\n", cases[i].in);
        assert_int_equal(parse(cases[i].in, &out), cases[i].rc);
        assert_int_equal(out, cases[i].rc ? 12345 : cases[i].out);
    }
}

static void test_parse_size(void **state)
{
    static const parse_case_t cases[] = {
        {"0", 0, 0}, {"1024", 0, 1024}, {"512k", 0, 512 * KIB}, {"512K", 0, 512 * KIB},
        {"512KiB", 0, 512 * KIB}, {"16M", 0, 16 * MIB}, {"16MiB", 0, 16 * MIB},
        {"1G", 0, GIB}, {"1GiB", 0, GIB}, {"18446744073709551615", 0, UINT64_MAX},
        {"17179869183G", 0, 17179869183ull * GIB},
        {"", ME_EINVAL, 0}, {"-1", ME_EINVAL, 0}, {"+1", ME_EINVAL, 0}, {" 1", ME_EINVAL, 0},
        {"1 ", ME_EINVAL, 0}, {"1.5M", ME_EINVAL, 0}, {"1MB", ME_EINVAL, 0}, {"1kib", ME_EINVAL, 0},
        {"1m", ME_EINVAL, 0}, {"M", ME_EINVAL, 0}, {"1KiBx", ME_EINVAL, 0}, {"0x10", ME_EINVAL, 0},
        {"18446744073709551616", ME_EINVAL, 0}, {"17179869184G", ME_EINVAL, 0},
    };
    (void)state;
    check_parser(me_config_parse_size, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_parse_duration(void **state)
{
    static const parse_case_t cases[] = {
        {"0", 0, 0}, {"250ms", 0, 250}, {"5s", 0, 5000}, {"2m", 0, 120000},
        {"1h", 0, 3600000}, {"30", 0, 30000}, {"0ms", 0, 0},
        {"18446744073709551615ms", 0, UINT64_MAX},
        {"", ME_EINVAL, 0}, {"-5s", ME_EINVAL, 0}, {"5 s", ME_EINVAL, 0}, {"1.5s", ME_EINVAL, 0},
        {"5S", ME_EINVAL, 0}, {"1d", ME_EINVAL, 0}, {"s", ME_EINVAL, 0}, {"5sec", ME_EINVAL, 0},
        {"18446744073709551615s", ME_EINVAL, 0}, {"5124095576030432h", ME_EINVAL, 0},
    };
    (void)state;
    check_parser(me_config_parse_duration, cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_format_round_trip(void **state)
{
#define SIZE ME_SETTING_SIZE
#define DURATION ME_SETTING_DURATION
    static const struct { me_setting_type_t type; uint64_t v; const char *text; } cases[] = {
        {SIZE, 0, "0"}, {SIZE, 1000, "1000"}, {SIZE, 64 * KIB, "64KiB"},
        {SIZE, 16 * MIB, "16MiB"}, {SIZE, GIB, "1GiB"}, {SIZE, GIB + KIB, "1048577KiB"},
        {DURATION, 250, "250ms"}, {DURATION, 30000, "30s"}, {DURATION, 90000, "90s"},
        {DURATION, 120000, "2m"}, {DURATION, 7200000, "2h"}, {DURATION, 1500, "1500ms"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[32];
        uint64_t back;
        format_number(cases[i].type, cases[i].v, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
        assert_int_equal(parse_scaled(buf, cases[i].type == SIZE ? size_units : duration_units, &back), 0);
        assert_int_equal(back, cases[i].v);
    }
#undef SIZE
#undef DURATION
}

/* 1 when the environment variable var=value loads: the validators of the sections' tables. */
static int accepts(const char *var, const char *value)
{
    char env_var[256], *env[] = {env_var, NULL};
    me_config_t c;
    int rc;

    snprintf(env_var, sizeof(env_var), "%s=%s", var, value);
    rc = me_config_load(&c, NULL, env, err, sizeof(err));
    me_config_free(&c);
    return rc == 0;
}

static void test_listen_forms(void **state)
{
    static const struct { const char *in; int ok; } cases[] = {
        {"", 1}, {"0.0.0.0:8080", 1}, {"127.0.0.1:1", 1}, {"localhost:65535", 1},
        {"[::]:8443", 1}, {"[::1]:443", 1}, {"edge-1.example.com:80", 1},
        {"0.0.0.0", 0}, {"0.0.0.0:0", 0}, {"0.0.0.0:65536", 0}, {":8080", 0}, {"::1:443", 0},
        {"[::1]", 0}, {"[nope]:443", 0}, {"[]:443", 0}, {"host:80x", 0}, {"host:-1", 0},
        {"ho st:80", 0}, {"host:", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("listen '%s'\n", cases[i].in);
        assert_int_equal(accepts("MEDIAEDGE_LISTEN_HTTP", cases[i].in), cases[i].ok);
    }
}

static void test_origin_forms(void **state)
{
    static const struct { const char *in; int ok; } cases[] = {
        {"https://app.example.com", 1}, {"http://localhost:3000", 1}, {"HTTPS://App.Example.com", 1},
        {"http://127.0.0.1:8080", 1}, {"https://[::1]:8443", 1}, {"http://[2001:db8::1]", 1},
        /* "*" passes the form, to be refused with its reason (test_env_errors); "" is no item */
        {"null", 0}, {"app.example.com", 0}, {"https://", 0}, {"ftp://example.com", 0},
        {"https://app.example.com/", 0}, {"https://app.example.com/upload", 0},
        {"https://*.example.com", 0}, {"https://app.example.com:0", 0}, {"https://app.example.com:65536", 0},
        {"https://app.example.com:", 0}, {"https://[::1", 0}, {"https://[nope]", 0},
        {"https://user@app.example.com", 0}, {"https://app.example.com?x", 0}, {"https://a b.com", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("origin '%s'\n", cases[i].in);
        assert_int_equal(accepts("MEDIAEDGE_HTTP_CORS_ORIGINS", cases[i].in), cases[i].ok);
    }
}

static void test_variant_forms(void **state)
{
    static const struct { const char *in; int ok, size, square; } cases[] = {
        {"thumb:320x320", 1, 320, 1}, {"large:2048", 1, 2048, 0}, {"a_b-9:16", 1, 16, 0},
        {"x:8192x8192", 1, 8192, 1}, {"fifteen-chars-x:100", 1, 100, 0},
        {"sixteen-chars-xx:100", 0}, {"thumb", 0}, {":320", 0}, {"thumb:", 0}, {"thumb:15", 0},
        {"thumb:8193", 0}, {"thumb:320x200", 0}, {"thumb:320x", 0}, {"thumb:320x320x320", 0},
        {"Thumb:320", 0}, {"../x:320", 0}, {"a/b:320", 0}, {"thumb:+320", 0}, {"thumb:320 ", 0},
        {"thumb:0320", 1, 320, 0}, {"thumb:000320", 0}, {"thumb:-1", 0}, {"th umb:320", 0},
    };
    me_photo_variant_t v;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("variant '%s'\n", cases[i].in);
        assert_int_equal(me_photo_variant_parse(cases[i].in, strlen(cases[i].in), &v), cases[i].ok);
        if (!cases[i].ok)
            continue;
        assert_int_equal(v.size, cases[i].size);
        assert_int_equal(v.square, cases[i].square);
        assert_memory_equal(v.name, cases[i].in, strcspn(cases[i].in, ":"));
        assert_int_equal(v.name[strcspn(cases[i].in, ":")], '\0');
    }
}

/* The configured list becomes the pipeline's variants, in order. */
static void test_photo_variants(void **state)
{
    char *env[] = {"MEDIAEDGE_PHOTOS_VARIANTS=sq:100x100, wide:500", NULL};
    me_photo_config_t pc;
    me_config_t c;
    (void)state;
    assert_int_equal(load(&c, "", NULL), 0);
    me_photo_config_init(&pc, &c);
    assert_int_equal(pc.nvariants, 4);
    assert_string_equal(pc.variants[0].name, "thumb");
    assert_int_equal(pc.variants[0].square, 1);
    assert_string_equal(pc.variants[3].name, "large");
    assert_int_equal(pc.variants[3].size, 2048);
    me_config_free(&c);
    assert_int_equal(load(&c, "", env), 0);
    me_photo_config_init(&pc, &c);
    assert_int_equal(pc.nvariants, 2);
    assert_string_equal(pc.variants[0].name, "sq");
    assert_int_equal(pc.variants[0].size, 100);
    assert_int_equal(pc.variants[0].square, 1);
    assert_string_equal(pc.variants[1].name, "wide");
    assert_int_equal(pc.variants[1].square, 0);
    me_config_free(&c);
}

static void test_list_next(void **state)
{
    const char *p = " a, ,b c ,,\tc\t,", *item;
    size_t len;
    (void)state;
    assert_int_equal(me_config_list_next(&p, &item, &len), 1);
    assert_int_equal(len, 1);
    assert_memory_equal(item, "a", 1);
    assert_int_equal(me_config_list_next(&p, &item, &len), 1);
    assert_int_equal(len, 3);
    assert_memory_equal(item, "b c", 3);
    assert_int_equal(me_config_list_next(&p, &item, &len), 1);
    assert_int_equal(len, 1);
    assert_memory_equal(item, "c", 1);
    assert_int_equal(me_config_list_next(&p, &item, &len), 0);
    assert_int_equal(me_config_list_next(&p, &item, &len), 0);
    p = "";
    assert_int_equal(me_config_list_next(&p, &item, &len), 0);
}

/* A list is a YAML sequence (flow or block) or one comma-separated string, kept as "a,b". */
static void test_lists(void **state)
{
    static const struct { const char *yaml, *want; } cases[] = {
        {"http:\n  cors_origins: [\"https://a.example.com\", http://b.example.com:8080]\n",
         "https://a.example.com,http://b.example.com:8080"},
        {"http:\n  cors_origins:\n    - https://a.example.com\n    - 'https://b.example.com'\n",
         "https://a.example.com,https://b.example.com"},
        {"http:\n  cors_origins: \" https://a.example.com , https://b.example.com,\"\n",
         "https://a.example.com,https://b.example.com"},
        {"http:\n  cors_origins: []\n", ""},
        {"http:\n  cors_origins: \"\"\n", ""},
        {"http:\n  cors_origins:\n", ""},
    };
    char *env[] = {"MEDIAEDGE_HTTP_CORS_ORIGINS=https://e.example.com, http://localhost:3000", NULL};
    me_config_t c;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        print_message("case %zu\n", i);
        assert_int_equal(load(&c, cases[i].yaml, NULL), 0);
        assert_string_equal(me_http_settings(&c)->cors_origins, cases[i].want);
        me_config_free(&c);
    }
    assert_int_equal(load(&c, cases[0].yaml, env), 0); /* the environment wins, comma-separated */
    assert_string_equal(me_http_settings(&c)->cors_origins, "https://e.example.com,http://localhost:3000");
    me_config_free(&c);
}

static void test_defaults(void **state)
{
    me_config_t c;
    (void)state;
    assert_int_equal(me_config_defaults(&c), 0);
    const me_server_settings_t *sv = me_server_settings(&c);
    const me_listen_settings_t *ls = me_listen_settings(&c);
    const me_tls_settings_t *tls = me_tls_settings(&c);
    const me_http_settings_t *hs = me_http_settings(&c);
    const me_storage_settings_t *st = me_storage_settings(&c);
    const me_token_settings_t *ts = me_token_settings(&c);
    const me_log_settings_t *log = me_log_settings(&c);
    const me_shutdown_settings_t *sd = me_shutdown_settings(&c);
    assert_null(c.path);
    assert_int_equal(c.role, ME_ROLE_ALL);
    assert_string_equal(sv->data_dir, "./var");
    assert_int_equal(sv->threads, 0);
    assert_int_equal(sv->pool_threads, 0);
    assert_int_equal(sv->demo_page, 1);
    assert_string_equal(ls->http, "0.0.0.0:8080");
    assert_string_equal(ls->https, "0.0.0.0:8443");
    assert_string_equal(tls->cert_file, "");
    assert_string_equal(tls->key_file, "");
    assert_int_equal(hs->max_patch_size, 16 * MIB);
    assert_int_equal(hs->min_client_rate, 64 * KIB);
    assert_int_equal(hs->http1_request_timeout, 0);
    assert_int_equal(hs->idle_timeout, 30000);
    assert_int_equal(hs->http2_max_streams, 100);
    assert_int_equal(hs->body_spill_threshold, 0);
    assert_string_equal(hs->cors_origins, "");
    assert_int_equal(hs->cors_max_age, 3600000);
    assert_string_equal(st->backend, "file");
    assert_string_equal(st->root, "./var/storage");
    assert_int_equal(ts->alg, ME_ALG_HS256);
    assert_string_equal(ts->hs256_secret, ME_DEV_HS256_SECRET);
    assert_string_equal(ts->es256_public_key_file, "");
    assert_string_equal(ts->es256_private_key_file, "");
    assert_string_equal(ts->issuer, "mediaedge-dev");
    assert_string_equal(ts->audience, "mediaedge");
    assert_int_equal(ts->leeway, 30000);
    assert_int_equal(ts->allow_hs256_in_production, 0);
    assert_int_equal(ts->cache_entries, 4096);
    assert_int_equal(log->level, ME_LOG_INFO);
    assert_int_equal(log->access, 1);
    assert_int_equal(sd->delay, 5000);
    assert_int_equal(sd->drain_timeout, 25000);
    assert_int_equal(c.memory_limit, 0);
    assert_int_equal(c.cpu_limit, 0);
    assert_int_equal(me_config_is_production(&c), 0);
    me_config_free(&c);
    assert_null(me_server_settings(&c)); /* emptied */
    assert_int_equal(me_config_is_production(&c), 0);
    me_config_free(&c);

    assert_int_equal(me_config_load(&c, NULL, NULL, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    me_config_free(&c);
}

/* Finds conf/mediaedge.yaml: $ME_SRCDIR, else the source directory this file was compiled
 * from (as the compiler saw it: relative to the build directory, where `make check` runs),
 * else that directory relative to this binary (<build>/tests/unit/). */
static int find_example(char *path, size_t len)
{
    const char *srcdir = getenv("ME_SRCDIR");
    int prefix = (int)(strlen(__FILE__) - strlen("tests/unit/test_config.c"));
    char exe[256] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (srcdir != NULL) {
        snprintf(path, len, "%s/conf/mediaedge.yaml", srcdir);
        return access(path, R_OK) == 0;
    }
    snprintf(path, len, "%.*sconf/mediaedge.yaml", prefix, __FILE__);
    if (access(path, R_OK) == 0)
        return 1;
    if (n <= 0 || strrchr(exe, '/') == NULL)
        return 0;
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(path, len, "%s/../../%.*sconf/mediaedge.yaml", exe, prefix, __FILE__);
    return access(path, R_OK) == 0;
}

/* The shipped example must load and give exactly the defaults. */
static void test_example_file_is_the_defaults(void **state)
{
    char path[512];
    me_config_t c, d;
    (void)state;

    if (!find_example(path, sizeof(path)))
        fail_msg("conf/mediaedge.yaml not found (set ME_SRCDIR)");
    assert_int_equal(me_config_load(&c, path, NULL, err, sizeof(err)), 0);
    assert_int_equal(me_config_defaults(&d), 0);
    assert_same_settings(&c, &d);
    assert_string_equal(c.path, path);
    me_config_free(&c);
    me_config_free(&d);
}

static const char full_yaml[] =
    "# every key, none at its default\n"
    "server:\n"
    "  role: worker\n"
    "  data_dir: /srv/me\n"
    "  threads: 3\n"
    "  pool_threads: 7\n"
    "  demo_page: off\n"
    "listen:\n"
    "  http: \"127.0.0.1:80\"\n"
    "  https: '[::]:443'\n"
    "tls:\n"
    "  cert_file: /etc/me/cert.pem\n"
    "  key_file: /etc/me/key.pem\n"
    "http:\n"
    "  max_patch_size: 64M\n"
    "  min_client_rate: 128k\n"
    "  http1_request_timeout: 10m\n"
    "  idle_timeout: 250ms\n"
    "  http2_max_streams: 1000\n"
    "  body_spill_threshold: 2097152\n"
    "  cors_origins: [https://app.example.com]\n"
    "  cors_max_age: 10m\n"
    "storage:\n"
    "  backend: s3\n"
    "  root: \"\"\n"
    "s3:\n"
    "  bucket: media-prod\n"
    "tokens:\n"
    "  algorithm: ES256\n"
    "  hs256_secret: \"0123456789abcdef0123456789abcdef\"\n"
    "  es256_public_key_file: /etc/me/pub.pem\n"
    "  es256_private_key_file: /etc/me/priv.pem\n"
    "  issuer: app\n"
    "  audience: edge\n"
    "  leeway: 2\n"
    "  allow_hs256_in_production: yes\n"
    "  cache_entries: 0\n"
    "log:\n"
    "  level: DEBUG\n"
    "  access: false\n"
    "photos:\n"
    "  max_pixels: 24000000\n"
    "  max_bytes: 20MiB\n"
    "  jpeg_quality: 90\n"
    "  webp_quality: 70\n"
    "  keep_location: true\n"
    "shutdown:\n"
    "  delay: 1h\n"
    "  drain_timeout: 1s\n";

static void test_full_file(void **state)
{
    me_config_t c;
    (void)state;
    assert_int_equal(load(&c, full_yaml, NULL), 0);
    const me_server_settings_t *sv = me_server_settings(&c);
    const me_listen_settings_t *ls = me_listen_settings(&c);
    const me_tls_settings_t *tls = me_tls_settings(&c);
    const me_http_settings_t *hs = me_http_settings(&c);
    const me_storage_settings_t *st = me_storage_settings(&c);
    const me_token_settings_t *ts = me_token_settings(&c);
    const me_log_settings_t *log = me_log_settings(&c);
    const me_photo_settings_t *ps = me_photo_settings(&c);
    const me_shutdown_settings_t *sd = me_shutdown_settings(&c);
    assert_string_equal(c.path, cfg_path);
    assert_int_equal(c.role, ME_ROLE_WORKER);
    assert_string_equal(sv->data_dir, "/srv/me");
    assert_int_equal(sv->threads, 3);
    assert_int_equal(sv->pool_threads, 7);
    assert_int_equal(sv->demo_page, 0);
    assert_string_equal(ls->http, "127.0.0.1:80");
    assert_string_equal(ls->https, "[::]:443");
    assert_string_equal(tls->cert_file, "/etc/me/cert.pem");
    assert_string_equal(tls->key_file, "/etc/me/key.pem");
    assert_int_equal(hs->max_patch_size, 64 * MIB);
    assert_int_equal(hs->min_client_rate, 128 * KIB);
    assert_int_equal(hs->http1_request_timeout, 600000);
    assert_int_equal(hs->idle_timeout, 250);
    assert_int_equal(hs->http2_max_streams, 1000);
    assert_int_equal(hs->body_spill_threshold, 2 * MIB);
    assert_string_equal(hs->cors_origins, "https://app.example.com");
    assert_int_equal(hs->cors_max_age, 600000);
    assert_string_equal(st->backend, "s3");
    assert_string_equal(st->root, "");
    assert_int_equal(ts->alg, ME_ALG_ES256);
    assert_string_equal(ts->hs256_secret, "0123456789abcdef0123456789abcdef");
    assert_string_equal(ts->es256_public_key_file, "/etc/me/pub.pem");
    assert_string_equal(ts->es256_private_key_file, "/etc/me/priv.pem");
    assert_string_equal(ts->issuer, "app");
    assert_string_equal(ts->audience, "edge");
    assert_int_equal(ts->leeway, 2000);
    assert_int_equal(ts->allow_hs256_in_production, 1);
    assert_int_equal(ts->cache_entries, 0);
    assert_int_equal(log->level, ME_LOG_DEBUG);
    assert_int_equal(log->access, 0);
    assert_int_equal(ps->max_pixels, 24000000);
    assert_int_equal(ps->max_bytes, 20 * MIB);
    assert_int_equal(ps->jpeg_quality, 90);
    assert_int_equal(ps->webp_quality, 70);
    assert_int_equal(ps->keep_location, 1);
    assert_int_equal(sd->delay, 3600000);
    assert_int_equal(sd->drain_timeout, 1000);
    assert_int_equal(me_config_is_production(&c), 1);
    /* load again over a loaded config: the caller frees first, as the contract says */
    me_config_free(&c);
    assert_int_equal(load(&c, "server:\nlisten:\n  http: ''\n", NULL), 0);
    assert_string_equal(me_listen_settings(&c)->http, "");
    assert_string_equal(me_server_settings(&c)->data_dir, "./var");
    me_config_free(&c);
    me_config_free(&c);
}

typedef struct {
    const char *yaml, *err;
} error_case_t;

/* expect_error() for each of n cases, from a file. */
static void expect_errors(const error_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        print_message("case %zu: %s\n", i, cases[i].err);
        expect_error(cases[i].yaml, NULL, cases[i].err);
    }
}

static void test_file_errors(void **state)
{
    static const error_case_t cases[] = {
        {"server:\n  threads: [1\nlisten:\n",
         ":3: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence that starts at line 2)"},
        {"server:\n  threads: 4\n   role: api\n",
         ":3: YAML syntax error: mapping values are not allowed in this context"},
        {"log:\n  level: info\n---\nlog: {}\n", ":3: expected one YAML document, found another"},
        {"- server\n", ":1: expected sections such as 'server:', got a list"},
        {"server:\n  threads: 1\nlistn:\n  http: ''\n", ":3: unknown section 'listn'"},
        {"server:\n  role: api\n  treads: 4\n", ":3: unknown key 'treads' in section 'server'"},
        {"tokens:\n  es256_public_key_file_file: x\n",
         ":2: unknown key 'es256_public_key_file_file' in section 'tokens'"},
        {"server:\n  threads: 4\n  threads: 5\n", ":3: duplicate key 'threads' in section 'server'"},
        {"log:\n  level: info\nserver: {}\nlog:\n  access: true\n", ":4: duplicate section 'log'"},
        {"server: threads\n", ":1: section 'server' must be a mapping of key: value, got a single value"},
        {"server:\n  threads:\n    - 1\n", ":3: server.threads: expected a single value, got a list"},
        {"listen:\n  http: {host: x}\n", ":2: listen.http: expected a single value, got a mapping"},
        {"server:\n  threads: lots\n", ":2: server.threads: expected an integer, got 'lots'"},
        {"server:\n  threads: 257\n", ":2: server.threads: must be between 0 and 256, got '257'"},
        {"server:\n  pool_threads: -1\n", ":2: server.pool_threads: must be between 0 and 256, got '-1'"},
        {"http:\n  http2_max_streams: 0\n", ":2: http.http2_max_streams: must be between 1 and 1000, got '0'"},
        {"tokens:\n  cache_entries: 1000001\n",
         ":2: tokens.cache_entries: must be between 0 and 1000000, got '1000001'"},
        {"server:\n  demo_page: maybe\n",
         ":2: server.demo_page: expected true or false (or yes/no, on/off), got 'maybe'"},
        {"server:\n  role: boss\n", ":2: server.role: expected one of all, api, worker, got 'boss'"},
        {"log:\n  level: trace\n", ":2: log.level: expected one of debug, info, warn, error, got 'trace'"},
        {"tokens:\n  algorithm: RS256\n", ":2: tokens.algorithm: expected one of HS256, ES256, got 'RS256'"},
        {"storage:\n  backend: gcs\n", ":2: storage.backend: expected one of file, s3, got 'gcs'"},
        {"http:\n  max_patch_size: 16MB\n",
         ":2: http.max_patch_size: expected a size such as 1048576, 512KiB, 16MiB or 1GiB, got '16MB'"},
        {"http:\n  max_patch_size: 2G\n", ":2: http.max_patch_size: must be between 64KiB and 1GiB, got '2G'"},
        {"http:\n  max_patch_size: 65535\n", ":2: http.max_patch_size: must be between 64KiB and 1GiB, got '65535'"},
        {"http:\n  min_client_rate: 1023\n", ":2: http.min_client_rate: must be at least 1KiB, got '1023'"},
        {"http:\n  idle_timeout: 5 minutes\n",
         ":2: http.idle_timeout: expected a duration such as 250ms, 30s, 2m or 1h (a bare number is seconds), got '5 minutes'"},
        {"listen:\n  http: 8080\n",
         ":2: listen.http: expected host:port with a port from 1 to 65535, or \"\" to disable, got '8080'"},
        {"tokens:\n  issuer: \"a\\0b\"\n", ":2: tokens.issuer: contains a NUL byte"},
        {"http:\n  cors_origins: https://a.example.com, https://b.example.com/\n",
         ":2: http.cors_origins: expected origins such as https://app.example.com (scheme://host[:port]: no path, "
         "no wildcard), got 'https://b.example.com/'"},
        {"http:\n  cors_origins: [\"https://a.example.com\", [\"https://b.example.com\"]]\n",
         ":2: http.cors_origins: expected a list of single values, got a list in it"},
        {"http:\n  cors_origins: {a: b}\n", ":2: http.cors_origins: expected a single value, got a mapping"},
        {"http:\n  cors_origins: [\"https://a.example.com\", \"a\\0b\"]\n", ":2: http.cors_origins: contains a NUL byte"},
        {"http:\n  cors_max_age: 25h\n", ":2: http.cors_max_age: must be between 0 and 24h, got '25h'"},
        /* cross-setting rules name the line of the setting at fault */
        {"\nlisten:\n  http: ''\n  https: \"\"\n",
         ":4: listen.http and listen.https are both empty; at least one listener is needed"},
        {"tls:\n  key_file: k.pem\n",
         ":2: tls.cert_file and tls.key_file must both be set, or both be empty for a self-signed certificate"},
        {"tokens:\n  algorithm: ES256\n",
         ":2: tokens.algorithm is ES256 but tokens.es256_public_key_file is empty"},
        {"tokens:\n  hs256_secret: short-but-secret-31-bytes-long!\n",
         ":2: tokens.hs256_secret must be at least 32 bytes for HS256"},
        {"http:\n  cors_origins:\n    - https://a.example.com\n    - \"*\"\n",
         ":2: http.cors_origins: \"*\" (any origin) is not allowed: requests carry credentials (Authorization), "
         "so list each origin, such as https://app.example.com"},
        {"photos:\n  variants: [a:100, b:200, a:300x300]\n",
         ":2: photos.variants names a variant twice; each name is a file name"},
        {"photos:\n  variants: []\n", ":2: photos.variants is empty; list at least one, such as thumb:320x320"},
        {"photos:\n  variants: [a:16, b:16, c:16, d:16, e:16, f:16, g:16, h:16, i:16]\n",
         ":2: photos.variants: at most 8 items, got more"},
    };
    (void)state;
    expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
    /* the default secret passes with a file that never mentions it */
    me_config_t c;
    assert_int_equal(load(&c, "listen:\n  http: ''\n", NULL), 0);
    me_config_free(&c);
}

static void test_missing_and_empty_file(void **state)
{
    me_config_t c, d;
    char want[256];
    (void)state;
    assert_int_equal(me_config_load(&c, tmp_path("absent.yaml"), NULL, err, sizeof(err)), ME_ECONFIG);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", tmp_path("absent.yaml"));
    assert_string_equal(err, want);
    me_config_free(&c);

    assert_int_equal(me_config_defaults(&d), 0);
    assert_int_equal(load(&c, "", NULL), 0);
    assert_same_settings(&c, &d);
    me_config_free(&c);
    assert_int_equal(load(&c, "# only comments\nserver:\n  # threads: 4\n", NULL), 0);
    assert_same_settings(&c, &d);
    me_config_free(&c);
    me_config_free(&d);
}

static void test_env_overrides(void **state)
{
    char *env[] = {
        "PATH=/usr/bin",
        "MEDIAEDGE_CONFIG=/somewhere/else.yaml",
        "MEDIAEDGE_LISTEN_HTTPS=",
        "MEDIAEDGE_STORAGE_ROOT=/data/media",
        "MEDIAEDGE_SERVER_THREADS=8",
        "MEDIAEDGE_HTTP_MAX_PATCH_SIZE=32MiB",
        "MEDIAEDGE_LOG_ACCESS=off",
        "MEDIAEDGE_TOKENS_HS256_SECRET=env-secret-env-secret-env-secret!",
        "mediaedge_server_threads=99", /* not ours: names are upper case */
        NULL,
    };
    me_config_t c;
    (void)state;
    assert_int_equal(load(&c, "server:\n  threads: 2\n  pool_threads: 5\n", env), 0);
    assert_string_equal(me_listen_settings(&c)->https, "");
    assert_string_equal(me_listen_settings(&c)->http, "0.0.0.0:8080");
    assert_string_equal(me_storage_settings(&c)->root, "/data/media");
    assert_int_equal(me_server_settings(&c)->threads, 8);      /* the environment wins over the file */
    assert_int_equal(me_server_settings(&c)->pool_threads, 5); /* the file wins over the default */
    assert_int_equal(me_http_settings(&c)->max_patch_size, 32 * MIB);
    assert_int_equal(me_log_settings(&c)->access, 0);
    assert_string_equal(me_token_settings(&c)->hs256_secret, "env-secret-env-secret-env-secret!");
    me_config_free(&c);

    /* without a file at all */
    assert_int_equal(me_config_load(&c, NULL, env, err, sizeof(err)), 0);
    assert_null(c.path);
    assert_int_equal(me_server_settings(&c)->threads, 8);
    me_config_free(&c);
}

static void test_env_errors(void **state)
{
    char *bad_value[] = {"MEDIAEDGE_SERVER_THREADS=lots", NULL};
    char *bad_size[] = {"MEDIAEDGE_HTTP_MAX_PATCH_SIZE=-1", NULL};
    char *unknown[] = {"MEDIAEDGE_SERVER_TREADS=4", NULL};
    char *file_of_plain[] = {"MEDIAEDGE_STORAGE_ROOT_FILE=/x", NULL};
    char *both_empty[] = {"MEDIAEDGE_LISTEN_HTTP=", "MEDIAEDGE_LISTEN_HTTPS=", NULL};
    char *short_secret[] = {"MEDIAEDGE_TOKENS_HS256_SECRET=tiny", NULL};
    char *any_origin[] = {"MEDIAEDGE_HTTP_CORS_ORIGINS=https://a.example.com,*", NULL};
    char many[80 * 32] = "MEDIAEDGE_HTTP_CORS_ORIGINS=", *too_many[] = {many, NULL};
    (void)state;
    for (int i = 0; i < 65; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "https://o%d.example.com,", i);
    expect_error(NULL, bad_value, "MEDIAEDGE_SERVER_THREADS: server.threads: expected an integer, got 'lots'");
    expect_error(NULL, bad_size,
                 "MEDIAEDGE_HTTP_MAX_PATCH_SIZE: http.max_patch_size: expected a size such as 1048576, 512KiB, 16MiB or 1GiB, got '-1'");
    expect_error("server:\n  threads: 1\n", unknown,
                 "MEDIAEDGE_SERVER_TREADS: unknown setting (expected MEDIAEDGE_<SECTION>_<KEY> for a key of conf/mediaedge.yaml)");
    expect_error(NULL, file_of_plain,
                 "MEDIAEDGE_STORAGE_ROOT_FILE: unknown setting (expected MEDIAEDGE_<SECTION>_<KEY> for a key of conf/mediaedge.yaml)");
    expect_error(NULL, both_empty,
                 "MEDIAEDGE_LISTEN_HTTPS: listen.http and listen.https are both empty; at least one listener is needed");
    expect_error(NULL, short_secret, "MEDIAEDGE_TOKENS_HS256_SECRET: tokens.hs256_secret must be at least 32 bytes for HS256");
    assert_null(strstr(err, "tiny"));
    expect_error(NULL, any_origin,
                 "MEDIAEDGE_HTTP_CORS_ORIGINS: http.cors_origins: \"*\" (any origin) is not allowed: requests carry "
                 "credentials (Authorization), so list each origin, such as https://app.example.com");
    expect_error(NULL, too_many, "MEDIAEDGE_HTTP_CORS_ORIGINS: http.cors_origins: at most 64 items, got more");
}

static void test_secret_files(void **state)
{
    const char *secret = "file-secret-0123456789-0123456789";
    char yaml[256], env_var[256], *env[] = {env_var, NULL};
    char spaced[128];
    me_config_t c;
    (void)state;

    snprintf(spaced, sizeof(spaced), "%s \t\r\n\n", secret);
    write_file(tmp_path("secret"), spaced);
    snprintf(yaml, sizeof(yaml), "tokens:\n  hs256_secret_file: %s\n", tmp_path("secret"));
    assert_int_equal(load(&c, yaml, NULL), 0);
    assert_string_equal(me_token_settings(&c)->hs256_secret, secret);
    me_config_free(&c);

    snprintf(env_var, sizeof(env_var), "MEDIAEDGE_TOKENS_HS256_SECRET_FILE=%s", tmp_path("secret"));
    assert_int_equal(load(&c, "tokens:\n  hs256_secret: \"from-the-file-from-the-file-from-the-file\"\n", env), 0);
    assert_string_equal(me_token_settings(&c)->hs256_secret, secret); /* the environment's file wins */
    me_config_free(&c);

    /* a secret read from a file that is too short: the error never shows it */
    write_file(tmp_path("short"), "tiny-secret\n");
    snprintf(env_var, sizeof(env_var), "MEDIAEDGE_TOKENS_HS256_SECRET_FILE=%s", tmp_path("short"));
    expect_error(NULL, env, "MEDIAEDGE_TOKENS_HS256_SECRET_FILE: tokens.hs256_secret must be at least 32 bytes for HS256");
    assert_null(strstr(err, "tiny"));
}

static void test_secret_file_errors(void **state)
{
    char yaml[256], want[512], env_var[256], *env[] = {env_var, NULL};
    char *env_both[] = {"MEDIAEDGE_TOKENS_HS256_SECRET=0123456789abcdef0123456789abcdef", env_var, NULL};
    char *big = malloc(SECRET_FILE_MAX + 2);
    (void)state;

    snprintf(yaml, sizeof(yaml), "tokens:\n  issuer: x\n  hs256_secret_file: %s\n", tmp_path("nope"));
    snprintf(want, sizeof(want), ":3: tokens.hs256_secret_file: cannot open '%s': No such file or directory",
             tmp_path("nope"));
    expect_error(yaml, NULL, want);

    snprintf(env_var, sizeof(env_var), "MEDIAEDGE_TOKENS_HS256_SECRET_FILE=%s", tmp_path("nope"));
    snprintf(want, sizeof(want),
             "MEDIAEDGE_TOKENS_HS256_SECRET_FILE: tokens.hs256_secret_file: cannot open '%s': No such file or directory",
             tmp_path("nope"));
    expect_error(NULL, env, want);

    assert_non_null(big);
    memset(big, 'x', SECRET_FILE_MAX + 1);
    big[SECRET_FILE_MAX + 1] = '\0';
    write_file(tmp_path("big"), big);
    free(big);
    snprintf(env_var, sizeof(env_var), "MEDIAEDGE_TOKENS_HS256_SECRET_FILE=%s", tmp_path("big"));
    snprintf(want, sizeof(want),
             "MEDIAEDGE_TOKENS_HS256_SECRET_FILE: tokens.hs256_secret_file: '%s' is larger than 64KiB",
             tmp_path("big"));
    expect_error(NULL, env, want);

    /* both the value and the file in one place */
    write_file(tmp_path("secret"), "0123456789abcdef0123456789abcdef\n");
    snprintf(yaml, sizeof(yaml),
             "tokens:\n  hs256_secret: \"0123456789abcdef0123456789abcdef\"\n  hs256_secret_file: %s\n",
             tmp_path("secret"));
    expect_error(yaml, NULL,
                 ":3: tokens.hs256_secret is set both as a value and as a file (hs256_secret_file); set only one");
    snprintf(env_var, sizeof(env_var), "MEDIAEDGE_TOKENS_HS256_SECRET_FILE=%s", tmp_path("secret"));
    expect_error(NULL, env_both,
                 "MEDIAEDGE_TOKENS_HS256_SECRET_FILE: tokens.hs256_secret is set both as a value and as a file (hs256_secret_file); set only one");
    assert_null(strstr(err, "0123456789abcdef"));
}

/* Loads a production (s3) config with extra yaml lines appended and checks the refusal. */
static void expect_production(const char *extra, const char *want)
{
    char yaml[1024], perr[512];
    me_config_t c;

    snprintf(yaml, sizeof(yaml), "storage:\n  backend: s3\ns3:\n  bucket: media\n%s", extra);
    assert_int_equal(load(&c, yaml, NULL), 0);
    assert_int_equal(me_config_is_production(&c), 1);
    if (want != NULL) {
        assert_int_equal(me_config_check_production(&c, perr, sizeof(perr)), ME_ECONFIG);
        assert_string_equal(perr, want);
        assert_null(strstr(perr, ME_DEV_HS256_SECRET));
    } else {
        assert_int_equal(me_config_check_production(&c, perr, sizeof(perr)), 0);
    }
    me_config_free(&c);
}

static void test_production(void **state)
{
    me_config_t c;
    char perr[256];
    (void)state;

    /* development (file storage) allows every development default */
    assert_int_equal(me_config_defaults(&c), 0);
    assert_int_equal(me_config_check_production(&c, perr, sizeof(perr)), 0);
    me_config_free(&c);

    expect_production("",
        "tokens.hs256_secret: the development key is not allowed in production (storage.backend is s3); "
        "set MEDIAEDGE_TOKENS_HS256_SECRET_FILE");
    expect_production("tokens:\n  hs256_secret: \"0123456789abcdef0123456789abcdef\"\n",
        "tokens.algorithm: HS256 is not allowed in production (storage.backend is s3) unless "
        "tokens.allow_hs256_in_production is true; use ES256");
    expect_production("tokens:\n  algorithm: ES256\n  es256_public_key_file: /k.pem\n",
        "cdn.keys: the development CloudFront key (made at first start, known to no CloudFront) is not allowed in "
        "production (storage.backend is s3); set cdn.keys to <key id>=<PEM file> of the key pair CloudFront trusts");
    expect_production("tokens:\n  algorithm: ES256\n  es256_public_key_file: /k.pem\ncdn:\n  keys: K1=/cf.pem\n",
        "tls.cert_file: a self-signed certificate (tls.cert_file empty while listen.https is set) is "
        "not allowed in production (storage.backend is s3); set tls.cert_file and tls.key_file, or "
        "disable listen.https");
    expect_production("tokens:\n  algorithm: ES256\n  es256_public_key_file: /k.pem\ncdn:\n  keys: K1=/cf.pem\n"
                      "listen:\n  https: ''\n",
        "server.demo_page: the demo page is not allowed in production (storage.backend is s3); "
        "set server.demo_page to false");
    expect_production("tokens:\n  algorithm: ES256\n  es256_public_key_file: /k.pem\ncdn:\n  keys: K1=/cf.pem\n"
                      "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n"
                      "server:\n  demo_page: false\n",
        NULL);
    /* album cookies only over TLS */
    expect_production("tokens:\n  algorithm: ES256\n  es256_public_key_file: /k.pem\n"
                      "cdn:\n  keys: K1=/cf.pem\n  cookie_secure: false\n"
                      "listen:\n  https: ''\nserver:\n  demo_page: false\n",
        "cdn.cookie_secure: album cookies sent over plain HTTP (anyone on the way could reuse them) are not "
        "allowed in production (storage.backend is s3); set cdn.cookie_secure to true");
    /* HS256 with a real key, explicitly allowed */
    expect_production("tokens:\n  hs256_secret: \"0123456789abcdef0123456789abcdef\"\n"
                      "  allow_hs256_in_production: true\ncdn:\n  keys: K1=/cf.pem\n"
                      "listen:\n  https: ''\nserver:\n  demo_page: false\n",
        NULL);
    /* a worker checks no tokens and signs no URL: no token or CloudFront key is asked of it */
    expect_production("listen:\n  https: ''\nserver:\n  role: worker\n  demo_page: false\n", NULL);
    /* webhooks leave over TLS, from every role (api sends media.deleted) */
    expect_production("listen:\n  https: ''\nserver:\n  role: worker\n  demo_page: false\n"
                      "webhooks:\n  url: http://backend.internal/hooks\n  secret: s\n",
        "webhooks.url: a plain http:// URL (the events, about families' media, could be read on the way) is not "
        "allowed in production (storage.backend is s3); use an https:// URL");
    expect_production("listen:\n  https: ''\nserver:\n  role: worker\n  demo_page: false\n"
                      "webhooks:\n  url: https://backend.internal/hooks\n  secret: s\n", NULL);
    expect_production("tokens:\n  algorithm: ES256\n  es256_public_key_file: /k.pem\ncdn:\n  keys: K1=/cf.pem\n"
                      "listen:\n  https: ''\nserver:\n  role: api\n  demo_page: false\n"
                      "webhooks:\n  url: http://backend.internal/hooks\n  secret: s\n",
        "webhooks.url: a plain http:// URL (the events, about families' media, could be read on the way) is not "
        "allowed in production (storage.backend is s3); use an https:// URL");
}

static void test_forget_secrets(void **state)
{
    me_config_t c;
    (void)state;
    assert_int_equal(load(&c, "tokens:\n  hs256_secret: \"0123456789abcdef0123456789abcdefXY\"\n"
                              "webhooks:\n  secret: hook\n", NULL), 0);
    me_config_forget_secrets(&c, &me_token_config_section);
    assert_string_equal(me_token_settings(&c)->hs256_secret, "");
    assert_string_equal(me_token_settings(&c)->issuer, "mediaedge-dev"); /* not a secret */
    assert_string_equal(me_webhook_settings(&c)->secret, "hook"); /* workers send webhooks */
    me_config_free(&c);
    assert_int_equal(me_config_defaults(&c), 0); /* the development key is a literal: replaced, not freed */
    me_config_forget_secrets(&c, &me_token_config_section);
    assert_string_equal(me_token_settings(&c)->hs256_secret, "");
    me_config_free(&c);
}

static void write_cgroup(const char *cpu_max, const char *memory_max)
{
    write_file(tmp_path("cpu.max"), cpu_max);
    write_file(tmp_path("memory.max"), memory_max);
    assert_int_equal(setenv("ME_CGROUP_ROOT", dir, 1), 0);
}

static char *print_to_string(const me_config_t *c);

static void test_resolve(void **state)
{
    const me_server_settings_t *sv;
    const me_http_settings_t *hs;
    me_config_t c;
    char *once, *twice;
    (void)state;

    write_cgroup("100000 100000\n", "536870912\n");
    assert_int_equal(load(&c, "server:\n  pool_threads: 3\n", NULL), 0);
    me_config_resolve(&c);
    sv = me_server_settings(&c);
    hs = me_http_settings(&c);
    assert_int_equal(c.cpu_limit, 1);
    assert_int_equal(c.memory_limit, 512 * MIB);
    assert_int_equal(sv->threads, 1);
    assert_int_equal(sv->pool_threads, 3); /* set: kept */
    assert_int_equal(hs->http1_request_timeout, 10000 + 256000);
    assert_int_equal(hs->body_spill_threshold, 2 * MIB);
    assert_int_equal(hs->max_body_memory, 128 * MIB);
    assert_int_equal(me_jobs_settings(&c)->workers, 1);
    once = print_to_string(&c); /* every value, the limits, and which were filled */
    me_config_resolve(&c);
    twice = print_to_string(&c);
    assert_string_equal(once, twice);
    free(once);
    free(twice);
    me_config_free(&c);

    /* small memory: the 1 MiB floor; a 2-CPU quota: pool max(4, 4) */
    write_cgroup("200000 100000\n", "67108864\n");
    assert_int_equal(load(&c, "http:\n  max_patch_size: 1GiB\n  min_client_rate: 1MiB\n", NULL), 0);
    me_config_resolve(&c);
    sv = me_server_settings(&c);
    hs = me_http_settings(&c);
    assert_true(c.cpu_limit >= 1 && c.cpu_limit <= 2);
    assert_int_equal(sv->threads, c.cpu_limit);
    assert_int_equal(sv->pool_threads, 4);
    assert_int_equal(hs->http1_request_timeout, 10000 + 1024000);
    assert_int_equal(hs->body_spill_threshold, MIB);
    assert_int_equal(hs->max_body_memory, 2 * GIB); /* twice a body, more than a quarter of memory */
    me_config_free(&c);

    /* large memory: the 32 MiB ceiling */
    write_cgroup("100000 100000\n", "536870912\n");
    assert_int_equal(me_config_defaults(&c), 0);
    c.memory_limit = 64 * GIB; /* already known: not queried again */
    me_config_resolve(&c);
    assert_int_equal(me_http_settings(&c)->body_spill_threshold, 32 * MIB);
    me_config_free(&c);
    assert_int_equal(unsetenv("ME_CGROUP_ROOT"), 0);
}

static char *print_to_string(const me_config_t *c)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    me_config_print(c, f);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void test_print(void **state)
{
    const char *secret = "print-secret-0123456789-0123456789";
    char yaml[1024], env_var[128], *env[] = {env_var, NULL};
    me_config_t c, again;
    char *text;
    (void)state;

    snprintf(yaml, sizeof(yaml), "tokens:\n  issuer: 'a\"b\\c'\n  hs256_secret: \"%s\"\n"
             "http:\n  cors_origins: https://a.example.com, http://[::1]:3000\n", secret);
    write_cgroup("300000 100000\n", "1073741824\n");
    assert_int_equal(load(&c, yaml, NULL), 0);

    text = print_to_string(&c); /* before resolving: auto values print as 0 */
    assert_non_null(strstr(text, "  threads: 0  # auto\n"));
    free(text);

    me_config_resolve(&c);
    text = print_to_string(&c);
    assert_null(strstr(text, secret));
    assert_non_null(strstr(text, "\nserver:\n  role: all\n  data_dir: \"./var\"\n"));
    assert_non_null(strstr(text, "  hs256_secret: \"<redacted>\"\n"));
    assert_non_null(strstr(text, "  issuer: \"a\\\"b\\\\c\"\n"));
    assert_non_null(strstr(text, "  max_patch_size: 16MiB\n"));
    assert_non_null(strstr(text, "  idle_timeout: 30s\n"));
    assert_non_null(strstr(text, "  body_spill_threshold: 4MiB  # auto\n"));
    assert_non_null(strstr(text, "  http1_request_timeout: 266s  # auto\n"));
    assert_non_null(strstr(text, "  demo_page: true\n"));
    assert_non_null(strstr(text, "  cors_origins: [\"https://a.example.com\", \"http://[::1]:3000\"]\n"));
    assert_non_null(strstr(text, "  cors_max_age: 1h\n"));
    assert_non_null(strstr(text, "  level: info\n"));
    assert_null(strstr(text, "  pool_threads: 0"));

    /* the output is a config that loads to the same values (the secret comes from elsewhere) */
    write_file(tmp_path("printed.yaml"), text);
    free(text);
    snprintf(env_var, sizeof(env_var), "MEDIAEDGE_TOKENS_HS256_SECRET=%s", secret);
    assert_int_equal(me_config_load(&again, tmp_path("printed.yaml"), env, err, sizeof(err)), 0);
    assert_same_settings(&again, &c);
    me_config_free(&again);

    /* an empty secret prints as "" */
    me_config_free(&c);
    assert_int_equal(load(&c, "tokens:\n  algorithm: ES256\n  hs256_secret: ''\n"
                              "  es256_public_key_file: /k.pem\n", NULL), 0);
    text = print_to_string(&c);
    assert_non_null(strstr(text, "  hs256_secret: \"\"\n"));
    assert_non_null(strstr(text, "  cors_origins: []\n"));
    free(text);
    me_config_free(&c);
    assert_int_equal(unsetenv("ME_CGROUP_ROOT"), 0);
}

/* Every registered table: unique names, and what the engine relies on in each line. */
static void test_tables(void **state)
{
    char name[256];
    (void)state;
    for (size_t k = 0; me_config_sections[k] != NULL; k++) {
        const me_config_section_t *sec = me_config_sections[k];
        print_message("section %s\n", sec->name);
        assert_true(sec->size > 0 && sec->nsettings > 0);
        for (size_t j = 0; j < k; j++)
            assert_string_not_equal(me_config_sections[j]->name, sec->name);
        for (size_t i = 0; i < sec->nsettings; i++) {
            const me_setting_t *s = &sec->settings[i];
            assert_non_null(s->key);
            for (size_t j = 0; j < i; j++)
                assert_string_not_equal(sec->settings[j].key, s->key);
            assert_true(s->offset + sizeof(int) <= (s->flags & ME_SETTING_CORE ? sizeof(me_config_t) : sec->size));
            if (s->type == ME_SETTING_INT)
                assert_true(s->max != 0); /* stored in an int: every one has a range */
            if (s->type == ME_SETTING_ENUM)
                assert_non_null(s->choices);
            if (s->type == ME_SETTING_LIST)
                assert_true(s->valid != NULL && s->max > 0);
            /* the environment's names fit env_lookup()'s buffer */
            assert_true(snprintf(name, sizeof(name), "MEDIAEDGE_%s_%s_FILE", sec->name, s->key) < (int)sizeof(name));
        }
    }
}

/* check-config lists the sections in me_config_sections' order, the file's. */
static void test_sections_print_in_order(void **state)
{
    static const char *const order[] = {"server", "listen", "tls", "http", "storage", "s3", "tokens", "log",
                                        "uploads", "photos", "videos", "plans", "shutdown", "jobs", "webhooks",
                                        "cdn", "delivery", "montages", "queue", "redis", NULL};
    char header[64], *text;
    const char *at, *last;
    me_config_t c;
    size_t n = 0;
    (void)state;

    assert_int_equal(me_config_defaults(&c), 0);
    text = print_to_string(&c);
    last = text;
    for (; order[n] != NULL; n++) {
        assert_non_null(me_config_sections[n]);
        assert_string_equal(me_config_sections[n]->name, order[n]);
        snprintf(header, sizeof(header), "\n\n%s:\n", order[n]);
        print_message("%s", header + 1);
        assert_non_null(at = strstr(text, header));
        assert_true(at >= last);
        assert_ptr_equal(strstr(at + 1, header), NULL); /* once */
        last = at;
    }
    assert_null(me_config_sections[n]);
    free(text);
    me_config_free(&c);
}

/* A value a module's validator refuses is reported with section.key and the value. */
static void test_module_validators_name_the_setting(void **state)
{
    static const error_case_t cases[] = {
        {"listen:\n  https: \"[nope]:443\"\n",
         ":2: listen.https: expected host:port with a port from 1 to 65535, or \"\" to disable, got '[nope]:443'"},
        {"http:\n  cors_origins: [\"https://a.example.com/x\"]\n",
         ":2: http.cors_origins: expected origins such as https://app.example.com (scheme://host[:port]: no path, "
         "no wildcard), got 'https://a.example.com/x'"},
        {"photos:\n  variants: [thumb:320, Big:2048]\n",
         ":2: photos.variants: expected name:size (the longest edge) or name:sizexsize (a square crop), name of "
         "a-z 0-9 _ -, size from 16 to 8192, got 'Big:2048'"},
        {"webhooks:\n  url: ftp://backend.internal/hooks\n",
         ":2: webhooks.url: expected an http:// or https:// URL, or \"\" for no webhooks, got "
         "'ftp://backend.internal/hooks'"},
    };
    char *env[] = {"MEDIAEDGE_WEBHOOKS_URL=https://backend.internal/a b", NULL};
    (void)state;
    expect_errors(cases, sizeof(cases) / sizeof(cases[0]));
    expect_error(NULL, env, "MEDIAEDGE_WEBHOOKS_URL: webhooks.url: expected an http:// or https:// URL, or \"\" "
                            "for no webhooks, got 'https://backend.internal/a b'");
}

/* A section of the test's own with more settings than the 64 the old bit mask held: each
 * is read, validated, checked, resolved and printed like the first. */
#define MANY 100
typedef struct {
    int n[MANY];
    uint64_t buffer; /* auto */
    char *word;
} many_t;

static char many_keys[MANY][8];
static me_setting_t many_settings[MANY + 2];

static int valid_word(const char *value)
{
    return strspn(value, "abcdefghijklmnopqrstuvwxyz") == strlen(value);
}

static int many_check(const me_config_t *cfg, const void *values, me_config_check_t *ck)
{
    const many_t *m = values;
    if (m->n[MANY - 1] == 13)
        return me_config_reject(ck, &m->n[MANY - 1], "many.k99 is unlucky");
    return 0;
}

static void many_resolve(me_config_t *cfg, void *values)
{
    many_t *m = values;
    me_config_auto(cfg, &m->buffer, 3 * MIB);
}

static const me_config_section_t many_section = {
    .name = "many", .size = sizeof(many_t), ME_CONFIG_TABLE(many_settings), .check = many_check,
    .resolve = many_resolve,
};
static const me_config_section_t *const many_list[] = {&many_section, NULL};

/* Loads yaml (from cfg_path) and env over many_list. */
static int load_many(me_config_t *c, const char *yaml, char *const *env)
{
    write_file(cfg_path, yaml);
    return load_with(c, many_list, cfg_path, env, err, sizeof(err));
}

static void expect_many_error(const char *yaml, char *const *env, const char *want)
{
    me_config_t c;
    assert_int_equal(load_many(&c, yaml, env), ME_ECONFIG);
    assert_string_equal(err, want);
    me_config_free(&c);
}

static void test_many_settings(void **state)
{
    char *env[] = {"MEDIAEDGE_MANY_K70=70", NULL}, *unlucky[] = {"MEDIAEDGE_MANY_K99=13", NULL};
    char want[256], *text;
    const many_t *m;
    me_config_t c;
    (void)state;

    for (int i = 0; i < MANY; i++) {
        snprintf(many_keys[i], sizeof(many_keys[i]), "k%d", i);
        many_settings[i] = (me_setting_t){.key = many_keys[i], .type = ME_SETTING_INT,
                                          .offset = offsetof(many_t, n) + (size_t)i * sizeof(int), .def = "0",
                                          .max = 1000};
    }
    many_settings[MANY] = (me_setting_t)ME_SETTING(many_t, "buffer", ME_SETTING_SIZE, buffer, "0",
                                                   .flags = ME_SETTING_AUTO);
    many_settings[MANY + 1] = (me_setting_t)ME_SETTING(many_t, "word", ME_SETTING_STRING, word, "abc",
                                                       .valid = valid_word, .form = "a word");

    assert_int_equal(load_many(&c, "many:\n  k0: 1\n  k64: 64\n  k99: 99\n  word: xyz\n", env), 0);
    assert_int_equal(c.store->nslots, MANY + 2);
    assert_null(me_config_section(&c, &me_photo_config_section)); /* not one of its sections */
    m = me_config_section(&c, &many_section);
    assert_int_equal(m->n[0], 1);
    assert_int_equal(m->n[5], 0);
    assert_int_equal(m->n[64], 64);
    assert_int_equal(m->n[70], 70);
    assert_int_equal(m->n[99], 99);
    assert_string_equal(m->word, "xyz");
    me_config_resolve(&c);
    assert_int_equal(m->buffer, 3 * MIB);
    text = print_to_string(&c);
    assert_non_null(strstr(text, "\nmany:\n  k0: 1\n  k1: 0\n"));
    assert_non_null(strstr(text, "  k99: 99\n  buffer: 3MiB  # auto\n  word: \"xyz\"\n"));
    free(text);
    me_config_free(&c);

    /* errors past the 64th setting name it, with its line or variable */
    snprintf(want, sizeof(want), "%s:3: many.k99: must be between 0 and 1000, got '1001'", cfg_path);
    expect_many_error("many:\n  k1: 1\n  k99: 1001\n", NULL, want);
    snprintf(want, sizeof(want), "%s:2: many.word: expected a word, got 'Xyz'", cfg_path);
    expect_many_error("many:\n  word: Xyz\n", NULL, want);
    snprintf(want, sizeof(want), "%s:3: many.k99 is unlucky", cfg_path);
    expect_many_error("many:\n  k1: 1\n  k99: 13\n", NULL, want);
    expect_many_error("many:\n  k1: 1\n", unlucky, "MEDIAEDGE_MANY_K99: many.k99 is unlucky");
    snprintf(want, sizeof(want), "%s:1: unknown section 'photos'", cfg_path);
    expect_many_error("photos:\n  variants: []\n", NULL, want);
}

static void test_free_after_failed_load(void **state)
{
    char *env[] = {"MEDIAEDGE_SERVER_DATA_DIR=/d", "MEDIAEDGE_BOGUS=1", NULL};
    me_config_t c;
    (void)state;
    /* strings from the file and the environment were taken before the failure */
    assert_int_equal(load(&c, "server:\n  data_dir: /x\nstorage:\n  root: /r\n", env), ME_ECONFIG);
    assert_string_equal(me_server_settings(&c)->data_dir, "/d");
    assert_string_equal(me_storage_settings(&c)->root, "/r");
    me_config_free(&c);
    assert_null(c.store);
    me_config_free(&c);
    /* a NULL or tiny error buffer is allowed */
    assert_int_equal(me_config_load(&c, NULL, env, NULL, 0), ME_ECONFIG);
    me_config_free(&c);
    assert_int_equal(me_config_load(&c, NULL, env, err, 4), ME_ECONFIG);
    assert_string_equal(err, "MED");
    me_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_listen_forms),
        cmocka_unit_test(test_origin_forms),
        cmocka_unit_test(test_list_next),
        cmocka_unit_test(test_variant_forms),
        cmocka_unit_test(test_photo_variants),
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_example_file_is_the_defaults),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_file_errors),
        cmocka_unit_test(test_missing_and_empty_file),
        cmocka_unit_test(test_env_overrides),
        cmocka_unit_test(test_env_errors),
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_secret_file_errors),
        cmocka_unit_test(test_production),
        cmocka_unit_test(test_forget_secrets),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_free_after_failed_load),
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_sections_print_in_order),
        cmocka_unit_test(test_module_validators_name_the_setting),
        cmocka_unit_test(test_many_settings),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
