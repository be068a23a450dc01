/* sigv4.c: AWS Signature Version 4: canonical request, string to sign, signing key, signature. */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "server/storage/s3/sigv4.h"

#define ALGORITHM "AWS4-HMAC-SHA256"
#define PAIRS_MAX 64   /* query parameters or headers of one request */
#define VALUE_MAX 4096 /* an encoded or canonical name or value */
#define CANONICAL_MAX (32 * 1024)

/* ---- bounded strings ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int bad; /* overflowed */
} sb_t;

static void sb_add(sb_t *b, const char *s, size_t n)
{
    if (b->bad || b->len + n >= b->cap) {
        b->bad = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sb_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static int sb_done(sb_t *b)
{
    if (b->bad) {
        if (b->cap > 0)
            b->p[0] = '\0';
        return -1;
    }
    return (int)b->len;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void me_sigv4_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
        out[0] = '\0';
        return;
    }
    hex(md, 32, out);
}

static int hmac(const void *key, size_t keylen, const char *msg, size_t msglen, unsigned char out[32])
{
    unsigned int n = 0;
    return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, msglen, out, &n) != NULL && n == 32 ? 0
                                                                                                                : -1;
}

void me_sigv4_amz_date(time_t t, char out[ME_SIGV4_DATE_LEN + 1])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, ME_SIGV4_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---- encoding ---- */

int me_sigv4_encode(const char *in, int keep_slash, char *out, size_t len)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t o = 0;

    if (len == 0)
        return -1;
    for (const unsigned char *s = (const unsigned char *)in; *s != '\0'; s++) {
        int plain = isalnum(*s) || *s == '-' || *s == '_' || *s == '.' || *s == '~' || (keep_slash && *s == '/');
        if (*s >= 0x80)
            plain = 0; /* isalnum() may say yes in some locales */
        if (o + (plain ? 1 : 3) >= len) {
            out[0] = '\0';
            return -1;
        }
        if (plain) {
            out[o++] = (char)*s;
        } else {
            out[o++] = '%';
            out[o++] = digits[*s >> 4];
            out[o++] = digits[*s & 15];
        }
    }
    out[o] = '\0';
    return (int)o;
}

typedef struct {
    char *name, *value; /* encoded (query) or canonical (headers), malloc'd */
} kv_t;

static int kv_cmp(const void *a, const void *b)
{
    const kv_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : strcmp(x->value, y->value);
}

static void kv_free(kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
}

static char *encoded(const char *s)
{
    char buf[VALUE_MAX];
    return me_sigv4_encode(s != NULL ? s : "", 0, buf, sizeof(buf)) < 0 ? NULL : strdup(buf);
}

/* params encoded and sorted into kv[0..n); -1 on overflow or no memory (kv freed). */
static int sorted_query(const me_sigv4_pair_t *params, size_t n, kv_t *kv)
{
    if (n > PAIRS_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        kv[i].name = encoded(params[i].name);
        kv[i].value = encoded(params[i].value);
        if (params[i].name == NULL || kv[i].name == NULL || kv[i].value == NULL) {
            kv_free(kv, i + 1);
            return -1;
        }
    }
    qsort(kv, n, sizeof(*kv), kv_cmp);
    return 0;
}

static void query_string(sb_t *b, const kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            sb_str(b, "&");
        sb_str(b, kv[i].name);
        sb_str(b, "=");
        sb_str(b, kv[i].value);
    }
}

int me_sigv4_canonical_query(const me_sigv4_pair_t *params, size_t n, char *out, size_t len)
{
    kv_t kv[PAIRS_MAX];
    sb_t b = {out, 0, len, len == 0};

    if (len > 0)
        out[0] = '\0';
    if (sorted_query(params, n, kv) != 0)
        return -1;
    query_string(&b, kv, n);
    kv_free(kv, n);
    return sb_done(&b);
}

/* A header's value as signed: leading and trailing spaces gone, inner runs of spaces one. */
static char *canonical_value(const char *v)
{
    size_t n = strlen(v), o = 0;
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    while (*v == ' ' || *v == '\t')
        v++;
    for (; *v != '\0'; v++) {
        if (*v == ' ' || *v == '\t') {
            if (o > 0 && out[o - 1] != ' ')
                out[o++] = ' ';
        } else {
            out[o++] = *v;
        }
    }
    while (o > 0 && out[o - 1] == ' ')
        o--;
    out[o] = '\0';
    return out;
}

/* Headers lower-cased, canonical, sorted by name (stable for equal names: their values keep
 * their order), into kv; *n is how many distinct names remain after joining repeats. */
static int sorted_headers(const me_sigv4_pair_t *h, size_t n, kv_t *kv, size_t *out_n)
{
    if (n > PAIRS_MAX)
        return -1;
    for (size_t i = 0; i < n; i++) {
        kv[i].name = h[i].name != NULL ? strdup(h[i].name) : NULL;
        kv[i].value = h[i].value != NULL ? canonical_value(h[i].value) : NULL;
        if (kv[i].name == NULL || kv[i].value == NULL) {
            kv_free(kv, i + 1);
            return -1;
        }
        for (char *c = kv[i].name; *c != '\0'; c++)
            *c = (char)tolower((unsigned char)*c);
    }
    /* insertion sort by name only: stable, and few headers */
    for (size_t i = 1; i < n; i++) {
        kv_t x = kv[i];
        size_t j = i;
        for (; j > 0 && strcmp(kv[j - 1].name, x.name) > 0; j--)
            kv[j] = kv[j - 1];
        kv[j] = x;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && strcmp(kv[m - 1].name, kv[i].name) == 0) {
            size_t a = strlen(kv[m - 1].value), b = strlen(kv[i].value);
            char *joined = realloc(kv[m - 1].value, a + b + 2);
            if (joined == NULL) {
                kv_free(kv, n);
                return -1;
            }
            joined[a] = ',';
            memcpy(joined + a + 1, kv[i].value, b + 1);
            kv[m - 1].value = joined;
            free(kv[i].name);
            free(kv[i].value);
            continue;
        }
        kv[m++] = kv[i];
    }
    *out_n = m;
    return 0;
}

/* The canonical request of r with extra query parameters (presigning), into b. */
static int canonical(const me_sigv4_request_t *r, const me_sigv4_pair_t *extra, size_t nextra, sb_t *b,
                     sb_t *signed_headers)
{
    me_sigv4_pair_t all[PAIRS_MAX];
    kv_t q[PAIRS_MAX], h[PAIRS_MAX];
    size_t nq = r->nquery + nextra, nh = 0;
    char path[VALUE_MAX];

    if (r->method == NULL || r->path == NULL || r->path[0] != '/' || r->payload_hash == NULL || nq > PAIRS_MAX ||
        me_sigv4_encode(r->path, 1, path, sizeof(path)) < 0)
        return -1;
    for (size_t i = 0; i < r->nquery; i++)
        all[i] = r->query[i];
    for (size_t i = 0; i < nextra; i++)
        all[r->nquery + i] = extra[i];
    if (sorted_query(all, nq, q) != 0)
        return -1;
    if (sorted_headers(r->headers, r->nheaders, h, &nh) != 0) {
        kv_free(q, nq);
        return -1;
    }
    sb_str(b, r->method);
    sb_str(b, "\n");
    sb_str(b, path);
    sb_str(b, "\n");
    query_string(b, q, nq);
    sb_str(b, "\n");
    for (size_t i = 0; i < nh; i++) {
        sb_str(b, h[i].name);
        sb_str(b, ":");
        sb_str(b, h[i].value);
        sb_str(b, "\n");
        if (i > 0)
            sb_str(signed_headers, ";");
        sb_str(signed_headers, h[i].name);
    }
    sb_str(b, "\n");
    sb_add(b, signed_headers->p, signed_headers->len);
    sb_str(b, "\n");
    sb_str(b, r->payload_hash);
    kv_free(q, nq);
    kv_free(h, nh);
    return b->bad || signed_headers->bad ? -1 : 0;
}

int me_sigv4_canonical_request(const me_sigv4_request_t *r, char *out, size_t len, char *signed_headers, size_t shlen)
{
    char sh[VALUE_MAX];
    sb_t b = {out, 0, len, len == 0}, s = {sh, 0, sizeof(sh), 0};

    if (len > 0)
        out[0] = '\0';
    sh[0] = '\0';
    if (canonical(r, NULL, 0, &b, &s) != 0)
        b.bad = 1;
    if (signed_headers != NULL && (size_t)snprintf(signed_headers, shlen, "%s", sh) >= shlen)
        b.bad = 1;
    return sb_done(&b);
}

/* The hex signature of a canonical request, and the credential scope "<date>/<region>/<service>/aws4_request". */
static int signature(const me_sigv4_request_t *r, const me_sigv4_creds_t *c, const char *creq, char sig[65],
                     char *scope, size_t scopelen)
{
    char day[9], sts[512], key0[VALUE_MAX], creq_hash[65];
    unsigned char k[32], k2[32];

    if (r->amz_date == NULL || strlen(r->amz_date) != ME_SIGV4_DATE_LEN || r->region == NULL || r->service == NULL ||
        c->secret_key == NULL)
        return -1;
    memcpy(day, r->amz_date, 8);
    day[8] = '\0';
    if ((size_t)snprintf(scope, scopelen, "%s/%s/%s/aws4_request", day, r->region, r->service) >= scopelen)
        return -1;
    me_sigv4_sha256_hex(creq, strlen(creq), creq_hash);
    int stslen = snprintf(sts, sizeof(sts), ALGORITHM "\n%s\n%s\n%s", r->amz_date, scope, creq_hash);
    int keylen = snprintf(key0, sizeof(key0), "AWS4%s", c->secret_key);
    if (stslen < 0 || (size_t)stslen >= sizeof(sts) || keylen < 0 || (size_t)keylen >= sizeof(key0))
        return -1;
    int ret = hmac(key0, (size_t)keylen, day, 8, k) || hmac(k, 32, r->region, strlen(r->region), k2) ||
              hmac(k2, 32, r->service, strlen(r->service), k) || hmac(k, 32, "aws4_request", 12, k2) ||
              hmac(k2, 32, sts, (size_t)stslen, k);
    OPENSSL_cleanse(key0, sizeof(key0));
    OPENSSL_cleanse(k2, sizeof(k2));
    if (ret != 0)
        return -1;
    hex(k, 32, sig);
    return 0;
}

int me_sigv4_authorization(const me_sigv4_request_t *r, const me_sigv4_creds_t *c, char *out, size_t len)
{
    char *creq = malloc(CANONICAL_MAX), sh[VALUE_MAX], sig[65], scope[256];
    sb_t b = {creq, 0, CANONICAL_MAX, creq == NULL}, s = {sh, 0, sizeof(sh), 0};
    int n = -1;

    if (len > 0)
        out[0] = '\0';
    if (creq == NULL || c->access_key == NULL || canonical(r, NULL, 0, &b, &s) != 0 ||
        signature(r, c, creq, sig, scope, sizeof(scope)) != 0)
        goto out;
    n = snprintf(out, len, ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s", c->access_key, scope, sh,
                 sig);
    if (n < 0 || (size_t)n >= len) {
        if (len > 0)
            out[0] = '\0';
        n = -1;
    }
out:
    free(creq);
    return n;
}

int me_sigv4_presign(const me_sigv4_request_t *r, const me_sigv4_creds_t *c, unsigned expires, char *out, size_t len)
{
    char *creq = malloc(CANONICAL_MAX), sh[VALUE_MAX], sig[65], scope[256], credential[512], exp[16];
    sb_t b = {creq, 0, CANONICAL_MAX, creq == NULL}, s = {sh, 0, sizeof(sh), 0};
    me_sigv4_pair_t extra[7];
    kv_t kv[PAIRS_MAX];
    size_t nh = 0, nextra = 0;
    int n = -1;

    if (len > 0)
        out[0] = '\0';
    if (creq == NULL || c->access_key == NULL || expires < 1 || expires > 604800 || r->amz_date == NULL ||
        strlen(r->amz_date) != ME_SIGV4_DATE_LEN || r->nheaders > PAIRS_MAX)
        goto out;
    /* the signed header list goes into the query before signing: work it out first */
    if (sorted_headers(r->headers, r->nheaders, kv, &nh) != 0)
        goto out;
    for (size_t i = 0; i < nh; i++) {
        if (i > 0)
            sb_str(&s, ";");
        sb_str(&s, kv[i].name);
    }
    kv_free(kv, nh);
    if (s.bad || (size_t)snprintf(credential, sizeof(credential), "%s/%.8s/%s/%s/aws4_request", c->access_key,
                                  r->amz_date, r->region, r->service) >= sizeof(credential))
        goto out;
    snprintf(exp, sizeof(exp), "%u", expires);
    extra[nextra++] = (me_sigv4_pair_t){"X-Amz-Algorithm", ALGORITHM};
    extra[nextra++] = (me_sigv4_pair_t){"X-Amz-Credential", credential};
    extra[nextra++] = (me_sigv4_pair_t){"X-Amz-Date", r->amz_date};
    extra[nextra++] = (me_sigv4_pair_t){"X-Amz-Expires", exp};
    extra[nextra++] = (me_sigv4_pair_t){"X-Amz-SignedHeaders", sh};
    if (c->session_token != NULL && c->session_token[0] != '\0')
        extra[nextra++] = (me_sigv4_pair_t){"X-Amz-Security-Token", c->session_token};
    char sh2[VALUE_MAX]; /* canonical() makes the same list again */
    sb_t s2 = {sh2, 0, sizeof(sh2), 0};
    if (canonical(r, extra, nextra, &b, &s2) != 0 || signature(r, c, creq, sig, scope, sizeof(scope)) != 0)
        goto out;
    me_sigv4_pair_t all[PAIRS_MAX];
    if (r->nquery + nextra > PAIRS_MAX)
        goto out;
    for (size_t i = 0; i < r->nquery; i++)
        all[i] = r->query[i];
    for (size_t i = 0; i < nextra; i++)
        all[r->nquery + i] = extra[i];
    /* the signature comes last, as AWS and botocore write it */
    n = me_sigv4_canonical_query(all, r->nquery + nextra, out, len);
    if (n >= 0) {
        int m = snprintf(out + n, len - (size_t)n, "&X-Amz-Signature=%s", sig);
        n = m < 0 || (size_t)m >= len - (size_t)n ? (out[0] = '\0', -1) : n + m;
    }
out:
    free(creq);
    return n;
}
