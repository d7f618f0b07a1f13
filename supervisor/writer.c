/* The single writer: events and attempt ends are queued and committed together in one
 * BEGIN IMMEDIATE transaction when the queue reaches cfg.commit_max or cfg.commit_window_ms
 * after the first queued write, whichever comes first. Acknowledgements go out only after
 * the commit. A failed commit rolls back, keeps the queue and retries; in-memory effects
 * (requeue, run release) are applied only after a commit succeeds. */
#include "supervisor/sup.h"
#include "common/fingerprint/fingerprint.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

#define COMMIT_RETRY_MS 200
#define COMMIT_MAX_FAILURES 50

static void writer_timer_cb(uv_timer_t *t);

void writer_init(struct sup *s)
{
	uv_timer_init(s->loop, &s->commit_timer);
	s->commit_timer.data = s;
}

/* Queue an op and arrange for the commit. */
static void writer_push(struct sup *s, struct op *o)
{
	if (s->ops_tail != NULL)
		s->ops_tail->next = o;
	else
		s->ops_head = o;
	s->ops_tail = o;
	s->ops_n++;
	if (s->ops_n >= s->cfg.commit_max) {
		writer_flush(s);
	} else if (!s->commit_armed) {
		s->commit_armed = true;
		uv_timer_start(
		    &s->commit_timer, writer_timer_cb, (uint64_t)s->cfg.commit_window_ms, 0);
	}
}

void writer_event(struct sup *s, struct worker *w, struct proto_event *ev)
{
	struct op *o = xcalloc(1, sizeof *o);

	o->kind = OP_EVENT;
	o->worker_id = w->id;
	o->run_id = xstrdup(w->run->run_id);
	o->phase_id = xstrdup(w->phase->phase_id);
	o->ev = *ev;
	memset(ev, 0, sizeof *ev); /* the op owns the strings now */
	if (o->ev.kind == PROTO_EV_TOKEN_ESTIMATION) {
		w->lease_v2++;
		w->lease_samples += o->ev.body.est.success && !o->ev.body.est.truncated;
	}
	writer_push(s, o);
}

/* Heap copy of a nullable string, remembered in the op for freeing. */
static const char *op_str(struct op *o, int i, const char *v)
{
	o->strs[i] = v != NULL ? xstrdup(v) : NULL;
	return o->strs[i];
}

void writer_close_attempt(struct sup *s, struct worker *w, enum outcome outcome, enum reason reason,
    const char *message, const struct proto_result *r)
{
	struct op *o = xcalloc(1, sizeof *o);
	enum phase_state state;

	o->kind = OP_CLOSE;
	o->worker_id = w->id;
	o->attempt_id = w->attempt_id;
	o->run = w->run;
	o->close.outcome = outcome;
	o->close.reason = reason;
	o->close.message = op_str(o, 2, message);
	if (r != NULL) {
		o->close.fingerprint = op_str(o, 3, r->fingerprint);
		o->close.zero_yield = zero_yield_parse(r->zero_yield_reason);
		o->close.reached_llm_boundary = r->reached_llm_boundary;
		o->close.duration_ms = r->duration_ms;
	} else {
		/* The supervisor saw the attempt end (crash, deadline, stop): it judges it by the
		 * rules the worker uses, from what it knows. */
		struct fp_yield y = { .samples = (int)w->lease_samples,
			.timed_out = outcome == OUTCOME_TIMEOUT,
			.has_rc = true,
			.rc = 1 };
		char fp[320];

		o->close.duration_ms = (int64_t)(clock_mono_ms() - w->lease_ms);
		if (fp_attempt(outcome, reason, message, fp, sizeof fp) > 0)
			o->close.fingerprint = op_str(o, 3, fp);
		o->close.zero_yield = fp_zero_yield_reason(&y);
	}
	log_msg(outcome == OUTCOME_DRY_RUN ? LOG_DEBUG : LOG_INFO,
	    "[%s] %s/%s attempt %llu: %s%s%s (%lld token-estimation event(s), %.1f s)",
	    outcome_ok(outcome) ? "OK" : "FAIL", w->run->run_id, w->phase->phase_id,
	    (unsigned long long)w->attempt_id, outcome_name(outcome),
	    reason != REASON_NONE ? ": " : "", reason != REASON_NONE ? reason_name(reason) : "",
	    (long long)w->lease_v2, (double)o->close.duration_ms / 1000.0);
	state = sched_next_state(s, w->phase, outcome);
	o->close.phase_state = state;
	policy_result(s, w->run, outcome, o->close.fingerprint, w->lease_v2);
	if (state == PHASE_QUEUED) {
		o->requeue = w->phase;
		o->requeue->bucket = policy_bucket(reason_name(reason));
	} else {
		free(w->phase->phase_id);
		free(w->phase);
	}
	w->attempt_id = 0;
	w->run = NULL;
	w->phase = NULL;
	s->n.results++;
	writer_push(s, o);
}

void writer_control_log(struct sup *s, int64_t peer_pid, int64_t peer_uid, const char *command,
    const char *args, bool ok, const char *result)
{
	struct op *o = xcalloc(1, sizeof *o);

	o->kind = OP_CTLLOG;
	o->peer_pid = peer_pid;
	o->peer_uid = peer_uid;
	o->ok = ok;
	op_str(o, 0, command);
	op_str(o, 1, args);
	op_str(o, 2, result);
	writer_push(s, o);
}

/* Release what an op owns. */
static void op_free(struct op *o)
{
	int i;

	free(o->run_id);
	free(o->phase_id);
	if (o->kind == OP_EVENT) {
		struct proto_msg m = { .type = PROTO_EVENT };
		m.u.event = o->ev;
		proto_msg_free(&m);
	}
	for (i = 0; i < (int)ARRAY_SIZE(o->strs); i++)
		free(o->strs[i]);
	free(o);
}

/* Apply one op inside the open transaction. */
static int op_apply(struct sup *s, struct op *o, struct store_err *err)
{
	bool flag = false;
	int rc;

	if (o->kind == OP_CTLLOG)
		return store_drain_control_log(s->sd, o->peer_pid, o->peer_uid, o->strs[0],
		    o->strs[1], o->ok, o->strs[2], err);
	if (o->kind == OP_EVENT) {
		struct drain_event row;

		convert_event_to_row(&o->ev, &row);
		rc = store_drain_event_insert(s->sd, o->run_id, o->phase_id, &row, &flag, err);
		if (rc == 0 && flag)
			s->n.events_duplicate++;
		else if (rc == 0)
			s->n.events_committed++;
		return rc;
	}
	rc = store_drain_attempt_close(s->sd, o->attempt_id, &o->close, &flag, err);
	if (rc == 0 && flag)
		log_warn("attempt %llu was already closed; its end (%s) is not recorded",
		    (unsigned long long)o->attempt_id, outcome_name(o->close.outcome));
	return rc;
}

/* Send one ack per (worker, attempt) for the highest committed seq. */
static void writer_ack(struct sup *s, struct op *head)
{
	struct op *o, *x;

	for (o = head; o != NULL; o = o->next) {
		struct proto_msg m = { .type = PROTO_ACK };
		struct worker *w;
		uint64_t seq;

		if (o->kind != OP_EVENT || o->worker_id == 0)
			continue;
		seq = o->ev.seq;
		for (x = o->next; x != NULL; x = x->next) {
			if (x->kind == OP_EVENT && x->worker_id == o->worker_id &&
			    x->ev.attempt_id == o->ev.attempt_id) {
				if (x->ev.seq > seq)
					seq = x->ev.seq;
				x->worker_id = 0;
			}
		}
		if ((w = pool_find(s, o->worker_id)) == NULL)
			continue;
		m.u.ack.attempt_id = o->ev.attempt_id;
		m.u.ack.seq = seq;
		chan_send(&w->chan, &m);
	}
}

void writer_flush(struct sup *s)
{
	struct op *head = s->ops_head, *o, *next;
	struct store_err err;

	if (s->commit_armed) {
		uv_timer_stop(&s->commit_timer);
		s->commit_armed = false;
	}
	if (head == NULL || s->store_lost)
		return;
	sup_identity_check(s);
	if (s->store_lost)
		return;
	if (store_drain_begin(s->sd, &err) != 0)
		goto fail;
	for (o = head; o != NULL; o = o->next)
		if (op_apply(s, o, &err) != 0)
			goto fail;
	if (s->pol.dirty) {
		char *state = policy_state_json(s);
		int rc = store_drain_session_state(s->sd, s->session_id, state, &err);

		free(state);
		if (rc != 0)
			goto fail;
	}
	if (store_drain_commit(s->sd, &err) != 0)
		goto fail;
	s->pol.dirty = false;
	s->n.commits++;
	s->last_commit_ms = clock_mono_ms();
	s->ops_head = s->ops_tail = NULL;
	s->ops_n = 0;
	writer_ack(s, head);
	for (o = head; o != NULL; o = next) {
		next = o->next;
		if (o->kind == OP_CLOSE) {
			s->in_flight--;
			if (o->requeue != NULL)
				sched_requeue(s, o->run, o->requeue);
			sched_release(s, o->run);
		}
		op_free(o);
	}
	sched_kick(s);
	sup_check_done(s);
	return;
fail:
	store_drain_rollback(s->sd);
	s->n.commit_failures++;
	log_error("commit of %lld writes failed: %s", (long long)s->ops_n, err.text);
	sup_identity_check(s);
	if (s->store_lost)
		return;
	if (s->n.commit_failures >= COMMIT_MAX_FAILURES) {
		log_error("giving up after %llu failed commits; stopping",
		    (unsigned long long)s->n.commit_failures);
		s->exit_code = 3;
		sup_stop(s, STOP_NOW);
		return;
	}
	s->commit_armed = true;
	uv_timer_start(&s->commit_timer, writer_timer_cb, COMMIT_RETRY_MS, 0);
}

static void writer_timer_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	s->commit_armed = false;
	writer_flush(s);
}
