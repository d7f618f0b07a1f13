/*
 * The database lock: an exclusive flock on <db>.lock, held by autopack-supervisor for its
 * whole life and by autopack-ctl for the duration of an offline write. The holder's pid
 * is written into the file so a refused process can name it.
 */
#ifndef AUTOPACK_STORE_LOCK_H
#define AUTOPACK_STORE_LOCK_H

#include <limits.h>
#include <sys/types.h>

/* What store_lock_acquire returns for a PostgreSQL database: no lock is taken, the server
 * orders the writers (and several supervisors share the database). */
#define STORE_LOCK_SERVER INT_MAX

/* Take the lock for the database at `db_path` without blocking. Returns the lock's file
 * descriptor (close-on-exec; the lock lasts until it is released), STORE_EBUSY with the
 * holder's pid in *holder (0 if unreadable), or STORE_EIO with errno set. */
int store_lock_acquire(const char *db_path, pid_t *holder);
/* Release a lock taken by store_lock_acquire; the lock file stays. */
void store_lock_release(int fd);

#endif
