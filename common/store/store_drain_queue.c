/* The drain's queue in the database: eligible phases, recovery of attempts an earlier
 * supervisor left open, phase counts by state, and the control commands' phase moves. */
#include "common/store/store_drain_internal.h"
#include "common/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An eligible phase read ahead of its turn (drain_each_eligible_sorted). */
struct eligible_row {
	struct drain_phase p; /* its strings in `strs`, its spec in `spec` */
	struct drain_spec spec;
	int64_t id; /* phases.id */
	char *strs;
};

/* Order eligible rows by run (bytes), tier index, phase index and phase row. */
static int eligible_cmp(const void *a, const void *b)
{
	const struct eligible_row *x = a, *y = b;
	int c = strcmp(x->p.run_id, y->p.run_id);

	if (c != 0)
		return c;
	if (x->p.tier_index != y->p.tier_index)
		return x->p.tier_index < y->p.tier_index ? -1 : 1;
	if (x->p.phase_index != y->p.phase_index)
		return x->p.phase_index < y->p.phase_index ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Copy the row of `s` (the columns of drain_each_eligible's SQL, the phase's id last, at
 * 15) into r. */
static void eligible_keep(struct db_stmt *s, bool with_spec, struct eligible_row *r)
{
	const char *run = db_column_text(s, 0), *phase = db_column_text(s, 1),
	           *why = db_column_text(s, 6);
	size_t nr = strlen(run) + 1, np = strlen(phase) + 1, nw = why != NULL ? strlen(why) + 1 : 0;

	memset(r, 0, sizeof *r);
	r->strs = xmalloc(nr + np + nw);
	memcpy(r->strs, run, nr);
	memcpy(r->strs + nr, phase, np);
	if (why != NULL)
		memcpy(r->strs + nr + np, why, nw);
	r->p = (struct drain_phase){
		.run_id = r->strs,
		.phase_id = r->strs + nr,
		.tier_index = db_column_int64(s, 2),
		.phase_index = db_column_int64(s, 3),
		.attempts = db_column_int64(s, 4),
		.max_attempts = db_column_int64(s, 5),
		.last_failure_reason = why != NULL ? r->strs + nr + np : NULL,
		.row = db_column_int64(s, 15),
	};
	r->id = r->p.row;
	if (with_spec)
		drain_spec_read(s, 7, r->p.phase_id, &r->spec);
}

/* Step `s` to its end keeping every row, sort them as the drain reads its queue, and call
 * fn for each in that order (SQLite sorts rows whole, the phases' long texts with them:
 * ten times the work of this). Returns the last step's code, DB_DONE when all went. */
static int drain_each_eligible_sorted(
    struct db_stmt *s, bool with_spec, int (*fn)(void *arg, const struct drain_phase *p), void *arg)
{
	struct eligible_row *rows = NULL;
	size_t n = 0, cap = 0, i;
	int rc;

	while ((rc = db_step(s)) == DB_ROW) {
		if (n == cap) {
			cap = cap > 0 ? cap * 2 : 256;
			rows = xrealloc(rows, cap * sizeof *rows);
		}
		eligible_keep(s, with_spec, &rows[n++]);
	}
	if (rc == DB_DONE && n > 1)
		qsort(rows, n, sizeof *rows, eligible_cmp);
	for (i = 0; rc == DB_DONE && i < n; i++) {
		if (with_spec)
			rows[i].p.spec = &rows[i].spec;
		if (fn(arg, &rows[i].p) != 0)
			break;
	}
	for (i = 0; i < n; i++) {
		store_drain_spec_free(&rows[i].spec);
		free(rows[i].strs);
	}
	free(rows);
	return rc;
}

/* fn and its argument, called only for the phases a dry run's session has not visited. */
struct unvisited {
	int (*fn)(void *arg, const struct drain_phase *p);
	void *arg;
};

/* Pass a phase on unless the session has an attempt of it (a dry run's visit). */
static int drain_unvisited(void *arg, const struct drain_phase *p)
{
	const struct unvisited *u = arg;

	return p->attempts > 0 ? 0 : u->fn(u->arg, p);
}

void store_drain_set_dry_run(struct store_drain *d, bool dry_run)
{
	d->dry_run = dry_run;
}

/* Call fn for each eligible phase of one run (run_filter), of the runs of a JSON array
 * (runs_json, several supervisors only) or of every run; STORE_EIO on failure. */
static int drain_each_eligible(struct store_drain *d, const char *run_filter, const char *runs_json,
    bool with_failed, bool with_spec, const char *session_id,
    int (*fn)(void *arg, const struct drain_phase *p), void *arg, struct store_err *err)
{
	/* Columns 7 on are those drain_spec_read reads, the phase's id after them. The session
	 * is compared through an expression so that the attempts are found by their phase's
	 * index: by the session's, each phase would count every attempt of the session
	 * (O(n²)). The rows are sorted by drain_each_eligible_sorted: by run, tier index,
	 * phase index and id. */
#define ELIGIBLE_SELECT                                                                            \
	"SELECT p.run_id, p.phase_id, t.tier_index, p.phase_index,"                                \
	" CASE WHEN ?3 IS NULL THEN 0 ELSE (SELECT count(*) FROM attempts a"                       \
	"   WHERE a.run_id = p.run_id AND a.phase_id = p.phase_id"                                 \
	"   AND COALESCE(a.session_id, '') = ?3) END,"                                             \
	" COALESCE(p.max_builder_attempts, 0), p.last_failure_reason,"                             \
	" p.name, p.description, p.task_category, p.complexity,"                                   \
	" p.scope, p.check_command, p.max_builder_attempts, r.workspace, p.id"                     \
	" FROM phases p JOIN tiers t ON t.id = p.tier_id"                                          \
	" JOIN runs r ON r.id = p.run_id"
	static const char sql[] = ELIGIBLE_SELECT
	    " WHERE (p.state = ?4 OR (?2 AND p.state = ?5))"
	    " AND (CAST(?1 AS TEXT) IS NULL OR p.run_id = ?1)";
	/* The same without FAILED phases: one state, read through its index. */
	static const char sql_queued[] = ELIGIBLE_SELECT
	    " WHERE p.state = ?4 AND (CAST(?1 AS TEXT) IS NULL OR p.run_id = ?1)";
#undef ELIGIBLE_SELECT
	struct drain_spec spec;
	struct db_stmt *s;
	int rc;

	if (db_prepare(d->st->db,
	        d->supervisor_id > 0 ? store_fleet_eligible_sql() :
	            with_failed      ? sql :
	                               sql_queued,
	        &s) != DB_OK)
		return drain_fail(d, err, "eligible phases");
	store_bind_text(s, 1, run_filter);
	store_bind_text(s, 3, session_id);
	store_bind_text(s, 4, phase_state_name(PHASE_QUEUED));
	if (d->supervisor_id > 0 || with_failed) { /* sql_queued names neither */
		db_bind_int64(s, 2, with_failed);
		store_bind_text(s, 5, phase_state_name(PHASE_FAILED));
	}
	if (d->supervisor_id > 0) {
		db_bind_int64(s, 6, d->supervisor_id);
		store_bind_text(s, 7, runs_json);
	}
	if (d->supervisor_id == 0 && d->dry_run && session_id != NULL) {
		struct unvisited u = { fn, arg };

		rc = drain_each_eligible_sorted(s, with_spec, drain_unvisited, &u);
		goto out;
	}
	if (d->supervisor_id == 0) {
		rc = drain_each_eligible_sorted(s, with_spec, fn, arg);
		goto out;
	}
	while ((rc = db_step(s)) == DB_ROW) {
		struct drain_phase p = {
			.run_id = db_column_text(s, 0),
			.phase_id = db_column_text(s, 1),
			.tier_index = db_column_int64(s, 2),
			.phase_index = db_column_int64(s, 3),
			.attempts = db_column_int64(s, 4),
			.max_attempts = db_column_int64(s, 5),
			.last_failure_reason = db_column_text(s, 6),
		};
		if (with_spec) {
			drain_spec_read(s, 7, p.phase_id, &spec);
			p.spec = &spec;
		}
		rc = fn(arg, &p);
		if (with_spec)
			store_drain_spec_free(&spec);
		if (rc != 0) {
			rc = DB_DONE;
			break;
		}
	}
out:
	db_finalize(s);
	if (rc != DB_DONE)
		return drain_fail(d, err, "eligible phases");
	return 0;
}

/* Call fn for each eligible phase; STORE_EIO on failure. */
int store_drain_each_eligible(struct store_drain *d, const char *run_filter, bool with_failed,
    bool with_spec, const char *session_id, int (*fn)(void *arg, const struct drain_phase *p),
    void *arg, struct store_err *err)
{
	json_t *one = run_filter != NULL && d->supervisor_id > 0 ? json_pack("[s]", run_filter) :
	                                                           NULL;
	char *runs = one != NULL ? json_dumps(one, JSON_COMPACT) : NULL;
	int rc = drain_each_eligible(
	    d, run_filter, runs, with_failed, with_spec, session_id, fn, arg, err);

	free(runs);
	json_decref(one);
	return rc;
}

/* Call fn for each eligible phase of the runs listed; STORE_EIO on failure. */
int store_drain_each_eligible_of(struct store_drain *d, const char *const *run_ids, size_t n,
    bool with_failed, bool with_spec, const char *session_id,
    int (*fn)(void *arg, const struct drain_phase *p), void *arg, struct store_err *err)
{
	json_t *ids = json_array();
	char *runs;
	int rc;

	assert(d->supervisor_id > 0);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(ids, json_string(run_ids[i]));
	runs = json_dumps(ids, JSON_COMPACT);
	rc = drain_each_eligible(d, NULL, runs, with_failed, with_spec, session_id, fn, arg, err);
	free(runs);
	json_decref(ids);
	return rc;
}

/* A run's phases without a run or tier row, kept until the unfinished ones are told. */
struct left_orphan {
	char *run_id;
	int64_t n;
};

/* Those of every run. */
struct left_orphans {
	struct left_orphan *v;
	size_t n, cap;
};

/* A phase whose run_id and phase_id are text (on PostgreSQL, always). */
#define DRAIN_TEXT_IDS                                                                             \
	"(CAST(p.run_id AS TEXT) IS NOT DISTINCT FROM p.run_id"                                    \
	" AND CAST(p.phase_id AS TEXT) IS NOT DISTINCT FROM p.phase_id"                            \
	" AND p.run_id IS NOT NULL AND p.phase_id IS NOT NULL)"

/* What a drain left: each run's unfinished eligible phases and its phases without a run
 * or tier row, and whether any has an id that is not text, in one aggregate query;
 * STORE_EIO on failure. */
int store_drain_each_left(struct store_drain *d, const char *run_filter, bool with_failed,
    const char *session_id, int64_t max_attempts, bool dry_run,
    int (*unfinished)(void *arg, const char *run_id, int64_t n),
    int (*orphaned)(void *arg, const char *run_id, int64_t n), void *arg, bool *untexted,
    struct store_err *err)
{
	/* Only the phases of the three kinds reach the aggregate (those with an id that is
	 * not text counted apart: store_drain_each_untexted reads them only when there are
	 * some). Each phase looks for its own attempts of the session through the index on
	 * (run, phase), the session compared through an expression as in
	 * drain_each_eligible: a join with the session's attempts grouped by phase built and
	 * sorted a temporary table of them all, and an IN list in the subquery would build
	 * one at each phase. A dry run's phase is left when it has none (NOT EXISTS stops
	 * at the first); any other counts them. The run and tier rows are joined once (each
	 * at most one row: their keys). Without FAILED phases the state is compared alone,
	 * read through its index (the OR of two states reads it twice and merges the
	 * rows). */
#define LEFT_ORPHAN "(r.id IS NULL OR t.id IS NULL)"
#define LEFT_TRIED                                                                                 \
	" FROM attempts a WHERE a.run_id = p.run_id AND a.phase_id = p.phase_id"                   \
	" AND COALESCE(a.session_id, '') = ?3"                                                     \
	" AND (a.outcome IS NULL OR (a.outcome <> ?8 AND a.outcome <> ?9))"
#define LEFT_SELECT(states)                                                                        \
	"SELECT p.run_id, sum(CASE WHEN " DRAIN_TEXT_IDS " AND NOT " LEFT_ORPHAN                   \
	" THEN 1 ELSE 0 END),"                                                                     \
	" sum(CASE WHEN " DRAIN_TEXT_IDS " AND " LEFT_ORPHAN " THEN 1 ELSE 0 END),"                \
	" sum(CASE WHEN " DRAIN_TEXT_IDS " THEN 0 ELSE 1 END)"                                     \
	" FROM phases p LEFT JOIN runs r ON r.id = p.run_id LEFT JOIN tiers t ON t.id = p.tier_id" \
	" WHERE " states " AND (CAST(?1 AS TEXT) IS NULL OR p.run_id = ?1)"                        \
	" AND (NOT " DRAIN_TEXT_IDS " OR " LEFT_ORPHAN " OR CASE WHEN ?7"                          \
	" THEN NOT EXISTS (SELECT 1" LEFT_TRIED ")"                                                \
	" ELSE (SELECT count(*)" LEFT_TRIED ") < CASE"                                             \
	" WHEN p.max_builder_attempts > 0 AND p.max_builder_attempts < ?6"                         \
	" THEN p.max_builder_attempts ELSE ?6 END END)"                                            \
	" GROUP BY p.run_id ORDER BY p.run_id"
	static const char sql[] = LEFT_SELECT("(p.state = ?4 OR (?2 AND p.state = ?5))");
	static const char sql_queued[] = LEFT_SELECT("p.state = ?4");
#undef LEFT_SELECT
#undef LEFT_TRIED
#undef LEFT_ORPHAN
	struct left_orphans o = { 0 };
	struct db_stmt *s;
	int rc, stop = 0;

	*untexted = false;
	if (db_prepare(d->st->db, with_failed ? sql : sql_queued, &s) != DB_OK)
		return drain_fail(d, err, "what the drain left");
	store_bind_text(s, 1, run_filter);
	if (with_failed) /* sql_queued names neither */
		db_bind_int64(s, 2, with_failed);
	store_bind_text(s, 3, session_id);
	store_bind_text(s, 4, phase_state_name(PHASE_QUEUED));
	if (with_failed)
		store_bind_text(s, 5, phase_state_name(PHASE_FAILED));
	db_bind_int64(s, 6, max_attempts);
	db_bind_int64(s, 7, dry_run);
	store_bind_text(s, 8, outcome_name(OUTCOME_SUPERVISOR_STOPPED));
	store_bind_text(s, 9, outcome_name(OUTCOME_SUPERVISOR_RESTART));
	while (stop == 0 && (rc = db_step(s)) == DB_ROW) {
		const char *run_id = db_column_text(s, 0);
		int64_t n = db_column_int64(s, 2);

		*untexted = *untexted || db_column_int64(s, 3) > 0;
		if (db_column_int64(s, 1) > 0)
			stop = unfinished(arg, run_id, db_column_int64(s, 1));
		if (n > 0) {
			if (o.n == o.cap) {
				o.cap = o.cap != 0 ? o.cap * 2 : 8;
				o.v = xrealloc(o.v, o.cap * sizeof *o.v);
			}
			o.v[o.n++] = (struct left_orphan){ xstrdup(run_id), n };
		}
	}
	db_finalize(s);
	if (stop != 0)
		rc = DB_DONE;
	for (size_t i = 0; i < o.n; i++) {
		if (rc == DB_DONE && stop == 0)
			stop = orphaned(arg, o.v[i].run_id, o.v[i].n);
		free(o.v[i].run_id);
	}
	free(o.v);
	return rc == DB_DONE ? 0 : drain_fail(d, err, "what the drain left");
}

/* Call fn for each phase no drain dispatches because an id of it is not text. */
int store_drain_each_untexted(struct store_drain *d, const char *run_filter, bool with_failed,
    int (*fn)(void *arg, const struct drain_untexted *u), void *arg, struct store_err *err)
{
	static const char sql[] =
	    "SELECT p.id, CAST(p.run_id AS TEXT),"
	    " CASE WHEN typeof(p.run_id) <> 'text' THEN 'run_id' ELSE 'phase_id' END,"
	    " CASE WHEN typeof(p.run_id) <> 'text' THEN typeof(p.run_id) ELSE typeof(p.phase_id) END,"
	    " CASE WHEN typeof(p.run_id) <> 'text' THEN quote(p.run_id) ELSE quote(p.phase_id) END"
	    " FROM phases p WHERE (p.state = ?3 OR (?2 AND p.state = ?4))"
	    " AND (CAST(?1 AS TEXT) IS NULL OR p.run_id = ?1)"
	    " AND (typeof(p.run_id) <> 'text' OR typeof(p.phase_id) <> 'text') ORDER BY p.id";
	struct db_stmt *s;
	int rc, stop = 0;

	if (d->st->backend != DB_SQLITE)
		return 0;
	if (db_prepare(d->st->db, sql, &s) != DB_OK)
		return drain_fail(d, err, "phases whose ids are not text");
	store_bind_text(s, 1, run_filter);
	db_bind_int64(s, 2, with_failed);
	store_bind_text(s, 3, phase_state_name(PHASE_QUEUED));
	store_bind_text(s, 4, phase_state_name(PHASE_FAILED));
	while (stop == 0 && (rc = db_step(s)) == DB_ROW) {
		const char *run_id = db_column_text(s, 1);
		struct drain_untexted u = {
			.row = db_column_int64(s, 0),
			.run_id = run_id != NULL ? run_id : "",
			.column = db_column_text(s, 2),
			.type = db_column_text(s, 3),
			.value = db_column_text(s, 4),
		};

		stop = fn(arg, &u);
	}
	db_finalize(s);
	if (stop != 0)
		rc = DB_DONE;
	return rc == DB_DONE ? 0 : drain_fail(d, err, "phases whose ids are not text");
}

/* Close the attempts an earlier supervisor left open and requeue their phases, in one
 * transaction; nothing when none is open (one probe of the index of open attempts: the
 * statements would read every phase to find none). STORE_EIO on failure
 * (rolled back). */
int store_drain_recover(struct store_drain *d, int *closed, struct store_err *err)
{
	static const char *const sql[] = {
		/* Their phases: EXECUTING ones requeued, and no fence left on a closed attempt. */
		"UPDATE phases SET state = CASE WHEN state = ?3 THEN ?2 ELSE state END,"
		" updated_at = CASE WHEN state = ?3 THEN ?1 ELSE updated_at END,"
		" current_attempt_id = NULL WHERE current_attempt_id IN"
		" (SELECT attempt_id FROM attempts WHERE ended_at IS NULL)",
		/* Calls those attempts had announced and never reported. */
		"UPDATE llm_usage_events SET status = ?2 WHERE status = ?3 AND attempt_id IN"
		" (SELECT attempt_id FROM attempts WHERE ended_at IS NULL)",
		"UPDATE attempts SET ended_at = ?1, outcome = ?2,"
		" failure_reason = ?3 WHERE ended_at IS NULL",
	};
	const char *const args[][2] = {
		{ phase_state_name(PHASE_QUEUED), phase_state_name(PHASE_EXECUTING) },
		{ usage_status_name(USAGE_LOST), usage_status_name(USAGE_SENT) },
		{ outcome_name(OUTCOME_SUPERVISOR_RESTART),
		    reason_name(outcome_reason(OUTCOME_SUPERVISOR_RESTART)) },
	};
	char now[32];
	int rc;

	*closed = 0;
	rc = store_row_exists(d->st->db, err,
	    "SELECT 1 FROM attempts WHERE ended_at IS NULL LIMIT 1", NULL, "%s: attempts left open",
	    d->st->path);
	if (rc <= 0)
		return rc;
	db_now(d->st->db, now);
	if ((rc = store_drain_begin(d, err)) != 0)
		return rc;
	drain_tiers_forget(d);
	for (size_t i = 0; i < ARRAY_SIZE(sql) && rc == 0; i++) {
		rc = drain_run(d, sql[i], now, args[i][0], args[i][1], err);
		if (rc == 0 && i == ARRAY_SIZE(sql) - 1)
			*closed = db_changes(d->st->db);
	}
	if (rc == 0)
		rc = store_drain_commit(d, err);
	if (rc != 0)
		store_drain_rollback(d);
	return rc;
}

/* Attempt ids SQLite may still give that a database must have left to be drained. */
#define DRAIN_IDS_MIN_LEFT 1000000

int store_drain_ids_check(struct store_drain *d, struct store_err *err)
{
	static const char sql[] = "SELECT seq FROM sqlite_sequence WHERE name = 'attempts'";
	struct db_stmt *s = NULL;
	int64_t seq = 0;
	int rc;

	if (d->st->backend != DB_SQLITE)
		return 0;
	if (db_prepare(d->st->db, sql, &s) != DB_OK)
		return drain_fail(d, err, sql);
	if ((rc = db_step(s)) == DB_ROW)
		seq = db_column_int64(s, 0);
	db_finalize(s);
	if (rc != DB_ROW && rc != DB_DONE)
		return drain_fail(d, err, sql);
	if (seq <= INT64_MAX - DRAIN_IDS_MIN_LEFT)
		return 0;
	return store_fail(err, STORE_EINVAL,
	    "%s: the attempts' ids are used up: an attempt has the id %lld (another program "
	    "wrote it), and SQLite numbers each new attempt after the highest id ever used "
	    "(AUTOINCREMENT), so no new attempt could be recorded (each would fail as "
	    "\"database or disk is full\"). Give that attempt a lower id (with its rows in "
	    "events, llm_usage_events and token_estimation_v2_events), then set "
	    "sqlite_sequence.seq of attempts to the highest id left",
	    d->st->path, (long long)seq);
}

/* Call fn for each (run, state) with its phase count; STORE_EIO on failure. */
int store_drain_each_run_state(struct store_drain *d, const char *run_filter,
    int (*fn)(void *arg, const char *run_id, enum phase_state state, int64_t n), void *arg,
    struct store_err *err)
{
	struct db_stmt *s;
	int rc;

	if (db_prepare(d->st->db,
	        "SELECT run_id, state, count(*) FROM phases WHERE CAST(?1 AS TEXT) IS NULL OR run_id = ?1"
	        " GROUP BY run_id, state ORDER BY run_id",
	        &s) != DB_OK)
		return drain_fail(d, err, "phase counts by run");
	store_bind_text(s, 1, run_filter);
	while ((rc = db_step(s)) == DB_ROW) {
		if (fn(arg, db_column_text(s, 0), phase_state_parse(db_column_text(s, 1)),
		        db_column_int64(s, 2)) != 0) {
			rc = DB_DONE;
			break;
		}
	}
	db_finalize(s);
	if (rc != DB_DONE)
		return drain_fail(d, err, "phase counts by run");
	return 0;
}

/* Count phases by state; STORE_EIO on failure. */
int store_drain_phase_counts(
    struct store_drain *d, int64_t counts[PHASE_STATE_COUNT], struct store_err *err)
{
	struct db_stmt *s;
	int rc;

	if (db_prepare(d->st->db, "SELECT state, count(*) FROM phases GROUP BY state", &s) != DB_OK)
		return drain_fail(d, err, "phase counts");
	for (int i = 0; i < PHASE_STATE_COUNT; i++)
		counts[i] = 0;
	while ((rc = db_step(s)) == DB_ROW)
		counts[phase_state_parse(db_column_text(s, 0))] += db_column_int64(s, 1);
	db_finalize(s);
	if (rc != DB_DONE)
		return drain_fail(d, err, "phase counts");
	return 0;
}

/* Write the names of the states in `set` as "A, B or C" into buf. */
static void state_set_text(unsigned set, char *buf, size_t n)
{
	size_t len = 0, left = 0;

	for (int i = 1; i < PHASE_STATE_COUNT; i++)
		left += (set >> i) & 1u;
	buf[0] = '\0';
	for (int i = 1; i < PHASE_STATE_COUNT && len < n; i++) {
		if (!((set >> i) & 1u))
			continue;
		left--;
		len += (size_t)snprintf(buf + len, n - len, "%s%s", phase_state_name(i),
		    left > 1      ? ", " :
		        left == 1 ? " or " :
		                    "");
	}
}

/* Move one phase between states; STORE_EINVAL when it is in none of `from`. */
int store_drain_phase_move(struct store_drain *d, const char *run_id, const char *phase_id,
    unsigned from, enum phase_state to, struct store_err *err)
{
	struct db_stmt *s;
	char *state = NULL, allowed[128], stamp[32];
	/* The ids as a command gave them, or another program's row: shown escaped. */
	char run[256], phase[256], shown_state[64];
	enum phase_state now;
	int rc;

	assert(!db_in_transaction(d->st->db));
	if (db_prepare(d->st->db, "SELECT state FROM phases WHERE run_id = ?1 AND phase_id = ?2",
	        &s) != DB_OK)
		return drain_fail(d, err, "phase state");
	store_bind_text(s, 1, run_id);
	store_bind_text(s, 2, phase_id);
	rc = db_step(s);
	if (rc == DB_ROW)
		state = store_col_text(s, 0, "NULL");
	db_finalize(s);
	if (rc != DB_ROW && rc != DB_DONE)
		return drain_fail(d, err, "phase state");
	utf8_one_line(run, run_id, sizeof run);
	utf8_one_line(phase, phase_id, sizeof phase);
	if (rc == DB_DONE)
		return store_fail(err, STORE_EINVAL, "no phase '%s' in run '%s'", phase, run);
	now = phase_state_parse(state);
	if (now == PHASE_STATE_NONE || !((from >> now) & 1u)) {
		state_set_text(from, allowed, sizeof allowed);
		rc = store_fail(err, STORE_EINVAL, "phase %s/%s is %s, not %s", run, phase,
		    utf8_one_line(shown_state, state, sizeof shown_state), allowed);
		free(state);
		return rc;
	}
	free(state);
	db_now(d->st->db, stamp);
	if ((rc = store_drain_begin(d, err)) != 0)
		return rc;
	/* The tier is counted again, with the phase moved. */
	drain_tiers_forget(d);
	rc = db_prepare(d->st->db,
	    "UPDATE phases SET state = ?3, updated_at = ?4 WHERE run_id = ?1 AND phase_id = ?2",
	    &s);
	if (rc == DB_OK) {
		store_bind_text(s, 1, run_id);
		store_bind_text(s, 2, phase_id);
		store_bind_text(s, 3, phase_state_name(to));
		store_bind_text(s, 4, stamp);
	}
	rc = store_step_done(
	    d->st->db, s, rc, err, "%s: moving phase %s/%s", d->st->path, run_id, phase_id);
	if (rc == 0)
		rc = drain_follow(d, run_id, phase_id, stamp, err);
	if (rc == 0)
		rc = store_drain_commit(d, err);
	if (rc != 0)
		store_drain_rollback(d);
	return rc;
}
