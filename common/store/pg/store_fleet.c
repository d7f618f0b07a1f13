/* Several supervisors on one PostgreSQL database (common/store/store_fleet.h): the
 * registry, the heartbeat that is also the fence, the rescue of a lost supervisor's
 * attempts, LISTEN/NOTIFY, and commands through the database. Times are the server's. */
#include "common/store/store_fleet.h"
#include "common/store/pg/db_pg.h"
#include "common/store/pg/db_pg_wait.h"
#include "common/store/pg/dialect_pg.h"
#include "common/store/pg/store_fleet_budget.h"
#include "common/store/store_drain_internal.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "common/vocab.h"

#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The server's time now (not the transaction's start), as a UTC TIMESTAMP. */
#define PG_NOW "(clock_timestamp() AT TIME ZONE 'UTC')"
/* The application_name of a supervisor's sessions, before its id. */
#define FLEET_APP "autopack-supervisor"
/* The key of the session-choosing lock, a transaction's advisory lock. */
#define FLEET_SESSION_LOCK_KEY 1095782995

/* Whether the session ?5 stopped or deprioritised run r (its saved policy state): a run
 * another supervisor stopped is not claimed here even before this one has read why (a dry
 * run, which judges nothing and reads no saved state, visits it all the same). The
 * JSON is parsed only when the state names the run at all, or when the run's id is one
 * JSON writes escaped (which a search for the id as it is would not find). */
#define FLEET_RUN_HELD_BACK                                                                        \
	" (SELECT count(*) FROM drain_sessions ds WHERE ds.session_id = ?5"                        \
	"   AND CASE WHEN strpos(ds.state_json, r.id) = 0 AND r.id !~ " DIALECT_PG_JSON_ESCAPED    \
	"   THEN FALSE"                                                                            \
	"   ELSE CAST(ds.state_json AS jsonb) -> 'stopped_runs' @> jsonb_build_array(r.id)"        \
	"   OR CAST(ds.state_json AS jsonb) -> 'deprioritized_runs' @> jsonb_build_array(r.id)"    \
	"   END)"

/* The drain's statements that differ when several supervisors share the database. The
 * lock of the rows of the runs a round claims (?1, a JSON array of ids) for the
 * transaction, passing over those another supervisor is claiming (SKIP LOCKED): the ids
 * of the runs locked. */
static const char fleet_sql_lock[] =
    "SELECT id FROM runs WHERE id = ANY (ARRAY(SELECT json_array_elements_text(CAST(?1 AS JSON))))"
    " FOR UPDATE SKIP LOCKED";
/* The claims of the locked runs (?1, a JSON array of {i, run_id, phase_id, pid}), run
 * after the lock in a statement of its own: in READ COMMITTED a statement sees what was
 * committed when it began, and a lock taken after a holder's commit does not refresh that
 * view, so this one sees what the runs' previous holders committed. For each phase it
 * reads the phase's state, the run's open attempts, the eligible phases before it in the
 * run and whether a dry run of the session already visited it or its policy holds the run
 * back, and when the run is free opens the attempt (in this supervisor's name) and fences
 * the phase, moving it to EXECUTING unless in a dry run (its count of attempts, an INTEGER,
 * stays at the most it holds rather than fail the statement): a row per phase that exists, its
 * attempt's id NULL when none was opened. Attempts are looked up through scalar
 * subqueries, by their phase (the session compared through an expression): whatever the
 * planner's statistics, each phase costs one index probe, never a scan of the session's
 * attempts, which would make a drain quadratic in its length. */
#define FLEET_CLAIM_READ                                                                           \
	"WITH w AS MATERIALIZED (SELECT * FROM json_to_recordset(CAST(?1 AS JSON))"                \
	"   AS w(i INTEGER, run_id TEXT, phase_id TEXT, pid BIGINT)),"                             \
	" c AS MATERIALIZED (SELECT w.i, w.run_id, w.phase_id, w.pid, p.state,"                    \
	" p.builder_attempts,"                                                                     \
	" (SELECT count(*) FROM attempts a WHERE a.run_id = p.run_id AND a.ended_at IS NULL)"      \
	"   AS open,"                                                                              \
	" (SELECT count(*) FROM phases q JOIN tiers tq ON tq.id = q.tier_id"                       \
	"   WHERE q.run_id = p.run_id AND (q.state = ?2 OR (?3 AND q.state = ?4))"                 \
	"   AND (tq.tier_index, q.phase_index, q.id) < (tp.tier_index, p.phase_index, p.id)"       \
	"   AND (SELECT count(*) FROM attempts v WHERE v.run_id = q.run_id"                        \
	"     AND v.phase_id = q.phase_id AND COALESCE(v.session_id, '') = ?5"                     \
	"     AND v.dry_run = 1) = 0) AS before,"                                                  \
	" (SELECT count(*) FROM attempts v WHERE v.run_id = p.run_id AND v.phase_id = p.phase_id"  \
	"   AND COALESCE(v.session_id, '') = ?5 AND v.dry_run = 1) AS visited,"                    \
	" CASE WHEN CAST(?6 AS INTEGER) = 1 THEN 0 ELSE" FLEET_RUN_HELD_BACK " END AS held"        \
	" FROM w JOIN runs r ON r.id = w.run_id JOIN phases p ON p.run_id = r.id"                  \
	"   AND p.phase_id = w.phase_id JOIN tiers tp ON tp.id = p.tier_id)"
/* Whether claim c may open its attempt (but for a budget). */
#define FLEET_CLAIM_FREE                                                                           \
	" c.open = 0 AND c.before = 0 AND c.visited = 0 AND c.held = 0 AND c.state IN (?2, ?4)"
/* The attempts of the free claims, those `cond` lets through, and their phases fenced. */
#define FLEET_CLAIM_OPEN(cond)                                                                      \
	", ins AS (INSERT INTO attempts (run_id, phase_id, attempt_number, session_id, worker_pid," \
	"   dry_run, initial_state, started_at, supervisor_id)"                                     \
	"   SELECT c.run_id, c.phase_id,"                                                           \
	"   CAST(LEAST(CAST(c.builder_attempts AS NUMERIC) + 1, 9223372036854775807) AS BIGINT),"   \
	"   ?5, NULLIF(c.pid, 0),"                                                                  \
	"   CAST(?6 AS INTEGER), c.state, ?7, ?8"                                                   \
	"   FROM c WHERE" FLEET_CLAIM_FREE cond " RETURNING attempt_id, run_id, phase_id),"         \
	" f AS (UPDATE phases SET current_attempt_id = ins.attempt_id,"                             \
	"   state = CASE WHEN CAST(?6 AS INTEGER) = 1 THEN phases.state ELSE ?9 END,"               \
	"   builder_attempts = phases.builder_attempts"                                             \
	"     + CASE WHEN CAST(?6 AS INTEGER) = 1 OR phases.builder_attempts >= 2147483647"         \
	"     THEN 0 ELSE 1 END,"                                                                   \
	"   last_attempt_timestamp = CASE WHEN CAST(?6 AS INTEGER) = 1"                             \
	"     THEN phases.last_attempt_timestamp ELSE ?7 END,"                                      \
	"   started_at = CASE WHEN CAST(?6 AS INTEGER) = 1"                                         \
	"     THEN phases.started_at ELSE COALESCE(phases.started_at, ?7) END,"                     \
	"   updated_at = CASE WHEN CAST(?6 AS INTEGER) = 1 THEN phases.updated_at ELSE ?7 END"      \
	"   FROM ins WHERE phases.run_id = ins.run_id AND phases.phase_id = ins.phase_id"           \
	"   RETURNING phases.current_attempt_id AS fenced)"
/* What came of each claim: a row per phase that exists, its attempt's id NULL when none
 * was opened, and whether its phase was fenced (a trigger or rule of another program's on
 * phases can skip that UPDATE: fleet_claims_insert). */
#define FLEET_CLAIM_RESULT(extra)                                                                  \
	" SELECT c.i, c.state, c.builder_attempts, c.open, c.before, c.visited, c.held,"           \
	" ins.attempt_id, (SELECT count(*) FROM f WHERE f.fenced = ins.attempt_id)" extra          \
	" FROM c LEFT JOIN ins ON ins.run_id = c.run_id AND ins.phase_id = c.phase_id"
static const char fleet_sql_claim[] = FLEET_CLAIM_READ FLEET_CLAIM_OPEN("") FLEET_CLAIM_RESULT("");
/* Within the session's --batch-size (?10): the session's started attempts, counted once,
 * and the rank of each free claim in the round's order (i). */
#define FLEET_CLAIM_BUDGET                                                                         \
	", n AS MATERIALIZED (SELECT " FLEET_STARTED_OF "?5" FLEET_STARTED_WHERE " AS started),"   \
	" k AS MATERIALIZED (SELECT c.i, row_number() OVER (ORDER BY c.i) AS rank FROM c"          \
	"   WHERE" FLEET_CLAIM_FREE ")"
/* The free claims the budget lets through. */
#define FLEET_CLAIM_WITHIN                                                                         \
	" AND (SELECT k.rank FROM k WHERE k.i = c.i)"                                              \
	"   <= CAST(?10 AS BIGINT) - (SELECT n.started FROM n)"
/* The claim within the session's --batch-size (?10), after the session's row was locked
 * (fleet_budget_lock): the count sees every claim committed before the lock was taken, the
 * free claims open attempts in the round's order as long as the session stays within its
 * budget, and each row also says how many attempts the session had started. The count
 * reads the session's attempts (ix_attempts_session): in proportion to them, which the
 * budget bounds. */
static const char fleet_sql_claim_capped[] = FLEET_CLAIM_READ FLEET_CLAIM_BUDGET FLEET_CLAIM_OPEN(
    FLEET_CLAIM_WITHIN) FLEET_CLAIM_RESULT(", (SELECT n.started FROM n)");
static const char fleet_sql_eligible[] =
    "SELECT x.run_id, x.phase_id, x.tier_index, x.phase_index,"
    " (SELECT count(*) FROM attempts a WHERE a.run_id = x.run_id"
    "   AND a.phase_id = x.phase_id AND COALESCE(a.session_id, '') = ?3),"
    " x.max_attempts, x.last_failure_reason, x.name, x.description, x.task_category,"
    " x.complexity, x.scope, x.check_command, x.max_builder_attempts, x.workspace"
    " FROM (SELECT p.run_id, p.phase_id, t.tier_index, p.phase_index, p.id,"
    "   COALESCE(p.max_builder_attempts, 0) AS max_attempts, p.last_failure_reason,"
    "   p.name, p.description, p.task_category, p.complexity, p.scope, p.check_command,"
    "   p.max_builder_attempts, r.workspace"
    "   FROM phases p JOIN tiers t ON t.id = p.tier_id JOIN runs r ON r.id = p.run_id"
    "   WHERE (p.state = ?4 OR (?2 AND p.state = ?5))"
    "   AND (CAST(?7 AS TEXT) IS NULL"
    "     OR p.run_id = ANY (ARRAY(SELECT json_array_elements_text(CAST(?7 AS JSON)))))"
    "   AND p.run_id NOT IN (SELECT o.run_id FROM attempts o WHERE o.ended_at IS NULL"
    "     AND o.supervisor_id IS DISTINCT FROM ?6)"
    "   OFFSET 0) x"
    " WHERE (SELECT count(*) FROM attempts v WHERE v.run_id = x.run_id"
    "   AND v.phase_id = x.phase_id AND COALESCE(v.session_id, '') = ?3 AND v.dry_run = 1) = 0"
    " ORDER BY x.run_id, x.tier_index, x.phase_index, x.id";

/* The fleet's variant of a drain statement, or NULL when it has none: the lock takes
 * DS_ATT_PHASE's place and the claim DS_ATT_INSERT's (store_fleet_attempts_open). */
const char *store_fleet_drain_sql(enum drain_stmt id)
{
	switch (id) {
	case DS_ATT_PHASE: return fleet_sql_lock;
	case DS_ATT_INSERT: return fleet_sql_claim;
	default: return NULL;
	}
}

/* Say in c->err why the claim read in `s` opened no attempt: STORE_EBUSY, the run is held
 * elsewhere or changed since this supervisor read it (another one ran the phase: the run
 * is to be read again, not just its head dropped); STORE_ESPENT, the session's
 * --batch-size left it out. */
static int fleet_claim_refused(struct store_drain *d, struct db_stmt *s, struct drain_claim *c)
{
	const char *state = db_column_text(s, 1);
	enum phase_state initial = phase_state_parse(state != NULL ? state : "NULL");
	struct store_err *err = &c->err;

	if (db_column_int64(s, 3) > 0)
		return store_fail(
		    err, STORE_EBUSY, "run %s has an attempt open elsewhere", c->run_id);
	if (db_column_int64(s, 4) > 0)
		return store_fail(err, STORE_EBUSY, "run %s has eligible phases before %s",
		    c->run_id, c->phase_id);
	if (db_column_int64(s, 5) > 0)
		return store_fail(err, STORE_EBUSY, "phase %s/%s was visited by this dry run",
		    c->run_id, c->phase_id);
	if (db_column_int64(s, 6) > 0)
		return store_fail(err, STORE_EBUSY,
		    "run %s was stopped or deprioritised in this session by another supervisor",
		    c->run_id);
	if (initial != PHASE_QUEUED && initial != PHASE_FAILED)
		return store_fail(err, STORE_EBUSY, "phase %s/%s: state %s is not dispatchable",
		    c->run_id, c->phase_id, state != NULL ? state : "NULL");
	if (d->batch_size > 0)
		return store_fail(err, STORE_ESPENT,
		    "phase %s/%s: the session has started its %lld attempts (--batch-size)",
		    c->run_id, c->phase_id, (long long)d->batch_size);
	return store_fail(err, STORE_EIO, "%s: phase %s/%s: the claim opened no attempt",
	    d->st->url, c->run_id, c->phase_id);
}

/* Lock the rows of the claims' runs, passing over those held elsewhere: c[i].rc is 0 for
 * a run locked, STORE_EBUSY (with why) for one not. */
static int fleet_claims_lock(
    struct store_drain *d, struct drain_claim *c, size_t n, struct store_err *err)
{
	struct db_stmt *s = drain_stmt(d, DS_ATT_PHASE);
	json_t *ids = json_array();
	char *text;
	int rc;

	for (size_t i = 0; i < n; i++) {
		json_array_append_new(ids, json_string(c[i].run_id));
		c[i].rc = store_fail(
		    &c[i].err, STORE_EBUSY, "run %s is being claimed elsewhere", c[i].run_id);
	}
	text = json_dumps(ids, JSON_COMPACT);
	json_decref(ids);
	store_bind_text(s, 1, text);
	while ((rc = db_step(s)) == DB_ROW) {
		const char *id = db_column_text(s, 0);

		for (size_t i = 0; i < n; i++)
			if (id != NULL && strcmp(c[i].run_id, id) == 0)
				c[i].rc = 0;
	}
	rc = rc == DB_DONE ? 0 : drain_fail(d, err, "locking runs");
	db_reset(s);
	free(text);
	return rc;
}

/* Claim the phases of the locked runs (c[i].rc 0) in one statement: each gets its
 * attempt, or its rc and why. */
static int fleet_claims_insert(struct store_drain *d, struct drain_claim *c, size_t n,
    const char *session_id, bool dry_run, const char *now, struct store_err *err)
{
	struct db_stmt *s;
	json_t *rows = json_array();
	char *text;
	bool *seen = xcalloc(n != 0 ? n : 1, sizeof *seen);
	int rc;

	for (size_t i = 0; i < n; i++)
		if (c[i].rc == 0)
			json_array_append_new(rows,
			    json_pack("{s:I, s:s, s:s, s:I}", "i", (json_int_t)i, "run_id",
			        c[i].run_id, "phase_id", c[i].phase_id, "pid",
			        (json_int_t)c[i].worker_pid));
	if (json_array_size(rows) == 0) {
		json_decref(rows);
		free(seen);
		return 0;
	}
	text = json_dumps(rows, JSON_COMPACT);
	json_decref(rows);
	s = drain_stmt(d, DS_ATT_INSERT);
	store_bind_text(s, 1, text);
	store_bind_text(s, 2, phase_state_name(PHASE_QUEUED));
	db_bind_int64(s, 3, d->retry_failed);
	store_bind_text(s, 4, phase_state_name(PHASE_FAILED));
	store_bind_text(s, 5, session_id);
	db_bind_int64(s, 6, dry_run);
	store_bind_text(s, 7, now);
	db_bind_int64(s, 8, d->supervisor_id);
	store_bind_text(s, 9, phase_state_name(PHASE_EXECUTING));
	if (d->batch_size > 0)
		db_bind_int64(s, 10, d->batch_size);
	while ((rc = db_step(s)) == DB_ROW) {
		int64_t i = db_column_int64(s, 0);

		if (d->batch_size > 0)
			d->claimed_started = db_column_int64(s, 9);
		if (i < 0 || (size_t)i >= n || c[i].rc != 0 || seen[i])
			continue;
		seen[i] = true;
		if (db_column_type(s, 7) == DB_NULL) {
			c[i].rc = fleet_claim_refused(d, s, &c[i]);
			continue;
		}
		c[i].attempt_id = (uint64_t)db_column_int64(s, 7);
		c[i].attempt_number = drain_attempt_number(db_column_int64(s, 2));
		/* An attempt whose phase was not fenced would run unseen by its own end, which
		 * finds it no longer its phase's current one: the round fails instead. */
		if (db_column_int64(s, 8) != 1)
			c[i].rc = store_fail(&c[i].err, STORE_EIO,
			    "%s: the fence of attempt %llu on phase %s/%s changed %lld rows of table"
			    " phases, not 1: a trigger or rule on phases that is not autopack's"
			    " skipped it",
			    d->st->url, (unsigned long long)c[i].attempt_id, c[i].run_id,
			    c[i].phase_id, (long long)db_column_int64(s, 8));
	}
	rc = rc == DB_DONE ? 0 : drain_fail(d, err, "claiming phases");
	db_reset(s);
	free(text);
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (c[i].rc == 0 && !seen[i])
			c[i].rc = store_fail(&c[i].err, STORE_EINVAL, "phase %s/%s: no such phase",
			    c[i].run_id, c[i].phase_id);
		/* A claim the statement could not explain fails the round. */
		if (c[i].rc == STORE_EIO) {
			*err = c[i].err;
			rc = STORE_EIO;
		}
	}
	free(seen);
	return rc;
}

/* Open the attempts of a round's claims inside the group, in two statements for them
 * all: the runs' locks, then the claims; within a --batch-size, the session's row is
 * locked first. */
int store_fleet_attempts_open(struct store_drain *d, struct drain_claim *c, size_t n,
    const char *session_id, bool dry_run, struct store_err *err)
{
	char now[32];
	int rc;

	d->claimed_started = -1;
	if (n == 0)
		return 0;
	if (d->batch_size > 0 && (rc = fleet_budget_lock(d, session_id, err)) != 0)
		return rc;
	if ((rc = fleet_claims_lock(d, c, n, err)) != 0)
		return rc;
	db_now(d->st->db, now);
	if ((rc = fleet_claims_insert(d, c, n, session_id, dry_run, now, err)) != 0)
		return rc;
	for (size_t i = 0; i < n && !dry_run; i++)
		if (c[i].rc == 0 &&
		    (rc = drain_follow(d, c[i].run_id, c[i].phase_id, now, err)) != 0)
			return rc;
	return 0;
}

/* One claim as a round of one (store_drain_attempt_open with several supervisors). */
int store_fleet_attempt_open(struct store_drain *d, const char *run_id, const char *phase_id,
    int64_t worker_pid, const char *session_id, bool dry_run, uint64_t *attempt_id,
    int64_t *attempt_number, struct store_err *err)
{
	struct drain_claim c = { .run_id = run_id, .phase_id = phase_id, .worker_pid = worker_pid };
	int rc = store_fleet_attempts_open(d, &c, 1, session_id, dry_run, err);

	if (rc != 0)
		return rc;
	if (c.rc != 0) {
		*err = c.err;
		return c.rc;
	}
	*attempt_id = c.attempt_id;
	*attempt_number = c.attempt_number;
	return 0;
}

int64_t store_fleet_claimed_started(const struct store_drain *d)
{
	return d->claimed_started;
}

/* The fleet's eligible phases: those of runs no other supervisor leases, and not visited
 * by a dry run of the session; the columns as store_drain_each_eligible reads them (the
 * job's spec from the eighth on). Parameters as it binds them, ?6 this supervisor, ?7 the
 * runs to read (a JSON array of ids) or NULL for all. */
const char *store_fleet_eligible_sql(void)
{
	return fleet_sql_eligible;
}

/* Whether the database is shared by several supervisors. */
bool store_fleet(const struct store *st)
{
	return st->backend == DB_PG;
}

/* Fill err with what failed and the database's message; STORE_EIO. */
static int fleet_fail(struct store *st, struct store_err *err, const char *what)
{
	return store_fail(err, STORE_EIO, "%s: %s: %s", st->url, what, db_errmsg(st->db));
}

/* Bound how long this supervisor's session can hold locks others wait for, on this
 * connection and every later one: a supervisor stopped (or cut off) inside a transaction
 * has its session ended by the server after half a lease, its transaction rolled back and
 * its locks released, so the others can declare it lost; and no statement of its own
 * waits for a lock longer than a quarter of a lease (it fails, and is retried), so its
 * loop never stops long enough to miss its heartbeat. The session is named after the
 * supervisor (application_name "autopack-supervisor ID"), so that one waiting for a lock
 * it holds can say whose it is. */
static int fleet_session_limits(
    struct store *st, int64_t id, int64_t lease_ms, struct store_err *err)
{
	free(st->pg_setup);
	st->pg_setup = xasprintf("SET idle_in_transaction_session_timeout = %lld;"
	                         " SET lock_timeout = %lld; SET application_name = '" FLEET_APP
	                         " %lld'",
	    (long long)(lease_ms / 2 > 0 ? lease_ms / 2 : 1),
	    (long long)(lease_ms / 4 > 0 ? lease_ms / 4 : 1), (long long)id);
	return store_exec(st->db, st->pg_setup, st->url, err);
}

/* Register this supervisor; its id goes to *id and to the drain's statements. */
int store_fleet_register(
    struct store_drain *d, const struct fleet_self *self, int64_t *id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db,
	    "INSERT INTO supervisors (host, pid, started_at, heartbeat_at, lease_timeout_ms,"
	    " control_socket) VALUES (?1, ?2, " PG_NOW ", " PG_NOW ", ?3, ?4)"
	    " RETURNING supervisor_id",
	    &q);

	assert(store_fleet(d->st) && !db_in_transaction(d->st->db));
	if (rc == DB_OK) {
		store_bind_text(q, 1, self->host);
		db_bind_int64(q, 2, self->pid);
		db_bind_int64(q, 3, self->lease_timeout_ms);
		store_bind_text(q, 4, self->control_socket);
	}
	rc = store_step_id(
	    d->st->db, q, rc, id, err, "%s: registering this supervisor", d->st->url);
	if (rc == 0)
		rc = fleet_session_limits(d->st, *id, self->lease_timeout_ms, err);
	if (rc == 0) {
		d->supervisor_id = *id;
		d->live_gen = d->st->conn_gen;
		d->retry_failed = self->retry_failed;
		d->claimed_started = -1;
	}
	/* Within a --batch-size, the claim counts the session's attempts. */
	if (rc == 0 && self->batch_size > 0) {
		d->batch_size = self->batch_size;
		db_finalize(d->stmt[DS_ATT_INSERT]);
		d->stmt[DS_ATT_INSERT] = NULL;
		d->sql[DS_ATT_INSERT] = fleet_sql_claim_capped;
		if (db_prepare_persistent(
		        d->st->db, d->sql[DS_ATT_INSERT], &d->stmt[DS_ATT_INSERT]) != DB_OK)
			rc = fleet_fail(d->st, err, "preparing the claim within --batch-size");
	}
	return rc;
}

/* Bind this supervisor's id as ?1 of a statement of its own and run it to its end. */
static int fleet_run_self(
    struct store_drain *d, const char *sql, const char *a, const char *b, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db, sql, &q);

	if (rc == DB_OK) {
		db_bind_int64(q, 1, d->supervisor_id);
		store_bind_text(q, 2, a);
		store_bind_text(q, 3, b);
	}
	return store_step_done(d->st->db, q, rc, err, "%s: %.80s", d->st->url, sql);
}

/* Say in err who holds the session-choosing lock (its server process to *holder, 0 when
 * none does any more): the supervisor named by its session's application_name, with its
 * host, pid, state and heartbeat. STORE_EBUSY while it is held inside a transaction,
 * which the server ends when idle for half the holder's lease; STORE_EIO when it is held
 * outside any (a session-level lock, which nothing but the end of that session frees). */
static int fleet_session_holder(struct store_drain *d, int *holder, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db,
	    "SELECT l.pid, COALESCE(a.state, ''), s.supervisor_id, s.host, s.pid, s.state,"
	    " EXTRACT(EPOCH FROM " PG_NOW " - s.heartbeat_at), COALESCE(a.application_name, '')"
	    " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
	    " LEFT JOIN supervisors s ON a.application_name = '" FLEET_APP
	    " ' || CAST(s.supervisor_id AS TEXT)"
	    " WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM"
	    " pg_database WHERE datname = current_database()) AND l.classid = 0"
	    " AND l.objid = ?1 AND l.objsubid = 1 LIMIT 1",
	    &q);
	char who[400];
	bool idle = false;

	*holder = 0;
	if (rc == DB_OK) {
		db_bind_int64(q, 1, FLEET_SESSION_LOCK_KEY);
		rc = db_step(q);
	}
	if (rc == DB_ROW) {
		*holder = (int)db_column_int64(q, 0);
		idle = strcmp(db_column_text(q, 1), "idle") == 0;
		if (db_column_type(q, 2) != DB_NULL)
			snprintf(who, sizeof who,
			    "supervisor %lld (%s pid %lld, %s, heartbeat %.1f s ago) in server process %d",
			    (long long)db_column_int64(q, 2), db_column_text(q, 3),
			    (long long)db_column_int64(q, 4), db_column_text(q, 5),
			    db_column_double(q, 6), *holder);
		else
			snprintf(who, sizeof who, "server process %d (application_name '%s')",
			    *holder, db_column_text(q, 7));
	}
	db_finalize(q);
	if (rc == DB_DONE)
		return store_fail(err, STORE_EBUSY,
		    "%s: the session-choosing lock was held by"
		    " another connection",
		    d->st->url);
	if (rc != DB_ROW)
		return fleet_fail(d->st, err, "finding who holds the session-choosing lock");
	if (idle)
		return store_fail(err, STORE_EIO,
		    "%s: the session-choosing lock is held outside any transaction by %s, which"
		    " the server never frees: stop that process, or end its session (SELECT"
		    " pg_terminate_backend(%d)), and start this supervisor again",
		    d->st->url, who, *holder);
	return store_fail(err, STORE_EBUSY,
	    "%s: the session-choosing lock is held by %s; waiting for it (the server ends the"
	    " session of a supervisor stopped while it holds it after half that supervisor's"
	    " lease)",
	    d->st->url, who);
}

/* Begin the transaction that chooses this supervisor's drain session, with the
 * session-choosing lock (`lock`), or commit it, which releases the lock (nothing when no
 * transaction is open). The lock is the transaction's (pg_advisory_xact_lock): a
 * supervisor stopped while it holds it is inside a transaction, which the server ends
 * after half its lease. When the lock is not had within lock_timeout, the transaction is
 * rolled back, the heartbeat renewed (a supervisor waiting is not silent) and
 * fleet_session_holder says who holds it. */
int store_fleet_session_lock(
    struct store_drain *d, bool lock, int *holder, bool *lost, struct store_err *err)
{
	char sql[80];

	*holder = 0;
	*lost = false;
	if (!lock)
		return db_in_transaction(d->st->db) ?
		    store_exec(d->st->db, "COMMIT", d->st->url, err) :
		    0;
	snprintf(
	    sql, sizeof sql, "BEGIN; SELECT pg_advisory_xact_lock(%d)", FLEET_SESSION_LOCK_KEY);
	if (db_exec(d->st->db, sql) == DB_OK)
		return 0;
	if (db_fault(d->st->db) != DB_FAULT_BUSY) {
		fleet_fail(d->st, err, "taking the session-choosing lock");
		db_rollback(d->st->db);
		return STORE_EIO;
	}
	db_rollback(d->st->db);
	if (store_fleet_confirm(d, lost, err) != 0)
		return STORE_EIO;
	return fleet_session_holder(d, holder, err);
}

/* Find the session of a live supervisor draining with the same join key. */
int store_fleet_session_find(
    struct store_drain *d, const char *join_key, char **session_id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db,
	    "SELECT s.session_id FROM supervisors s JOIN drain_sessions ds"
	    " ON ds.session_id = s.session_id"
	    " WHERE s.state = 'live' AND s.supervisor_id <> ?1 AND ds.completed_at IS NULL"
	    " AND s.join_key = ?2 ORDER BY s.supervisor_id LIMIT 1",
	    &q);

	*session_id = NULL;
	if (rc == DB_OK) {
		db_bind_int64(q, 1, d->supervisor_id);
		store_bind_text(q, 2, join_key);
		rc = db_step(q);
		if (rc == DB_ROW)
			*session_id = store_col_text(q, 0, NULL);
	}
	db_finalize(q);
	if (rc != DB_ROW && rc != DB_DONE)
		return fleet_fail(d->st, err, "finding the session of the other supervisors");
	return 0;
}

/* After a write of this supervisor's live row (`what`) changed no row: STORE_EIO with
 * the reason when its row is there and live all the same (another program's trigger or
 * rule on supervisors skipped the write, which is no declaration of it lost), 0 when the
 * row is no longer live (declared lost, stopped, or gone). */
static int fleet_renewal_skipped(struct store_drain *d, const char *what, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(
	    d->st->db, "SELECT 1 FROM supervisors WHERE supervisor_id = ?1 AND state = 'live'", &q);

	if (rc == DB_OK) {
		db_bind_int64(q, 1, d->supervisor_id);
		rc = db_step(q);
	}
	db_finalize(q);
	if (rc == DB_ROW)
		return store_fail(err, STORE_EIO,
		    "%s: %s changed no row of table supervisors, though the row of supervisor %lld is"
		    " there and live: a trigger or rule on supervisors that is not autopack's"
		    " skipped it",
		    d->st->url, what, (long long)d->supervisor_id);
	if (rc != DB_DONE)
		return store_fail(err, STORE_EIO, "%s: %s: reading the row of supervisor %lld: %s",
		    d->st->url, what, (long long)d->supervisor_id, db_errmsg(d->st->db));
	return 0;
}

/* Record this supervisor's session and join key while it is live. */
int store_fleet_session_set(struct store_drain *d, const char *session_id, const char *join_key,
    bool *lost, struct store_err *err)
{
	int rc = fleet_run_self(d,
	    "UPDATE supervisors SET session_id = ?2, join_key = ?3"
	    " WHERE supervisor_id = ?1 AND state = 'live'",
	    session_id, join_key, err);

	*lost = rc == 0 && db_changes(d->st->db) == 0;
	if (*lost && (rc = fleet_renewal_skipped(d, "recording its drain session", err)) != 0)
		*lost = false;
	return rc;
}

/* Count the other live supervisors of a session. */
int store_fleet_session_others(
    struct store_drain *d, const char *session_id, int64_t *n, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db,
	    "SELECT count(*) FROM supervisors WHERE state = 'live' AND supervisor_id <> ?1"
	    " AND session_id = ?2",
	    &q);

	*n = 0;
	if (rc == DB_OK) {
		db_bind_int64(q, 1, d->supervisor_id);
		store_bind_text(q, 2, session_id);
		if ((rc = db_step(q)) == DB_ROW)
			*n = db_column_int64(q, 0);
	}
	db_finalize(q);
	return rc == DB_ROW ? 0 : fleet_fail(d->st, err, "counting the session's supervisors");
}

/* Whether the server names its transaction id functions as before PostgreSQL 13
 * (txid_current), whose name later versions keep only as deprecated. */
static bool fleet_xact_names_old(struct store_drain *d)
{
	return PQserverVersion(db_pg_conn(d->st->db)) < 130000;
}

/* Renew the heartbeat in the group; *lost when this supervisor is no longer live. The
 * row's update gave the transaction its id, read in the same statement with the server
 * process, for a COMMIT that may go unanswered (store_fleet_txn). */
int store_fleet_heartbeat(
    struct store_drain *d, const char *status_json, bool *lost, struct store_err *err)
{
	static const char *const sql[] = {
		"UPDATE supervisors SET heartbeat_at = " PG_NOW ", status_json = COALESCE(?2,"
		" status_json) WHERE supervisor_id = ?1 AND state = 'live'"
		" RETURNING pg_current_xact_id(), " DB_PG_CLOCK_US,
		/* The names before PostgreSQL 13. */
		"UPDATE supervisors SET heartbeat_at = " PG_NOW ", status_json = COALESCE(?2,"
		" status_json) WHERE supervisor_id = ?1 AND state = 'live'"
		" RETURNING txid_current(), " DB_PG_CLOCK_US,
	};
	struct db_stmt *q = NULL;
	int64_t xid = 0;
	int rc = db_prepare(d->st->db, sql[fleet_xact_names_old(d)], &q);

	assert(db_in_transaction(d->st->db));
	*lost = false;
	if (rc == DB_OK) {
		db_bind_int64(q, 1, d->supervisor_id);
		store_bind_text(q, 2, status_json);
		rc = db_step(q);
	}
	/* The server's clock, read again with every heartbeat: what the group writes is
	 * stamped by it (db_now). */
	if (rc == DB_ROW) {
		xid = db_column_int64(q, 0);
		db_clock_set(d->st->db, db_column_int64(q, 1));
		rc = db_step(q);
	}
	if (rc != DB_DONE) {
		store_fail(err, STORE_EIO, "%s: renewing the heartbeat: %s", d->st->url,
		    db_errmsg(d->st->db));
		err->fault = db_fault(d->st->db);
		db_finalize(q);
		return STORE_EIO;
	}
	db_finalize(q);
	/* A transaction id is never 0: none read, the row is no longer live. */
	if (xid == 0 && (rc = fleet_renewal_skipped(d, "renewing the heartbeat", err)) != 0)
		return rc;
	*lost = xid == 0;
	d->heartbeat_xid = xid;
	d->heartbeat_pid = PQbackendPID(db_pg_conn(d->st->db));
	if (!*lost)
		d->live_gen = d->st->conn_gen;
	return 0;
}

/* COMMIT the group with its heartbeat stamped again as it ends. The heartbeat is the
 * group's first statement (its fence, whose row lock the others' rescue waits for), stamped
 * then; a group slow to commit (a loaded machine; the first after a reconnection, which
 * prepares its statements again on a server just recovered) would otherwise show the
 * others, once committed, a heartbeat already as old as the group, and past a short lease
 * have its supervisor, alive and committing, declared lost. The row is this transaction's
 * already: the second stamp waits for nothing. */
int store_fleet_commit(struct store_drain *d, struct store_err *err)
{
	char sql[160];

	snprintf(sql, sizeof sql,
	    "UPDATE supervisors SET heartbeat_at = " PG_NOW " WHERE supervisor_id = %lld",
	    (long long)d->supervisor_id);
	return drain_commit_after(d, sql, err);
}

/* Whether this supervisor was found live (registered, or its heartbeat written) on the
 * present connection. */
bool store_fleet_confirmed(const struct store_drain *d)
{
	return d->live_gen == d->st->conn_gen;
}

/* Renew the heartbeat alone, in a statement of its own; *lost when this supervisor is no
 * longer live. */
int store_fleet_confirm(struct store_drain *d, bool *lost, struct store_err *err)
{
	int rc = fleet_run_self(d,
	    "UPDATE supervisors SET heartbeat_at = " PG_NOW
	    " WHERE supervisor_id = ?1 AND state = 'live'",
	    NULL, NULL, err);

	assert(!db_in_transaction(d->st->db));
	*lost = rc == 0 && db_changes(d->st->db) == 0;
	if (*lost && (rc = fleet_renewal_skipped(d, "renewing the heartbeat", err)) != 0)
		*lost = false;
	if (rc == 0 && !*lost)
		d->live_gen = d->st->conn_gen;
	return rc;
}

/* Read the supervisors declared lost now (a row loop). */
static int fleet_lost_row(struct db_stmt *q, void *arg)
{
	struct store_rows *r = arg;
	struct fleet_lost *l = store_rows_add(r);

	l->id = db_column_int64(q, 0);
	l->host = store_col_text(q, 1, "");
	l->pid = db_column_int64(q, 2);
	l->silent_s = db_column_double(q, 3);
	return 0;
}

/* Free a lost supervisor's strings (a store_rows release). */
static void fleet_lost_item_free(void *item)
{
	free(((struct fleet_lost *)item)->host);
}

/* Free what store_fleet_rescue returned. */
void store_fleet_lost_free(struct fleet_lost *v, size_t n)
{
	store_rows_free(v, n, sizeof *v, fleet_lost_item_free);
}

/* The open attempts of supervisors that are not live. */
#define FLEET_ORPHANS                                                                              \
	"(SELECT a.attempt_id FROM attempts a LEFT JOIN supervisors s"                             \
	" ON s.supervisor_id = a.supervisor_id WHERE a.ended_at IS NULL"                           \
	" AND (s.state IS NULL OR s.state <> 'live'))"

/* Declare silent supervisors lost and close every orphaned attempt, in one transaction. */
int store_fleet_rescue(struct store_drain *d, int64_t connected_ms, struct fleet_lost **lost,
    size_t *nlost, int *closed, struct store_err *err)
{
	static const char *const sql[] = {
		/* Their phases: EXECUTING ones requeued, and no fence left on a closed attempt. */
		"UPDATE phases SET state = CASE WHEN state = ?3 THEN ?2 ELSE state END,"
		" updated_at = CASE WHEN state = ?3 THEN ?4 ELSE updated_at END,"
		" current_attempt_id = NULL WHERE current_attempt_id IN " FLEET_ORPHANS,
		"UPDATE llm_usage_events SET status = ?5 WHERE status = ?6 AND attempt_id IN " FLEET_ORPHANS,
		"UPDATE attempts SET ended_at = ?4, outcome = ?7, failure_reason = ?8,"
		" message = 'its supervisor ' || COALESCE(CAST(supervisor_id AS TEXT), '?')"
		" || ' stopped heartbeating and was declared lost by supervisor '"
		" || CAST(?1 AS TEXT) WHERE ended_at IS NULL AND attempt_id IN " FLEET_ORPHANS,
	};
	struct store_rows r = { .size = sizeof **lost, .item_free = fleet_lost_item_free };
	struct db_stmt *q = NULL;
	char now[32];
	int rc;

	*lost = NULL;
	*nlost = 0;
	*closed = 0;
	db_now(d->st->db, now);
	if ((rc = store_drain_begin(d, err)) != 0)
		return rc;
	rc = db_prepare(d->st->db,
	    "UPDATE supervisors SET state = 'lost', ended_at = " PG_NOW ", lost_by = ?1"
	    " WHERE state = 'live' AND supervisor_id <> ?1"
	    " AND heartbeat_at < " PG_NOW " - lease_timeout_ms * interval '1 millisecond'"
	    " AND lease_timeout_ms <= ?2"
	    " RETURNING supervisor_id, host, pid,"
	    " EXTRACT(EPOCH FROM " PG_NOW " - heartbeat_at)",
	    &q);
	if (rc == DB_OK) {
		db_bind_int64(q, 1, d->supervisor_id);
		db_bind_int64(q, 2, connected_ms);
	}
	rc = store_each_row(d->st->db, q, rc, fleet_lost_row, &r, err,
	    "%s: declaring silent supervisors lost", d->st->url);
	for (size_t i = 0; i < ARRAY_SIZE(sql) && rc == 0; i++) {
		rc = db_prepare(d->st->db, sql[i], &q);
		if (rc == DB_OK) {
			db_bind_int64(q, 1, d->supervisor_id);
			store_bind_text(q, 2, phase_state_name(PHASE_QUEUED));
			store_bind_text(q, 3, phase_state_name(PHASE_EXECUTING));
			store_bind_text(q, 4, now);
			store_bind_text(q, 5, usage_status_name(USAGE_LOST));
			store_bind_text(q, 6, usage_status_name(USAGE_SENT));
			store_bind_text(q, 7, outcome_name(OUTCOME_SUPERVISOR_LOST));
			store_bind_text(q, 8, reason_name(REASON_SUPERVISOR_LOST));
		}
		rc = store_step_done(d->st->db, q, rc, err,
		    "%s: closing the attempts of lost"
		    " supervisors",
		    d->st->url);
		if (rc == 0 && i == ARRAY_SIZE(sql) - 1)
			*closed = (int)db_changes(d->st->db);
	}
	if (rc == 0 && *closed > 0)
		rc = store_exec(d->st->db, "NOTIFY " FLEET_CHANNEL_QUEUE, d->st->url, err);
	if (rc == 0)
		rc = store_drain_commit(d, err);
	if (rc != 0) {
		store_drain_rollback(d);
		store_rows_free(r.v, r.n, r.size, r.item_free);
		return rc;
	}
	*lost = r.v;
	*nlost = r.n;
	return 0;
}

/* Count the open attempts of the others, and of those the orphaned ones. */
int store_fleet_open_elsewhere(
    struct store_drain *d, int64_t *open, int64_t *orphaned, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db,
	    "SELECT count(*), count(*) FILTER (WHERE s.state IS NULL OR s.state <> 'live')"
	    " FROM attempts a LEFT JOIN supervisors s ON s.supervisor_id = a.supervisor_id"
	    " WHERE a.ended_at IS NULL AND a.supervisor_id IS DISTINCT FROM ?1",
	    &q);

	*open = *orphaned = 0;
	if (rc == DB_OK) {
		db_bind_int64(q, 1, d->supervisor_id);
		if ((rc = db_step(q)) == DB_ROW) {
			*open = db_column_int64(q, 0);
			*orphaned = db_column_int64(q, 1);
		}
	}
	db_finalize(q);
	return rc == DB_ROW ? 0 : fleet_fail(d->st, err, "counting open attempts");
}

/* The transaction of the last heartbeat's group. */
struct fleet_txn store_fleet_txn(const struct store_drain *d)
{
	return (struct fleet_txn){ .xid = d->heartbeat_xid, .pid = d->heartbeat_pid };
}

/* Ask the server process `pid` to end its session, if it still holds transaction `xid`
 * (its id has no epoch in pg_stat_activity); *asked says whether it still did. 0 whether
 * or not, STORE_EIO when refused (err: no privilege to end that session). */
static int fleet_txn_end(
    struct store_drain *d, const struct fleet_txn *t, bool *asked, struct store_err *err)
{
	struct db_stmt *q = NULL;
	char xid[24];
	int rc = db_prepare(d->st->db,
	    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	    " WHERE pid = CAST(?1 AS INTEGER) AND backend_xid = CAST(?2 AS xid)",
	    &q);

	*asked = false;
	snprintf(xid, sizeof xid, "%llu", (unsigned long long)((uint64_t)t->xid & 0xffffffffu));
	if (rc == DB_OK) {
		db_bind_int64(q, 1, t->pid);
		store_bind_text(q, 2, xid);
		while ((rc = db_step(q)) == DB_ROW)
			*asked = true;
	}
	db_finalize(q);
	if (rc == DB_DONE)
		return 0;
	return store_fail(err, STORE_EIO,
	    "%s: the group's transaction %lld is still in progress in server process %d, which"
	    " could not be ended (%s); it ends when the server ends that idle session"
	    " (idle_in_transaction_session_timeout: half the lease)",
	    d->st->url, (long long)t->xid, t->pid, db_errmsg(d->st->db));
}

/* Learn what became of the transaction whose COMMIT went unanswered: the lock of this
 * supervisor's row (its heartbeat's), then the transaction that wrote the row's version. A
 * row lock that cannot be had at once fails with lock_not_available (NOWAIT): that is
 * never waited for, the loop goes on. */
int store_fleet_txn_settle(struct store_drain *d, const struct fleet_txn *t,
    enum fleet_txn_state *state, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int64_t xmin = -1;
	bool asked;
	int rc = db_prepare(d->st->db,
	    "SELECT CAST(CAST(xmin AS TEXT) AS BIGINT) FROM supervisors"
	    " WHERE supervisor_id = ?1 FOR SHARE NOWAIT",
	    &q);

	assert(!db_in_transaction(d->st->db) && t->xid > 0);
	*state = FLEET_TXN_RUNNING;
	if (rc == DB_OK) {
		db_bind_int64(q, 1, d->supervisor_id);
		if ((rc = db_step(q)) == DB_ROW)
			xmin = db_column_int64(q, 0);
	}
	db_finalize(q);
	if (rc != DB_ROW && rc != DB_DONE && db_fault(d->st->db) == DB_FAULT_BUSY) {
		/* Still held: by the transaction's session, which lives on and a COMMIT may
		 * still reach, or by another supervisor's transaction for a moment. */
		if (fleet_txn_end(d, t, &asked, err) != 0)
			return 0;
		if (asked)
			store_fail(err, STORE_EBUSY,
			    "%s: the group's transaction %lld is still in progress in server process "
			    "%d, which was asked to end",
			    d->st->url, (long long)t->xid, t->pid);
		else
			store_fail(err, STORE_EBUSY,
			    "%s: this supervisor's row is locked by another transaction, not the "
			    "group's (transaction %lld no longer runs in server process %d): another "
			    "supervisor declaring silent ones lost or rescuing their attempts holds "
			    "such a lock for a moment; whether the group committed is read once it "
			    "is released",
			    d->st->url, (long long)t->xid, t->pid);
		return 0;
	}
	if (rc != DB_ROW)
		return fleet_fail(d->st, err, "reading whether the group committed");
	/* xmin is the transaction id without its epoch. */
	*state = (uint64_t)xmin == ((uint64_t)t->xid & 0xffffffffu) ? FLEET_TXN_COMMITTED :
	                                                              FLEET_TXN_ABORTED;
	return 0;
}

/* Leave the fleet; *lost (when not NULL) says whether the row was found neither live nor
 * stopped. The state is read as it was when the statement began, beside the update. */
int store_fleet_leave(struct store_drain *d, bool *lost, struct store_err *err)
{
	static const char sql[] =
	    "WITH u AS (UPDATE supervisors SET state = 'stopped', ended_at = " PG_NOW
	    " WHERE supervisor_id = ?1 AND state = 'live' RETURNING 1)"
	    " SELECT (SELECT count(*) FROM u), (SELECT state FROM supervisors"
	    " WHERE supervisor_id = ?1)";
	struct db_stmt *q = NULL;
	bool left = false, stopped = false;
	int rc = db_prepare(d->st->db, sql, &q);

	if (rc == DB_OK) {
		db_bind_int64(q, 1, d->supervisor_id);
		if ((rc = db_step(q)) == DB_ROW) {
			const char *state = db_column_text(q, 1);

			left = db_column_int64(q, 0) > 0;
			stopped = state != NULL && strcmp(state, "stopped") == 0;
			rc = db_step(q);
		}
	}
	rc = store_step_done(d->st->db, q, rc, err, "%s: leaving the fleet", d->st->url);
	if (lost != NULL)
		*lost = rc == 0 && !left && !stopped;
	return rc;
}

/* Leave the fleet on a connection of its own (db_pg_side_exec), the store's being busy,
 * and end the session with it when no other supervisor is live in it. The statement
 * reads the rows as they were when it began beside the updates: a row not updated was not
 * live, or is gone, or (still 'live' as read) was changed by another transaction the
 * update waited for. */
int store_fleet_leave_aside(struct store_drain *d, const char *session_id, const char *stop_reason,
    enum fleet_aside *how, enum fleet_aside_session *session, int64_t *others, char *found,
    size_t n, struct store_err *err)
{
	char id[24], why[512];
	const char *params[5] = { id, session_id, stop_reason, d->st->uuid, d->st->server_id };
	bool unanswered;
	PGresult *r;

	snprintf(id, sizeof id, "%lld", (long long)d->supervisor_id);
	found[0] = '\0';
	*session = FLEET_SESSION_OPEN;
	*others = 0;
	r = db_pg_side_exec(db_pg_conn(d->st->db), db_pg_path(d->st->db), FLEET_APP " leave",
	    "WITH g AS MATERIALIZED (SELECT 1 WHERE (SELECT db_uuid FROM meta WHERE id = 1) = $4"
	    " AND (SELECT CAST(system_identifier AS TEXT) FROM pg_control_system()) || '/'"
	    " || current_database() = $5),"
	    " u AS (UPDATE supervisors SET state = 'stopped', ended_at = " PG_NOW
	    " WHERE supervisor_id = CAST($1 AS BIGINT) AND state = 'live'"
	    " AND EXISTS (SELECT 1 FROM g) RETURNING 1),"
	    " o AS (SELECT count(*) AS n FROM supervisors WHERE state = 'live'"
	    " AND supervisor_id <> CAST($1 AS BIGINT) AND session_id = $2),"
	    " e AS (UPDATE drain_sessions SET completed_at = " PG_NOW ", stop_reason = $3"
	    " WHERE session_id = $2 AND completed_at IS NULL AND EXISTS (SELECT 1 FROM u)"
	    " AND (SELECT n FROM o) = 0 RETURNING 1)"
	    " SELECT (SELECT count(*) FROM u), (SELECT state FROM supervisors"
	    " WHERE supervisor_id = CAST($1 AS BIGINT)), (SELECT count(*) FROM e),"
	    " (SELECT count(*) FROM drain_sessions WHERE session_id = $2), (SELECT n FROM o),"
	    " (SELECT count(*) FROM g), (SELECT db_uuid FROM meta WHERE id = 1),"
	    " (SELECT CAST(system_identifier AS TEXT) FROM pg_control_system()) || '/'"
	    " || current_database()",
	    params, 5, &unanswered, why, sizeof why);
	if (r == NULL) {
		*how = unanswered ? FLEET_ASIDE_UNANSWERED : FLEET_ASIDE_FAILED;
		return store_fail(err, STORE_EIO,
		    "%s: leaving the fleet on a connection of its own: %s", d->st->url, why);
	}
	/* The connection of its own is made anew from the URL: it may reach another
	 * database under the name (dropped and made again) or another server at the address.
	 * Nothing is written there. */
	if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 5), "0") == 0) {
		*how = FLEET_ASIDE_FAILED;
		store_fail(err, STORE_EIO,
		    "%s: the connection of its own reaches another database (uuid %s, server/database"
		    " %s; opened as uuid %s, %s): nothing was written there",
		    d->st->url, PQgetvalue(r, 0, 6), PQgetvalue(r, 0, 7), d->st->uuid,
		    d->st->server_id);
		PQclear(r);
		return STORE_EIO;
	}
	if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "0") != 0)
		*how = FLEET_ASIDE_LEFT;
	else if (PQntuples(r) == 1 && PQgetisnull(r, 0, 1))
		*how = FLEET_ASIDE_GONE;
	else {
		*how = FLEET_ASIDE_NOT_LIVE;
		if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 1), "live") != 0)
			snprintf(found, n, "%s", PQgetvalue(r, 0, 1));
	}
	if (*how == FLEET_ASIDE_LEFT && session_id != NULL) {
		*others = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
		*session = strcmp(PQgetvalue(r, 0, 2), "0") != 0 ? FLEET_SESSION_ENDED :
		    strcmp(PQgetvalue(r, 0, 3), "0") == 0        ? FLEET_SESSION_UNRECORDED :
		    *others > 0                                  ? FLEET_SESSION_GOES_ON :
		                                                   FLEET_SESSION_WAS_ENDED;
	}
	PQclear(r);
	return 0;
}

/* Record the refused late writes on this supervisor's row. */
int store_fleet_count_rejected(struct store_drain *d, int64_t n, struct store_err *err)
{
	char buf[24];

	snprintf(buf, sizeof buf, "%lld", (long long)n);
	return fleet_run_self(d,
	    "UPDATE supervisors SET rejected = CAST(?2 AS BIGINT) WHERE supervisor_id = ?1", buf,
	    NULL, err);
}

/* LISTEN on both channels; the connection's socket goes to *fd. */
int store_fleet_listen(struct store_drain *d, int *fd, struct store_err *err)
{
	int rc = store_exec(d->st->db,
	    "LISTEN " FLEET_CHANNEL_CONTROL "; LISTEN " FLEET_CHANNEL_QUEUE, d->st->url, err);

	*fd = rc == 0 ? PQsocket(db_pg_conn(d->st->db)) : -1;
	return rc;
}

/* Consume what arrived and say which channels another connection notified. */
int store_fleet_notified(struct store_drain *d, bool *control, bool *queue)
{
	PGconn *c = db_pg_conn(d->st->db);
	PGnotify *n;

	*control = *queue = false;
	/* A connection being made is not read: its start-up is libpq's. */
	if (PQstatus(c) != CONNECTION_OK || PQconsumeInput(c) == 0)
		return STORE_EIO;
	while ((n = PQnotifies(c)) != NULL) {
		if (n->be_pid != PQbackendPID(c)) {
			if (strcmp(n->relname, FLEET_CHANNEL_CONTROL) == 0)
				*control = true;
			else if (strcmp(n->relname, FLEET_CHANNEL_QUEUE) == 0)
				*queue = true;
		}
		PQfreemem(n);
	}
	return 0;
}

/* Read one command (a store_rows fill). */
static void fleet_command_fill(struct db_stmt *q, void *item)
{
	struct fleet_command *c = item;

	c->id = db_column_int64(q, 0);
	c->command = store_col_text(q, 1, "");
	c->args = store_col_text(q, 2, "{}");
	c->answered = db_column_int64(q, 3) != 0;
	c->settled = db_column_int64(q, 4) != 0;
}

/* Free a command's strings (a store_rows release). */
static void fleet_command_item_free(void *item)
{
	struct fleet_command *c = item;

	free(c->command);
	free(c->args);
}

/* Free commands. */
void store_fleet_commands_free(struct fleet_command *v, size_t n)
{
	store_rows_free(v, n, sizeof *v, fleet_command_item_free);
}

/* The commands due to this supervisor after `after_id`, whether it answered each, and
 * whether each is settled. */
int store_fleet_commands_due(struct store_drain *d, int64_t after_id, struct fleet_command **out,
    size_t *n, struct store_err *err)
{
	struct store_rows r = { .size = sizeof **out,
		.fill = fleet_command_fill,
		.item_free = fleet_command_item_free };
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db,
	    "SELECT c.command_id, c.command, c.args,"
	    " (SELECT count(*) FROM supervisor_command_results r"
	    "   WHERE r.command_id = c.command_id AND r.supervisor_id = ?1),"
	    " CAST(c.created_at <= " PG_NOW " - ?3 * interval '1 second' AS INTEGER)"
	    " FROM supervisor_commands c, supervisors s"
	    " WHERE s.supervisor_id = ?1 AND c.command_id > ?2 AND c.created_at >= s.started_at"
	    " AND (c.supervisor_id IS NULL OR c.supervisor_id = ?1) ORDER BY c.command_id",
	    &q);

	if (rc == DB_OK) {
		db_bind_int64(q, 1, d->supervisor_id);
		db_bind_int64(q, 2, after_id);
		db_bind_int64(q, 3, FLEET_COMMAND_SETTLE_S);
	}
	rc = store_rows_read(d->st->db, q, rc, &r, err, "%s: reading commands", d->st->url);
	*out = r.v;
	*n = r.n;
	return rc;
}

/* Record this supervisor's answer to a command. */
int store_fleet_command_done(
    struct store_drain *d, int64_t id, bool ok, const char *result, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db,
	    "INSERT INTO supervisor_command_results (command_id, supervisor_id, done_at, ok, result)"
	    " VALUES (?1, ?2, " PG_NOW ", ?3, ?4) ON CONFLICT DO NOTHING",
	    &q);

	if (rc == DB_OK) {
		db_bind_int64(q, 1, id);
		db_bind_int64(q, 2, d->supervisor_id);
		db_bind_int64(q, 3, ok);
		store_bind_text(q, 4, result);
	}
	return store_step_done(
	    d->st->db, q, rc, err, "%s: answering command %lld", d->st->url, (long long)id);
}

/* Read one supervisor's row (a store_rows fill). */
static void fleet_member_fill(struct db_stmt *q, void *item)
{
	struct fleet_member *m = item;

	m->id = db_column_int64(q, 0);
	m->host = store_col_text(q, 1, "");
	m->pid = db_column_int64(q, 2);
	m->started_at = store_col_text(q, 3, "");
	m->heartbeat_at = store_col_text(q, 4, "");
	m->heartbeat_age_s = db_column_double(q, 5);
	m->lease_timeout_ms = db_column_int64(q, 6);
	m->state = store_col_text(q, 7, "");
	m->session_id = store_col_text(q, 8, NULL);
	m->control_socket = store_col_text(q, 9, NULL);
	m->status_json = store_col_text(q, 10, "{}");
	m->lost_by = db_column_int64(q, 11);
	m->rejected = db_column_int64(q, 12);
}

/* Free a member's strings (a store_rows release). */
static void fleet_member_item_free(void *item)
{
	struct fleet_member *m = item;

	free(m->host);
	free(m->started_at);
	free(m->heartbeat_at);
	free(m->state);
	free(m->session_id);
	free(m->control_socket);
	free(m->status_json);
}

/* Free members. */
void store_fleet_members_free(struct fleet_member *v, size_t n)
{
	store_rows_free(v, n, sizeof *v, fleet_member_item_free);
}

/* The live supervisors and those that ended recently. */
int store_fleet_members(
    struct store *st, double recent_s, struct fleet_member **out, size_t *n, struct store_err *err)
{
	struct store_rows r = {
		.size = sizeof **out, .fill = fleet_member_fill, .item_free = fleet_member_item_free
	};
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db,
	    "SELECT supervisor_id, host, pid, started_at, heartbeat_at,"
	    " EXTRACT(EPOCH FROM " PG_NOW " - heartbeat_at), lease_timeout_ms, state, session_id,"
	    " control_socket, status_json, COALESCE(lost_by, 0), rejected FROM supervisors"
	    " WHERE state = 'live' OR ended_at > " PG_NOW " - ?1 * interval '1 second'"
	    " ORDER BY supervisor_id",
	    &q);

	if (rc == DB_OK)
		db_bind_double(q, 1, recent_s);
	rc = store_rows_read(st->db, q, rc, &r, err, "%s: reading the supervisors", st->url);
	*out = r.v;
	*n = r.n;
	return rc;
}

/* Send a command and wake the supervisors. */
int store_fleet_command_send(struct store *st, int64_t target, const char *command,
    const char *args, const char *by, int64_t *id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db,
	    "INSERT INTO supervisor_commands (supervisor_id, command, args, created_at, created_by)"
	    " VALUES (?1, ?2, ?3, " PG_NOW ", ?4) RETURNING command_id",
	    &q);

	if (rc == DB_OK) {
		if (target > 0)
			db_bind_int64(q, 1, target);
		store_bind_text(q, 2, command);
		store_bind_text(q, 3, args != NULL ? args : "[]");
		store_bind_text(q, 4, by);
	}
	rc = store_step_id(st->db, q, rc, id, err, "%s: sending %s", st->url, command);
	if (rc == 0)
		rc = store_exec(st->db, "NOTIFY " FLEET_CHANNEL_CONTROL, st->url, err);
	return rc;
}

/* Read one answer (a store_rows fill). */
static void fleet_result_fill(struct db_stmt *q, void *item)
{
	struct fleet_result *r = item;

	r->supervisor_id = db_column_int64(q, 0);
	r->ok = db_column_int64(q, 1) != 0;
	r->result = store_col_text(q, 2, "");
}

/* Free an answer's string (a store_rows release). */
static void fleet_result_item_free(void *item)
{
	free(((struct fleet_result *)item)->result);
}

/* Free answers. */
void store_fleet_results_free(struct fleet_result *v, size_t n)
{
	store_rows_free(v, n, sizeof *v, fleet_result_item_free);
}

/* The answers to a command so far. */
int store_fleet_command_results(
    struct store *st, int64_t id, struct fleet_result **out, size_t *n, struct store_err *err)
{
	struct store_rows r = {
		.size = sizeof **out, .fill = fleet_result_fill, .item_free = fleet_result_item_free
	};
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db,
	    "SELECT supervisor_id, ok, result FROM supervisor_command_results"
	    " WHERE command_id = ?1 ORDER BY supervisor_id",
	    &q);

	if (rc == DB_OK)
		db_bind_int64(q, 1, id);
	rc = store_rows_read(st->db, q, rc, &r, err, "%s: reading the answers", st->url);
	*out = r.v;
	*n = r.n;
	return rc;
}

/* Read a session's saved policy state, locking its row for the transaction when `lock`:
 * FOR NO KEY UPDATE, which the key share lock of every attempt inserted in the session
 * (its foreign key) does not block, so two supervisors that each opened attempts and then
 * save their policy state wait for one another instead of deadlocking. */
int store_fleet_session_state(struct store_drain *d, const char *session_id, bool lock,
    char **state_json, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(d->st->db,
	    lock ? "SELECT state_json FROM drain_sessions WHERE session_id = ?1 FOR NO KEY UPDATE" :
	           "SELECT state_json FROM drain_sessions WHERE session_id = ?1",
	    &q);

	*state_json = NULL;
	if (rc == DB_OK) {
		store_bind_text(q, 1, session_id);
		rc = db_step(q);
		if (rc == DB_ROW)
			*state_json = store_col_text(q, 0, "{}");
	}
	db_finalize(q);
	if (rc != DB_ROW && rc != DB_DONE)
		return fleet_fail(d->st, err, "reading the session's policy state");
	if (*state_json == NULL)
		*state_json = xstrdup("{}");
	return 0;
}

/* Wake every supervisor to read the queues again. */
int store_fleet_wake(struct store *st, struct store_err *err)
{
	return store_exec(st->db, "NOTIFY " FLEET_CHANNEL_QUEUE, st->url, err);
}

/* The supervisor whose attempt of a phase is open, or 0. */
int store_fleet_phase_holder(struct store *st, const char *run_id, const char *phase_id,
    int64_t *supervisor_id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db,
	    "SELECT COALESCE(supervisor_id, 0) FROM attempts"
	    " WHERE run_id = ?1 AND phase_id = ?2 AND ended_at IS NULL",
	    &q);

	*supervisor_id = 0;
	if (rc == DB_OK) {
		store_bind_text(q, 1, run_id);
		store_bind_text(q, 2, phase_id);
		if ((rc = db_step(q)) == DB_ROW)
			*supervisor_id = db_column_int64(q, 0);
	}
	db_finalize(q);
	if (rc != DB_ROW && rc != DB_DONE)
		return fleet_fail(st, err, "finding the attempt's supervisor");
	return 0;
}

/* Remove a command and its answers (one whose answer was only read, not kept). */
int store_fleet_command_forget(struct store *st, int64_t id, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(st->db, "DELETE FROM supervisor_commands WHERE command_id = ?1", &q);

	if (rc == DB_OK)
		db_bind_int64(q, 1, id);
	return store_step_done(
	    st->db, q, rc, err, "%s: removing command %lld", st->url, (long long)id);
}
