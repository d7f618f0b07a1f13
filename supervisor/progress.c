/* The drain's progress and ETA, and its recent failures: one place that works them out,
 * for the status document (`status`, `watch`, the dashboard) and the service manager's
 * status line.
 *
 * done counts the phases this drain finished (an attempt's end committed and the phase
 * not going back to the queue); remaining is what the scheduler will still run (eligible
 * phases, capped by what is left of --batch-size, none once stopping, plus those in
 * flight). The ETA takes the median duration of this database's attempts per task
 * category (the newest PROGRESS_SAMPLE of them), gives each remaining phase its
 * category's median (a run's queued phases in proportion to its categories; at least the
 * drain's pace, progress_pace_s), and lets the
 * pool's workers take runs in parallel while each run goes one phase at a time: it is the
 * larger of the total work shared by the workers and the longest run. An attempt in flight
 * counts for its median less its age; once older than that, for the median of the longer
 * attempts less its age, or, older than all, for as long again as its age (at most to its
 * deadline). Without any finished
 * attempt it falls back to the rate of phases finished so far. The database is read at
 * most every PROGRESS_REFRESH_MS, and only after new results, so watching costs the drain
 * next to nothing. */
#include "supervisor/observe.h"
#include "common/checklog.h"
#include "common/log.h"
#include "common/util.h"
#include "common/utf8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PROGRESS_SAMPLE 5000      /* attempts the medians are taken over */
#define PROGRESS_REFRESH_MS 5000  /* the database is read at most this often */
#define PROGRESS_WINDOW_MS 600000 /* the rate is taken over this window */
#define PROGRESS_SECONDS 600      /* the window, in the one-second counts kept of it */
#define PROGRESS_FAILURES 10      /* recent failures shown */
#define PROGRESS_MESSAGE_MAX 600  /* characters of a failure's message shown */

/* The median duration of one task category. */
struct cat_median {
	char *category; /* NULL: phases without one */
	double seconds;
};

/* The expected duration of a queued phase of one run, from its categories. */
struct run_mix {
	char *run_id;
	double work_s; /* Σ count × median */
	int64_t n;     /* phases counted */
};

struct progress_state {
	int64_t done;
	int64_t failed;
	int64_t handed_back;
	/* Phases finished in each of the last PROGRESS_SECONDS seconds (monotonic): second t
	 * is slot t % PROGRESS_SECONDS, whose count is second_at's. */
	uint32_t finished[PROGRESS_SECONDS];
	uint64_t second_at[PROGRESS_SECONDS];
	/* read from the database */
	struct cat_median *medians;
	size_t nmedians;
	double median_all; /* < 0: no finished attempt */
	int64_t *all_ms;   /* every duration read, in ms, ascending */
	size_t nall;
	struct run_mix *mix;
	size_t nmix;
	uint64_t refreshed_ms;
	int64_t refreshed_done; /* done + failed at the last refresh; -1: never */
	json_t *failures;
	int64_t failures_seen; /* failed at the last read of failures; -1: never */
};

/* The state, created on first use. */
static struct progress_state *progress_state(struct sup *s)
{
	if (s->progress == NULL) {
		s->progress = xcalloc(1, sizeof *s->progress);
		s->progress->median_all = -1;
		s->progress->refreshed_done = -1;
		s->progress->failures_seen = -1;
	}
	return s->progress;
}

/* Start the tally of a resumed session from what the database recorded. */
void progress_init(struct sup *s)
{
	struct progress_state *ps = progress_state(s);
	struct store_err err;

	if (s->cfg.resume &&
	    store_drain_session_tally(
	        s->sd, s->session_id, &ps->done, &ps->failed, &ps->handed_back, &err) != 0)
		log_warn("progress of the resumed session: %s", err.text);
}

/* Count a phase finished in second `sec`. */
static void progress_count_finish(struct progress_state *ps, uint64_t sec)
{
	size_t i = sec % PROGRESS_SECONDS;

	if (ps->second_at[i] != sec) {
		ps->second_at[i] = sec;
		ps->finished[i] = 0;
	}
	ps->finished[i]++;
}

/* Count a committed attempt end: a failure, or one handed back (`handed_back`: its phase
 * went back to the queue for no fault of its own), and, when its phase left the queue,
 * when. */
void progress_finished(struct sup *s, bool left_queue, bool ok, bool handed_back)
{
	struct progress_state *ps = progress_state(s);

	if (handed_back)
		ps->handed_back++;
	else if (!ok)
		ps->failed++;
	if (!left_queue)
		return;
	ps->done++;
	progress_count_finish(ps, clock_mono_ms() / 1000);
}

/* Collects durations by category (the rows come in any order). */
struct durations {
	struct dur_list {
		char *category;
		int64_t *ms;
		size_t n, cap;
	} * v;
	size_t n;
	int64_t *all;
	size_t nall, capall;
};

/* Append one attempt's duration to its category's list and to the list of all. */
static int durations_add(void *arg, const char *category, int64_t ms)
{
	struct durations *d = arg;
	struct dur_list *l = NULL;

	for (size_t i = 0; i < d->n && l == NULL; i++)
		if ((d->v[i].category == NULL && category == NULL) ||
		    (d->v[i].category != NULL && category != NULL &&
		        strcmp(d->v[i].category, category) == 0))
			l = &d->v[i];
	if (l == NULL) {
		d->v = xrealloc(d->v, (d->n + 1) * sizeof *d->v);
		l = &d->v[d->n++];
		*l = (struct dur_list){ .category = category != NULL ? xstrdup(category) : NULL };
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->ms = xrealloc(l->ms, l->cap * sizeof *l->ms);
	}
	l->ms[l->n++] = ms;
	if (d->nall == d->capall) {
		d->capall = d->capall ? d->capall * 2 : 64;
		d->all = xrealloc(d->all, d->capall * sizeof *d->all);
	}
	d->all[d->nall++] = ms;
	return 0;
}

/* Order two int64_t for qsort. */
static int int64_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The median of n sorted durations in ms, in seconds. */
static double median_sorted_s(const int64_t *ms, size_t n)
{
	return (n % 2 ? (double)ms[n / 2] : ((double)ms[n / 2 - 1] + (double)ms[n / 2]) / 2.0) /
	    1000.0;
}

/* The median of n durations in ms, in seconds (sorts them). */
static double median_s(int64_t *ms, size_t n)
{
	qsort(ms, n, sizeof *ms, int64_cmp);
	return median_sorted_s(ms, n);
}

/* The median of a category, or the median of all attempts when it has none. */
static double median_of(const struct progress_state *ps, const char *category)
{
	for (size_t i = 0; i < ps->nmedians; i++)
		if ((ps->medians[i].category == NULL && category == NULL) ||
		    (ps->medians[i].category != NULL && category != NULL &&
		        strcmp(ps->medians[i].category, category) == 0))
			return ps->medians[i].seconds;
	return ps->median_all;
}

/* Add a run's phases of one category to its expected work. */
static int mix_add(void *arg, const char *run_id, const char *category, int64_t n)
{
	struct progress_state *ps = arg;
	struct run_mix *m = ps->nmix > 0 ? &ps->mix[ps->nmix - 1] : NULL;

	if (m == NULL || strcmp(m->run_id, run_id) != 0) {
		ps->mix = xrealloc(ps->mix, (ps->nmix + 1) * sizeof *ps->mix);
		m = &ps->mix[ps->nmix++];
		*m = (struct run_mix){ .run_id = xstrdup(run_id) };
	}
	m->work_s += (double)n * median_of(ps, category);
	m->n += n;
	return 0;
}

/* Order two runs by id for qsort and bsearch. */
static int mix_cmp(const void *a, const void *b)
{
	return strcmp(((const struct run_mix *)a)->run_id, ((const struct run_mix *)b)->run_id);
}

/* Drop what was read from the database. */
static void progress_forget(struct progress_state *ps)
{
	for (size_t i = 0; i < ps->nmedians; i++)
		free(ps->medians[i].category);
	free(ps->medians);
	ps->medians = NULL;
	ps->nmedians = 0;
	free(ps->all_ms);
	ps->all_ms = NULL;
	ps->nall = 0;
	for (size_t i = 0; i < ps->nmix; i++)
		free(ps->mix[i].run_id);
	free(ps->mix);
	ps->mix = NULL;
	ps->nmix = 0;
	ps->median_all = -1;
}

/* Reread the medians and each run's categories when results came in since the last read
 * and PROGRESS_REFRESH_MS has passed. A failed read keeps the figures it had. */
static void progress_refresh(struct sup *s, struct progress_state *ps)
{
	uint64_t now = clock_mono_ms();
	struct durations d = { 0 };
	struct store_err err;

	if (ps->refreshed_done == ps->done + ps->failed ||
	    (ps->refreshed_done >= 0 && now - ps->refreshed_ms < PROGRESS_REFRESH_MS))
		return;
	ps->refreshed_ms = now;
	ps->refreshed_done = ps->done + ps->failed;
	if (store_drain_each_duration(
	        s->sd, s->cfg.dry_run, PROGRESS_SAMPLE, durations_add, &d, &err) != 0) {
		log_warn("progress: %s", err.text);
		goto out;
	}
	progress_forget(ps);
	if (d.nall > 0)
		ps->median_all = median_s(d.all, d.nall);
	ps->all_ms = d.all; /* sorted by median_s */
	ps->nall = d.nall;
	d.all = NULL;
	ps->medians = xcalloc(d.n + 1, sizeof *ps->medians);
	for (size_t i = 0; i < d.n; i++) {
		ps->medians[i].category = d.v[i].category;
		ps->medians[i].seconds = median_s(d.v[i].ms, d.v[i].n);
		d.v[i].category = NULL;
	}
	ps->nmedians = d.n;
	if (ps->median_all >= 0 &&
	    store_drain_each_queued_category(s->sd, s->cfg.retry_failed, mix_add, ps, &err) != 0)
		log_warn("progress: %s", err.text);
	if (ps->nmix > 1) /* SQL orders them; strcmp decides for bsearch */
		qsort(ps->mix, ps->nmix, sizeof *ps->mix, mix_cmp);
out:
	for (size_t i = 0; i < d.n; i++) {
		free(d.v[i].category);
		free(d.v[i].ms);
	}
	free(d.v);
	free(d.all);
}

/* The expected seconds of one queued phase of run `run_id`. */
static double run_phase_s(const struct progress_state *ps, const char *run_id)
{
	struct run_mix key = { .run_id = (char *)run_id };
	struct run_mix *m = ps->nmix > 0 ?
	    bsearch(&key, ps->mix, ps->nmix, sizeof *ps->mix, mix_cmp) :
	    NULL;

	return m != NULL && m->n > 0 ? m->work_s / (double)m->n : ps->median_all;
}

/* The seconds an attempt that ran age_s, longer than expected, still needs: the median of
 * the attempts in the history that ran longer, less its age; longer than all of them, as
 * long again as its age, at most the time to its deadline. */
static double overdue_left_s(const struct sup *s, const struct progress_state *ps, double age_s)
{
	size_t lo = 0, hi = ps->nall, n;
	double to_deadline = (double)s->cfg.phase_timeout_s - age_s;

	while (lo < hi) { /* the first duration longer than age_s */
		size_t mid = lo + (hi - lo) / 2;

		if ((double)ps->all_ms[mid] / 1000.0 > age_s)
			hi = mid;
		else
			lo = mid + 1;
	}
	n = ps->nall - lo;
	if (n == 0)
		return fmax(fmin(age_s, to_deadline), 0);
	return median_sorted_s(ps->all_ms + lo, n) - age_s;
}

/* The window of the rate: the last PROGRESS_WINDOW_MS, or the time since the start
 * (at least a second); its length in ms, and the phases finished in it, counted by the
 * second (the oldest second whole). */
static uint64_t progress_window(
    const struct sup *s, const struct progress_state *ps, uint64_t now, uint64_t *n)
{
	uint64_t window = now - s->started_ms, sec = now / 1000, first;

	if (window > PROGRESS_WINDOW_MS)
		window = PROGRESS_WINDOW_MS;
	if (window < 1000)
		window = 1000;
	first = (now - window) / 1000;
	*n = 0;
	for (size_t i = 0; i < PROGRESS_SECONDS; i++)
		if (ps->finished[i] > 0 && ps->second_at[i] >= first && ps->second_at[i] <= sec)
			*n += ps->finished[i];
	return window;
}

/* Phases finished per minute over the last PROGRESS_WINDOW_MS (or since the start, at
 * least a second). */
static double progress_rate(struct sup *s, const struct progress_state *ps)
{
	uint64_t n, window = progress_window(s, ps, clock_mono_ms(), &n);

	return (double)n * 60000.0 / (double)window;
}

/* The seconds a phase takes one of the `lanes` that run phases side by side (the
 * workers, or the runs with work left when fewer), as the drain goes: lanes × the rate's
 * window ÷ the phases finished in it, once they are two a lane; 0 before that. Phases
 * shorter than the supervisor takes to hand them out (a dry run) finish no faster than
 * this, whatever their own durations. */
static double progress_pace_s(const struct sup *s, const struct progress_state *ps, int lanes)
{
	uint64_t n, window = progress_window(s, ps, clock_mono_ms(), &n);

	if (lanes <= 0 || n < (uint64_t)lanes * 2)
		return 0;
	return (double)lanes * (double)window / 1000.0 / (double)n;
}

/* The work left in seconds, shared by `parallel` workers, never less than the longest
 * run; negative when there is nothing to go on. */
static double progress_eta(struct sup *s, const struct progress_state *ps, int64_t cap)
{
	uint64_t now = clock_mono_ms();
	double total = 0, longest = 0, pace;
	int parallel = s->live > 0 ? s->live : s->target, lanes = 0;

	if (ps->median_all < 0 || parallel <= 0)
		return -1;
	for (struct run_q *r = s->runs; r != NULL && lanes < parallel; r = r->next)
		if (r->busy || (r->head != NULL && !r->skipped && !s->stopping))
			lanes++;
	pace = progress_pace_s(s, ps, lanes);
	for (struct run_q *r = s->runs; r != NULL; r = r->next) {
		double each = fmax(run_phase_s(ps, r->run_id), pace), work = 0;
		int64_t n = 0;

		if (!r->skipped && !s->stopping)
			for (struct qphase *p = r->head; p != NULL && cap > 0; p = p->next, cap--)
				n++;
		work = (double)n * each;
		for (struct worker *w = s->workers; w != NULL; w = w->next) {
			double age, left;

			if (w->lease.attempt_id == 0 || w->lease.run != r)
				continue;
			age = (double)(now - w->lease.started_ms) / 1000.0;
			left = each - age;
			work += left > 0 ? left : overdue_left_s(s, ps, age);
		}
		total += work;
		if (work > longest)
			longest = work;
	}
#ifdef AUTOPACK_MUTANT_eta_runs_in_parallel
	longest = 0;
#endif
	return fmax(total / parallel, longest);
}

/* Fill p with the drain's progress and ETA now; the ETA is unknown while dispatch is
 * paused or the breaker is tripped. */
void progress_compute(struct sup *s, struct progress *p)
{
	struct progress_state *ps = progress_state(s);
	int64_t queued = s->stopping ? 0 : s->queued;
	int64_t cap = INT64_MAX;

	progress_refresh(s, ps);
	if (s->cfg.batch_size > 0) {
		cap = s->cfg.batch_size - s->started;
		if (cap < 0)
			cap = 0;
		if (queued > cap)
			queued = cap;
	}
	*p = (struct progress){
		.done = ps->done,
		.remaining = queued + s->in_flight,
		.failed = ps->failed,
		.handed_back = ps->handed_back,
		.per_minute = progress_rate(s, ps),
		.eta_seconds = -1,
	};
	p->total = p->done + p->remaining;
	p->percent = p->total > 0 ? 100.0 * (double)p->done / (double)p->total : 100.0;
	if (p->remaining == 0) {
		p->basis = PROGRESS_BASIS_FINISHED;
		p->eta_seconds = 0;
	} else if (s->paused || s->crash_loop) {
		/* No dispatch until an operator resumes or scales: no time can be given. */
	} else if ((p->eta_seconds = progress_eta(s, ps, cap)) >= 0) {
		p->basis = PROGRESS_BASIS_MEDIAN;
	} else if (p->per_minute > 0) {
		p->basis = PROGRESS_BASIS_RATE;
		p->eta_seconds = (double)p->remaining / p->per_minute * 60.0;
	}
}

/* The medians the ETA uses, by category ("" for phases without one), as a JSON object. */
json_t *progress_medians_json(struct sup *s)
{
	struct progress_state *ps = progress_state(s);
	json_t *o = json_object();

	progress_refresh(s, ps);
	for (size_t i = 0; i < ps->nmedians; i++)
		json_object_set_new(o,
		    ps->medians[i].category != NULL ? ps->medians[i].category : "",
		    json_real(ps->medians[i].seconds));
	return o;
}

/* The path of an attempt's check log, if the check wrote one. */
static json_t *failure_log_json(const struct drain_failure *f)
{
	static const char *const streams[] = { "stderr", "stdout" };
	struct stat sb;

	if (f->workspace == NULL || f->workspace[0] == '\0')
		return json_null();
	for (size_t i = 0; i < ARRAY_SIZE(streams); i++) {
		char *path = checklog_path(
		    f->workspace, f->run_id, f->phase_id, f->attempt_number, streams[i]);
		char *abs = stat(path, &sb) == 0 ? realpath(path, NULL) : NULL;

		free(path);
		if (abs != NULL) {
			json_t *j = json_string(abs);

			free(abs);
			return j;
		}
	}
	return json_null();
}

/* Append one failure to the JSON array `arg`. */
static int failure_add(void *arg, const struct drain_failure *f)
{
	char *msg = f->message != NULL ? utf8_clean(f->message, PROGRESS_MESSAGE_MAX) : NULL;
	json_t *m = msg != NULL ? json_string(msg) : json_null();

	free(msg);
	json_array_append_new(arg,
	    json_pack("{s:I, s:s?, s:s?, s:I, s:s?, s:s?, s:o, s:s?, s:o}", "attempt_id",
	        (json_int_t)f->attempt_id, "run_id", f->run_id, "phase_id", f->phase_id, "attempt",
	        (json_int_t)f->attempt_number, "outcome", outcome_name(f->outcome), "reason",
	        f->reason, "message", m, "ended_at", f->ended_at, "log_path", failure_log_json(f)));
	return 0;
}

/* List the newest failures, reread only after a new one. */
json_t *progress_failures_json(struct sup *s)
{
	struct progress_state *ps = progress_state(s);
	struct store_err err;
	json_t *a;

	if (ps->failures == NULL || ps->failures_seen != ps->failed) {
		a = json_array();
		if (store_drain_each_failure(s->sd, PROGRESS_FAILURES, failure_add, a, &err) != 0) {
			log_warn("recent failures: %s", err.text);
			json_decref(a);
			a = ps->failures != NULL ? json_incref(ps->failures) : json_array();
		}
		json_decref(ps->failures);
		ps->failures = a;
		ps->failures_seen = ps->failed;
	}
	return json_incref(ps->failures);
}

/* Free the progress state. */
void progress_free(struct sup *s)
{
	if (s->progress == NULL)
		return;
	progress_forget(s->progress);
	json_decref(s->progress->failures);
	free(s->progress);
	s->progress = NULL;
}
