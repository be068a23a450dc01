/* pool.c: stub */
