/*
 * What a binary hands down to the processes it starts, and how it takes them down again:
 * the descriptors above stdio closed at exec, and every process of a session killed and
 * reaped. Linux only (close_range, /proc, pidfds).
 */
#ifndef AUTOPACK_PROCS_H
#define AUTOPACK_PROCS_H

#include <stdbool.h>
#include <sys/types.h>

/* Mark every descriptor from `first` up close-on-exec: close_range(CLOSE_RANGE_CLOEXEC),
 * else a walk of /proc/self/fd, else each descriptor below the open-files limit. */
void procs_cloexec_from(int first);

/* Whether the caller's child `pid` is one to leave alone (a live worker of the supervisor). */
typedef bool procs_keep_fn(pid_t pid, void *ctx);

/* Kill (SIGKILL) every process of session `sid` except `self`, and with `keep` every child
 * of the caller that keep(pid, ctx) does not keep (a process that left the session with
 * setsid and was orphaned: a child subreaper inherits it), again until none is left alive
 * (a zombie cannot write), reaping the zombies that are children of the caller. Gives up
 * after `wait_ms` with processes still alive (one stuck in the kernel). Returns how many
 * processes it killed, or -1 when some were still alive at the end. */
int procs_session_kill(pid_t sid, pid_t self, procs_keep_fn *keep, void *ctx, unsigned wait_ms);

/* For procs_session_kill: keep no child. */
bool procs_keep_none(pid_t pid, void *ctx);

#endif
