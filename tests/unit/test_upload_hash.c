/* test_upload_hash.c: unit tests of server/upload/upload_hash.c: the running SHA-256 of
 * uploads arriving in order, and every way it must give up rather than be wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/storage/s3/sigv4.h"
#include "server/upload/upload_hash.h"

static void test_in_order_gives_the_sha256(void **state)
{
    me_upload_hashes_t *h = me_upload_hashes_new();
    unsigned char data[1000];
    char want[65], got[65];

    for (int i = 0; i < 1000; i++)
        data[i] = (unsigned char)(i * 7);
    me_sigv4_sha256_hex(data, sizeof(data), want);
    me_upload_hashes_add(h, "AAAAAAAAAAAAAAAAAAAAAA", 0, data, 300);
    me_upload_hashes_add(h, "AAAAAAAAAAAAAAAAAAAAAA", 300, data + 300, 0); /* an empty PATCH */
    me_upload_hashes_add(h, "AAAAAAAAAAAAAAAAAAAAAA", 300, data + 300, 700);
    assert_int_equal(me_upload_hashes_take(h, "AAAAAAAAAAAAAAAAAAAAAA", 1000, got), 0);
    assert_string_equal(got, want);
    /* taken: gone */
    assert_int_equal(me_upload_hashes_take(h, "AAAAAAAAAAAAAAAAAAAAAA", 1000, got), -1);
    me_upload_hashes_free(h);
}

static void test_gaps_and_other_lengths_are_refused(void **state)
{
    me_upload_hashes_t *h = me_upload_hashes_new();
    char got[65];

    /* bytes 100.. came here, 0..100 elsewhere: nothing kept */
    me_upload_hashes_add(h, "BBBBBBBBBBBBBBBBBBBBBB", 100, "x", 1);
    assert_int_equal(me_upload_hashes_take(h, "BBBBBBBBBBBBBBBBBBBBBB", 101, got), -1);
    /* a PATCH that another instance took in between: forgotten, and stays so */
    me_upload_hashes_add(h, "CCCCCCCCCCCCCCCCCCCCCC", 0, "abc", 3);
    me_upload_hashes_add(h, "CCCCCCCCCCCCCCCCCCCCCC", 5, "fg", 2);
    me_upload_hashes_add(h, "CCCCCCCCCCCCCCCCCCCCCC", 7, "h", 1);
    assert_int_equal(me_upload_hashes_take(h, "CCCCCCCCCCCCCCCCCCCCCC", 8, got), -1);
    /* asked for another length than it holds */
    me_upload_hashes_add(h, "DDDDDDDDDDDDDDDDDDDDDD", 0, "abc", 3);
    assert_int_equal(me_upload_hashes_take(h, "DDDDDDDDDDDDDDDDDDDDDD", 4, got), -1);
    /* started again from 0 (an upload's first PATCH again): the new bytes only */
    me_upload_hashes_add(h, "EEEEEEEEEEEEEEEEEEEEEE", 0, "zzz", 3);
    me_upload_hashes_add(h, "EEEEEEEEEEEEEEEEEEEEEE", 0, "abc", 3);
    assert_int_equal(me_upload_hashes_take(h, "EEEEEEEEEEEEEEEEEEEEEE", 3, got), 0);
    assert_string_equal(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    me_upload_hashes_free(h);
}

/* Past ME_UPLOAD_HASHES_MAX uploads the least recently used is forgotten (its completion
 * reads the object back), never mixed up with another. */
static void test_eviction(void **state)
{
    me_upload_hashes_t *h = me_upload_hashes_new();
    char id[32], got[65];

    for (int i = 0; i <= ME_UPLOAD_HASHES_MAX; i++) {
        snprintf(id, sizeof(id), "id%020d", i);
        me_upload_hashes_add(h, id, 0, "abc", 3);
        if (i == 0)
            continue;
        snprintf(id, sizeof(id), "id%020d", 1);
        me_upload_hashes_add(h, id, 3, "", 0); /* upload 1 stays in use */
    }
    snprintf(id, sizeof(id), "id%020d", 0);
    assert_int_equal(me_upload_hashes_take(h, id, 3, got), -1); /* the oldest went */
    snprintf(id, sizeof(id), "id%020d", 1);
    assert_int_equal(me_upload_hashes_take(h, id, 3, got), 0);
    snprintf(id, sizeof(id), "id%020d", ME_UPLOAD_HASHES_MAX);
    assert_int_equal(me_upload_hashes_take(h, id, 3, got), 0);
    assert_string_equal(got, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    me_upload_hashes_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order_gives_the_sha256),
        cmocka_unit_test(test_gaps_and_other_lengths_are_refused),
        cmocka_unit_test(test_eviction),
    };
    return cmocka_run_group_tests_name("upload_hash", tests, NULL, NULL);
}
