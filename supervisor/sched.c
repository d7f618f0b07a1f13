/* The scheduler: a cache of eligible phases per run, rebuilt from the database at start,
 * and dispatch rounds that lease the head phase of ready runs to idle workers. Within a
 * run one phase is leased at a time, in (tier index, phase index) order; runs proceed in
 * parallel. Among ready runs the next one is chosen as the batch controller chose its next
 * phase (docs/drain-rules.md, "Which run goes next"): runs not yet sampled first, then promising ones; then by the
 * failure-reason bucket of the run's next phase (unknown, collection, deliverable, patch,
 * other, timeout); then the lower phase index; then the run that has waited longest.
 * Dispatch is event-driven: sched_kick arms one round for the next loop iteration. */
#include "supervisor/sup.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

struct run_q *sched_run_find(struct sup *s, const char *run_id)
{
	struct run_q *r;

	for (r = s->runs; r != NULL; r = r->next)
		if (strcmp(r->run_id, run_id) == 0)
			return r;
	return NULL;
}

/* Append r to the ready list if it has work and no lease. */
static void ready_push(struct sup *s, struct run_q *r)
{
	if (r->ready || r->busy || r->skipped || r->head == NULL)
		return;
	r->ready = true;
	r->ready_seq = ++s->ready_seq;
	r->next_ready = NULL;
	if (s->ready_tail != NULL)
		s->ready_tail->next_ready = r;
	else
		s->ready_head = r;
	s->ready_tail = r;
}

/* Unlink r (which follows prev, or heads the list) from the ready list. */
static void ready_unlink(struct sup *s, struct run_q *prev, struct run_q *r)
{
	if (prev != NULL)
		prev->next_ready = r->next_ready;
	else
		s->ready_head = r->next_ready;
	if (s->ready_tail == r)
		s->ready_tail = prev;
	r->next_ready = NULL;
	r->ready = false;
}

/* Is run a a better next choice than run b? */
static bool run_before(const struct run_q *a, const struct run_q *b)
{
	int ga = !a->sampled ? 0 : a->promising ? 1 : 2;
	int gb = !b->sampled ? 0 : b->promising ? 1 : 2;

	if (ga != gb)
		return ga < gb;
	if (a->head->bucket != b->head->bucket)
		return a->head->bucket < b->head->bucket;
	if (a->head->phase_index != b->head->phase_index)
		return a->head->phase_index < b->head->phase_index;
	return a->ready_seq < b->ready_seq;
}

/* Take the best ready run. */
static struct run_q *ready_pop(struct sup *s)
{
	struct run_q *r, *prev = NULL, *best = NULL, *best_prev = NULL;

	for (r = s->ready_head; r != NULL; prev = r, r = r->next_ready) {
		if (best == NULL || run_before(r, best)) {
			best = r;
			best_prev = prev;
		}
	}
	if (best != NULL)
		ready_unlink(s, best_prev, best);
	return best;
}

void sched_skip_run(struct sup *s, struct run_q *r)
{
	struct run_q *x, *prev = NULL;
	struct qphase *p, *next;

	r->skipped = true;
	if (r->ready) {
		for (x = s->ready_head; x != NULL && x != r; prev = x, x = x->next_ready)
			;
		if (x == r)
			ready_unlink(s, prev, r);
	}
	for (p = r->head; p != NULL; p = next) {
		next = p->next;
		free(p->phase_id);
		free(p);
		s->queued--;
	}
	r->head = r->tail = NULL;
}

/* Add one eligible phase (store callback), creating its run on first sight. */
static int sched_load_one(void *arg, const struct drain_phase *p)
{
	struct sup *s = arg;
	struct run_q *r = s->runs_tail;
	struct qphase *q;
	size_t i;

	for (i = 0; i < s->cfg.nskip; i++)
		if (strncmp(p->run_id, s->cfg.skip_prefixes[i], strlen(s->cfg.skip_prefixes[i])) ==
		    0)
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
		}
	}
	if (r->skipped)
		return 0;
	q = xcalloc(1, sizeof *q);
	q->phase_id = xstrdup(p->phase_id);
	q->phase_index = p->phase_index;
	q->bucket = policy_bucket(p->last_failure_reason);
	q->attempts = p->attempts;
	q->max_attempts = p->max_attempts;
	if (r->tail != NULL)
		r->tail->next = q;
	else
		r->head = q;
	r->tail = q;
	s->queued++;
	return 0;
}

int sched_load(struct sup *s)
{
	struct store_err err;
	struct run_q *r;

	if (store_drain_each_eligible(s->sd, s->cfg.run_id, s->cfg.retry_failed, s->session_id,
	        sched_load_one, s, &err) != 0) {
		log_error("%s", err.text);
		return -1;
	}
	policy_apply_runs(s);
	for (r = s->runs; r != NULL; r = r->next)
		ready_push(s, r);
	return 0;
}

void sched_reload_run(struct sup *s, const char *run_id)
{
	struct run_q *r = sched_run_find(s, run_id);
	struct qphase *p, *next;
	struct store_err err;
	struct worker *w;

	if (r != NULL) {
		for (p = r->head; p != NULL; p = next) {
			next = p->next;
			free(p->phase_id);
			free(p);
			s->queued--;
		}
		r->head = r->tail = NULL;
	}
	if (store_drain_each_eligible(
	        s->sd, run_id, s->cfg.retry_failed, s->session_id, sched_load_one, s, &err) != 0)
		log_error("%s", err.text);
	if ((r = sched_run_find(s, run_id)) == NULL)
		return;
	/* A leased phase may still be eligible (dry run): don't queue it twice. */
	for (w = s->workers; w != NULL; w = w->next) {
		struct qphase **pp;

		if (w->run != r || w->phase == NULL)
			continue;
		for (pp = &r->head; *pp != NULL; pp = &(*pp)->next) {
			if (strcmp((*pp)->phase_id, w->phase->phase_id) == 0) {
				p = *pp;
				*pp = p->next;
				free(p->phase_id);
				free(p);
				s->queued--;
				break;
			}
		}
		for (r->tail = r->head; r->tail != NULL && r->tail->next != NULL;)
			r->tail = r->tail->next;
	}
	ready_push(s, r);
}

void sched_requeue(struct sup *s, struct run_q *r, struct qphase *p)
{
	if (r->skipped) {
		free(p->phase_id);
		free(p);
		return;
	}
	p->next = r->head;
	r->head = p;
	if (r->tail == NULL)
		r->tail = p;
	s->queued++;
}

void sched_release(struct sup *s, struct run_q *r)
{
	r->busy = false;
	ready_push(s, r);
}

enum phase_state sched_next_state(struct sup *s, struct qphase *p, enum outcome outcome)
{
	int64_t limit = s->cfg.max_attempts;

	switch (outcome) {
	case OUTCOME_SUCCESS: return PHASE_COMPLETE;
	case OUTCOME_DRY_RUN: return PHASE_STATE_NONE;
	case OUTCOME_CANCELLED: return PHASE_SKIPPED;
	/* Stopping the supervisor is not the phase's fault: it goes back to the queue. */
	case OUTCOME_SUPERVISOR_STOPPED: return PHASE_QUEUED;
	default: break;
	}
	if (p->max_attempts > 0 && p->max_attempts < limit)
		limit = p->max_attempts;
	return p->attempts >= limit ? PHASE_FAILED : PHASE_QUEUED;
}

bool sched_drained(struct sup *s)
{
	bool capped = s->cfg.batch_size > 0 && s->started >= s->cfg.batch_size;

	return s->in_flight == 0 && s->ops_n == 0 && (s->queued == 0 || capped);
}

/* Find an idle worker not marked to retire. */
static struct worker *idle_worker(struct sup *s, struct worker *after)
{
	struct worker *w = after != NULL ? after->next : s->workers;

	for (; w != NULL; w = w->next)
		if (w->state == W_IDLE && !w->retire)
			return w;
	return NULL;
}

struct lease {
	struct worker *w;
	struct run_q *r;
	struct qphase *p;
	uint64_t attempt_id;
	int64_t attempt_number;
};

#define DISPATCH_RETRY_MS 200

/* Try a dispatch round again after a failed one. */
static void sched_retry_cb(uv_timer_t *t)
{
	sched_kick(t->data);
}

/* Lease ready runs' head phases to idle workers, all attempts in one transaction. */
static void sched_round(struct sup *s)
{
	struct lease *ls;
	struct worker *w = NULL;
	struct store_err err;
	int n = 0, max = 0, i;

	if (s->paused || s->stopping || s->store_lost || s->ready_head == NULL)
		return;
	for (w = idle_worker(s, NULL); w != NULL; w = idle_worker(s, w))
		max++;
	if (s->cfg.batch_size > 0 && max > s->cfg.batch_size - s->started)
		max = (int)(s->cfg.batch_size - s->started);
	if (max <= 0) {
		if (s->cfg.batch_size > 0 && s->started >= s->cfg.batch_size && s->in_flight == 0)
			sup_stop_because(s, STOP_GRACEFUL, "batch size %lld reached (--batch-size)",
			    (long long)s->cfg.batch_size);
		return;
	}
	ls = xcalloc((size_t)max, sizeof *ls);
	if (store_drain_begin(s->sd, &err) != 0)
		goto fail;
	w = idle_worker(s, NULL);
	while (n < max && w != NULL && s->ready_head != NULL) {
		struct run_q *r = ready_pop(s);
		struct qphase *p = r->head;
		struct lease *l = &ls[n];
		int rc;

		rc = store_drain_attempt_open(s->sd, r->run_id, p->phase_id, w->pid, s->session_id,
		    s->cfg.dry_run, &l->attempt_id, &l->attempt_number, &err);
		if (rc == STORE_EINVAL) {
			/* No longer eligible (changed by a control command): drop it. */
			log_warn("%s", err.text);
			r->head = p->next;
			if (r->head == NULL)
				r->tail = NULL;
			s->queued--;
			free(p->phase_id);
			free(p);
			ready_push(s, r);
			continue;
		}
		if (rc != 0) {
			ready_push(s, r);
			goto fail;
		}
		r->head = p->next;
		if (r->head == NULL)
			r->tail = NULL;
		p->next = NULL;
		r->busy = true;
		l->w = w;
		l->r = r;
		l->p = p;
		n++;
		w = idle_worker(s, w);
	}
	if (store_drain_commit(s->sd, &err) != 0)
		goto fail;
	for (i = 0; i < n; i++) {
		struct lease *l = &ls[i];

		s->queued--;
		s->in_flight++;
		s->started++;
		s->n.dispatched++;
		l->p->attempts++;
		pool_send_job(l->w, l->r, l->p, l->attempt_id, l->attempt_number);
	}
	free(ls);
	return;
fail:
	log_error("dispatch: %s", err.text);
	store_drain_rollback(s->sd);
	/* Undo the leases taken in memory; the database rolled back. */
	for (i = 0; i < n; i++) {
		struct lease *l = &ls[i];

		l->p->next = l->r->head;
		l->r->head = l->p;
		if (l->r->tail == NULL)
			l->r->tail = l->p;
		l->r->busy = false;
		ready_push(s, l->r);
	}
	free(ls);
	s->n.commit_failures++;
	sup_identity_check(s);
	/* Nothing else may come along to ask for another round: retry on a timer. */
	if (!s->store_lost)
		uv_timer_start(&s->dispatch_retry, sched_retry_cb, DISPATCH_RETRY_MS, 0);
}

/* Run one dispatch round per loop iteration in which it was asked for. */
static void sched_idle_cb(uv_idle_t *h)
{
	struct sup *s = h->data;

	uv_idle_stop(h);
	s->dispatch_armed = false;
	sched_round(s);
	sup_check_done(s);
}

void sched_kick(struct sup *s)
{
	if (s->dispatch_armed)
		return;
	if (s->dispatch_idle.data == NULL) {
		uv_idle_init(s->loop, &s->dispatch_idle);
		s->dispatch_idle.data = s;
		uv_timer_init(s->loop, &s->dispatch_retry);
		s->dispatch_retry.data = s;
	}
	s->dispatch_armed = true;
	uv_idle_start(&s->dispatch_idle, sched_idle_cb);
}

void sched_free(struct sup *s)
{
	struct run_q *r, *rn;
	struct qphase *p, *pn;

	for (r = s->runs; r != NULL; r = rn) {
		rn = r->next;
		for (p = r->head; p != NULL; p = pn) {
			pn = p->next;
			free(p->phase_id);
			free(p);
		}
		free(r->run_id);
		free(r);
	}
	s->runs = s->runs_tail = NULL;
}
