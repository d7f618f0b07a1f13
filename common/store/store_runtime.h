/*
 * The per-user runtime directory and the names in it that derive from a database's
 * identity. The directory is the first that applies of: /run/autopack when this uid owns
 * it (the systemd unit makes it, RuntimeDirectory=autopack) or is root (it is made);
 * $XDG_RUNTIME_DIR/autopack; /run/user/<uid>/autopack; /tmp/autopack-<uid>. It is never
 * under /tmp when another applies, since a service's PrivateTmp= (or any private mount of
 * /tmp) would hide it from the other supervisors of the same user. It is private: mode
 * 0700, owned by the user. In it:
 *  - the default control socket, <uuid>-<device>-<inode>.sock: named by the uuid AND the
 *    file, so a byte copy of a database (same uuid, another file) never shares it;
 *  - the uuid claim, <uuid>.claim: a flock that one live supervisor per uuid holds, with
 *    its pid, URL and device:inode written in it, so a supervisor of a copy is refused
 *    while a supervisor of the original runs (and the other way round).
 * A PostgreSQL database has no file and is shared by several supervisors: its default
 * socket is named by the uuid and the supervisor's pid, and nothing is claimed.
 * A claim is removed by its holder as it exits, and by the next claimer when nobody holds
 * it (its holder was killed); a claim is only removed while locked, and a claimer checks
 * that the file it locked is still the one at the path, so two processes never each lock
 * a different file of the same name.
 */
#ifndef AUTOPACK_STORE_RUNTIME_H
#define AUTOPACK_STORE_RUNTIME_H

#include "common/store/store.h"

#define STORE_RUNTIME_RUN "/run/autopack"

/* Create the runtime directory if needed and check that it is private; the path (heap),
 * or NULL with a message in err. */
char *store_runtime_dir(struct store_err *err);
/* The default control socket of the database open in `st` (heap), for a PostgreSQL
 * database this process's own; nothing is checked or created. */
char *store_runtime_socket(const struct store *st);
/* Claim the uuid of the database open in `st` for this process (creating the runtime
 * directory if needed): the claim's descriptor
 * (close-on-exec; the claim lasts until it is closed), STORE_EBUSY if a live process of
 * another file holds it (the message names its pid, URL and device:inode and the fix), or
 * STORE_EIO; for a PostgreSQL database STORE_LOCK_SERVER (store_lock.h), claiming
 * nothing. */
int store_runtime_claim(const struct store *st, struct store_err *err);
/* Keep the claim *fd of the database open in `st`: when its file is no longer the one at
 * its path (removed or replaced since it was taken: the runtime directory removed or
 * cleaned), claim the uuid again and close the old claim. Returns 0 when it was in place
 * (also for a negative fd or STORE_LOCK_SERVER), 1 when it was taken again (*fd the new
 * claim), or store_runtime_claim's error (*fd left as it was; without it a supervisor of
 * a byte copy of the database would not be refused). */
int store_runtime_claim_keep(int *fd, const struct store *st, struct store_err *err);
/* Remove the claim `fd` of the database open in `st` (unless it was replaced) and drop
 * it; nothing for a negative fd or STORE_LOCK_SERVER. */
void store_runtime_release(int fd, const struct store *st);

#endif
