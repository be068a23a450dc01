/* webhook.c: signing, storing and sending webhook deliveries, one sender thread. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include "server/core/failpoint.h"
#include "server/core/clock.h"
#include "server/core/log.h"
#include "server/core/metrics.h"
#include "server/storage/layout.h"
#include "server/jobs/webhook.h"
#include "server/jobs/jobs_config.h"

#define DOC_MAX (4 << 20)

ME_COUNTER(deliveries_total, "mediaedge_webhook_deliveries_total",
           "Webhook delivery attempts by outcome (delivered, retry, dropped).", "outcome")

struct me_webhooks {
    const me_webhook_settings_t *ws; /* the webhooks section of the configuration */
    me_storage_t *st;
    me_jobq_t *q;
    pthread_t sender;
    int sending;
};

int me_webhook_signature(const char *secret, int64_t t, const char *body, size_t len, char *out)
{
    unsigned char mac[32];
    char stamp[24];
    size_t got = 0;
    int n = snprintf(stamp, sizeof(stamp), "%" PRId64 ".", t);
    EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = hmac != NULL ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0), OSSL_PARAM_construct_end()};
    int ok = ctx != NULL && EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) &&
             EVP_MAC_update(ctx, (const unsigned char *)stamp, (size_t)n) &&
             EVP_MAC_update(ctx, (const unsigned char *)body, len) && EVP_MAC_final(ctx, mac, &got, sizeof(mac));
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    if (!ok || got != sizeof(mac))
        return ME_EINTERNAL;
    int p = snprintf(out, ME_WEBHOOK_SIGNATURE_MAX, "t=%" PRId64 ",v1=", t);
    for (size_t i = 0; i < got; i++)
        p += snprintf(out + p, ME_WEBHOOK_SIGNATURE_MAX - (size_t)p, "%02x", mac[i]);
    return 0;
}

/* webhooks/<id>.json; event ids are made here or checked when listed, so the key fits. */
static void doc_key(char *key, size_t size, const char *id)
{
    (void)!me_layout_webhook(key, size, id);
}

static int store(me_webhooks_t *w, const char *key, const json_t *doc)
{
    return me_storage_put_json(w->st, key, doc) == 0 ? 0 : ME_EIO;
}

me_webhooks_t *me_webhooks_new(const me_config_t *cfg, me_storage_t *st, me_jobq_t *q, char *err, size_t errlen)
{
    const me_webhook_settings_t *ws = me_webhook_settings(cfg);
    if (*ws->url && !*ws->secret) {
        snprintf(err, errlen, "webhooks.secret: needed when webhooks.url is set (deliveries are signed with it); "
                              "set MEDIAEDGE_WEBHOOKS_SECRET_FILE");
        return NULL;
    }
    me_webhooks_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->ws = ws, w->st = st, w->q = q;
    return w;
}

int me_webhooks_raise(me_webhooks_t *w, const char *event, const json_t *media)
{
    const char *media_id = json_string_value(json_object_get(media, "id"));
    char id[ME_JOBQ_ID_MAX + 1], key[ME_STORAGE_KEY_MAX];
    if (!*w->ws->url)
        return 0;
    const char *dot = strchr(event, '.');
    int montage = strncmp(event, "montage.", 8) == 0;
    if (media_id == NULL || dot == NULL || (!montage && strncmp(event, "media.", 6) != 0) ||
        snprintf(id, sizeof(id), "%s-%s", media_id, dot + 1) >= (int)sizeof(id))
        return ME_EINVAL;
    json_t *body = json_pack("{s:s,s:s,s:I,s:O}", "id", id, "event", event, "created_at",
                             (json_int_t)(me_clock_wall_ms() / 1000), montage ? "montage" : "media", media);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_t *doc = text != NULL ? json_pack("{s:s,s:s,s:i}", "id", id, "body", text, "attempts", 0) : NULL;
    doc_key(key, sizeof(key), id);
    int ret = doc != NULL ? store(w, key, doc) : ME_ENOMEM;
    json_decref(doc);
    free(text);
    json_decref(body);
    if (ret == 0 && me_jobq_push(w->q, id, 0) != 0)
        me_log_error(NULL, "webhooks: could not queue %s; it goes at the next start", id);
    return ret;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n;
}

/* POSTs body; returns the HTTP status, or 0 when no answer came (with why filled). */
static long post(me_webhooks_t *w, const char *id, const char *body, int64_t now, char *why, size_t whylen)
{
    char sig[ME_WEBHOOK_SIGNATURE_MAX], h1[ME_WEBHOOK_SIGNATURE_MAX + 32], h2[ME_JOBQ_ID_MAX + 32];
    long status = 0;
    if (me_webhook_signature(w->ws->secret, now / 1000, body, strlen(body), sig) != 0) {
        snprintf(why, whylen, "could not sign");
        return 0;
    }
    snprintf(h1, sizeof(h1), "Mediaedge-Signature: %s", sig);
    snprintf(h2, sizeof(h2), "Mediaedge-Delivery: %s", id);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, h1);
    headers = curl_slist_append(headers, h2);
    CURL *c = curl_easy_init();
    if (c == NULL || headers == NULL) {
        snprintf(why, whylen, "out of memory");
        goto exit;
    }
    curl_easy_setopt(c, CURLOPT_URL, w->ws->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "mediaedge-webhooks");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)w->ws->timeout);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
exit:
    curl_easy_cleanup(c);
    curl_slist_free_all(headers);
    return status;
}

int me_webhooks_deliver(me_webhooks_t *w, const char *id, int64_t now, int64_t *retry_at)
{
    char key[ME_STORAGE_KEY_MAX], why[256] = "";
    const char *outcome;
    json_t *doc = NULL;
    int ret = 0;

    doc_key(key, sizeof(key), id);
    if (!me_storage_key_valid(key) || !*w->ws->url)
        return 0; /* webhooks turned off since */
    ret = me_storage_get_json(w->st, key, DOC_MAX, &doc);
    if (ret == ME_ENOTFOUND)
        return 0; /* delivered and gone */
    if (ret != 0 && ret != ME_EINVAL && ret != ME_ETOOLARGE) {
        /* storage failed, not the delivery: it stays stored, and this try did not count */
        me_log_error(NULL, "webhooks: cannot read %s (%s); trying again later", id, me_err_code(ret));
        *retry_at = now + (int64_t)w->ws->retry_after;
        outcome = "retry";
        me_metric_add(deliveries_total, &outcome, 1);
        return ME_EBUSY;
    }
    ret = 0; /* not a JSON object, or too big: not a delivery of ours, dropped below */
    const char *body = json_string_value(json_object_get(doc, "body"));
    json_int_t attempts = json_integer_value(json_object_get(doc, "attempts")) + 1;
    long status = body != NULL ? post(w, id, body, now, why, sizeof(why)) : 200; /* not ours: drop it */
    if (status >= 200 && status < 300) {
        outcome = "delivered";
        me_failpoint("webhook.delivered"); /* the receiver has it; storage still says to send it */
        (void)!me_storage_delete(w->st, key);
    } else if (attempts >= w->ws->max_attempts) {
        outcome = "dropped";
        if (status != 0)
            snprintf(why, sizeof(why), "HTTP %ld", status);
        me_log_error(NULL, "webhooks: %s dropped after %d attempts; the last: %s", id, (int)attempts, why);
        (void)!me_storage_delete(w->st, key);
    } else {
        outcome = "retry";
        *retry_at = now + ((int64_t)w->ws->retry_after << (attempts - 1 < 16 ? attempts - 1 : 16));
        json_object_set_new(doc, "attempts", json_integer(attempts));
        json_object_set_new(doc, "next_at", json_integer(*retry_at));
        (void)!store(w, key, doc); /* lost: the next start tries it again sooner */
        ret = ME_EBUSY;
    }
    me_metric_add(deliveries_total, &outcome, 1);
    json_decref(doc);
    return ret;
}

static int deliver_popped(void *ctx, const char *id, int64_t now, int64_t *retry_at)
{
    return me_webhooks_deliver(ctx, id, now, retry_at);
}

static void *send_loop(void *arg)
{
    me_webhooks_t *w = arg;
    me_jobq_work(w->q, deliver_popped, w);
    return NULL;
}

/* Queues "webhooks/<id>.json" listed at start. */
static int requeue(const char *key, const me_storage_stat_t *stat, void *arg)
{
    me_webhooks_t *w = arg;
    char id[ME_JOBQ_ID_MAX + 1];
    (void)stat;
    if (!me_layout_doc_id(key, ME_LAYOUT_WEBHOOKS, ".json", id, sizeof(id)))
        return 0;
    return me_jobq_push(w->q, id, 0) == ME_ENOMEM ? ME_ENOMEM : 0;
}

int me_webhooks_start(me_webhooks_t *w)
{
    if (!*w->ws->url)
        return 0;
    if (me_storage_list(w->st, ME_LAYOUT_WEBHOOKS, requeue, w) != 0)
        return ME_EIO;
    w->sending = pthread_create(&w->sender, NULL, send_loop, w) == 0;
    return w->sending ? 0 : ME_ENOMEM;
}

void me_webhooks_stop(me_webhooks_t *w)
{
    me_jobq_close(w->q);
    if (w->sending)
        pthread_join(w->sender, NULL);
    w->sending = 0;
}

void me_webhooks_free(me_webhooks_t *w)
{
    if (w == NULL)
        return;
    me_webhooks_stop(w);
    free(w);
}
