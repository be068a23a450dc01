/* upload_hash.c: running SHA-256 hashes of uploads in progress, a small LRU table. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include "server/upload/upload.h"
#include "server/upload/upload_hash.h"

typedef struct {
    char id[ME_UPLOAD_ID_LEN + 1]; /* "" when free */
    uint64_t hashed;               /* bytes taken: [0, hashed) */
    uint64_t used;                 /* the table's clock when last used */
    EVP_MD_CTX *ctx;
} entry_t;

struct me_upload_hashes {
    pthread_mutex_t lock;
    uint64_t clock;
    entry_t e[ME_UPLOAD_HASHES_MAX];
};

me_upload_hashes_t *me_upload_hashes_new(void)
{
    me_upload_hashes_t *h = calloc(1, sizeof(*h));
    if (h != NULL)
        pthread_mutex_init(&h->lock, NULL);
    return h;
}

void me_upload_hashes_free(me_upload_hashes_t *h)
{
    if (h == NULL)
        return;
    for (int i = 0; i < ME_UPLOAD_HASHES_MAX; i++)
        EVP_MD_CTX_free(h->e[i].ctx);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* Takes id's entry out of the table (its context is then the caller's): 0 with *ctx and
 * *hashed, or -1 when there is none. */
static int detach(me_upload_hashes_t *h, const char *id, EVP_MD_CTX **ctx, uint64_t *hashed)
{
    int ret = -1;
    pthread_mutex_lock(&h->lock);
    for (int i = 0; i < ME_UPLOAD_HASHES_MAX; i++) {
        entry_t *e = &h->e[i];
        if (e->id[0] != '\0' && strcmp(e->id, id) == 0) {
            *ctx = e->ctx, *hashed = e->hashed;
            *e = (entry_t){0};
            ret = 0;
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return ret;
}

/* Puts id's context back, in a free slot or the least recently used one's. */
static void attach(me_upload_hashes_t *h, const char *id, EVP_MD_CTX *ctx, uint64_t hashed)
{
    EVP_MD_CTX *evicted = NULL;
    pthread_mutex_lock(&h->lock);
    entry_t *slot = &h->e[0];
    for (int i = 0; i < ME_UPLOAD_HASHES_MAX; i++) {
        entry_t *e = &h->e[i];
        if (e->id[0] == '\0') {
            slot = e;
            break;
        }
        if (e->used < slot->used)
            slot = e;
    }
    evicted = slot->ctx;
    *slot = (entry_t){.hashed = hashed, .used = ++h->clock, .ctx = ctx};
    snprintf(slot->id, sizeof(slot->id), "%s", id);
    pthread_mutex_unlock(&h->lock);
    EVP_MD_CTX_free(evicted);
}

void me_upload_hashes_add(me_upload_hashes_t *h, const char *id, uint64_t offset, const void *data, size_t len)
{
    EVP_MD_CTX *ctx = NULL;
    uint64_t hashed = 0;

    if (h == NULL || strlen(id) > ME_UPLOAD_ID_LEN)
        return;
    if (detach(h, id, &ctx, &hashed) != 0 || hashed != offset) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
        if (offset != 0)
            return; /* bytes before these went elsewhere: completion reads the object */
        if ((ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
            EVP_MD_CTX_free(ctx);
            return;
        }
        hashed = 0;
    }
    if (len > 0 && EVP_DigestUpdate(ctx, data, len) != 1) {
        EVP_MD_CTX_free(ctx);
        return;
    }
    attach(h, id, ctx, hashed + len);
}

int me_upload_hashes_take(me_upload_hashes_t *h, const char *id, uint64_t length, char out[65])
{
    EVP_MD_CTX *ctx = NULL;
    uint64_t hashed = 0;
    unsigned char md[32];
    unsigned int n = 0;
    int ret = -1;

    if (h == NULL || detach(h, id, &ctx, &hashed) != 0)
        return -1;
    if (hashed == length && EVP_DigestFinal_ex(ctx, md, &n) == 1 && n == 32) {
        for (int i = 0; i < 32; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
        ret = 0;
    }
    EVP_MD_CTX_free(ctx);
    return ret;
}
