/* cf_policy.h: CloudFront's policy documents, without keys: the canned and custom policy JSON
 * written byte for byte as CloudFront's own signers write it (the signature covers those
 * bytes), the parsing of a policy that a viewer presents, CloudFront's URL-safe base64,
 * resource wildcards and source-IP ranges. Pure functions of their arguments, thread-safe. */
#ifndef ME_CF_POLICY_H
#define ME_CF_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "server/core/error.h"

#define ME_CF_RESOURCE_MAX 2048 /* the longest URL or resource signed or accepted */
#define ME_CF_POLICY_MAX 2560   /* the longest policy JSON: a resource and every condition */
#define ME_CF_POLICY_B64_MAX 3416 /* ME_CF_POLICY_MAX in base64 */
#define ME_CF_CIDR_MAX 50        /* "xxxx:...:xxxx/128" and a NUL, with room */

/* What a signature grants: resource until date_less_than, optionally from
 * date_greater_than, optionally from an IP range. */
typedef struct {
    const char *resource;      /* a URL; in a custom policy '*' and '?' are wildcards */
    int64_t date_less_than;    /* seconds since the epoch: valid before it (required, > 0) */
    int64_t date_greater_than; /* valid after it; 0: no such condition */
    const char *ip_address;    /* "a.b.c.d[/n]" or an IPv6 address "[/n]"; NULL or "": none */
} me_cf_policy_t;

/* A source-IP range. */
typedef struct {
    int family;                /* AF_INET or AF_INET6 */
    unsigned char addr[16];    /* network order; 4 bytes used for AF_INET */
    int prefix;                /* 0..32 or 0..128 */
} me_cf_cidr_t;

/* A policy as a viewer presented it, parsed: resource copied in. */
typedef struct {
    char resource[ME_CF_RESOURCE_MAX + 1];
    int64_t date_less_than;
    int64_t date_greater_than; /* 0 when absent */
    int has_ip;
    me_cf_cidr_t ip;
} me_cf_parsed_policy_t;

/* 1 when p needs a custom policy: a '*' in the resource, a DateGreaterThan or an IpAddress.
 * A canned policy says only "this URL, until then". ('?' is a wildcard in a custom policy
 * too, but also the start of any query: a resource with one alone is taken literally.) */
int me_cf_policy_needs_custom(const me_cf_policy_t *p);

/* Writes p's policy JSON into out (outlen bytes, NUL-terminated) and returns its length, or
 * 0 when it cannot be written: a resource longer than ME_CF_RESOURCE_MAX, with a byte JSON
 * would escape ('"', '\\', controls, non-ASCII: no URL we sign has one), no date_less_than,
 * an invalid ip_address, or out too small. canned: {"Statement":[{"Resource":..,
 * "Condition":{"DateLessThan":{"AWS:EpochTime":..}}}]}; custom adds DateGreaterThan, then
 * IpAddress (a bare address gets /32 or /128), the order of CloudFront's documentation and
 * of @aws-sdk/cloudfront-signer. canned must only be asked when !me_cf_policy_needs_custom(). */
size_t me_cf_policy_json(const me_cf_policy_t *p, int canned, char *out, size_t outlen);

/* Parses a custom policy of len bytes (at most ME_CF_POLICY_MAX) as CloudFront would accept
 * it: one statement, a Resource string, a Condition with DateLessThan and optionally
 * DateGreaterThan and IpAddress, nothing else. 0 with *out filled, or ME_EINVAL. */
int me_cf_policy_parse(const char *json, size_t len, me_cf_parsed_policy_t *out) ME_MUST_CHECK;

/* 1 when url (len bytes) matches pattern: '*' any run of bytes (also none), '?' one byte,
 * anything else itself. Worst case len x strlen(pattern) steps, no recursion. */
int me_cf_resource_matches(const char *pattern, const char *url, size_t len);

/* Parses "a.b.c.d", "a.b.c.d/n", an IPv6 address, or one with "/n" (len bytes). 0 with *out
 * filled (bits past the prefix ignored), or ME_EINVAL. */
int me_cf_cidr_parse(const char *s, size_t len, me_cf_cidr_t *out) ME_MUST_CHECK;

/* 1 when the address family/addr (4 or 16 bytes, network order) lies in c. An IPv4-mapped
 * IPv6 address (::ffff:a.b.c.d) counts as its IPv4 address. */
int me_cf_cidr_contains(const me_cf_cidr_t *c, int family, const unsigned char *addr);

/* CloudFront's base64: standard base64 with '+' as '-', '=' as '_' and '/' as '~'. Encodes
 * len bytes into dst (4 * ((len + 2) / 3) + 1 bytes), NUL-terminated; returns the length. */
size_t me_cf_b64_encode(const unsigned char *src, size_t len, char *dst);

/* Decodes len characters of CloudFront's base64 (padding '_' optional) into dst (len * 3 / 4
 * + 3 bytes). 0 with *outlen set, or ME_EINVAL (another character, a misplaced pad). */
int me_cf_b64_decode(const char *src, size_t len, unsigned char *dst, size_t *outlen) ME_MUST_CHECK;

#endif
