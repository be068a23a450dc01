/* config.c: stub */
