/* What the fleet's claim (store_fleet.c) shares with a session's budgets
 * (store_fleet_budget.c). Nothing outside common/store/pg includes it. */
#ifndef AUTOPACK_STORE_FLEET_BUDGET_H
#define AUTOPACK_STORE_FLEET_BUDGET_H

#include "common/store/store_drain_internal.h"

/* The attempts a session started, as --batch-size counts them:
 * FLEET_STARTED_OF <the session, an SQL expression> FLEET_STARTED_WHERE. All of its
 * attempts but those ended without a worker ever having them (opened ahead of one and
 * ended unstarted); an attempt of a lost supervisor counts, as its worker may have run
 * it. Found through ix_attempts_session. */
#define FLEET_STARTED_OF "(SELECT count(*) FROM attempts a WHERE a.session_id = "
#define FLEET_STARTED_WHERE                                                                        \
	"  AND (a.ended_at IS NULL OR a.worker_pid IS NOT NULL"                                    \
	"  OR a.outcome = 'supervisor_lost'))"

/* In the group, before a claim within the session's --batch-size: lock the session's row
 * (FOR NO KEY UPDATE, as the policy's save does) until the transaction ends, so that the
 * claims of the session's supervisors follow one another and each counts what the ones
 * before it committed. STORE_EIO on failure. */
int fleet_budget_lock(struct store_drain *d, const char *session_id, struct store_err *err);

#endif
