/* Attempts in the drain's store: opening one (the lease fence: an attempt row and the
 * phase's current_attempt_id in the same transaction as the move to EXECUTING; a dry
 * run's fence is its open attempt row alone), the phase spec a job is built from, and
 * closing one (its end, the phase's and run's new states and its drain_session_results
 * row, in the group that commits it). */
#include "common/store/store_drain_internal.h"
#include "common/store/store_scope.h"
#include "common/strbuf.h"
#include "common/util.h"

#include <assert.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* The columns an attempt's end sets but the count of its events (DS_ATT_END*). */
#define ATT_END_SET                                                                                \
	"UPDATE attempts SET ended_at = ?2, outcome = ?3, failure_reason = ?4, message = ?5,"      \
	" fingerprint = ?6, zero_yield_reason = ?7, reached_llm_boundary = ?8,"                    \
	" duration_ms = ?9, worker_pid = COALESCE(worker_pid, ?10), "

/* Whether run ?1 has a phase neither ?5 (COMPLETE) nor ?6 (SKIPPED). Each EXISTS seeks a
 * range of the index on phases(run_id, state), the states after ?5 and those before it,
 * and stops at the first one that is not ?6: the run's COMPLETE phases, which sort
 * together in that index, are stepped over, not read one by one (a run of n phases read
 * up to n - 1 of them at each attempt's end). Two ranges, as the order of ?5 and ?6 is
 * the column's (an ENUM's on the original's PostgreSQL databases). An UPDATE … FROM a
 * subquery would materialize it in a temporary table. */
#define RUN_OPEN_PHASE                                                                             \
	"(EXISTS (SELECT 1 FROM phases WHERE run_id = ?1 AND state > ?5 AND state <> ?6)"          \
	" OR EXISTS (SELECT 1 FROM phases WHERE run_id = ?1 AND state < ?5 AND state <> ?6))"

/* A drain_session_results row (DS_RESULT_ROW*) but for its estimation count and yield. */
#define RESULT_ROW_INSERT                                                                          \
	"INSERT INTO drain_session_results (session_id, attempt_id, run_id,"                       \
	" phase_id, phase_index, initial_state, final_state, success, error_message,"              \
	" timestamp, duration_seconds, failure_fingerprint, telemetry_events_collected,"           \
	" telemetry_yield_per_minute, reached_llm_boundary, zero_yield_reason)"                    \
	" VALUES (?3, ?1, ?4, ?5, ?6, ?7, ?8, ?2, ?9, ?10, ?11, ?12,"
#define RESULT_ROW_UPSERT                                                                          \
	" ?13, ?14)"                                                                               \
	" ON CONFLICT (session_id, attempt_id) DO UPDATE SET run_id = excluded.run_id,"            \
	" phase_id = excluded.phase_id, phase_index = excluded.phase_index,"                       \
	" initial_state = excluded.initial_state, final_state = excluded.final_state,"             \
	" success = excluded.success, error_message = excluded.error_message,"                     \
	" timestamp = excluded.timestamp, duration_seconds = excluded.duration_seconds,"           \
	" failure_fingerprint = excluded.failure_fingerprint,"                                     \
	" telemetry_events_collected = excluded.telemetry_events_collected,"                       \
	" telemetry_yield_per_minute = excluded.telemetry_yield_per_minute,"                       \
	" reached_llm_boundary = excluded.reached_llm_boundary,"                                   \
	" zero_yield_reason = excluded.zero_yield_reason"

const struct drain_sql drain_sql_attempt[] = {
	{ DS_ATT_PHASE,
	    "SELECT state, builder_attempts, tier_id, id, phase_index"
	    " FROM phases WHERE run_id = ?1 AND phase_id = ?2" },
	/* The same by the row id the queue read (?3), while it is still that phase's. */
	{ DS_ATT_PHASE_ROW,
	    "SELECT state, builder_attempts, tier_id, id, phase_index"
	    " FROM phases WHERE id = ?3 AND run_id = ?1 AND phase_id = ?2" },
	{ DS_ATT_INSERT,
	    "INSERT INTO attempts (run_id, phase_id, attempt_number, session_id, worker_pid,"
	    " dry_run, initial_state, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)" },
	/* The phase row by its id (?1), read by DS_ATT_PHASE; a count at the top of the range
	 * stays there (+ 1 would make it a REAL). */
	{ DS_PHASE_EXEC,
	    "UPDATE phases SET state = ?4, current_attempt_id = ?2,"
	    " builder_attempts = builder_attempts"
	    " + CASE WHEN builder_attempts = 9223372036854775807 THEN 0 ELSE 1 END,"
	    " last_attempt_timestamp = ?3,"
	    " started_at = COALESCE(started_at, ?3), updated_at = ?3 WHERE id = ?1" },
	{ DS_SPEC,
	    "SELECT p.name, p.description, p.task_category, p.complexity, p.scope,"
	    " p.check_command, p.max_builder_attempts, r.workspace"
	    " FROM phases p JOIN runs r ON r.id = p.run_id"
	    " WHERE p.run_id = ?1 AND p.phase_id = ?2" },
	{ DS_ATT_END,
	    ATT_END_SET "events_committed = (SELECT count(*) FROM events WHERE attempt_id = ?1)"
	                " WHERE attempt_id = ?1" },
	/* The same for a live attempt, its events counted as they were inserted (?11). */
	{ DS_ATT_END_COUNTED, ATT_END_SET "events_committed = ?11 WHERE attempt_id = ?1" },
	/* The tries the attempt announced and never reported: its worker died. */
	{ DS_ATT_LOST,
	    "UPDATE llm_usage_events SET status = ?2 WHERE attempt_id = ?1 AND status = ?3" },
	/* The first try of an attempt's first LLM call, on record with the attempt
	 * (store_drain_reserve_first_try): the columns DS_EV_SENT writes, seq NULL;
	 * is_doctor_call bound (0), as PostgreSQL takes no integer literal for a boolean. */
	{ DS_ATT_RESERVE,
	    "INSERT INTO llm_usage_events (provider, model, run_id, phase_id, role, total_tokens,"
	    " created_at, attempt_id, seq, status, max_tokens, try_number, is_doctor_call)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, NULL, ?8, ?9, 1, ?10)" },
	/* The reserved row of a first try the worker never announced. */
	{ DS_ATT_UNRESERVE,
	    "DELETE FROM llm_usage_events WHERE attempt_id = ?1 AND status = ?2"
	    " AND try_number = 1 AND seq IS NULL" },
	/* The attempt being closed, its phase, and whether it is open and its phase's current
	 * one (a dry run's attempt: no fence on its phase and no later attempt of it open). */
	{ DS_ATT_GET,
	    "SELECT a.run_id, a.phase_id, a.ended_at IS NULL AND (p.current_attempt_id = ?1"
	    " OR (a.dry_run <> 0 AND p.current_attempt_id IS NULL AND NOT EXISTS (SELECT 1"
	    " FROM attempts n WHERE n.run_id = a.run_id AND n.phase_id = a.phase_id"
	    " AND n.attempt_id > a.attempt_id AND n.ended_at IS NULL))),"
	    " a.session_id, a.initial_state, p.phase_index, p.state, p.tier_id, p.id, a.dry_run"
	    " FROM attempts a JOIN phases p ON p.run_id = a.run_id AND p.phase_id = a.phase_id"
	    " WHERE a.attempt_id = ?1" },
	/* The phase's fence is lifted with its attempt's end (the phase row by its id). */
	{ DS_PHASE_UNFENCE,
	    "UPDATE phases SET current_attempt_id = NULL WHERE id = ?1 AND current_attempt_id = ?2" },
	/* The phase's new state at its attempt's end lifts the attempt's fence (?6) too. */
	{ DS_PHASE_SET,
	    "UPDATE phases SET state = ?2, updated_at = ?3,"
	    " current_attempt_id = CASE WHEN current_attempt_id = ?6 THEN NULL"
	    "   ELSE current_attempt_id END,"
	    " last_failure_reason = COALESCE(?4, last_failure_reason),"
	    " completed_at = CASE WHEN ?5 THEN ?3 ELSE completed_at END"
	    " WHERE id = ?1" },
	/* The state the phase's row (?1) holds, read back after DS_PHASE_SET. */
	{ DS_PHASE_STATE, "SELECT state FROM phases WHERE id = ?1" },
	/* The run is DONE_SUCCESS once every phase is COMPLETE or SKIPPED, PHASE_EXECUTION
	 * before (docs/data-model.md, "Work"). */
	/* The branch never taken gives the CASE the column's type: on the original's
	 * PostgreSQL databases runs.state is an ENUM, and a CASE of parameters alone is
	 * text, which PostgreSQL does not assign to it. */
	{ DS_RUN_STATE,
	    "UPDATE runs SET updated_at = ?2, started_at = COALESCE(started_at, ?2),"
	    " state = CASE WHEN " RUN_OPEN_PHASE " THEN ?3 WHEN 1 = 0 THEN state ELSE ?4 END,"
	    " completed_at = CASE WHEN " RUN_OPEN_PHASE " THEN NULL ELSE ?2 END"
	    " WHERE id = ?1" },
	/* The same for a run that is PHASE_EXECUTION (?3) and stays so, without rewriting its
	 * state, an indexed column: no row changed means the run is to be set in full. */
	{ DS_RUN_STAYS,
	    "UPDATE runs SET updated_at = ?2, started_at = COALESCE(started_at, ?2),"
	    " completed_at = NULL WHERE id = ?1 AND state = ?3 AND " RUN_OPEN_PHASE },
	/* A run with an EXECUTING phase is open: a phase's start needs no look at the others. */
	{ DS_RUN_STARTED,
	    "UPDATE runs SET updated_at = ?2, started_at = COALESCE(started_at, ?2), state = ?3,"
	    " completed_at = NULL WHERE id = ?1" },
	/* The same for a run that is PHASE_EXECUTION (?3) already. */
	{ DS_RUN_STARTED_AGAIN,
	    "UPDATE runs SET updated_at = ?2, started_at = COALESCE(started_at, ?2),"
	    " completed_at = NULL WHERE id = ?1 AND state = ?3" },
	/* The attempt's values are bound from its end (its row is not read back). */
	{ DS_RESULT_ROW,
	    RESULT_ROW_INSERT
	    " (SELECT count(*) FROM token_estimation_v2_events WHERE attempt_id = ?1),"
	    " (SELECT CASE WHEN count(*) > 0 AND ?15 > 0"
	    "   THEN round(count(*) * 60000.0 / ?15, 2) END"
	    "   FROM token_estimation_v2_events WHERE attempt_id = ?1)," RESULT_ROW_UPSERT },
	/* The same for a live attempt, its token_estimation_v2_events rows counted as they
	 * were inserted (?16). */
	{ DS_RESULT_ROW_COUNTED,
	    RESULT_ROW_INSERT " ?16, CASE WHEN ?16 > 0 AND ?15 > 0"
	                      " THEN round(?16 * 60000.0 / ?15, 2) END," RESULT_ROW_UPSERT },
	{ DS_TIER_STATE, store_tier_state_of_phase_sql },
	/* A tier with an EXECUTING phase is IN_PROGRESS whatever its other phases are
	 * (store_tier.c): a phase's start needs no count of them. */
	{ DS_TIER_STARTED,
	    "UPDATE tiers SET state = ?3, updated_at = ?4, started_at = COALESCE(started_at, ?4),"
	    " completed_at = NULL"
	    " WHERE id = (SELECT tier_id FROM phases WHERE run_id = ?1 AND phase_id = ?2)"
	    " AND (state IS NULL OR state <> ?3)" },
	{ DS_TIER_SET, store_tier_set_sql },
	{ DS_TIER_COUNT, store_tier_count_sql },
};
const size_t drain_sql_attempt_n = ARRAY_SIZE(drain_sql_attempt);

/* Step statement `i` that selects one phase row by (run, phase); STORE_EINVAL when there
 * is no such phase, STORE_EIO on an SQLite error (the statement is then reset). */
static int drain_phase_row(struct store_drain *d, enum drain_stmt i, const char *run_id,
    const char *phase_id, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, i);
	int rc;

	drain_bind_text(s, 1, run_id);
	drain_bind_text(s, 2, phase_id);
	rc = db_step(s);
	if (rc == DB_ROW)
		return 0;
	db_reset(s);
	if (rc == DB_DONE)
		return store_fail(
		    err, STORE_EINVAL, "phase %s/%s: no such phase", run_id, phase_id);
	return drain_fail(d, err, d->sql[i]);
}

/* Run statement `i` of the run's state (DS_RUN_*) on run `run_id` at `now`. */
static int drain_run_set(struct store_drain *d, enum drain_stmt i, const char *run_id,
    const char *now, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, i);

	drain_bind_text(s, 1, run_id);
	drain_bind_text(s, 2, now);
	drain_bind_text(s, 3, run_state_name(RUN_PHASE_EXECUTION));
	if (i == DS_RUN_STATE || i == DS_RUN_STAYS) {
		drain_bind_text(s, 4, run_state_name(RUN_DONE_SUCCESS));
		drain_bind_text(s, 5, phase_state_name(PHASE_COMPLETE));
		drain_bind_text(s, 6, phase_state_name(PHASE_SKIPPED));
	}
	return drain_exec(d, i, err);
}

/* Let a run's state follow its phases' (`started`: one of them has just started). The
 * run's row is written once: by the narrow statement when the run is PHASE_EXECUTION
 * and stays so, else by the full one. */
static int drain_run_follow(
    struct store_drain *d, const char *run_id, bool started, const char *now, struct store_err *err)
{
	int rc = drain_run_set(d, started ? DS_RUN_STARTED_AGAIN : DS_RUN_STAYS, run_id, now, err);

	if (rc != 0 || db_changes(d->st->db) > 0)
		return rc;
	return drain_run_set(d, started ? DS_RUN_STARTED : DS_RUN_STATE, run_id, now, err);
}

/* Fill `p` with copies of the strings (NULL stays NULL) in one block. */
static void closing_keep(struct drain_closing *p, const char *run_id, const char *phase_id,
    const char *session_id, const char *initial, const char *state)
{
	const char *from[] = { run_id, phase_id, session_id, initial, state };
	const char **to[] = { &p->run_id, &p->phase_id, &p->session_id, &p->initial, &p->state };
	size_t len[ARRAY_SIZE(from)], size = 0;
	char *at;

	for (size_t i = 0; i < ARRAY_SIZE(from); i++)
		size += from[i] != NULL ? (len[i] = strlen(from[i]) + 1) : 0;
	p->block = at = xmalloc(size > 0 ? size : 1);
	for (size_t i = 0; i < ARRAY_SIZE(from); i++) {
		*to[i] = NULL;
		if (from[i] != NULL) {
			*to[i] = memcpy(at, from[i], len[i]);
			at += len[i];
		}
	}
}

/* Release what a drain_closing holds. */
static void closing_free(struct drain_closing *p)
{
	free(p->block);
	memset(p, 0, sizeof *p);
}

/* The home slot of key `key` in a table of `cap` slots. */
static size_t lives_home(uint64_t key, size_t cap)
{
	return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);
}

/* Each table of struct drain_lives: `cap` slots of `size` bytes, keyed by the uint64_t
 * each starts with (0: a free slot). */
_Static_assert(offsetof(struct drain_live, attempt_id) == 0, "a live attempt's key");
_Static_assert(offsetof(struct drain_live_row, phase_row) == 0, "a live row's key");

/* The slot of `key` in table `v`, or the free slot where it would go (the table not
 * full). */
static size_t lives_slot(const void *v, size_t size, size_t cap, uint64_t key)
{
	size_t i = lives_home(key, cap);
	uint64_t k;

	for (;; i = (i + 1) & (cap - 1)) {
		memcpy(&k, (const char *)v + i * size, sizeof k);
		if (k == 0 || k == key)
			return i;
	}
}

/* Free slot `i` of table `v`: backward shift, each later entry of the run that may sit in
 * slot i moves there. */
static void lives_unslot(void *v, size_t size, size_t cap, size_t i)
{
	char *t = v;
	size_t j = i, k;
	uint64_t key;

	for (;;) {
		j = (j + 1) & (cap - 1);
		memcpy(&key, t + j * size, sizeof key);
		if (key == 0)
			break;
		k = lives_home(key, cap);
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		memcpy(t + i * size, t + j * size, size);
		i = j;
	}
	memset(t + i * size, 0, sizeof key);
}

/* The slot of attempt `att` in l->v, or the free slot where it would go. */
static size_t live_slot(const struct drain_lives *l, uint64_t att)
{
	return lives_slot(l->v, sizeof *l->v, l->cap, att);
}

/* The slot of phase row `row` in l->rows, or the free slot where it would go. */
static size_t live_row_slot(const struct drain_lives *l, uint64_t row)
{
	return lives_slot(l->rows, sizeof *l->rows, l->cap, row);
}

static bool lives_take(struct drain_lives *l, uint64_t att, struct drain_closing *c);

/* Add live attempt `att` (not in the table) with `c` (its phase's row id not 0), which
 * the table then holds; the phase's earlier live attempt, if any, is taken out: it is no
 * longer the phase's current one. */
static void lives_add(struct drain_lives *l, uint64_t att, struct drain_closing *c)
{
	uint64_t row = (uint64_t)c->phase_row;
	size_t i;

	assert(row != 0);
	if ((l->n + 1) * 2 > l->cap) {
		struct drain_lives g = { .cap = l->cap != 0 ? l->cap * 2 : 64 };

		g.v = xcalloc(g.cap, sizeof *g.v);
		g.rows = xcalloc(g.cap, sizeof *g.rows);
		for (size_t j = 0; j < l->cap; j++) {
			if (l->v[j].attempt_id != 0)
				g.v[live_slot(&g, l->v[j].attempt_id)] = l->v[j];
			if (l->rows[j].phase_row != 0)
				g.rows[live_row_slot(&g, l->rows[j].phase_row)] = l->rows[j];
		}
		g.n = l->n;
		free(l->v);
		free(l->rows);
		*l = g;
	}
	if (l->rows[(i = live_row_slot(l, row))].phase_row != 0) {
		lives_take(l, l->rows[i].attempt_id, NULL);
		i = live_row_slot(l, row);
	}
	l->rows[i] = (struct drain_live_row){ .phase_row = row, .attempt_id = att };
	l->v[live_slot(l, att)] = (struct drain_live){ .attempt_id = att, .c = *c };
	l->n++;
}

/* Take attempt `att` out of the table: true, and what it held in *c (which the caller
 * then holds; NULL: released), when it was there. */
static bool lives_take(struct drain_lives *l, uint64_t att, struct drain_closing *c)
{
	uint64_t row;
	size_t i;

	if (l->n == 0 || att == 0 || l->v[(i = live_slot(l, att))].attempt_id == 0)
		return false;
	row = (uint64_t)l->v[i].c.phase_row;
	if (c != NULL)
		*c = l->v[i].c;
	else
		closing_free(&l->v[i].c);
	lives_unslot(l->v, sizeof *l->v, l->cap, i);
	if (l->rows[(i = live_row_slot(l, row))].attempt_id == att)
		lives_unslot(l->rows, sizeof *l->rows, l->cap, i);
	l->n--;
	return true;
}

/* The live attempt `att`'s entry, or NULL. */
static struct drain_closing *lives_find(struct drain_lives *l, uint64_t att)
{
	size_t i;

	if (l->n == 0 || att == 0 || l->v[(i = live_slot(l, att))].attempt_id == 0)
		return NULL;
	return &l->v[i].c;
}

void drain_lives_count(struct store_drain *d, uint64_t att, int64_t events, int64_t estimations)
{
	struct drain_closing *c = d->lives.n > 0 ? lives_find(&d->lives, att) : NULL;

	if (c != NULL) {
		c->events += events;
		c->estimations += estimations;
	}
}

void drain_lives_forget(struct drain_lives *l, bool release)
{
	for (size_t i = 0; i < l->cap && l->n > 0; i++)
		if (l->v[i].attempt_id != 0) {
			closing_free(&l->v[i].c);
			l->v[i].attempt_id = 0;
			l->n--;
		}
	if (l->rows != NULL)
		memset(l->rows, 0, l->cap * sizeof *l->rows);
	if (release) {
		free(l->v);
		free(l->rows);
		memset(l, 0, sizeof *l);
	}
}

/* The live attempts, when the drain keeps them (with the tier counts). */
static struct drain_lives *drain_lives(struct store_drain *d)
{
	return drain_tiers(d) != NULL ? &d->lives : NULL;
}

/* Open an attempt of an eligible phase inside the group; STORE_EINVAL if not eligible,
 * STORE_EBUSY when another supervisor holds its run. */
int store_drain_attempt_open(struct store_drain *d, const char *run_id, const char *phase_id,
    int64_t worker_pid, const char *session_id, bool dry_run, uint64_t *attempt_id,
    int64_t *attempt_number, struct store_err *err)
{
	return drain_attempt_open(d, run_id, phase_id, 0, worker_pid, session_id, dry_run,
	    attempt_id, attempt_number, err);
}

/* Step the statement that reads phase (run_id, phase_id) for its attempt's opening: by
 * its row id when known (`row` > 0) and still that phase's, else by (run, phase).
 * DB_ROW with the statement left on its row, DB_DONE (no such phase) or DB_ERROR (the
 * statement named by *which), each reset but the row. */
static int drain_open_phase_row(struct store_drain *d, const char *run_id, const char *phase_id,
    int64_t row, struct db_stmt **out, enum drain_stmt *which)
{
	struct db_stmt *s;
	int rc;

	if (row > 0) {
		*which = DS_ATT_PHASE_ROW;
		s = drain_stmt_bound(d, DS_ATT_PHASE_ROW);
		drain_bind_text(s, 1, run_id);
		drain_bind_text(s, 2, phase_id);
		db_bind_int64(s, 3, row);
		if ((rc = db_step(s)) != DB_DONE) {
			*out = s;
			return rc;
		}
		db_reset(s);
	}
	*which = DS_ATT_PHASE;
	s = drain_stmt_bound(d, DS_ATT_PHASE);
	drain_bind_text(s, 1, run_id);
	drain_bind_text(s, 2, phase_id);
	*out = s;
	return db_step(s);
}

/* What an attempt's opening read of its phase (drain_open_read) leaves for its writes. */
struct drain_opening {
	struct drain_closing live; /* what its end needs, when the drain keeps live attempts */
	struct tier_count *t;      /* its tier's counts, when kept (not a dry run) */
	enum phase_state initial;  /* the phase's state before the attempt */
	int64_t number, row;       /* the attempt's number and the phase's row id */
	bool kept;                 /* `live` holds what it names */
};

int64_t drain_attempt_number(int64_t made)
{
	return made < INT64_MAX ? made + 1 : INT64_MAX;
}

/* Read phase (run_id, phase_id) for an attempt's opening into *o, and count its move to
 * EXECUTING in its tier's counts (unless a dry run): STORE_EINVAL when there is no such
 * phase or it is not dispatchable, STORE_EIO on an SQLite error; nothing held then. */
static int drain_open_read(struct store_drain *d, const char *run_id, const char *phase_id,
    int64_t phase_row, const char *session_id, bool dry_run, struct drain_opening *o,
    struct store_err *err)
{
	struct tier_cache *tiers = drain_tiers(d);
	struct drain_lives *lives = drain_lives(d);
	enum drain_stmt which;
	struct db_stmt *s;
	char *state;
	int64_t index, tier;
	int rc;

	memset(o, 0, sizeof *o);
	rc = drain_open_phase_row(d, run_id, phase_id, phase_row, &s, &which);
	if (rc != DB_ROW) {
		db_reset(s);
		if (rc != DB_DONE)
			return drain_fail(d, err, d->sql[which]);
		return store_fail(
		    err, STORE_EINVAL, "phase %s/%s: no such phase", run_id, phase_id);
	}
	state = store_col_text(s, 0, "NULL");
	o->number = drain_attempt_number(db_column_int64(s, 1));
	tier = db_column_int64(s, 2);
	o->row = db_column_int64(s, 3);
	index = db_column_int64(s, 4);
	if (tiers != NULL && !dry_run)
		o->t = store_tier_cached(tiers, tier);
	db_reset(s);
	o->initial = phase_state_parse(state);
	if (o->initial != PHASE_QUEUED && o->initial != PHASE_FAILED) {
		rc = store_fail(err, STORE_EINVAL, "phase %s/%s: state %s is not dispatchable",
		    run_id, phase_id, state);
		free(state);
		return rc;
	}
	if (o->t != NULL)
		store_tier_moved(o->t, state, phase_state_name(PHASE_EXECUTING));
	/* What the attempt's end will need, as DS_ATT_GET would read it then (a row id of 0,
	 * which no live attempt's table holds, leaves it to DS_ATT_GET). */
	if (lives != NULL && o->row != 0) {
		closing_keep(&o->live, run_id, phase_id, session_id, phase_state_name(o->initial),
		    dry_run ? state : phase_state_name(PHASE_EXECUTING));
		o->live.phase_row = o->row;
		o->live.phase_index = index;
		o->live.tier = tier;
		o->live.counted = true;
		o->live.dry_run = dry_run;
		o->kept = true;
	}
	free(state);
	return 0;
}

/* Release what an opening holds. */
static void drain_open_drop(struct drain_opening *o)
{
	if (o->kept)
		closing_free(&o->live);
	o->kept = false;
}

/* After its attempt row (`att`) is written: fence phase (run_id, phase_id) read into *o
 * with it, moving the phase to EXECUTING, its tier and run following (a dry run writes
 * nothing to the phase: its open attempt row is the fence, and the phase's row is left as
 * it was), and keep the attempt live. What *o held is taken or released. */
static int drain_open_fence(struct store_drain *d, const char *run_id, const char *phase_id,
    struct drain_opening *o, uint64_t att, bool dry_run, const char *now, struct store_err *err)
{
	struct drain_lives *lives = drain_lives(d);
	struct db_stmt *s;
	char what[160];
	int rc;

	if (!dry_run) {
		s = drain_stmt_bound(d, DS_PHASE_EXEC);
		db_bind_int64(s, 1, o->row);
		db_bind_int64(s, 2, (int64_t)att);
		drain_bind_text(s, 3, now);
		drain_bind_text(s, 4, phase_state_name(PHASE_EXECUTING));
		snprintf(what, sizeof what, "the fence of attempt %llu on phase %s/%s",
		    (unsigned long long)att, run_id, phase_id);
		if ((rc = drain_exec_one(d, DS_PHASE_EXEC, "phases", what, err)) != 0) {
			drain_open_drop(o);
			return rc;
		}
	}
	if (o->kept && lives != NULL)
		lives_add(lives, att, &o->live);
	else
		drain_open_drop(o);
	o->kept = false;
	if (dry_run)
		return 0;
	/* A tier known to be IN_PROGRESS already is left as it is, as the UPDATE would. */
	if (o->t == NULL || o->t->state_null || strcmp(o->t->state, "IN_PROGRESS") != 0) {
		s = drain_stmt(d, DS_TIER_STARTED);
		drain_bind_text(s, 1, run_id);
		drain_bind_text(s, 2, phase_id);
		drain_bind_text(s, 3, "IN_PROGRESS");
		drain_bind_text(s, 4, now);
		if ((rc = drain_exec(d, DS_TIER_STARTED, err)) != 0)
			return rc;
		if (o->t != NULL)
			store_tier_stored(o->t, "IN_PROGRESS");
	}
	return drain_run_follow(d, run_id, true, now, err);
}

int drain_attempt_open(struct store_drain *d, const char *run_id, const char *phase_id,
    int64_t phase_row, int64_t worker_pid, const char *session_id, bool dry_run,
    uint64_t *attempt_id, int64_t *attempt_number, struct store_err *err)
{
	struct drain_opening o;
	struct db_stmt *s;
	char now[32];
	int rc;

	assert(db_in_transaction(d->st->db));
	if (d->supervisor_id > 0)
		return store_fleet_attempt_open(d, run_id, phase_id, worker_pid, session_id,
		    dry_run, attempt_id, attempt_number, err);
	if ((rc = drain_open_read(d, run_id, phase_id, phase_row, session_id, dry_run, &o, err)) !=
	    0)
		return rc;
	db_now(d->st->db, now);
	s = drain_stmt_bound(d, DS_ATT_INSERT);
	drain_bind_text(s, 1, run_id);
	drain_bind_text(s, 2, phase_id);
	db_bind_int64(s, 3, o.number);
	drain_bind_text(s, 4, session_id);
	if (worker_pid > 0)
		db_bind_int64(s, 5, worker_pid);
	else
		db_bind_null(s, 5); /* opened ahead: its worker is recorded with its end */
	db_bind_int64(s, 6, dry_run);
	drain_bind_text(s, 7, phase_state_name(o.initial));
	drain_bind_text(s, 8, now);
	/* The row id, not a RETURNING clause: SQLite runs RETURNING as a trigger program. */
	if ((rc = drain_exec(d, DS_ATT_INSERT, err)) != 0) {
		drain_open_drop(&o);
		return rc;
	}
	*attempt_id = (uint64_t)db_last_insert_id(d->st->db);
	*attempt_number = o.number;
	return drain_open_fence(d, run_id, phase_id, &o, *attempt_id, dry_run, now, err);
}

/* The statement that inserts `m` attempt rows (2 <= m <= DRAIN_ROWS_MAX), prepared at its
 * first use: ?1 the session, ?2 dry_run, ?3 started_at, then five for each row (run,
 * phase, attempt number, worker pid, initial state). NULL on failure, err set. */
static struct db_stmt *drain_rows_stmt(struct store_drain *d, size_t m, struct store_err *err)
{
	struct strbuf sql = { 0 };

	assert(m >= 2 && m <= DRAIN_ROWS_MAX);
	if (d->att_rows[m] != NULL) {
		db_reset(d->att_rows[m]);
		db_clear_bindings(d->att_rows[m]);
		return d->att_rows[m];
	}
	strbuf_puts(&sql,
	    "INSERT INTO attempts (run_id, phase_id, attempt_number, session_id,"
	    " worker_pid, dry_run, initial_state, started_at) VALUES ");
	for (size_t j = 0; j < m; j++) {
		size_t p = 4 + 5 * j;

		strbuf_printf(&sql, "%s(?%zu, ?%zu, ?%zu, ?1, ?%zu, ?2, ?%zu, ?3)",
		    j > 0 ? ", " : "", p, p + 1, p + 2, p + 3, p + 4);
	}
	if (db_prepare_persistent(d->st->db, sql.s, &d->att_rows[m]) != DB_OK) {
		drain_fail(d, err, "INSERT INTO attempts … VALUES (…), (…)");
		d->att_rows[m] = NULL;
	}
	free(sql.s);
	return d->att_rows[m];
}

/* Insert the attempt rows of the `m` claims c[at[0..m)] read into o[at[…]] in one
 * statement (m >= 2), and set each claim's attempt id and number. The rows take
 * consecutive ids, in the order of the VALUES: the statement holds the write lock, and
 * AUTOINCREMENT gives each row the one after the last. */
static int drain_rows_insert(struct store_drain *d, struct drain_claim *c,
    const struct drain_opening *o, const size_t *at, size_t m, const char *session_id, bool dry_run,
    const char *now, struct store_err *err)
{
	struct db_stmt *s = drain_rows_stmt(d, m, err);
	uint64_t last;
	int rc;

	if (s == NULL)
		return STORE_EIO;
	drain_bind_text(s, 1, session_id);
	db_bind_int64(s, 2, dry_run);
	drain_bind_text(s, 3, now);
	for (size_t j = 0; j < m; j++) {
		const struct drain_claim *k = &c[at[j]];
		int p = 4 + 5 * (int)j;

		drain_bind_text(s, p, k->run_id);
		drain_bind_text(s, p + 1, k->phase_id);
		db_bind_int64(s, p + 2, o[at[j]].number);
		if (k->worker_pid > 0)
			db_bind_int64(s, p + 3, k->worker_pid);
		else
			db_bind_null(s, p + 3);
		drain_bind_text(s, p + 4, phase_state_name(o[at[j]].initial));
	}
	rc = db_step(s);
	db_reset(s);
	if (rc != DB_DONE)
		return drain_fail(d, err, "INSERT INTO attempts … VALUES (…), (…)");
	if (db_changes(d->st->db) != (int64_t)m)
		return store_fail(err, STORE_EIO, "%s: %zu attempt rows inserted as %lld",
		    d->st->path, m, (long long)db_changes(d->st->db));
	last = (uint64_t)db_last_insert_id(d->st->db);
	for (size_t j = 0; j < m; j++) {
		c[at[j]].attempt_id = last - (m - 1 - j);
		c[at[j]].attempt_number = o[at[j]].number;
	}
	return 0;
}

int drain_attempts_open_rows(struct store_drain *d, struct drain_claim *c, size_t n,
    const char *session_id, bool dry_run, struct store_err *err)
{
	struct drain_opening *o = xcalloc(n, sizeof *o);
	size_t *at = xcalloc(n, sizeof *at), m = 0, done = 0;
	char now[32];
	int rc = 0;

	assert(db_in_transaction(d->st->db) && d->supervisor_id == 0);
	for (size_t i = 0; i < n; i++) {
		c[i].rc = drain_open_read(d, c[i].run_id, c[i].phase_id, c[i].phase_row, session_id,
		    dry_run, &o[i], &c[i].err);
		if (c[i].rc == 0)
			at[m++] = i;
		else if (c[i].rc != STORE_EINVAL) {
			*err = c[i].err;
			rc = c[i].rc;
			goto out;
		}
	}
	db_now(d->st->db, now);
	for (size_t j = 0; j < m; j += DRAIN_ROWS_MAX) {
		size_t k = m - j < DRAIN_ROWS_MAX ? m - j : DRAIN_ROWS_MAX;

		if (k == 1) {
			struct db_stmt *s = drain_stmt_bound(d, DS_ATT_INSERT);
			struct drain_claim *one = &c[at[j]];

			drain_bind_text(s, 1, one->run_id);
			drain_bind_text(s, 2, one->phase_id);
			db_bind_int64(s, 3, o[at[j]].number);
			drain_bind_text(s, 4, session_id);
			if (one->worker_pid > 0)
				db_bind_int64(s, 5, one->worker_pid);
			else
				db_bind_null(s, 5);
			db_bind_int64(s, 6, dry_run);
			drain_bind_text(s, 7, phase_state_name(o[at[j]].initial));
			drain_bind_text(s, 8, now);
			if ((rc = drain_exec(d, DS_ATT_INSERT, err)) != 0)
				goto out;
			one->attempt_id = (uint64_t)db_last_insert_id(d->st->db);
			one->attempt_number = o[at[j]].number;
		} else if ((rc = drain_rows_insert(
		                d, c, o, at + j, k, session_id, dry_run, now, err)) != 0)
			goto out;
	}
	for (; done < m; done++) {
		struct drain_claim *k = &c[at[done]];

		if ((rc = drain_open_fence(d, k->run_id, k->phase_id, &o[at[done]], k->attempt_id,
		         dry_run, now, err)) != 0) {
			done++;
			goto out;
		}
	}
out:
	for (size_t j = done; j < m; j++)
		drain_open_drop(&o[at[j]]);
	free(o);
	free(at);
	return rc;
}

void store_drain_reserve_first_try(
    struct store_drain *d, const char *provider, const char *model, const char *role, int64_t cap)
{
	d->reserve.provider = provider;
	d->reserve.model = model;
	d->reserve.role = role;
	d->reserve.max_tokens = cap;
}

bool store_drain_reserving(const struct store_drain *d)
{
	return d->reserve.provider != NULL;
}

/* In the group: reserve the row of the first try of attempt `att` of (run, phase)
 * (store_drain_reserve_first_try). */
int drain_attempt_reserve(struct store_drain *d, uint64_t att, const char *run_id,
    const char *phase_id, const char *now, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, DS_ATT_RESERVE);
	int rc;

	drain_bind_text(s, 1, d->reserve.provider);
	drain_bind_text(s, 2, d->reserve.model);
	drain_bind_text(s, 3, run_id);
	drain_bind_text(s, 4, phase_id);
	drain_bind_text(s, 5, d->reserve.role);
	drain_bind_text(s, 6, now);
	db_bind_int64(s, 7, (int64_t)att);
	drain_bind_text(s, 8, usage_status_name(USAGE_SENT));
	db_bind_int64(s, 9, d->reserve.max_tokens);
	db_bind_int64(s, 10, 0);
	if ((rc = drain_exec(d, DS_ATT_RESERVE, err)) == 0)
		drain_announced_reserve(d, att, db_last_insert_id(d->st->db));
	return rc;
}

/* The bytes a list of strings takes in a packed spec: its pointers (NULL-terminated) and
 * its strings. */
static size_t spec_list_size(const struct store_scope_list *l)
{
	size_t n = (l->n + 1) * sizeof(char *);

	for (size_t i = 0; i < l->n; i++)
		n += strlen(l->items[i]) + 1;
	return n;
}

/* Copy a string into the block at *at (NULL stays NULL). */
static char *spec_put(char **at, const char *str)
{
	char *to = *at;
	size_t n;

	if (str == NULL)
		return NULL;
	n = strlen(str) + 1;
	memcpy(to, str, n);
	*at += n;
	return to;
}

/* Copy a list into the block: its pointer array at *ptrs, its strings at *at. */
static void spec_put_list(
    const struct store_scope_list *from, struct store_strs *to, char ***ptrs, char **at)
{
	to->v = *ptrs;
	to->n = from->n;
	for (size_t i = 0; i < from->n; i++)
		to->v[i] = spec_put(at, from->items[i]);
	to->v[from->n] = NULL;
	*ptrs += from->n + 1;
}

/* Fill a spec from the row of `s` whose columns from `col` on are name, description,
 * task_category, complexity, scope, check_command, max_builder_attempts and the run's
 * workspace: every string in one allocation (out->block). */
void drain_spec_read(struct db_stmt *s, int col, const char *phase_id, struct drain_spec *out)
{
	const char *name = db_column_text(s, col), *desc = db_column_text(s, col + 1),
	           *cat = db_column_text(s, col + 2), *cplx = db_column_text(s, col + 3),
	           *check = db_column_text(s, col + 5), *ws = db_column_text(s, col + 7);
	struct store_scope sc;
	char why[256], *at, **ptrs;
	size_t size;

	name = name != NULL ? name : phase_id;
	desc = desc != NULL ? desc : "";
	ws = ws != NULL ? ws : "";
	memset(out, 0, sizeof *out);
	/* Every scope shape of docs/adoption.md; one that cannot be interpreted gives no
	 * deliverables, and the worker fails the phase without calling the LLM. */
	if (store_scope_parse_text(db_column_text(s, col + 4), &sc, why, sizeof why) != 0)
		memset(&sc, 0, sizeof sc);
	size = spec_list_size(&sc.paths) + spec_list_size(&sc.context) +
	    spec_list_size(&sc.deliverables) + strlen(name) + strlen(desc) + strlen(ws) + 3 +
	    (cat != NULL ? strlen(cat) + 1 : 0) + (cplx != NULL ? strlen(cplx) + 1 : 0) +
	    (check != NULL ? strlen(check) + 1 : 0);
	out->block = xmalloc(size);
	ptrs = out->block;
	at = (char *)(ptrs + sc.paths.n + sc.context.n + sc.deliverables.n + 3);
	spec_put_list(&sc.paths, &out->paths, &ptrs, &at);
	spec_put_list(&sc.context, &out->read_only_context, &ptrs, &at);
	spec_put_list(&sc.deliverables, &out->deliverables, &ptrs, &at);
	out->name = spec_put(&at, name);
	out->description = spec_put(&at, desc);
	out->task_category = spec_put(&at, cat);
	out->complexity = spec_put(&at, cplx);
	out->check_command = spec_put(&at, check);
	out->workspace = spec_put(&at, ws);
	assert((size_t)(at - (char *)out->block) == size);
	/* A limit below 1 (another program wrote it) is none, as the drain's budget reads it
	 * (store_drain_queue.c); a job carries none as 0. */
	out->max_builder_attempts = db_column_int64(s, col + 6);
	if (out->max_builder_attempts < 0)
		out->max_builder_attempts = 0;
	store_scope_free(&sc);
}

/* Read a phase's spec; STORE_EINVAL when there is no such phase. */
int store_drain_spec(struct store_drain *d, const char *run_id, const char *phase_id,
    struct drain_spec *out, struct store_err *err)
{
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = drain_phase_row(d, DS_SPEC, run_id, phase_id, err)) != 0)
		return rc;
	drain_spec_read(d->stmt[DS_SPEC], 0, phase_id, out);
	db_reset(d->stmt[DS_SPEC]);
	return 0;
}

/* Release a spec. */
void store_drain_spec_free(struct drain_spec *s)
{
	free(s->block);
	memset(s, 0, sizeof *s);
}

/* Let the tier and the run of a phase follow its new state. */
int drain_follow(struct store_drain *d, const char *run_id, const char *phase_id, const char *now,
    struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, DS_TIER_STATE);
	int rc;

	drain_bind_text(s, 1, run_id);
	drain_bind_text(s, 2, phase_id);
	rc = store_tier_apply(d->st->db, s, drain_stmt(d, DS_TIER_SET), now, err);
	db_reset(s);
	if (rc != 0)
		return rc;
	return drain_run_follow(d, run_id, false, now, err);
}

/* After DS_PHASE_SET wrote state `to` into the phase's row `row` (`what` says which
 * write): STORE_EIO, and a refusal for store_drain_constraint_failed, when the row holds
 * another state. A BEFORE trigger of another program's that rewrites the state (COMPLETE
 * back to QUEUED) would have the phase run again at each reading of the queue, without
 * end. */
static int drain_phase_kept(
    struct store_drain *d, int64_t row, const char *to, const char *what, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, DS_PHASE_STATE);
	int rc;

	db_bind_int64(s, 1, row);
	if ((rc = db_step(s)) != DB_ROW) {
		db_reset(s);
		return rc == DB_DONE ? store_fail(err, STORE_EIO, "%s: %s: the phase's row is gone",
		                           d->st->path, what) :
		                       drain_fail(d, err, d->sql[DS_PHASE_STATE]);
	}
	if (db_column_text(s, 0) == NULL || strcmp(db_column_text(s, 0), to) != 0)
		snprintf(d->skipped, sizeof d->skipped,
		    "%.80s left the phase %.20s, not %s: a trigger on phases that is not autopack's"
		    " changed the state written",
		    what, db_column_text(s, 0) != NULL ? db_column_text(s, 0) : "NULL", to);
	db_reset(s);
	if (d->skipped[0] != '\0')
		return store_fail(err, STORE_EIO, "%s: %s", d->st->path, d->skipped);
	return 0;
}

/* Apply the end of attempt `att` (`p`) to its phase (its fence lifted), the phase's tier
 * (from the tier's counts when the drain keeps them) and its run. */
static int drain_phase_end(struct store_drain *d, uint64_t att, const struct drain_closing *p,
    const struct drain_close *c, const char *now, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, DS_PHASE_SET);
	struct tier_cache *tiers = drain_tiers(d);
	const char *to = phase_state_name(c->phase_state);
	struct tier_count *t = NULL;
	char what[160];
	int rc;

	db_bind_int64(s, 1, p->phase_row);
	drain_bind_text(s, 2, to);
	drain_bind_text(s, 3, now);
	/* A completed phase keeps the reason of its last failure. */
	if (c->phase_state != PHASE_COMPLETE)
		drain_bind_text(s, 4, reason_name(c->reason));
	db_bind_int64(s, 5, c->phase_state == PHASE_COMPLETE || c->phase_state == PHASE_FAILED);
	db_bind_int64(s, 6, (int64_t)att);
	snprintf(what, sizeof what, "the end of attempt %llu (phase %s/%s to %s)",
	    (unsigned long long)att, p->run_id, p->phase_id, to);
	if ((rc = drain_exec_one(d, DS_PHASE_SET, "phases", what, err)) != 0 ||
	    (rc = drain_phase_kept(d, p->phase_row, to, what, err)) != 0)
		return rc;
	if (tiers != NULL && (t = store_tier_cached(tiers, p->tier)) != NULL)
		store_tier_moved(t, p->state, to);
	else if (tiers != NULL &&
	    (rc = store_tier_load(
	         d->st->db, drain_stmt(d, DS_TIER_COUNT), tiers, p->tier, &t, err)) != 0)
		return rc;
	if (t == NULL)
		return drain_follow(d, p->run_id, p->phase_id, now, err);
	if ((rc = store_tier_settle(d->st->db, drain_stmt(d, DS_TIER_SET), t, now, err)) != 0)
		return rc;
	return drain_run_follow(d, p->run_id, false, now, err);
}

/* Look up attempt `att` and its phase, among the live attempts the drain keeps, else in
 * the database (DS_ATT_GET); *live is false when the attempt is unknown, ended, or not
 * its phase's current one. What *p holds is released by closing_free. */
static int drain_attempt_get(
    struct store_drain *d, uint64_t att, struct drain_closing *p, bool *live, struct store_err *err)
{
	struct drain_lives *lives = drain_lives(d);
	struct db_stmt *s;
	int rc;

	memset(p, 0, sizeof *p);
	if (lives != NULL && lives_take(lives, att, p)) {
		*live = true;
		return 0;
	}
	s = drain_stmt(d, DS_ATT_GET);
	db_bind_int64(s, 1, (int64_t)att);
	rc = db_step(s);
	*live = rc == DB_ROW && db_column_int64(s, 2) != 0;
	if (*live) {
		const char *run = db_column_text(s, 0), *phase = db_column_text(s, 1);

		closing_keep(p, run != NULL ? run : "", phase != NULL ? phase : "",
		    db_column_text(s, 3), db_column_text(s, 4), db_column_text(s, 6));
		p->phase_index = db_column_int64(s, 5);
		p->tier = db_column_int64(s, 7);
		p->phase_row = db_column_int64(s, 8);
		p->dry_run = db_column_int64(s, 9) != 0;
	}
	db_reset(s);
	return rc == DB_ROW || rc == DB_DONE ? 0 : drain_fail(d, err, "attempt lookup");
}

/* Write attempt `att`'s end with message `msg`, and lift its phase's fence when `unfence`
 * (else the phase's new state lifts it). */
static int drain_attempt_end(struct store_drain *d, uint64_t att, const struct drain_close *c,
    const char *msg, const struct drain_closing *p, bool unfence, const char *now,
    struct store_err *err)
{
	enum drain_stmt i = p->counted ? DS_ATT_END_COUNTED : DS_ATT_END;
	struct db_stmt *s = drain_stmt_bound(d, i);
	char what[48];
	int rc;

	db_bind_int64(s, 1, (int64_t)att);
	drain_bind_text(s, 2, now);
	drain_bind_text(s, 3, outcome_name(c->outcome));
	drain_bind_text(s, 4, reason_name(c->reason));
	drain_bind_text(s, 5, msg);
	drain_bind_text(s, 6, c->fingerprint);
	drain_bind_text(s, 7, zero_yield_name(c->zero_yield));
	db_bind_int64(s, 8, c->reached_llm_boundary);
	db_bind_int64(s, 9, c->duration_ms);
	if (c->worker_pid > 0)
		db_bind_int64(s, 10, c->worker_pid);
	else
		db_bind_null(s, 10);
	if (p->counted)
		db_bind_int64(s, 11, p->events);
	snprintf(what, sizeof what, "the end of attempt %llu", (unsigned long long)att);
	if ((rc = drain_exec_one(d, i, "attempts", what, err)) != 0 || !unfence)
		return rc;
	s = drain_stmt_bound(d, DS_PHASE_UNFENCE);
	db_bind_int64(s, 1, p->phase_row);
	db_bind_int64(s, 2, (int64_t)att);
	return drain_exec(d, DS_PHASE_UNFENCE, err);
}

/* End an attempt whose full close cannot be written: the attempt row, and its phase
 * back to QUEUED. */
int store_drain_attempt_close_bare(struct store_drain *d, uint64_t att, const struct drain_close *c,
    const char *why, bool *stale, struct store_err *err)
{
	struct tier_cache *tiers;
	struct tier_count *t;
	char now[32], *msg, what[160];
	struct drain_closing p;
	struct db_stmt *s;
	bool live, reserved;
	int rc;

	assert(db_in_transaction(d->st->db));
	rc = drain_attempt_get(d, att, &p, &live, err);
	*stale = !live;
	if (rc != 0 || !live)
		goto out;
	drain_announced_close(d, att, &reserved);
	db_now(d->st->db, now);
	msg = xasprintf("%s%s[its end could not be recorded in full: %s]",
	    c->message != NULL ? c->message : "", c->message != NULL ? " " : "", why);
	rc = drain_attempt_end(d, att, c, msg, &p, false, now, err);
	free(msg);
	if (rc != 0)
		goto out;
	s = drain_stmt(d, DS_PHASE_SET);
	db_bind_int64(s, 1, p.phase_row);
	drain_bind_text(s, 2, phase_state_name(PHASE_QUEUED));
	drain_bind_text(s, 3, now);
	drain_bind_text(s, 4, reason_name(c->reason));
	db_bind_int64(s, 5, 0);
	db_bind_int64(s, 6, (int64_t)att);
	snprintf(what, sizeof what, "the end of attempt %llu (phase %s/%s back to QUEUED)",
	    (unsigned long long)att, p.run_id, p.phase_id);
	/* The tier is not set from its phases here; its counts follow the phase all the same. */
	if ((rc = drain_exec_one(d, DS_PHASE_SET, "phases", what, err)) == 0 &&
	    (tiers = drain_tiers(d)) != NULL && (t = store_tier_cached(tiers, p.tier)) != NULL)
		store_tier_moved(t, p.state, phase_state_name(PHASE_QUEUED));
out:
	closing_free(&p);
	return rc;
}

/* Write the drain_session_results row of attempt `att` (`p`), closed with `c` at `now`,
 * its phase now in `final_state`. */
static int drain_result_row(struct store_drain *d, uint64_t att, const struct drain_close *c,
    const struct drain_closing *p, const char *final_state, const char *now, struct store_err *err)
{
	enum drain_stmt i = p->counted ? DS_RESULT_ROW_COUNTED : DS_RESULT_ROW;
	struct db_stmt *s = drain_stmt_bound(d, i);
	const char *reason = reason_name(c->reason);
	char *error = NULL;
	int rc;

	if (reason != NULL && c->message != NULL)
		error = xasprintf("%s: %s", reason, c->message);
	db_bind_int64(s, 1, (int64_t)att);
	db_bind_int64(s, 2, outcome_ok(c->outcome));
	drain_bind_text(s, 3, p->session_id);
	drain_bind_text(s, 4, p->run_id);
	drain_bind_text(s, 5, p->phase_id);
	db_bind_int64(s, 6, p->phase_index);
	drain_bind_text(s, 7, p->initial);
	drain_bind_text(s, 8, final_state);
	drain_bind_text(s, 9, error != NULL ? error : reason != NULL ? reason : c->message);
	drain_bind_text(s, 10, now);
	db_bind_double(s, 11, (double)c->duration_ms / 1000.0);
	drain_bind_text(s, 12, c->fingerprint);
	db_bind_int64(s, 13, c->reached_llm_boundary);
	drain_bind_text(s, 14, zero_yield_name(c->zero_yield));
	db_bind_int64(s, 15, c->duration_ms);
	if (p->counted)
		db_bind_int64(s, 16, p->estimations);
	rc = drain_exec(d, i, err);
	free(error); /* bound without a copy: freed once stepped */
	return rc;
}

/* Close an attempt inside the group; nothing is written for a stale one. */
int store_drain_attempt_close(struct store_drain *d, uint64_t att, const struct drain_close *c,
    bool *stale, struct store_err *err)
{
	char now[32];
	struct drain_closing p;
	struct db_stmt *s;
	bool live, announced, reserved;
	int rc;

	assert(db_in_transaction(d->st->db));
	assert(c->outcome != OUTCOME_NONE);
	rc = drain_attempt_get(d, att, &p, &live, err);
	*stale = !live;
	if (rc != 0 || *stale)
		goto out;
	announced = drain_announced_close(d, att, &reserved);

	db_now(d->st->db, now);
	if ((rc = drain_attempt_end(d, att, c, c->message, &p,
	         c->phase_state == PHASE_STATE_NONE && !p.dry_run, now, err)) != 0)
		goto out;
#ifndef AUTOPACK_MUTANT_reserved_row_kept
	/* Every try the attempt made was announced, and its announcement is in: a reserved
	 * first try that none confirmed was never sent. */
	if (announced && reserved && c->tries_announced) {
		s = drain_stmt(d, DS_ATT_UNRESERVE);
		db_bind_int64(s, 1, (int64_t)att);
		drain_bind_text(s, 2, usage_status_name(USAGE_SENT));
		if ((rc = drain_exec(d, DS_ATT_UNRESERVE, err)) != 0)
			goto out;
	}
#endif
	/* Only an attempt that announced a try through this process, or whose first try was
	 * reserved, can have a 'sent' row. */
	if (announced) {
		s = drain_stmt(d, DS_ATT_LOST);
		db_bind_int64(s, 1, (int64_t)att);
		drain_bind_text(s, 2, usage_status_name(USAGE_LOST));
		drain_bind_text(s, 3, usage_status_name(USAGE_SENT));
		if ((rc = drain_exec(d, DS_ATT_LOST, err)) != 0)
			goto out;
	}
	if (c->phase_state != PHASE_STATE_NONE &&
	    (rc = drain_phase_end(d, att, &p, c, now, err)) != 0)
		goto out;
	if (p.session_id != NULL)
		rc = drain_result_row(d, att, c, &p,
		    c->phase_state != PHASE_STATE_NONE ? phase_state_name(c->phase_state) : p.state,
		    now, err);
out:
	closing_free(&p);
	return rc;
}
