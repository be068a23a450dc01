/* tls.h: the TLS server context: the configured certificate, or a self-signed one made at
 * first start for development. */
#ifndef ME_TLS_H
#define ME_TLS_H

#include <stddef.h>
#include <openssl/ssl.h>
#include "server/core/config.h"

/* Makes an SSL_CTX (TLS 1.2+, ALPN h2 and http/1.1) with cfg's tls.cert_file/key_file, or,
 * when they are empty, with <data_dir>/tls/self-signed.pem, made (EC P-256, CN localhost,
 * SAN localhost/127.0.0.1/::1, one year) when missing or expired and reused otherwise.
 * Returns NULL with err set on failure. The caller frees it with SSL_CTX_free(). */
SSL_CTX *me_tls_ctx_new(const me_config_t *cfg, char *err, size_t errlen);

#endif
