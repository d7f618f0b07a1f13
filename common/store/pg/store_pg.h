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
 * identity (meta's uuid, the server's system identifier, the database name) and refuse
 * a server identity other than the one meta records (store_pg_identity_check).
 * STORE_READ makes the session read-only. */
int store_pg_open(struct store *st, const char *url, enum store_mode mode, struct store_err *err);
/* store_init for a PostgreSQL URL: the whole schema and the meta row (with the server's
 * identity) in one transaction in the connection's current schema, which must hold no
 * table. */
int store_pg_init(const char *url, char uuid[37], struct store_err *err);
/* store_identity_changed for PostgreSQL: STORE_EMOVED when meta's uuid, the server's
 * system identifier or the database name is no longer the one opened; 0 otherwise, also
 * when they cannot be read (a lost connection is the writer's to notice). */
int store_pg_identity_changed(struct store *st, struct store_err *err);
/* 0 when none of the tables named in `names` (comma-separated) is in the connection's
 * current schema unseen by its role (one on which it has no privilege, which
 * information_schema does not list to it); else STORE_EIO naming them, their owner, and
 * that `what`, a command, needs them and is run by their owner. STORE_EIO too when the catalog cannot be
 * read. */
int store_pg_unseen_tables(
    struct db *db, const char *url, const char *names, const char *what, struct store_err *err);
/* Read the server's identity of the connection: "<system identifier>/<database name>"
 * (heap). */
int store_pg_server_id(struct db *db, const char *url, char **id, struct store_err *err);

/* --- common/store/pg/store_pg_writable.c --- */

/* 0 when connection `db` can write; STORE_EIO naming the cause when the server is a
 * standby (in recovery) or default_transaction_read_only is on, with where it was set
 * (the role, the database, both, the connection's options, the server's configuration)
 * and how to undo it, or when that cannot be read (the server's error, or what was asked
 * when pg_settings holds no row of it); also STORE_EIO when the role lacks a privilege a
 * writer needs on autopack's tables that exist (SELECT, INSERT, UPDATE, DELETE; USAGE on
 * their SERIAL keys' sequences), naming the first and the GRANT that gives them. Asked
 * before a write open writes. */
int store_pg_writable(struct db *db, const char *url, struct store_err *err);
/* Why connection `db` takes no write, into why (at most n bytes): the server is a standby,
 * or default_transaction_read_only is on (where it was set and how to undo it); "" when
 * it takes writes. STORE_EIO when that cannot be read. */
int store_pg_read_only_why(struct db *db, char *why, size_t n, struct store_err *err);

/* --- common/store/pg/store_pg_identity.c --- */

/* Compare the server identity recorded in meta.server_id with `live`, the connection's:
 * STORE_EIDENT naming both (and db reidentify) when they differ, except for
 * STORE_WRITE_REIDENTIFY. A write open of a database that records none (made before
 * meta.server_id existed) first adds the column where missing and records `live`, in
 * one transaction; a read-only open then has nothing to compare. `uuid` names the
 * database in the message. */
int store_pg_identity_check(struct db *db, const char *url, enum store_mode mode, const char *uuid,
    const char *live, struct store_err *err);
/* Read meta.server_id into *stored: a heap string, NULL when none is recorded. */
int store_pg_identity_read(struct db *db, const char *url, char **stored, struct store_err *err);
/* Write `id` into meta.server_id, in the caller's transaction. */
int store_pg_identity_write(struct db *db, const char *url, const char *id, struct store_err *err);

/* --- common/store/pg/store_pg_commit.c --- */

/* What a transaction's COMMIT is settled by, read inside it before the COMMIT. */
struct store_pg_doubt {
	char xid[32];     /* its id (with its epoch), "" when it could not be read */
	bool none;        /* it had no id: it wrote nothing */
	int64_t pid;      /* its server process */
	char started[64]; /* when the server started */
	char system[32];  /* the server's system identifier */
};
/* What came of a COMMIT whose answer was lost. */
enum store_pg_settled {
	STORE_PG_COMMITTED,
	STORE_PG_NOT_COMMITTED,
	STORE_PG_UNKNOWN,
};
/* Read, inside the open transaction of `db`, what settles its COMMIT should its answer be
 * lost: 0, or -1 (m->xid left empty) when it cannot be read. */
int store_pg_commit_mark(struct db *db, struct store_pg_doubt *m);
/* Settle a COMMIT of the transaction `m` describes whose answer was lost with the
 * connection: connect again (trying for up to 30 s), end the old session while it still
 * holds the transaction (it could commit it later), and read the transaction's status:
 * committed, not committed, or unknown (the server could not be reached, the session not
 * ended, or the server restarted and the id says committed: an id it had not made durable
 * may be another transaction's); `why` says which and why. */
enum store_pg_settled store_pg_commit_settle(
    struct db *db, const struct store_pg_doubt *m, char *why, size_t whylen);

#endif
