/*
 * PID 1 of a check command's PID namespace: worker/check.c starts the worker's own binary
 * as `autopack-worker --check-init FD DATA COMMAND [WSFD WORKSPACE TMPDIR READONLY]` in the
 * new namespaces, FD a socket to the worker. It waits for the worker's word that the
 * namespace is ready (its user and group ids mapped); with the last four, it finishes the
 * check's private temporary directories: makes TMPDIR there (empty; "" for none), and
 * WORKSPACE, on which it mounts WSFD (-1 and "" for none), and enters it, makes the private
 * directory READONLY read-only but for those two in it ("" for none), then drops CAP_SYS_ADMIN
 * and CAP_SETPCAP, which worker/check.c left it for that, from every set; it sets
 * RLIMIT_DATA to DATA bytes (0: none; worker/check_limits.h), runs
 * `/bin/sh -c COMMAND` in the worker's process group for the check (so
 * the worker's SIGTERM and SIGKILL to that group reach the command itself), reaps every
 * process orphaned in the namespace, and sends the worker how the command ended:
 * "X<wait status>", followed by " PATH" for each of /tmp, /var/tmp and /dev/shm that is a
 * tmpfs left full, or "E<message>" when /bin/sh could not be run or a step before failed
 * (the command is then not run). When it exits, the
 * kernel kills whatever is left in the namespace.
 */
#ifndef AUTOPACK_CHECK_INIT_H
#define AUTOPACK_CHECK_INIT_H

#define CHECK_INIT_FLAG "--check-init"

/* Run as the init described above (argv: the binary, CHECK_INIT_FLAG, FD, DATA, COMMAND,
 * and WSFD, WORKSPACE, TMPDIR, READONLY or none of them).
 * Never returns: exits 0 once it has reported, 126 when the worker is gone before the
 * namespace is ready or the report cannot be made, 2 on a malformed command line; each
 * failure is named on stderr. */
_Noreturn void check_init_main(int argc, char **argv);

#endif
