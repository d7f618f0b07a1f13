/* The single writer: it queues, commits and acknowledges. Events, attempt ends and
 * control_log rows are queued and committed together in one BEGIN IMMEDIATE transaction
 * when the queue reaches cfg.commit_max or cfg.commit_window_ms after the first queued
 * write, whichever comes first, or at the end of the loop turn (a round) in which leases
 * are to be opened (lease.c: for an idle worker, or to top up those opened ahead), an
 * attempt ended whose worker takes no lease opened ahead (lease.c), or a worker said it
 * waits for acknowledgements; while
 * commits are synced off the loop and a durable lease opened ahead waits for each worker,
 * only a worker's wait ends the window early (writer_gathering). A
 * round's transaction writes the queued writes first and then the leases of the round
 * (round_hooks, lease.c): one commit, one fsync, for everything the turn produced.
 * Acknowledgements go out only after the commit, then the jobs of the new leases, and a
 * committed attempt end is handed back to its lease (the op's done callback). A write the database refuses for a constraint is isolated: the group is
 * rolled back and written again with a record of that error in its place (an error event,
 * an attempt end noting it), so the other writes commit and it is never retried. Any other
 * failed commit rolls back, keeps the queue and is retried; after COMMIT_MAX_FAILURES
 * failures in a row the supervisor writes nothing more and exits 3. A COMMIT whose answer
 * was lost with the connection to a database server may have committed, or commit later
 * (a cut network leaves the server's session alive): the group waits, whole, until,
 * connected again, the supervisor learns whether its transaction committed, ending its old
 * session first if it is still in progress (writer_settle; the row its heartbeat wrote
 * says). Committed, it is released as if the COMMIT had answered (acknowledgements, ends
 * handed back, leases to their workers) and none of it is written again; not, it is
 * retried with the queue and its leases are undone and dispatched again. */
#include "supervisor/sup.h"
#include "supervisor/observe.h"
#include "common/log.h"
#include "common/store/store_checkpoint.h"
#include "common/store/store_fleet.h"
#include "common/util.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static void writer_timer_cb(uv_timer_t *t);
static void writer_commit(struct sup *s, bool heartbeat);
static void writer_arm(struct sup *s, uint64_t ms);

/* On the checkpoints' thread, as one ends: wake the loop. */
static void writer_ckpt_ended(void *arg)
{
	struct sup *s = arg;

	uv_async_send(&s->ckpt_wake);
}

/* Back on the loop after a checkpoint of the thread's ended: a commit held for it
 * happens now. */
static void writer_ckpt_wake_cb(uv_async_t *h)
{
	writer_sync_ended(h->data);
}

/* Initialise the commit timer, the round's handle and how commits reach the disk. */
void writer_init(struct sup *s)
{
	uv_timer_init(s->loop, &s->commit_timer);
	s->commit_timer.data = s;
	uv_check_init(s->loop, &s->round_check);
	s->round_check.data = s;
	sync_init(s, writer_release);
	/* The checkpoints' thread, if any, catches up with the log while commits wait. */
	if (uv_async_init(s->loop, &s->ckpt_wake, writer_ckpt_wake_cb) == 0) {
		s->ckpt_wake.data = s;
		uv_unref((uv_handle_t *)&s->ckpt_wake);
		store_ckpt_notify(s->st, writer_ckpt_ended, s);
	}
}

/* Whether the commit is to wait for the checkpoints' thread to catch up with the log;
 * if so, it happens when the thread is done (writer_ckpt_wake_cb), or at the latest when
 * the commit timer armed here fires. */
static bool writer_ckpt_holds(struct sup *s)
{
	uint64_t ms;

	if (!store_ckpt_holding(s->st, &ms))
		return false;
	writer_arm(s, ms);
	return true;
}

/* Whether a round leaves its writes to the commit window (cfg.commit_window_ms after the
 * first, or cfg.commit_max of them) instead of committing them now: its commits are
 * synced off the loop (while phases are short, by default), the window's timer runs, no
 * worker waits for an acknowledgement, and a durable lease opened ahead waits for each
 * live worker, so no job waits for this commit. Each commit costs the loop about as much
 * as a phase: fewer, larger groups leave it more for the phases. */
static bool writer_gathering(const struct sup *s)
{
	return s->commit_armed && s->ops_n > 0 && !s->acks_waited && sync_deferring(s) &&
	    lease_ahead_covers(s);
}

/* The loop turn's I/O is done: commit its round if it has anything urgent or leases to
 * open (unless it gathers for the window), then see whether the drain is over. */
static void writer_round_cb(uv_check_t *h)
{
	struct sup *s = h->data;
	bool urgent = s->round_urgent;

	uv_check_stop(h);
	s->round_armed = false;
	s->round_urgent = false;
	if (!s->commit_retrying && ((urgent && s->ops_n > 0) || s->round.want(s, false)) &&
	    !writer_gathering(s))
		writer_flush(s);
	lifecycle_check_done(s);
}

void writer_round(struct sup *s, bool urgent)
{
	assert(s->round_check.data == s);
	s->round_urgent |= urgent;
	if (s->round_armed)
		return;
	s->round_armed = true;
	uv_check_start(&s->round_check, writer_round_cb);
}

/* Arm the commit timer for `ms`. */
static void writer_arm(struct sup *s, uint64_t ms)
{
	s->commit_armed = true;
	uv_timer_start(&s->commit_timer, writer_timer_cb, ms, 0);
}

/* Queue an op and arrange for its commit. */
static void writer_push(struct sup *s, struct op *o)
{
	if (s->ops_tail != NULL)
		s->ops_tail->next = o;
	else
		s->ops_head = o;
	s->ops_tail = o;
	s->ops_n++;
	/* Declared lost: nothing is written any more; what still comes is refused. */
	if (s->fleet_lost)
		s->n.rejected_lost++;
#ifdef AUTOPACK_MUTANT_commit_max_ignored
	if (0)
#else
	if (s->ops_n >= s->cfg.commit_max && !s->commit_retrying)
#endif
		writer_flush(s);
	else if (!s->commit_armed)
		writer_arm(s, (uint64_t)s->cfg.commit_window_ms);
}

/* Add an event of (worker_id, attempt_id) with `seq` to the acknowledgements `a` owes
 * (`unawaited`: an announcement its worker does not wait for). */
static void writer_acks_add(
    struct writer_acks *a, int worker_id, uint64_t attempt_id, uint64_t seq, bool unawaited)
{
	struct writer_ack *k = a->last < a->n ? &a->v[a->last] : NULL;

	/* A worker's events come in runs (a frame read holds many): try its pair first. */
	if (k == NULL || k->worker_id != worker_id || k->attempt_id != attempt_id) {
		for (a->last = 0; a->last < a->n; a->last++)
			if (a->v[a->last].worker_id == worker_id &&
			    a->v[a->last].attempt_id == attempt_id)
				break;
		if (a->last == a->n) {
			if (a->n == a->cap) {
				a->cap = a->cap != 0 ? 2 * a->cap : 16;
				a->v = xrealloc(a->v, a->cap * sizeof *a->v);
			}
			a->v[a->n++] = (struct writer_ack){ worker_id, attempt_id, seq, 0, true };
		}
		k = &a->v[a->last];
	}
	if (seq > k->seq)
		k->seq = seq;
	k->n++;
	k->unawaited = k->unawaited && unawaited;
}

/* Queue an event: one piece of the queue's arena holds the op, its run and phase ids and
 * the event's strings (moved out of the decoded message, which owns nothing after). */
void writer_event(struct sup *s, struct worker *ack_to, const char *run_id, const char *phase_id,
    struct proto_event *ev, bool unawaited)
{
	size_t rn = strlen(run_id) + 1, pn = strlen(phase_id) + 1;
	struct proto_strings strs;
	struct op *o;
	char *at;

	proto_event_strings(ev, &strs);
	o = op_arena_alloc(s, &s->ops_arena, sizeof *o + rn + pn + strs.bytes);
	at = (char *)(o + 1);
	o->kind = OP_EVENT;
	o->u.event.run_id = memcpy(at, run_id, rn);
	o->u.event.phase_id = memcpy(at + rn, phase_id, pn);
	proto_strings_move(&strs, at + rn + pn);
	o->u.event.wire = *ev;
	memset(ev, 0, sizeof *ev);
	convert_event_to_row(&o->u.event.wire, &o->u.event.row);
	if (ack_to != NULL) {
		o->u.event.worker_id = ack_to->id;
		ack_to->unacked++;
		writer_acks_add(&s->acks, ack_to->id, o->u.event.wire.attempt_id,
		    o->u.event.wire.seq, unawaited);
#ifdef AUTOPACK_MUTANT_ack_on_receipt
		worker_send(ack_to,
		    &(struct proto_msg){ .type = PROTO_ACK,
		        .u.ack = { o->u.event.wire.attempt_id, o->u.event.wire.seq } },
		    NULL);
#endif
	}
	writer_push(s, o);
}

/* Queue an attempt's end. */
void writer_close(struct sup *s, uint64_t attempt_id, const char *run_id, const char *phase_id,
    const struct drain_close *end, const char *category, op_done_cb done, void *ctx)
{
	struct op *o = xcalloc(1, sizeof *o);

	o->kind = OP_CLOSE;
	o->u.close.attempt_id = attempt_id;
	o->u.close.run_id = xstrdup(run_id);
	o->u.close.phase_id = xstrdup(phase_id);
	o->u.close.end = *end;
	o->u.close.end.message = end->message != NULL ? xstrdup(end->message) : NULL;
	o->u.close.end.fingerprint = end->fingerprint != NULL ? xstrdup(end->fingerprint) : NULL;
	o->u.close.category = category != NULL ? xstrdup(category) : NULL;
	o->u.close.done = done;
	o->u.close.ctx = ctx;
	writer_push(s, o);
}

struct op *writer_close_queued(struct sup *s, const char *run_id, const char *phase_id)
{
	struct op *o, *found = NULL;
	int64_t i = 0;

	/* The last one: a phase has at most one attempt open, and its end follows any
	 * earlier. A group whose COMMIT went unanswered (the first doubt_nops) may have
	 * committed: its ends are not taken as queued. */
	for (o = s->ops_head; o != NULL; o = o->next, i++)
		if (o->kind == OP_CLOSE && strcmp(o->u.close.run_id, run_id) == 0 &&
		    strcmp(o->u.close.phase_id, phase_id) == 0)
			found = s->commit_doubt && i < s->doubt_nops ? NULL : o;
	return found;
}

/* Queue a control_log row. */
void writer_control_log(struct sup *s, int64_t peer_pid, int64_t peer_uid, const char *command,
    const char *args, bool ok, const char *result)
{
	struct op *o = xcalloc(1, sizeof *o);

	o->kind = OP_CTLLOG;
	o->u.ctllog.peer_pid = peer_pid;
	o->u.ctllog.peer_uid = peer_uid;
	o->u.ctllog.command = xstrdup(command);
	o->u.ctllog.args = xstrdup(args);
	o->u.ctllog.result = result != NULL ? xstrdup(result) : NULL;
	o->u.ctllog.ok = ok;
	writer_push(s, o);
}

/* Release what an op owns, and the op unless it is an event (its strings are in it, and
 * it is in its group's arena). */
static void op_free(struct op *o)
{
	free(o->refused);
	switch (o->kind) {
	case OP_EVENT: return;
	case OP_CLOSE:
		free(o->u.close.run_id);
		free(o->u.close.phase_id);
		free((char *)o->u.close.end.message);
		free((char *)o->u.close.end.fingerprint);
		free(o->u.close.category);
		break;
	case OP_CTLLOG:
		free(o->u.ctllog.command);
		free(o->u.ctllog.args);
		free(o->u.ctllog.result);
		break;
	}
	free(o);
}

/* Write the record of a refused op inside the open transaction: an error event under
 * the event's key, or the attempt's end without its phase's new state; a control_log row
 * is only logged. */
static int op_apply_refused(struct sup *s, struct op *o, struct store_err *err)
{
	switch (o->kind) {
	case OP_EVENT:
		return store_drain_event_refused(s->sd, &o->u.event.row, o->refused, &o->dup, err);
	case OP_CLOSE:
		return store_drain_attempt_close_bare(
		    s->sd, o->u.close.attempt_id, &o->u.close.end, o->refused, &o->dup, err);
	case OP_CTLLOG: return 0;
	}
	return 0;
}

/* Write one op (or the record of its refusal) inside the open transaction. */
static int op_apply(struct sup *s, struct op *o, struct store_err *err)
{
	o->dup = false;
	if (o->refused != NULL)
		return op_apply_refused(s, o, err);
	switch (o->kind) {
	case OP_EVENT:
		return store_drain_event_insert(
		    s->sd, o->u.event.run_id, o->u.event.phase_id, &o->u.event.row, &o->dup, err);
	case OP_CLOSE:
		return store_drain_attempt_close(
		    s->sd, o->u.close.attempt_id, &o->u.close.end, &o->dup, err);
	case OP_CTLLOG:
		return store_drain_control_log(s->sd, o->u.ctllog.peer_pid, o->u.ctllog.peer_uid,
		    o->u.ctllog.command, o->u.ctllog.args, o->u.ctllog.ok, o->u.ctllog.result, err);
	}
	return 0;
}

/* Mark an op the database refused (`why`: SQLite's message) and say so. */
static void op_refuse(struct sup *s, struct op *o, const char *why)
{
	char what[160];

	switch (o->kind) {
	case OP_EVENT:
		snprintf(what, sizeof what, "the %s event %llu/%llu of %s/%s",
		    event_kind_name(o->u.event.row.kind),
		    (unsigned long long)o->u.event.row.attempt_id,
		    (unsigned long long)o->u.event.row.seq, o->u.event.run_id, o->u.event.phase_id);
		break;
	case OP_CLOSE:
		snprintf(what, sizeof what, "the end of attempt %llu",
		    (unsigned long long)o->u.close.attempt_id);
		break;
	case OP_CTLLOG:
		snprintf(what, sizeof what, "the control_log row of \"%s\"", o->u.ctllog.command);
		break;
	}
	o->refused = xstrdup(why);
	s->n.writes_refused++;
	log_error("the database refused %s: %s; it is recorded as an error and not retried, the"
	          " other writes of the group commit",
	    what, why);
}

/* Count what a committed op wrote. */
static void op_count(struct sup *s, const struct op *o)
{
	if (o->kind == OP_EVENT && o->refused == NULL)
		*(o->dup ? &s->n.events_duplicate : &s->n.events_committed) += 1;
	else if (o->kind == OP_CLOSE && o->dup)
		log_warn("attempt %llu was already closed; its end (%s) is not recorded",
		    (unsigned long long)o->u.close.attempt_id,
		    outcome_name(o->u.close.end.outcome));
}

/* Send the acknowledgements a durable group owes: one per (worker, attempt) for its
 * highest seq there, in the order the pairs first appeared. The ack of a pair that is only
 * an announcement its worker does not wait for (try 1 of the job's first call, on record
 * with the lease) is held in the lease instead, unless the worker has asked for acks: a
 * later ack of the attempt covers it, the worker's wait sends it (writer_acks_asked), and
 * the attempt's end drops it, as the worker then drops its events. The worker is spared
 * reading it and the supervisor a write of its own for it. */
static void writer_ack(struct sup *s, const struct writer_acks *a)
{
	for (size_t i = 0; i < a->n; i++) {
		struct proto_msg m = { .type = PROTO_ACK };
		struct worker *w = worker_find(s, a->v[i].worker_id);

		if (w == NULL)
			continue;
		w->unacked -= a->v[i].n;
		assert(w->unacked >= 0);
		/* A worker already on its next attempt (a lease opened ahead) has dropped these
		 * events: it would ignore the ack. */
		if (w->lease.attempt_id != 0 && w->lease.attempt_id != a->v[i].attempt_id)
			continue;
		if (a->v[i].unawaited && w->lease.attempt_id != 0 && !w->lease.acks_asked) {
			if (a->v[i].seq > w->lease.ack_held)
				w->lease.ack_held = a->v[i].seq;
			continue;
		}
		if (w->lease.attempt_id == a->v[i].attempt_id)
			w->lease.ack_held = 0;
		m.u.ack.attempt_id = a->v[i].attempt_id;
		m.u.ack.seq = a->v[i].seq;
		worker_send(w, &m, NULL);
	}
}

void writer_acks_asked(struct worker *w)
{
	struct proto_msg m = { .type = PROTO_ACK };

	w->lease.acks_asked = true;
	if (w->lease.ack_held == 0)
		return;
	m.u.ack.attempt_id = w->lease.attempt_id;
	m.u.ack.seq = w->lease.ack_held;
	w->lease.ack_held = 0;
	worker_send(w, &m, NULL);
}

/* The commit (with the round's leases when `lease`) failed: roll back, keep the queue,
 * retry later or give up (a lost connection to a database server is opened again first:
 * lifecycle_write_failed). */
static void writer_failed(struct sup *s, bool lease, const struct store_err *err)
{
	struct store_err named;
	char why[600];
	uint64_t delay;
	size_t n;

	store_drain_rollback(s->sd);
	/* A write refused as read-only says why the database is so, and how to undo it: the
	 * server's message names neither (the setting made for the role or the database while
	 * the supervisor ran takes hold on a connection made again; a server become a
	 * standby). */
	if (err->fault == DB_FAULT_READONLY) {
		store_drain_read_only_why(s->sd, why, sizeof why);
		named = *err;
		n = strlen(named.text);
		if (why[0] != '\0' && n < sizeof named.text)
			snprintf(named.text + n, sizeof named.text - n, " (%s)", why);
		err = &named;
	}
	if (lease)
		log_error("dispatch: the round's leases and %lld writes failed: %s",
		    (long long)s->ops_n, err->text);
	else
		log_error("commit of %lld writes failed: %s", (long long)s->ops_n, err->text);
	sync_group_end(s);
	delay = lifecycle_write_failed(s, lease ? "a dispatch round" : "a group commit", err);
	if (delay == 0)
		return;
	s->commit_retrying = true;
	writer_arm(s, delay);
}

/* Put the acknowledgements `front` owes before those `a` owes, into a (front emptied): a
 * pair in both owes the events of both, up to the higher seq. */
static void writer_acks_merge(struct writer_acks *a, struct writer_acks *front)
{
	struct writer_acks t;

	for (size_t i = 0; i < a->n; i++) {
		size_t j;

		for (j = 0; j < front->n; j++)
			if (front->v[j].worker_id == a->v[i].worker_id &&
			    front->v[j].attempt_id == a->v[i].attempt_id)
				break;
		if (j == front->n) {
			if (front->n == front->cap) {
				front->cap = front->cap != 0 ? 2 * front->cap : 16;
				front->v = xrealloc(front->v, front->cap * sizeof *front->v);
			}
			front->v[front->n++] = a->v[i];
			continue;
		}
		front->v[j].n += a->v[i].n;
		front->v[j].unawaited = front->v[j].unawaited && a->v[i].unawaited;
		if (a->v[i].seq > front->v[j].seq)
			front->v[j].seq = a->v[i].seq;
	}
	t = *a;
	*a = *front;
	*front = t;
	a->last = 0;
	front->n = front->last = 0;
}

/* Commit the queue in one transaction, then ack and hand back ends. */
void writer_flush(struct sup *s)
{
	writer_commit(s, false);
}

/* Commit the heartbeat alone when nothing else is queued (several supervisors). */
void writer_heartbeat(struct sup *s)
{
	if (s->fleet_id > 0 && !s->commit_retrying)
		writer_commit(s, s->ops_head == NULL);
}

/* A group to fill: one released earlier, or a new one. */
static struct commit_group *writer_group(struct sup *s)
{
	struct commit_group *g = s->group_free;

	if (g == NULL)
		return xcalloc(1, sizeof *g);
	s->group_free = g->next;
	g->next = NULL;
	return g;
}

/* The round's leases move to group g and are taken, in memory; the next round fills the
 * group's old buffer. */
static void writer_grants_move(struct sup *s, struct commit_group *g)
{
	struct grant *buf = g->grants;
	size_t cap = g->grants_cap;

	g->grants = s->grants;
	g->ngrants = s->ngrants;
	g->grants_cap = s->grants_cap;
	s->grants = buf;
	s->grants_cap = cap;
	s->ngrants = 0;
	s->round.committed(s, g->grants, g->ngrants);
}

/* The round's transaction committed: the queue and the round's leases become group g
 * (the leases taken at once, in memory), held until durable. */
static void writer_committed(struct sup *s, struct op *head, bool lease, uint64_t began)
{
	struct commit_group *g = writer_group(s);
	struct writer_acks acks = g->acks;

	policy_saved(s);
	g->nops = s->ops_n;
	s->commit_fail_streak = 0;
	s->acks_waited = false;
	s->ops_head = s->ops_tail = NULL;
	s->ops_n = 0;
	/* The queue's acknowledgements move to the group; the queue takes the group's old
	 * (empty) buffer. */
	g->acks = s->acks;
	s->acks = acks;
	s->acks.n = s->acks.last = 0;
	g->head = head;
	g->arena = s->ops_arena;
	s->ops_arena = (struct op_arena){ 0 };
	g->began = began;
	if (lease)
		writer_grants_move(s, g);
	sync_hold(s, g);
}

void writer_release(struct sup *s, struct commit_group *g, bool durable)
{
	struct op *o, *next;

	if (durable) {
		metrics_commit(s, g->began);
		s->n.commits++;
		s->last_commit_ms = clock_mono_ms();
		/* Each worker's acknowledgements and next job in one write. */
		worker_cork_all(s, true);
		writer_ack(s, &g->acks);
		if (g->ngrants > 0)
			s->round.durable(s, g->grants, g->ngrants);
		worker_cork_all(s, false);
	}
	for (o = g->head; o != NULL; o = next) {
		next = o->next;
		if (durable) {
			op_count(s, o);
			metrics_op(s, o);
			if (o->kind == OP_CLOSE && o->u.close.done != NULL)
				o->u.close.done(s, o);
		}
		op_free(o);
	}
	op_arena_release(s, &g->arena);
	g->head = NULL;
	g->ngrants = 0;
	g->acks.n = g->acks.last = 0;
	g->next = s->group_free;
	s->group_free = g;
	/* A commit put off while the group waited for its fsync happens in this turn's
	 * round. */
	if (durable)
		writer_sync_ended(s);
}

void writer_sync_ended(struct sup *s)
{
	if (s->commit_deferred) {
		s->commit_deferred = false;
		writer_round(s, true);
	}
}

void writer_free(struct sup *s)
{
	struct commit_group *g;
	struct op *o, *next;

	for (o = s->ops_head; o != NULL; o = next) {
		next = o->next;
		op_free(o);
	}
	op_arena_release(s, &s->ops_arena);
	s->ops_head = s->ops_tail = NULL;
	s->ops_n = 0;
	free(s->acks.v);
	s->acks = (struct writer_acks){ 0 };
	free(s->doubt_acks.v);
	s->doubt_acks = (struct writer_acks){ 0 };
	while ((g = s->group_free) != NULL) {
		s->group_free = g->next;
		free(g->grants);
		free(g->acks.v);
		free(g);
	}
	op_arena_free_spare(s);
}

/* The group in doubt did not commit, or is given up on: its writes stay in the queue,
 * their acknowledgements and its drain rules' news go back to the queue's, its leases are
 * undone. */
static void writer_doubt_back(struct sup *s)
{
	s->commit_doubt = false;
	writer_acks_merge(&s->acks, &s->doubt_acks);
	policy_held(s, false);
	s->round.undo(s);
}

/* The connection was lost before the COMMIT of a group answered (`lease`: with the
 * round's leases): it may have committed, or still commit. Its writes (the queue so far)
 * are neither written again nor acknowledged, its leases neither undone nor handed out,
 * until writer_settle (at the retry) learns whether it committed: the acknowledgements
 * they owe and the drain rules' news it merged are held aside from what comes meanwhile,
 * and its transaction (its id and server process, read in the group's heartbeat) is kept.
 * On giving up on the database it is put back, with nothing more written. */
static void writer_in_doubt(struct sup *s, bool lease, const struct store_err *err)
{
	struct writer_acks held = s->doubt_acks;
	uint64_t delay;

	s->doubt_txn = store_fleet_txn(s->sd);
	s->doubt_running_ms = 0;
	s->doubt_nops = s->ops_n;
	s->doubt_acks = s->acks;
	s->acks = held;
	s->acks.n = s->acks.last = 0;
	policy_hold(s);
	s->commit_doubt = true;
	store_drain_rollback(s->sd);
	log_error("the connection was lost before the COMMIT of a group of %lld writes and %zu"
	          " lease(s) answered: %s; whether it committed is learned once connected again",
	    (long long)s->ops_n, s->ngrants, err->text);
	sync_group_end(s);
	delay = lifecycle_write_failed(s, lease ? "a dispatch round" : "a group commit", err);
	if (delay == 0) {
		writer_doubt_back(s);
		return;
	}
	s->commit_retrying = true;
	writer_arm(s, delay);
}

/* The group in doubt committed: its writes (the first doubt_nops of the queue), the
 * acknowledgements they owe and its leases become a committed group, released once
 * durable as after any commit (the rest of the queue stays, for the next commit; its
 * events' memory stays with the queue, released after this group); while stopping, the
 * leases without a worker are ended as not started. */
static void writer_doubt_committed(struct sup *s)
{
	struct commit_group *g = writer_group(s);
	struct writer_acks acks = g->acks;
	struct op *last = s->ops_head;

	s->commit_doubt = false;
	s->commit_fail_streak = 0;
	policy_held(s, true);
	g->nops = s->doubt_nops;
	g->head = s->doubt_nops > 0 ? s->ops_head : NULL;
	for (int64_t i = 1; i < s->doubt_nops; i++)
		last = last->next;
	if (s->doubt_nops > 0) {
		s->ops_head = last->next;
		last->next = NULL;
		if (s->ops_head == NULL)
			s->ops_tail = NULL;
		s->ops_n -= s->doubt_nops;
	}
	g->acks = s->doubt_acks;
	s->doubt_acks = acks;
	s->doubt_acks.n = s->doubt_acks.last = 0;
	g->began = uv_hrtime();
	if (s->ngrants > 0)
		writer_grants_move(s, g);
	sync_hold(s, g);
	if (s->stopping)
		lease_ahead_release(s, OUTCOME_SUPERVISOR_STOPPED, "the supervisor is stopping");
}

/* Whether the group in doubt committed is not known yet (`why`: its transaction is still
 * in progress on the server, its old session asked to end or not allowed to be; or the
 * row's lock is another transaction's): ask again after COMMIT_RETRY_MS. It stays as it
 * is until then, the supervisor commits nothing and its heartbeat stops; past its lease
 * timeout (the others have declared it lost by then) it gives up on the database and the
 * group is put back, with nothing more written. */
static void writer_doubt_running(struct sup *s, const char *why)
{
	uint64_t now = clock_mono_ms();

	if (s->doubt_running_ms == 0) {
		s->doubt_running_ms = now;
		log_warn("%s; the group waits, asked again every %d ms", why, COMMIT_RETRY_MS);
	}
	if (now - s->doubt_running_ms > (uint64_t)s->cfg.lease_timeout_ms) {
		log_error("whether the group whose COMMIT was not answered committed is still not"
		          " known after %.1f s: %s",
		    (double)(now - s->doubt_running_ms) / 1000.0, why);
		lifecycle_give_up(s, "the transaction of a group in doubt did not end");
		writer_doubt_back(s);
		return;
	}
	s->commit_retrying = true;
	writer_arm(s, COMMIT_RETRY_MS);
}

/* Settle the group in doubt: whether its transaction committed (the row its heartbeat
 * wrote says, once no transaction holds that row); while it is still in progress (its old
 * session ended on request first) the group waits. Settled, the heartbeat is renewed alone
 * first. Returns 0 once settled; -1 when not yet (asked again after a delay, or, on giving
 * up on the database or found declared lost, the group put back with nothing more
 * written). */
static int writer_settle(struct sup *s)
{
	enum fleet_txn_state state;
	struct store_err err;
	uint64_t delay;
	bool lost = false;
	int rc;

	rc = store_fleet_txn_settle(s->sd, &s->doubt_txn, &state, &err);
	/* Once the group's transaction has ended (its lock on this supervisor's row with it),
	 * whether this supervisor is still live: one declared lost meanwhile writes and hands
	 * out nothing (the others closed its attempts). */
	if (rc == 0 && state != FLEET_TXN_RUNNING)
		rc = store_fleet_confirm(s->sd, &lost, &err);
	if (rc == 0 && lost) {
		writer_doubt_back(s);
		lifecycle_declared_lost(s);
		return -1;
	}
	if (rc != 0) {
		log_error("cannot learn whether the group in doubt committed: %s", err.text);
		delay = lifecycle_write_failed(s, "a group commit", &err);
		if (delay == 0) {
			writer_doubt_back(s);
			return -1;
		}
		s->commit_retrying = true;
		writer_arm(s, delay);
		return -1;
	}
	if (state == FLEET_TXN_RUNNING) {
		writer_doubt_running(s, err.text);
		return -1;
	}
	if (state == FLEET_TXN_ABORTED) {
		log_warn("the group whose COMMIT was not answered had not committed (transaction"
		         " %lld); its %lld writes are written again and its %zu lease(s)"
		         " dispatched again",
		    (long long)s->doubt_txn.xid, (long long)s->doubt_nops, s->ngrants);
		writer_doubt_back(s);
		return 0;
	}
	log_warn("the group whose COMMIT was not answered had committed (transaction %lld); its"
	         " %lld writes are not written again and its %zu lease(s) go to their workers",
	    (long long)s->doubt_txn.xid, (long long)s->doubt_nops, s->ngrants);
	writer_doubt_committed(s);
	return 0;
}

/* Commit the queue and the round's leases (with the heartbeat of several supervisors,
 * which fences the group: a supervisor declared lost writes nothing), or, with
 * `heartbeat`, the heartbeat alone. The committed group is released (acknowledgements,
 * jobs, ends handed back) once durable: at once, or after its fsync (sync.c). */
static void writer_commit(struct sup *s, bool heartbeat)
{
	struct op *head, *o;
	uint64_t began = uv_hrtime();
	struct store_err err;
	bool lease, committing = false;
	bool lost = false;

	if (s->commit_armed) {
		uv_timer_stop(&s->commit_timer);
		s->commit_armed = false;
	}
	s->commit_retrying = false;
	if (s->writes_off)
		return;
	/* First the group whose COMMIT was not answered: committed or not. */
	if (s->commit_doubt && writer_settle(s) != 0)
		return;
	head = s->ops_head;
	/* While an fsync runs, gather (writer_release asks for the round when it ends);
	 * likewise while the checkpoints' thread catches up with the log. */
	if (!heartbeat && (sync_waiting(s) || writer_ckpt_holds(s))) {
		s->commit_deferred = true;
		return;
	}
	lease = !heartbeat && s->round.want != NULL && s->round.want(s, head != NULL);
	if (head == NULL && !lease && !heartbeat)
		return;
	lifecycle_identity_check(s);
	if (s->writes_off)
		return;
again:
	if (sync_group_begin(s, &err) != 0 || store_drain_begin(s->sd, &err) != 0)
		goto fail;
	if (s->fleet_id > 0 && store_fleet_heartbeat(s->sd, s->fleet_status, &lost, &err) != 0)
		goto fail;
	if (lost) {
		store_drain_rollback(s->sd);
		sync_group_end(s);
		lifecycle_declared_lost(s);
		return;
	}
	for (o = head; o != NULL; o = o->next) {
		char why[300];

		if (op_apply(s, o, &err) == 0)
			continue;
		if (o->refused != NULL || !store_drain_constraint_failed(s->sd, why, sizeof why))
			goto fail;
		/* Write the group again with the error recorded in this op's place. */
		store_drain_rollback(s->sd);
		op_refuse(s, o, why);
		goto again;
	}
	/* The policy before the round's leases: with several supervisors, what the others
	 * decided is merged first. */
	if (s->pol.dirty && policy_save(s, NULL, &err) != 0)
		goto fail;
	/* The round's leases, after the ends they may follow. */
	if (lease && s->round.open(s, &err) != 0)
		goto fail;
	committing = true;
	if ((s->fleet_id > 0 ? store_fleet_commit(s->sd, &err) : store_drain_commit(s->sd, &err)) !=
	    0)
		goto fail;
	sync_group_end(s);
	writer_committed(s, head, lease, began);
	lifecycle_check_done(s);
	return;
fail:
	/* A COMMIT that went unanswered may have committed: the group waits to be settled. */
	if (committing && s->fleet_id > 0 && store_connection_lost(s->st)) {
		writer_in_doubt(s, lease, &err);
		return;
	}
	if (lease)
		s->round.undo(s);
	writer_failed(s, lease, &err);
}

/* Commit in the next loop turn for a worker waiting for acks. */
void writer_flush_early(struct sup *s)
{
	/* At the end of this loop turn: the frames read in it, from every worker, share the
	 * commit. */
	if (!s->commit_retrying && s->ops_n > 0) {
		s->acks_waited = true;
		writer_round(s, true);
	}
}

/* The commit window (or the retry delay) is over: commit. */
static void writer_timer_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	s->commit_armed = false;
	writer_flush(s);
}
