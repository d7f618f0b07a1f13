/* Baseline for the writer benchmark: insert N (events, llm_usage_events) row pairs into
 * an autopack database with plain prepared statements, BATCH rows per BEGIN IMMEDIATE
 * transaction, WAL, synchronous as given. Prints the rows per second. */
#include "common/util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	sqlite3 *db;
	sqlite3_stmt *ev, *us;
	long n, batch, i;
	uint64_t t0, t1;
	char sync[64];

	if (argc != 5) {
		fprintf(stderr, "usage: raw-insert DB ROWS BATCH full|normal\n");
		return 2;
	}
	n = atol(argv[2]);
	batch = atol(argv[3]);
	if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		return 1;
	snprintf(sync, sizeof sync, "PRAGMA synchronous=%s", argv[4]);
	sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	sqlite3_exec(db, sync, NULL, NULL, NULL);
	sqlite3_exec(db,
	    "INSERT INTO drain_sessions(session_id, started_at) VALUES ('raw', 'x');"
	    "INSERT INTO runs(id, created_at, updated_at) VALUES ('raw', 'x', 'x');"
	    "INSERT INTO tiers(id, tier_id, run_id, tier_index, name, created_at, updated_at)"
	    " VALUES (999999, 'T', 'raw', 0, 't', 'x', 'x');"
	    "INSERT INTO phases(phase_id, run_id, tier_id, phase_index, name, created_at,"
	    " updated_at) VALUES ('raw', 'raw', 999999, 0, 'p', 'x', 'x');"
	    "INSERT INTO attempts(attempt_id, run_id, phase_id, attempt_number, started_at)"
	    " VALUES (999999, 'raw', 'raw', 1, 'x');",
	    NULL, NULL, NULL);
	sqlite3_prepare_v2(db,
	    "INSERT OR IGNORE INTO events (attempt_id, seq, kind, created_at)"
	    " VALUES (999999, ?1, 'llm_usage', ?2)",
	    -1, &ev, NULL);
	sqlite3_prepare_v2(db,
	    "INSERT INTO llm_usage_events (provider, model, run_id, phase_id,"
	    " role, total_tokens, prompt_tokens, completion_tokens, created_at, attempt_id, seq,"
	    " status, http_status, latency_ms, try_number) VALUES ('anthropic',"
	    " 'claude-sonnet-4-5', 'raw', 'raw', 'builder', ?1, ?2, ?3, ?4, 999999, ?5, 'ok', 200,"
	    " 900, 1)",
	    -1, &us, NULL);
	t0 = clock_mono_ms();
	for (i = 1; i <= n; i++) {
		char now[32];

		if ((i - 1) % batch == 0)
			sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		time_db_now(now);
		sqlite3_bind_int64(ev, 1, i);
		sqlite3_bind_text(ev, 2, now, -1, SQLITE_TRANSIENT);
		sqlite3_step(ev);
		sqlite3_reset(ev);
		sqlite3_bind_int64(us, 1, 2000 + 2 * i);
		sqlite3_bind_int64(us, 2, 1200 + i);
		sqlite3_bind_int64(us, 3, 800 + i);
		sqlite3_bind_text(us, 4, now, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(us, 5, i);
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
