/* Whether a PostgreSQL connection can write, asked before anything is written: a standby
 * (a server in recovery) and default_transaction_read_only set on (for the role, the
 * database, the connection or the server) make every write fail with the server's
 * "cannot execute INSERT in a read-only transaction", which names neither; a role that
 * lacks a privilege on autopack's tables fails a write later with "permission denied for
 * table ...", after the writes before it. */
#include "common/store/pg/store_pg.h"
#include "common/store/db.h"
#include "common/store/schema.sql.h"
#include "common/store/store_internal.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* Where default_transaction_read_only was set (pg_settings.source) and how to undo it,
 * into buf. */
static void store_pg_readonly_where(
    const char *source, const char *role, const char *dbname, char *buf, size_t n)
{
	if (strcmp(source, "user") == 0)
		snprintf(buf, n,
		    "for role %s (ALTER ROLE … SET); to write, connect as a role that may, or "
		    "run ALTER ROLE \"%s\" RESET default_transaction_read_only",
		    role, role);
	else if (strcmp(source, "database") == 0)
		snprintf(buf, n,
		    "for database %s (ALTER DATABASE … SET); to write, run ALTER DATABASE \"%s\" "
		    "RESET default_transaction_read_only",
		    dbname, dbname);
	else if (strcmp(source, "database user") == 0)
		snprintf(buf, n,
		    "for role %s in database %s (ALTER ROLE … IN DATABASE … SET); to write, run "
		    "ALTER ROLE \"%s\" IN DATABASE \"%s\" RESET default_transaction_read_only",
		    role, dbname, role, dbname);
	else if (strcmp(source, "client") == 0)
		snprintf(buf, n,
		    "by the connection's options (the URL's options, or PGOPTIONS); to write, "
		    "leave it out");
	else if (strcmp(source, "configuration file") == 0 || strcmp(source, "command line") == 0)
		snprintf(buf, n, "in the server's %s; to write, turn it off there", source);
	else
		snprintf(buf, n, "(its source: %s)", source);
}

/* The privileges a writer needs that the connection's role lacks, the first of them in
 * the order asked (SELECT, INSERT, UPDATE, DELETE on each of autopack's tables in the
 * current schema that exists, then USAGE on the sequences of their SERIAL keys), with
 * how many more are lacking, the schema, the role and the owner of the meta table. */
static const char store_pg_lacking_sql[] =
    "WITH t AS (SELECT c.oid, c.relname FROM pg_catalog.pg_class c JOIN"
    " pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname ="
    " pg_catalog.current_schema() AND c.relkind IN ('r', 'p') AND c.relname = ANY"
    " (pg_catalog.string_to_array(?, ','))),"
    " lack AS (SELECT p.o, p.priv, 'table' AS kind, t.relname FROM t CROSS JOIN"
    " unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) WITH ORDINALITY AS p(priv, o)"
    " WHERE NOT pg_catalog.has_table_privilege(t.oid, p.priv)"
    " UNION ALL SELECT 5, 'USAGE', 'sequence', s.relname FROM t JOIN pg_catalog.pg_depend"
    " d ON d.refobjid = t.oid AND d.deptype = 'a' AND d.classid = CAST('pg_catalog.pg_class'"
    " AS pg_catalog.regclass) AND d.refclassid = d.classid JOIN pg_catalog.pg_class s ON"
    " s.oid = d.objid WHERE CASE WHEN s.relkind = 'S' THEN NOT"
    " pg_catalog.has_sequence_privilege(s.oid, 'USAGE, UPDATE') ELSE false END)"
    " SELECT priv, kind, relname, (SELECT count(*) FROM lack) - 1,"
    " pg_catalog.current_schema(), current_user, (SELECT"
    " pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c JOIN"
    " pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = 'meta' AND"
    " n.nspname = pg_catalog.current_schema()) FROM lack ORDER BY o, relname LIMIT 1";

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
		strbuf_printf(&list, "%s%s", i ? "," : "", names[i]);
	rc = db_prepare(db, store_pg_lacking_sql, &q);
	if (rc == DB_OK) {
		db_bind_text(q, 1, list.s);
		rc = db_step(q);
	}
	if (rc == DB_ROW) {
		const char *schema = db_column_text(q, 4), *role = db_column_text(q, 5),
		           *owner = db_column_text(q, 6);
		int64_t more = db_column_int64(q, 3);
		char also[80] = "";

		schema = schema != NULL ? schema : "?";
		role = role != NULL ? role : "?";
		if (more > 0)
			snprintf(also, sizeof also, " (and %lld more privilege%s on them)",
			    (long long)more, more == 1 ? "" : "s");
		rc = store_fail(err, STORE_EIO,
		    "%s: role %s may not write autopack's tables in schema %s (owned by role %s): "
		    "it lacks %s on %s %s%s; nothing was written: grant what a writer needs "
		    "(GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA \"%s\" TO "
		    "\"%s\"; GRANT USAGE ON ALL SEQUENCES IN SCHEMA \"%s\" TO \"%s\"), or "
		    "connect as %s",
		    url, role, schema, owner != NULL ? owner : "?", db_column_text(q, 0),
		    db_column_text(q, 1), db_column_text(q, 2), also, schema, role, schema, role,
		    owner != NULL ? owner : "the owner");
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
	return rc;
}
