/* test_b64.c: unit tests of server/core/b64.c (base64url without padding, strict decoding). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "server/core/b64.h"

/* RFC 4648 section 10, without the padding. */
static const struct {
    const char *plain;
    const char *encoded;
} rfc4648[] = {
    {"", ""},         {"f", "Zg"},         {"fo", "Zm8"},      {"foo", "Zm9v"},
    {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
};

/* Decodes a NUL-terminated string; returns the code, the bytes in dst and *n. */
static int decode(const char *s, unsigned char *dst, size_t *n)
{
    return me_b64url_decode(s, strlen(s), dst, n);
}

static void test_rfc4648_encode(void **state)
{
    char out[16];

    (void)state;
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        size_t n = strlen(rfc4648[i].plain);
        assert_int_equal(me_b64url_encoded_len(n), strlen(rfc4648[i].encoded));
        memset(out, 'x', sizeof out);
        assert_int_equal(me_b64url_encode((const unsigned char *)rfc4648[i].plain, n, out),
                         strlen(rfc4648[i].encoded));
        assert_string_equal(out, rfc4648[i].encoded);
    }
}

static void test_rfc4648_decode(void **state)
{
    unsigned char out[16];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof rfc4648 / sizeof rfc4648[0]; i++) {
        n = 99;
        assert_int_equal(decode(rfc4648[i].encoded, out, &n), ME_OK);
        assert_int_equal(n, strlen(rfc4648[i].plain));
        assert_memory_equal(out, rfc4648[i].plain, n);
    }
}

/* The bytes whose standard encoding has '+' and '/' come out as '-' and '_'. */
static void test_url_alphabet(void **state)
{
    static const unsigned char bytes[] = {0xfb, 0xff, 0xbf, 0xfb, 0xef};
    unsigned char back[8];
    char out[16];
    size_t n;

    (void)state;
    assert_int_equal(me_b64url_encode(bytes, sizeof bytes, out), 7);
    assert_string_equal(out, "-_-_--8");
    assert_int_equal(decode("-_-_--8", back, &n), ME_OK);
    assert_int_equal(n, sizeof bytes);
    assert_memory_equal(back, bytes, sizeof bytes);
}

static void test_refuses_padding(void **state)
{
    static const char *const bad[] = {"Zg==", "Zm8=", "Zm9v=", "Zm9v====", "=", "Zg=A"};
    unsigned char out[16];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(decode(bad[i], out, &n), ME_EINVAL);
}

static void test_refuses_standard_alphabet(void **state)
{
    unsigned char out[16];
    size_t n;

    (void)state;
    assert_int_equal(decode("-_-_", out, &n), ME_OK); /* control: the url spelling is fine */
    assert_int_equal(decode("+_-_", out, &n), ME_EINVAL);
    assert_int_equal(decode("-/-_", out, &n), ME_EINVAL);
    assert_int_equal(decode("+/+/", out, &n), ME_EINVAL);
}

static void test_refuses_other_characters(void **state)
{
    static const char *const bad[] = {"Zm9v Yg", "Zm9v\nYg", "Zm9v.Yg", "Zm9v\x80Yg", "Zm9v*Yg"};
    unsigned char out[16];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(decode(bad[i], out, &n), ME_EINVAL);
    assert_int_equal(me_b64url_decode("Zm\0v", 4, out, &n), ME_EINVAL); /* an inner NUL */
}

static void test_refuses_impossible_lengths(void **state)
{
    unsigned char out[16];
    size_t n;

    (void)state;
    assert_int_equal(decode("A", out, &n), ME_EINVAL); /* 6 zero bits: no byte, still refused */
    assert_int_equal(decode("AAAAA", out, &n), ME_EINVAL);
    assert_int_equal(decode("Z", out, &n), ME_EINVAL);
    assert_int_equal(decode("Zm9vY", out, &n), ME_EINVAL);
    assert_int_equal(decode("Zm9vYmFyZ", out, &n), ME_EINVAL);
}

/* "Zh" would also decode to "f" if the two spare bits were ignored: one encoding only. */
static void test_refuses_nonzero_spare_bits(void **state)
{
    unsigned char out[16];
    size_t n;

    (void)state;
    assert_int_equal(decode("Zh", out, &n), ME_EINVAL);
    assert_int_equal(decode("Zm9", out, &n), ME_EINVAL);
    assert_int_equal(decode("Zm9vYh", out, &n), ME_EINVAL);
}

/* Every length round-trips, and decode writes only the bytes it reports. */
static void test_roundtrip_every_length(void **state)
{
    unsigned char src[200], dst[200];
    char enc[300];

    (void)state;
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (unsigned char)(i * 151 + 7);
    for (size_t len = 0; len <= 150; len++) {
        size_t elen = me_b64url_encode(src, len, enc), n = 0;
        assert_int_equal(elen, me_b64url_encoded_len(len));
        assert_int_equal(strlen(enc), elen);
        assert_null(strpbrk(enc, "=+/"));
        memset(dst, 0xa5, sizeof dst);
        assert_int_equal(me_b64url_decode(enc, elen, dst, &n), ME_OK);
        assert_int_equal(n, len);
        assert_memory_equal(dst, src, len);
        assert_int_equal(dst[len], 0xa5);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_encode),
        cmocka_unit_test(test_rfc4648_decode),
        cmocka_unit_test(test_url_alphabet),
        cmocka_unit_test(test_refuses_padding),
        cmocka_unit_test(test_refuses_standard_alphabet),
        cmocka_unit_test(test_refuses_other_characters),
        cmocka_unit_test(test_refuses_impossible_lengths),
        cmocka_unit_test(test_refuses_nonzero_spare_bits),
        cmocka_unit_test(test_roundtrip_every_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
