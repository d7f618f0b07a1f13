/* Phases another program queues in a SQLite database while this supervisor holds it (the
 * Python code, the sqlite3 command line, a script): once a second the lifecycle's timer
 * asks whether another connection committed (PRAGMA data_version moved); if so, at the
 * end of the first loop turn when no write waits for its commit, the phases QUEUED in
 * the database that the queues and the leases do not hold (by run and id) are read, and
 * their runs loaded (sched_reload_run) and dispatched without a restart; with
 * --exit-when-drained, once more when the queues are drained, before the supervisor stops
 * as drained. PostgreSQL has its own way (fleet.c rebuilds the queues each beat). */
#include "supervisor/sup.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

/* At least this long between two reads of the queue, and at most one part in
 * FOREIGN_SHARE of the loop's time spent reading it. */
#define FOREIGN_MIN_MS 1000
#define FOREIGN_SHARE 10

/* A phase by its run and its id (ids repeat across runs). */
struct foreign_key {
	const char *run_id;
	const char *phase_id;
};

/* What one read found: the phases the queues and the leases hold, sorted, and the runs
 * with a phase QUEUED in the database that they do not hold. */
struct foreign_read {
	struct sup *s;
	struct foreign_key *known;
	size_t nknown, capknown;
	char **runs;
	size_t nruns;
	int64_t phases;
};

static int foreign_cmp(const void *a, const void *b)
{
	const struct foreign_key *x = a, *y = b;
	int c = strcmp(x->run_id, y->run_id);

	return c != 0 ? c : strcmp(x->phase_id, y->phase_id);
}

static void foreign_known_add(struct foreign_read *f, const char *run_id, const char *phase_id)
{
	if (f->nknown == f->capknown) {
		f->capknown = f->capknown != 0 ? 2 * f->capknown : 256;
		f->known = xrealloc(f->known, f->capknown * sizeof *f->known);
	}
	f->known[f->nknown++] = (struct foreign_key){ run_id, phase_id };
}

/* Note a QUEUED phase of the database (store callback) the queues do not hold and that
 * this supervisor would drain: its run is to be loaded. */
static int foreign_phase(void *arg, const struct drain_phase *p)
{
	struct foreign_read *f = arg;
	struct foreign_key k = { p->run_id, p->phase_id };
	struct run_q *r;

	if (f->nknown > 0 &&
	    bsearch(&k, f->known, f->nknown, sizeof *f->known, foreign_cmp) != NULL)
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
			foreign_known_add(&f, r->run_id, p->phase_id);
	for (struct worker *w = s->workers; w != NULL; w = w->next)
		if (w->lease.phase != NULL && w->lease.run != NULL)
			foreign_known_add(&f, w->lease.run->run_id, w->lease.phase->phase_id);
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

/* Whether the queues and the database agree on what is QUEUED but for what another
 * program did: no write waits for its commit (a phase put back in the queues may still be
 * RUNNING in the database until then), none is in doubt or to be retried. */
static bool foreign_quiet(const struct sup *s)
{
	return s->ops_n == 0 && s->sync.nheld == 0 && !s->commit_doubt && !s->commit_retrying;
}

/* Read what another program queued once the writer is quiet and the last read is far
 * enough behind; nothing while stopping or when nothing is due. */
static void foreign_try(struct sup *s)
{
	uint64_t began = clock_mono_ms(), took;
	int64_t v;
	int loaded;

	if (!s->foreign_due || s->stopping || s->writes_off)
		return;
	if (began < s->foreign_next_ms || !foreign_quiet(s))
		return;
	v = store_data_version(s->st);
	loaded = foreign_load(s);
	if (loaded >= 0 && v >= 0) {
		s->foreign_seen = v;
		s->foreign_due = false;
		uv_check_stop(&s->foreign_check);
	}
	took = clock_mono_ms() - began;
	s->foreign_next_ms = began +
	    (took * FOREIGN_SHARE > FOREIGN_MIN_MS ? took * FOREIGN_SHARE : FOREIGN_MIN_MS);
	if (loaded > 0)
		lease_kick(s);
}

/* At the end of each loop turn while a read is due: the first quiet moment reads it. */
static void foreign_check_cb(uv_check_t *h)
{
	foreign_try(h->data);
}

void foreign_init(struct sup *s)
{
	s->foreign_seen = s->fleet_id == 0 ? store_data_version(s->st) : -1;
	uv_check_init(s->loop, &s->foreign_check);
	s->foreign_check.data = s;
	uv_unref((uv_handle_t *)&s->foreign_check);
}

bool foreign_drain_end(struct sup *s)
{
	int64_t v;
	int loaded;

	if (s->foreign_seen < 0 || s->stopping || s->writes_off ||
	    (s->cfg.batch_size > 0 && s->started >= s->cfg.batch_size))
		return false;
	/* A data_version that cannot be read is no sign of another program's commit. */
	v = store_data_version(s->st);
	if (v < 0 || (v == s->foreign_seen && !s->foreign_due && !s->foreign_unread))
		return false;
	/* Drained, no write waits for its commit; one that waits for its fsync is released
	 * by sync.c, which calls lifecycle_check_done again. */
	if (s->sync.nheld > 0)
		return true;
	loaded = foreign_load(s);
	if (loaded >= 0) {
		s->foreign_seen = v;
		s->foreign_due = false;
		uv_check_stop(&s->foreign_check);
	}
	s->foreign_next_ms = clock_mono_ms() + FOREIGN_MIN_MS;
	if (loaded <= 0)
		return false;
	lease_kick(s);
	return true;
}

void foreign_check(struct sup *s)
{
	int64_t v;

	if (s->foreign_seen < 0 || s->stopping || s->writes_off)
		return;
	if (!s->foreign_due) {
		v = store_data_version(s->st);
		if (v < 0 || v == s->foreign_seen)
			return;
		s->foreign_due = true;
		uv_check_start(&s->foreign_check, foreign_check_cb);
	}
	foreign_try(s);
}
