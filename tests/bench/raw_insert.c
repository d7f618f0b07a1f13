/* Baseline for the writer benchmark: insert N (events, llm_usage_events) row pairs into
 * an autopack database with plain prepared statements, BATCH rows per BEGIN IMMEDIATE
 * transaction, WAL, synchronous as given, and the connection's other settings as a fresh
 * SQLite connection has them. "bound" (the default) writes the rows the supervisor writes
 * for the bench worker's events, with the supervisor's SQL and every value bound, as any
 * client would; "literals" is the earlier baseline, which wrote the values that do not
 * vary as literals in its SQL and left is_doctor_call, level and message to their
 * defaults. Prints the rows per second. */
#include "common/util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char setup_sql[] =
    "INSERT INTO drain_sessions(session_id, started_at) VALUES ('raw', 'x');"
    "INSERT INTO runs(id, created_at, updated_at) VALUES ('raw', 'x', 'x');"
    "INSERT INTO tiers(id, tier_id, run_id, tier_index, name, created_at, updated_at)"
    " VALUES (999999, 'T', 'raw', 0, 't', 'x', 'x');"
    "INSERT INTO phases(phase_id, run_id, tier_id, phase_index, name, created_at,"
    " updated_at) VALUES ('raw', 'raw', 999999, 0, 'p', 'x', 'x');"
    "INSERT INTO attempts(attempt_id, run_id, phase_id, attempt_number, started_at)"
    " VALUES (999999, 'raw', 'raw', 1, 'x');";

/* The supervisor's two statements (common/store/store_drain_event.c). */
static const char *const bound_sql[2] = {
	"INSERT INTO events (attempt_id, seq, kind, created_at, level, message)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (attempt_id, seq) DO NOTHING",
	"INSERT INTO llm_usage_events (provider, model, run_id, phase_id, role, total_tokens,"
	" prompt_tokens, completion_tokens, created_at, attempt_id, seq, status, http_status,"
	" error_class, latency_ms, try_number, is_doctor_call)"
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
};

static const char *const literal_sql[2] = {
	"INSERT OR IGNORE INTO events (attempt_id, seq, kind, created_at)"
	" VALUES (999999, ?1, 'llm_usage', ?2)",
	"INSERT INTO llm_usage_events (provider, model, run_id, phase_id,"
	" role, total_tokens, prompt_tokens, completion_tokens, created_at, attempt_id, seq,"
	" status, http_status, latency_ms, try_number) VALUES ('anthropic',"
	" 'claude-sonnet-4-5', 'raw', 'raw', 'builder', ?1, ?2, ?3, ?4, 999999, ?5, 'ok', 200,"
	" 900, 1)",
};

/* Bind row pair i as the supervisor binds the bench worker's event i. */
static void bind_row_bound(sqlite3_stmt *ev, sqlite3_stmt *us, long i, const char *now)
{
	sqlite3_bind_int64(ev, 1, 999999);
	sqlite3_bind_int64(ev, 2, i);
	sqlite3_bind_text(ev, 3, "llm_usage", -1, SQLITE_STATIC);
	sqlite3_bind_text(ev, 4, now, -1, SQLITE_TRANSIENT);
	sqlite3_bind_null(ev, 5);
	sqlite3_bind_null(ev, 6);
	sqlite3_bind_text(us, 1, "anthropic", -1, SQLITE_STATIC);
	sqlite3_bind_text(us, 2, "claude-sonnet-4-5", -1, SQLITE_STATIC);
	sqlite3_bind_text(us, 3, "raw", -1, SQLITE_STATIC);
	sqlite3_bind_text(us, 4, "raw", -1, SQLITE_STATIC);
	sqlite3_bind_text(us, 5, "builder", -1, SQLITE_STATIC);
	sqlite3_bind_int64(us, 6, 2000 + 2 * i);
	sqlite3_bind_int64(us, 7, 1200 + i);
	sqlite3_bind_int64(us, 8, 800 + i);
	sqlite3_bind_text(us, 9, now, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(us, 10, 999999);
	sqlite3_bind_int64(us, 11, i);
	sqlite3_bind_text(us, 12, "ok", -1, SQLITE_STATIC);
	sqlite3_bind_int64(us, 13, 200);
	sqlite3_bind_null(us, 14);
	sqlite3_bind_int64(us, 15, 900);
	sqlite3_bind_int64(us, 16, 1);
	sqlite3_bind_int64(us, 17, 0);
}

/* Bind row pair i into the literal statements. */
static void bind_row_literal(sqlite3_stmt *ev, sqlite3_stmt *us, long i, const char *now)
{
	sqlite3_bind_int64(ev, 1, i);
	sqlite3_bind_text(ev, 2, now, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(us, 1, 2000 + 2 * i);
	sqlite3_bind_int64(us, 2, 1200 + i);
	sqlite3_bind_int64(us, 3, 800 + i);
	sqlite3_bind_text(us, 4, now, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(us, 5, i);
}

int main(int argc, char **argv)
{
	sqlite3 *db;
	sqlite3_stmt *ev, *us;
	long n, batch, i;
	uint64_t t0, t1;
	char sync[64];
	bool literal;

	if (argc < 5 || argc > 6 ||
	    (argc == 6 && strcmp(argv[5], "bound") != 0 && strcmp(argv[5], "literals") != 0)) {
		fprintf(stderr, "usage: raw-insert DB ROWS BATCH full|normal [bound|literals]\n");
		return 2;
	}
	literal = argc == 6 && strcmp(argv[5], "literals") == 0;
	n = atol(argv[2]);
	batch = atol(argv[3]);
	if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		return 1;
	snprintf(sync, sizeof sync, "PRAGMA synchronous=%s", argv[4]);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	sqlite3_exec(db, sync, NULL, NULL, NULL);
	sqlite3_exec(db, setup_sql, NULL, NULL, NULL);
	if (sqlite3_prepare_v2(db, (literal ? literal_sql : bound_sql)[0], -1, &ev, NULL) !=
	        SQLITE_OK ||
	    sqlite3_prepare_v2(db, (literal ? literal_sql : bound_sql)[1], -1, &us, NULL) !=
	        SQLITE_OK) {
		fprintf(stderr, "raw-insert: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	t0 = clock_mono_ms();
	for (i = 1; i <= n; i++) {
		char now[32];

		if ((i - 1) % batch == 0)
			sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		time_db_now(now);
		(literal ? bind_row_literal : bind_row_bound)(ev, us, i, now);
		sqlite3_step(ev);
		sqlite3_reset(ev);
		sqlite3_step(us);
		sqlite3_reset(us);
		if (i % batch == 0 || i == n)
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	}
	t1 = clock_mono_ms();
	sqlite3_finalize(ev);
	sqlite3_finalize(us);
	sqlite3_close(db);
	printf("%.0f\n", (double)n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1));
	return 0;
}
