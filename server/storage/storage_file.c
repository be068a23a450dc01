/* storage_file.c: the file backend: each object a file under storage.root, written durably. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "server/core/log.h"
#include "server/storage/storage_file.h"
#include "server/storage/storage_config.h"

#define ETAG_LEN 32            /* a part's etag: random hex, new at every put (hashing the bytes cost CPU for nothing) */
#define DATA_NAME "data"       /* an upload's bytes, every part at its offset */
#define RECORD_MAX 80          /* "<etag> <offset> <size>\n" */
#define ID_LEN 32              /* upload ids and temporary names: 128 random bits in hex */
#define TMP_MAX_AGE (24 * 3600) /* seconds before open() removes a temporary file left by a crash */
#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_CLOEXEC)
#define PLACE_TRIES 8          /* see place() */
#define PARTS_MAX 10000        /* part numbers are 1..PARTS_MAX (storage.c checks) */

struct me_storage_backend {
    int root, tmp, mp; /* directories: storage.root, <root>/.tmp, <root>/.multipart */
};

/* Every call that makes data durable or changes a directory, so that the unit test can
 * watch their order and make them fail. */
static struct {
    int (*openat)(int dirfd, const char *path, int flags, ...);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
    int (*ftruncate)(int fd, off_t len);
    int (*fdatasync)(int fd);
    int (*fsync)(int fd);
    int (*renameat)(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
    int (*mkdirat)(int dirfd, const char *path, mode_t mode);
    int (*unlinkat)(int dirfd, const char *path, int flags);
    int (*close)(int fd);
} sys = {openat, write, pwrite, ftruncate, fdatasync, fsync, renameat, mkdirat, unlinkat, close};

/* Logs a failed system call (errno) on what (a key, never its bytes); returns ME_ENOSPACE
 * when the filesystem is full (the caller answers "retry later", not a failure), else ME_EIO. */
static int io_error(const char *op, const char *what)
{
    int full = errno == ENOSPC || errno == EDQUOT;
    me_log_error(NULL, "storage.file: cannot %s %s: %s", op, what, strerrordesc_np(errno));
    return full ? ME_ENOSPACE : ME_EIO;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

static int random_hex(char out[ID_LEN + 1])
{
    unsigned char r[ID_LEN / 2];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -1;
    hex(r, sizeof(r), out);
    return 0;
}

static int is_upload_id(const char *id)
{
    size_t n = 0;
    while (n <= ID_LEN && ((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
        n++;
    return n == ID_LEN && id[n] == '\0';
}

/* Fills out from a file's facts; the etag changes whenever the file is replaced. */
static int stat_out(const struct stat *sb, me_storage_stat_t *out)
{
    int64_t facts[4] = {sb->st_size, sb->st_mtim.tv_sec, sb->st_mtim.tv_nsec, (int64_t)sb->st_ino};
    unsigned char md[EVP_MAX_MD_SIZE];

    if (!EVP_Digest(facts, sizeof(facts), md, NULL, EVP_sha256(), NULL))
        return -1;
    out->size = (uint64_t)sb->st_size;
    out->mtime = sb->st_mtim.tv_sec;
    hex(md, 16, out->etag);
    return 0;
}

static void close_keep_errno(int fd)
{
    int e = errno;
    sys.close(fd);
    errno = e;
}

/* Opens directory path[0..len) under base, creating what is missing (mode 0750) and syncing
 * each directory that gained an entry. Returns a new fd, base itself when there is nothing
 * to open, or -1 with errno set. */
static int open_dirs(int base, const char *path, size_t len)
{
    char name[NAME_MAX + 1];
    int fd = base;

    for (size_t i = 0, n; i < len; i += n + 1) {
        for (n = 0; i + n < len && path[i + n] != '/'; n++)
            ;
        if (n == 0)
            continue;
        if (n > NAME_MAX) {
            errno = ENAMETOOLONG;
            goto fail;
        }
        memcpy(name, path + i, n);
        name[n] = '\0';
        int next = sys.openat(fd, name, DIR_FLAGS);
        if (next < 0 && errno == ENOENT) {
            if (sys.mkdirat(fd, name, 0750) == 0) {
                if (sys.fsync(fd) != 0)
                    goto fail;
            } else if (errno != EEXIST) {
                goto fail;
            }
            next = sys.openat(fd, name, DIR_FLAGS);
        }
        if (next < 0)
            goto fail;
        if (fd != base)
            sys.close(fd);
        fd = next;
    }
    return fd;
fail:
    if (fd != base)
        close_keep_errno(fd);
    return -1;
}

static int write_all(int fd, const void *data, size_t len, const char *what)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = sys.write(fd, (const char *)data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            return io_error("write", what);
        }
        done += (size_t)n;
    }
    return 0;
}

/* Renames from (in directory fromdir) to base/path, making path's directories (each synced),
 * then syncs path's directory. 0 or ME_EIO; *placed tells whether the rename happened (when
 * only the sync failed the file is in place, maybe not durably). */
static int place(int base, const char *path, int fromdir, const char *from, const char *what, int *placed)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash != NULL ? slash + 1 : path;
    int dir, ret = 0;

    *placed = 0;
    /* ENOENT: a delete removed a directory we had just made or opened (it removes the ones it
     * empties); make it again */
    for (int tries = 0;; tries++) {
        if ((dir = open_dirs(base, path, slash != NULL ? (size_t)(slash - path) : 0)) >= 0 &&
            sys.renameat(fromdir, from, dir, name) == 0)
            break;
        if (errno != ENOENT || tries == PLACE_TRIES - 1) {
            if (dir >= 0 && dir != base)
                close_keep_errno(dir);
            return io_error("move into place", what);
        }
        if (dir >= 0 && dir != base)
            sys.close(dir);
    }
    *placed = 1;
    if (sys.fsync(dir) != 0)
        ret = io_error("sync the directory of", what);
    if (dir != base)
        sys.close(dir);
    return ret;
}

/* Writes a temporary file with fill(), syncs it, renames it to base/path (making path's
 * directories), then syncs the directory: readers see the old file or the new one, and a 0
 * return means both the bytes and the name survive a crash. On failure nothing new is left
 * and fill()'s error or ME_EIO is returned. what names the object in logs. */
static int commit_file(me_storage_backend_t *be, int base, const char *path, const char *what,
                       int (*fill)(int fd, void *arg, const char *what), void *arg)
{
    char tmp[ID_LEN + 1];
    int fd, ret, placed;

    if (random_hex(tmp) != 0 || (fd = sys.openat(be->tmp, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0)
        return io_error("create a temporary file for", what);
    if ((ret = fill(fd, arg, what)) != 0)
        goto fail;
    if (sys.fdatasync(fd) != 0) {
        ret = io_error("sync", what);
        goto fail;
    }
    if (sys.close(fd) != 0) {
        fd = -1;
        ret = io_error("close", what);
        goto fail;
    }
    fd = -1;
    if ((ret = place(base, path, be->tmp, tmp, what, &placed)) == 0 || placed)
        return ret; /* ME_EIO when placed: in place, maybe not durable */
fail:
    if (fd >= 0)
        sys.close(fd);
    sys.unlinkat(be->tmp, tmp, 0);
    return ret;
}

typedef struct {
    const struct iovec *iov;
    int n;
} bytes_t;

static int fill_bytes(int fd, void *arg, const char *what)
{
    const bytes_t *b = arg;
    int ret = 0;
    for (int i = 0; i < b->n && ret == 0; i++)
        ret = write_all(fd, b->iov[i].iov_base, b->iov[i].iov_len, what);
    return ret;
}

static int commit_bytes(me_storage_backend_t *be, int base, const char *path, const char *what,
                        const struct iovec *iov, int n)
{
    bytes_t b = {iov, n};
    return commit_file(be, base, path, what, fill_bytes, &b);
}

static int file_put(me_storage_backend_t *be, const char *key, const void *data, size_t len)
{
    struct iovec v = {(void *)data, len};
    return commit_bytes(be, be->root, key, key, &v, 1);
}

static int file_get(me_storage_backend_t *be, const char *key, uint64_t offset, size_t len, void *buf, size_t *got)
{
    struct stat sb;
    int fd, ret = 0;

    *got = 0;
    if ((fd = sys.openat(be->root, key, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT || errno == ENOTDIR ? ME_ENOTFOUND : io_error("open", key);
    if (fstat(fd, &sb) != 0)
        ret = io_error("stat", key);
    else if (!S_ISREG(sb.st_mode))
        ret = ME_ENOTFOUND;
    else if (offset > (uint64_t)sb.st_size)
        ret = ME_EINVAL;
    while (ret == 0 && *got < len) {
        ssize_t n = pread(fd, (char *)buf + *got, len - *got, (off_t)(offset + *got));
        if (n < 0 && errno != EINTR)
            ret = io_error("read", key);
        else if (n == 0)
            break;
        else if (n > 0)
            *got += (size_t)n;
    }
    sys.close(fd);
    return ret;
}

static int file_head(me_storage_backend_t *be, const char *key, me_storage_stat_t *out)
{
    struct stat sb;

    if (fstatat(be->root, key, &sb, 0) != 0)
        return errno == ENOENT || errno == ENOTDIR ? ME_ENOTFOUND : io_error("stat", key);
    if (!S_ISREG(sb.st_mode))
        return ME_ENOTFOUND;
    return stat_out(&sb, out) == 0 ? 0 : ME_EIO;
}

static int file_del(me_storage_backend_t *be, const char *key)
{
    char path[ME_STORAGE_KEY_MAX + 1];
    const char *slash = strrchr(key, '/');
    size_t len = slash != NULL ? (size_t)(slash - key) : 0;
    int dir = be->root, ret = 0;

    memcpy(path, key, len);
    path[len] = '\0';
    if (len > 0 && (dir = sys.openat(be->root, path, DIR_FLAGS)) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : io_error("open the directory of", key);
    if (sys.unlinkat(dir, slash != NULL ? slash + 1 : key, 0) == 0) {
        if (sys.fsync(dir) != 0) /* so that a deleted photo stays deleted after a crash */
            ret = io_error("sync the directory of", key);
    } else if (errno != ENOENT && errno != EISDIR) { /* a directory is not an object */
        ret = io_error("remove", key);
    }
    if (dir != be->root)
        sys.close(dir);
    /* best effort: remove the directories this may have emptied; a put that loses its
     * directory to this makes it again */
    while (ret == 0 && len > 0 && sys.unlinkat(be->root, path, AT_REMOVEDIR) == 0) {
        while (len > 0 && path[len] != '/')
            len--;
        path[len] = '\0';
    }
    return ret;
}

typedef struct {
    const char *prefix;
    size_t plen;
    char key[ME_STORAGE_KEY_MAX + 1];
    int (*cb)(const char *key, const me_storage_stat_t *stat, void *arg);
    void *arg;
} walk_t;

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Calls w->cb for the objects under directory fd (which it closes), whose key starts with
 * w->key[0..klen). Directories sort as "name/", so that a depth-first walk of sorted
 * entries yields keys in byte order ("a-b" < "a.b" < "a/b" < "a0"). */
static int walk(walk_t *w, int fd, size_t klen)
{
    DIR *d = fdopendir(fd);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int ret = 0;

    if (d == NULL) {
        ret = io_error("list", w->prefix);
        sys.close(fd);
        return ret;
    }
    for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
        struct stat sb;
        size_t len = strlen(de->d_name);
        int isdir = de->d_type == DT_DIR;
        if (!me_storage_key_valid(de->d_name)) /* also our own ".tmp" and ".multipart" */
            continue;
        if (de->d_type == DT_UNKNOWN || de->d_type == DT_LNK)
            isdir = fstatat(fd, de->d_name, &sb, 0) == 0 && S_ISDIR(sb.st_mode);
        if (klen + len + isdir > ME_STORAGE_KEY_MAX)
            continue;
        /* skip entries whose keys cannot start with the prefix */
        memcpy(w->key + klen, de->d_name, len);
        w->key[klen + len] = '/';
        size_t have = klen + len + isdir;
        if (strncmp(w->key, w->prefix, have < w->plen ? have : w->plen) != 0 || (!isdir && have < w->plen))
            continue;
        if (n == cap) {
            char **more = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof(*names));
            if (more == NULL)
                goto nomem;
            names = more;
        }
        if ((names[n] = malloc(len + 2)) == NULL)
            goto nomem;
        memcpy(names[n], de->d_name, len);
        memcpy(names[n++] + len, isdir ? "/" : "", 1 + isdir);
    }
    if (errno != 0)
        ret = io_error("list", w->prefix);
    if (n > 1)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n && ret == 0; i++) {
        size_t len = strlen(names[i]);
        struct stat sb;
        me_storage_stat_t st;
        memcpy(w->key + klen, names[i], len + 1);
        if (names[i][len - 1] == '/') {
            int sub = sys.openat(fd, names[i], DIR_FLAGS);
            if (sub >= 0)
                ret = walk(w, sub, klen + len);
            else if (errno != ENOENT) /* gone since readdir: deleted meanwhile */
                ret = io_error("list", w->key);
        } else if (fstatat(fd, names[i], &sb, 0) == 0) {
            if (S_ISREG(sb.st_mode))
                ret = stat_out(&sb, &st) != 0 ? ME_EIO : w->cb(w->key, &st, w->arg);
        } else if (errno != ENOENT) {
            ret = io_error("stat", w->key);
        }
    }
    goto out;
nomem:
    errno = ENOMEM;
    ret = io_error("list", w->prefix);
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return ret;
}

static int file_list(me_storage_backend_t *be, const char *prefix,
                     int (*cb)(const char *key, const me_storage_stat_t *stat, void *arg), void *arg)
{
    walk_t w = {.prefix = prefix, .plen = strlen(prefix), .cb = cb, .arg = arg};
    const char *slash = strrchr(prefix, '/');
    size_t klen = slash != NULL ? (size_t)(slash - prefix) + 1 : 0;
    int fd;

    /* start in the deepest directory the prefix names: "uploads/ab" walks uploads/ */
    memcpy(w.key, prefix, klen);
    w.key[klen] = '\0';
    if ((fd = sys.openat(be->root, klen ? w.key : ".", DIR_FLAGS)) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : io_error("list", prefix);
    return walk(&w, fd, klen);
}

/* Removes .multipart/<id> and what it holds. 0 or ME_EIO. */
static int remove_upload(me_storage_backend_t *be, const char *id)
{
    int fd = sys.openat(be->mp, id, DIR_FLAGS);
    struct dirent *de;
    DIR *d;

    if (fd < 0)
        return errno == ENOENT ? 0 : io_error("open upload", id);
    if ((d = fdopendir(fd)) == NULL) {
        close_keep_errno(fd);
        return io_error("open upload", id);
    }
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            sys.unlinkat(fd, de->d_name, 0);
    closedir(d);
    if ((sys.unlinkat(be->mp, id, AT_REMOVEDIR) != 0 && errno != ENOENT) || sys.fsync(be->mp) != 0)
        return io_error("remove upload", id);
    return 0;
}

/* Opens the directory of upload id, which must have been begun for key. 0 with *dir set,
 * ME_EINVAL (not one of our ids), ME_ENOTFOUND or ME_EIO. */
static int open_upload(me_storage_backend_t *be, const char *key, const char *id, int *dir)
{
    char saved[ME_STORAGE_KEY_MAX + 1];
    ssize_t n = -1;
    int fd, kf;

    if (!is_upload_id(id))
        return ME_EINVAL;
    if ((fd = sys.openat(be->mp, id, DIR_FLAGS)) < 0)
        return errno == ENOENT ? ME_ENOTFOUND : io_error("open upload", id);
    if ((kf = sys.openat(fd, "key", O_RDONLY | O_CLOEXEC)) >= 0) {
        n = pread(kf, saved, sizeof(saved), 0);
        close_keep_errno(kf);
    }
    if (n < 0 && errno != ENOENT) {
        close_keep_errno(fd);
        return io_error("read upload", id);
    }
    /* no key file (begin() did not finish) or another key's upload */
    if (n != (ssize_t)strlen(key) || memcmp(saved, key, (size_t)n) != 0) {
        sys.close(fd);
        return ME_ENOTFOUND;
    }
    *dir = fd;
    return 0;
}

static int file_multipart_begin(me_storage_backend_t *be, const char *key, char *upload_id, size_t idlen)
{
    char id[ID_LEN + 1];
    struct iovec v = {(void *)key, strlen(key)};
    int dir, fd, ret;

    if (idlen <= ID_LEN)
        return ME_EINVAL;
    if (random_hex(id) != 0 || sys.mkdirat(be->mp, id, 0750) != 0)
        return io_error("begin an upload of", key);
    if (sys.fsync(be->mp) != 0 || (dir = sys.openat(be->mp, id, DIR_FLAGS)) < 0) {
        ret = io_error("begin an upload of", key);
    } else {
        /* the data file first: the key file's directory sync makes both names durable */
        if ((fd = sys.openat(dir, DATA_NAME, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
            ret = io_error("begin an upload of", key);
        } else {
            sys.close(fd);
            ret = commit_bytes(be, dir, "key", key, &v, 1);
        }
        sys.close(dir);
    }
    if (ret != 0) {
        (void)remove_upload(be, id);
        return ret;
    }
    memcpy(upload_id, id, sizeof(id));
    return 0;
}

/* A part's record, "<etag> <offset> <size>\n", in .multipart/<id>/<number>.rec */
typedef struct {
    char etag[ETAG_LEN + 1];
    uint64_t offset, size;
} record_t;

static void record_name(char name[16], int number)
{
    snprintf(name, 16, "%05d.rec", number);
}

/* Reads the record of part number. 0, ME_ECONFLICT (none, or not one we wrote) or ME_EIO. */
static int read_record(int dir, int number, record_t *r, const char *what)
{
    char name[16], buf[RECORD_MAX + 1], *end;
    ssize_t n;
    int fd;

    record_name(name, number);
    if ((fd = sys.openat(dir, name, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? ME_ECONFLICT : io_error("open a part record of", what);
    while ((n = pread(fd, buf, RECORD_MAX, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0) {
        close_keep_errno(fd);
        return io_error("read a part record of", what);
    }
    sys.close(fd);
    buf[n] = '\0';
    if (n < ETAG_LEN + 5 || buf[ETAG_LEN] != ' ' || buf[n - 1] != '\n')
        return ME_ECONFLICT;
    memcpy(r->etag, buf, ETAG_LEN);
    r->etag[ETAG_LEN] = '\0';
    errno = 0;
    r->offset = strtoull(buf + ETAG_LEN + 1, &end, 10);
    if (errno != 0 || *end != ' ')
        return ME_ECONFLICT;
    r->size = strtoull(end + 1, &end, 10);
    if (errno != 0 || *end != '\n' || r->offset > (uint64_t)INT64_MAX - r->size)
        return ME_ECONFLICT;
    return 0;
}

/* Opens the data file of an upload whose directory is dir and locks it against the other
 * part puts and completions of the upload (threads or processes). 0 with *fd set,
 * ME_ENOTFOUND (completed meanwhile, or not an upload of ours) or ME_EIO. */
static int open_data(int dir, int *fd, const char *what)
{
    struct stat a, b;
    int f = sys.openat(dir, DATA_NAME, O_RDWR | O_CLOEXEC);

    if (f < 0)
        return errno == ENOENT ? ME_ENOTFOUND : io_error("open the data of", what);
    while (flock(f, LOCK_EX) != 0) {
        if (errno != EINTR) {
            close_keep_errno(f);
            return io_error("lock the data of", what);
        }
    }
    /* a completion may have moved it to its key while we waited */
    int ret = 0;
    if (fstat(f, &a) != 0)
        ret = io_error("open the data of", what);
    else if (fstatat(dir, DATA_NAME, &b, 0) != 0)
        ret = errno == ENOENT ? ME_ENOTFOUND : io_error("open the data of", what);
    else if (a.st_ino != b.st_ino || a.st_dev != b.st_dev)
        ret = ME_ENOTFOUND;
    if (ret != 0) {
        sys.close(f);
        return ret;
    }
    *fd = f;
    return 0;
}

/* Removes the records of part number and the ones after it (highest first, so that the
 * records left are always parts 1..k), then syncs dir when it removed any. 0 or ME_EIO. */
static int drop_records(int dir, int number, const char *what)
{
    char name[16];
    struct stat sb;
    int last = number - 1;

    for (;; last++) {
        record_name(name, last + 1);
        if (last + 1 > PARTS_MAX || fstatat(dir, name, &sb, 0) != 0)
            break;
    }
    if (last + 1 <= PARTS_MAX && errno != ENOENT)
        return io_error("look for the part records of", what);
    if (last < number)
        return 0; /* the usual case: a new part */
    for (int k = last; k >= number; k--) {
        record_name(name, k);
        if (sys.unlinkat(dir, name, 0) != 0 && errno != ENOENT)
            return io_error("remove a part record of", what);
    }
    return sys.fsync(dir) == 0 ? 0 : io_error("sync the parts of", what);
}

/* Copies len bytes of src from src_off to fd at off: in the kernel (copy_file_range: no copy
 * through user space, a reflink where the filesystem shares extents), else read and written. */
static int copy_range(int src, uint64_t src_off, int fd, uint64_t off, uint64_t len, const char *what)
{
    char buf[64 * 1024];
    while (len > 0) {
        loff_t in = (loff_t)src_off, outo = (loff_t)off;
        ssize_t n = copy_file_range(src, &in, fd, &outo, len, 0);
        if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP)) {
            n = pread(src, buf, len < sizeof(buf) ? (size_t)len : sizeof(buf), (off_t)src_off);
            if (n > 0 && sys.pwrite(fd, buf, (size_t)n, (off_t)off) != n)
                n = -1;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* src shrank under us */
            return io_error("copy into", what);
        }
        src_off += (uint64_t)n, off += (uint64_t)n, len -= (uint64_t)n;
    }
    return 0;
}

/* A part from data (src < 0) or from src's bytes at src_off (part_copy). */
static int part_write(me_storage_backend_t *be, const char *key, const char *upload_id, int number, const void *data,
                      int src, uint64_t src_off, size_t len, me_storage_part_t *out)
{
    char name[16], what[ME_STORAGE_KEY_MAX + 32], etag[ETAG_LEN + 1], rec[RECORD_MAX + 1];
    record_t prev = {.offset = 0, .size = 0};
    int dir, fd = -1, ret;

    if ((ret = open_upload(be, key, upload_id, &dir)) != 0)
        return ret;
    snprintf(what, sizeof(what), "part %d of %s", number, key);
    if (random_hex(etag) != 0) {
        errno = EIO;
        ret = io_error("make an etag for", what);
        goto out;
    }
    if ((ret = open_data(dir, &fd, what)) != 0)
        goto out;
    /* the part goes right after the previous one: parts come in order, a gap is a conflict */
    if (number > 1 && (ret = read_record(dir, number - 1, &prev, what)) != 0)
        goto out;
    uint64_t off = prev.offset + prev.size;
    if (len > (uint64_t)INT64_MAX - off) {
        errno = EFBIG;
        ret = io_error("write", what);
        goto out;
    }
    /* a part put again: its record and the later ones go before their bytes are overwritten,
     * so that no record ever counts bytes that are not its part's */
    if ((ret = drop_records(dir, number, what)) != 0)
        goto out;
    if (src >= 0 && (ret = copy_range(src, src_off, fd, off, len, what)) != 0)
        goto out;
    for (size_t done = 0; src < 0 && done < len;) {
        ssize_t n = sys.pwrite(fd, (const char *)data + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO;
            ret = io_error("write", what);
            goto out;
        }
        done += (size_t)n;
    }
    if (sys.fdatasync(fd) != 0) {
        ret = io_error("sync", what);
        goto out;
    }
    /* the bytes are durable: now the record that counts them */
    int rlen = snprintf(rec, sizeof(rec), "%s %" PRIu64 " %zu\n", etag, off, len);
    struct iovec v = {rec, (size_t)rlen};
    record_name(name, number);
    if ((ret = commit_bytes(be, dir, name, what, &v, 1)) != 0)
        goto out;
    out->number = number;
    out->size = len;
    memcpy(out->etag, etag, sizeof(etag));
out:
    if (fd >= 0)
        sys.close(fd); /* and unlocks */
    sys.close(dir);
    return ret;
}

static int file_part_put(me_storage_backend_t *be, const char *key, const char *upload_id, int number, const void *data,
                         size_t len, me_storage_part_t *out)
{
    return part_write(be, key, upload_id, number, data, -1, 0, len, out);
}

static int file_part_copy(me_storage_backend_t *be, const char *key, const char *upload_id, int number, const char *src,
                          uint64_t offset, uint64_t len, me_storage_part_t *out)
{
    struct stat sb;
    int fd = sys.openat(be->root, src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), ret;

    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? ME_ENOTFOUND : io_error("open", src);
    if (fstat(fd, &sb) != 0) {
        ret = io_error("stat", src);
    } else if (!S_ISREG(sb.st_mode)) {
        ret = ME_ENOTFOUND; /* the beginning of other keys, not an object */
    } else if (offset + len > (uint64_t)sb.st_size || len > SIZE_MAX) {
        ret = ME_EINVAL;
    } else {
        ret = part_write(be, key, upload_id, number, NULL, fd, offset, (size_t)len, out);
    }
    sys.close(fd);
    return ret;
}

static int file_multipart_complete(me_storage_backend_t *be, const char *key, const char *upload_id,
                                   const me_storage_part_t *parts, int nparts)
{
    uint64_t total = 0;
    int dir, fd = -1, ret, placed;

    if ((ret = open_upload(be, key, upload_id, &dir)) != 0)
        return ret;
    if ((ret = open_data(dir, &fd, key)) != 0)
        goto out;
    /* the listed parts are parts 1..nparts exactly as recorded, each right after the last */
    for (int i = 0; i < nparts; i++) {
        const me_storage_part_t *p = &parts[i];
        record_t r;
        if (p->number != i + 1) {
            ret = ME_ECONFLICT;
            goto out;
        }
        if ((ret = read_record(dir, p->number, &r, key)) != 0)
            goto out;
        if (r.offset != total || r.size != p->size || strnlen(p->etag, sizeof(p->etag)) != ETAG_LEN ||
            memcmp(r.etag, p->etag, ETAG_LEN) != 0) {
            ret = ME_ECONFLICT;
            goto out;
        }
        total += r.size;
    }
    /* drop what a longer attempt at a part left past the end, then move the file: no byte copied */
    if (sys.ftruncate(fd, (off_t)total) != 0) {
        ret = io_error("truncate", key);
        goto out;
    }
    if (sys.fdatasync(fd) != 0) {
        ret = io_error("sync", key);
        goto out;
    }
    ret = place(be->root, key, dir, DATA_NAME, key, &placed);
out:
    if (fd >= 0)
        sys.close(fd); /* and unlocks: a part put waiting for it finds the data gone */
    sys.close(dir);
    if (ret == 0)
        (void)remove_upload(be, upload_id); /* the object is whole: leftovers only cost space */
    return ret;
}

/* The records are parts 1..k (drop_records() keeps them so): read them in order without the
 * data file's lock, which a put holds for as long as its bytes take, and which a process frozen
 * or stuck in a put would hold for ever (a HEAD must not wait on it). A record is whole once it
 * exists and counts bytes already durable; one a put drops while we read is that of a part put
 * again, at the same offset of the upload, so with the same bytes. */
static int file_part_list(me_storage_backend_t *be, const char *key, const char *upload_id, int after,
                          int (*cb)(const me_storage_part_t *part, void *arg), void *arg)
{
    int dir, ret;

    if ((ret = open_upload(be, key, upload_id, &dir)) != 0)
        return ret;
    for (int number = after + 1; number <= PARTS_MAX && ret == 0; number++) {
        me_storage_part_t p = {.number = number};
        record_t r;
        if ((ret = read_record(dir, number, &r, key)) != 0) {
            ret = ret == ME_ECONFLICT ? 0 : ret; /* the last one was number - 1 */
            break;
        }
        p.size = r.size;
        memcpy(p.etag, r.etag, sizeof(r.etag));
        ret = cb(&p, arg);
    }
    sys.close(dir);
    return ret;
}

static int file_multipart_abort(me_storage_backend_t *be, const char *key, const char *upload_id)
{
    int dir, ret = open_upload(be, key, upload_id, &dir);

    if (ret != 0)
        return ret == ME_ENOTFOUND ? 0 : ret;
    sys.close(dir);
    return remove_upload(be, upload_id);
}

/* Removes temporary files that a crash left behind (old enough not to be another process's). */
static void sweep_tmp(me_storage_backend_t *be)
{
    int fd = sys.openat(be->tmp, ".", DIR_FLAGS);
    time_t now = time(NULL);
    struct dirent *de;
    struct stat sb;
    DIR *d;

    if (fd < 0 || (d = fdopendir(fd)) == NULL) {
        if (fd >= 0)
            sys.close(fd);
        return;
    }
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && fstatat(fd, de->d_name, &sb, 0) == 0 && sb.st_mtime < now - TMP_MAX_AGE)
            sys.unlinkat(fd, de->d_name, 0);
    closedir(d);
}

static void file_close(me_storage_backend_t *be)
{
    if (be == NULL)
        return;
    if (be->mp >= 0)
        sys.close(be->mp);
    if (be->tmp >= 0)
        sys.close(be->tmp);
    if (be->root >= 0)
        sys.close(be->root);
    free(be);
}

static me_storage_backend_t *file_open(const me_config_t *cfg, char *err, size_t errlen)
{
    const char *configured = me_storage_settings(cfg)->root, *root = configured != NULL ? configured : "";
    me_storage_backend_t *be;
    int start;

    if (root[0] == '\0') {
        snprintf(err, errlen, "storage.root: must not be empty");
        return NULL;
    }
    if ((be = malloc(sizeof(*be))) == NULL) {
        snprintf(err, errlen, "storage.root: out of memory");
        return NULL;
    }
    *be = (me_storage_backend_t){-1, -1, -1};
    if ((start = sys.openat(AT_FDCWD, root[0] == '/' ? "/" : ".", DIR_FLAGS)) < 0 ||
        (be->root = open_dirs(start, root, strlen(root))) < 0 ||
        (be->tmp = open_dirs(be->root, ".tmp", 4)) < 0 || (be->mp = open_dirs(be->root, ".multipart", 10)) < 0) {
        snprintf(err, errlen, "storage.root: cannot create or open '%s': %s", root, strerrordesc_np(errno));
        if (start >= 0 && start != be->root)
            sys.close(start);
        file_close(be);
        return NULL;
    }
    if (start != be->root)
        sys.close(start);
    sweep_tmp(be);
    return be;
}

const me_storage_ops_t me_storage_file_ops = {
    .min_part_size = 0,
    .open = file_open,
    .close = file_close,
    .put = file_put,
    .get = file_get,
    .head = file_head,
    .del = file_del,
    .list = file_list,
    .multipart_begin = file_multipart_begin,
    .part_put = file_part_put,
    .multipart_complete = file_multipart_complete,
    .multipart_abort = file_multipart_abort,
    .part_copy = file_part_copy,
    .part_list = file_part_list,
};
