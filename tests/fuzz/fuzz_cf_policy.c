/* fuzz_cf_policy.c: CloudFront's policy documents as a viewer presents them
 * (server/delivery/cf_policy.c): the policy JSON parser, CloudFront's base64, source-IP
 * ranges and resource wildcards. The first byte picks the function. A parsed policy written
 * back (me_cf_policy_json) must parse to the same grant. */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/delivery/cf_policy.h"

static void policy(const char *s, size_t len)
{
    me_cf_parsed_policy_t p, again;
    char json[ME_CF_POLICY_MAX + 1], ip[INET6_ADDRSTRLEN + 8] = "";
    if (me_cf_policy_parse(s, len, &p) != 0)
        return;
    if (strlen(p.resource) > ME_CF_RESOURCE_MAX || p.date_less_than <= 0)
        abort();
    if (p.has_ip && inet_ntop(p.ip.family, p.ip.addr, ip, sizeof(ip)) != NULL) {
        size_t n = strlen(ip);
        snprintf(ip + n, sizeof(ip) - n, "/%d", p.ip.prefix);
    }
    me_cf_policy_t w = {p.resource, p.date_less_than, p.date_greater_than, p.has_ip ? ip : NULL};
    size_t n = me_cf_policy_json(&w, 0, json, sizeof(json));
    if (n == 0)
        return; /* a resource we would never sign (a byte JSON escapes) */
    if (me_cf_policy_parse(json, n, &again) != 0 || strcmp(again.resource, p.resource) != 0 ||
        again.date_less_than != p.date_less_than || again.date_greater_than != p.date_greater_than ||
        again.has_ip != p.has_ip)
        abort(); /* our own policy JSON is not read back as written */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192)
        return 0;
    size_t len = size - 1;
    char *s = malloc(len > 0 ? len : 1);
    if (s == NULL)
        return 0;
    memcpy(s, data + 1, len);

    switch (data[0] % 4) {
    case 0:
        policy(s, len);
        break;
    case 1: {
        unsigned char *out = malloc(len * 3 / 4 + 3);
        size_t n = 0;
        if (out != NULL && me_cf_b64_decode(s, len, out, &n) == 0) {
            char *back = malloc(4 * ((n + 2) / 3) + 1);
            if (back != NULL)
                me_cf_b64_encode(out, n, back);
            free(back);
        }
        free(out);
        break;
    }
    case 2: {
        me_cf_cidr_t c;
        if (me_cf_cidr_parse(s, len, &c) == 0) {
            unsigned char any[16] = {0};
            if ((c.family == AF_INET && (c.prefix < 0 || c.prefix > 32)) ||
                (c.family == AF_INET6 && (c.prefix < 0 || c.prefix > 128)))
                abort();
            (void)me_cf_cidr_contains(&c, AF_INET, any);
            (void)me_cf_cidr_contains(&c, AF_INET6, any);
        }
        break;
    }
    default: {
        /* pattern NUL url */
        const char *nul = memchr(s, '\0', len);
        if (nul != NULL)
            (void)me_cf_resource_matches(s, nul + 1, len - (size_t)(nul - s) - 1);
        break;
    }
    }
    free(s);
    return 0;
}
