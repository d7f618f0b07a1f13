/* Baselines for the writer benchmark. Each inserts (events, llm_usage_events) row pairs
 * into an autopack database with plain prepared statements, BATCH pairs per BEGIN
 * IMMEDIATE transaction, WAL, synchronous as given, and prints the pairs per second.
 *
 * "replay SRC DST": the rows the supervisor committed to the database SRC, in the order
 * it committed them (llm_usage_events.id), every value as stored (texts bound with their
 * lengths), with the supervisor's SQL (common/store/store_drain_event.c), into DST: a new
 * copy of SRC without its events and usage rows (so it holds the same runs, phases and
 * attempts). Only llm_usage events are replayed; SRC holding any other event is an error.
 *
 * "DB ROWS": ROWS pairs of one attempt (999999 of run 'raw'), seq 1..ROWS, in sequence,
 * the values the supervisor writes for the bench worker's events. "bound" (the default)
 * binds every value with the supervisor's SQL; "literals" writes the values that do not
 * vary as literals in its SQL and leaves is_doctor_call, level and message to their
 * defaults.
 *
 * Every mode leaves the connection's other settings as a fresh SQLite connection has them
 * (without the supervisor's foreign keys and larger page cache).
 *
 * The CPU time of the inserts (user and system, in seconds) goes to stderr. */
#include "common/util.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

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

/* The process's user and system CPU time so far, in microseconds. */
static void cpu_now(int64_t *user, int64_t *sys)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*user = (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec;
	*sys = (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

/* Print the pairs per second on stdout and the CPU time since (u0, s0) on stderr. */
static void report(long n, uint64_t t0, int64_t u0, int64_t s0)
{
	uint64_t t1 = clock_mono_ms();
	int64_t u1, s1;

	cpu_now(&u1, &s1);
	printf("%.0f\n", (double)n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1));
	fprintf(stderr, "cpu user %.3f s sys %.3f s\n", (double)(u1 - u0) / 1e6,
	    (double)(s1 - s0) / 1e6);
}

/* One stored value of a row to replay: its SQLite type and the value (a text is owned,
 * n its length in bytes). */
struct val {
	int type, n;
	union {
		int64_t i;
		double d;
		char *s;
	} u;
};

/* The columns read back, per pair: the event's 6 and the usage row's 17, in the order
 * of the supervisor's two statements. */
#define EV_COLS 6
#define US_COLS 17
static const char replay_read_sql[] =
    "SELECT e.attempt_id, e.seq, e.kind, e.created_at, e.level, e.message,"
    " u.provider, u.model, u.run_id, u.phase_id, u.role, u.total_tokens, u.prompt_tokens,"
    " u.completion_tokens, u.created_at, u.attempt_id, u.seq, u.status, u.http_status,"
    " u.error_class, u.latency_ms, u.try_number, u.is_doctor_call"
    " FROM llm_usage_events u JOIN events e ON e.attempt_id = u.attempt_id AND e.seq = u.seq"
    " ORDER BY u.id";

/* Copy column i of the current row into *v. */
static void val_read(sqlite3_stmt *q, int i, struct val *v)
{
	v->type = sqlite3_column_type(q, i);
	v->n = 0;
	switch (v->type) {
	case SQLITE_INTEGER: v->u.i = sqlite3_column_int64(q, i); break;
	case SQLITE_FLOAT: v->u.d = sqlite3_column_double(q, i); break;
	case SQLITE_TEXT:
		v->n = sqlite3_column_bytes(q, i);
		v->u.s = xmalloc((size_t)v->n + 1);
		memcpy(v->u.s, sqlite3_column_text(q, i), (size_t)v->n + 1);
		break;
	default: v->type = SQLITE_NULL; break;
	}
}

/* Bind *v to parameter i, a text with its known length and without a copy. */
static void val_bind(sqlite3_stmt *s, int i, const struct val *v)
{
	switch (v->type) {
	case SQLITE_INTEGER: sqlite3_bind_int64(s, i, v->u.i); break;
	case SQLITE_FLOAT: sqlite3_bind_double(s, i, v->u.d); break;
	case SQLITE_TEXT: sqlite3_bind_text(s, i, v->u.s, v->n, SQLITE_STATIC); break;
	default: sqlite3_bind_null(s, i); break;
	}
}

/* Run one statement of setup SQL on db; print SQLite's message and return -1 on failure. */
static int run_sql(sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	fprintf(stderr, "raw-insert: %s: %s\n", sql, sqlite3_errmsg(db));
	return -1;
}

/* Read every (event, usage row) pair of src in commit order into *rows (EV_COLS +
 * US_COLS values each); the number of pairs, or -1 (with a message) when src cannot be
 * read or holds an event that is not an llm_usage event with its row. */
static long replay_load(sqlite3 *src, struct val **rows)
{
	sqlite3_stmt *q;
	long n = 0, cap = 1024, events = -1;
	struct val *v = xmalloc((size_t)cap * (EV_COLS + US_COLS) * sizeof *v);

	if (sqlite3_prepare_v2(src, replay_read_sql, -1, &q, NULL) != SQLITE_OK)
		goto fail;
	while (sqlite3_step(q) == SQLITE_ROW) {
		if (n == cap) {
			cap *= 2;
			v = xrealloc(v, (size_t)cap * (EV_COLS + US_COLS) * sizeof *v);
		}
		for (int i = 0; i < EV_COLS + US_COLS; i++)
			val_read(q, i, &v[n * (EV_COLS + US_COLS) + i]);
		n++;
	}
	sqlite3_finalize(q);
	if (sqlite3_prepare_v2(src, "SELECT count(*) FROM events", -1, &q, NULL) != SQLITE_OK)
		goto fail;
	if (sqlite3_step(q) == SQLITE_ROW)
		events = sqlite3_column_int64(q, 0);
	sqlite3_finalize(q);
	if (events != n) {
		fprintf(stderr, "raw-insert: %ld events, %ld of them llm_usage with a row\n",
		    events, n);
		free(v);
		return -1;
	}
	*rows = v;
	return n;
fail:
	fprintf(stderr, "raw-insert: %s\n", sqlite3_errmsg(src));
	free(v);
	return -1;
}

/* Make dst a copy of src without its events and usage rows, compacted; -1 on failure. */
static int replay_copy(sqlite3 *src, const char *dst)
{
	char *sql = sqlite3_mprintf("VACUUM INTO %Q", dst);
	sqlite3 *db;
	int rc = run_sql(src, sql);

	sqlite3_free(sql);
	if (rc != 0)
		return -1;
	if (sqlite3_open_v2(dst, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		return -1;
	rc = run_sql(db, "DELETE FROM llm_usage_events; DELETE FROM events; VACUUM");
	sqlite3_close(db);
	return rc;
}

/* Insert the n pairs of rows into db with ev and us, batch per transaction: the part
 * timed; 1 with a message on failure. */
static int replay_insert(
    sqlite3 *db, sqlite3_stmt *ev, sqlite3_stmt *us, const struct val *rows, long n, long batch)
{
	for (long i = 0; i < n; i++) {
		const struct val *v = &rows[i * (EV_COLS + US_COLS)];
		int j;

		if (i % batch == 0 && run_sql(db, "BEGIN IMMEDIATE") != 0)
			return 1;
		for (j = 0; j < EV_COLS; j++)
			val_bind(ev, j + 1, &v[j]);
		for (j = 0; j < US_COLS; j++)
			val_bind(us, j + 1, &v[EV_COLS + j]);
		if (sqlite3_step(ev) != SQLITE_DONE || sqlite3_reset(ev) != SQLITE_OK ||
		    sqlite3_step(us) != SQLITE_DONE || sqlite3_reset(us) != SQLITE_OK) {
			fprintf(stderr, "raw-insert: row %ld: %s\n", i, sqlite3_errmsg(db));
			return 1;
		}
		if (((i + 1) % batch == 0 || i + 1 == n) && run_sql(db, "COMMIT") != 0)
			return 1;
	}
	return 0;
}

/* Replay src's pairs into a copy at dst (see the top of the file); prints the pairs per
 * second, or returns 1 with a message. */
static int replay(const char *src_path, const char *dst, long batch, const char *synchronous)
{
	sqlite3 *src, *db;
	sqlite3_stmt *ev, *us;
	struct val *rows = NULL;
	long n, i;
	uint64_t t0;
	int64_t u0, s0;
	char sync[64];

	if (sqlite3_open_v2(src_path, &src, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		return 1;
	n = replay_load(src, &rows);
	if (n < 0 || replay_copy(src, dst) != 0)
		return 1;
	sqlite3_close(src);
	if (sqlite3_open_v2(dst, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		return 1;
	snprintf(sync, sizeof sync, "PRAGMA synchronous=%s", synchronous);
	if (run_sql(db, "PRAGMA journal_mode=WAL") != 0 || run_sql(db, sync) != 0)
		return 1;
	if (sqlite3_prepare_v2(db, bound_sql[0], -1, &ev, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, bound_sql[1], -1, &us, NULL) != SQLITE_OK) {
		fprintf(stderr, "raw-insert: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	t0 = clock_mono_ms();
	cpu_now(&u0, &s0);
	if (replay_insert(db, ev, us, rows, n, batch) != 0)
		return 1;
	report(n, t0, u0, s0);
	sqlite3_finalize(ev);
	sqlite3_finalize(us);
	sqlite3_close(db);
	for (i = 0; i < n * (EV_COLS + US_COLS); i++)
		if (rows[i].type == SQLITE_TEXT)
			free(rows[i].u.s);
	free(rows);
	return 0;
}

int main(int argc, char **argv)
{
	sqlite3 *db;
	sqlite3_stmt *ev, *us;
	long n, batch, i;
	uint64_t t0;
	int64_t u0, s0;
	char sync[64];
	bool literal;

	if (argc == 6 && strcmp(argv[1], "replay") == 0)
		return replay(argv[2], argv[3], atol(argv[4]), argv[5]);
	if (argc < 5 || argc > 6 ||
	    (argc == 6 && strcmp(argv[5], "bound") != 0 && strcmp(argv[5], "literals") != 0)) {
		fprintf(stderr,
		    "usage: raw-insert DB ROWS BATCH full|normal [bound|literals]\n"
		    "       raw-insert replay SRC DST BATCH full|normal\n");
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
	cpu_now(&u0, &s0);
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
	report(n, t0, u0, s0);
	sqlite3_finalize(ev);
	sqlite3_finalize(us);
	sqlite3_close(db);
	return 0;
}
