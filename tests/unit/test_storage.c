/* test_storage.c: unit tests of server/storage/storage.c and the file backend in real temporary
 * directories: the contract every backend keeps (storage_conformance.c), and what is the file
 * backend's own: keys as paths, its files, its upload ids and part order, the order of the
 * durable write's system calls, injected failures, concurrency and file descriptors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/storage/storage_file.c"
#include "tests/unit/storage_conformance.h"

#define MIB (1024 * 1024)

static char tmpdir[64];  /* removed after each test */
static char root[128];   /* tmpdir/store/data: made by me_storage_open */
static me_storage_t *st;
static int quiet_fd; /* /dev/null: the failures injected on purpose log errors */

/* ---- the system-call seam: some calls recorded, any made to fail ---- */

typedef struct {
    const char *op;
    ino_t ino; /* of the fd the call works on (for renameat: the destination directory) */
} event_t;

static event_t events[512];
static int nevents, recording;
static int fail_write, fail_fdatasync, fail_ftruncate; /* errno to inject, 0 for none */
static size_t written; /* bytes written through the seam */
static const char *replace_key, *replace_with; /* once: replaced just before it is opened to read */

static void record(const char *op, int fd)
{
    struct stat sb;
    if (recording && nevents < (int)(sizeof(events) / sizeof(events[0])))
        events[nevents++] = (event_t){op, fstat(fd, &sb) == 0 ? sb.st_ino : 0};
}

static int fake_openat(int dirfd, const char *path, int flags, ...)
{
    unsigned mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, unsigned);
        va_end(ap);
    }
    if (replace_key != NULL && strcmp(path, replace_key) == 0 && !(flags & O_DIRECTORY)) {
        const char *with = replace_with;
        replace_key = NULL;
        assert_int_equal(me_storage_put(st, path, with, strlen(with)), 0);
    }
    return openat(dirfd, path, flags, mode);
}

static ssize_t fake_write(int fd, const void *buf, size_t len)
{
    record("write", fd);
    if (fail_write)
        return errno = fail_write, -1;
    ssize_t n = write(fd, buf, len);
    written += n > 0 ? (size_t)n : 0;
    return n;
}

static ssize_t fake_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    record("pwrite", fd);
    if (fail_write)
        return errno = fail_write, -1;
    ssize_t n = pwrite(fd, buf, len, off);
    written += n > 0 ? (size_t)n : 0;
    return n;
}

static int fake_ftruncate(int fd, off_t len)
{
    record("ftruncate", fd);
    if (fail_ftruncate)
        return errno = fail_ftruncate, -1;
    return ftruncate(fd, len);
}

static int fake_fdatasync(int fd)
{
    record("fdatasync", fd);
    if (fail_fdatasync)
        return errno = fail_fdatasync, -1;
    return fdatasync(fd);
}

static int fake_fsync(int fd)
{
    record("fsync", fd);
    return fsync(fd);
}

static int fake_renameat(int olddir, const char *oldpath, int newdir, const char *newpath)
{
    record("renameat", newdir);
    return renameat(olddir, oldpath, newdir, newpath);
}

static int fake_mkdirat(int dirfd, const char *path, mode_t mode)
{
    record("mkdirat", dirfd);
    return mkdirat(dirfd, path, mode);
}

static int fake_unlinkat(int dirfd, const char *path, int flags)
{
    record("unlinkat", dirfd);
    return unlinkat(dirfd, path, flags);
}

/* ---- fixtures and helpers ---- */

static me_storage_t *open_store(const char *backend, const char *dir, char *err, size_t errlen)
{
    me_config_t cfg;
    me_storage_settings_t *ss;
    me_storage_t *store;

    assert_int_equal(me_config_defaults(&cfg), 0);
    ss = me_config_section_mut(&cfg, &me_storage_config_section);
    ss->backend = (char *)backend;
    ss->root = (char *)dir;
    store = me_storage_open(&cfg, err, errlen);
    me_config_free(&cfg); /* the store keeps what it needs */
    return store;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* Resets the seam and makes tmpdir, with root a path below it that nothing made yet. */
static int make_root(void)
{
    sys.openat = fake_openat;
    sys.write = fake_write;
    sys.pwrite = fake_pwrite;
    sys.ftruncate = fake_ftruncate;
    sys.fdatasync = fake_fdatasync;
    sys.fsync = fake_fsync;
    sys.renameat = fake_renameat;
    sys.mkdirat = fake_mkdirat;
    sys.unlinkat = fake_unlinkat;
    fail_write = fail_fdatasync = fail_ftruncate = 0;
    written = 0;
    replace_key = NULL;
    nevents = recording = 0;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_storage.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    snprintf(root, sizeof(root), "%s/store/data", tmpdir);
    return 0;
}

static int setup(void **state)
{
    char err[256];
    if (make_root() != 0)
        return -1;
    if ((st = open_store("file", root, err, sizeof(err))) == NULL) {
        print_error("%s\n", err);
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    me_storage_close(st);
    st = NULL;
    me_log_init(ME_LOG_INFO, 0, quiet_fd);
    return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The conformance cases' file backend: a new root for each, removed after it. */
static me_storage_backend_t *open_file_backend(void *arg)
{
    char err[256];
    me_config_t cfg;
    me_storage_backend_t *be = NULL;

    if (make_root() != 0 || me_config_defaults(&cfg) != 0)
        return NULL;
    ((me_storage_settings_t *)me_config_section_mut(&cfg, &me_storage_config_section))->root = root;
    if ((be = me_storage_file_ops.open(&cfg, err, sizeof(err))) == NULL) {
        print_error("%s\n", err);
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    me_config_free(&cfg); /* the backend keeps what it needs */
    return be;
}

static void remove_file_backend(void *arg)
{
    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const storage_conformance_backend_t file_backend = {&me_storage_file_ops, open_file_backend,
                                                           remove_file_backend, NULL};

static void put_bytes(const char *key, const void *data, size_t len)
{
    assert_int_equal(me_storage_put(st, key, data, len), 0);
}

static void put_str(const char *key, const char *s)
{
    put_bytes(key, s, strlen(s));
}

static void assert_object(const char *key, const void *want, size_t len)
{
    storage_assert_object(st, key, want, len);
}

static void path_of(char *path, size_t size, const char *rel)
{
    snprintf(path, size, "%s/%s", root, rel);
}

static ino_t inode_of(const char *rel)
{
    char path[1024];
    struct stat sb;
    path_of(path, sizeof(path), rel);
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_ino;
}

static int exists(const char *rel)
{
    char path[1024];
    path_of(path, sizeof(path), rel);
    return access(path, F_OK) == 0;
}

/* Entries of a directory under root, "." and ".." aside. */
static int count_entries(const char *rel)
{
    char path[1024];
    struct dirent *de;
    DIR *d;
    int n = 0;
    path_of(path, sizeof(path), rel);
    assert_non_null(d = opendir(path));
    while ((de = readdir(d)) != NULL)
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int count_fds(void)
{
    struct dirent *de;
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void fill_random(unsigned char *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 16);
    }
}

/* Asserts the recorded calls made file_ino durable in dir_ino: written, the file synced,
 * renamed into the directory, the directory synced, in that order, nothing written after
 * the sync; and every directory that mkdir changed was synced before the rename. */
static void assert_durable_order(ino_t file_ino, ino_t dir_ino)
{
    int w = -1, f = -1, r = -1, d = -1;
    for (int i = 0; i < nevents; i++) {
        const char *op = events[i].op;
        if (strcmp(op, "write") == 0) {
            assert_int_equal(f, -1);
            w = i;
        } else if (strcmp(op, "fdatasync") == 0 && events[i].ino == file_ino) {
            f = i;
        } else if (strcmp(op, "renameat") == 0 && events[i].ino == dir_ino) {
            r = i;
        } else if (strcmp(op, "fsync") == 0 && events[i].ino == dir_ino && r >= 0 && d < 0) {
            d = i;
        }
    }
    assert_true(w >= 0);
    assert_true(w < f);
    assert_true(f < r);
    assert_true(r < d);
    for (int i = 0; i < nevents; i++) {
        if (strcmp(events[i].op, "mkdirat") != 0)
            continue;
        int synced = 0;
        for (int j = i + 1; j < r; j++)
            synced |= strcmp(events[j].op, "fsync") == 0 && events[j].ino == events[i].ino;
        assert_true(synced);
    }
}

static void start_recording(void)
{
    nevents = 0;
    recording = 1;
}

/* ---- keys ---- */

static void test_key_validation(void **state)
{
    char long_key[ME_STORAGE_KEY_MAX + 2];
    static const char *good[] = {"a", "a/b", "uploads/0f3c.info", "A-Z_a-z.0-9/x.y.z", "a..b", "a./b-"};
    static const char *bad[] = {"", "/a", "a/", "a//b", "../a", "a/../b", ".a", "a/.b", ".", "..", "a/./b",
                                "a b", "a\\b", "a%2f", "a:b", "a\nb", "caf\xc3\xa9", "\xff"};

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(me_storage_key_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(me_storage_key_valid(bad[i]));
    assert_false(me_storage_key_valid(NULL));
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[ME_STORAGE_KEY_MAX] = '\0';
    assert_true(me_storage_key_valid(long_key));
    long_key[ME_STORAGE_KEY_MAX] = 'k';
    long_key[ME_STORAGE_KEY_MAX + 1] = '\0';
    assert_false(me_storage_key_valid(long_key));
}

/* ---- objects ---- */

/* Key a/b/c is the file root/a/b/c, byte for byte, for an operator to find. */
static void test_keys_are_paths(void **state)
{
    unsigned char bin[256];
    char path[1024], disk[512];
    ssize_t n;
    int fd;

    for (int i = 0; i < 256; i++)
        bin[i] = (unsigned char)i;
    put_bytes("originals/al/bin", bin, sizeof(bin));
    path_of(path, sizeof(path), "originals/al/bin");
    assert_true((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0);
    n = read(fd, disk, sizeof(disk));
    close(fd);
    assert_int_equal(n, sizeof(bin));
    assert_memory_equal(disk, bin, sizeof(bin));
    assert_int_equal(me_storage_delete(st, "originals"), 0); /* a directory is no object */
    assert_true(exists("originals/al/bin"));
}

/* get_all reads one version whole even when the object is replaced between head and get */
static void test_get_all_of_a_replaced_object(void **state)
{
    put_str("v", "short");
    replace_key = "v", replace_with = "a longer version";
    assert_object("v", "a longer version", 16);
    assert_null(replace_key);
    replace_key = "v", replace_with = "tiny";
    char *data;
    size_t len;
    assert_int_equal(me_storage_get_all(st, "v", 100, &data, &len), 0);
    assert_int_equal(len, 4);
    assert_string_equal(data, "tiny");
    free(data);
}

static void test_delete_removes_empty_directories(void **state)
{
    put_str("d1/keep", "k");
    put_str("d1/d2/d3/x", "x");
    ino_t d3 = inode_of("d1/d2/d3");
    start_recording();
    assert_int_equal(me_storage_delete(st, "d1/d2/d3/x"), 0);
    recording = 0;
    /* a deleted photo stays deleted after a crash: its directory is synced */
    assert_true(nevents >= 2);
    assert_string_equal(events[0].op, "unlinkat");
    assert_int_equal(events[0].ino, d3);
    assert_string_equal(events[1].op, "fsync");
    assert_int_equal(events[1].ino, d3);
    assert_false(exists("d1/d2"));
    assert_true(exists("d1/keep"));
    assert_int_equal(me_storage_delete(st, "d1/keep"), 0);
    assert_false(exists("d1"));
    assert_true(exists(".tmp")); /* never above the root's own entries */
}

/* ---- listing ---- */

static int append_key(const char *key, const me_storage_stat_t *stat, void *arg)
{
    char *keys = arg;
    snprintf(keys + strlen(keys), 1024 - strlen(keys), "%s%s", keys[0] ? " " : "", key);
    return 0;
}

/* The backend's own files, a crash's temporary file and an operator's stray files are no
 * objects: never listed. */
static void test_list_shows_objects_only(void **state)
{
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], path[1024], keys[1024] = "";
    me_storage_part_t part;
    int fd;

    put_str("uploads/a", "a");
    put_str("uploads/b/c", "c");
    assert_int_equal(me_storage_multipart_begin(st, "uploads/zz", id, sizeof(id)), 0);
    assert_int_equal(me_storage_part_put(st, "uploads/zz", id, 1, "p", 1, &part), 0);
    path_of(path, sizeof(path), ".tmp/0123456789abcdef0123456789abcdef");
    assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
    close(fd);
    path_of(path, sizeof(path), "uploads/not a key");
    assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
    close(fd);
    path_of(path, sizeof(path), "uploads/.hidden");
    assert_int_equal(mkdir(path, 0700), 0);
    path_of(path, sizeof(path), "uploads/.hidden/x");
    assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
    close(fd);

    assert_int_equal(me_storage_list(st, "", append_key, keys), 0);
    assert_string_equal(keys, "uploads/a uploads/b/c");
}

/* ---- multipart ---- */

/* On the file backend: parts of any size (0 and 1 byte too), each etag random hex, new at
 * every put; completing leaves nothing in .multipart or .tmp. */
static void test_multipart(void **state)
{
    const size_t sizes[] = {1, 5 * MIB + 1, 0, 3};
    unsigned char *data[4], *whole = malloc(5 * MIB + 5);
    me_storage_part_t parts[4];
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1];
    size_t at = 0;

    assert_int_equal(me_storage_min_part_size(st), 0);
    assert_int_equal(me_storage_multipart_begin(st, "originals/al/m1", id, sizeof(id)), 0);
    assert_true(is_upload_id(id));
    assert_false(exists("originals")); /* nothing shows before completion */
    for (int i = 0; i < 4; i++) {
        data[i] = malloc(sizes[i] + 1);
        fill_random(data[i], sizes[i], (unsigned)i + 1);
        assert_int_equal(me_storage_part_put(st, "originals/al/m1", id, i + 1, data[i], sizes[i], &parts[i]), 0);
        assert_int_equal(parts[i].number, i + 1);
        assert_int_equal(parts[i].size, sizes[i]);
        assert_int_equal(strlen(parts[i].etag), 32); /* opaque: random hex, distinct per put */
        for (int k = 0; k < i; k++)
            assert_string_not_equal(parts[k].etag, parts[i].etag);
        memcpy(whole + at, data[i], sizes[i]);
        at += sizes[i];
    }
    /* the last put of a number wins */
    assert_int_equal(me_storage_part_put(st, "originals/al/m1", id, 4, "zzz", 3, &parts[3]), 0);
    memcpy(whole + at - 3, "zzz", 3);

    assert_int_equal(me_storage_multipart_complete(st, "originals/al/m1", id, parts, 4), 0);
    assert_object("originals/al/m1", whole, at);
    assert_int_equal(count_entries(".multipart"), 0); /* parts released */
    assert_int_equal(count_entries(".tmp"), 0);
    for (int i = 0; i < 4; i++)
        free(data[i]);
    free(whole);
}

/* The file backend's upload ids, and what its refusals and aborts leave behind: nothing. */
static void test_multipart_ids_and_leftovers(void **state)
{
    static const char *bad_ids[] = {"../x", "0123456789ABCDEF0123456789ABCDEF", "0123456789abcdef0123456789abcde",
                                    "0123456789abcdef0123456789abcdef0", "../../../../../../../../../../etc",
                                    "0123456789abcdef/123456789abcdef"};
    me_storage_part_t parts[2], bad;
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], other[ME_STORAGE_UPLOAD_ID_MAX + 1], small[32];

    assert_int_equal(me_storage_multipart_begin(st, "k", small, sizeof(small)), ME_EINVAL); /* 32 digits + NUL */
    assert_int_equal(count_entries(".multipart"), 0);
    assert_int_equal(me_storage_multipart_begin(st, "k", id, sizeof(id)), 0);
    assert_int_equal(me_storage_multipart_begin(st, "k", other, sizeof(other)), 0);
    assert_true(is_upload_id(id));
    assert_int_equal(me_storage_part_put(st, "k", id, 1, "ONE", 3, &parts[0]), 0);
    assert_int_equal(me_storage_part_put(st, "k", id, 2, "two", 3, &parts[1]), 0);
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        assert_int_equal(me_storage_part_put(st, "k", bad_ids[i], 1, "x", 1, &bad), ME_EINVAL);
        assert_int_equal(me_storage_multipart_complete(st, "k", bad_ids[i], parts, 2), ME_EINVAL);
        assert_int_equal(me_storage_multipart_abort(st, "k", bad_ids[i]), ME_EINVAL);
    }
    assert_int_equal(me_storage_part_put(st, "k", "ffffffffffffffffffffffffffffffff", 1, "x", 1, &bad), ME_ENOTFOUND);
    assert_int_equal(me_storage_part_put(st, "k", id, 10000, "x", 1, &bad), ME_ECONFLICT); /* a gap */
    bad = parts[1];
    bad.size = 4;
    assert_int_equal(me_storage_multipart_complete(st, "k", id, (me_storage_part_t[]){parts[0], bad}, 2), ME_ECONFLICT);
    assert_false(exists("k"));
    assert_int_equal(count_entries(".tmp"), 0);

    assert_int_equal(me_storage_multipart_complete(st, "k", id, parts, 2), 0);
    assert_object("k", "ONEtwo", 6);
    assert_int_equal(me_storage_multipart_complete(st, "k", id, parts, 2), ME_ENOTFOUND); /* once */
    assert_int_equal(me_storage_multipart_abort(st, "k", other), 0);
    assert_int_equal(count_entries(".multipart"), 0);
    assert_int_equal(count_entries(".tmp"), 0);
}

/* ---- durability: the order of the calls, and failures ---- */

static void test_put_syscall_order(void **state)
{
    start_recording();
    put_str("n1/n2/obj", "payload");
    recording = 0;
    assert_durable_order(inode_of("n1/n2/obj"), inode_of("n1/n2"));
    int mkdirs = 0;
    for (int i = 0; i < nevents; i++)
        mkdirs += strcmp(events[i].op, "mkdirat") == 0;
    assert_int_equal(mkdirs, 2); /* n1 in root, n2 in n1: each parent synced (checked above) */

    start_recording(); /* replacing: the directory exists */
    put_str("n1/n2/obj", "payload 2");
    recording = 0;
    assert_durable_order(inode_of("n1/n2/obj"), inode_of("n1/n2"));
}

/* Index of the first event op on ino at or after from, or -1. */
static int find_event(const char *op, ino_t ino, int from)
{
    for (int i = from; i < nevents; i++)
        if (strcmp(events[i].op, op) == 0 && (ino == 0 || events[i].ino == ino))
            return i;
    return -1;
}

static void test_multipart_syscall_order(void **state)
{
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], rec_path[512], dir_path[512], data_path[512];
    me_storage_part_t parts[2];

    assert_int_equal(me_storage_multipart_begin(st, "o/m", id, sizeof(id)), 0);
    snprintf(dir_path, sizeof(dir_path), ".multipart/%s", id);
    snprintf(data_path, sizeof(data_path), ".multipart/%s/data", id);
    assert_int_equal(me_storage_part_put(st, "o/m", id, 1, "abc", 3, &parts[0]), 0);

    /* a part: its bytes written in place and synced, then its record made durable */
    start_recording();
    assert_int_equal(me_storage_part_put(st, "o/m", id, 2, "def", 3, &parts[1]), 0);
    recording = 0;
    snprintf(rec_path, sizeof(rec_path), ".multipart/%s/00002.rec", id);
    ino_t data = inode_of(data_path), dir = inode_of(dir_path), rec = inode_of(rec_path);
    int p = find_event("pwrite", data, 0), f = find_event("fdatasync", data, 0);
    int w = find_event("write", 0, 0), rf = find_event("fdatasync", rec, 0);
    int r = find_event("renameat", dir, 0), d = find_event("fsync", dir, r < 0 ? 0 : r);
    assert_true(p >= 0 && find_event("pwrite", 0, p + 1) == -1); /* one write of the bytes */
    assert_true(p < f);
    assert_true(f < w);   /* data durable before the record is even written */
    assert_true(w < rf);
    assert_true(rf < r);
    assert_true(r < d);
    assert_int_equal(find_event("unlinkat", 0, 0), -1); /* a new part invalidates nothing */

    /* completion: the data file truncated, synced and renamed; not one byte copied */
    written = 0;
    start_recording();
    assert_int_equal(me_storage_multipart_complete(st, "o/m", id, parts, 2), 0);
    recording = 0;
    assert_int_equal(written, 0);
    assert_int_equal(find_event("write", 0, 0), -1);
    assert_int_equal(find_event("pwrite", 0, 0), -1);
    assert_int_equal(inode_of("o/m"), data); /* the very file the parts were written to */
    ino_t o = inode_of("o");
    int t = find_event("ftruncate", data, 0);
    f = find_event("fdatasync", data, 0);
    r = find_event("renameat", o, 0);
    d = find_event("fsync", o, r < 0 ? 0 : r);
    assert_true(t >= 0);
    assert_true(t < f);
    assert_true(f < r);
    assert_true(r < d);
    for (int i = 0; i < nevents; i++) { /* o was made: root synced before the rename */
        if (strcmp(events[i].op, "mkdirat") != 0)
            continue;
        int synced = find_event("fsync", events[i].ino, i + 1);
        assert_true(synced >= 0 && synced < r);
    }
    assert_object("o/m", "abcdef", 6);
    assert_false(exists(dir_path));
}

/* Putting part n again (a crash's retry) invalidates the parts after it. */
static void test_multipart_reput(void **state)
{
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], path[512];
    me_storage_part_t parts[3], again;

    assert_int_equal(me_storage_multipart_begin(st, "re/put", id, sizeof(id)), 0);
    assert_int_equal(me_storage_part_put(st, "re/put", id, 1, "11111", 5, &parts[0]), 0);
    assert_int_equal(me_storage_part_put(st, "re/put", id, 2, "22222", 5, &parts[1]), 0);
    assert_int_equal(me_storage_part_put(st, "re/put", id, 3, "33333", 5, &parts[2]), 0);
    /* other bytes and a longer part 2: part 3's record goes, its bytes are overwritten */
    assert_int_equal(me_storage_part_put(st, "re/put", id, 2, "bbbbbbb", 7, &again), 0);
    snprintf(path, sizeof(path), ".multipart/%s/00003.rec", id);
    assert_false(exists(path));
    assert_int_equal(me_storage_multipart_complete(st, "re/put", id, parts, 3), ME_ECONFLICT);
    assert_int_equal(me_storage_multipart_complete(st, "re/put", id, (me_storage_part_t[]){parts[0], again, parts[2]}, 3),
                     ME_ECONFLICT);
    assert_int_equal(me_storage_multipart_complete(st, "re/put", id, parts, 2), ME_ECONFLICT); /* old part 2 */
    assert_false(exists("re/put"));
    assert_int_equal(me_storage_multipart_complete(st, "re/put", id, (me_storage_part_t[]){parts[0], again}, 2), 0);
    assert_object("re/put", "11111bbbbbbb", 12); /* no trace of the longer data file's tail */

    /* a shorter re-put, then the next parts again */
    assert_int_equal(me_storage_multipart_begin(st, "re/put2", id, sizeof(id)), 0);
    assert_int_equal(me_storage_part_put(st, "re/put2", id, 1, "aaaa", 4, &parts[0]), 0);
    assert_int_equal(me_storage_part_put(st, "re/put2", id, 2, "bbbbbbbb", 8, &parts[1]), 0);
    assert_int_equal(me_storage_part_put(st, "re/put2", id, 3, "cccc", 4, &parts[2]), 0);
    assert_int_equal(me_storage_part_put(st, "re/put2", id, 2, "BB", 2, &parts[1]), 0);
    assert_int_equal(me_storage_part_put(st, "re/put2", id, 3, "C", 1, &parts[2]), 0);
    assert_int_equal(me_storage_multipart_complete(st, "re/put2", id, parts, 3), 0);
    assert_object("re/put2", "aaaaBBC", 7);

    /* a re-put that fails half way leaves no record counting the bytes it overwrote */
    assert_int_equal(me_storage_multipart_begin(st, "re/put3", id, sizeof(id)), 0);
    assert_int_equal(me_storage_part_put(st, "re/put3", id, 1, "xx", 2, &parts[0]), 0);
    assert_int_equal(me_storage_part_put(st, "re/put3", id, 2, "yy", 2, &parts[1]), 0);
    fail_write = ENOSPC;
    assert_int_equal(me_storage_part_put(st, "re/put3", id, 1, "zz", 2, &again), ME_ENOSPACE);
    fail_write = 0;
    assert_int_equal(me_storage_multipart_complete(st, "re/put3", id, parts, 2), ME_ECONFLICT);
    assert_int_equal(me_storage_part_put(st, "re/put3", id, 2, "yy", 2, &again), ME_ECONFLICT); /* part 1 first */
    assert_int_equal(me_storage_part_put(st, "re/put3", id, 1, "xx", 2, &parts[0]), 0);
    assert_int_equal(me_storage_part_put(st, "re/put3", id, 2, "yy", 2, &parts[1]), 0);
    assert_int_equal(me_storage_multipart_complete(st, "re/put3", id, parts, 2), 0);
    assert_object("re/put3", "xxyy", 4);
    assert_int_equal(count_entries(".multipart"), 0);
    assert_int_equal(count_entries(".tmp"), 0);
}

/* Parts go in order: a part whose predecessor was not put is refused and changes nothing. */
static void test_multipart_gap(void **state)
{
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1];
    me_storage_part_t parts[3], p;

    assert_int_equal(me_storage_multipart_begin(st, "gap", id, sizeof(id)), 0);
    assert_int_equal(me_storage_part_put(st, "gap", id, 2, "b", 1, &p), ME_ECONFLICT);
    assert_int_equal(me_storage_part_put(st, "gap", id, 1, "a", 1, &parts[0]), 0);
    written = 0;
    assert_int_equal(me_storage_part_put(st, "gap", id, 3, "c", 1, &p), ME_ECONFLICT);
    assert_int_equal(written, 0);
    parts[2] = p;
    parts[2].number = 3;
    assert_int_equal(me_storage_multipart_complete(st, "gap", id, (me_storage_part_t[]){parts[0], parts[2]}, 2),
                     ME_ECONFLICT);
    assert_int_equal(me_storage_part_put(st, "gap", id, 2, "b", 1, &parts[1]), 0);
    assert_int_equal(me_storage_part_put(st, "gap", id, 3, "c", 1, &parts[2]), 0);
    assert_int_equal(me_storage_multipart_complete(st, "gap", id, parts, 3), 0);
    assert_object("gap", "abc", 3);
}

enum { PUTTERS = 4, PUT_ROUNDS = 20, PART = 256 * 1024 };

typedef struct {
    const char *id;
    unsigned char value;
    me_storage_part_t last;
    int failures;
} putter_t;

static void *put_part_again(void *arg)
{
    putter_t *t = arg;
    unsigned char *buf = malloc(PART + t->value);
    memset(buf, t->value, PART + t->value);
    for (int i = 0; i < PUT_ROUNDS; i++)
        t->failures += me_storage_part_put(st, "same/part", t->id, 1, buf, PART + t->value, &t->last) != 0;
    free(buf);
    return NULL;
}

/* Threads putting one part at once: the record that wins describes the bytes that are there
 * (a smoke test: the race it guards against is narrow and is not caught every run). */
static void test_concurrent_puts_of_one_part(void **state)
{
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1];
    putter_t t[PUTTERS];
    pthread_t th[PUTTERS];
    int done = 0, failures = 0;

    assert_int_equal(me_storage_multipart_begin(st, "same/part", id, sizeof(id)), 0);
    for (int i = 0; i < PUTTERS; i++) {
        t[i] = (putter_t){.id = id, .value = (unsigned char)(i + 1)};
        assert_int_equal(pthread_create(&th[i], NULL, put_part_again, &t[i]), 0);
    }
    for (int i = 0; i < PUTTERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < PUTTERS; i++)
        failures += t[i].failures;
    assert_int_equal(failures, 0);
    for (int i = 0; i < PUTTERS; i++) {
        int ret = me_storage_multipart_complete(st, "same/part", id, &t[i].last, 1);
        if (ret == 0) {
            char *data;
            size_t len;
            done++;
            assert_int_equal(me_storage_get_all(st, "same/part", 2 * PART, &data, &len), 0);
            assert_int_equal(len, PART + t[i].value);
            for (size_t j = 0; j < len; j++)
                assert_int_equal((unsigned char)data[j], t[i].value);
            free(data);
        } else {
            assert_true(ret == ME_ECONFLICT || ret == ME_ENOTFOUND);
        }
    }
    assert_int_equal(done, 1);
}

static void test_injected_failures(void **state)
{
    char logpath[128], log[8192], id[ME_STORAGE_UPLOAD_ID_MAX + 1];
    me_storage_part_t parts[2], p;
    ssize_t n;
    int logfd;

    snprintf(logpath, sizeof(logpath), "%s/log", tmpdir);
    assert_true((logfd = open(logpath, O_CREAT | O_RDWR | O_CLOEXEC, 0600)) >= 0);
    me_log_init(ME_LOG_INFO, 0, logfd);
    put_str("f/obj", "old");

    fail_write = ENOSPC;
    assert_int_equal(me_storage_put(st, "f/obj", "SECRET-BYTES", 12), ME_ENOSPACE);
    assert_int_equal(me_storage_put(st, "f/new", "SECRET-BYTES", 12), ME_ENOSPACE);
    fail_write = 0;
    fail_fdatasync = EIO;
    assert_int_equal(me_storage_put(st, "f/obj", "SECRET-BYTES", 12), ME_EIO);
    assert_int_equal(me_storage_put(st, "g/h/new", "SECRET-BYTES", 12), ME_EIO);
    fail_fdatasync = 0;
    assert_object("f/obj", "old", 3); /* the old object stands */
    assert_false(exists("f/new"));
    assert_false(exists("g/h/new"));
    assert_int_equal(count_entries(".tmp"), 0);

    /* parts and completion */
    assert_int_equal(me_storage_multipart_begin(st, "f/mp", id, sizeof(id)), 0);
    fail_write = ENOSPC;
    assert_int_equal(me_storage_part_put(st, "f/mp", id, 1, "SECRET-BYTES", 12, &p), ME_ENOSPACE);
    fail_write = 0;
    assert_int_equal(me_storage_part_put(st, "f/mp", id, 1, "abc", 3, &parts[0]), 0);
    assert_int_equal(me_storage_part_put(st, "f/mp", id, 2, "def", 3, &parts[1]), 0);
    fail_fdatasync = EIO;
    assert_int_equal(me_storage_part_put(st, "f/mp", id, 3, "SECRET-BYTES", 12, &p), ME_EIO);
    fail_fdatasync = 0;
    fail_ftruncate = ENOSPC;
    assert_int_equal(me_storage_multipart_complete(st, "f/mp", id, parts, 2), ME_ENOSPACE);
    fail_ftruncate = 0;
    fail_fdatasync = EIO;
    assert_int_equal(me_storage_multipart_complete(st, "f/mp", id, parts, 2), ME_EIO);
    fail_fdatasync = 0;
    assert_false(exists("f/mp"));
    assert_int_equal(count_entries(".tmp"), 0);
    /* the upload survived the failures; the failed part 3 left bytes past the end, cut off */
    assert_int_equal(me_storage_multipart_complete(st, "f/mp", id, parts, 2), 0);
    assert_object("f/mp", "abcdef", 6);

    /* the log names the key and the reason, never the bytes */
    assert_true((n = pread(logfd, log, sizeof(log) - 1, 0)) > 0);
    log[n] = '\0';
    assert_non_null(strstr(log, "f/new"));
    assert_non_null(strstr(log, "g/h/new"));
    assert_non_null(strstr(log, "part 1 of f/mp"));
    assert_non_null(strstr(log, "No space left on device"));
    assert_non_null(strstr(log, "\"level\":\"error\""));
    assert_null(strstr(log, "SECRET"));
    me_log_init(ME_LOG_INFO, 0, quiet_fd);
    close(logfd);
}

/* ---- opening ---- */

static void test_open(void **state)
{
    char err[256], path[512], file[256];
    struct stat sb;
    struct timespec old[2] = {{.tv_sec = 1000000000}, {.tv_sec = 1000000000}};
    me_storage_t *s;
    int fd;

    assert_null(open_store("s3", root, err, sizeof(err)));
    assert_string_equal(err, "s3.bucket: required with storage.backend s3"); /* known: says what it needs */
    assert_null(open_store("ftp", root, err, sizeof(err)));
    assert_non_null(strstr(err, "storage.backend"));
    assert_null(open_store("file", "", err, sizeof(err)));
    assert_non_null(strstr(err, "storage.root"));
    snprintf(file, sizeof(file), "%s/plain", tmpdir);
    assert_true((fd = open(file, O_CREAT | O_WRONLY, 0600)) >= 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/under", file);
    assert_null(open_store("file", path, err, sizeof(err)));
    assert_non_null(strstr(err, "storage.root: cannot create or open"));

    /* made with mkdir -p, mode 0750 (umask allowing) */
    assert_int_equal(stat(root, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0750 & ~(mode_t)umask(umask(0)));

    /* a restart removes what a crash left in .tmp, but not what another process writes now */
    path_of(path, sizeof(path), ".tmp/00000000000000000000000000000001");
    assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
    assert_int_equal(futimens(fd, old), 0);
    close(fd);
    path_of(path, sizeof(path), ".tmp/00000000000000000000000000000002");
    assert_true((fd = open(path, O_CREAT | O_WRONLY, 0600)) >= 0);
    close(fd);
    put_str("kept", "kept");
    assert_non_null(s = open_store("file", root, err, sizeof(err)));
    assert_int_equal(count_entries(".tmp"), 1);
    me_storage_close(s);
    assert_object("kept", "kept", 4);

    /* a relative root */
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(tmpdir), 0);
    assert_non_null(s = open_store("file", "./rel/store", err, sizeof(err)));
    assert_int_equal(me_storage_put(s, "a/b", "x", 1), 0);
    me_storage_close(s);
    assert_int_equal(chdir(cwd), 0);
    snprintf(path, sizeof(path), "%s/rel/store/a/b", tmpdir);
    assert_int_equal(access(path, F_OK), 0);
}

/* ---- concurrency ---- */

typedef struct {
    const char *key;
    int failures;
} churn_t;

static void *put_delete(void *arg)
{
    churn_t *c = arg;
    for (int i = 0; i < 60; i++) {
        me_storage_stat_t stat;
        c->failures += me_storage_put(st, c->key, "x", 1) != 0;
        c->failures += me_storage_head(st, c->key, &stat) != 0;
        c->failures += me_storage_delete(st, c->key) != 0;
    }
    return NULL;
}

/* A delete removes directories it empties while another thread puts into them. */
static void test_puts_survive_concurrent_directory_removal(void **state)
{
    churn_t c[3] = {{"race/d/a"}, {"race/d/b"}, {"race/d/e/c"}};
    pthread_t t[3];

    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, put_delete, &c[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(c[0].failures + c[1].failures + c[2].failures, 0);
    assert_false(exists("race"));
}

/* ---- resources ---- */

static int count_cb(const char *key, const me_storage_stat_t *stat, void *arg)
{
    ++*(int *)arg;
    return 0;
}

static void test_no_descriptor_leaks(void **state)
{
    char id[ME_STORAGE_UPLOAD_ID_MAX + 1], buf[8], *data;
    me_storage_part_t parts[2], wrong;
    me_storage_stat_t stat;
    size_t got;
    int before = count_fds(), n = 0;

    for (int round = 0; round < 3; round++) {
        put_str("l/a/b", "hello");
        assert_int_equal(me_storage_get(st, "l/a/b", 1, sizeof(buf), buf, &got), 0);
        assert_int_equal(me_storage_get(st, "l/a/b", 9, sizeof(buf), buf, &got), ME_EINVAL);
        assert_int_equal(me_storage_get(st, "l/none", 0, sizeof(buf), buf, &got), ME_ENOTFOUND);
        assert_int_equal(me_storage_get(st, "l/a", 0, sizeof(buf), buf, &got), ME_ENOTFOUND);
        assert_int_equal(me_storage_get_all(st, "l/a/b", 2, &data, &got), ME_ETOOLARGE);
        assert_int_equal(me_storage_head(st, "l/a/b", &stat), 0);
        assert_int_equal(me_storage_list(st, "", count_cb, &n), 0);
        assert_int_equal(me_storage_list(st, "l/a/", count_cb, &n), 0);
        assert_int_equal(me_storage_multipart_begin(st, "l/m", id, sizeof(id)), 0);
        assert_int_equal(me_storage_part_put(st, "l/m", id, 1, "ab", 2, &parts[0]), 0);
        assert_int_equal(me_storage_part_put(st, "l/m", id, 2, "cd", 2, &parts[1]), 0);
        wrong = parts[1];
        wrong.size = 1;
        assert_int_equal(me_storage_multipart_complete(st, "l/m", id, (me_storage_part_t[]){parts[0], wrong}, 2),
                         ME_ECONFLICT);
        assert_int_equal(me_storage_part_put(st, "l/x", id, 1, "ab", 2, &wrong), ME_ENOTFOUND);
        fail_write = ENOSPC;
        assert_int_equal(me_storage_put(st, "l/a/c", "x", 1), ME_ENOSPACE);
        fail_write = 0;
        assert_int_equal(me_storage_part_put(st, "l/m", id, 4, "ef", 2, &wrong), ME_ECONFLICT); /* a gap */
        assert_int_equal(me_storage_part_put(st, "l/m", id, 2, "CD", 2, &parts[1]), 0);   /* again */
        fail_write = ENOSPC;
        assert_int_equal(me_storage_part_put(st, "l/m", id, 3, "ef", 2, &wrong), ME_ENOSPACE);
        fail_write = 0;
        fail_ftruncate = ENOSPC;
        assert_int_equal(me_storage_multipart_complete(st, "l/m", id, parts, 2), ME_ENOSPACE);
        fail_ftruncate = 0;
        assert_int_equal(me_storage_multipart_complete(st, "l/m", id, parts, 2), 0);
        assert_int_equal(me_storage_multipart_complete(st, "l/m", id, parts, 2), ME_ENOTFOUND);
        assert_int_equal(me_storage_multipart_abort(st, "l/m", id), 0);
        assert_int_equal(me_storage_delete(st, "l/a/b"), 0);
        assert_int_equal(me_storage_delete(st, "l/m"), 0);
    }
    assert_int_equal(n, 6);
    assert_int_equal(count_fds(), before);
}

int main(void)
{
    static const struct CMUnitTest file_tests[] = {
        cmocka_unit_test_setup_teardown(test_key_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_are_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_all_of_a_replaced_object, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_removes_empty_directories, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_shows_objects_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multipart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multipart_ids_and_leftovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_syscall_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multipart_syscall_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multipart_reput, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multipart_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_puts_of_one_part, setup, teardown),
        cmocka_unit_test_setup_teardown(test_injected_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open, setup, teardown),
        cmocka_unit_test_setup_teardown(test_puts_survive_concurrent_directory_removal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_descriptor_leaks, setup, teardown),
    };
    struct CMUnitTest tests[STORAGE_CONFORMANCE_CASES + sizeof(file_tests) / sizeof(file_tests[0])];

    if ((quiet_fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0)
        return 1;
    me_log_init(ME_LOG_INFO, 0, quiet_fd);
    storage_conformance_cases(&file_backend, tests);
    memcpy(tests + STORAGE_CONFORMANCE_CASES, file_tests, sizeof(file_tests));
    int failed = cmocka_run_group_tests_name("storage", tests, NULL, NULL);
    close(quiet_fd);
    return failed;
}
