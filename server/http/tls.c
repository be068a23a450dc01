/* tls.c: the TLS server context and the development self-signed certificate. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <h2o.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include "server/http/tls.h"
#include "server/http/server_config.h"

static void ssl_reason(char *err, size_t errlen, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    snprintf(err, errlen, "%s %s%s%s", what, path, buf[0] ? ": " : "", buf);
    ERR_clear_error();
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (ext == NULL)
        return 0;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

/* Makes a fresh key and certificate and writes both to path (mode 0600, atomically). */
static int make_self_signed(const char *path, char *err, size_t errlen)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *fp = NULL;
    char tmp[4096];
    int ok = 0, fd = -1;
    unsigned char serial[16];

    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    if (key == NULL || x == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
        goto exit;
    serial[0] &= 0x7f;
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    int serial_ok = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    BN_free(bn);
    if (!serial_ok || !X509_set_version(x, 2) || X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600) == NULL || !X509_set_pubkey(x, key))
        goto exit;
    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"mediaedge development", -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0) ||
        !X509_set_issuer_name(x, name) ||
        !add_ext(x, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") ||
        !add_ext(x, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, NID_ext_key_usage, "serverAuth") || !X509_sign(x, key, EVP_sha256()))
        goto exit;
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 || (fp = fdopen(fd, "w")) == NULL)
        goto exit;
    fd = -1;
    if (!PEM_write_PrivateKey(fp, key, NULL, NULL, 0, NULL, NULL) || !PEM_write_X509(fp, x) || fflush(fp) != 0 ||
        fsync(fileno(fp)) != 0)
        goto exit;
    if (fclose(fp) != 0) {
        fp = NULL;
        goto exit;
    }
    fp = NULL;
    ok = rename(tmp, path) == 0;

exit:
    if (!ok) {
        if (errno != 0)
            snprintf(err, errlen, "cannot write the self-signed certificate %s: %s", path, strerror(errno));
        else
            ssl_reason(err, errlen, "cannot make the self-signed certificate", path);
        unlink(tmp);
    }
    if (fp != NULL)
        fclose(fp);
    if (fd >= 0)
        close(fd);
    X509_free(x);
    EVP_PKEY_free(key);
    return ok;
}

/* 1 when the certificate at path exists and stays valid for at least a day more. */
static int still_valid(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return 0;
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    if (x == NULL) {
        ERR_clear_error();
        return 0;
    }
    time_t soon = time(NULL) + 24 * 3600;
    int ok = X509_cmp_time(X509_get0_notAfter(x), &soon) > 0;
    X509_free(x);
    return ok;
}

SSL_CTX *me_tls_ctx_new(const me_config_t *cfg, char *err, size_t errlen)
{
    char path[4096], dir[4096];
    const char *data_dir = me_server_settings(cfg)->data_dir;
    const char *cert = me_tls_settings(cfg)->cert_file, *key = me_tls_settings(cfg)->key_file;
    SSL_CTX *ctx = NULL;

    errno = 0;
    if (cert == NULL || cert[0] == '\0') {
        snprintf(dir, sizeof(dir), "%s/tls", data_dir);
        snprintf(path, sizeof(path), "%s/self-signed.pem", dir);
        if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", data_dir, strerror(errno));
            return NULL;
        }
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
            return NULL;
        }
        errno = 0;
        if (!still_valid(path) && !make_self_signed(path, err, errlen))
            return NULL;
        cert = key = path;
    }

    if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
        ssl_reason(err, errlen, "cannot create the TLS context", "");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_reason(err, errlen, "cannot load the certificate (tls.cert_file)", cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ssl_reason(err, errlen, "cannot load the private key (tls.key_file) or it does not match the certificate", key);
        goto fail;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    return ctx;

fail:
    SSL_CTX_free(ctx);
    return NULL;
}
