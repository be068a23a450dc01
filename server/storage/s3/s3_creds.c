/* s3_creds.c: AWS credentials from the environment, the shared file, STS (IRSA) or the
 * container credentials endpoint (EKS Pod Identity), renewed before they expire. */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include "server/core/log.h"
#include "server/storage/s3/s3_creds.h"
#include "server/storage/s3/s3_xml.h"
#include "server/storage/s3/sigv4.h"

#define ANSWER_MAX (64 * 1024) /* an exchange's answer */
#define TOKEN_FILE_MAX (16 * 1024)
#define RETRY_EVERY 10 /* seconds between failed renewals while the old credentials hold */
#define ECS_HOST "http://169.254.170.2"

typedef enum { SRC_ENV, SRC_IRSA, SRC_CONTAINER, SRC_FILE } source_t;

struct me_s3_creds {
    source_t source;
    pthread_mutex_t lock;
    me_s3_credentials_t cur;
    int64_t last_try;
    /* what exchanges need (copied at start) */
    char *role_arn, *session_name, *token_file, *sts_url; /* IRSA */
    char *uri, *auth_file, *auth_token;                   /* container */
    long connect_ms, timeout_ms;
    char *ca_file;
};

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

static int copy_field(char *dst, size_t cap, const char *src)
{
    if (src == NULL || strlen(src) >= cap)
        return -1;
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

/* ---- a small HTTP exchange ---- */

typedef struct {
    char *buf;
    size_t len;
    int over;
} answer_t;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    answer_t *a = arg;
    size_t len = size * n;
    if (a->len + len > ANSWER_MAX) {
        a->over = 1;
        return 0;
    }
    char *more = realloc(a->buf, a->len + len + 1);
    if (more == NULL)
        return 0;
    a->buf = more;
    memcpy(a->buf + a->len, p, len);
    a->len += len;
    a->buf[a->len] = '\0';
    return len;
}

/* GET (body NULL) or POST url; the answer (NUL-terminated, malloc'd) and its status. */
static int exchange(const me_s3_creds_t *c, const char *url, const char *authorization, const char *body, answer_t *a,
                    long *status)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL, *more;
    char line[TOKEN_FILE_MAX + 32];
    int ret = ME_EIO;

    *a = (answer_t){0};
    *status = 0;
    if (h == NULL)
        return ME_ENOMEM;
    if (authorization != NULL) {
        snprintf(line, sizeof(line), "Authorization: %s", authorization);
        if ((more = curl_slist_append(hdrs, line)) == NULL)
            goto out;
        hdrs = more;
    }
    if ((more = curl_slist_append(hdrs, "Accept: application/json, text/xml")) == NULL)
        goto out;
    hdrs = more;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->ca_file != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    if (body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (rc != CURLE_OK) {
        me_log_warn(NULL, "s3: credentials exchange with %s failed: %s", url, curl_easy_strerror(rc));
        goto out;
    }
    ret = 0;
out:
    OPENSSL_cleanse(line, sizeof(line));
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    if (ret != 0) {
        free(a->buf);
        *a = (answer_t){0};
    }
    return ret;
}

/* A token file's text, trimmed: malloc'd, or NULL. */
static char *read_token(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = malloc(TOKEN_FILE_MAX + 1);
    size_t n = 0;

    if (f == NULL || buf == NULL) {
        if (f != NULL)
            fclose(f);
        free(buf);
        return NULL;
    }
    n = fread(buf, 1, TOKEN_FILE_MAX + 1, f);
    fclose(f);
    if (n == 0 || n > TOKEN_FILE_MAX) {
        OPENSSL_cleanse(buf, TOKEN_FILE_MAX + 1);
        free(buf);
        return NULL;
    }
    while (n > 0 && isspace((unsigned char)buf[n - 1]))
        n--;
    buf[n] = '\0';
    return buf;
}

static void free_answer(answer_t *a)
{
    if (a->buf != NULL)
        OPENSSL_cleanse(a->buf, a->len);
    free(a->buf);
}

/* ---- the sources ---- */

static int fetch_irsa(me_s3_creds_t *c, me_s3_credentials_t *out)
{
    char *token = read_token(c->token_file), *body = NULL, *enc = NULL;
    char arn[2048], session[256], expiration[64];
    answer_t a = {0};
    long status = 0;
    int ret = ME_EIO;

    if (token == NULL) {
        me_log_error(NULL, "s3: cannot read AWS_WEB_IDENTITY_TOKEN_FILE %s", c->token_file);
        return ME_EIO;
    }
    size_t cap = 3 * strlen(token) + 1;
    if ((enc = malloc(cap)) == NULL || me_sigv4_encode(token, 0, enc, cap) < 0 ||
        me_sigv4_encode(c->role_arn, 0, arn, sizeof(arn)) < 0 ||
        me_sigv4_encode(c->session_name, 0, session, sizeof(session)) < 0)
        goto out;
    size_t blen = strlen(enc) + strlen(arn) + strlen(session) + 160;
    if ((body = malloc(blen)) == NULL)
        goto out;
    snprintf(body, blen,
             "Action=AssumeRoleWithWebIdentity&RoleArn=%s&RoleSessionName=%s&Version=2011-06-15&"
             "WebIdentityToken=%s",
             arn, session, enc);
    if (exchange(c, c->sts_url, NULL, body, &a, &status) != 0)
        goto out;
    if (status != 200) {
        char code[128] = "";
        (void)!me_s3_xml_text(a.buf, a.len, "ErrorResponse/Error/Code", code, sizeof(code));
        me_log_error(NULL, "s3: STS AssumeRoleWithWebIdentity for %s answered %ld %s", c->role_arn, status, code);
        goto out;
    }
#define CREDS "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials/"
    if (me_s3_xml_text(a.buf, a.len, CREDS "AccessKeyId", out->access_key, sizeof(out->access_key)) != 0 ||
        me_s3_xml_text(a.buf, a.len, CREDS "SecretAccessKey", out->secret_key, sizeof(out->secret_key)) != 0 ||
        me_s3_xml_text(a.buf, a.len, CREDS "SessionToken", out->token, sizeof(out->token)) != 0 ||
        me_s3_xml_text(a.buf, a.len, CREDS "Expiration", expiration, sizeof(expiration)) != 0 ||
        (out->expires = me_s3_xml_time(expiration)) <= 0) {
        me_log_error(NULL, "s3: STS AssumeRoleWithWebIdentity answered without usable credentials");
        goto out;
    }
#undef CREDS
    ret = 0;
out:
    if (body != NULL)
        OPENSSL_cleanse(body, strlen(body));
    if (enc != NULL)
        OPENSSL_cleanse(enc, strlen(enc));
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    free(enc);
    free(body);
    free_answer(&a);
    return ret;
}

static int fetch_container(me_s3_creds_t *c, me_s3_credentials_t *out)
{
    char *token = c->auth_file != NULL ? read_token(c->auth_file) : NULL;
    answer_t a = {0};
    long status = 0;
    int ret = ME_EIO;
    json_t *doc = NULL;

    if (c->auth_file != NULL && token == NULL) {
        me_log_error(NULL, "s3: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s", c->auth_file);
        return ME_EIO;
    }
    if (exchange(c, c->uri, token != NULL ? token : c->auth_token, NULL, &a, &status) != 0)
        goto out;
    if (status != 200) {
        me_log_error(NULL, "s3: the container credentials endpoint answered %ld", status);
        goto out;
    }
    doc = json_loadb(a.buf, a.len, 0, NULL);
    const char *expiration = json_string_value(json_object_get(doc, "Expiration"));
    if (copy_field(out->access_key, sizeof(out->access_key), json_string_value(json_object_get(doc, "AccessKeyId"))) !=
            0 ||
        copy_field(out->secret_key, sizeof(out->secret_key),
                   json_string_value(json_object_get(doc, "SecretAccessKey"))) != 0 ||
        copy_field(out->token, sizeof(out->token), json_string_value(json_object_get(doc, "Token"))) != 0 ||
        expiration == NULL || (out->expires = me_s3_xml_time(expiration)) <= 0) {
        me_log_error(NULL, "s3: the container credentials endpoint answered without usable credentials");
        goto out;
    }
    ret = 0;
out:
    if (doc != NULL) {
        const char *s = json_string_value(json_object_get(doc, "SecretAccessKey"));
        if (s != NULL)
            OPENSSL_cleanse((char *)s, strlen(s));
    }
    json_decref(doc);
    if (token != NULL) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
    }
    free_answer(&a);
    return ret;
}

/* The profile's keys from an INI file; 0 or -1. */
static int read_shared_file(const char *path, const char *profile, me_s3_credentials_t *out)
{
    FILE *f = fopen(path, "re");
    char line[8192];
    int in = 0, ret = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *s = line, *e;
        while (isspace((unsigned char)*s))
            s++;
        for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
            ;
        *e = '\0';
        if (*s == '#' || *s == ';' || *s == '\0')
            continue;
        if (*s == '[') {
            in = e > s + 1 && e[-1] == ']' && (size_t)(e - s - 2) == strlen(profile) &&
                 strncmp(s + 1, profile, strlen(profile)) == 0;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in || eq == NULL)
            continue;
        char *k = s, *ke = eq, *v = eq + 1;
        while (ke > k && isspace((unsigned char)ke[-1]))
            ke--;
        *ke = '\0';
        while (isspace((unsigned char)*v))
            v++;
        if (strcmp(k, "aws_access_key_id") == 0)
            ret = copy_field(out->access_key, sizeof(out->access_key), v);
        else if (strcmp(k, "aws_secret_access_key") == 0 &&
                 copy_field(out->secret_key, sizeof(out->secret_key), v) != 0)
            ret = -1;
        else if (strcmp(k, "aws_session_token") == 0)
            (void)copy_field(out->token, sizeof(out->token), v);
    }
    OPENSSL_cleanse(line, sizeof(line));
    fclose(f);
    return ret == 0 && out->access_key[0] != '\0' && out->secret_key[0] != '\0' ? 0 : -1;
}

static int fetch(me_s3_creds_t *c, me_s3_credentials_t *out)
{
    *out = (me_s3_credentials_t){0};
    switch (c->source) {
    case SRC_IRSA: return fetch_irsa(c, out);
    case SRC_CONTAINER: return fetch_container(c, out);
    default: return 0; /* fixed: cur holds them */
    }
}

/* http only to loopback and the container agents' addresses, as the SDKs allow */
static int container_uri_allowed(const char *uri)
{
    static const char *const hosts[] = {"http://127.",           "http://localhost:",     "http://localhost/",
                                        "http://[::1]",          "http://169.254.170.2:", "http://169.254.170.2/",
                                        "http://169.254.170.23", "http://[fd00:ec2::23]", NULL};
    if (strncmp(uri, "https://", 8) == 0)
        return 1;
    for (int i = 0; hosts[i] != NULL; i++)
        if (strncmp(uri, hosts[i], strlen(hosts[i])) == 0)
            return 1;
    return 0;
}

me_s3_creds_t *me_s3_creds_new(const me_s3_settings_t *s, char *err, size_t errlen)
{
    me_s3_creds_t *c = calloc(1, sizeof(*c));
    const char *v;
    char url[512];

    if (c == NULL) {
        snprintf(err, errlen, "s3: out of memory");
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    c->connect_ms = (long)s->connect_timeout;
    c->timeout_ms = (long)(s->timeout < 30000 ? s->timeout : 30000);
    if (s->ca_file != NULL && s->ca_file[0] != '\0' && (c->ca_file = strdup(s->ca_file)) == NULL)
        goto nomem;
    if (env("AWS_ACCESS_KEY_ID") != NULL || env("AWS_SECRET_ACCESS_KEY") != NULL) {
        c->source = SRC_ENV;
        if (copy_field(c->cur.access_key, sizeof(c->cur.access_key), env("AWS_ACCESS_KEY_ID")) != 0 ||
            copy_field(c->cur.secret_key, sizeof(c->cur.secret_key), env("AWS_SECRET_ACCESS_KEY")) != 0) {
            snprintf(err, errlen, "s3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must both be set (and short)");
            goto fail;
        }
        if ((v = env("AWS_SESSION_TOKEN")) != NULL && copy_field(c->cur.token, sizeof(c->cur.token), v) != 0) {
            snprintf(err, errlen, "s3: AWS_SESSION_TOKEN is too long");
            goto fail;
        }
    } else if (env("AWS_WEB_IDENTITY_TOKEN_FILE") != NULL && env("AWS_ROLE_ARN") != NULL) {
        c->source = SRC_IRSA;
        if (s->sts_endpoint != NULL && s->sts_endpoint[0] != '\0')
            snprintf(url, sizeof(url), "%s/", s->sts_endpoint);
        else
            snprintf(url, sizeof(url), "https://sts.%s.amazonaws.com/", s->region);
        v = env("AWS_ROLE_SESSION_NAME");
        if ((c->role_arn = strdup(env("AWS_ROLE_ARN"))) == NULL ||
            (c->token_file = strdup(env("AWS_WEB_IDENTITY_TOKEN_FILE"))) == NULL ||
            (c->session_name = strdup(v != NULL ? v : "mediaedge")) == NULL || (c->sts_url = strdup(url)) == NULL)
            goto nomem;
    } else if (env("AWS_CONTAINER_CREDENTIALS_FULL_URI") != NULL ||
               env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != NULL) {
        c->source = SRC_CONTAINER;
        if ((v = env("AWS_CONTAINER_CREDENTIALS_FULL_URI")) != NULL)
            snprintf(url, sizeof(url), "%s", v);
        else
            snprintf(url, sizeof(url), ECS_HOST "%s", env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"));
        if (!container_uri_allowed(url)) {
            snprintf(err, errlen,
                     "s3: AWS_CONTAINER_CREDENTIALS_FULL_URI must be https:// or a loopback or "
                     "container agent address");
            goto fail;
        }
        if ((c->uri = strdup(url)) == NULL)
            goto nomem;
        if ((v = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) != NULL && (c->auth_file = strdup(v)) == NULL)
            goto nomem;
        if (c->auth_file == NULL && (v = env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) != NULL &&
            (c->auth_token = strdup(v)) == NULL)
            goto nomem;
    } else {
        const char *home = env("HOME"), *file = env("AWS_SHARED_CREDENTIALS_FILE"), *profile = env("AWS_PROFILE");
        char path[1024];
        snprintf(path, sizeof(path), "%s/.aws/credentials", home != NULL ? home : "");
        c->source = SRC_FILE;
        if (read_shared_file(file != NULL ? file : path, profile != NULL ? profile : "default", &c->cur) != 0) {
            snprintf(err, errlen,
                     "s3: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                     "AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (IRSA), or "
                     "AWS_CONTAINER_CREDENTIALS_FULL_URI (EKS Pod Identity), or a profile in %s",
                     file != NULL ? file : path);
            goto fail;
        }
    }
    if (c->source == SRC_IRSA || c->source == SRC_CONTAINER) {
        if (fetch(c, &c->cur) != 0) {
            snprintf(err, errlen, "s3: cannot get credentials from %s (see the log)",
                     c->source == SRC_IRSA ? "STS (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)"
                                           : "AWS_CONTAINER_CREDENTIALS_FULL_URI");
            goto fail;
        }
        me_log_info(NULL, "s3: credentials from %s, valid until %lld", me_s3_creds_source(c),
                    (long long)c->cur.expires);
    }
    return c;
nomem:
    snprintf(err, errlen, "s3: out of memory");
fail:
    me_s3_creds_free(c);
    return NULL;
}

void me_s3_creds_free(me_s3_creds_t *c)
{
    if (c == NULL)
        return;
    OPENSSL_cleanse(&c->cur, sizeof(c->cur));
    if (c->auth_token != NULL)
        OPENSSL_cleanse(c->auth_token, strlen(c->auth_token));
    free(c->role_arn);
    free(c->session_name);
    free(c->token_file);
    free(c->sts_url);
    free(c->uri);
    free(c->auth_file);
    free(c->auth_token);
    free(c->ca_file);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int me_s3_creds_get(me_s3_creds_t *c, me_s3_credentials_t *out)
{
    int64_t now = (int64_t)time(NULL);
    int ret = 0;

    pthread_mutex_lock(&c->lock);
    if (c->cur.expires != 0 && now >= c->cur.expires - ME_S3_CREDS_REFRESH_BEFORE &&
        (now >= c->cur.expires || now - c->last_try >= RETRY_EVERY)) {
        me_s3_credentials_t fresh;
        c->last_try = now;
        if (fetch(c, &fresh) == 0) {
            c->cur = fresh;
            me_log_info(NULL, "s3: credentials renewed from %s, valid until %lld", me_s3_creds_source(c),
                        (long long)fresh.expires);
        } else {
            me_log_warn(NULL, "s3: credentials renewal from %s failed; the current ones end at %lld",
                        me_s3_creds_source(c), (long long)c->cur.expires);
        }
        OPENSSL_cleanse(&fresh, sizeof(fresh));
    }
    if (c->cur.expires != 0 && now >= c->cur.expires)
        ret = ME_EIO;
    else
        *out = c->cur;
    pthread_mutex_unlock(&c->lock);
    return ret;
}

const char *me_s3_creds_source(const me_s3_creds_t *c)
{
    static const char *const names[] = {"env", "irsa", "pod-identity", "file"};
    return names[c->source];
}
