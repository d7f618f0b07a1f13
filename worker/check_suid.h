/*
 * No set-user-ID or set-group-ID file from a check command: the check's code could leave
 * one in its workspace (its own files, owned by the drain's user, `chmod u+s` or `cp -p`
 * of a set-user-ID program), and whoever reaches the workspace afterwards runs it as that
 * user, root when the drain runs as root. A seccomp filter, set with no_new_privs on the
 * check before it starts, refuses with EPERM every call that would set either bit:
 * chmod, fchmod, fchmodat, fchmodat2, and open, openat, creat, mknod, mknodat with such a
 * mode; openat2, whose mode the filter cannot read, fails with ENOSYS (callers fall back
 * to openat). docs/worker.md, "What a check cannot do".
 */
#ifndef AUTOPACK_CHECK_SUID_H
#define AUTOPACK_CHECK_SUID_H

/* Set no_new_privs and the filter on the calling process (and what it starts). Returns
 * 0, or -1 with a message naming the step written to `status_fd`. */
int check_suid_forbid(int status_fd);

#endif
