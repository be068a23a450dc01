/* storage_faults.h: a test helper, never linked into the server: a storage backend that passes
 * every call to another backend, counts the calls by operation, and makes the one a test
 * chooses fail, once (an error) or for good (the process dies there).
 *
 * It wraps the backend, not the me_storage_* functions, so it sees every call storage.c makes:
 * also those me_storage_put_json() and me_storage_get_all() make inside storage.c, which a
 * linker --wrap of me_storage_put would miss. Arguments storage.c refuses never get here. */
#ifndef STORAGE_FAULTS_H
#define STORAGE_FAULTS_H

#include <stddef.h>
#include <stdint.h>
#include "server/storage/storage_backend.h"

typedef enum {
    FAULT_PUT,
    FAULT_GET,
    FAULT_HEAD,
    FAULT_DELETE,
    FAULT_LIST,
    FAULT_MULTIPART_BEGIN,
    FAULT_PART_PUT,
    FAULT_MULTIPART_COMPLETE,
    FAULT_MULTIPART_ABORT,
    FAULT_PART_COPY,
    FAULT_PART_LIST,
    FAULT_OPS,        /* how many operations there are */
    FAULT_ANY = -1,   /* any operation */
    FAULT_WRITE = -2, /* any that changes storage: all but get, head, list and part_list */
    FAULT_NONE = -3,  /* no operation: what storage_faults_struck() says before any fault */
} fault_op_t;

typedef struct storage_faults storage_faults_t;

/* A store over be (opened through ops) whose calls go through the wrapper; *faults receives
 * the handle that steers it, valid until me_storage_close(), which closes be too. NULL when
 * out of memory (be is still the caller's, open). */
me_storage_t *storage_faults_wrap(const me_storage_ops_t *ops, me_storage_backend_t *be, storage_faults_t **faults);

/* The nth call from now (1 is the next) of op, an operation or FAULT_ANY or FAULT_WRITE,
 * returns err without reaching the backend; once. Replaces the fault set before. */
void storage_faults_fail(storage_faults_t *f, fault_op_t op, int nth, int err);

/* The process dies at the nth call from now of op: that call and every later one, of any
 * operation, return ME_EIO without reaching the backend, until storage_faults_reset(). What
 * the backend holds then is what a crash at that point leaves. Replaces the fault set before. */
void storage_faults_die(storage_faults_t *f, fault_op_t op, int nth);

/* 1 once the process died (storage_faults_die() struck), else 0. */
int storage_faults_dead(storage_faults_t *f);

/* The operation the last fault struck, FAULT_NONE when none has since the wrap or the reset;
 * its key (list: its prefix; "" for none) is copied into key[0..keylen) when key is not NULL. */
fault_op_t storage_faults_struck(storage_faults_t *f, char *key, size_t keylen);

/* Calls of op (an operation, FAULT_ANY or FAULT_WRITE) since the wrap or the last reset,
 * those that failed included. */
int storage_faults_calls(storage_faults_t *f, fault_op_t op);

/* Forgets the counts, the fault set, what it struck and a death. */
void storage_faults_reset(storage_faults_t *f);

/* What me_storage_min_part_size() answers from now on (the wrapped backend's at first): a
 * caller behaves on a fast local backend as it would with S3's big parts. */
void storage_faults_set_min_part_size(storage_faults_t *f, uint64_t size);

#endif
