/* jobq_backend.h: what a job queue backend implements, behind the me_jobq_*() functions of
 * jobq.h (whose contracts each operation keeps); included by backends only. */
#ifndef ME_JOBQ_BACKEND_H
#define ME_JOBQ_BACKEND_H

#include "server/jobs/jobq.h"

typedef struct {
    /* id is 1 to ME_JOBQ_ID_MAX bytes: me_jobq_push() refuses others before calling */
    int (*push)(me_jobq_t *q, const char *id, int64_t not_before);
    int (*pop)(me_jobq_t *q, char *id);
    void (*done)(me_jobq_t *q, const char *id);
    void (*retry)(me_jobq_t *q, const char *id, int64_t not_before);
    size_t (*length)(me_jobq_t *q);
    void (*close)(me_jobq_t *q);
    void (*free)(me_jobq_t *q); /* q is not NULL */
} me_jobq_ops_t;

/* A backend's queue starts with this, set to its operations. */
struct me_jobq {
    const me_jobq_ops_t *ops;
};

#endif
