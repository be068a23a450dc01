/* s3_xml.c: S3's and STS's XML answers, read with libxml2's tree API. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include "server/storage/s3/s3_xml.h"

#define TEXT_MAX 4096
/* no network, no entity substitution, no DTD loading; errors not printed */
#define PARSE_OPTIONS (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA)

void me_s3_xml_init(void)
{
    xmlInitParser();
}

static xmlDocPtr parse(const char *body, size_t len)
{
    if (body == NULL || len == 0 || len > (size_t)INT32_MAX)
        return NULL;
    return xmlReadMemory(body, (int)len, "s3.xml", NULL, PARSE_OPTIONS);
}

static int named(xmlNodePtr n, const char *name, size_t namelen)
{
    return n->type == XML_ELEMENT_NODE && strlen((const char *)n->name) == namelen &&
           memcmp(n->name, name, namelen) == 0;
}

static xmlNodePtr child(xmlNodePtr parent, const char *name)
{
    for (xmlNodePtr c = parent->children; c != NULL; c = c->next)
        if (named(c, name, strlen(name)))
            return c;
    return NULL;
}

/* The element at path from the root, or NULL. */
static xmlNodePtr find(xmlDocPtr doc, const char *path)
{
    xmlNodePtr n = xmlDocGetRootElement(doc);
    const char *seg = path;

    for (int first = 1; n != NULL && *seg != '\0'; first = 0) {
        const char *end = strchr(seg, '/');
        size_t len = end != NULL ? (size_t)(end - seg) : strlen(seg);
        if (!first) {
            xmlNodePtr c = n->children;
            while (c != NULL && !named(c, seg, len))
                c = c->next;
            n = c;
        } else if (!named(n, seg, len)) {
            return NULL;
        }
        seg += len + (end != NULL);
    }
    return n;
}

/* n's text, trimmed, into out: 0 or ME_ETOOLARGE. */
static int text_of(xmlNodePtr n, char *out, size_t outlen)
{
    xmlChar *t = xmlNodeGetContent(n);
    const char *s = t != NULL ? (const char *)t : "";
    size_t len;
    int ret = 0;

    while (isspace((unsigned char)*s))
        s++;
    for (len = strlen(s); len > 0 && isspace((unsigned char)s[len - 1]); len--)
        ;
    if (len >= outlen) {
        if (outlen > 0)
            out[0] = '\0';
        ret = ME_ETOOLARGE;
    } else {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    xmlFree(t);
    return ret;
}

int me_s3_xml_text(const char *body, size_t len, const char *path, char *out, size_t outlen)
{
    xmlDocPtr doc = parse(body, len);
    xmlNodePtr n = doc != NULL ? find(doc, path) : NULL;
    int ret = n != NULL ? text_of(n, out, outlen) : ME_ENOTFOUND;

    if (n == NULL && outlen > 0)
        out[0] = '\0';
    xmlFreeDoc(doc);
    return ret;
}

int me_s3_xml_root(const char *body, size_t len, char *out, size_t outlen)
{
    xmlDocPtr doc = parse(body, len);
    xmlNodePtr root = doc != NULL ? xmlDocGetRootElement(doc) : NULL;
    int ret = ME_ENOTFOUND;

    if (outlen > 0)
        out[0] = '\0';
    if (root != NULL && (size_t)snprintf(out, outlen, "%s", (const char *)root->name) < outlen)
        ret = 0;
    xmlFreeDoc(doc);
    return ret;
}

int64_t me_s3_xml_time(const char *s)
{
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return -1;
    if (*rest == '.')
        for (rest++; isdigit((unsigned char)*rest); rest++)
            ;
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0 && *rest != '\0')
        return -1;
    return (int64_t)timegm(&tm);
}

/* a decimal of at most 19 digits */
static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    if (*s < '0' || *s > '9' || strlen(s) > 19)
        return -1;
    *v = strtoull(s, &end, 10);
    return *end == '\0' ? 0 : -1;
}

static void unquote(char *etag)
{
    size_t n = strlen(etag);
    if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"') {
        memmove(etag, etag + 1, n - 2);
        etag[n - 2] = '\0';
    }
}

int me_s3_xml_list(const char *body, size_t len, int parts, int (*cb)(const me_s3_xml_entry_t *e, void *arg), void *arg,
                   int *truncated, char *next, size_t nextlen)
{
    xmlDocPtr doc = parse(body, len);
    xmlNodePtr root = doc != NULL ? xmlDocGetRootElement(doc) : NULL, n;
    const char *entry = parts ? "Part" : "Contents";
    char *key = malloc(TEXT_MAX), etag[256], text[64];
    int ret = ME_EIO;

    *truncated = 0;
    if (nextlen > 0)
        next[0] = '\0';
    if (root == NULL || key == NULL ||
        !named(root, parts ? "ListPartsResult" : "ListBucketResult",
               strlen(parts ? "ListPartsResult" : "ListBucketResult")))
        goto out;
    if ((n = child(root, "IsTruncated")) != NULL && text_of(n, text, sizeof(text)) == 0)
        *truncated = strcmp(text, "true") == 0;
    if ((n = child(root, parts ? "NextPartNumberMarker" : "NextContinuationToken")) != NULL &&
        text_of(n, next, nextlen) != 0)
        goto out;
    for (xmlNodePtr c = root->children; c != NULL; c = c->next) {
        me_s3_xml_entry_t e = {0};
        xmlNodePtr k = child(c, "Key"), num = child(c, "PartNumber"), size = child(c, "Size"), et = child(c, "ETag"),
                   lm = child(c, "LastModified");
        if (!named(c, entry, strlen(entry)))
            continue;
        if (size == NULL || et == NULL || text_of(size, text, sizeof(text)) != 0 || parse_u64(text, &e.size) != 0 ||
            text_of(et, etag, sizeof(etag)) != 0)
            goto out;
        unquote(etag);
        e.etag = etag;
        if (parts) {
            uint64_t v;
            if (num == NULL || text_of(num, text, sizeof(text)) != 0 || parse_u64(text, &v) != 0 || v < 1 || v > 10000)
                goto out;
            e.number = (int)v;
        } else {
            if (k == NULL || text_of(k, key, TEXT_MAX) != 0)
                goto out;
            e.key = key;
        }
        if (lm != NULL && text_of(lm, text, sizeof(text)) == 0)
            e.mtime = me_s3_xml_time(text);
        if ((ret = cb(&e, arg)) != 0)
            goto out;
    }
    ret = 0;
out:
    free(key);
    xmlFreeDoc(doc);
    return ret;
}

int me_s3_xml_uploads(const char *body, size_t len, int (*cb)(const me_s3_xml_upload_t *u, void *arg), void *arg,
                      int *truncated, char *next_key, size_t keylen, char *next_id, size_t idlen)
{
    xmlDocPtr doc = parse(body, len);
    xmlNodePtr root = doc != NULL ? xmlDocGetRootElement(doc) : NULL, n;
    char *key = malloc(TEXT_MAX), *id = malloc(TEXT_MAX), text[64];
    int ret = ME_EIO;

    *truncated = 0;
    if (keylen > 0)
        next_key[0] = '\0';
    if (idlen > 0)
        next_id[0] = '\0';
    if (root == NULL || key == NULL || id == NULL ||
        !named(root, "ListMultipartUploadsResult", strlen("ListMultipartUploadsResult")))
        goto out;
    if ((n = child(root, "IsTruncated")) != NULL && text_of(n, text, sizeof(text)) == 0)
        *truncated = strcmp(text, "true") == 0;
    if (((n = child(root, "NextKeyMarker")) != NULL && text_of(n, next_key, keylen) != 0) ||
        ((n = child(root, "NextUploadIdMarker")) != NULL && text_of(n, next_id, idlen) != 0))
        goto out;
    for (xmlNodePtr c = root->children; c != NULL; c = c->next) {
        xmlNodePtr k = child(c, "Key"), u = child(c, "UploadId"), at = child(c, "Initiated");
        if (!named(c, "Upload", strlen("Upload")))
            continue;
        if (k == NULL || u == NULL || text_of(k, key, TEXT_MAX) != 0 || text_of(u, id, TEXT_MAX) != 0)
            goto out;
        me_s3_xml_upload_t e = {key, id, -1};
        if (at != NULL && text_of(at, text, sizeof(text)) == 0)
            e.initiated = me_s3_xml_time(text);
        if ((ret = cb(&e, arg)) != 0)
            goto out;
    }
    ret = 0;
out:
    free(key);
    free(id);
    xmlFreeDoc(doc);
    return ret;
}
