/*
 * What a binary hands down to the processes it starts, and how it takes them down again:
 * the descriptors above stdio closed at exec, and every process of a session killed and
 * reaped. Linux only (close_range, /proc, pidfds, PR_SET_CHILD_SUBREAPER).
 */
#ifndef AUTOPACK_PROCS_H
#define AUTOPACK_PROCS_H

#include <stdbool.h>
#include <sys/types.h>

/* Put /dev/null, opened read-only, on each of the standard descriptors 0, 1 and 2 that is
 * closed (a parent that ran this binary with `<&-`, `>&-` or `2>&-`), so that no
 * descriptor the process opens later takes a standard number: the event loop's own, a
 * socket or a file would otherwise receive what is printed to stdout or logged to stderr.
 * A write to such a stream fails with EBADF, as on a closed one, and is reported where it
 * was before. A descriptor it cannot open is left closed (nothing else could open one
 * either). */
void procs_stdio_open(void);

/* Mark every descriptor from `first` up close-on-exec: close_range(CLOSE_RANGE_CLOEXEC),
 * else a walk of /proc/self/fd, else each descriptor below the open-files limit. */
void procs_cloexec_from(int first);

/* Whether the caller's child `pid` is one to leave alone (a live worker of the supervisor). */
typedef bool procs_keep_fn(pid_t pid, void *ctx);

/* Kill (SIGKILL) every process of session `sid` except `self`, and with `keep` every child
 * of the caller that keep(pid, ctx) does not keep (a process that left the session with
 * setsid and was orphaned: a child subreaper inherits it), again until none is left alive
 * (a zombie cannot write), reaping the zombies that are children of the caller. Session
 * `sid` must have begun in the caller or in one of its descendants (the caller itself, or
 * a child it started), and no kept child may hold any of it. A caller that is a child
 * subreaper has only its descendants read, through /proc/<pid>/task/<tid>/children, the
 * subtrees of the children it keeps left out; any other caller, or a kernel without those
 * files, has every process of /proc read. Gives up after `wait_ms` with processes still
 * alive (one stuck in the kernel). Returns how many processes it killed, or -1 when some
 * were still alive at the end. */
int procs_session_kill(pid_t sid, pid_t self, procs_keep_fn *keep, void *ctx, unsigned wait_ms);

/* For procs_session_kill: keep no child. */
bool procs_keep_none(pid_t pid, void *ctx);

/* Whether process `pid` descends from process `ancestor` (through the parents /proc
 * names, up to one started before the ancestor): 1, with *child set to the ancestor's
 * child on the way (`pid` itself when it is that child); 0 when it does not; -1 with
 * errno when /proc/<pid> cannot be read (ENOENT: the process is gone). */
int procs_descends_from(pid_t pid, pid_t ancestor, pid_t *child);

/* The fields of /proc/<pid>/stat that follow the command's name, from the space before
 * the state on (" S 1 2 ..."), read with one open, read and close (no stdio) into buf
 * (n bytes; 512 hold the first 22 fields, to the start time, whatever their values). The
 * name may hold spaces and parentheses (`a) R 1 (b`): it ends at the last ')'. Returns a
 * pointer into buf, or NULL when the process is gone or the file holds no ')'. */
const char *procs_stat_text(pid_t pid, char *buf, size_t n);

/* The command name of process `pid` (/proc/<pid>/comm, its newline left out) in buf (n
 * bytes). Returns false, with buf "", when the process is gone or its name cannot be
 * read. */
bool procs_comm(pid_t pid, char *buf, size_t n);

/* The process tracing `pid` (the TracerPid of /proc/<pid>/status): its pid, 0 when none
 * does, or -1 when the file cannot be read or holds no such line. */
pid_t procs_tracer(pid_t pid);

#endif
