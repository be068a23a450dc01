/* sandbox.h: confining, for good, a process that reads files from strangers (the photo
 * decoder), so that what a crafted file takes over can reach as little as possible.
 *
 * Linux only. Two layers, each applied when the kernel has it:
 *  - seccomp (required): no new sockets, no connect/bind/accept, no exec, no ptrace or
 *    reading other processes' memory, no io_uring, bpf, keyrings, mounts or namespaces,
 *    signals only to itself;
 *  - Landlock (when the kernel has it; its ABI is reported): the file system shrinks to
 *    reading (and mapping) under a few directories and reading and writing under one, no TCP
 *    bind or connect, and (ABI 6) no signals or abstract sockets outside the process.
 * Memory the process already holds stays readable to it: confine a process that holds no
 * secret (a fresh exec with a scrubbed environment). */
#ifndef ME_SANDBOX_H
#define ME_SANDBOX_H

#include "server/core/error.h"

/* Confines the calling process from now on; threads it creates later inherit it. Call it
 * while the process has one thread (Landlock applies to the calling thread and its future
 * children; the call checks and refuses otherwise), after loading what it needs from disk.
 * read_dirs: NULL-terminated paths (directories or files) left readable, e.g. "/usr";
 * write_dir: the one directory left writable (NULL: none). Paths that do not exist are
 * skipped. Returns 0 with *landlock set to the Landlock ABI applied (0: the kernel has none,
 * only seccomp applies), or ME_EINTERNAL (more than one thread, or seccomp refused): then the
 * process must not go on to read untrusted input. */
int me_sandbox_enter(const char *const *read_dirs, const char *write_dir, int *landlock) ME_MUST_CHECK;

#endif
