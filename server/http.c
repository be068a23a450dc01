/* http.c: stub */
