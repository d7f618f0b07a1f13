/* The PostgreSQL backend of the store's database access (common/store/db.h): a libpq
 * connection to one database. Parameters travel as text; the server infers their types
 * from the statement (write CAST(?1 AS TEXT) where it cannot). */
#ifndef AUTOPACK_STORE_DB_PG_H
#define AUTOPACK_STORE_DB_PG_H

#include "common/store/db.h"

#include <libpq-fe.h>

/* The server's clock now, as epoch microseconds (a BIGINT): what the times written by
 * this process are read from (db_clock_set). */
#define DB_PG_CLOCK_US                                                                             \
	"CAST(round(extract(epoch FROM pg_catalog.clock_timestamp()) * 1000000) AS BIGINT)"

/* Connect to the database named by the libpq connection URI `uri` (a canonical URL: no
 * password), with `password` (NULL: libpq's own sources, PGPASSWORD and the password
 * file) and `app` as application_name. Returns DB_OK, or DB_ERROR with libpq's message in
 * msg (never holding the password), *fault the kind of failure, and *out NULL. */
int db_pg_connect(const char *uri, const char *password, const char *app, struct db **out,
    enum db_fault *fault, char *msg, size_t msglen);
/* Copy the failure of connection `c` (libpq's message; "out of memory" for a NULL `c`)
 * into msg (msglen bytes) without its trailing white space. */
void db_pg_conn_msg(PGconn *c, char *msg, size_t msglen);
/* The libpq connection of a connection of this backend. */
PGconn *db_pg_conn(struct db *db);
/* The search_path of the connection's first session, cut to the one schema it resolved to
 * (an SQL identifier, quoted as needed), which every connection made again is set to
 * whatever the role's or the database's search_path says by then; NULL when it resolved to
 * none (no schema of the path exists or may be used). */
const char *db_pg_path(struct db *db);
/* Begin connecting again a connection whose server went away, without waiting
 * (PQresetStart: the old socket is closed; its persistent statements are prepared again
 * when next run); db_pg_reset_poll makes it. Until it is made, every statement fails at
 * once as on a lost connection. DB_OK with *fd the socket to wait on (for writing), or
 * DB_ERROR (db_errmsg says why). A host name is resolved here, waiting for the resolver;
 * an address is not. */
int db_pg_reset_start(struct db *db, int *fd);
/* What a connection being made waits for, or how it ended. */
enum db_pg_poll {
	DB_PG_POLL_READ,   /* its socket to be readable */
	DB_PG_POLL_WRITE,  /* its socket to be writable */
	DB_PG_POLL_OK,     /* made, with the session settings */
	DB_PG_POLL_FAILED, /* failed (db_errmsg says why) */
};
/* Drive the connection begun by db_pg_reset_start once its socket is ready as last asked
 * (at first: writable), without waiting; *fd receives the socket to wait on next (it may
 * change from one step to the next), -1 once it has ended. */
enum db_pg_poll db_pg_reset_poll(struct db *db, int *fd);
/* Give up the connection being made (its time is up): it stays down, and statements fail
 * at once. */
void db_pg_reset_abandon(struct db *db);
/* Whether the connection is up. */
bool db_pg_connected(struct db *db);

#endif
