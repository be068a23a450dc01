/* health.c: stub */
