/* A round's claims (store_drain_attempts_open): with several supervisors one batch of two
 * statements (common/store/pg/store_fleet.c), with one on SQLite their attempt rows in one
 * statement (store_drain_attempt.c), else each claim in turn; then,
 * unless a dry run, the reserved row of each opened attempt's first try
 * (store_drain_reserve_first_try). */
#include "common/store/store_drain.h"
#include "common/store/store_drain_internal.h"
#include "common/util.h"

#include <stdio.h>

/* Reserve the first try of each attempt the claims opened. A reservation refused for a
 * constraint ends reservations for the drain, and fails the round all the same (on
 * PostgreSQL its transaction is lost): the next one opens its attempts without. */
static int claims_reserve(
    struct store_drain *d, const struct drain_claim *c, size_t n, struct store_err *err)
{
	char now[32], why[200];
	int rc;

	db_now(d->st->db, now);
	for (size_t i = 0; i < n; i++) {
		if (c[i].rc != 0 ||
		    (rc = drain_attempt_reserve(
		         d, c[i].attempt_id, c[i].run_id, c[i].phase_id, now, err)) == 0)
			continue;
		if (store_drain_constraint_failed(d, why, sizeof why)) {
			d->reserve.provider = NULL;
			snprintf(err->text, sizeof err->text,
			    "the first LLM try of an attempt cannot be on record with its lease (%s):"
			    " each try is announced by its worker from now on",
			    why);
		}
		return rc;
	}
	return 0;
}

/* Open the attempts of a round's claims; a claim refused (no longer eligible, or held
 * elsewhere) is noted in it, any other failure returned. */
int store_drain_attempts_open(struct store_drain *d, struct drain_claim *c, size_t n,
    const char *session_id, bool dry_run, struct store_err *err)
{
	int rc = 0;

	if (d->supervisor_id > 0)
		rc = store_fleet_attempts_open(d, c, n, session_id, dry_run, err);
	else if (d->st->backend == DB_SQLITE && n > 1)
		rc = drain_attempts_open_rows(d, c, n, session_id, dry_run, err);
	else
		for (size_t i = 0; i < n; i++) {
			c[i].rc = drain_attempt_open(d, c[i].run_id, c[i].phase_id, c[i].phase_row,
			    c[i].worker_pid, session_id, dry_run, &c[i].attempt_id,
			    &c[i].attempt_number, &c[i].err);
			if (c[i].rc != 0 && c[i].rc != STORE_EINVAL && c[i].rc != STORE_EBUSY) {
				*err = c[i].err;
				return c[i].rc;
			}
		}
	if (rc != 0 || dry_run || d->reserve.provider == NULL)
		return rc;
	return claims_reserve(d, c, n, err);
}
