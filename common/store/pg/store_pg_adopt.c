/* What an adoption does differently on PostgreSQL: a connection (read-only for a
 * survey), autopack's schema read from its PostgreSQL DDL, the values checked one
 * distinct value at a time (the server keeps typed timestamps and booleans in their
 * types; text columns may hold other spellings), no copy of its own (the operator runs
 * the pg_dump command the survey prints), and the server's identity recorded in meta. */
#include "common/store/pg/schema_pg.h"
#include "common/store/pg/store_pg.h"
#include "common/store/store_adopt_internal.h"
#include "common/store/store_internal.h"
#include "common/store/store_values.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The words that start a table constraint rather than a column in a CREATE TABLE. */
static const char *const pg_adopt_constraints[] = { "CONSTRAINT", "PRIMARY", "FOREIGN", "UNIQUE",
	"CHECK" };

/* The words that end a column's type in its declaration. */
static const char *const pg_adopt_type_ends[] = { " NOT NULL", " DEFAULT ", " PRIMARY KEY",
	" REFERENCES ", " CHECK ", " GENERATED ", " UNIQUE" };

/* Connect; a survey's session is read-only. */
static int pg_adopt_connect(const char *url, bool write, struct db **db, struct store_err *err)
{
	int rc = store_pg_connect(url, db, err);

	if (rc == 0 && !write)
		rc = store_exec(
		    *db, "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", url, err);
	else if (rc == 0)
		rc = store_pg_writable(*db, url, err);
	if (rc != 0 && *db != NULL) {
		db_close(*db);
		*db = NULL;
	}
	return rc;
}

/* Return a heap copy of the `n` bytes at `s`. */
static char *pg_adopt_strndup(const char *s, size_t n)
{
	char *out = xmalloc(n + 1);

	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

/* Parse one column line of a CREATE TABLE ("name TYPE [NOT NULL] [DEFAULT v] ..."
 * without its comma) into `c`. */
static void pg_adopt_col_parse(const char *line, struct adopt_col *c)
{
	const char *sp = strchr(line, ' ');
	const char *decl = sp != NULL ? sp + 1 : "";
	const char *d = strstr(decl, "DEFAULT ");
	size_t type_len = strlen(decl);

	memset(c, 0, sizeof *c);
	c->name = pg_adopt_strndup(line, sp != NULL ? (size_t)(sp - line) : strlen(line));
	for (size_t i = 0; i < ARRAY_SIZE(pg_adopt_type_ends); i++) {
		const char *e = strstr(decl, pg_adopt_type_ends[i]);

		if (e != NULL && (size_t)(e - decl) < type_len)
			type_len = (size_t)(e - decl);
	}
	c->type = pg_adopt_strndup(decl, type_len);
	c->pk = strstr(decl, "PRIMARY KEY") != NULL;
	c->notnull = c->pk || strstr(decl, "NOT NULL") != NULL;
	if (d != NULL) {
		const char *v = d + strlen("DEFAULT ");
		const char *end = v[0] == '\'' ? strchr(v + 1, '\'') : strchr(v, ' ');

		if (end != NULL && v[0] == '\'')
			end++;
		c->dflt = end != NULL ? pg_adopt_strndup(v, (size_t)(end - v)) : xstrdup(v);
	}
}

/* Add the CREATE TABLE statement `stmt` (one column or constraint per line) to `ref`. */
static void pg_adopt_table_parse(struct adopt_ref *ref, const char *stmt)
{
	struct adopt_cols cols = { 0 };
	const char *p = stmt + strlen("CREATE TABLE ");
	char *name = pg_adopt_strndup(p, strcspn(p, " ("));

	for (p = strchr(p, '\n'); p != NULL && p[1] != '\0'; p = strchr(p + 1, '\n')) {
		const char *line = p + 1;
		size_t len = strcspn(line, "\n");
		bool constraint = false;
		char *text;

		while (*line == ' ' && len > 0) {
			line++;
			len--;
		}
		if (len > 0 && line[len - 1] == ',')
			len--;
		if (len == 0 || line[0] == ')')
			continue;
		for (size_t i = 0; i < ARRAY_SIZE(pg_adopt_constraints); i++)
			constraint = constraint ||
			    strncmp(line, pg_adopt_constraints[i],
			        strlen(pg_adopt_constraints[i])) == 0;
		if (constraint)
			continue;
		text = pg_adopt_strndup(line, len);
		cols.items = xrealloc(cols.items, (cols.n + 1) * sizeof *cols.items);
		pg_adopt_col_parse(text, &cols.items[cols.n++]);
		free(text);
	}
	adopt_ref_add_table(ref, name, stmt, &cols);
	free(name);
}

/* Read autopack's PostgreSQL schema (schema_pg.h: one statement per ";\n", one column
 * per line) into `ref`. */
static int pg_adopt_ref_load(struct adopt_ref *ref, struct store_err *err)
{
	const char *p = SCHEMA_PG_SQL;

	(void)err;
	memset(ref, 0, sizeof *ref);
	while (*p != '\0') {
		const char *end = strstr(p, ";\n");
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char *stmt = pg_adopt_strndup(p, len);
		const char *ix = strstr(stmt, "INDEX ");

		if (strncmp(stmt, "CREATE TABLE ", 13) == 0) {
			pg_adopt_table_parse(ref, stmt);
		} else if (strncmp(stmt, "CREATE ", 7) == 0 && ix != NULL) {
			char *name = pg_adopt_strndup(ix + 6, strcspn(ix + 6, " "));

			adopt_ref_add_index(ref, name, stmt);
			free(name);
		}
		free(stmt);
		p += len + (end != NULL ? 2 : 0);
	}
	return 0;
}

/* Whether a column's PostgreSQL type holds text (and so any spelling of a value). */
static bool pg_adopt_text_type(const char *type)
{
	return strncmp(type, "text", 4) == 0 || strncmp(type, "character", 9) == 0;
}

/* Collect the text columns whose values are held to a format: the state columns of runs,
 * tiers and phases, and those autopack's schema declares TIMESTAMP or BOOLEAN. */
static int pg_adopt_value_cols(
    struct db *db, const struct adopt_ref *ref, struct store_value_cols *out, struct store_err *err)
{
	int rc = 0;

	memset(out, 0, sizeof *out);
	for (size_t i = 0; rc == 0 && i < ref->n_tables; i++) {
		const struct adopt_ref_table *t = &ref->tables[i];
		int state = store_values_state_kind(t->name);
		struct adopt_cols have;

		rc = adopt_cols_read(db, t->name, &have, err);
		for (size_t k = 0; rc == 0 && k < have.n; k++) {
			const struct adopt_col *c = &have.items[k];
			const struct adopt_col *want = adopt_cols_find(&t->cols, c->name);

			if (!pg_adopt_text_type(c->type))
				continue;
			if (state >= 0 && strcasecmp(c->name, "state") == 0)
				store_value_cols_add(
				    out, t->name, c->name, (enum store_value_kind)state);
			else if (want != NULL && strncasecmp(want->type, "TIMESTAMP", 9) == 0)
				store_value_cols_add(out, t->name, c->name, STORE_VALUE_TIME);
			else if (want != NULL && strcasecmp(want->type, "BOOLEAN") == 0)
				store_value_cols_add(out, t->name, c->name, STORE_VALUE_BOOL);
		}
		adopt_cols_free(&have);
	}
	return rc;
}

/* What pg_adopt_value_row does with each distinct value of a column. */
struct pg_adopt_values {
	struct db *db;
	struct store_value_col *col;
	bool apply;
	struct store_err *err;
};

/* Count (or, with `apply`, rewrite) the rows holding the distinct value of the current
 * row: rewritten when it reads as another spelling, unreadable when it does not read. */
static int pg_adopt_value_row(struct db_stmt *q, void *arg)
{
	struct pg_adopt_values *v = arg;
	struct store_value_col *c = v->col;
	const char *value = db_column_text(q, 0);
	int64_t n = db_column_int64(q, 1);
	struct db_stmt *upd = NULL;
	char out[64], *sql;
	int rc;

	if (store_value_read(c->kind, value, out) != 0) {
		c->unreadable += v->apply ? 0 : n;
		if (c->bad == NULL)
			c->bad = xstrdup(value);
		return 0;
	}
	if (strcmp(out, value) == 0)
		return 0;
	if (c->from == NULL) {
		c->from = xstrdup(value);
		c->to = xstrdup(out);
	}
	if (!v->apply) {
		c->rewrite += n;
		return 0;
	}
	sql = db_sqlf("UPDATE \"%w\" SET \"%w\" = ?1 WHERE CAST(\"%w\" AS TEXT) = ?2", c->table,
	    c->column, c->column);
	rc = db_prepare(v->db, sql, &upd);
	free(sql);
	if (rc == DB_OK) {
		store_bind_text(upd, 1, out);
		store_bind_text(upd, 2, value);
	}
	rc = store_step_done(v->db, upd, rc, v->err, "rewriting %s.%s", c->table, c->column);
	if (rc == 0)
		c->rewrite += db_changes(v->db);
	return rc;
}

/* Walk the distinct values of every column, counting or rewriting them. */
static int pg_adopt_values_walk(
    struct db *db, struct store_value_cols *cols, bool apply, struct store_err *err)
{
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < cols->n; i++) {
		struct store_value_col *c = &cols->items[i];
		struct pg_adopt_values v = { db, c, apply, err };
		struct db_stmt *q = NULL;
		char *sql = db_sqlf(
		    "SELECT CAST(\"%w\" AS TEXT), count(*) FROM \"%w\" WHERE \"%w\" IS"
		    " NOT NULL GROUP BY 1 ORDER BY 1",
		    c->column, c->table, c->column);

		if (apply)
			c->rewrite = 0;
		rc = db_prepare(db, sql, &q);
		free(sql);
		rc = store_each_row(
		    db, q, rc, pg_adopt_value_row, &v, err, "checking stored values");
	}
	return rc;
}

/* Find the values not in the original's formats; columns with none are dropped. */
static int pg_adopt_values_find(struct db *db, const struct adopt_ref *ref,
    struct store_value_cols *cols, struct store_err *err)
{
	struct store_value_cols kept = { 0 };
	int rc = pg_adopt_value_cols(db, ref, cols, err);

	if (rc == 0)
		rc = pg_adopt_values_walk(db, cols, false, err);
	for (size_t i = 0; rc == 0 && i < cols->n; i++) {
		struct store_value_col *c = &cols->items[i];

		if (c->rewrite == 0 && c->unreadable == 0)
			continue;
		kept.items = xrealloc(kept.items, (kept.n + 1) * sizeof *kept.items);
		kept.items[kept.n++] = *c;
		memset(c, 0, sizeof *c);
	}
	store_value_cols_free(cols);
	*cols = kept;
	return rc;
}

/* Rewrite the readable values in the caller's transaction. */
static int pg_adopt_values_rewrite(
    struct db *db, struct store_value_cols *cols, struct store_err *err)
{
	return pg_adopt_values_walk(db, cols, true, err);
}

/* Record the server's system identifier and database name in meta, as db init does. */
static int pg_adopt_identify(struct db *db, const char *url, struct store_err *err)
{
	char *server = NULL;
	int rc = store_pg_server_id(db, url, &server, err);

	if (rc == 0)
		rc = store_pg_identity_write(db, url, server, err);
	free(server);
	return rc;
}

/* Append `s` to b quoted for a POSIX shell. */
static void pg_adopt_shell_quote(struct strbuf *b, const char *s)
{
	strbuf_put(b, "'", 1);
	for (; *s != '\0'; s++) {
		if (*s == '\'')
			strbuf_puts(b, "'\\''");
		else
			strbuf_put(b, s, 1);
	}
	strbuf_put(b, "'", 1);
}

/* The pg_dump command copying the database into <database>.pre-adopt-<stamp>.bak. */
char *store_pg_dump_command(const char *url)
{
	const char *auth = strstr(url, "://");
	const char *slash = auth != NULL ? strchr(auth + 3, '/') : NULL;
	char *dbname = slash != NULL ? pg_adopt_strndup(slash + 1, strcspn(slash + 1, "?")) :
	                               xstrdup("database");
	char *file = store_backup_name(dbname, "pre-adopt");
	struct strbuf b = { 0 };

	strbuf_puts(&b, "pg_dump --format=custom --file=");
	pg_adopt_shell_quote(&b, file);
	strbuf_puts(&b, " ");
	pg_adopt_shell_quote(&b, url);
	free(dbname);
	free(file);
	return b.s;
}

const struct adopt_backend adopt_backend_pg = {
	.connect = pg_adopt_connect,
	.ref_load = pg_adopt_ref_load,
	.integrity = NULL,
	.values_find = pg_adopt_values_find,
	.values_rewrite = pg_adopt_values_rewrite,
	.backup = NULL,
	.identify = pg_adopt_identify,
};
