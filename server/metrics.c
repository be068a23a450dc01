/* metrics.c: stub */
