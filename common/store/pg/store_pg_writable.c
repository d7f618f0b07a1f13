/* Whether a PostgreSQL connection can write, asked before anything is written: a standby
 * (a server in recovery) and default_transaction_read_only set on (for the role, the
 * database, the connection or the server) make every write fail with the server's
 * "cannot execute INSERT in a read-only transaction", which names neither. */
#include "common/store/pg/store_pg.h"
#include "common/store/db.h"
#include "common/store/store_internal.h"
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
	return rc;
}
