/* Tier states that follow their phases, as the original's progress view reads them
 * (docs/data-model.md, "Work"). */
#include "common/store/store_internal.h"

#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The classes of phase state a tier's state is decided by. Written without IN lists:
 * SQLite builds a temporary table for an IN list in an expression at every run of the
 * statement, which costs several times the rest of the query. */
#define TIER_IS_SKIPPED "p.state = 'SKIPPED'"
#define TIER_IS_DONE "(p.state = 'COMPLETE' OR p.state = 'SKIPPED')"
#define TIER_IS_RUNNING "(p.state = 'EXECUTING' OR p.state = 'GATE' OR p.state = 'CI_RUNNING')"
#define TIER_IS_QUEUED "p.state = 'QUEUED'"
#define TIER_N_SKIPPED SQL_SUM_IF(TIER_IS_SKIPPED)
#define TIER_N_DONE SQL_SUM_IF(TIER_IS_DONE)
#define TIER_N_RUNNING SQL_SUM_IF(TIER_IS_RUNNING)
#define TIER_N_QUEUED SQL_SUM_IF(TIER_IS_QUEUED)
#define TIER_JOIN " FROM tiers t LEFT JOIN phases p ON p.run_id = t.run_id AND p.tier_id = t.id"

/* The state a tier's phases put it in (NULL leaves it), as the third column after the
 * tier's row id and state. All QUEUED leaves a tier that has not ended as it is (PENDING,
 * or IN_PROGRESS after a requeue) and puts an ended one back to PENDING. The phases are
 * found through their run (the index on phases(run_id, state)): the cost is the run's
 * size, not the table's. */
#define TIER_STATE_SELECT                                                                          \
	"SELECT t.id, t.state, CASE"                                                               \
	"   WHEN count(*) = 0 THEN NULL"                                                           \
	"   WHEN " TIER_N_SKIPPED " = count(*) THEN 'SKIPPED'"                                     \
	"   WHEN " TIER_N_DONE " = count(*) THEN 'COMPLETE'"                                       \
	"   WHEN " TIER_N_RUNNING " > 0 THEN 'IN_PROGRESS'"                                        \
	"   WHEN " TIER_N_QUEUED " = count(*) THEN"                                                \
	"     CASE WHEN t.state = 'COMPLETE' OR t.state = 'FAILED' OR t.state = 'SKIPPED'"         \
	"     THEN 'PENDING' END"                                                                  \
	"   WHEN " TIER_N_QUEUED " = 0 THEN 'FAILED'"                                              \
	"   ELSE 'IN_PROGRESS' END" TIER_JOIN

const char store_tier_state_sql[] = TIER_STATE_SELECT " WHERE t.id = ?1 GROUP BY t.id, t.state";
const char store_tier_state_of_phase_sql[] = TIER_STATE_SELECT
    " WHERE t.id = (SELECT tier_id FROM phases WHERE run_id = ?1 AND phase_id = ?2)"
    " GROUP BY t.id, t.state";
/* updated_at, started_at (?4: the state has started) and completed_at (?5: the state has
 * ended) move with the state. */
const char store_tier_set_sql[] = "UPDATE tiers SET state = ?2, updated_at = ?3,"
                                  " started_at = CASE WHEN ?4 = 1"
                                  "   THEN COALESCE(started_at, ?3) ELSE started_at END,"
                                  " completed_at = CASE WHEN ?5 = 1 THEN ?3 END"
                                  " WHERE id = ?1";

/* A tier's phases counted by the classes TIER_STATE_SELECT decides by, and its state. */
const char store_tier_count_sql[] = "SELECT t.state, count(p.state), " TIER_N_SKIPPED
                                    ", " TIER_N_DONE ", " TIER_N_RUNNING
                                    ", " TIER_N_QUEUED TIER_JOIN
                                    " WHERE t.id = ?1 GROUP BY t.id, t.state";

/* Whether `state` is one of the NULL-ended list of names. */
static bool tier_state_in(const char *state, const char *const *names)
{
	for (; *names != NULL; names++)
		if (strcmp(state, *names) == 0)
			return true;
	return false;
}

/* Set tier `tier_row`'s state to `new`, with its timestamps; STORE_EIO on failure. */
static int tier_set(struct db *db, struct db_stmt *set, int64_t tier_row, const char *new,
    const char *now, struct store_err *err)
{
	int rc;

	db_bind_int64(set, 1, tier_row);
	store_bind_text(set, 2, new);
	store_bind_text(set, 3, now);
	db_bind_int64(set, 4,
	    tier_state_in(new, (const char *const[]){ "IN_PROGRESS", "COMPLETE", "FAILED", NULL }));
	db_bind_int64(set, 5,
	    tier_state_in(new, (const char *const[]){ "COMPLETE", "FAILED", "SKIPPED", NULL }));
	rc = db_step(set);
	db_reset(set);
	if (rc != DB_DONE)
		return store_fail(err, STORE_EIO, "setting the state of tier %lld: %s",
		    (long long)tier_row, db_errmsg(db));
	return 0;
}

/* Write the state `state` computed for its tier when the tier does not follow it yet. */
int store_tier_apply(struct db *db, struct db_stmt *state, struct db_stmt *set, const char *now,
    struct store_err *err)
{
	int rc = db_step(state);
	const char *old, *new;

	if (rc == DB_DONE)
		return 0;
	if (rc != DB_ROW)
		return store_fail(err, STORE_EIO, "reading a tier's phases: %s", db_errmsg(db));
	old = db_column_text(state, 1);
	new = db_column_text(state, 2);
	if (new == NULL || (old != NULL && strcmp(old, new) == 0))
		return 0;
	return tier_set(db, set, db_column_int64(state, 0), new, now, err);
}

/* The bit of each class of phase state a tier's state is decided by. */
enum {
	TIER_SKIPPED = 1,
	TIER_DONE = 2,
	TIER_RUNNING = 4,
	TIER_QUEUED = 8
};

/* The classes of phase state `state` (as stored) belongs to, as TIER_STATE_SELECT
 * compares them. */
static unsigned tier_class(const char *state)
{
	if (state == NULL)
		return 0;
	if (strcmp(state, "SKIPPED") == 0)
		return TIER_SKIPPED | TIER_DONE;
	if (strcmp(state, "COMPLETE") == 0)
		return TIER_DONE;
	if (tier_state_in(state, (const char *const[]){ "EXECUTING", "GATE", "CI_RUNNING", NULL }))
		return TIER_RUNNING;
	return strcmp(state, "QUEUED") == 0 ? TIER_QUEUED : 0;
}

/* Add `by` (1 or -1) phases of stored state `state` to a tier's counts. */
static void tier_count_add(struct tier_count *t, const char *state, int64_t by)
{
	unsigned c = tier_class(state);

	t->n += by;
	t->skipped += c & TIER_SKIPPED ? by : 0;
	t->done += c & TIER_DONE ? by : 0;
	t->running += c & TIER_RUNNING ? by : 0;
	t->queued += c & TIER_QUEUED ? by : 0;
}

/* A phase of the tier moved from stored state `from` to `to`. */
void store_tier_moved(struct tier_count *t, const char *from, const char *to)
{
	tier_count_add(t, from, -1);
	tier_count_add(t, to, 1);
}

/* The state a tier's phases put it in, as TIER_STATE_SELECT decides it for a tier with
 * phases; NULL leaves it. */
const char *store_tier_due(const struct tier_count *t)
{
	if (t->n == 0)
		return NULL;
	if (t->skipped == t->n)
		return "SKIPPED";
	if (t->done == t->n)
		return "COMPLETE";
	if (t->running > 0)
		return "IN_PROGRESS";
	if (t->queued == t->n)
		return t->state_null ||
		        !tier_state_in(t->state,
		            (const char *const[]){ "COMPLETE", "FAILED", "SKIPPED", NULL }) ?
		    NULL :
		    "PENDING";
	return t->queued == 0 ? "FAILED" : "IN_PROGRESS";
}

/* Record `state` (NULL: SQL NULL) as the tier's stored state. */
void store_tier_stored(struct tier_count *t, const char *state)
{
	t->state_null = state == NULL;
	snprintf(t->state, sizeof t->state, "%s", state != NULL ? state : "");
}

/* Write the state the tier's phases put it in when it does not follow them yet. */
int store_tier_settle(struct db *db, struct db_stmt *set, struct tier_count *t, const char *now,
    struct store_err *err)
{
	const char *new = store_tier_due(t);
	int rc;

	if (new == NULL || (!t->state_null && strcmp(t->state, new) == 0))
		return 0;
	if ((rc = tier_set(db, set, t->id, new, now, err)) == 0)
		store_tier_stored(t, new);
	return rc;
}

/* The slot of tier `id` in the table (free when it is not there). */
static struct tier_count *tier_slot(struct tier_cache *c, int64_t id)
{
	size_t i = (size_t)((uint64_t)id * 0x9E3779B97F4A7C15u >> 32) & (c->cap - 1);

	while (c->v[i].id != 0 && c->v[i].id != id)
		i = (i + 1) & (c->cap - 1);
	return &c->v[i];
}

/* The counts of tier `id`, or NULL when they are not kept. */
struct tier_count *store_tier_cached(struct tier_cache *c, int64_t id)
{
	struct tier_count *t;

	if (c->n == 0 || id == 0)
		return NULL;
	t = tier_slot(c, id);
	return t->id == id ? t : NULL;
}

/* Make room for one more tier: the table at most half full. */
static void tier_cache_grow(struct tier_cache *c)
{
	struct tier_cache old = *c;

	if (2 * (c->n + 1) <= c->cap)
		return;
	c->cap = c->cap != 0 ? 2 * c->cap : 64;
	c->v = xcalloc(c->cap, sizeof *c->v);
	for (size_t i = 0; i < old.cap; i++)
		if (old.v[i].id != 0)
			*tier_slot(c, old.v[i].id) = old.v[i];
	free(old.v);
}

/* Count tier `id`'s phases with `count` (store_tier_count_sql) and keep the counts; *out
 * is NULL when the tier is not found or its state is too long to keep. STORE_EIO on
 * failure. */
int store_tier_load(struct db *db, struct db_stmt *count, struct tier_cache *c, int64_t id,
    struct tier_count **out, struct store_err *err)
{
	struct tier_count t = { .id = id };
	const char *state;
	int rc;

	*out = NULL;
	db_reset(count);
	db_bind_int64(count, 1, id);
	rc = db_step(count);
	if (rc != DB_ROW) {
		db_reset(count);
		return rc == DB_DONE ?
		    0 :
		    store_fail(err, STORE_EIO, "counting the phases of tier %lld: %s",
		        (long long)id, db_errmsg(db));
	}
	state = db_column_text(count, 0);
	t.n = db_column_int64(count, 1);
	t.skipped = db_column_int64(count, 2);
	t.done = db_column_int64(count, 3);
	t.running = db_column_int64(count, 4);
	t.queued = db_column_int64(count, 5);
	if (state == NULL || strlen(state) < sizeof t.state) {
		store_tier_stored(&t, state);
		tier_cache_grow(c);
		*out = tier_slot(c, id);
		**out = t;
		c->n++;
	}
	db_reset(count);
	return 0;
}

/* Forget every count (they may no longer be the database's). */
void store_tier_forget(struct tier_cache *c)
{
	if (c->n > 0)
		memset(c->v, 0, c->cap * sizeof *c->v);
	c->n = 0;
}

/* Release the table. */
void store_tier_cache_free(struct tier_cache *c)
{
	free(c->v);
	memset(c, 0, sizeof *c);
}

/* Prepare the two statements, bind the tier's key, apply and finalize. */
static int tier_follow(struct db *db, const char *sql, int64_t tier_row, const char *run_id,
    const char *phase_id, const char *now, struct store_err *err)
{
	struct db_stmt *q = NULL, *u = NULL;
	int rc;

	if (db_prepare(db, sql, &q) != DB_OK || db_prepare(db, store_tier_set_sql, &u) != DB_OK) {
		rc = store_fail(err, STORE_EIO, "reading a tier's phases: %s", db_errmsg(db));
		goto out;
	}
	if (run_id != NULL) {
		store_bind_text(q, 1, run_id);
		store_bind_text(q, 2, phase_id);
	} else {
		db_bind_int64(q, 1, tier_row);
	}
	rc = store_tier_apply(db, q, u, now, err);
out:
	db_finalize(q);
	db_finalize(u);
	return rc;
}

/* Set a tier's state from its phases; changes nothing when it already follows them. */
int store_tier_follow(struct db *db, int64_t tier_row, const char *now, struct store_err *err)
{
	return tier_follow(db, store_tier_state_sql, tier_row, NULL, NULL, now, err);
}

/* Set the state of the tier holding phase (run_id, phase_id) from its phases. */
int store_tier_follow_phase(
    struct db *db, const char *run_id, const char *phase_id, const char *now, struct store_err *err)
{
	return tier_follow(db, store_tier_state_of_phase_sql, 0, run_id, phase_id, now, err);
}
