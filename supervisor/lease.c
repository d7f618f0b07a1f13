/* One attempt from dispatch to close, in the order it happens:
 *   1. a dispatch (lease_kick, then lease_open in the writer's round) opens, in the
 *      round's one transaction, an attempt for the head phase of the best ready run for
 *      each idle worker (the fence), after the round's queued writes;
 *   2. after the commit each worker gets its job (lease_start), built from the phase spec
 *      the scheduler read with the queue, and a deadline; a worker whose previous attempt
 *      ended in the same round gets the acknowledgement of its events first;
 *   3. the worker's events are fenced and queued for the writer (lease_event);
 *   4. the lease ends with the worker's result (lease_result), or with what the supervisor
 *      saw (lease_abort: a crash, the deadline, a lost heartbeat, a cancel, a stop); the
 *      end is judged by the drain rules and queued for the writer (lease_close);
 *   5. once the writer has committed the end, the phase goes back to its run's queue or
 *      leaves it, and the run is released for the next round (lease_committed).
 * When results come fast, a round also opens leases ahead of any worker (as many as
 * results arrive in LEASE_AHEAD_MS): durable before any worker is free, each goes out the
 * moment a worker sends its result, so a short phase's worker does not wait for a commit
 * between two jobs. Its events' acknowledgements follow with their commit as always. */
#include "supervisor/sup.h"
#include "common/checklog.h"
#include "common/fingerprint/fingerprint.h"
#include "common/joblimits.h"
#include "common/log.h"
#include "common/store/store_fleet.h"
#include "common/util.h"

#include <assert.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Past the job's deadline before the supervisor kills: the worker kills a check still
 * running 1 s past it (worker/check.h, CHECK_DEADLINE_KILL_MS) and then reports. */
#define DEADLINE_GRACE_MS 4000
#define LEASE_AHEAD_MS 20        /* leases opened ahead: the results of this long */
#define LEASE_AHEAD_MAX 32       /* and never more than this many */
#define LEASE_AHEAD_PER_WORKER 4 /* nor more than this many per live worker */
#define PHASE_SHORT_MS 20        /* phases are short: a worker ends one this often */
#define LEASE_AHEAD_WINDOW_MS 100
/* While phases are short (a commit's leases then go out after an fsync off the loop, by
 * default): the results of this long, at most this many, and this many per live worker. */
#define LEASE_AHEAD_SHORT_MS 60
#define LEASE_AHEAD_SHORT_MAX 128
#define LEASE_AHEAD_SHORT_PER_WORKER 16

static bool lease_want(struct sup *s, bool due);
static int lease_open(struct sup *s, struct store_err *err);
static void lease_taken(struct sup *s, struct grant *grants, size_t n);
static void lease_granted(struct sup *s, const struct grant *grants, size_t n);
static void lease_undo(struct sup *s);
static int64_t lease_ahead_target(const struct sup *s);
static bool lease_next_waits(const struct sup *s, const struct worker *w);
static void lease_queue(struct sup *s, struct worker *w);

void lease_init(struct sup *s)
{
	struct proto_job *j = &s->job;
	struct proto_err perr;

	memset(j, 0, sizeof *j);
	j->db_url = s->st->url;
	j->db_uuid = s->st->uuid;
	j->max_tokens_cap = s->cfg.max_tokens_cap;
	j->llm.provider = (char *)s->cfg.llm_provider;
	j->llm.base_url = (char *)s->cfg.llm_base_url;
	j->llm.model = (char *)s->cfg.llm_model;
	j->llm.timeout_ms = s->cfg.llm_timeout_s * 1000;
	j->llm.max_retries = s->cfg.llm_retries;
	j->coef_version = s->coef_version;
	convert_coefs_to_job(s->coefs, s->ncoefs, j);
	j->fit_json = s->fit_json;
	j->dry_run = s->cfg.dry_run;
	/* The entries every job shares are packed once; if they cannot be, each job packs
	 * them and its send fails with the reason. */
	proto_buf_init(&s->job_shared);
	if (proto_job_pack_shared(j, &s->job_shared, &perr) == 0)
		j->shared = &s->job_shared;
	s->round = (struct round_hooks){ .want = lease_want,
		.open = lease_open,
		.committed = lease_taken,
		.durable = lease_granted,
		.undo = lease_undo };
}

void lease_free(struct sup *s)
{
	for (size_t i = 0; i < s->job.ncoefs; i++) {
		free(s->job.coefs[i].category);
		free(s->job.coefs[i].complexity);
	}
	free(s->job.coefs);
	proto_buf_free(&s->job_shared);
	free(s->grants);
	free(s->ahead);
	memset(&s->job, 0, sizeof s->job);
	s->ahead = NULL;
	s->nahead = s->ahead_cap = 0;
	s->grants = NULL;
	s->ngrants = s->grants_cap = 0;
}

void lease_kick(struct sup *s)
{
	writer_round(s, false);
}

/* The end of an attempt is committed: it is no longer in flight. An end the database
 * refused (a trigger or constraint of another program's: what was committed is a record
 * of the error, the phase's row as it was) stops its run (o->u.close.ctx) for the rest
 * of the session: its phase, still eligible in the database, would be dispatched again
 * at each reading of the queue and refused again (a trigger refusing COMPLETE had 4
 * phases run 958 times in 2 minutes, each a real attempt). */
static void lease_committed(struct sup *s, struct op *o)
{
	struct run_q *r = o->u.close.ctx;
	char why[300];

	s->in_flight--;
	assert(s->in_flight >= 0);
	if (o->refused != NULL && r != NULL && !r->skipped) {
		snprintf(why, sizeof why,
		    "the database refused the end of its attempt %llu (%.200s)",
		    (unsigned long long)o->u.close.attempt_id, o->refused);
		log_about(LOG_WARN,
		    &(struct log_about){ .session = s->session_id, .run = r->run_id },
		    "[STOP] run %s: %s; its phases are not dispatched again in this session",
		    r->run_id, why);
		sched_skip_run(s, r, why);
	}
	lease_kick(s);
}

/* Whether the drain rules judge an attempt that ended with `outcome`: what the worker
 * reported, and the deadline the phase ran past. */
static bool lease_judged(enum outcome outcome)
{
	return outcome_reportable(outcome) || outcome == OUTCOME_TIMEOUT;
}

/* Log the end of w's lease: a success at info (a dry run at debug); anything else at
 * warn with its message and, when the check ran, its log. */
static void lease_log_end(struct worker *w, const struct drain_close *c)
{
	struct lease *l = &w->lease;
	struct log_about about = worker_about(w);
	bool ok = outcome_ok(c->outcome);
	const char *msg = !ok && c->message != NULL ? c->message : "";
	const char *ws = l->phase->spec.workspace;
	int mlen = (int)strlen(msg);
	/* The check's log, unless the message names it already. */
	char *check_log = !ok && ws != NULL && ws[0] != '\0' ?
	    checklog_path(ws, l->run->run_id, l->phase->phase_id, l->attempt_number, "stderr") :
	    NULL;
	bool has_log = check_log != NULL && strstr(msg, check_log) == NULL &&
	    access(check_log, F_OK) == 0;

	while (mlen > 0 && isspace((unsigned char)msg[mlen - 1]))
		mlen--;
	log_about(c->outcome == OUTCOME_DRY_RUN ? LOG_DEBUG :
	        ok                              ? LOG_INFO :
	                                          LOG_WARN,
	    &about,
	    "[%s] %s/%s attempt %llu: %s%s%s%s%.*s%s%s (%lld token-estimation event(s), %.1f s)",
	    ok ? "OK" : "FAIL", l->run->run_id, l->phase->phase_id,
	    (unsigned long long)l->attempt_id, outcome_name(c->outcome),
	    c->reason != REASON_NONE ? ": " : "",
	    c->reason != REASON_NONE ? reason_name(c->reason) : "", mlen > 0 ? ": " : "", mlen, msg,
	    has_log ? "; check log " : "", has_log ? check_log : "", (long long)l->v2,
	    (double)c->duration_ms / 1000.0);
	free(check_log);
}

/* Queue attempt att's end `c` for the writer, then put its phase back in its run's queue
 * (`requeue`) or drop it, and release the run. The run's next lease can be opened at
 * once: a round writes its queued ends before its leases, in the same transaction, so no
 * lease commits before the end it follows. */
static void lease_write_end(struct sup *s, const struct worker *w, uint64_t att,
    const struct drain_close *c, struct run_q *r, struct qphase *p, bool requeue)
{
	writer_close(s, att, r->run_id, p->phase_id, c, p->spec.task_category, lease_committed, r);
	if (!lease_next_waits(s, w))
		writer_round(s, true);
	if (requeue)
		sched_requeue(s, r, p);
	else
		sched_phase_free(p);
	sched_release(s, r);
}

/* End w's lease: judge the end by the drain rules and queue it for the writer, from
 * result r or, when r is NULL, from what the supervisor saw. */
static void lease_close(struct sup *s, struct worker *w, enum outcome outcome, enum reason reason,
    const char *message, const struct proto_result *r)
{
	struct lease *l = &w->lease;
	struct qphase *requeue = NULL;
	/* A worker that reported, or never had the job (INVALID_JOB without a result), made
	 * no LLM try it did not announce. */
	struct drain_close c = { .outcome = outcome,
		.reason = reason,
		.message = message,
		.worker_pid = w->pid,
		.tries_announced = r != NULL || reason == REASON_INVALID_JOB };
	struct policy_verdict v;
	char fp[320];

	assert(l->attempt_id != 0 && l->run != NULL && l->phase != NULL);
	if (r != NULL) {
		c.fingerprint = r->fingerprint;
		c.zero_yield = zero_yield_parse(r->zero_yield_reason);
		c.reached_llm_boundary = r->reached_llm_boundary;
		c.duration_ms = r->duration_ms;
	} else {
		/* The supervisor saw the attempt end: it judges it by the worker's rules. */
		struct fp_yield y = { .samples = (int)l->samples,
			.timed_out = outcome == OUTCOME_TIMEOUT,
			.has_rc = true,
			.rc = 1 };

		c.duration_ms = (int64_t)(clock_mono_ms() - l->started_ms);
		if (fp_attempt(outcome, reason, message, fp, sizeof fp) > 0)
			c.fingerprint = fp;
		c.zero_yield = fp_zero_yield_reason(&y);
	}
	lease_log_end(w, &c);
	/* A job no worker can take never will: the phase fails at once, but for a dry run,
	 * which leaves every phase's state as it is. */
	if (reason == REASON_INVALID_JOB)
		c.phase_state = s->cfg.dry_run ? PHASE_STATE_NONE : PHASE_FAILED;
	else
		c.phase_state = sched_next_state(s, l->phase, outcome);
	/* A call refused for its key is not the phase's fault either: the phase goes back to
	 * the queue rather than fail for good on its last attempt (the key is fixed by a
	 * restart, which should find it queued). */
	if (l->key_refused && c.phase_state == PHASE_FAILED)
		c.phase_state = PHASE_QUEUED;
	/* The drain rules judge what a phase did, not what happened to its worker or what
	 * the operator did: infrastructure failures (a crash, a lost heartbeat), a call
	 * refused for its key, and stops, cancels and scale-downs count toward no
	 * fingerprint, triage or streak. */
	memset(&v, 0, sizeof v);
	if (lease_judged(outcome) && !l->key_refused)
		policy_result(s, l->run, outcome, c.fingerprint, l->v2, &v);
	if (c.phase_state == PHASE_QUEUED) {
		requeue = l->phase;
		requeue->bucket = policy_bucket(reason_name(reason));
	}
#ifdef AUTOPACK_MUTANT_requeue_dropped
	requeue = NULL;
#endif
	if (v.skip_run)
		sched_skip_run(s, l->run, v.run_why);
	lease_write_end(s, w, l->attempt_id, &c, l->run, l->phase, requeue != NULL);
	*l = (struct lease){ 0 };
	s->n.results++;
	if (v.stop_session)
		lifecycle_stop_for(s, STOP_GRACEFUL, STOP_CAUSE_POLICY, "%s", v.why);
}

/* The phase deadline passed: TERM now (worker_kill: KILL after the grace period). The
 * deadline counts only the time the supervisor's loop ran, and after a stall what the
 * worker sent is read first (its own report of the deadline may be among it). */
static void lease_deadline_cb(uv_timer_t *t)
{
	struct worker *w = t->data;
	struct log_about about = worker_about(w);
	struct sup *s = w->sup;
	uint64_t wait;

	if (w->killed)
		return;
	wait = lag_wait_ms(s, w->lease.armed_ms, w->lease.armed_lag,
	    (uint64_t)s->cfg.phase_timeout_s * 1000 + DEADLINE_GRACE_MS);
	if (w->lease.end_outcome == OUTCOME_NONE && wait > 0) {
		uv_timer_start(&w->phase_timer, lease_deadline_cb, wait, 0);
		return;
	}
	log_about(LOG_WARN, &about,
	    "worker %d (pid %d): attempt %llu passed its deadline; stopping it", w->id, (int)w->pid,
	    (unsigned long long)w->lease.attempt_id);
	if (w->lease.end_outcome == OUTCOME_NONE)
		w->lease.end_outcome = OUTCOME_TIMEOUT;
	w->sup->n.worker_timeouts++;
	worker_kill(w, SIGTERM);
}

/* Check a phase spec against every limit of the job message and every deliverable rule
 * of the worker (common/joblimits.h). Returns 0, or -1 with `err`. */
static int lease_job_check(
    const struct grant *g, const struct drain_spec *spec, struct store_err *err)
{
	struct job_phase_text t = {
		.run_id = g->r->run_id,
		.phase_id = g->p->phase_id,
		.name = spec->name,
		.description = spec->description,
		.category = spec->task_category,
		.complexity = spec->complexity,
		.check = spec->check_command,
		.workspace = spec->workspace,
		.paths = (const char *const *)spec->paths.v,
		.npaths = spec->paths.n,
		.context = (const char *const *)spec->read_only_context.v,
		.ncontext = spec->read_only_context.n,
		.deliverables = (const char *const *)spec->deliverables.v,
		.ndeliverables = spec->deliverables.n,
	};
	char why[320];

	if (job_limits_check(&t, why, sizeof why) == 0)
		return 0;
	snprintf(err->text, sizeof err->text, "phase %s/%s cannot be sent to a worker: %s",
	    g->r->run_id, g->p->phase_id, why);
	return -1;
}

/* Fill the job of a grant: the supervisor's part shared by every job, the phase spec the
 * scheduler read with the queue (borrowed: nothing is allocated or read again), the
 * attempt and the deadline. Returns 0, or -1 with `err` when the phase breaks a limit of
 * the job message or a deliverable rule (INVALID_JOB). */
static int lease_job(
    struct sup *s, const struct grant *g, struct proto_job *j, struct store_err *err)
{
	if (lease_job_check(g, &g->p->spec, err) != 0)
		return -1;
	*j = s->job;
	convert_spec_to_job(&g->p->spec, j);
	j->run_id = g->r->run_id;
	j->phase_id = g->p->phase_id;
	j->attempt_id = g->attempt_id;
	j->attempt_number = g->attempt_number;
	j->deadline_ms = clock_wall_ms() + s->cfg.phase_timeout_s * 1000;
	/* Try 1 of its first call is on record with the lease (session_prepare). */
	j->ann = store_drain_reserving(s->sd) ? 1 : -1;
	return 0;
}

/* Arm the deadline of w's lease. The worker ends the attempt itself at the deadline and
 * reports why; the supervisor steps in only if that report does not come. */
static void lease_arm(struct sup *s, struct worker *w)
{
	w->lease.armed_ms = uv_now(s->loop);
	w->lease.armed_lag = lag_note(s);
	uv_timer_start(&w->phase_timer, lease_deadline_cb,
	    (uint64_t)s->cfg.phase_timeout_s * 1000 + DEADLINE_GRACE_MS, 0);
}

/* Hand a durable grant to its worker: the job, then the deadline. A worker that ended
 * (or whose lease was ended) while the commit was made durable gets nothing: its exit
 * closed the attempt. A job that breaks a limit of the job message or cannot be encoded
 * ends the attempt as failed with INVALID_JOB (the phase is then FAILED), and the worker,
 * which saw nothing, stays idle; a worker that cannot be written to is killed, and its
 * exit ends the lease. */
static void lease_start(struct sup *s, const struct grant *g)
{
	struct proto_msg m = { .type = PROTO_JOB };
	struct worker *w = worker_find(s, g->worker_id);
	struct log_about about;
	struct proto_err perr;
	struct store_err err;
	int rc;

	if (w == NULL || w->lease.attempt_id != g->attempt_id)
		return;
	w->lease.started_ms = clock_mono_ms();
	rc = lease_job(s, g, &m.u.job, &err);
	if (rc == 0 && (rc = worker_send(w, &m, &perr)) != 0) {
		snprintf(err.text, sizeof err.text, "the job cannot be encoded: %s", perr.text);
		/* Not an encoding failure: the worker is killed, and its exit ends the lease. */
		if (w->chan.closing)
			rc = 0;
	}
	/* The job only borrowed its strings: nothing to free. */
	if (rc != 0) {
		log_error("attempt %llu: %s", (unsigned long long)g->attempt_id, err.text);
		/* The worker never took the job: it is idle again (and retired if a stop comes
		 * of this end). */
		w->state = W_IDLE;
		lease_close(s, w, OUTCOME_FAILED, REASON_INVALID_JOB, err.text, NULL);
		worker_idle_push(w);
		lease_kick(s);
		return;
	}
	w->lease.sent = true;
	w->lease.ann_first = m.u.job.ann == 1 && !m.u.job.dry_run;
	lease_arm(s, w);
	about = worker_about(w);
	log_about(LOG_DEBUG, &about,
	    "%s/%s attempt %llu: sent to worker %d (pid %d) as the phase's attempt %lld",
	    g->r->run_id, g->p->phase_id, (unsigned long long)g->attempt_id, w->id, (int)w->pid,
	    (long long)g->attempt_number);
	lease_queue(s, w);
}

/* The attempts the batch still allows in this round (--batch-size; with several
 * supervisors the session's, as last read), less the round's leases so far. */
static int64_t lease_left(const struct sup *s)
{
	if (s->cfg.batch_size <= 0)
		return INT64_MAX;
	return s->cfg.batch_size - s->started - (int64_t)s->ngrants;
}

/* Whether dispatch is held: paused by the operator, the breaker tripped, or stopping. */
static bool lease_dispatch_held(const struct sup *s)
{
	return s->paused || s->crash_loop || s->stopping;
}

/* Whether a round opens leases: dispatch is not held, a run is ready, the batch is not
 * spent (when it is, with nothing in flight, the drain stops; with several supervisors,
 * whether or not a run is ready here, as the session's batch is), and a worker is idle or
 * fewer than half of the leases wanted ahead wait; with `due` (the round's transaction
 * commits queued writes anyway), fewer than all of them. A worker that ends a phase takes
 * a lease opened ahead, so most ends make no round of their own: they commit with the
 * window, and the leases ahead are topped up with that commit or once half are taken. */
static bool lease_want(struct sup *s, bool due)
{
	int64_t target;

	if (lease_dispatch_held(s) || s->writes_off || (s->nready == 0 && s->fleet_id == 0))
		return false;
	if (s->cfg.batch_size > 0 && s->started >= s->cfg.batch_size) {
		if (s->in_flight == 0)
			lifecycle_stop_for(s, STOP_GRACEFUL, STOP_CAUSE_POLICY,
			    "batch size %lld reached (--batch-size)", (long long)s->cfg.batch_size);
		return false;
	}
	if (s->nready == 0)
		return false;
	if (s->idle != NULL)
		return true;
	target = lease_ahead_target(s);
	return (int64_t)s->nahead < (due ? target : (target + 1) / 2);
}

/* Take the claim of staged grant g: a lease, or its run dropped, parked or released. */
static void lease_claimed(struct sup *s, struct grant *g, const struct drain_claim *c)
{
	if (c->rc == STORE_EINVAL) {
		/* No longer eligible (changed by a control command or, with several
		 * supervisors, by another one): drop it. */
		if (s->fleet_id > 0)
			log_debug("%s", c->err.text);
		else
			log_warn("%s", c->err.text);
		sched_drop_head(s, g->r);
		if (g->w != NULL)
			worker_idle_push(g->w);
	} else if (c->rc == STORE_ESPENT) {
		/* The session's batch is spent (the count just read says so): the run waits,
		 * and the next look at the batch stops the drain. */
		log_debug("%s", c->err.text);
		sched_release(s, g->r);
		if (g->w != NULL)
			worker_idle_push(g->w);
		lease_kick(s);
	} else if (c->rc == STORE_EBUSY) {
		/* Another supervisor holds the run: leave it until the next refresh. */
		log_debug("%s", c->err.text);
		sched_park(s, g->r);
		if (g->w != NULL)
			worker_idle_push(g->w);
	} else {
		g->attempt_id = c->attempt_id;
		g->attempt_number = c->attempt_number;
		g->p = sched_take(s, g->r);
		s->grants[s->ngrants++] = *g;
	}
}

/* Lease the head phases of up to `most` best ready runs, to idle workers or, with
 * `ahead`, to none yet, in one claim of the store (staged after the grants made). Returns
 * 0, or a store error (the batch's runs and workers are then released). */
static int lease_open_batch(struct sup *s, int64_t most, bool ahead, struct store_err *err)
{
	struct drain_claim *c = NULL;
	struct worker *w = NULL;
	size_t n = 0, cap = 0;
	int rc;

#ifdef AUTOPACK_MUTANT_claim_per_phase
	most = 1;
#endif
	while ((int64_t)n < most && s->nready > 0 && (ahead || (w = worker_idle_pop(s)) != NULL)) {
		struct grant *g;

		if (s->ngrants + n == s->grants_cap) {
			s->grants_cap = s->grants_cap != 0 ? s->grants_cap * 2 : 16;
			s->grants = xrealloc(s->grants, s->grants_cap * sizeof *s->grants);
		}
		g = &s->grants[s->ngrants + n];
		*g = (struct grant){ .w = w, .r = sched_pop(s) };
		if (n == cap) {
			cap = cap != 0 ? cap * 2 : 8;
			c = xrealloc(c, cap * sizeof *c);
		}
		c[n++] = (struct drain_claim){ .run_id = g->r->run_id,
			.phase_id = g->r->head->phase_id,
			.phase_row = g->r->head->row,
			.worker_pid = w != NULL ? w->pid : 0 };
	}
	rc = store_drain_attempts_open(s->sd, c, n, s->session_id, s->cfg.dry_run, err);
	/* Several supervisors: the claim counted the session's attempts, this round's
	 * leases so far among them (lease_taken adds the round's at its commit). */
	if (rc == 0 && s->fleet_id > 0 && store_fleet_claimed_started(s->sd) >= 0)
		s->started = store_fleet_claimed_started(s->sd) - (int64_t)s->ngrants;
	for (size_t i = 0, base = s->ngrants; i < n; i++) {
		struct grant g = s->grants[base + i];

		if (rc != 0) {
			sched_release(s, g.r);
			if (g.w != NULL)
				worker_idle_push(g.w);
		} else {
			lease_claimed(s, &g, &c[i]);
		}
	}
	free(c);
	return rc;
}

/* Inside the round's transaction, lease the best ready runs' head phases to idle workers
 * (within the batch), claimed together: O(log runs) each. A phase no longer eligible is
 * dropped. Returns 0, or a store error (the round is then rolled back and lease_undo
 * called). */
static int lease_open(struct sup *s, struct store_err *err)
{
	int64_t ahead;
	int rc = 0;

	assert(s->ngrants == 0);
	while (rc == 0 && lease_left(s) > 0 && s->nready > 0 && s->idle != NULL)
		rc = lease_open_batch(s, lease_left(s), false, err);
	/* With every idle worker served, the leases to open ahead. */
	ahead = lease_ahead_target(s) - (int64_t)s->nahead;
	if (ahead > lease_left(s))
		ahead = lease_left(s);
	if (rc == 0 && ahead > 0 && s->nready > 0)
		rc = lease_open_batch(s, ahead, true, err);
	return rc;
}

/* Make grant g worker w's lease (busy). */
static void lease_bind(struct worker *w, struct grant *g)
{
	g->worker_id = w->id;
	w->state = W_BUSY;
	w->lease = (struct lease){ .attempt_id = g->attempt_id,
		.run = g->r,
		.phase = g->p,
		.attempt_number = g->attempt_number,
		.started_ms = clock_mono_ms() };
}

/* The round committed: each lease is its worker's (busy, in flight) at once, so a stop,
 * a cancel or the worker's exit ends it as any lease, while the commit is made durable; a
 * lease opened ahead joins the leases waiting for a worker. */
static void lease_taken(struct sup *s, struct grant *grants, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct grant *g = &grants[i];

		s->in_flight++;
		s->started++;
		s->n.dispatched++;
		g->p->attempts++;
		if (g->w != NULL) {
			lease_bind(g->w, g);
			continue;
		}
		g->worker_id = 0;
		g->durable = false;
		if (s->nahead == s->ahead_cap) {
			s->ahead_cap = s->ahead_cap != 0 ? s->ahead_cap * 2 : 16;
			s->ahead = xrealloc(s->ahead, s->ahead_cap * sizeof *s->ahead);
		}
		s->ahead[s->nahead++] = *g;
	}
}

/* The round's commit is durable: each lease's worker gets its job; the leases opened
 * ahead may go out, first to the workers idle now. */
static void lease_granted(struct sup *s, const struct grant *grants, size_t n)
{
	struct worker *w;

	for (size_t i = 0; i < n; i++) {
		if (grants[i].worker_id != 0) {
			lease_start(s, &grants[i]);
			continue;
		}
		/* Still waiting unless a stop or a cancel ended it meanwhile (the round's are
		 * among the newest). */
		for (size_t j = s->nahead; j-- > 0;)
			if (s->ahead[j].attempt_id == grants[i].attempt_id) {
				s->ahead[j].durable = true;
				break;
			}
	}
	while (s->nahead > 0 && s->ahead[0].durable && (w = worker_idle_pop(s)) != NULL)
		if (!lease_ahead_take(s, w))
			worker_idle_push(w);
	/* With no worker idle, each busy one gets its next job behind its lease. */
	for (w = s->workers; w != NULL && s->nahead > 0 && s->ahead[0].durable; w = w->next)
		lease_queue(s, w);
}

void lease_worker_gone(struct worker *w)
{
	struct sup *s = w->sup;

	for (size_t i = 0; i < s->ngrants; i++)
		if (s->grants[i].w == w)
			s->grants[i].w = NULL;
}

/* The round rolled back: its leases are undone in memory too. */
static void lease_undo(struct sup *s)
{
	for (size_t i = 0; i < s->ngrants; i++) {
		sched_requeue(s, s->grants[i].r, s->grants[i].p);
		sched_release(s, s->grants[i].r);
		if (s->grants[i].w != NULL)
			worker_idle_push(s->grants[i].w);
	}
	s->ngrants = 0;
}

/* Check a frame's database and attempt against w's lease; count and log a refusal. */
bool lease_fenced(struct worker *w, const char *uuid, uint64_t att, const char *what)
{
	struct sup *s = w->sup;

#ifdef AUTOPACK_MUTANT_foreign_uuid_accepted
	uuid = s->st->uuid;
#endif
	if (strcmp(uuid, s->st->uuid) != 0 && !(att == 0 && uuid[0] == '\0')) {
		s->n.rejected_uuid++;
		log_error("REJECTED %s from worker %d: database uuid %s is not this database's %s"
		          " (%s)",
		    what, w->id, uuid, s->st->uuid, s->st->url);
		return false;
	}
#ifdef AUTOPACK_MUTANT_stale_attempt_accepted
	att = w->lease.attempt_id;
#endif
	if (att != w->lease.attempt_id) {
		s->n.rejected_stale++;
		log_warn("rejected %s from worker %d: attempt %llu is not its current attempt %llu",
		    what, w->id, (unsigned long long)att, (unsigned long long)w->lease.attempt_id);
		return false;
	}
	return true;
}

/* Copy a worker's log event into the supervisor's log, at the level it names (info when
 * it names none the log knows). */
static void lease_log_event(struct worker *w, const struct proto_log *e)
{
	struct log_about about = worker_about(w);
	enum log_level level = LOG_INFO;

	log_level_parse(e->level, &level);
	log_about(level, &about, "%s/%s attempt %llu: %s", about.run, about.phase,
	    (unsigned long long)about.attempt, e->message);
}

/* Fence an event, note its seq, and queue it to be committed and acknowledged. */
void lease_event(struct worker *w, struct proto_event *ev)
{
	struct lease *l = &w->lease;
	bool fresh, unawaited = false;

	if (w->state != W_BUSY) {
		w->sup->n.rejected_stale++;
		log_warn("rejected event from idle worker %d (attempt %llu)", w->id,
		    (unsigned long long)ev->attempt_id);
		return;
	}
	if (!lease_fenced(w, ev->db_uuid, ev->attempt_id, "event"))
		return;
	fresh = ev->seq > l->seq_max;
	/* The worker sends try 1 of its first call without waiting for this ack. */
	if (ev->kind == PROTO_EV_LLM_REQUEST && fresh) {
		unawaited = l->ann_first && ev->body.request.try_number == 1;
		l->ann_first = false;
	}
	if (ev->seq > l->seq_max + 1)
		l->seq_missing += ev->seq - l->seq_max - 1;
	if (ev->seq > l->seq_max)
		l->seq_max = ev->seq;
	if (ev->kind == PROTO_EV_TOKEN_ESTIMATION) {
		l->v2++;
		l->samples += ev->body.est.success && !ev->body.est.truncated;
	}
	if (ev->kind == PROTO_EV_LOG)
		lease_log_event(w, &ev->body.log);
	/* A seq seen before is a duplicate the database keeps only once: not a new call. */
	if (ev->kind == PROTO_EV_LLM_USAGE && fresh)
		pool_key_refused(w, &ev->body.usage);
	writer_event(w->sup, w, l->run->run_id, l->phase->phase_id, ev, unawaited);
}

/* Count a result in the window that sizes the leases opened ahead. */
static void lease_ahead_note(struct sup *s)
{
	uint64_t now = uv_now(s->loop);

	if (now - s->ahead_window_ms >= LEASE_AHEAD_WINDOW_MS) {
		/* A window with no result since the last one means no rate at all. */
		s->ahead_rate = now - s->ahead_window_ms < 2 * LEASE_AHEAD_WINDOW_MS ?
		    s->ahead_window_n :
		    0;
		s->ahead_window_ms = now;
		s->ahead_window_n = 0;
	}
	s->ahead_window_n++;
}

/* Compare a result's final seq with the events received; record a gap as an error: in
 * the log, in the events_missing counter, and as an error event (seq 0) of the attempt. */
static void lease_check_seq(struct worker *w, uint64_t final_seq)
{
	struct lease *l = &w->lease;
	uint64_t missing = l->seq_missing + (final_seq > l->seq_max ? final_seq - l->seq_max : 0);
	struct proto_event ev = { .attempt_id = l->attempt_id, .kind = PROTO_EV_LOG };

	if (missing == 0 && l->seq_max <= final_seq)
		return;
	w->sup->n.events_missing += missing;
	ev.body.log.level = xstrdup("error");
	ev.body.log.message = xasprintf("telemetry gap: the result's final seq is %llu, events"
	                                " up to seq %llu arrived, %llu missing",
	    (unsigned long long)final_seq, (unsigned long long)l->seq_max,
	    (unsigned long long)missing);
	log_error("attempt %llu (worker %d): %s", (unsigned long long)l->attempt_id, w->id,
	    ev.body.log.message);
	ev.db_uuid = xstrdup(w->sup->st->uuid);
	writer_event(w->sup, NULL, l->run->run_id, l->phase->phase_id, &ev, false);
}

/* Fence and check a result, then end the lease with it. A result that comes after the
 * operator's cancel of its attempt was taken (the worker sent it before the cancel reached
 * it) does not undo the cancel the operator was told of: the attempt ends cancelled, its
 * phase SKIPPED, and the result is named in its message and the log. */
bool lease_result(struct worker *w, struct proto_result *r)
{
	enum outcome outcome = outcome_parse(r->outcome);
	enum reason reason = reason_parse(r->failure_reason);
	bool zy_known = r->zero_yield_reason == NULL ||
	    zero_yield_parse(r->zero_yield_reason) != ZERO_YIELD_NONE;

	if (w->state != W_BUSY) {
		w->sup->n.rejected_stale++;
		return false;
	}
	if (!lease_fenced(w, r->db_uuid, r->attempt_id, "result"))
		return false;
	if (!outcome_reportable(outcome) || (r->failure_reason != NULL && reason == REASON_NONE) ||
	    !zy_known) {
		log_error(
		    "worker %d sent a result (outcome \"%s\", failure reason \"%s\", zero-yield"
		    " reason \"%s\") with a value outside the vocabulary; killing it",
		    w->id, r->outcome, r->failure_reason != NULL ? r->failure_reason : "",
		    r->zero_yield_reason != NULL ? r->zero_yield_reason : "");
		worker_kill(w, SIGKILL);
		return false;
	}
	lease_check_seq(w, r->final_seq);
	lease_ahead_note(w->sup);
	uv_timer_stop(&w->phase_timer);
#ifndef AUTOPACK_MUTANT_result_after_cancel_taken
	if (w->lease.end_outcome == OUTCOME_CANCELLED) {
		char msg[200];

		/* The SIGTERM sent with the cancel ends the worker, as any cancel does. */
		snprintf(msg, sizeof msg,
		    "cancelled by the operator; worker pid %d sent its result (%s) after the cancel"
		    " was taken: not used",
		    (int)w->pid, outcome_name(outcome));
		lease_close(
		    w->sup, w, OUTCOME_CANCELLED, outcome_reason(OUTCOME_CANCELLED), msg, NULL);
		return true;
	}
#endif
	lease_close(w->sup, w, outcome, reason, r->message, r);
	return true;
}

/* End the lease of a worker whose process ended, as what the supervisor saw. A worker
 * whose check command a stop signal from outside killed ends as stopped while the
 * supervisor stops (the same signal reached it), else as an infrastructure failure; one
 * killed for a malformed frame says which field was wrong and how. */
enum outcome lease_abort(struct worker *w, int64_t status, int sig)
{
	struct sup *s = w->sup;
	bool interrupted = sig == 0 && status == PROTO_WORKER_EXIT_INTERRUPTED;
	enum outcome outcome = w->lease.end_outcome != OUTCOME_NONE ? w->lease.end_outcome :
	    s->stopping == STOP_NOW || (interrupted && s->stopping) ? OUTCOME_SUPERVISOR_STOPPED :
	                                                              OUTCOME_WORKER_CRASHED;
	char msg[640], cause[200];

	if (w->bad_channel != NULL && !interrupted)
		snprintf(msg, sizeof msg, "worker pid %d killed: bad channel: %s", (int)w->pid,
		    w->bad_channel);
	else if (interrupted)
		snprintf(msg, sizeof msg,
		    "worker pid %d ended: its check command was killed by a stop signal from"
		    " outside (status %d)",
		    (int)w->pid, PROTO_WORKER_EXIT_INTERRUPTED);
	else
		snprintf(msg, sizeof msg, "worker pid %d ended: status %lld, signal %d%s",
		    (int)w->pid, (long long)status, sig,
		    cpulimit_signal_cause(w, sig, cause, sizeof cause));
	lease_close(s, w, outcome, outcome_reason(outcome), msg, NULL);
	return outcome;
}

/* Ask a busy worker to drop its attempt, and make sure it does (worker_kill: SIGKILL
 * after the grace period). */
void lease_cancel(struct worker *w)
{
	struct proto_msg m = { .type = PROTO_CANCEL };

	m.u.cancel.attempt_id = w->lease.attempt_id;
	w->lease.end_outcome = OUTCOME_CANCELLED;
	uv_timer_stop(&w->phase_timer);
	worker_send(w, &m, NULL);
	worker_kill(w, SIGTERM);
}

/* Find the worker leasing (run, phase). */
struct worker *lease_find(struct sup *s, const char *run_id, const char *phase_id)
{
	struct worker *w;

	for (w = s->workers; w != NULL; w = w->next)
		if (w->lease.attempt_id != 0 && strcmp(w->lease.run->run_id, run_id) == 0 &&
		    strcmp(w->lease.phase->phase_id, phase_id) == 0)
			return w;
	return NULL;
}

/* The workers leases are opened for: those live, at most the pool's target. */
static int64_t lease_pool_size(const struct sup *s)
{
	return s->live < s->target ? s->live : s->target;
}

/* Results in a window: in the last whole one, or in the one under way once it has more
 * (the drain's first phases do not wait a whole window); none when the last whole window
 * is over by another. */
static int64_t lease_window_rate(const struct sup *s)
{
	uint64_t age = uv_now(s->loop) - s->ahead_window_ms;

	if (age >= 2 * LEASE_AHEAD_WINDOW_MS)
		return 0;
	if (age < LEASE_AHEAD_WINDOW_MS && s->ahead_window_n > s->ahead_rate)
		return s->ahead_window_n;
	return s->ahead_rate;
}

/* How many leases to keep opened ahead: as many as results arrived in LEASE_AHEAD_MS of
 * a window (none when phases are slow), at most LEASE_AHEAD_PER_WORKER per live worker and
 * LEASE_AHEAD_MAX. While phases are short, the results of
 * LEASE_AHEAD_SHORT_MS, at most LEASE_AHEAD_SHORT_PER_WORKER per worker and
 * LEASE_AHEAD_SHORT_MAX: a lease opened in a commit goes out once the fsync after that
 * commit ends (one or two fsyncs later), so the leases waiting must last that long or the
 * workers wait for the disk, and with fewer results the window holds fewer leases. */
static int64_t lease_ahead_target(const struct sup *s)
{
	bool fast = lease_phases_short(s);
	int64_t want = lease_window_rate(s) * (fast ? LEASE_AHEAD_SHORT_MS : LEASE_AHEAD_MS) /
	    LEASE_AHEAD_WINDOW_MS;
	int64_t workers = lease_pool_size(s);
	int64_t per_worker = fast ? LEASE_AHEAD_SHORT_PER_WORKER : LEASE_AHEAD_PER_WORKER;
	int64_t most = fast ? LEASE_AHEAD_SHORT_MAX : LEASE_AHEAD_MAX;

#ifdef AUTOPACK_MUTANT_no_lease_ahead
	return 0;
#endif
	if (want > workers * per_worker)
		want = workers * per_worker;
	if (want > most)
		want = most;
	return want;
}

bool lease_phases_short(const struct sup *s)
{
	int64_t workers = lease_pool_size(s);

	return workers > 0 &&
	    lease_window_rate(s) * PHASE_SHORT_MS >= workers * LEASE_AHEAD_WINDOW_MS;
}

/* Whether worker w (NULL: none), ending its phase now, has its next job waiting while
 * dispatch is not held: one queued behind its lease, or a durable lease opened ahead first
 * in line. Its end need not make a round of its own. */
static bool lease_next_waits(const struct sup *s, const struct worker *w)
{
	if (lease_dispatch_held(s))
		return false;
	return (w != NULL && w->queued.attempt_id != 0 && !w->queued_cancelled) ||
	    (s->nahead > 0 && s->ahead[0].durable);
}

bool lease_ahead_covers(const struct sup *s)
{
	int64_t workers = lease_pool_size(s);
	size_t n = 0;

	if (s->idle != NULL || workers <= 0 || lease_dispatch_held(s))
		return false;
	workers -= s->nqueued; /* those go on to the job they hold */
	while (n < s->nahead && s->ahead[n].durable && (int64_t)n < workers)
		n++;
	return (int64_t)n >= workers;
}

/* Take lease i off the leases opened ahead. */
static struct grant lease_ahead_remove(struct sup *s, size_t i)
{
	struct grant g = s->ahead[i];

	memmove(&s->ahead[i], &s->ahead[i + 1], (s->nahead - i - 1) * sizeof *s->ahead);
	s->nahead--;
	return g;
}

/* End a lease opened ahead that no worker took, with `outcome`: judged by no drain rule,
 * its phase back in its run's queue (or, cancelled, out of it). */
static void lease_ahead_end(struct sup *s, struct grant *g, enum outcome outcome, const char *why)
{
	/* No worker had the job: it made no LLM try (its first one's reserved row goes). */
	struct drain_close c = {
		.outcome = outcome, .reason = outcome_reason(outcome), .tries_announced = true
	};
	char msg[160];

	snprintf(msg, sizeof msg, "not started: %s", why);
	c.message = msg;
	log_info("%s/%s attempt %llu: %s", g->r->run_id, g->p->phase_id,
	    (unsigned long long)g->attempt_id, msg);
	c.phase_state = sched_next_state(s, g->p, outcome);
	/* Not one of the attempts --batch-size counts. */
	s->started--;
	lease_write_end(s, NULL, g->attempt_id, &c, g->r, g->p, c.phase_state == PHASE_QUEUED);
}

/* Whether a durable lease opened ahead is first, once those whose run the drain rules
 * stopped meanwhile are ended (such a run starts nothing more). */
static bool lease_ahead_ready(struct sup *s)
{
	while (s->nahead > 0 && s->ahead[0].durable && s->ahead[0].r->skipped) {
		struct grant g = lease_ahead_remove(s, 0);

		lease_ahead_end(s, &g, OUTCOME_SUPERVISOR_STOPPED,
		    "its run was stopped before a worker was free");
	}
	return s->nahead > 0 && s->ahead[0].durable;
}

bool lease_ahead_take(struct sup *s, struct worker *w)
{
	struct grant g;

	if (lease_dispatch_held(s) || !lease_ahead_ready(s))
		return false;
	g = lease_ahead_remove(s, 0);
	lease_bind(w, &g);
	log_debug("%s/%s attempt %llu: opened ahead, taken by worker %d", g.r->run_id,
	    g.p->phase_id, (unsigned long long)g.attempt_id, w->id);
	lease_start(s, &g);
	lease_kick(s);
	return true;
}

void lease_ahead_release(struct sup *s, enum outcome outcome, const char *why)
{
	while (s->nahead > 0) {
		struct grant g = lease_ahead_remove(s, 0);

		lease_ahead_end(s, &g, outcome, why);
	}
}

uint64_t lease_ahead_cancel(struct sup *s, const char *run_id, const char *phase_id)
{
	for (size_t i = 0; i < s->nahead; i++) {
		if (strcmp(s->ahead[i].r->run_id, run_id) == 0 &&
		    strcmp(s->ahead[i].p->phase_id, phase_id) == 0) {
			struct grant g = lease_ahead_remove(s, i);

			lease_ahead_end(s, &g, OUTCOME_CANCELLED, "cancelled by the operator");
			return g.attempt_id;
		}
	}
	return 0;
}

/* Send w the job of the first durable lease opened ahead, to run once its lease ends
 * (the worker holds it; its deadline is armed then): only while no worker is idle, to a
 * busy worker that holds none yet and is not to retire or be stopped, and while dispatch
 * goes on. A lease whose job breaks a limit of the job message, or cannot be encoded, is
 * left to the next worker that frees up, which ends it as lease_start does; a worker that
 * cannot be written to is killed, and its exit ends its lease. */
static void lease_queue(struct sup *s, struct worker *w)
{
	struct proto_msg m = { .type = PROTO_JOB };
	struct store_err err;
	struct proto_err perr;
	struct grant g;
	bool ready;

	if (s->cfg.worker_jobs < 2 || w->state != W_BUSY || w->queued.attempt_id != 0 ||
	    !w->lease.sent || w->retire || w->killed || w->lease.end_outcome != OUTCOME_NONE ||
	    s->idle != NULL || lease_dispatch_held(s))
		return;
	ready = lease_ahead_ready(s);
#ifdef AUTOPACK_MUTANT_queued_before_durable
	ready = s->nahead > 0;
#endif
	if (!ready || lease_job(s, &s->ahead[0], &m.u.job, &err) != 0 ||
	    worker_send(w, &m, &perr) != 0)
		return;
	g = lease_ahead_remove(s, 0);
	g.worker_id = w->id;
	w->queued = g;
	s->nqueued++;
	w->queued_ann = m.u.job.ann == 1 && !m.u.job.dry_run;
	log_debug("%s/%s attempt %llu: opened ahead, queued on worker %d behind attempt %llu",
	    g.r->run_id, g.p->phase_id, (unsigned long long)g.attempt_id, w->id,
	    (unsigned long long)w->lease.attempt_id);
	lease_kick(s);
}

bool lease_queued_take(struct worker *w)
{
	struct sup *s = w->sup;
	struct grant g = w->queued;

	if (g.attempt_id == 0)
		return false;
	w->queued = (struct grant){ 0 };
	s->nqueued--;
	lease_bind(w, &g);
	w->lease.sent = true;
	w->lease.ann_first = w->queued_ann;
	/* Cancelled while queued: the worker dropped it or, had it started, is leaving; its
	 * exit ends the attempt as cancelled either way. */
	if (w->queued_cancelled) {
		w->queued_cancelled = false;
		lease_cancel(w);
		return true;
	}
	lease_arm(s, w);
	log_debug("%s/%s attempt %llu: run by worker %d after its attempt before", g.r->run_id,
	    g.p->phase_id, (unsigned long long)g.attempt_id, w->id);
	lease_queue(s, w);
	return true;
}

uint64_t lease_queued_cancel(struct sup *s, const char *run_id, const char *phase_id)
{
	struct proto_msg m = { .type = PROTO_CANCEL };

#ifdef AUTOPACK_MUTANT_queued_cancel_missed
	return 0;
#endif
	for (struct worker *w = s->workers; w != NULL; w = w->next) {
		struct grant *g = &w->queued;

		if (g->attempt_id == 0 || w->queued_cancelled ||
		    strcmp(g->r->run_id, run_id) != 0 || strcmp(g->p->phase_id, phase_id) != 0)
			continue;
		w->queued_cancelled = true;
		m.u.cancel.attempt_id = g->attempt_id;
		worker_send(w, &m, NULL);
		return g->attempt_id;
	}
	return 0;
}

void lease_queued_end(struct worker *w, const char *why)
{
	struct grant g = w->queued;
	bool cancelled = w->queued_cancelled;

	if (g.attempt_id == 0)
		return;
	w->queued = (struct grant){ 0 };
	w->sup->nqueued--;
	w->queued_cancelled = false;
	lease_ahead_end(w->sup, &g, cancelled ? OUTCOME_CANCELLED : OUTCOME_SUPERVISOR_STOPPED,
	    cancelled ? "cancelled by the operator" : why);
}
