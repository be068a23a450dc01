/* s3_fixture.h: a test helper: a real S3 API for unit tests, OpenStack Swift with s3api on
 * loopback (tests/swift/swift_aio.py, started as a child and stopped when the test ends), its
 * credentials in the environment, and configurations whose storage is a bucket of it. With
 * ME_S3_ENDPOINT set (a Swift already running), that one is used. */
#ifndef S3_FIXTURE_H
#define S3_FIXTURE_H

#include <sys/types.h>
#include "server/core/config.h"

typedef struct {
    pid_t pid;
    int to_child; /* its stdin: closing it stops Swift */
    char endpoint[128], access_key[64], secret_key[64];
    char bucket[64]; /* the last one s3_fixture_config() named: strings of cfg point here */
} s3_fixture_t;

/* Starts Swift (about 2 s) and sets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. 0; 1 when
 * Swift is not installed (the caller skips, saying so); -1 when it would not start. */
int s3_fixture_start(s3_fixture_t *f);
void s3_fixture_stop(s3_fixture_t *f);

/* Runs `/usr/bin/python3 $ME_SRCDIR/<script>` with pipes on its stdin (*to_child: closing it
 * ends the script) and stdout, and reads its first line into line. 0, or -1 (nothing left
 * running). The caller closes *to_child and waits for *pid. */
int s3_fixture_spawn(const char *script, pid_t *pid, int *to_child, char *line, size_t len);

/* Creates bucket (3-63 of a-z 0-9 -); 0 or -1. */
int s3_fixture_make_bucket(s3_fixture_t *f, const char *bucket);

/* Fills cfg with the defaults, storage.backend s3 on a new bucket (made here) and Swift's
 * endpoint, path-style. 0 or -1; me_config_free(cfg) after. */
int s3_fixture_config(s3_fixture_t *f, me_config_t *cfg, const char *bucket);

#endif
