/* b64.c: stub */
