/* Opening and creating an autopack database on a PostgreSQL server: the backend's side
 * of store_open and store_init (common/store/store.h). */
#ifndef AUTOPACK_STORE_PG_H
#define AUTOPACK_STORE_PG_H

#include "common/store/store.h"

/* Connect to the database of canonical URL `url` (its password from the URL, PGPASSWORD
 * or the password file). STORE_ENOENT when the database does not exist (the message
 * says how to create it: autopack never does), else STORE_EIO naming the URL; *db NULL
 * on failure. */
int store_pg_connect(const char *url, struct db **db, struct store_err *err);
/* store_open for a PostgreSQL URL: connect, check the schema (as for SQLite), read the
 * identity (meta's uuid, the server's system identifier, the database name). STORE_READ
 * makes the session read-only. */
int store_pg_open(struct store *st, const char *url, enum store_mode mode, struct store_err *err);
/* store_init for a PostgreSQL URL: the whole schema and the meta row in one transaction
 * in the connection's current schema, which must hold no table. */
int store_pg_init(const char *url, char uuid[37], struct store_err *err);
/* store_identity_changed for PostgreSQL: STORE_EMOVED when meta's uuid, the server's
 * system identifier or the database name is no longer the one opened; 0 otherwise, also
 * when they cannot be read (a lost connection is the writer's to notice). */
int store_pg_identity_changed(struct store *st, struct store_err *err);
/* Read the server's identity of the connection: "<system identifier>/<database name>"
 * (heap). */
int store_pg_server_id(struct db *db, const char *url, char **id, struct store_err *err);

#endif
