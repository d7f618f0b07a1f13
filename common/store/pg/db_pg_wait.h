/* Waiting for the server's answer to a statement of the PostgreSQL backend: how long this
 * process's statements waited, what a statement that waits long waits for (a lock, and
 * the sessions that hold it), and giving a wait up. */
#ifndef AUTOPACK_STORE_DB_PG_WAIT_H
#define AUTOPACK_STORE_DB_PG_WAIT_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A wait is first reported once it has lasted this long, then every DB_PG_WAIT_EVERY_MS. */
#define DB_PG_WAIT_FIRST_MS 2000
#define DB_PG_WAIT_EVERY_MS 30000

/* What this process does while a statement waits for the server's answer; every member
 * may be NULL. */
struct db_pg_watch {
	/* Called once the wait has lasted DB_PG_WAIT_FIRST_MS, then every DB_PG_WAIT_EVERY_MS:
	 * `what` says what the statement waits for, read on a connection of its own (the lock,
	 * its table and the server processes that hold it, with how to find and end them). */
	void (*waiting)(double seconds, const char *what);
	/* Asked every 100 ms of a wait: the reason to give it up (the statement is cancelled
	 * on the server and fails saying so), or NULL to go on waiting. */
	const char *(*stop)(void);
	/* Called once a statement given up has been cancelled; may end the process.
	 * `answered`: the server ended it (the connection can take another statement); else
	 * it left the cancellation unanswered 2 s after the stop, and the connection is busy
	 * with it (another statement would wait for its answer without a limit). */
	void (*stopped)(const char *why, double seconds, bool answered);
	/* Called when a statement ended with its connection lost and a connection made again
	 * to its database is refused because the database does not exist (db_pg_gone: dropped,
	 * or renamed); `what` names the database and says what the server said. May end the
	 * process. */
	void (*gone)(const char *what);
};

/* Watch this process's waits with `w` (NULL: wait silently, as long as it takes). */
void db_pg_wait_watch(const struct db_pg_watch *w);
/* Make the cancel request of `c` ready for db_pg_wait_cancel (that of its last statement
 * when the connection is the same server process, else a new one): called before a
 * statement is sent, so that a stop signal taken between the send and db_pg_wait cancels
 * it too. When none can be made (out of memory), none is ready. */
void db_pg_wait_arm(PGconn *c);
/* After a PQsend* call on `c` that returned `sent` (its cancel request made ready by
 * db_pg_wait_arm before the send), wait for the statement's results and
 * return the last (an error's, if one failed), as PQexec would; NULL if nothing was sent.
 * `path` is the connection's search_path (db_pg_path), which the connection that reads
 * what a long wait waits for is set to.
 * `sql` names the statement for db_waited (common/store/db_waited.h). When given up (the watch's stop), the
 * statement is cancelled, its result is the cancellation's error (NULL, the connection
 * left busy, when the server has not answered it 2 s after), and the watch's stopped is
 * called. */
PGresult *db_pg_wait(PGconn *c, const char *path, int sent, const char *sql);
/* Run `sql` with its `nparams` parameters on a connection of its own to the server and
 * database of `c`, made with the same parameters under application name `app` (2 s at
 * most to connect, 2 s to answer), its search_path set to `path` (db_pg_path: the schema
 * of `c`'s tables, whatever the role's or the database's search_path says by then; NULL:
 * theirs), then closed: for a statement `c` cannot take, busy with another. Returns its result (rows, or a command's), or NULL with the reason (the
 * server's error, "no answer within 2 s", the connection's failure) in why (n bytes) and
 * *unanswered set when the statement was sent and no answer came: the server may still
 * run it (closing the connection does not stop a statement waiting for a lock), where an
 * error or a connection never made ran nothing. */
PGresult *db_pg_side_exec(PGconn *c, const char *path, const char *app, const char *sql,
    const char *const *params, int nparams, bool *unanswered, char *why, size_t n);
/* Whether the server refused connection `c` (not made, or lost and not made again)
 * because its database does not exist: dropped, or renamed, since it was made (the
 * server's words in English, as it sends them by default). */
bool db_pg_refused_missing(PGconn *c);
/* Whether the database of `c`, whose connection is lost, is gone from the server: a
 * connection of its own made with the same parameters (2 s at most) is refused as
 * db_pg_refused_missing says. `why` (n bytes) receives what the server said, or the
 * failure to connect. */
bool db_pg_gone(PGconn *c, char *why, size_t n);
/* What the last statement was last reported waiting for ("" when it was not). */
const char *db_pg_wait_reported(void);
/* Cancel the statement waiting now, if any, from just before it is sent (db_pg_wait_arm);
 * safe in a signal handler (PQcancel). */
void db_pg_wait_cancel(void);

#endif
