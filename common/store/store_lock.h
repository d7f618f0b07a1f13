/*
 * The database lock: an exclusive flock on the database file itself, so it belongs to the
 * file (its device:inode), not to a name — every hard link, and every path that reaches
 * the file, shares the one lock, and no side file can be removed to defeat it. It is held
 * by autopack-supervisor for its whole life and by autopack-ctl for the duration of an
 * offline write. SQLite's own locks are POSIX fcntl locks, which do not interact with
 * flock on Linux. The holder is named from /proc/locks.
 *
 * A process must not close the lock while it has an SQLite connection to the same file
 * open: closing any descriptor of a file drops every POSIX lock the process holds on it.
 * Take the lock before store_open and release it after store_close.
 */
#ifndef AUTOPACK_STORE_LOCK_H
#define AUTOPACK_STORE_LOCK_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/store/store.h"

/* What store_lock_acquire returns for a PostgreSQL database: no lock is taken, the server
 * orders the writers (and several supervisors share the database). */
#define STORE_LOCK_SERVER INT_MAX

/* Take the lock on the database file at `db_path` without blocking. Returns the lock's
 * file descriptor (close-on-exec; the lock lasts until it is released), STORE_EBUSY with
 * the holder's pid in *holder (0 if it cannot be found), STORE_ENOENT if there is no such
 * file, STORE_ENOTDB if it is not a regular file (a FIFO is never waited on), or
 * STORE_EIO with errno set; for a PostgreSQL URL, STORE_LOCK_SERVER. */
int store_lock_acquire(const char *db_path, pid_t *holder);
/* store_lock_acquire, tried again every 20 ms for up to `wait_ms` while the lock is held
 * by a process that is no autopack-supervisor, or by one /proc/locks does not name:
 * `autopack-ctl` asking whether a supervisor runs, or an offline command, holds it for
 * moments, and a start at that moment must not fail. A supervisor's hold is answered at
 * once. */
int store_lock_acquire_wait(const char *db_path, pid_t *holder, int wait_ms);
/* Whether process `pid` is an autopack-supervisor, by its command name (/proc/<pid>/comm,
 * which the kernel cuts to 15 bytes); false when it cannot be read. */
bool store_lock_holder_is_supervisor(pid_t pid);
/* The program name of lock holder `pid` in buf (n bytes): "autopack-supervisor" for a
 * supervisor (its command name is cut to 15 bytes), else its command name, else
 * `unknown` when it cannot be read (the process is gone, or /proc hides it). */
void store_lock_holder_name(pid_t pid, char *buf, size_t n, const char *unknown);
/* Release a lock taken by store_lock_acquire. */
void store_lock_release(int fd);
/* Return 0 if the lock `fd` is on the file `st` has open, else STORE_EMOVED naming both
 * (the file was replaced between locking and opening). */
int store_lock_check(int fd, const struct store *st, struct store_err *err);
/* The pid holding an exclusive flock on device:inode, from /proc/locks; 0 if none is
 * found. */
pid_t store_lock_holder(dev_t dev, ino_t ino);
/* The pids of other processes (not this one) holding a read mark of the wal-index of the
 * SQLite database at `db_path`: a POSIX lock on bytes 123 to 127 of its -shm, SQLite's
 * WAL_READ_LOCK(0) to (4), which a connection holds for as long as its read transaction
 * lasts, and which keeps a checkpoint from copying the write-ahead log past its
 * snapshot. Fills pids with up to `max` of them, from /proc/locks, and returns their
 * count; 0 when there is none or they cannot be read. */
int store_lock_wal_readers(const char *db_path, pid_t *pids, int max);

#endif
