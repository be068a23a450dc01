/* tls.c: stub */
