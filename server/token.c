/* token.c: stub */
