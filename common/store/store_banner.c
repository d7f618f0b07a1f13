#include "common/store/store_internal.h"
#include "common/strbuf.h"
#include "common/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The tables counted in the banner, in enum store_table_count order. */
static const char *const store_count_tables[STORE_COUNT_N] = {
	"runs",
	"tiers",
	"phases",
	"attempts",
	"llm_usage_events",
	"token_estimation_v2_events",
};

/* Read created_at and created_by from meta. */
static int store_meta_creation(struct store *st, struct store_identity *id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db, "SELECT created_at, created_by FROM meta WHERE id = 1", &q);

	if (rc == DB_OK && (rc = db_step(q)) == DB_ROW) {
		const char *at = db_column_text(q, 0);
		const char *by = db_column_text(q, 1);

		strlcpy_ap(id->created_at, at ? (const char *)at : "", sizeof id->created_at);
		strlcpy_ap(id->created_by, by ? (const char *)by : "", sizeof id->created_by);
		rc = DB_OK;
	}
	if (rc != DB_OK)
		store_fail(err, STORE_EIO, "%s: reading meta: %s", st->path, db_errmsg(st->db));
	db_finalize(q);
	return rc == DB_OK ? 0 : STORE_EIO;
}

/* Read size, creation and row counts; STORE_EIO if any part cannot be read. */
int store_identity_read(struct store *st, struct store_identity *id, struct store_err *err)
{
	struct stat sb;
	char *wal = xasprintf("%s-wal", st->path);
	int rc = 0;

	memset(id, 0, sizeof *id);
	if (st->backend == DB_PG)
		rc = store_query_int(
		    st->db, "SELECT pg_database_size(current_database())", &id->size, err);
	else if (stat(st->path, &sb) == 0)
		id->size = (int64_t)sb.st_size;
	else
		rc = store_fail(err, STORE_EIO, "%s: %s", st->path, strerror(errno));
	if (stat(wal, &sb) == 0)
		id->wal_size = (int64_t)sb.st_size;
	free(wal);
	if (rc == 0)
		rc = store_meta_creation(st, id, err);
	for (int i = 0; i < STORE_COUNT_N; i++) {
		char *sql = xasprintf("SELECT count(*) FROM %s", store_count_tables[i]);

		id->counts[i] = -1;
		if (store_query_int(st->db, sql, &id->counts[i], rc == 0 ? err : NULL) != 0) {
			id->counts[i] = -1;
			rc = STORE_EIO;
		}
		free(sql);
	}
	return rc;
}

/* Return the name of banner count `i` (a table name). */
const char *store_count_name(int i)
{
	return i >= 0 && i < STORE_COUNT_N ? store_count_tables[i] : "?";
}

/* One field of the identity banner: its name and its value as read, not escaped. */
struct banner_field {
	const char *name;
	char *value;
};

#define BANNER_FIELDS 8

/* A text of the meta row or of the store, "?" for none. */
static const char *banner_or_unknown(const char *s)
{
	return s != NULL ? s : "?";
}

/* Fill f with the banner's fields in the order both forms show them (the URL first, the
 * rows last), each value on the heap; returns how many. A part that cannot be read is
 * "?" (a count) or empty (the creation). */
static int banner_fields(struct store *st, struct banner_field *f)
{
	struct store_identity id;
	struct strbuf rows = { 0 };
	char devino[48];
	int n = 0;

	assert(st->db != NULL && st->path != NULL && st->url != NULL);
	store_identity_read(st, &id, NULL);
	f[n++] = (struct banner_field){ "url", xstrdup(st->url) };
	if (st->backend == DB_PG) {
		f[n++] = (struct banner_field){ "server",
			xasprintf("PostgreSQL, system identifier/database %s",
			    banner_or_unknown(st->server_id)) };
		f[n++] = (struct banner_field){ "size",
			xasprintf("%lld bytes", (long long)id.size) };
	} else {
		f[n++] = (struct banner_field){ "file", xstrdup(st->path) };
		f[n++] = (struct banner_field){ "size",
			id.wal_size > 0 ?
			    xasprintf("%lld bytes (+ %lld bytes in %s-wal)", (long long)id.size,
			        (long long)id.wal_size, st->path) :
			    xasprintf("%lld bytes", (long long)id.size) };
		store_devino(st, devino);
		f[n++] = (struct banner_field){ "device:inode", xstrdup(devino) };
	}
	f[n++] = (struct banner_field){ "uuid", xstrdup(banner_or_unknown(st->uuid)) };
	f[n++] = (struct banner_field){ "schema version", xasprintf("%d", st->schema_version) };
	f[n++] = (struct banner_field){ "created",
		xasprintf("%s by %s", id.created_at, id.created_by) };
	for (int i = 0; i < STORE_COUNT_N; i++) {
		if (id.counts[i] < 0)
			strbuf_printf(&rows, "%s%s ?", i > 0 ? ", " : "", store_count_tables[i]);
		else
			strbuf_printf(&rows, "%s%s %lld", i > 0 ? ", " : "", store_count_tables[i],
			    (long long)id.counts[i]);
	}
	f[n++] = (struct banner_field){ "rows", rows.s };
	assert(n <= BANNER_FIELDS);
	return n;
}

char *store_banner_line(struct store *st)
{
	struct banner_field f[BANNER_FIELDS];
	struct strbuf b = { 0 };
	int n = banner_fields(st, f);

	/* "database URL: file PATH, size N bytes, ..., created AT by BY; rows: runs N, ..." */
	strbuf_printf(&b, "database %s: ", f[0].value);
	for (int i = 1; i < n; i++)
		strbuf_printf(&b, "%s%s%s%s",
		    i == 1        ? "" :
		        i + 1 < n ? ", " :
		                    "; ",
		    f[i].name, i + 1 < n ? " " : ": ", f[i].value);
	for (int i = 0; i < n; i++)
		free(f[i].value);
	return b.s;
}

/* Print the identity banner, one field a line, each value as a terminal may show it
 * (utf8_escape: a path, a URL or a text of the meta row, another program's or a hand
 * edit, may hold any byte); unreadable parts print as "?" or empty. */
void store_banner(struct store *st, FILE *out)
{
	struct banner_field f[BANNER_FIELDS];
	int n = banner_fields(st, f);

	fprintf(out, "== autopack database ==\n");
	for (int i = 0; i < n; i++) {
		struct strbuf b = { 0 };
		char name[24];

		snprintf(name, sizeof name, "%s:", f[i].name);
		utf8_escape(&b, f[i].value, strlen(f[i].value));
		fprintf(out, "  %-16s%s\n", name, b.s != NULL ? b.s : "");
		free(b.s);
		free(f[i].value);
	}
	if (out == stdout)
		stdout_flush(0);
	else
		fflush(out);
}
