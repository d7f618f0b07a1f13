/* The PostgreSQL backend of the store's database access (common/store/db.h): a libpq
 * connection to one database. Parameters travel as text; the server infers their types
 * from the statement (write CAST(?1 AS TEXT) where it cannot). */
#ifndef AUTOPACK_STORE_DB_PG_H
#define AUTOPACK_STORE_DB_PG_H

#include "common/store/db.h"

#include <libpq-fe.h>

/* Connect to the database named by the libpq connection URI `uri` (a canonical URL: no
 * password), with `password` (NULL: libpq's own sources, PGPASSWORD and the password
 * file) and `app` as application_name. Returns DB_OK, or DB_ERROR with libpq's message in
 * msg (never holding the password), *fault the kind of failure, and *out NULL. */
int db_pg_connect(const char *uri, const char *password, const char *app, struct db **out,
    enum db_fault *fault, char *msg, size_t msglen);
/* The libpq connection of a connection of this backend. */
PGconn *db_pg_conn(struct db *db);
/* Reconnect a connection whose server went away (its persistent statements are prepared
 * again when next run). DB_OK or DB_ERROR (db_errmsg says why). */
int db_pg_reset(struct db *db);
/* Whether the connection is up. */
bool db_pg_connected(struct db *db);

#endif
