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

void me_upload_hashes_begin(me_upload_hashes_t *h, const char *id, uint64_t offset, me_upload_hash_step_t *step)
{
    *step = (me_upload_hash_step_t){NULL, offset, 0};
    if (h == NULL || strlen(id) > ME_UPLOAD_ID_LEN)
        return;
    pthread_mutex_lock(&h->lock);
    for (int i = 0; i < ME_UPLOAD_HASHES_MAX; i++) {
        entry_t *e = &h->e[i];
        if (e->id[0] != '\0' && strcmp(e->id, id) == 0 && e->hashed == offset) {
            if ((step->ctx = EVP_MD_CTX_new()) != NULL && EVP_MD_CTX_copy_ex(step->ctx, e->ctx) != 1) {
                EVP_MD_CTX_free(step->ctx);
                step->ctx = NULL;
            }
            break;
        }
    }
    pthread_mutex_unlock(&h->lock);
    if (step->ctx == NULL && offset == 0 && (step->ctx = EVP_MD_CTX_new()) != NULL &&
        EVP_DigestInit_ex(step->ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(step->ctx);
        step->ctx = NULL;
    }
    /* else: bytes before these went elsewhere, completion reads the object */
}

void me_upload_hash_step_update(me_upload_hash_step_t *step, const void *data, size_t len)
{
    if (step->ctx != NULL && len > 0 && EVP_DigestUpdate(step->ctx, data, len) != 1)
        me_upload_hash_step_drop(step);
    else if (step->ctx != NULL)
        step->taken += len;
}

void me_upload_hash_step_drop(me_upload_hash_step_t *step)
{
    EVP_MD_CTX_free(step->ctx);
    step->ctx = NULL;
}

void me_upload_hashes_keep(me_upload_hashes_t *h, const char *id, me_upload_hash_step_t *step)
{
    EVP_MD_CTX *ctx = NULL;
    uint64_t hashed = 0;
    if (h == NULL || step->ctx == NULL || strlen(id) > ME_UPLOAD_ID_LEN) {
        me_upload_hash_step_drop(step);
        return;
    }
    /* the hash as it was when the step began; a step from offset 0 starts it again */
    int had = detach(h, id, &ctx, &hashed) == 0;
    EVP_MD_CTX_free(ctx);
    if (step->offset != 0 && (!had || hashed != step->offset)) {
        me_upload_hash_step_drop(step);
        return;
    }
    attach(h, id, step->ctx, step->offset + step->taken);
    step->ctx = NULL;
}

void me_upload_hashes_add(me_upload_hashes_t *h, const char *id, uint64_t offset, const void *data, size_t len)
{
    me_upload_hash_step_t step;
    me_upload_hashes_begin(h, id, offset, &step);
    me_upload_hash_step_update(&step, data, len);
    me_upload_hashes_keep(h, id, &step);
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
