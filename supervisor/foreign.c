/* Phases another program queues in a SQLite database while this supervisor holds it (the
 * Python code, the sqlite3 command line, a script): once a second the lifecycle's timer
 * asks whether another connection committed (PRAGMA data_version moved); if so, the
 * phases QUEUED in the database that the queues do not hold are read, and their runs
 * loaded (sched_reload_run) and dispatched without a restart. PostgreSQL has its own way
 * (fleet.c rebuilds the queues each beat). */
#include "supervisor/sup.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* At least this long between two reads of the queue, and at most one part in
 * FOREIGN_SHARE of the loop's time spent reading it. */
#define FOREIGN_MIN_MS 1000
#define FOREIGN_SHARE 10

/* What one read found: the phase ids the queues and the leases hold, sorted, and the runs
 * with a phase QUEUED in the database that they do not hold. */
struct foreign_read {
	struct sup *s;
	const char **known;
	size_t nknown, capknown;
	char **runs;
	size_t nruns;
	int64_t phases;
};

static int foreign_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void foreign_known_add(struct foreign_read *f, const char *id)
{
	if (f->nknown == f->capknown) {
		f->capknown = f->capknown != 0 ? 2 * f->capknown : 256;
		f->known = xrealloc(f->known, f->capknown * sizeof *f->known);
	}
	f->known[f->nknown++] = id;
}

/* Note a QUEUED phase of the database (store callback) the queues do not hold and that
 * this supervisor would drain: its run is to be loaded. */
static int foreign_phase(void *arg, const struct drain_phase *p)
{
	struct foreign_read *f = arg;
	struct run_q *r;

	if (bsearch(&p->phase_id, f->known, f->nknown, sizeof *f->known, foreign_cmp) != NULL)
		return 0;
	if (sched_run_excluded(f->s, p->run_id) || policy_held_back_why(f->s, p->run_id) != NULL)
		return 0;
	if ((r = sched_run_find(f->s, p->run_id)) != NULL && r->skipped)
		return 0;
	f->phases++;
	/* The phases come ordered by run. */
	if (f->nruns == 0 || strcmp(f->runs[f->nruns - 1], p->run_id) != 0) {
		f->runs = xrealloc(f->runs, (f->nruns + 1) * sizeof *f->runs);
		f->runs[f->nruns++] = xstrdup(p->run_id);
	}
	return 0;
}

/* Read the phases QUEUED in the database that the queues and the leases do not hold, and
 * load their runs. Returns the runs loaded, or -1 when the phases could not be read
 * (logged, once until a read works again). */
static int foreign_load(struct sup *s)
{
	struct foreign_read f = { .s = s };
	struct store_err err;
	int rc;

	for (struct run_q *r = s->runs; r != NULL; r = r->next)
		for (struct qphase *p = r->head; p != NULL; p = p->next)
			foreign_known_add(&f, p->phase_id);
	for (struct worker *w = s->workers; w != NULL; w = w->next)
		if (w->lease.phase != NULL)
			foreign_known_add(&f, w->lease.phase->phase_id);
	if (f.nknown > 0)
		qsort(f.known, f.nknown, sizeof *f.known, foreign_cmp);
	rc = store_drain_each_eligible(
	    s->sd, s->cfg.run_id, false, false, s->session_id, foreign_phase, &f, &err);
	free(f.known);
	if (rc != 0 && !s->foreign_unread)
		log_warn("another program changed the database, and the phases it may have queued "
		         "cannot be read: %s; they are read again each second until they are",
		    err.text);
	s->foreign_unread = rc != 0;
	if (rc == 0 && f.nruns > 0)
		log_info("another program queued %lld phase(s) in %zu run(s) of the database while "
		         "this supervisor ran: they are scheduled",
		    (long long)f.phases, f.nruns);
	for (size_t i = 0; i < f.nruns; i++) {
		sched_reload_run(s, f.runs[i]);
		free(f.runs[i]);
	}
	free(f.runs);
	return rc != 0 ? -1 : (int)f.nruns;
}

void foreign_init(struct sup *s)
{
	s->foreign_seen = s->fleet_id == 0 ? store_data_version(s->st) : -1;
}

void foreign_check(struct sup *s)
{
	uint64_t began = clock_mono_ms(), took;
	int64_t v;
	int loaded;

	if (s->foreign_seen < 0 || s->stopping || s->writes_off || began < s->foreign_next_ms)
		return;
	/* While writes wait for their commit, a phase put back in the queues may still be
	 * RUNNING in the database: wait for a moment when the two agree. */
	if (s->ops_n > 0 || s->sync.nheld > 0 || s->commit_doubt || s->commit_retrying)
		return;
	v = store_data_version(s->st);
	if (v < 0 || v == s->foreign_seen)
		return;
	loaded = foreign_load(s);
	if (loaded >= 0)
		s->foreign_seen = v;
	took = clock_mono_ms() - began;
	s->foreign_next_ms = began +
	    (took * FOREIGN_SHARE > FOREIGN_MIN_MS ? took * FOREIGN_SHARE : FOREIGN_MIN_MS);
	if (loaded > 0)
		lease_kick(s);
}
