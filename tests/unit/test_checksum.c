/* test_checksum.c: Upload-Checksum parsing and verification against known digests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "server/upload/checksum.h"

/* Digests of "hello world" in base64, as tus clients send them (made with openssl dgst and
 * python's zlib.crc32). */
static const struct {
    const char *header;
    int ok;
} good[] = {
    {"sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", 1},
    {"sha256 uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=", 1},
    {"md5 XrY7u+Ae7tCTyyK7j1rNww==", 1},
    {"crc32 DUoRhQ==", 1},
    {"sha1 Kq5sNclPz7QV2+lfQIuc6R7pRu0=", 0}, /* one bit off */
    {"md5 XrY7u+Ae7tCTyyK7j1rNwQ==", 0},
    {"crc32 DUoRhA==", 0},
};

static void test_verify_known_digests(void **state)
{
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        me_checksum_t ck;
        print_message("%s\n", good[i].header);
        assert_int_equal(me_checksum_parse(good[i].header, strlen(good[i].header), &ck), 0);
        assert_int_equal(me_checksum_verify(&ck, "hello world", 11), good[i].ok ? 0 : ME_ECHECKSUM);
        assert_int_equal(me_checksum_verify(&ck, "hello worle", 11), ME_ECHECKSUM);
    }
}

static void test_parse_refuses_malformed(void **state)
{
    static const struct {
        const char *header;
        int err;
    } bad[] = {
        {"sha1", ME_EINVAL},
        {"sha1 ", ME_EINVAL},
        {"sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0", ME_EINVAL},       /* not a multiple of 4 */
        {"sha1 uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=", ME_EINVAL}, /* sha256 length */
        {"sha1 Kq5sNclPz7QV2+lfQIuc6R7o!u0=", ME_EINVAL},      /* not base64 */
        {"sha512 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", ME_EUNSUPPORTED},
        {"SHA1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", ME_EUNSUPPORTED},
        {" sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", ME_EUNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        me_checksum_t ck;
        print_message("%s\n", bad[i].header);
        assert_int_equal(me_checksum_parse(bad[i].header, strlen(bad[i].header), &ck), bad[i].err);
    }
}

static void test_empty_body(void **state)
{
    me_checksum_t ck;
    const char *h = "sha256 47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    assert_int_equal(me_checksum_parse(h, strlen(h), &ck), 0);
    assert_int_equal(me_checksum_verify(&ck, "", 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify_known_digests),
        cmocka_unit_test(test_parse_refuses_malformed),
        cmocka_unit_test(test_empty_body),
    };
    return cmocka_run_group_tests_name("checksum", tests, NULL, NULL);
}
