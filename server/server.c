/* server.c: stub */
