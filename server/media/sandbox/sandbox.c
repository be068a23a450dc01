/* sandbox.c: seccomp and Landlock around a process that reads untrusted files. */
#include "server/media/sandbox/sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "server/core/log.h"

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#endif

/* ---- Landlock: its constants by ABI, whatever the installed kernel headers know ---- */

#define FS_ABI1 ((1ull << 13) - 1) /* EXECUTE .. MAKE_SYM */
#define FS_REFER (1ull << 13)      /* ABI 2 */
#define FS_TRUNCATE (1ull << 14)   /* ABI 3 */
#define FS_IOCTL_DEV (1ull << 15)  /* ABI 5 */
#define NET_TCP 3ull               /* ABI 4: BIND_TCP | CONNECT_TCP */
#define SCOPE_ALL 3ull             /* ABI 6: ABSTRACT_UNIX_SOCKET | SIGNAL */
#define FS_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_FILE (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
                 FS_TRUNCATE | FS_IOCTL_DEV) /* the rights a rule on a file (not a directory) may hold */
#define FS_WRITE (FS_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR |                   \
                  LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | \
                  FS_TRUNCATE)

typedef struct {
    uint64_t handled_access_fs, handled_access_net, scoped;
} ruleset_attr_t;

static int add_path(int ruleset, const char *path, uint64_t access, uint64_t handled)
{
    struct landlock_path_beneath_attr rule = {0};
    struct stat st;
    int ret = 0;

    if ((rule.parent_fd = open(path, O_PATH | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 0 : -1;
    if (fstat(rule.parent_fd, &st) != 0)
        ret = -1;
    else {
        rule.allowed_access = access & handled & (S_ISDIR(st.st_mode) ? ~0ull : FS_FILE);
        ret = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) == 0 ? 0 : -1;
    }
    close(rule.parent_fd);
    return ret;
}

/* Applies Landlock when the kernel has it: returns its ABI (0: none), or -1 on failure. */
static int landlock(const char *const *read_dirs, const char *write_dir)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    ruleset_attr_t attr = {.handled_access_fs = FS_ABI1};
    size_t size = sizeof(attr.handled_access_fs);
    int ruleset, ret = -1;

    if (abi < 1) /* not built in, turned off, or refused by the container's own filter: errno says */
        return 0;
    attr.handled_access_fs |= (abi >= 2 ? FS_REFER : 0) | (abi >= 3 ? FS_TRUNCATE : 0) | (abi >= 5 ? FS_IOCTL_DEV : 0);
    if (abi >= 4)
        attr.handled_access_net = NET_TCP, size = offsetof(ruleset_attr_t, scoped);
    if (abi >= 6)
        attr.scoped = SCOPE_ALL, size = sizeof(attr);
    if ((ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0)) < 0)
        return -1;
    for (size_t i = 0; read_dirs != NULL && read_dirs[i] != NULL; i++)
        if (add_path(ruleset, read_dirs[i], FS_READ, attr.handled_access_fs) != 0)
            goto exit;
    if (write_dir != NULL && add_path(ruleset, write_dir, FS_WRITE, attr.handled_access_fs) != 0)
        goto exit;
    if (syscall(SYS_landlock_restrict_self, ruleset, 0) != 0)
        goto exit;
    ret = (int)abi;
exit:
    close(ruleset);
    return ret;
}

/* ---- seccomp: a deny list (libvips, glib and the codecs need a broad and changing set of
 * ordinary calls; what a taken-over decoder would need to do harm is short) ---- */

#define STMT(code, k) ((struct sock_filter)BPF_STMT(code, k))
#define JUMP(op, k, jt, jf) ((struct sock_filter)BPF_JUMP(BPF_JMP | (op) | BPF_K, k, jt, jf))
#define LD_NR STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define LD_ARG0 STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])) /* its low half */
#define RET(v) STMT(BPF_RET | BPF_K, (v))
#define DENY RET(SECCOMP_RET_ERRNO | EPERM)
#define ALLOW RET(SECCOMP_RET_ALLOW)
#define MAX_INS 200

static const long denied[] = {
    SYS_socket, SYS_socketpair, SYS_connect, SYS_bind, SYS_listen, SYS_accept, SYS_accept4, SYS_execve,
    SYS_execveat, SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_kcmp, SYS_tkill, SYS_pidfd_open,
    SYS_pidfd_getfd, SYS_pidfd_send_signal, SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register, SYS_bpf,
    SYS_perf_event_open, SYS_userfaultfd, SYS_keyctl, SYS_add_key, SYS_request_key, SYS_mount, SYS_umount2,
    SYS_pivot_root, SYS_chroot, SYS_unshare, SYS_setns, SYS_open_tree, SYS_move_mount, SYS_fsopen, SYS_fsconfig,
    SYS_fsmount, SYS_fspick, SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_kexec_load,
    SYS_kexec_file_load, SYS_reboot, SYS_swapon, SYS_swapoff, SYS_acct, SYS_quotactl, SYS_name_to_handle_at,
    SYS_open_by_handle_at, SYS_personality, SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid,
    SYS_setresgid, SYS_setgroups,
#ifdef SYS_fork
    SYS_fork, SYS_vfork,
#endif
#ifdef SYS_uselib
    SYS_uselib, SYS_iopl, SYS_ioperm,
#endif
};

/* Signals: only to this process (arg0 is the pid or thread group). */
static const long to_self_only[] = {SYS_kill, SYS_tgkill, SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo};

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP)

static int seccomp(void)
{
#ifdef ARCH
    struct sock_filter ins[MAX_INS];
    unsigned n = 0;
    uint32_t pid = (uint32_t)getpid();

    ins[n++] = STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    ins[n++] = JUMP(BPF_JEQ, ARCH, 1, 0);
    ins[n++] = RET(SECCOMP_RET_KILL_PROCESS);
    ins[n++] = LD_NR;
#ifdef __x86_64__
    ins[n++] = JUMP(BPF_JSET, 0x40000000, 0, 1); /* the x32 ABI */
    ins[n++] = RET(SECCOMP_RET_KILL_PROCESS);
#endif
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        ins[n++] = JUMP(BPF_JEQ, (uint32_t)denied[i], 0, 1);
        ins[n++] = DENY;
    }
    for (size_t i = 0; i < sizeof(to_self_only) / sizeof(to_self_only[0]); i++) {
        ins[n++] = JUMP(BPF_JEQ, (uint32_t)to_self_only[i], 0, 4);
        ins[n++] = LD_ARG0;
        ins[n++] = JUMP(BPF_JEQ, pid, 1, 0);
        ins[n++] = DENY;
        ins[n++] = ALLOW;
    }
    /* threads yes; processes and namespaces no. clone3's flags are out of reach (a pointer):
     * "not implemented" sends the C library back to clone. */
    ins[n++] = JUMP(BPF_JEQ, SYS_clone, 0, 5);
    ins[n++] = LD_ARG0;
    ins[n++] = JUMP(BPF_JSET, NS_FLAGS, 1, 0);
    ins[n++] = JUMP(BPF_JSET, CLONE_THREAD, 1, 0);
    ins[n++] = DENY;
    ins[n++] = ALLOW;
#ifdef SYS_clone3
    ins[n++] = JUMP(BPF_JEQ, SYS_clone3, 0, 1);
    ins[n++] = RET(SECCOMP_RET_ERRNO | ENOSYS);
#endif
    ins[n++] = ALLOW;
    struct sock_fprog prog = {.len = (unsigned short)n, .filter = ins};
    _Static_assert(sizeof(denied) / sizeof(denied[0]) * 2 + 4 * 5 + 16 < MAX_INS, "MAX_INS too small");
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0 ? 0 : -1;
#else
    return -1;
#endif
}

/* Threads of this process, from /proc/self/task; -1 when unknown. */
static int threads(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int me_sandbox_enter(const char *const *read_dirs, const char *write_dir, int *landlock_abi)
{
    int t = threads(), abi;

    *landlock_abi = 0;
    if (t != 1) {
        me_log_error(NULL, "sandbox: %d threads (one expected); not confined", t);
        return ME_EINTERNAL;
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        me_log_error(NULL, "sandbox: prctl: %s", strerror(errno));
        return ME_EINTERNAL;
    }
    errno = 0;
    if ((abi = landlock(read_dirs, write_dir)) < 0) {
        me_log_error(NULL, "sandbox: Landlock: %s", strerror(errno));
        return ME_EINTERNAL;
    }
    if (abi == 0) /* which step the machine refused, and what to allow (README, Container image) */
        me_log_warn(NULL, "sandbox: no Landlock (%s): confined by seccomp alone; %s", strerror(errno),
                    errno == EPERM ? "the container's seccomp profile refuses it: allow landlock_create_ruleset, "
                                     "landlock_add_rule and landlock_restrict_self"
                    : errno == EOPNOTSUPP ? "the kernel has it turned off: add landlock to its lsm= boot parameter"
                                          : "the kernel lacks it (CONFIG_SECURITY_LANDLOCK)");
    if (seccomp() != 0) {
        me_log_error(NULL, "sandbox: seccomp: %s", strerror(errno));
        return ME_EINTERNAL;
    }
    *landlock_abi = abi;
    return 0;
}
