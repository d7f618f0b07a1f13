/* Control commands that steer the drain: pause, resume, scale, stop. */
#include "supervisor/cmd.h"
#include "common/store/store_fleet.h"
#include "common/log.h"
#include "common/numarg.h"
#include "common/utf8.h"

#include <stdlib.h>
#include <string.h>

/* Parse a whole non-negative decimal number no larger than max. */
static bool parse_count(const char *s, long max, long *out)
{
	long long v;

	if (s == NULL || numarg_ll(s, &v) != 0 || v < 0 || v > max)
		return false;
	*out = (long)v;
	return true;
}

/* pause: dispatch nothing new. */
int cmd_pause(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	(void)c;
	(void)req;
	rep->body = json_pack(
	    "{s:b, s:i}", "was_paused", s->paused, "in_flight", (int)s->in_flight);
	if (!s->paused)
		log_info("paused by control request: no new dispatch");
	s->paused = true;
	lease_ahead_release(s, OUTCOME_SUPERVISOR_STOPPED, "dispatch was paused");
	return 0;
}

/* resume: dispatch again. */
int cmd_resume(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	bool breaker;

	(void)c;
	(void)req;
	if (s->stopping)
		return cmd_error(rep, "stopping", "resume: the supervisor is stopping");
	rep->body = json_pack(
	    "{s:b, s:b}", "was_paused", s->paused, "breaker_reset", s->crash_loop);
	if (s->paused)
		log_info("resumed by control request");
	s->paused = false;
	/* A tripped breaker is reset too: the pool is brought back and dispatch goes on. */
	breaker = pool_breaker_reset(s);
	if (breaker)
		pool_scale(s, s->target, false);
	lease_kick(s);
	return 0;
}

/* scale N [--force]: grow or shrink the pool. */
int cmd_scale(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	bool force = false;
	long n = -1;
	size_t i;
	int old = s->target;

	(void)c;
	for (i = 0; i < req->args.n; i++) {
		if (strcmp(req->args.items[i], "--force") == 0)
			force = true;
		else if (n >= 0)
			return cmd_error(rep, "bad_argument",
			    "scale: give one worker count, not %ld and \"%s\"", n,
			    req->args.items[i]);
		else if (!parse_count(req->args.items[i], 1024, &n))
			return cmd_error(rep, "bad_argument",
			    "scale: \"%s\" is not a worker count"
			    " from 0 to 1024",
			    req->args.items[i]);
	}
	if (n < 0)
		return cmd_error(rep, "bad_argument", "scale: give the number of workers");
	if (s->stopping)
		return cmd_error(rep, "stopping", "scale: the supervisor is stopping");
	pool_breaker_reset(s);
	pool_scale(s, (int)n, force);
	log_info("scaled from %d to %ld workers%s", old, n, force ? " (forced)" : "");
	rep->body = json_pack("{s:i, s:i, s:b}", "from", old, "to", (int)n, "force", force);
	return 0;
}

/* stop [--timeout S | --now]: stop the drain. */
int cmd_stop(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	long timeout = -1;
	bool now = false;
	size_t i;

	for (i = 0; i < req->args.n; i++) {
		const char *a = req->args.items[i];

		if (strcmp(a, "--now") == 0)
			now = true;
		else if (strcmp(a, "--timeout") == 0 && i + 1 < req->args.n &&
		    parse_count(req->args.items[i + 1], 86400, &timeout))
			i++;
		else if (strcmp(a, "--timeout") == 0)
			return cmd_error(rep, "bad_argument",
			    "stop: --timeout needs a whole number of seconds from 0 to 86400, got "
			    "%s%s%s",
			    i + 1 < req->args.n ? "\"" : "",
			    i + 1 < req->args.n ? req->args.items[i + 1] : "nothing",
			    i + 1 < req->args.n ? "\"" : "");
		else
			return cmd_error(rep, "bad_argument",
			    "stop: unexpected argument \"%s\""
			    " (use --timeout SECONDS or --now)",
			    a);
	}
	if (now && timeout >= 0)
		return cmd_error(
		    rep, "bad_argument", "stop: --now and --timeout exclude each other");
	rep->body = json_pack("{s:s, s:i, s:o}", "mode",
	    stop_level_name(now ? STOP_NOW : STOP_GRACEFUL), "in_flight", (int)s->in_flight,
	    "timeout_seconds", timeout >= 0 ? json_integer(timeout) : json_null());
	if (now) {
		lifecycle_stop_for(s, STOP_NOW, STOP_CAUSE_OPERATOR,
		    "stop --now by control request (pid %d)", (int)c->pid);
	} else {
		lifecycle_stop_for(s, STOP_GRACEFUL, STOP_CAUSE_OPERATOR,
		    "stop by control request (pid %d)", (int)c->pid);
		if (timeout >= 0)
			lifecycle_stop_timeout(s, (uint64_t)timeout * 1000);
	}
	return 0;
}

/* Cancel a phase whose attempt ended before the cancel came, its end `o` queued and not
 * yet committed (the phase is still EXECUTING in the database): a phase that end fails or
 * puts back in the queue is made SKIPPED with it (taken out of the queue at once); a
 * COMPLETE one stays so, and the cancel fails naming the end. */
static int cancel_after_end(
    struct sup *s, const struct proto_request *req, struct op *o, struct cmd_reply *rep)
{
	struct drain_close *e = &o->u.close.end;
	uint64_t att = o->u.close.attempt_id;
	enum phase_state was = e->phase_state;
	char run[256], phase[256];

	if (was != PHASE_QUEUED && was != PHASE_FAILED) {
		utf8_one_line(run, req->args.items[0], sizeof run);
		utf8_one_line(phase, req->args.items[1], sizeof phase);
		return cmd_error(rep, "bad_state",
		    "cancel: phase %s/%s is %s: its attempt %llu ended %s before the cancel came",
		    run, phase, phase_state_name(was), (unsigned long long)att,
		    outcome_name(e->outcome));
	}
	e->phase_state = PHASE_SKIPPED;
	/* Its run's queue is read again: the phase, EXECUTING until that end commits, is
	 * not in it. */
	sched_reload_run(s, req->args.items[0]);
	log_info("%s/%s: cancelled after its attempt %llu ended %s: SKIPPED, not %s",
	    req->args.items[0], req->args.items[1], (unsigned long long)att,
	    outcome_name(e->outcome), phase_state_name(was));
	rep->body = json_pack("{s:s, s:s, s:s, s:I, s:s}", "run_id", req->args.items[0], "phase_id",
	    req->args.items[1], "state", phase_state_name(PHASE_SKIPPED), "attempt_id",
	    (json_int_t)att, "attempt_outcome", outcome_name(e->outcome));
	return 0;
}

/* cancel RUN PHASE: stop its attempt, or move it to SKIPPED. */
int cmd_cancel(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	struct store_err err;
	struct worker *w;
	struct op *o;
	uint64_t ahead;

	(void)c;
	if (req->args.n != 2)
		return cmd_error(rep, "bad_argument", "cancel: give RUN PHASE");
	/* A lease opened ahead that no worker took yet ends at once. */
	if ((ahead = lease_ahead_cancel(s, req->args.items[0], req->args.items[1])) != 0) {
		rep->body = json_pack("{s:s, s:s, s:s, s:I}", "run_id", req->args.items[0],
		    "phase_id", req->args.items[1], "state", "cancelling", "attempt_id",
		    (json_int_t)ahead);
		return 0;
	}
	/* One queued on a busy worker behind its lease (--worker-jobs 2) ends with it. */
	if ((ahead = lease_queued_cancel(s, req->args.items[0], req->args.items[1])) != 0) {
		rep->body = json_pack("{s:s, s:s, s:s, s:I}", "run_id", req->args.items[0],
		    "phase_id", req->args.items[1], "state", "cancelling", "attempt_id",
		    (json_int_t)ahead);
		return 0;
	}
	if ((w = lease_find(s, req->args.items[0], req->args.items[1])) != NULL) {
		lease_cancel(w);
		rep->body = json_pack("{s:s, s:s, s:s, s:I}", "run_id", req->args.items[0],
		    "phase_id", req->args.items[1], "state", "cancelling", "attempt_id",
		    (json_int_t)w->lease.attempt_id);
		return 0;
	}
	/* Its attempt ended before the cancel came, that end not yet committed: the end
	 * decided first stands, and the answer says so. */
	if ((o = writer_close_queued(s, req->args.items[0], req->args.items[1])) != NULL &&
	    o->u.close.end.phase_state != PHASE_STATE_NONE)
		return cancel_after_end(s, req, o, rep);
	if (store_drain_phase_move(s->sd, req->args.items[0], req->args.items[1],
	        1u << PHASE_QUEUED | 1u << PHASE_FAILED, PHASE_SKIPPED, &err) != 0)
		return cmd_error(rep, "bad_state", "cancel: %s", err.text);
	sched_reload_run(s, req->args.items[0]);
	/* The other supervisors drop it from their queues at once. */
	if (s->fleet_id > 0 && store_fleet_wake(s->st, &err) != 0)
		log_error("%s", err.text);
	rep->body = json_pack("{s:s, s:s, s:s}", "run_id", req->args.items[0], "phase_id",
	    req->args.items[1], "state", phase_state_name(PHASE_SKIPPED));
	return 0;
}
