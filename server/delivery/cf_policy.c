/* cf_policy.c: CloudFront policy JSON written and parsed, resource wildcards, IP ranges and
 * CloudFront's base64. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "server/delivery/cf_policy.h"

/* Bytes that JSON writers would escape, or that no URL we sign carries: refused, so that the
 * policy is the same bytes whichever signer wrote it. */
static int resource_ok(const char *r)
{
    size_t n = 0;
    for (; r[n] != '\0'; n++) {
        unsigned char c = (unsigned char)r[n];
        if (c < 0x21 || c > 0x7e || c == '"' || c == '\\')
            return 0;
    }
    return n > 0 && n <= ME_CF_RESOURCE_MAX;
}

int me_cf_policy_needs_custom(const me_cf_policy_t *p)
{
    return p->date_greater_than != 0 || (p->ip_address != NULL && *p->ip_address != '\0') ||
           (p->resource != NULL && strchr(p->resource, '*') != NULL);
}

size_t me_cf_policy_json(const me_cf_policy_t *p, int canned, char *out, size_t outlen)
{
    me_cf_cidr_t cidr = {0};
    const char *ip = p->ip_address != NULL && *p->ip_address != '\0' ? p->ip_address : NULL;
    if (!resource_ok(p->resource) || p->date_less_than <= 0 || p->date_greater_than < 0 ||
        (ip != NULL && (strlen(ip) >= ME_CF_CIDR_MAX - 4 || me_cf_cidr_parse(ip, strlen(ip), &cidr) != 0)))
        return 0;
    int n = snprintf(out, outlen, "{\"Statement\":[{\"Resource\":\"%s\",\"Condition\":{\"DateLessThan\":{\"AWS:EpochTime\":%" PRId64 "}",
                     p->resource, p->date_less_than);
    if (!canned && p->date_greater_than != 0 && n > 0 && (size_t)n < outlen)
        n += snprintf(out + n, outlen - (size_t)n, ",\"DateGreaterThan\":{\"AWS:EpochTime\":%" PRId64 "}",
                      p->date_greater_than);
    /* both reference signers turn a bare address into a one-address range */
    if (!canned && ip != NULL && n > 0 && (size_t)n < outlen)
        n += snprintf(out + n, outlen - (size_t)n, ",\"IpAddress\":{\"AWS:SourceIp\":\"%s%s\"}", ip,
                      strchr(ip, '/') != NULL ? "" : cidr.family == AF_INET ? "/32" : "/128");
    if (n > 0 && (size_t)n < outlen)
        n += snprintf(out + n, outlen - (size_t)n, "}}]}");
    return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
}

/* The integer at obj's "AWS:EpochTime", which must be its only member; -1 when not so. */
static int64_t epoch_of(const json_t *obj)
{
    const json_t *t = json_object_get(obj, "AWS:EpochTime");
    if (!json_is_object(obj) || json_object_size(obj) != 1 || !json_is_integer(t) || json_integer_value(t) <= 0)
        return -1;
    return (int64_t)json_integer_value(t);
}

int me_cf_policy_parse(const char *text, size_t len, me_cf_parsed_policy_t *out)
{
    json_error_t jerr;
    int ret = ME_EINVAL;
    if (len == 0 || len > ME_CF_POLICY_MAX)
        return ME_EINVAL;
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *stmts = json_object_get(doc, "Statement");
    const json_t *stmt = json_array_get(stmts, 0);
    const json_t *res = json_object_get(stmt, "Resource"), *cond = json_object_get(stmt, "Condition");
    const json_t *dlt = json_object_get(cond, "DateLessThan"), *dgt = json_object_get(cond, "DateGreaterThan");
    const json_t *ip = json_object_get(cond, "IpAddress");
    size_t known = (dlt != NULL) + (dgt != NULL) + (ip != NULL);

    memset(out, 0, sizeof(*out));
    if (!json_is_object(doc) || json_object_size(doc) != 1 || !json_is_array(stmts) || json_array_size(stmts) != 1 ||
        !json_is_object(stmt) || json_object_size(stmt) != 2 || !json_is_string(res) || !json_is_object(cond) ||
        json_object_size(cond) != known || dlt == NULL)
        goto exit;
    const char *r = json_string_value(res);
    if (json_string_length(res) > ME_CF_RESOURCE_MAX || strlen(r) != json_string_length(res))
        goto exit;
    memcpy(out->resource, r, json_string_length(res) + 1);
    if ((out->date_less_than = epoch_of(dlt)) < 0 || (dgt != NULL && (out->date_greater_than = epoch_of(dgt)) < 0))
        goto exit;
    if (ip != NULL) {
        const json_t *src = json_object_get(ip, "AWS:SourceIp");
        if (!json_is_object(ip) || json_object_size(ip) != 1 || !json_is_string(src) ||
            me_cf_cidr_parse(json_string_value(src), json_string_length(src), &out->ip) != 0)
            goto exit;
        out->has_ip = 1;
    }
    ret = 0;
exit:
    json_decref(doc);
    return ret;
}

int me_cf_resource_matches(const char *pattern, const char *url, size_t len)
{
    /* greedy with one backtrack point, the last '*': never worse than len x strlen(pattern) */
    const char *p = pattern, *star = NULL;
    size_t i = 0, star_i = 0;
    while (i < len) {
        if (*p == '*') {
            star = p++;
            star_i = i;
        } else if (*p != '\0' && (*p == '?' || *p == url[i])) {
            p++;
            i++;
        } else if (star != NULL) {
            p = star + 1;
            i = ++star_i;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

int me_cf_cidr_parse(const char *s, size_t len, me_cf_cidr_t *out)
{
    char buf[ME_CF_CIDR_MAX];
    if (len == 0 || len >= sizeof(buf))
        return ME_EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *slash = strchr(buf, '/');
    int prefix = -1;
    if (slash != NULL) {
        *slash = '\0';
        const char *d = slash + 1;
        size_t nd = strlen(d);
        if (nd == 0 || nd > 3 || strspn(d, "0123456789") != nd || (nd > 1 && d[0] == '0'))
            return ME_EINVAL;
        prefix = (int)strtol(d, NULL, 10);
    }
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, buf, out->addr) == 1)
        out->family = AF_INET;
    else if (inet_pton(AF_INET6, buf, out->addr) == 1)
        out->family = AF_INET6;
    else
        return ME_EINVAL;
    int bits = out->family == AF_INET ? 32 : 128;
    if (prefix > bits)
        return ME_EINVAL;
    out->prefix = prefix < 0 ? bits : prefix;
    return 0;
}

/* 1 when the first prefix bits of a and b agree. */
static int same_prefix(const unsigned char *a, const unsigned char *b, int prefix)
{
    int whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, (size_t)whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int me_cf_cidr_contains(const me_cf_cidr_t *c, int family, const unsigned char *addr)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (family == AF_INET6 && c->family == AF_INET && memcmp(addr, mapped, sizeof(mapped)) == 0)
        return same_prefix(c->addr, addr + 12, c->prefix);
    if (family != c->family)
        return 0;
    return same_prefix(c->addr, addr, c->prefix);
}

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-~";

size_t me_cf_b64_encode(const unsigned char *src, size_t len, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)src[i] << 16;
        size_t left = len - i;
        if (left > 1)
            v |= (uint32_t)src[i + 1] << 8;
        if (left > 2)
            v |= src[i + 2];
        dst[o++] = alphabet[(v >> 18) & 63];
        dst[o++] = alphabet[(v >> 12) & 63];
        dst[o++] = left > 1 ? alphabet[(v >> 6) & 63] : '_';
        dst[o++] = left > 2 ? alphabet[v & 63] : '_';
    }
    dst[o] = '\0';
    return o;
}

static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '~' ? 63 : -1;
}

int me_cf_b64_decode(const char *src, size_t len, unsigned char *dst, size_t *outlen)
{
    size_t pads = 0, o = 0;
    while (pads < 2 && pads < len && src[len - 1 - pads] == '_')
        pads++;
    len -= pads;
    if (len % 4 == 1 || (pads > 0 && (len + pads) % 4 != 0))
        return ME_EINVAL;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int s = sextet(src[i]);
        if (s < 0)
            return ME_EINVAL;
        acc = (acc << 6) | (uint32_t)s;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            dst[o++] = (unsigned char)(acc >> bits);
        }
    }
    *outlen = o;
    return 0;
}
