/* Tier states that follow their phases, as the original's progress view reads them
 * (docs/data-model.md, "Work"). */
#include "common/store/store_internal.h"

/* The state a tier's phases put it in; NULL leaves it. All QUEUED leaves a tier that has
 * not ended as it is (PENDING, or IN_PROGRESS after a requeue) and puts an ended one back
 * to PENDING. */
#define TIER_FOLLOW_SQL                                                                                                                                                                                                                                                          \
	"UPDATE tiers SET state = f.state, updated_at = ?2,"                                                                                                                                                                                                                     \
	" started_at = CASE WHEN f.state IN ('IN_PROGRESS', 'COMPLETE', 'FAILED')"                                                                                                                                                                                               \
	"   THEN COALESCE(started_at, ?2) ELSE started_at END,"                                                                                                                                                                                                                  \
	" completed_at = CASE WHEN f.state IN ('COMPLETE', 'FAILED', 'SKIPPED') THEN ?2 END"                                                                                                                                                                                     \
	" FROM (SELECT CASE"                                                                                                                                                                                                                                                     \
	"   WHEN count(*) = 0 THEN NULL"                                                                                                                                                                                                                                         \
	"   WHEN " SQL_SUM_IF(                                                                                                                                                                                                                                                   \
	    "p.state = 'SKIPPED'") " = count(*) THEN 'SKIPPED'"                                                                                                                                                                                                                  \
	                           "   WHEN " SQL_SUM_IF(                                                                                                                                                                                                                        \
	                               "p.state IN ('COMPLETE', 'SKIPPED')") " = count(*) THEN 'COMPLETE'"                                                                                                                                                                       \
	                                                                     "   WHEN " SQL_SUM_IF(                                                                                                                                                                              \
	                                                                         "p.state IN ('EXECUTING', 'GATE', 'CI_RUNNING')") " > 0"                                                                                                                                        \
	                                                                                                                           "     THEN 'IN_PROGRESS'"                                                                                                                     \
	                                                                                                                           "   WHEN " SQL_SUM_IF(                                                                                                                        \
	                                                                                                                               "p.state = 'QUEUED'") " = count(*) THEN"                                                                                                  \
	                                                                                                                                                     "     CASE WHEN t.state IN ('COMPLETE', 'FAILED', 'SKIPPED') THEN 'PENDING' END"                                    \
	                                                                                                                                                     "   WHEN " SQL_SUM_IF(                                                                                              \
	                                                                                                                                                         "p.state = 'QUEUED'") " = 0 THEN 'FAILED'"                                                                      \
	                                                                                                                                                                               "   ELSE 'IN_PROGRESS' END AS state"                                                      \
	                                                                                                                                                                               "   FROM tiers t LEFT JOIN phases p ON p.tier_id = t.id WHERE t.id = ?1 GROUP BY t.id) f" \
	                                                                                                                                                                               " WHERE tiers.id = ?1 AND f.state IS NOT NULL AND tiers.state IS DISTINCT FROM f.state"

/* Set a tier's state from its phases; changes nothing when it already follows them. */
int store_tier_follow(struct db *db, int64_t tier_row, const char *now, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int rc = db_prepare(db, TIER_FOLLOW_SQL, &q);

	if (rc == DB_OK) {
		db_bind_int64(q, 1, tier_row);
		store_bind_text(q, 2, now);
	}
	return store_step_done(
	    db, q, rc, err, "setting the state of tier %lld", (long long)tier_row);
}

/* Set the state of the tier holding phase (run_id, phase_id) from its phases. */
int store_tier_follow_phase(
    struct db *db, const char *run_id, const char *phase_id, const char *now, struct store_err *err)
{
	struct db_stmt *q = NULL;
	int64_t tier_row = -1;
	int rc = db_prepare(
	    db, "SELECT tier_id FROM phases WHERE run_id = ?1 AND phase_id = ?2", &q);

	if (rc == DB_OK) {
		store_bind_text(q, 1, run_id);
		store_bind_text(q, 2, phase_id);
		rc = db_step(q);
		if (rc == DB_ROW)
			tier_row = db_column_int64(q, 0);
	}
	db_finalize(q);
	if (rc != DB_ROW && rc != DB_DONE)
		return store_fail(err, STORE_EIO, "finding the tier of phase %s/%s: %s", run_id,
		    phase_id, db_errmsg(db));
	return tier_row < 0 ? 0 : store_tier_follow(db, tier_row, now, err);
}
