/* s3_fixture.c: a test helper: Swift's S3 API as a child process, and buckets on it. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "tests/unit/s3_fixture.h"
#include "server/storage/storage_config.h"
#include "server/storage/s3/s3_client.h"
#include "server/storage/s3/s3_config.h"

int s3_fixture_spawn(const char *script, pid_t *pid, int *to_child, char *line, size_t len)
{
    const char *srcdir = getenv("ME_SRCDIR") != NULL ? getenv("ME_SRCDIR") : ".";
    char path[1024];
    int in[2], out[2];

    snprintf(path, sizeof(path), "%s/%s", srcdir, script);
    if (pipe(in) != 0)
        return -1;
    if (pipe(out) != 0) {
        close(in[0]), close(in[1]);
        return -1;
    }
    if ((*pid = fork()) == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execl("/usr/bin/python3", "python3", path, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *to_child = in[1];
    FILE *r = fdopen(out[0], "r");
    int ok = *pid > 0 && r != NULL && fgets(line, (int)len, r) != NULL;
    if (r != NULL)
        fclose(r);
    else
        close(out[0]);
    if (!ok) {
        close(*to_child);
        *to_child = 0;
        if (*pid > 0)
            waitpid(*pid, NULL, 0);
        *pid = 0;
        return -1;
    }
    return 0;
}

int s3_fixture_start(s3_fixture_t *f)
{
    char line[512];

    memset(f, 0, sizeof(*f));
    if (s3_fixture_spawn("tests/swift/swift_aio.py", &f->pid, &f->to_child, line, sizeof(line)) != 0)
        return -1;
    if (strncmp(line, "unavailable", 11) == 0) {
        s3_fixture_stop(f);
        return 1;
    }
    if (sscanf(line, "ready %127s %63s %63s", f->endpoint, f->access_key, f->secret_key) != 3) {
        s3_fixture_stop(f);
        return -1;
    }
    setenv("AWS_ACCESS_KEY_ID", f->access_key, 1);
    setenv("AWS_SECRET_ACCESS_KEY", f->secret_key, 1);
    unsetenv("AWS_SESSION_TOKEN");
    return 0;
}

void s3_fixture_stop(s3_fixture_t *f)
{
    if (f->to_child > 0)
        close(f->to_child);
    f->to_child = 0;
    if (f->pid > 0)
        waitpid(f->pid, NULL, 0);
    f->pid = 0;
}

int s3_fixture_make_bucket(s3_fixture_t *f, const char *bucket)
{
    me_s3_settings_t s = {.endpoint = f->endpoint,
                          .region = "us-east-1",
                          .bucket = (char *)bucket,
                          .addressing = ME_S3_ADDRESSING_PATH,
                          .sign_payload = 1,
                          .connect_timeout = 5000,
                          .timeout = 30000,
                          .max_attempts = 3,
                          .retry_base = 100,
                          .retry_max = 1000};
    char err[256];
    me_s3_client_t *c = me_s3_client_new(&s, err, sizeof(err));
    me_s3_response_t r;
    int ret = -1;

    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    me_s3_request_t q = {.op = "create_bucket", .method = "PUT", .idempotent = 1, .max_body = 65536};
    if (me_s3_request(c, &q, &r) == 0) {
        ret = r.status == 200 || r.status == 409 ? 0 : -1;
        if (ret != 0)
            fprintf(stderr, "create bucket %s: %ld %s\n", bucket, r.status, r.body != NULL ? r.body : "");
        me_s3_response_free(&r);
    }
    me_s3_client_free(c);
    return ret;
}

int s3_fixture_config(s3_fixture_t *f, me_config_t *cfg, const char *bucket)
{
    snprintf(f->bucket, sizeof(f->bucket), "%s", bucket);
    if (s3_fixture_make_bucket(f, f->bucket) != 0 || me_config_defaults(cfg) != 0)
        return -1;
    ((me_storage_settings_t *)me_config_section_mut(cfg, &me_storage_config_section))->backend = "s3";
    me_s3_settings_t *s = me_config_section_mut(cfg, &me_s3_config_section);
    s->endpoint = f->endpoint;
    s->bucket = f->bucket;
    s->addressing = ME_S3_ADDRESSING_PATH;
    return 0;
}
