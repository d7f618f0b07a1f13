/* Whether a PostgreSQL connection can write, asked before anything is written: a standby
 * (a server in recovery) and default_transaction_read_only set on (for the role, the
 * database, the connection or the server) make every write fail with the server's
 * "cannot execute INSERT in a read-only transaction", which names neither; a role that
 * lacks a privilege on autopack's tables fails a write later with "permission denied for
 * table ...", after the writes before it; an UNLOGGED table takes writes, and loses them
 * at the server's next crash. */
#include "common/store/pg/store_pg.h"
#include "common/store/db.h"
#include "common/store/schema.sql.h"
#include "common/store/store_internal.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Where default_transaction_read_only was set (pg_settings.source) and how to undo it,
 * into buf; the role and the database are quoted as SQL identifiers in the statement that
 * undoes it (db_sqlf's %w: each '"' doubled), so that it runs as shown whatever the names
 * hold. */
static void store_pg_readonly_where(
    const char *source, const char *role, const char *dbname, char *buf, size_t n)
{
	char *undo = NULL;

	if (strcmp(source, "user") == 0) {
		undo = db_sqlf("ALTER ROLE \"%w\" RESET default_transaction_read_only", role);
		snprintf(buf, n,
		    "for role %s (ALTER ROLE … SET); to write, connect as a role that may, or "
		    "run %s",
		    role, undo);
	} else if (strcmp(source, "database") == 0) {
		undo = db_sqlf("ALTER DATABASE \"%w\" RESET default_transaction_read_only", dbname);
		snprintf(buf, n, "for database %s (ALTER DATABASE … SET); to write, run %s", dbname,
		    undo);
	} else if (strcmp(source, "database user") == 0) {
		undo = db_sqlf(
		    "ALTER ROLE \"%w\" IN DATABASE \"%w\" RESET default_transaction_read_only",
		    role, dbname);
		snprintf(buf, n,
		    "for role %s in database %s (ALTER ROLE … IN DATABASE … SET); to write, run %s",
		    role, dbname, undo);
	} else if (strcmp(source, "client") == 0)
		snprintf(buf, n, "by the connection's options (PGOPTIONS); to write, leave it out");
	else if (strcmp(source, "configuration file") == 0 || strcmp(source, "command line") == 0)
		snprintf(buf, n, "in the server's %s; to write, turn it off there", source);
	else
		snprintf(buf, n, "(its source: %s)", source);
	free(undo);
}

/* The tables of a PostgreSQL database alone (schema_pg.h), besides those of
 * store_schema_tables: the fleet's, which every supervisor writes. */
static const char store_pg_fleet_tables[] =
    "supervisors,supervisor_commands,supervisor_command_results";

/* The tables a writer deletes from, comma-separated: llm_usage_events (the reserved first
 * try an attempt never announced, DS_ATT_UNRESERVE in store_drain_attempt.c) and
 * supervisor_commands (a command whose answer was read, store_fleet_command_forget in
 * store_fleet.c; its answers go with it by ON DELETE CASCADE, which the server runs as
 * the table's owner). No other statement deletes: a writer needs DELETE on these alone. */
static const char store_pg_deleted[] = "llm_usage_events,supervisor_commands";

/* The privileges a writer needs that the connection's role lacks, the first of them in
 * the order asked (SELECT, INSERT, UPDATE on each of autopack's tables in the current
 * schema that exists, the fleet's too; DELETE on those of store_pg_deleted; then USAGE on
 * the sequences of their SERIAL keys), with how many more are lacking, the schema, the
 * role, the owner of the meta table and the tables of store_pg_deleted that exist
 * (comma-separated). ?1 lists the tables, ?2 store_pg_deleted. */
static const char store_pg_lacking_sql[] =
    "WITH t AS (SELECT c.oid, c.relname FROM pg_catalog.pg_class c JOIN"
    " pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname ="
    " pg_catalog.current_schema() AND c.relkind IN ('r', 'p') AND c.relname = ANY"
    " (pg_catalog.string_to_array(?1, ','))),"
    " del AS (SELECT relname FROM t WHERE relname = ANY (pg_catalog.string_to_array(?2, ','))),"
    " lack AS (SELECT p.o, p.priv, 'table' AS kind, t.relname FROM t CROSS JOIN"
    " unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) WITH ORDINALITY AS p(priv, o)"
    " WHERE (p.priv <> 'DELETE' OR t.relname IN (SELECT relname FROM del))"
    " AND NOT pg_catalog.has_table_privilege(t.oid, p.priv)"
    " UNION ALL SELECT 5, 'USAGE', 'sequence', s.relname FROM t JOIN pg_catalog.pg_depend"
    " d ON d.refobjid = t.oid AND d.deptype = 'a' AND d.classid = CAST('pg_catalog.pg_class'"
    " AS pg_catalog.regclass) AND d.refclassid = d.classid JOIN pg_catalog.pg_class s ON"
    " s.oid = d.objid WHERE CASE WHEN s.relkind = 'S' THEN NOT"
    " pg_catalog.has_sequence_privilege(s.oid, 'USAGE, UPDATE') ELSE false END)"
    " SELECT priv, kind, relname, (SELECT count(*) FROM lack) - 1,"
    " pg_catalog.current_schema(), current_user, (SELECT"
    " pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c JOIN"
    " pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'meta' AND"
    " n.nspname = pg_catalog.current_schema()), (SELECT pg_catalog.string_agg(relname, ','"
    " ORDER BY relname) FROM del) FROM lack ORDER BY o, relname LIMIT 1";

/* The statements that give role `role` what a writer needs on autopack's tables in schema
 * `schema`, `deleted` the tables of store_pg_deleted that exist there (comma-separated, or
 * NULL for none); every name quoted as an SQL identifier (db_sqlf's %w: each '"' doubled),
 * so that they run as shown whatever the names hold. Returns a heap string. */
static char *store_pg_grant(const char *schema, const char *role, const char *deleted)
{
	struct strbuf b = { 0 };
	char *copy = xstrdup(deleted != NULL ? deleted : ""), *save = NULL, *part;
	const char *sep = "GRANT DELETE ON TABLE ";

	part = db_sqlf("GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA \"%w\" TO \"%w\"; ",
	    schema, role);
	strbuf_puts(&b, part);
	free(part);
	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		part = db_sqlf("%s\"%w\".\"%w\"", sep, schema, t);
		strbuf_puts(&b, part);
		free(part);
		sep = ", ";
	}
	if (sep[0] == ',') {
		part = db_sqlf(" TO \"%w\"; ", role);
		strbuf_puts(&b, part);
		free(part);
	}
	part = db_sqlf("GRANT USAGE ON ALL SEQUENCES IN SCHEMA \"%w\" TO \"%w\"", schema, role);
	strbuf_puts(&b, part);
	free(part);
	free(copy);
	return b.s;
}

/* 0 when the connection's role holds every privilege a writer needs on autopack's tables
 * (those of them that exist: none before db init, the original's before db adopt), else
 * STORE_EIO naming the first it lacks, its table, and the GRANT that gives them all. */
static int store_pg_privileged(struct db *db, const char *url, struct store_err *err)
{
	const char *names[64];
	size_t n = store_schema_tables(SCHEMA_VERSION, names, ARRAY_SIZE(names));
	struct strbuf list = { 0 };
	struct db_stmt *q = NULL;
	int rc;

	for (size_t i = 0; i < n; i++)
		strbuf_printf(&list, "%s,", names[i]);
	strbuf_puts(&list, store_pg_fleet_tables);
	rc = db_prepare(db, store_pg_lacking_sql, &q);
	if (rc == DB_OK) {
		db_bind_text(q, 1, list.s);
		db_bind_text(q, 2, store_pg_deleted);
		rc = db_step(q);
	}
	if (rc == DB_ROW) {
		const char *schema = db_column_text(q, 4), *role = db_column_text(q, 5),
		           *owner = db_column_text(q, 6);
		int64_t more = db_column_int64(q, 3);
		char also[80] = "", *grant;

		schema = schema != NULL ? schema : "?";
		role = role != NULL ? role : "?";
		grant = store_pg_grant(schema, role, db_column_text(q, 7));
		if (more > 0)
			snprintf(also, sizeof also, " (and %lld more privilege%s on them)",
			    (long long)more, more == 1 ? "" : "s");
		rc = store_fail(err, STORE_EIO,
		    "%s: role %s may not write autopack's tables in schema %s (owned by role %s): "
		    "it lacks %s on %s %s%s; nothing was written: grant what a writer needs (%s), "
		    "or connect as %s",
		    url, role, schema, owner != NULL ? owner : "?", db_column_text(q, 0),
		    db_column_text(q, 1), db_column_text(q, 2), also, grant,
		    owner != NULL ? owner : "the owner");
		free(grant);
	} else if (rc == DB_DONE) {
		rc = 0;
	} else {
		rc = store_fail(err, STORE_EIO,
		    "%s: reading the role's privileges on autopack's tables: %s", url,
		    db_errmsg(db));
	}
	db_finalize(q);
	free(list.s);
	return rc;
}

/* Autopack's tables in the current schema that are UNLOGGED (?1 lists the tables), in
 * order of name, their count, and the schema. */
static const char store_pg_unlogged_sql[] =
    "SELECT c.relname, count(*) OVER (), pg_catalog.current_schema() FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname ="
    " pg_catalog.current_schema() AND c.relkind IN ('r', 'p') AND c.relpersistence = 'u'"
    " AND c.relname = ANY (pg_catalog.string_to_array(?1, ',')) ORDER BY c.relname";

/* 0 when none of autopack's tables (the fleet's too) is UNLOGGED, else STORE_EIO naming
 * them and the ALTER TABLE … SET LOGGED that makes each crash-safe again: the server
 * writes an unlogged table's rows to no write-ahead log and empties the table after a
 * crash or an immediate stop, so that what autopack committed there, and told its workers
 * was on disk, would be lost. */
static int store_pg_logged(struct db *db, const char *url, struct store_err *err)
{
	const char *names[64];
	size_t n = store_schema_tables(SCHEMA_VERSION, names, ARRAY_SIZE(names));
	struct strbuf list = { 0 }, tables = { 0 }, fix = { 0 };
	struct db_stmt *q = NULL;
	int64_t count = 0;
	int rc;

	for (size_t i = 0; i < n; i++)
		strbuf_printf(&list, "%s,", names[i]);
	strbuf_puts(&list, store_pg_fleet_tables);
	rc = db_prepare(db, store_pg_unlogged_sql, &q);
	if (rc == DB_OK)
		db_bind_text(q, 1, list.s);
	while (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		const char *t = db_column_text(q, 0), *schema = db_column_text(q, 2);
		char *one = db_sqlf("ALTER TABLE \"%w\".\"%w\" SET LOGGED",
		    schema != NULL ? schema : "", t != NULL ? t : "");

		count = db_column_int64(q, 1);
		strbuf_printf(&tables, "%s%s", tables.s != NULL ? ", " : "", t != NULL ? t : "?");
		strbuf_printf(&fix, "%s%s", fix.s != NULL ? "; " : "", one);
		free(one);
		rc = DB_OK;
	}
	if (rc != DB_DONE)
		rc = store_fail(err, STORE_EIO,
		    "%s: reading whether autopack's tables are logged: %s", url, db_errmsg(db));
	else if (count > 0)
		rc = store_fail(err, STORE_EIO,
		    "%s: %s %s %s UNLOGGED: the server writes none of %s rows to its write-ahead log and "
		    "empties %s after a crash or an immediate stop, so that what autopack commits "
		    "there, and tells its workers is on disk, would be lost; nothing was written: "
		    "run %s",
		    url, count == 1 ? "table" : "tables", tables.s, count == 1 ? "is" : "are",
		    count == 1 ? "its" : "their", count == 1 ? "it" : "them", fix.s);
	else
		rc = 0;
	db_finalize(q);
	free(list.s);
	free(tables.s);
	free(fix.s);
	return rc;
}

int store_pg_writable(struct db *db, const char *url, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char where[400];
	int rc = db_prepare(db,
	    "SELECT pg_is_in_recovery(), s.setting, s.source, current_user, current_database()"
	    " FROM pg_settings s WHERE s.name = 'default_transaction_read_only'",
	    &q);

	if (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		const char *setting = db_column_text(q, 1), *source = db_column_text(q, 2);

		rc = 0;
		if (db_column_int64(q, 0) != 0)
			rc = store_fail(err, STORE_EIO,
			    "%s: the server is a standby (in recovery: hot standby takes no writes); "
			    "autopack writes to the database: connect to the primary; nothing was "
			    "written",
			    url);
		else if (setting != NULL && strcmp(setting, "on") == 0) {
			store_pg_readonly_where(source != NULL ? source : "unknown",
			    db_column_text(q, 3) != NULL ? db_column_text(q, 3) : "?",
			    db_column_text(q, 4) != NULL ? db_column_text(q, 4) : "?", where,
			    sizeof where);
			rc = store_fail(err, STORE_EIO,
			    "%s: the database is read-only: default_transaction_read_only is on, set "
			    "%s; nothing was written",
			    url, where);
		}
	} else if (rc == DB_DONE) {
		rc = store_fail(err, STORE_EIO,
		    "%s: reading whether the server takes writes: pg_settings has no row "
		    "default_transaction_read_only (asked: SELECT pg_is_in_recovery(), setting, "
		    "source FROM pg_settings WHERE name = 'default_transaction_read_only'); "
		    "nothing was written",
		    url);
	} else {
		rc = store_fail(err, STORE_EIO, "%s: reading whether the server takes writes: %s",
		    url, db_errmsg(db));
	}
	db_finalize(q);
	if (rc == 0)
		rc = store_pg_privileged(db, url, err);
	if (rc == 0)
		rc = store_pg_logged(db, url, err);
	return rc;
}
