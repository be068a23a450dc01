/* storage_file.c: the file backend: each object a file under storage.root, written durably. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>
#include "server/log.h"
#include "server/storage_file.h"

#define PART_HDR 32            /* a part file starts with the MD5 of its bytes, in hex */
#define ID_LEN 32              /* upload ids and temporary names: 128 random bits in hex */
#define TMP_MAX_AGE (24 * 3600) /* seconds before open() removes a temporary file left by a crash */
#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_CLOEXEC)
#define PLACE_TRIES 8          /* see commit_file() */

struct me_storage_backend {
    int root, tmp, mp; /* directories: storage.root, <root>/.tmp, <root>/.multipart */
};

/* Every call that makes data durable or changes a directory, so that the unit test can
 * watch their order and make them fail. */
static struct {
    int (*openat)(int dirfd, const char *path, int flags, ...);
    ssize_t (*write)(int fd, const void *buf, size_t len);
    ssize_t (*copy_file_range)(int in, off_t *in_off, int out, off_t *out_off, size_t len, unsigned flags);
    int (*fdatasync)(int fd);
    int (*fsync)(int fd);
    int (*renameat)(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
    int (*mkdirat)(int dirfd, const char *path, mode_t mode);
    int (*unlinkat)(int dirfd, const char *path, int flags);
    int (*close)(int fd);
} sys = {openat, write, copy_file_range, fdatasync, fsync, renameat, mkdirat, unlinkat, close};

/* Logs a failed system call (errno) on what (a key, never its bytes); returns ME_EIO. */
static int io_error(const char *op, const char *what)
{
    me_log_error(NULL, "storage.file: cannot %s %s: %s", op, what, strerrordesc_np(errno));
    return ME_EIO;
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

/* Writes a temporary file with fill(), syncs it, renames it to base/path (making path's
 * directories), then syncs the directory: readers see the old file or the new one, and a 0
 * return means both the bytes and the name survive a crash. On failure nothing new is left
 * and fill()'s error or ME_EIO is returned. what names the object in logs. */
static int commit_file(me_storage_backend_t *be, int base, const char *path, const char *what,
                       int (*fill)(int fd, void *arg, const char *what), void *arg)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    char tmp[ID_LEN + 1];
    int fd, dir = -1, ret;

    if (random_hex(tmp) != 0 || (fd = sys.openat(be->tmp, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0)
        return io_error("create a temporary file for", what);
    if ((ret = fill(fd, arg, what)) != 0)
        goto fail;
    ret = ME_EIO;
    if (sys.fdatasync(fd) != 0) {
        io_error("sync", what);
        goto fail;
    }
    if (sys.close(fd) != 0) {
        fd = -1;
        io_error("close", what);
        goto fail;
    }
    fd = -1;
    /* ENOENT: a delete removed a directory we had just made or opened (it removes the ones it
     * empties); make it again */
    for (int tries = 0;; tries++) {
        if ((dir = open_dirs(base, path, slash ? (size_t)(slash - path) : 0)) >= 0 &&
            sys.renameat(be->tmp, tmp, dir, name) == 0)
            break;
        if (errno != ENOENT || tries == PLACE_TRIES - 1) {
            io_error("move into place", what);
            goto fail;
        }
        if (dir >= 0 && dir != base)
            sys.close(dir);
        dir = -1;
    }
    if (sys.fsync(dir) != 0)
        ret = io_error("sync the directory of", what); /* in place, maybe not durable */
    else
        ret = 0;
    if (dir != base)
        sys.close(dir);
    return ret;
fail:
    if (fd >= 0)
        sys.close(fd);
    if (dir >= 0 && dir != base)
        sys.close(dir);
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
    size_t len = slash ? (size_t)(slash - key) : 0;
    int dir = be->root, ret = 0;

    memcpy(path, key, len);
    path[len] = '\0';
    if (len > 0 && (dir = sys.openat(be->root, path, DIR_FLAGS)) < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : io_error("open the directory of", key);
    if (sys.unlinkat(dir, slash ? slash + 1 : key, 0) == 0) {
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
    size_t klen = slash ? (size_t)(slash - prefix) + 1 : 0;
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
    int dir, ret;

    if (idlen <= ID_LEN)
        return ME_EINVAL;
    if (random_hex(id) != 0 || sys.mkdirat(be->mp, id, 0750) != 0)
        return io_error("begin an upload of", key);
    if (sys.fsync(be->mp) != 0 || (dir = sys.openat(be->mp, id, DIR_FLAGS)) < 0) {
        ret = io_error("begin an upload of", key);
    } else {
        ret = commit_bytes(be, dir, "key", key, &v, 1);
        sys.close(dir);
    }
    if (ret != 0) {
        (void)remove_upload(be, id);
        return ret;
    }
    memcpy(upload_id, id, sizeof(id));
    return 0;
}

static int file_part_put(me_storage_backend_t *be, const char *key, const char *upload_id, int number,
                         const void *data, size_t len, me_storage_part_t *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    char name[8], what[ME_STORAGE_KEY_MAX + 32], etag[PART_HDR + 1];
    int dir, ret;

    if ((ret = open_upload(be, key, upload_id, &dir)) != 0)
        return ret;
    snprintf(name, sizeof(name), "%05d", number);
    snprintf(what, sizeof(what), "part %d of %s", number, key);
    if (!EVP_Digest(data, len, md, NULL, EVP_md5(), NULL)) {
        errno = EIO;
        ret = io_error("hash", what);
    } else {
        hex(md, 16, etag);
        struct iovec v[2] = {{etag, PART_HDR}, {(void *)data, len}};
        ret = commit_bytes(be, dir, name, what, v, 2);
    }
    sys.close(dir);
    if (ret == 0) {
        out->number = number;
        out->size = len;
        memcpy(out->etag, etag, sizeof(etag));
    }
    return ret;
}

/* Copies len bytes of in from off to out's position with read and write. */
static int copy_slow(int in, off_t off, uint64_t len, int out, const char *what)
{
    enum { CHUNK = 1 << 18 };
    char *buf = malloc(CHUNK);
    int ret = 0;

    if (buf == NULL) {
        errno = ENOMEM;
        return io_error("copy a part into", what);
    }
    while (len > 0 && ret == 0) {
        ssize_t n = pread(in, buf, len < CHUNK ? (size_t)len : CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; /* the part shrank */
            ret = io_error("read a part of", what);
        } else {
            ret = write_all(out, buf, (size_t)n, what);
            off += n;
            len -= (uint64_t)n;
        }
    }
    free(buf);
    return ret;
}

/* Copies len bytes of in from off to out's position, in the kernel where it can. */
static int copy_range(int in, off_t off, uint64_t len, int out, const char *what)
{
    while (len > 0) {
        ssize_t n = sys.copy_file_range(in, &off, out, NULL, len < (1u << 30) ? (size_t)len : (1u << 30), 0);
        if (n > 0)
            len -= (uint64_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == ENOSYS || errno == EXDEV || errno == EOPNOTSUPP || errno == EINVAL))
            return copy_slow(in, off, len, out, what); /* not between these files */
        else {
            if (n == 0)
                errno = EIO; /* the part shrank */
            return io_error("write", what);
        }
    }
    return 0;
}

typedef struct {
    int dir;
    const me_storage_part_t *parts;
    int nparts;
} concat_t;

/* Appends the listed parts to fd; ME_ECONFLICT when one is missing or differs. */
static int fill_parts(int fd, void *arg, const char *what)
{
    const concat_t *c = arg;
    int ret = 0;

    for (int i = 0; i < c->nparts && ret == 0; i++) {
        const me_storage_part_t *p = &c->parts[i];
        char name[8], etag[PART_HDR];
        struct stat sb;
        int in;
        snprintf(name, sizeof(name), "%05d", p->number);
        if ((in = sys.openat(c->dir, name, O_RDONLY | O_CLOEXEC)) < 0)
            return errno == ENOENT ? ME_ECONFLICT : io_error("open a part of", what);
        if (fstat(in, &sb) != 0)
            ret = io_error("stat a part of", what);
        else if ((uint64_t)sb.st_size != PART_HDR + p->size || pread(in, etag, PART_HDR, 0) != PART_HDR ||
                 strnlen(p->etag, sizeof(p->etag)) != PART_HDR || memcmp(etag, p->etag, PART_HDR) != 0)
            ret = ME_ECONFLICT;
        else
            ret = copy_range(in, PART_HDR, p->size, fd, what);
        sys.close(in);
    }
    return ret;
}

static int file_multipart_complete(me_storage_backend_t *be, const char *key, const char *upload_id,
                                   const me_storage_part_t *parts, int nparts)
{
    concat_t c = {.parts = parts, .nparts = nparts};
    int ret;

    if ((ret = open_upload(be, key, upload_id, &c.dir)) != 0)
        return ret;
    ret = commit_file(be, be->root, key, key, fill_parts, &c);
    sys.close(c.dir);
    if (ret == 0)
        (void)remove_upload(be, upload_id); /* the object is whole: leftovers only cost space */
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
    const char *root = cfg->storage_root ? cfg->storage_root : "";
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
    .name = "file",
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
};
