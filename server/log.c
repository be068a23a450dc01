/* log.c: stub */
