/* Opening and creating an autopack database on a PostgreSQL server. */
#include "common/store/pg/store_pg.h"
#include "common/store/dburl_pg.h"
#include "common/store/pg/db_pg.h"
#include "common/store/pg/schema_pg.h"
#include "common/store/schema.sql.h"
#include "common/store/store_internal.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

/* The oldest server this program's SQL runs on (CTEs written AS MATERIALIZED), as
 * PQserverVersion counts versions. */
#define PG_OLDEST_SERVER 120000

/* Connect with the URL's password, if it had one; STORE_ENOENT for a missing database,
 * STORE_ENOTDB for a server older than PostgreSQL 12 (the connection closed). */
int store_pg_connect(const char *url, struct db **db, struct store_err *err)
{
	enum db_fault fault;
	char msg[600];
	const char *version;

	if (db_pg_connect(url, dburl_pg_password(url), program_invocation_short_name, db, &fault,
	        msg, sizeof msg) == DB_OK) {
		if (PQserverVersion(db_pg_conn(*db)) >= PG_OLDEST_SERVER)
			return 0;
		version = PQparameterStatus(db_pg_conn(*db), "server_version");
		store_fail(err, STORE_ENOTDB,
		    "%s: the server runs PostgreSQL %s; autopack needs PostgreSQL 12 or later", url,
		    version != NULL ? version : "of an unknown version");
		db_close(*db);
		*db = NULL;
		return STORE_ENOTDB;
	}
	if (fault == DB_FAULT_NOTDB)
		return store_fail(err, STORE_ENOENT,
		    "%s: %s (autopack never creates a database: create it with createdb or "
		    "CREATE DATABASE, then run autopack-ctl --db %s db init)",
		    url, msg, url);
	return store_fail(err, STORE_EIO, "%s: cannot connect: %s", url, msg);
}

/* Read the system identifier and the database name; STORE_EIO on failure. */
int store_pg_server_id(struct db *db, const char *url, char **id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db,
	    "SELECT CAST(system_identifier AS TEXT), current_database() FROM pg_control_system()",
	    &q);

	*id = NULL;
	if (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		*id = xasprintf("%s/%s", db_column_text(q, 0), db_column_text(q, 1));
		rc = DB_OK;
	}
	if (rc != DB_OK)
		rc = store_fail(err, STORE_EIO, "%s: reading the server's system identifier: %s",
		    url, db_errmsg(db));
	db_finalize(q);
	return rc;
}

/* Say where the meta table a connection did not find is: the search_path names no schema
 * this role can use, or other schemas of the database hold one (the search_path set by the
 * role, the database or PGOPTIONS to another schema, its first; named as they set
 * it, before the connection cut it to its first schema). `err` holds the "no meta table"
 * refusal (STORE_ENOTDB), which this extends; a failure to read leaves it as it is.
 * Returns STORE_EIO instead, with its own message, when the schema holds a meta table on
 * which this role has no privilege (information_schema lists only the tables a role may
 * use): it was refused as "not an autopack database", and db init went on to create the
 * tables. */
static int store_pg_meta_elsewhere(struct db *db, const char *url, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *why = NULL;

	if (db_prepare(db,
	        "SELECT current_schema(), (SELECT reset_val FROM pg_settings WHERE name ="
	        " 'search_path'), (SELECT"
	        " string_agg(n.nspname, ', ' ORDER BY n.nspname) FROM pg_class c JOIN"
	        " pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'meta' AND"
	        " c.relkind IN ('r', 'p') AND n.nspname IS DISTINCT FROM current_schema()),"
	        " (SELECT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON"
	        " n.oid = c.relnamespace WHERE c.relname = 'meta' AND c.relkind IN ('r', 'p')"
	        " AND n.nspname = current_schema()), current_user",
	        &q) == DB_OK &&
	    db_step(q) == DB_ROW) {
		const char *schema = db_column_text(q, 0), *path = db_column_text(q, 1),
		           *others = db_column_text(q, 2), *owner = db_column_text(q, 3),
		           *role = db_column_text(q, 4);

		if (schema != NULL && owner != NULL && role != NULL) {
			/* The names quoted as SQL identifiers, each '"' doubled: the GRANT runs as
			 * shown whatever they hold. */
			char *grant = db_sqlf(
			    "GRANT SELECT ON ALL TABLES IN SCHEMA \"%w\" TO \"%w\"", schema, role);

			store_fail(err, STORE_EIO,
			    "%s: role %s has no privilege on autopack's tables in schema %s (owned by "
			    "role %s); nothing was changed: grant it the privileges it needs (to read: "
			    "%s; to write, also INSERT and UPDATE on them, DELETE on llm_usage_events "
			    "and supervisor_commands, and USAGE ON ALL SEQUENCES), or connect as %s",
			    url, role, schema, owner, grant, owner);
			free(grant);
			db_finalize(q);
			return STORE_EIO;
		}
		if (schema == NULL)
			why = xasprintf(
			    "the search_path \"%s\" names no schema this role can use%s%s%s",
			    path != NULL ? path : "", others != NULL ? "; schema " : "",
			    others != NULL ? others : "",
			    others != NULL ? " holds one: set the search_path to it" : "");
		else if (others != NULL)
			why = xasprintf("none in schema %s, the first of the search_path \"%s\"; "
			                "schema %s holds one: set the search_path to it",
			    schema, path != NULL ? path : "", others);
	}
	db_finalize(q);
	if (why != NULL) {
		size_t n = strlen(err->text);

		snprintf(err->text + n, sizeof err->text - n, " (%s)", why);
	}
	free(why);
	return STORE_ENOTDB;
}

/* Connect, check the schema and read the identity; read-only sessions for STORE_READ. */
int store_pg_open(struct store *st, const char *url, enum store_mode mode, struct store_err *err)
{
	struct db *db = NULL;
	int rc;

	memset(st, 0, sizeof *st);
	rc = store_pg_connect(url, &db, err);
	if (rc != 0)
		return rc;
	if (mode == STORE_READ)
		rc = store_exec(
		    db, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", url, err);
	if (rc == 0)
		rc = store_schema_check(db, url, &st->schema_version, st->uuid, err);
	if (rc == STORE_ENOTDB && strstr(err->text, "(no meta table)") != NULL)
		rc = store_pg_meta_elsewhere(db, url, err);
	if (rc == STORE_EIDENT && mode == STORE_WRITE_REIDENTIFY)
		rc = 0;
	if (rc == 0 && mode != STORE_READ)
		rc = store_pg_writable(db, url, err);
	if (rc == 0 && mode != STORE_READ)
		rc = store_keys_ahead(db, url, err);
	if (rc == 0 && mode != STORE_READ && st->schema_version < SCHEMA_VERSION)
		rc = store_fail(err, STORE_EVERSION,
		    "%s: schema version %d is older than this program's (%d) and PostgreSQL "
		    "databases of that version cannot be upgraded",
		    url, st->schema_version, SCHEMA_VERSION);
	if (rc == 0)
		rc = store_pg_server_id(db, url, &st->server_id, err);
	if (rc == 0)
		rc = store_pg_identity_check(db, url, mode, st->uuid, st->server_id, err);
	if (rc != 0) {
		free(st->server_id);
		st->server_id = NULL;
		db_close(db);
		return rc;
	}
	st->db = db;
	st->backend = DB_PG;
	st->path = xstrdup(url);
	st->url = xstrdup(url);
	st->writable = mode != STORE_READ;
	return 0;
}

/* Check that the current schema exists and holds no table (nor view, materialized view
 * or foreign table), whatever this role may see of it: the catalog lists every table of
 * the schema, where information_schema lists only those the role has a privilege on, so
 * that a schema holding only tables of another role was taken for empty and the tables
 * created beside them. The tables found are named, those the role has no privilege on
 * said so. */
static int store_pg_check_empty(struct db *db, const char *url, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char found[300] = "";
	size_t len = 0, n = 0;
	int rc = db_prepare(db,
	    "SELECT pg_catalog.current_schema(), c.relname, CASE WHEN c.oid IS NULL OR"
	    " pg_catalog.has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE,"
	    " REFERENCES, TRIGGER') OR pg_catalog.has_any_column_privilege(c.oid, 'SELECT,"
	    " INSERT, UPDATE, REFERENCES') THEN 0 ELSE 1 END"
	    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid ="
	    " c.relnamespace AND n.nspname = pg_catalog.current_schema() AND c.relkind IN"
	    " ('r', 'p', 'v', 'm', 'f') RIGHT JOIN (SELECT 1) one ON true ORDER BY c.relname",
	    &q);
	const char *schema = NULL;
	char *schema_copy = NULL;

	while (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		const char *t = db_column_text(q, 1);
		bool unseen = db_column_int64(q, 2) != 0;

		rc = DB_OK;
		schema = db_column_text(q, 0);
		if (schema_copy == NULL && schema != NULL)
			schema_copy = xstrdup(schema);
		if (t == NULL)
			continue;
		if (len < sizeof found)
			len += (size_t)snprintf(found + len, sizeof found - len, "%s%s%s",
			    n ? ", " : "", t,
			    unseen ? " (on which this role has no privilege)" : "");
		n++;
	}
	if (rc != DB_DONE)
		rc = store_fail(
		    err, STORE_EIO, "%s: reading the table list: %s", url, db_errmsg(db));
	else if (schema_copy == NULL)
		rc = store_fail(err, STORE_ENOTDB,
		    "%s: no schema to create the tables in (none of the search_path exists); "
		    "autopack never creates a schema: create it, or set the search_path",
		    url);
	else if (n > 0)
		rc = store_fail(err, STORE_ENOTDB,
		    "%s: schema %s already holds %zu table%s (%s) but no autopack meta table; "
		    "db init needs an empty schema (db adopt takes over a Python Autopack "
		    "database); nothing was changed",
		    url, schema_copy, n, n == 1 ? "" : "s", found);
	else
		rc = 0;
	free(schema_copy);
	db_finalize(q);
	return rc;
}

/* Refuse the tables of `names` this role cannot see (store_pg.h), naming them and their
 * owner; STORE_EIO when the catalog cannot be read. */
int store_pg_unseen_tables(
    struct db *db, const char *url, const char *names, const char *what, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db,
	    "SELECT pg_catalog.string_agg(c.relname, ', ' ORDER BY c.relname),"
	    " pg_catalog.string_agg(DISTINCT pg_catalog.pg_get_userbyid(c.relowner), ', '),"
	    " current_user, pg_catalog.current_schema(), count(*)"
	    " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
	    " WHERE n.nspname = pg_catalog.current_schema() AND c.relkind IN ('r', 'p') AND"
	    " c.relname = ANY (pg_catalog.string_to_array(CAST(?1 AS TEXT), ',')) AND NOT"
	    " pg_catalog.has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE,"
	    " REFERENCES, TRIGGER') AND NOT pg_catalog.has_any_column_privilege(c.oid, 'SELECT,"
	    " INSERT, UPDATE, REFERENCES')",
	    &q);

	if (rc == DB_OK) {
		store_bind_text(q, 1, names);
		rc = db_step(q);
	}
	if (rc == DB_ROW && db_column_int64(q, 4) > 0)
		rc = store_fail(err, STORE_EIO,
		    "%s: role %s has no privilege on table%s %s in schema %s (owned by role %s), "
		    "which %s needs; nothing was changed: run %s as %s",
		    url, db_column_text(q, 2), db_column_int64(q, 4) == 1 ? "" : "s",
		    db_column_text(q, 0), db_column_text(q, 3), db_column_text(q, 1), what, what,
		    db_column_text(q, 1));
	else if (rc == DB_ROW)
		rc = 0;
	else
		rc = store_fail(
		    err, STORE_EIO, "%s: reading the tables of the schema: %s", url, db_errmsg(db));
	db_finalize(q);
	return rc;
}

/* Check that the connection's role may create tables in the current schema (CREATE on
 * it); STORE_EIO naming the role, the schema, its owner (the database's, for a schema
 * owned by pg_database_owner, as public is from PostgreSQL 15 on) and the GRANT that
 * gives it, where the first CREATE TABLE said only "permission denied for schema
 * public". */
static int store_pg_check_create(struct db *db, const char *url, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char *grant;
	int rc = db_prepare(db,
	    "SELECT pg_catalog.has_schema_privilege(pg_catalog.current_schema(), 'CREATE'),"
	    " pg_catalog.current_schema(), current_user,"
	    " CASE WHEN pg_catalog.pg_get_userbyid(n.nspowner) = 'pg_database_owner' THEN"
	    " (SELECT pg_catalog.pg_get_userbyid(d.datdba) FROM pg_catalog.pg_database d"
	    " WHERE d.datname = pg_catalog.current_database())"
	    " ELSE pg_catalog.pg_get_userbyid(n.nspowner) END"
	    " FROM pg_catalog.pg_namespace n WHERE n.nspname = pg_catalog.current_schema()",
	    &q);

	if (rc == DB_OK)
		rc = db_step(q);
	if (rc == DB_ROW && db_column_int64(q, 0) == 0) {
		grant = db_sqlf("GRANT CREATE ON SCHEMA \"%w\" TO \"%w\"", db_column_text(q, 1),
		    db_column_text(q, 2));
		rc = store_fail(err, STORE_EIO,
		    "%s: role %s may not create tables in schema %s (owned by role %s); nothing was"
		    " created: run db init as %s, or grant the role CREATE on the schema (%s)",
		    url, db_column_text(q, 2), db_column_text(q, 1), db_column_text(q, 3),
		    db_column_text(q, 3), grant);
		free(grant);
	} else if (rc == DB_ROW || rc == DB_DONE) {
		rc = 0;
	} else {
		rc = store_fail(err, STORE_EIO, "%s: reading the privileges on the schema: %s", url,
		    db_errmsg(db));
	}
	db_finalize(q);
	return rc;
}

/* Create the schema and meta in one transaction, or report the database already there. */
int store_pg_init(const char *url, char uuid[37], struct store_err *err)
{
	struct store st;
	struct db *db = NULL;
	char id[37], now[32], *by = NULL, *server = NULL;
	int rc = store_pg_open(&st, url, STORE_READ, err);

	if (rc == 0)
		return store_init_exists(&st, url, uuid, err);
	if (rc != STORE_ENOTDB)
		return rc;
	rc = store_uuid_v4(id, err);
	if (rc == 0)
		rc = store_pg_connect(url, &db, err);
	if (rc != 0)
		return rc;
	/* A schema that holds tables is refused as such before the privileges a writer needs
	 * on those of autopack's names are asked (a table runs of another role was refused as
	 * one "autopack's tables" it may not write); asked again in the transaction. */
	rc = store_pg_check_empty(db, url, err);
	if (rc == 0)
		rc = store_pg_writable(db, url, err);
	if (rc != 0) {
		db_close(db);
		return rc;
	}
	by = store_created_by();
	db_now(db, now);
	rc = store_begin(db, "starting the schema transaction", err);
	if (rc == 0)
		rc = store_pg_check_empty(db, url, err);
	if (rc == 0)
		rc = store_pg_check_create(db, url, err);
	if (rc == 0)
		rc = store_exec(db, SCHEMA_PG_SQL, "creating the schema", err);
	if (rc == 0)
		rc = store_meta_insert(db, id, now, by, SCHEMA_VERSION, err);
	if (rc == 0)
		rc = store_pg_server_id(db, url, &server, err);
	if (rc == 0)
		rc = store_pg_identity_write(db, url, server, err);
	if (rc == 0)
		rc = store_commit(db, "committing the schema", err);
	if (rc != 0)
		db_rollback(db);
	db_close(db);
	free(by);
	free(server);
	if (rc != 0)
		return rc;
	if (uuid != NULL)
		memcpy(uuid, id, sizeof id);
	return 0;
}

/* Compare meta's uuid and the server's identity with the ones opened. */
int store_pg_identity_changed(struct store *st, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char uuid[37] = "", *id = NULL;
	int rc;

	if (db_in_transaction(st->db) || clock_mono_ms() - st->identity_checked_ms < 1000)
		return 0;
	st->identity_checked_ms = clock_mono_ms();
	rc = db_prepare(st->db, "SELECT db_uuid FROM meta WHERE id = 1", &q);
	if (rc == DB_OK && db_step(q) == DB_ROW && db_column_text(q, 0) != NULL)
		strlcpy_ap(uuid, db_column_text(q, 0), sizeof uuid);
	db_finalize(q);
	if (uuid[0] == '\0' || store_pg_server_id(st->db, st->url, &id, NULL) != 0)
		return 0;
	rc = 0;
	if (strcmp(uuid, st->uuid) != 0)
		rc = store_fail(err, STORE_EMOVED,
		    "%s: the database's uuid changed from %s to %s after it was opened", st->url,
		    st->uuid, uuid);
	else if (strcmp(id, st->server_id) != 0)
		rc = store_fail(err, STORE_EMOVED,
		    "%s: the connection now reaches another database (server/database %s, opened "
		    "as %s)",
		    st->url, id, st->server_id);
	free(id);
	return rc;
}

/* Whether the connection to the server is gone. */
bool store_connection_lost(struct store *st)
{
	return st->backend == DB_PG && !db_pg_connected(st->db);
}

/* Begin connecting again. */
int store_reconnect_start(struct store *st, int *fd, struct store_err *err)
{
	*fd = -1;
	if (st->backend != DB_PG)
		return 0;
	if (db_pg_reset_start(st->db, fd) != DB_OK)
		return store_fail(
		    err, STORE_EIO, "%s: cannot connect again: %s", st->url, db_errmsg(st->db));
	return 0;
}

/* Drive the connection; once made, set it up and check that it is the same database. */
int store_reconnect_poll(struct store *st, int *fd, bool *write, struct store_err *err)
{
	enum db_pg_poll p;

	*fd = -1;
	*write = false;
	if (st->backend != DB_PG)
		return 0;
	p = db_pg_reset_poll(st->db, fd);
	if (p == DB_PG_POLL_READ || p == DB_PG_POLL_WRITE) {
		*write = p == DB_PG_POLL_WRITE;
		return store_fail(err, STORE_EBUSY, "%s: connecting again", st->url);
	}
	if (p != DB_PG_POLL_OK && db_fault(st->db) == DB_FAULT_NOTDB)
		return store_fail(err, STORE_EMOVED,
		    "%s: the database %s is gone from the server (dropped, or renamed, after it was "
		    "opened; connecting to it again: %s)",
		    st->url, PQdb(db_pg_conn(st->db)), db_errmsg(st->db));
	if (p != DB_PG_POLL_OK)
		return store_fail(
		    err, STORE_EIO, "%s: cannot connect again: %s", st->url, db_errmsg(st->db));
	st->identity_checked_ms = 0;
	st->conn_gen++;
	if (st->pg_setup != NULL && store_exec(st->db, st->pg_setup, st->url, err) != 0)
		return STORE_EIO;
	return store_pg_identity_changed(st, err);
}

/* Give up the connection being made. */
void store_reconnect_abandon(struct store *st)
{
	if (st->backend == DB_PG)
		db_pg_reset_abandon(st->db);
}

/* Connect again, waiting with poll(2) for the socket at each step, up to `ms` in all. */
int store_reconnect_wait(struct store *st, uint64_t ms, struct store_err *err)
{
	uint64_t until = clock_mono_ms() + ms;
	struct pollfd p;
	bool write = true;
	int fd, rc = store_reconnect_start(st, &fd, err);

	while (rc == 0 && st->backend == DB_PG) {
		uint64_t now = clock_mono_ms();

		if (now >= until) {
			store_reconnect_abandon(st);
			return store_fail(err, STORE_EIO,
			    "%s: cannot connect again: no answer within %.1f s", st->url,
			    (double)ms / 1000.0);
		}
		p = (struct pollfd){ .fd = fd, .events = write ? POLLOUT : POLLIN };
		if (poll(&p, 1, (int)(until - now)) < 0 && errno != EINTR)
			return store_fail(err, STORE_EIO, "%s: cannot connect again: poll: %s",
			    st->url, strerror(errno));
		rc = store_reconnect_poll(st, &fd, &write, err);
		if (rc != STORE_EBUSY)
			break;
		rc = 0;
	}
	if (rc != 0 && store_connection_lost(st))
		store_reconnect_abandon(st);
	return rc;
}
