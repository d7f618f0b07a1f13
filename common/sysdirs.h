/* The system directories a run's workspace may neither be nor hold: the model's files and
 * its check command are written there, and could replace a program that runs with the API
 * keys. */
#ifndef AUTOPACK_COMMON_SYSDIRS_H
#define AUTOPACK_COMMON_SYSDIRS_H

#include <stdbool.h>
#include <stddef.h>

/* Whether the directory `dir` is `path` or holds it (both real paths). */
bool path_holds(const char *dir, const char *path);

/* Whether the directory `dir` (false when it cannot be resolved, a missing one among them)
 * is or holds one of /usr, /etc, /bin, /sbin, /lib, /lib64, /boot, /dev, /proc and /sys,
 * by their real paths, or, with `own_binary`, this program's binary. `what` (n bytes)
 * gets the real path it holds. Not thread-safe: those real paths are resolved at the
 * first call into static storage, unguarded. Every caller runs on its program's one
 * thread that may (the worker's main thread: a phase's workspace, a check's $TMPDIR; plan
 * import, on autopack-ctl's main thread and on the supervisor's loop thread, where its
 * control commands run; none of the threads of the checkpoints, syncs, cancel requests
 * or HTTP server calls it); a caller on another thread first makes it safe (pthread_once). */
bool sysdirs_held(const char *dir, bool own_binary, char *what, size_t n);

/* Whether the directory `dir` (an absolute path, lexically normal) lies in /proc, /sys,
 * /dev/pts or /dev/mqueue, the kernel's file systems of processes, devices, terminals and
 * message queues, by its name or, when it can be resolved, by its real path, or on one of
 * those file systems mounted elsewhere, or on another that only the kernel fills (cgroup,
 * cgroup2, debugfs, tracefs, securityfs, configfs, bpf, pstore, efivarfs, hugetlbfs,
 * fusectl), known by the type statfs gives the deepest directory on its way that is there:
 * no file a phase writes can be made there. `what` (n bytes) gets which: its directory,
 * or "a <kind> file system (<where>)". */
bool sysdirs_kernel(const char *dir, char *what, size_t n);

/* Whether the directory `dir` is on one of those file systems, wherever it is mounted
 * (one statfs, which follows a symbolic link). `what` (n bytes) gets "a <kind> file system (<dir>)". */
bool sysdirs_kernel_fs(const char *dir, char *what, size_t n);

#endif
