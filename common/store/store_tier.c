/* Tier states that follow their phases, as the original's progress view reads them
 * (docs/data-model.md, "Work"). */
#include "common/store/store_internal.h"

#include <string.h>

/* The state a tier's phases put it in (NULL leaves it), as the third column after the
 * tier's row id and state. All QUEUED leaves a tier that has not ended as it is (PENDING,
 * or IN_PROGRESS after a requeue) and puts an ended one back to PENDING. The phases are
 * found through their run (the index on phases(run_id, state)): the cost is the run's
 * size, not the table's. */
#define TIER_STATE_SELECT                                                                                                                                                                                                                     \
	"SELECT t.id, t.state, CASE"                                                                                                                                                                                                          \
	"   WHEN count(*) = 0 THEN NULL"                                                                                                                                                                                                      \
	"   WHEN " SQL_SUM_IF(                                                                                                                                                                                                                \
	    "p.state = 'SKIPPED'") " = count(*) THEN 'SKIPPED'"                                                                                                                                                                               \
	                           "   WHEN " SQL_SUM_IF(                                                                                                                                                                                     \
	                               "p.state IN ('COMPLETE', 'SKIPPED')") " = count(*) THEN 'COMPLETE'"                                                                                                                                    \
	                                                                     "   WHEN " SQL_SUM_IF(                                                                                                                                           \
	                                                                         "p.state IN ('EXECUTING', 'GATE', 'CI_RUNNING')") " > 0"                                                                                                     \
	                                                                                                                           "     THEN 'IN_PROGRESS'"                                                                                  \
	                                                                                                                           "   WHEN " SQL_SUM_IF(                                                                                     \
	                                                                                                                               "p.state = 'QUEUED'") " = count(*) THEN"                                                               \
	                                                                                                                                                     "     CASE WHEN t.state IN ('COMPLETE', 'FAILED', 'SKIPPED') THEN 'PENDING' END" \
	                                                                                                                                                     "   WHEN " SQL_SUM_IF(                                                           \
	                                                                                                                                                         "p.state = 'QUEUED'") " = 0 THEN 'FAILED'"                                   \
	                                                                                                                                                                               "   ELSE 'IN_PROGRESS' END"                            \
	                                                                                                                                                                               " FROM tiers t LEFT JOIN phases p ON p.run_id = t.run_id AND p.tier_id = t.id"

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

/* Whether `state` is one of the NULL-ended list of names. */
static bool tier_state_in(const char *state, const char *const *names)
{
	for (; *names != NULL; names++)
		if (strcmp(state, *names) == 0)
			return true;
	return false;
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
	db_bind_int64(set, 1, db_column_int64(state, 0));
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
		    (long long)db_column_int64(state, 0), db_errmsg(db));
	return 0;
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
