/* The scheduler: a cache of eligible phases per run, rebuilt from the database at start,
 * and the choice of the next run. Within a run one phase is leased at a time, in (tier
 * index, phase index) order; runs proceed in parallel. Among ready runs the next one is
 * chosen as the batch controller chose its next phase (docs/drain-rules.md): runs not yet
 * sampled first, then promising ones; then by the failure-reason bucket of the run's next
 * phase; then the lower phase index; then the run that has waited longest. The ready runs
 * are a binary heap in that order and the runs a hash table by id: taking the next run,
 * putting one back and finding one cost O(log n) or O(1), whatever the number of runs and
 * phases. The dispatch rounds that take runs from here are in lease.c. */
#include "supervisor/sup.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* Find a run by id. */
struct run_q *sched_run_find(struct sup *s, const char *run_id)
{
	struct run_q *r;

	if (s->run_tab_cap == 0)
		return NULL;
	for (r = s->run_tab[(size_t)str_hash(run_id) & (s->run_tab_cap - 1)]; r != NULL;
	     r = r->next_by_id)
		if (strcmp(r->run_id, run_id) == 0)
			return r;
	return NULL;
}

/* Add r to the table of runs by id, doubling it past a load of one. */
static void run_tab_add(struct sup *s, struct run_q *r)
{
	size_t i;

	if (s->nruns + 1 > s->run_tab_cap) {
		size_t cap = s->run_tab_cap != 0 ? s->run_tab_cap * 2 : 64;
		struct run_q **tab = xcalloc(cap, sizeof *tab);

		for (i = 0; i < s->run_tab_cap; i++) {
			struct run_q *x, *next;

			for (x = s->run_tab[i]; x != NULL; x = next) {
				size_t j = (size_t)str_hash(x->run_id) & (cap - 1);

				next = x->next_by_id;
				x->next_by_id = tab[j];
				tab[j] = x;
			}
		}
		free(s->run_tab);
		s->run_tab = tab;
		s->run_tab_cap = cap;
	}
	i = (size_t)str_hash(r->run_id) & (s->run_tab_cap - 1);
	r->next_by_id = s->run_tab[i];
	s->run_tab[i] = r;
	s->nruns++;
}

/* Is the run in slot a a better next choice than the run in slot b? */
static bool slot_before(const struct ready_slot *a, const struct ready_slot *b)
{
	if (a->rank != b->rank)
		return a->rank < b->rank;
	if (a->phase_index != b->phase_index)
		return a->phase_index < b->phase_index;
	return a->seq < b->seq;
}

/* Put slot `x` at heap slot i (0-based) and note in its run where it is. */
static void heap_set(struct sup *s, size_t i, const struct ready_slot *x)
{
	s->heap[i] = *x;
	x->run->heap_at = i + 1;
}

/* Move the slot at i up while it goes before its parent. */
static void heap_up(struct sup *s, size_t i)
{
	struct ready_slot x = s->heap[i];

	while (i > 0 && slot_before(&x, &s->heap[(i - 1) / 2])) {
		heap_set(s, i, &s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(s, i, &x);
}

/* Move the slot at i down while a child goes before it. */
static void heap_down(struct sup *s, size_t i)
{
	struct ready_slot x = s->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->nready)
			break;
		if (c + 1 < s->nready && slot_before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!slot_before(&s->heap[c], &x))
			break;
		heap_set(s, i, &s->heap[c]);
		i = c;
	}
	heap_set(s, i, &x);
}

/* The rank of r's slot: not yet sampled first, then promising, then the rest; within
 * each, its head phase's bucket. */
static uint32_t ready_rank(const struct run_q *r)
{
	return (uint32_t)(!r->sampled ? 0 : r->promising ? 1 : 2) << 16 | (uint32_t)r->head->bucket;
}

/* Add r to the ready runs if it has work and no lease, placed by what it is now: sampled
 * or promising, its head phase's bucket and index, and this moment. */
static void ready_push(struct sup *s, struct run_q *r)
{
	struct ready_slot x;

	if (r->heap_at != 0 || r->busy || r->skipped || r->parked || r->head == NULL)
		return;
	r->ready_seq = ++s->ready_seq;
	x = (struct ready_slot){ .rank = ready_rank(r),
		.phase_index = r->head->phase_index,
		.seq = r->ready_seq,
		.run = r };
	if (s->nready == s->heap_cap) {
		s->heap_cap = s->heap_cap != 0 ? s->heap_cap * 2 : 64;
		s->heap = xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
	}
	heap_set(s, s->nready++, &x);
	heap_up(s, s->nready - 1);
}

/* Take r out of the ready runs. */
static void ready_remove(struct sup *s, struct run_q *r)
{
	size_t i = r->heap_at - 1;
	struct ready_slot last;

	assert(r->heap_at != 0 && s->heap[i].run == r);
	r->heap_at = 0;
	last = s->heap[--s->nready];
	if (last.run == r)
		return;
	heap_set(s, i, &last);
	heap_up(s, i);
	heap_down(s, last.run->heap_at - 1);
}

void sched_rerank(struct sup *s, struct run_q *r)
{
	size_t i;

	if (r->heap_at == 0)
		return;
	i = r->heap_at - 1;
	s->heap[i].rank = ready_rank(r);
	heap_up(s, i);
	heap_down(s, r->heap_at - 1);
}

void sched_assert_ready(const struct sup *s)
{
	for (size_t i = 0; i < s->nready; i++) {
		assert(s->heap[i].run->heap_at == i + 1);
		assert(s->heap[i].rank == ready_rank(s->heap[i].run));
		assert(i == 0 || !slot_before(&s->heap[i], &s->heap[(i - 1) / 2]));
	}
}

/* Unlink and return the best ready run. */
struct run_q *sched_pop(struct sup *s)
{
	struct run_q *best;

	if (s->nready == 0)
		return NULL;
	best = s->heap[0].run;
	ready_remove(s, best);
	return best;
}

/* Free a queued phase. */
void sched_phase_free(struct qphase *p)
{
	store_drain_spec_free(&p->spec);
	free(p->phase_id);
	free(p);
}

/* Free a run's queued phases, counting them out of the queue. */
static void sched_clear_run(struct sup *s, struct run_q *r)
{
	struct qphase *p, *next;

	for (p = r->head; p != NULL; p = next) {
		next = p->next;
		sched_phase_free(p);
		s->queued--;
	}
	assert(s->queued >= 0);
	r->head = r->tail = NULL;
}

/* Drop a run's queue for the rest of the session. */
void sched_skip_run(struct sup *s, struct run_q *r, const char *why)
{
	r->skipped = true;
	free(r->skip_why);
	r->skip_why = xstrdup(why);
	if (r->heap_at != 0)
		ready_remove(s, r);
	sched_clear_run(s, r);
}

bool sched_run_excluded(struct sup *s, const char *run_id)
{
	for (size_t i = 0; i < s->cfg.nskip; i++)
		if (strncmp(run_id, s->cfg.skip_prefixes[i], strlen(s->cfg.skip_prefixes[i])) == 0)
			return true;
	return false;
}

/* Add one eligible phase (store callback), creating its run on first sight: skipped
 * when the session's policy already holds it back (stopped or deprioritised before this
 * supervisor read it, here or by another supervisor while that one held it). */
static int sched_load_one(void *arg, const struct drain_phase *p)
{
	struct sup *s = arg;
	struct run_q *r = s->runs_tail;
	struct qphase *q;
	const char *why;

	if (sched_run_excluded(s, p->run_id))
		return 0;
	if (r == NULL || strcmp(r->run_id, p->run_id) != 0) {
		r = sched_run_find(s, p->run_id);
		if (r == NULL) {
			r = xcalloc(1, sizeof *r);
			r->run_id = xstrdup(p->run_id);
			if (s->runs_tail != NULL)
				s->runs_tail->next = r;
			else
				s->runs = r;
			s->runs_tail = r;
			run_tab_add(s, r);
			if ((why = policy_held_back_why(s, r->run_id)) != NULL) {
				r->skipped = true;
				r->skip_why = xstrdup(why);
			}
		}
	}
	/* A refresh leaves the runs leased here as they are. */
	if (r->skipped || (r->busy && s->refreshing))
		return 0;
	q = xcalloc(1, sizeof *q);
	q->phase_id = xstrdup(p->phase_id);
	q->row = p->row;
	q->phase_index = p->phase_index;
	q->bucket = policy_bucket(p->last_failure_reason);
	q->attempts = p->attempts;
	q->max_attempts = p->max_attempts;
	if (p->spec != NULL) {
		q->spec = *p->spec;
		memset(p->spec, 0, sizeof *p->spec);
	}
	if (r->tail != NULL)
		r->tail->next = q;
	else
		r->head = q;
	r->tail = q;
	s->queued++;
	return 0;
}

/* Load the eligible phases and apply the restored triage; -1 (logged) on failure. */
int sched_load(struct sup *s)
{
	struct store_err err;
	struct run_q *r;

	if (store_drain_each_eligible(s->sd, s->cfg.run_id, s->cfg.retry_failed, true,
	        s->started == 0 && s->fleet_id == 0 ? NULL : s->session_id, sched_load_one, s,
	        &err) != 0) {
		log_error("%s", err.text);
		return -1;
	}
	/* A resumed session keeps its triage: sampled and promising runs (the skipped ones
	 * were skipped as they were read). */
	for (r = s->runs; r != NULL; r = r->next) {
		r->sampled = nameset_has(&s->pol.sampled, r->run_id);
		r->promising = nameset_has(&s->pol.promising, r->run_id);
		ready_push(s, r);
	}
	return 0;
}

/* Rebuild the queues of the runs not leased here from the eligible phases; -1 (logged)
 * when they could not be read. */
int sched_refresh(struct sup *s)
{
	struct store_err err;
	struct run_q *r;
	int rc = 0;

	for (r = s->runs; r != NULL; r = r->next) {
		if (r->busy || r->skipped)
			continue;
		if (r->heap_at != 0)
			ready_remove(s, r);
		sched_clear_run(s, r);
		r->parked = false;
	}
	s->refreshing = true;
	if (store_drain_each_eligible(s->sd, s->cfg.run_id, s->cfg.retry_failed, true,
	        s->session_id, sched_load_one, s, &err) != 0) {
		log_error("%s", err.text);
		rc = -1;
	}
	s->refreshing = false;
	for (r = s->runs; r != NULL; r = r->next) {
		if (!r->sampled && nameset_has(&s->pol.sampled, r->run_id))
			r->sampled = true;
		if (!r->promising && nameset_has(&s->pol.promising, r->run_id))
			r->promising = true;
		ready_push(s, r);
	}
	return rc;
}

/* Reload the queues of the parked runs only (several supervisors), in one query; a run
 * with nothing eligible (held elsewhere) stays parked. */
void sched_refresh_parked(struct sup *s)
{
	const char **ids = NULL;
	struct store_err err;
	struct run_q *r;
	size_t n = 0, cap = 0;

	for (r = s->runs; r != NULL; r = r->next) {
		if (!r->parked || r->busy || r->skipped)
			continue;
		if (n == cap) {
			cap = cap != 0 ? cap * 2 : 16;
			ids = xrealloc(ids, cap * sizeof *ids);
		}
		ids[n++] = r->run_id;
		sched_clear_run(s, r);
	}
	s->refreshing = true;
	if (n > 0 &&
	    store_drain_each_eligible_of(s->sd, ids, n, s->cfg.retry_failed, true, s->session_id,
	        sched_load_one, s, &err) != 0)
		log_error("%s", err.text);
	s->refreshing = false;
	free(ids);
	for (r = s->runs; r != NULL; r = r->next) {
		if (!r->parked || r->busy || r->skipped || r->head == NULL)
			continue;
		r->parked = false;
		ready_push(s, r);
	}
}

/* Leave a popped run out until the next refresh; its queue stays. */
void sched_park(struct sup *s, struct run_q *r)
{
	assert(!r->busy && r->heap_at == 0);
	(void)s;
	r->parked = true;
}

/* Reload one run's eligible phases, leaving out the one leased. */
void sched_reload_run(struct sup *s, const char *run_id)
{
	struct run_q *r = sched_run_find(s, run_id);
	struct store_err err;
	struct qphase *p;
	struct worker *w;

	if (r != NULL) {
		if (r->heap_at != 0)
			ready_remove(s, r);
		sched_clear_run(s, r);
	}
	if (store_drain_each_eligible(s->sd, run_id, s->cfg.retry_failed, true, s->session_id,
	        sched_load_one, s, &err) != 0)
		log_error("%s", err.text);
	if ((r = sched_run_find(s, run_id)) == NULL)
		return;
	/* A leased phase may still be eligible (dry run): don't queue it twice. */
	for (w = s->workers; w != NULL; w = w->next) {
		struct qphase **pp;

		if (w->lease.run != r || w->lease.phase == NULL)
			continue;
		for (pp = &r->head; *pp != NULL; pp = &(*pp)->next) {
			if (strcmp((*pp)->phase_id, w->lease.phase->phase_id) == 0) {
				p = *pp;
				*pp = p->next;
				sched_phase_free(p);
				s->queued--;
				break;
			}
		}
		for (r->tail = r->head; r->tail != NULL && r->tail->next != NULL;)
			r->tail = r->tail->next;
	}
	ready_push(s, r);
}

/* Put a phase back at its run's head (freed if the run is skipped). */
void sched_requeue(struct sup *s, struct run_q *r, struct qphase *p)
{
	if (r->skipped) {
		sched_phase_free(p);
		return;
	}
	p->next = r->head;
	r->head = p;
	if (r->tail == NULL)
		r->tail = p;
	s->queued++;
}

/* Release a run's lease. */
void sched_release(struct sup *s, struct run_q *r)
{
	r->busy = false;
	ready_push(s, r);
}

/* Map an outcome to the phase's next state. */
enum phase_state sched_next_state(struct sup *s, struct qphase *p, enum outcome outcome)
{
	int64_t limit = s->cfg.max_attempts;

	switch (outcome) {
	case OUTCOME_SUCCESS: return PHASE_COMPLETE;
	case OUTCOME_DRY_RUN: return PHASE_STATE_NONE;
	case OUTCOME_CANCELLED: return PHASE_SKIPPED;
	/* Stopping the supervisor is not the phase's fault: it goes back to the queue. */
	case OUTCOME_SUPERVISOR_STOPPED: return PHASE_QUEUED;
	case OUTCOME_SUPERVISOR_LOST: return PHASE_QUEUED;
#ifdef AUTOPACK_MUTANT_crash_costs_no_attempt
	case OUTCOME_WORKER_CRASHED: return PHASE_QUEUED;
#endif
	default: break;
	}
	if (p->max_attempts > 0 && p->max_attempts < limit)
		limit = p->max_attempts;
	return p->attempts >= limit ? PHASE_FAILED : PHASE_QUEUED;
}

/* Whether nothing is left to dispatch, run or commit. */
bool sched_drained(struct sup *s)
{
	bool capped = s->cfg.batch_size > 0 && s->started >= s->cfg.batch_size;

	if (s->fleet_id > 0 && s->fleet_busy) /* work eligible or open elsewhere (fleet.c) */
		return false;
	if (s->commit_doubt) /* a group in doubt waits to be settled (writer.c) */
		return false;
	return s->in_flight == 0 && s->ops_n == 0 && (s->queued == 0 || capped);
}

/* Take a popped run's head phase for a lease. */
struct qphase *sched_take(struct sup *s, struct run_q *r)
{
	struct qphase *p = r->head;

	assert(p != NULL && !r->busy && r->heap_at == 0);
	r->head = p->next;
	if (r->head == NULL)
		r->tail = NULL;
	p->next = NULL;
	r->busy = true;
	s->queued--;
	assert(s->queued >= 0);
	return p;
}

/* Drop a popped run's head phase and make the run ready again. */
void sched_drop_head(struct sup *s, struct run_q *r)
{
	struct qphase *p = r->head;

	assert(p != NULL && !r->busy && r->heap_at == 0);
	r->head = p->next;
	if (r->head == NULL)
		r->tail = NULL;
	sched_phase_free(p);
	s->queued--;
	assert(s->queued >= 0);
	ready_push(s, r);
}

/* Free every run and phase. */
void sched_free(struct sup *s)
{
	struct run_q *r, *rn;
	struct qphase *p, *pn;

	for (r = s->runs; r != NULL; r = rn) {
		rn = r->next;
		for (p = r->head; p != NULL; p = pn) {
			pn = p->next;
			sched_phase_free(p);
		}
		free(r->run_id);
		free(r->skip_why);
		free(r);
	}
	s->runs = s->runs_tail = NULL;
	free(s->heap);
	free(s->run_tab);
	s->heap = NULL;
	s->run_tab = NULL;
	s->nready = s->heap_cap = s->run_tab_cap = s->nruns = 0;
}
