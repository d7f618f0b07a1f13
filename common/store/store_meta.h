/* The meta row beyond what every open reads: the running supervisor's record (written by
 * the supervisor) and the database's identity, renewed for a copy. */
#ifndef AUTOPACK_STORE_META_H
#define AUTOPACK_STORE_META_H

#include "common/store/store.h"

/* Read the pid and control socket the last supervisor recorded; *pid is 0 and *socket
 * NULL when none is recorded. *socket is a heap string. */
int store_meta_supervisor(struct store *st, int64_t *pid, char **socket, struct store_err *err);

/* Give the database open for writing in `st` a fresh random uuid, in one transaction: the
 * new meta.db_uuid, the supervisor record cleared (a copy carries its original's), on
 * PostgreSQL the connection's server identity as meta.server_id, and a control_log row
 * ("db reidentify") that records the previous uuid (and server identity). Sets st->uuid and
 * copies the previous one (as stored, cut to 36 characters) into `previous`. The caller
 * holds the database lock. */
int store_meta_reidentify(struct store *st, char previous[37], struct store_err *err);

#endif
