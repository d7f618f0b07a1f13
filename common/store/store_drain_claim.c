/* A round's claims (store_drain_attempts_open): with several supervisors one batch of two
 * statements (common/store/pg/store_fleet.c), with one (SQLite) each claim in turn. */
#include "common/store/store_drain.h"
#include "common/store/store_drain_internal.h"

/* Open the attempts of a round's claims; a claim refused (no longer eligible, or held
 * elsewhere) is noted in it, any other failure returned. */
int store_drain_attempts_open(struct store_drain *d, struct drain_claim *c, size_t n,
    const char *session_id, bool dry_run, struct store_err *err)
{
	if (d->supervisor_id > 0)
		return store_fleet_attempts_open(d, c, n, session_id, dry_run, err);
	for (size_t i = 0; i < n; i++) {
		c[i].rc = store_drain_attempt_open(d, c[i].run_id, c[i].phase_id, c[i].worker_pid,
		    session_id, dry_run, &c[i].attempt_id, &c[i].attempt_number, &c[i].err);
		if (c[i].rc != 0 && c[i].rc != STORE_EINVAL && c[i].rc != STORE_EBUSY) {
			*err = c[i].err;
			return c[i].rc;
		}
	}
	return 0;
}
