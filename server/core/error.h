/* error.h: the error codes of the core, and their one mapping to HTTP status and JSON code. */
#ifndef ME_ERROR_H
#define ME_ERROR_H

#define ME_MUST_CHECK __attribute__((warn_unused_result))

/* Every fallible core function returns 0 or one of these (never a bare -1). */
typedef enum {
    ME_OK = 0,
    ME_EINVAL = -1,               /* malformed input from a client: 400 */
    ME_EUNAUTHORIZED = -2,        /* missing or invalid credentials: 401 */
    ME_ETOKEN_EXPIRED = -3,       /* a token past its exp (or before its nbf): 401 */
    ME_EFORBIDDEN = -4,           /* authenticated, not allowed: 403 */
    ME_ENOTFOUND = -5,            /* no such thing, or not yours: 404 */
    ME_ECONFLICT = -6,            /* state does not allow it: 409 */
    ME_ETOOLARGE = -7,            /* over a configured size: 413 */
    ME_EUNSUPPORTED = -8,         /* a media type or protocol version we do not take: 415 */
    ME_EBUSY = -9,                /* over a capacity cap, retry later: 503 + Retry-After */
    ME_EIO = -10,                 /* storage or system failure: 500 */
    ME_ENOMEM = -11,              /* allocation failed: 500 */
    ME_ECONFIG = -12,             /* invalid configuration: exit 2 */
    ME_EDRAINING = -13,           /* shutting down: 503 */
    ME_EINTERNAL = -14,           /* a bug: 500 */
    ME_EMETHOD = -15,             /* method not allowed on this resource: 405 */
    ME_EOFFSET = -16,             /* an upload's offset is not the one the client sent: 409 */
    ME_ECHECKSUM = -17,           /* the body does not match its checksum: 460 */
    ME_ELOCKED = -18,             /* another request is writing the same upload: 423 */
    ME_EMEDIA = -19,              /* not a photo or video we accept: 415 */
    ME_EVERSION = -20,            /* a protocol version we do not speak: 412 */
    ME_EUPLOAD_SIZE = -21,        /* the upload would exceed its length or the size limit: 413 */
    ME_EORIGIN = -22,             /* a CORS preflight from an origin not in http.cors_origins: 403 */
    ME_EBROWSER_PLAN = -23,       /* an upload from a web browser on a plan that does not allow it: 403 */
    ME_ECONCAT = -24,             /* a final upload's list of partial uploads is not acceptable: 400 */
    ME_EPARTIAL_INCOMPLETE = -25, /* a partial upload named by a final has not all its bytes: 409 */
    ME_EPARTIAL_USED = -26,       /* a partial upload is already part of another final upload: 410 */
    ME_EFINAL = -27,              /* a final upload takes no bytes of its own (tus concatenation): 403 */
    ME_ECORRUPT = -28,            /* a photo or video that is damaged or truncated: 422 */
    ME_ERANGE = -29,              /* a byte range that lies wholly past the end of the object: 416 */
    ME_EVIDEO_TOO_LONG = -30,     /* a video longer than its plan allows: 422 */
    ME_EMONTAGE_PLAN = -31,       /* a montage asked for on a plan that has none: 403 */
    ME_EMEDIA_NOT_READY = -32,    /* media named that are missing, of another album or not ready: 422 */
    ME_ENOSPACE = -33,            /* storage is full (ENOSPC, EDQUOT); nothing acknowledged was lost: 507 */
    ME_ELOCK_UNAVAILABLE = -34,   /* the upload locks' backend (Redis) does not answer: 503 + Retry-After */
} me_err_t;

/* The stable, machine-readable code for an error ("not_found"); never NULL. */
const char *me_err_code(int err);

/* The HTTP status an error maps to (500 for an unknown code). */
int me_err_status(int err);

/* A default human-readable message for an error; never NULL. */
const char *me_err_message(int err);

#endif
