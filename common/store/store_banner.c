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

/* Print a text of the meta row (another program's, or a hand edit), or a path (a
 * directory's name may hold any byte but '/' and NUL), as a terminal may show it
 * (utf8_escape); "?" for none. */
static void banner_text(FILE *out, const char *s)
{
	struct strbuf b = { 0 };

	if (s == NULL) {
		fputc('?', out);
		return;
	}
	utf8_escape(&b, s, strlen(s));
	fputs(b.s, out);
	free(b.s);
}

char *store_banner_line(struct store *st)
{
	struct store_identity id;
	struct strbuf b = { 0 };
	char devino[48];

	assert(st->db != NULL && st->path != NULL && st->url != NULL);
	store_identity_read(st, &id, NULL);
	strbuf_printf(&b, "database %s: ", st->url);
	if (st->backend == DB_PG) {
		strbuf_printf(&b, "server PostgreSQL, system identifier/database %s, %lld bytes",
		    st->server_id != NULL ? st->server_id : "?", (long long)id.size);
	} else {
		store_devino(st, devino);
		strbuf_printf(&b, "file %s, %lld bytes", st->path, (long long)id.size);
		if (id.wal_size > 0)
			strbuf_printf(
			    &b, " (+ %lld bytes in %s-wal)", (long long)id.wal_size, st->path);
		strbuf_printf(&b, ", device:inode %s", devino);
	}
	strbuf_printf(&b, ", uuid %s, schema version %d, created %s by %s; rows:", st->uuid,
	    st->schema_version, id.created_at, id.created_by);
	for (int i = 0; i < STORE_COUNT_N; i++) {
		if (id.counts[i] < 0)
			strbuf_printf(&b, " %s ?", store_count_tables[i]);
		else
			strbuf_printf(
			    &b, " %s %lld", store_count_tables[i], (long long)id.counts[i]);
		if (i + 1 < STORE_COUNT_N)
			strbuf_puts(&b, ",");
	}
	return b.s;
}

/* Print the identity banner; unreadable parts print as "?" or empty. */
void store_banner(struct store *st, FILE *out)
{
	struct store_identity id;
	char devino[48];

	assert(st->db != NULL && st->path != NULL && st->url != NULL);
	store_identity_read(st, &id, NULL);
	fprintf(out, "== autopack database ==\n");
	fputs("  url:            ", out);
	banner_text(out, st->url);
	fputc('\n', out);
	if (st->backend == DB_PG) {
		fputs("  server:         PostgreSQL, system identifier/database ", out);
		banner_text(out, st->server_id);
		fprintf(out, "\n  size:           %lld bytes\n", (long long)id.size);
	} else {
		fputs("  file:           ", out);
		banner_text(out, st->path);
		fprintf(out, "\n  size:           %lld bytes", (long long)id.size);
		if (id.wal_size > 0) {
			fprintf(out, " (+ %lld bytes in ", (long long)id.wal_size);
			banner_text(out, st->path);
			fputs("-wal)", out);
		}
		store_devino(st, devino);
		fprintf(out, "\n  device:inode:   %s\n", devino);
	}
	fputs("  uuid:           ", out);
	banner_text(out, st->uuid);
	fprintf(out, "\n  schema version: %d\n", st->schema_version);
	fputs("  created:        ", out);
	banner_text(out, id.created_at);
	fputs(" by ", out);
	banner_text(out, id.created_by);
	fputc('\n', out);
	fprintf(out, "  rows:          ");
	for (int i = 0; i < STORE_COUNT_N; i++) {
		if (id.counts[i] < 0)
			fprintf(out, " %s ?", store_count_tables[i]);
		else
			fprintf(out, " %s %lld", store_count_tables[i], (long long)id.counts[i]);
		fputc(i + 1 < STORE_COUNT_N ? ',' : '\n', out);
	}
	if (out == stdout)
		stdout_flush(0);
	else
		fflush(out);
}
