/* What a drain leaves, said at its end: the phases of the drain's runs by state, and for
 * every eligible phase it did not get to, why — a run the drain rules stopped or
 * deprioritised, or the session's own stop (a drain rule, the breaker, the operator). The
 * report is logged (its figures end the last line), saved with the session's state for
 * `autopack-ctl session show`, and decides the exit status: 5 when the drain rules left
 * work that the operator did not stop. */
#include "supervisor/sup.h"
#include "common/log.h"
#include "common/utf8.h"
#include "common/util.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_RUNS_LOGGED 20 /* runs with phases left, named in the log */

/* Why phases were left, as the report names it (STOP_CAUSE_NONE and DRAINED: "other"), and
 * in the log line. */
static const char *const report_causes[] = {
	[STOP_CAUSE_NONE] = "other",
	[STOP_CAUSE_DRAINED] = "other",
	[STOP_CAUSE_OPERATOR] = "operator",
	[STOP_CAUSE_POLICY] = "policy",
	[STOP_CAUSE_BREAKER] = "breaker",
};
static const char *const report_cause_texts[] = {
	[STOP_CAUSE_NONE] = "the stop",
	[STOP_CAUSE_DRAINED] = "the stop",
	[STOP_CAUSE_OPERATOR] = "the operator's stop",
	[STOP_CAUSE_POLICY] = "the drain rules",
	[STOP_CAUSE_BREAKER] = "the breaker",
};
/* How the drain stopped. */
static const char *const report_stops[] = {
	[STOP_CAUSE_NONE] = "other",
	[STOP_CAUSE_DRAINED] = "drained",
	[STOP_CAUSE_OPERATOR] = "operator",
	[STOP_CAUSE_POLICY] = "policy",
	[STOP_CAUSE_BREAKER] = "breaker",
};

/* The report being built. */
struct report {
	struct sup *s;
	int64_t states[PHASE_STATE_COUNT];
	int64_t by_cause[STOP_CAUSE_BREAKER + 1];
	json_t *left; /* [{"run_id", "phases", "cause", "why"}], one per run and reason */
	char session_why[400];
	enum stop_cause session_cause;
};

/* Count one (run, state) of the drain's runs. */
static int report_state(void *arg, const char *run_id, enum phase_state state, int64_t n)
{
	struct report *rp = arg;

	if (!sched_run_excluded(rp->s, run_id))
		rp->states[state] += n;
	return 0;
}

/* Why an eligible phase of a run that was not skipped was left: the session's stop. */
static void report_session_why(struct report *rp)
{
	struct sup *s = rp->s;
	const char *reason = s->stop_reason != NULL ? s->stop_reason : "the drain stopped";

	rp->session_cause = s->stop_cause;
	switch (s->stop_cause) {
	case STOP_CAUSE_OPERATOR:
		snprintf(rp->session_why, sizeof rp->session_why,
		    "the operator stopped the drain (%s)", reason);
		break;
	case STOP_CAUSE_DRAINED:
		if (s->cfg.batch_size > 0 && s->started >= s->cfg.batch_size) {
			rp->session_cause = STOP_CAUSE_POLICY;
			snprintf(rp->session_why, sizeof rp->session_why,
			    "batch size %lld reached (--batch-size)", (long long)s->cfg.batch_size);
		} else {
			snprintf(rp->session_why, sizeof rp->session_why, "not dispatched");
		}
		break;
	default: snprintf(rp->session_why, sizeof rp->session_why, "%s", reason); break;
	}
}

/* Note `n` phases of a run left for `why`, joining the run's last entry if it says the
 * same. */
static void report_left(
    struct report *rp, const char *run_id, enum stop_cause cause, const char *why, int64_t n)
{
	json_t *last = json_array_get(rp->left, json_array_size(rp->left) - 1);
	/* A run id another program wrote may not be UTF-8, which JSON cannot hold. */
	char *rid = utf8_clean(run_id, SIZE_MAX), *because = utf8_clean(why, SIZE_MAX);

	if (cause == STOP_CAUSE_DRAINED)
		cause = STOP_CAUSE_NONE;
	rp->by_cause[cause] += n;
	if (last != NULL && strcmp(json_string_value(json_object_get(last, "run_id")), rid) == 0 &&
	    strcmp(json_string_value(json_object_get(last, "why")), because) == 0)
		json_object_set_new(last, "phases",
		    json_integer(json_integer_value(json_object_get(last, "phases")) + n));
	else
		json_array_append_new(rp->left,
		    json_pack("{s:s, s:I, s:s, s:s}", "run_id", rid, "phases", (json_int_t)n,
		        "cause", report_causes[cause], "why", because));
	free(rid);
	free(because);
}

/* Say why a run's `n` eligible phases this session did not finish were left. */
static int report_unfinished(void *arg, const char *run_id, int64_t n)
{
	struct report *rp = arg;
	struct run_q *r;

	if (sched_run_excluded(rp->s, run_id))
		return 0;
	r = sched_run_find(rp->s, run_id);
	if (r != NULL && r->skipped && r->skip_why != NULL)
		report_left(rp, run_id, STOP_CAUSE_POLICY, r->skip_why, n);
	else
		report_left(rp, run_id, rp->session_cause, rp->session_why, n);
	return 0;
}

/* Note a run's `n` phases no drain dispatches: their run or tier has no row. */
static int report_orphaned(void *arg, const char *run_id, int64_t n)
{
	struct report *rp = arg;

	if (!sched_run_excluded(rp->s, run_id))
		report_left(rp, run_id, STOP_CAUSE_NONE,
		    "its tier or its run has no row (phases.tier_id or phases.run_id names none; "
		    "another program's rows): no drain dispatches it",
		    n);
	return 0;
}

/* Note a phase no drain dispatches: an id of it is not text. */
static int report_untexted(void *arg, const struct drain_untexted *u)
{
	struct report *rp = arg;
	char why[400];

	if (sched_run_excluded(rp->s, u->run_id))
		return 0;
	snprintf(why, sizeof why,
	    "phases.id %lld: phases.%s %s is a %s, not a text id (another program's row): no "
	    "drain dispatches it",
	    (long long)u->row, u->column, u->value != NULL ? u->value : "NULL", u->type);
	report_left(rp, u->run_id, STOP_CAUSE_NONE, why, 1);
	return 0;
}

/* The level of a [LEFT] line: warn when the drain rules or the breaker left the phases
 * (work an operator has to look at), info when a stop the operator asked for did. */
static enum log_level report_left_level(json_t *e)
{
	const char *cause = json_string_value(json_object_get(e, "cause"));

	return strcmp(cause, report_causes[STOP_CAUSE_POLICY]) == 0 ||
	        strcmp(cause, report_causes[STOP_CAUSE_BREAKER]) == 0 ?
	    LOG_WARN :
	    LOG_INFO;
}

/* Log what is left, one line per run and reason (the first REPORT_RUNS_LOGGED). */
static void report_log(const struct report *rp)
{
	size_t i, n = json_array_size(rp->left);
	json_t *e;

	json_array_foreach(rp->left, i, e)
	{
		if (i == REPORT_RUNS_LOGGED) {
			log_msg(report_left_level(e),
			    "[LEFT] ... and %zu more (autopack-ctl session show lists them all)",
			    n - i);
			break;
		}
		log_about(report_left_level(e),
		    &(struct log_about){ .session = rp->s->session_id,
		        .run = json_string_value(json_object_get(e, "run_id")) },
		    "[LEFT] %s: %lld phase(s) left: %s",
		    json_string_value(json_object_get(e, "run_id")),
		    (long long)json_integer_value(json_object_get(e, "phases")),
		    json_string_value(json_object_get(e, "why")));
	}
}

/* Save the report with the session's state (its key "end"), in a transaction of its own;
 * with several supervisors the state is merged with what the others saved since this one
 * last read it (policy_save), not written over it. Logged on failure. */
static void report_save(struct sup *s, json_t *end)
{
	struct store_err err;

	if (store_drain_begin(s->sd, &err) != 0 || policy_save(s, end, &err) != 0 ||
	    store_drain_commit(s->sd, &err) != 0) {
		log_error("cannot record what the drain left: %s", err.text);
		store_drain_rollback(s->sd);
		return;
	}
	policy_saved(s);
}

void report_drain_end(struct sup *s, char *line, size_t n)
{
	struct report rp = { .s = s, .left = json_array() };
	json_t *phases = json_object(), *end;
	struct store_err err;
	bool untexted;
	size_t len;
	int i;

	line[0] = '\0';
	if (s->writes_off)
		return;
	report_session_why(&rp);
	if (store_drain_each_run_state(s->sd, s->cfg.run_id, report_state, &rp, &err) != 0 ||
	    store_drain_each_left(s->sd, s->cfg.run_id, s->cfg.retry_failed, s->session_id,
	        s->cfg.max_attempts, s->cfg.dry_run, report_unfinished, report_orphaned, &rp,
	        &untexted, &err) != 0 ||
	    (untexted &&
	        store_drain_each_untexted(
	            s->sd, s->cfg.run_id, s->cfg.retry_failed, report_untexted, &rp, &err) != 0)) {
		log_error("cannot tell what the drain left: %s", err.text);
		json_decref(rp.left);
		json_decref(phases);
		return;
	}
	/* Work the drain rules left, and the operator did not stop, is not a clean end. */
	if (s->exit_code == SUP_EXIT_OK && rp.by_cause[STOP_CAUSE_POLICY] > 0)
		s->exit_code = SUP_EXIT_WORK_LEFT;
	report_log(&rp);
	/* COMPLETE, FAILED and QUEUED always, then any other state that has phases. */
	len = (size_t)snprintf(line, n, "phases COMPLETE %lld, FAILED %lld, QUEUED %lld",
	    (long long)rp.states[PHASE_COMPLETE], (long long)rp.states[PHASE_FAILED],
	    (long long)rp.states[PHASE_QUEUED]);
	for (i = PHASE_STATE_NONE + 1; i < PHASE_STATE_COUNT; i++) {
		json_object_set_new(phases, phase_state_name(i), json_integer(rp.states[i]));
		if (rp.states[i] > 0 && i != PHASE_COMPLETE && i != PHASE_FAILED &&
		    i != PHASE_QUEUED && len < n)
			len += (size_t)snprintf(line + len, n - len, ", %s %lld",
			    phase_state_name(i), (long long)rp.states[i]);
	}
	for (i = 0; i <= STOP_CAUSE_BREAKER; i++)
		if (rp.by_cause[i] > 0 && len < n)
			len += (size_t)snprintf(line + len, n - len, "; %lld left by %s",
			    (long long)rp.by_cause[i], report_cause_texts[i]);
	if (len < n)
		snprintf(line + len, n - len, "; exit status %d", s->exit_code);
	end = json_pack("{s:o, s:o, s:{s:I, s:I, s:I, s:I}, s:s, s:i}", "phases", phases, "left",
	    rp.left, "left_by", "policy", (json_int_t)rp.by_cause[STOP_CAUSE_POLICY], "operator",
	    (json_int_t)rp.by_cause[STOP_CAUSE_OPERATOR], "breaker",
	    (json_int_t)rp.by_cause[STOP_CAUSE_BREAKER], "other",
	    (json_int_t)rp.by_cause[STOP_CAUSE_NONE], "stop_cause", report_stops[s->stop_cause],
	    "exit_status", s->exit_code);
	report_save(s, end);
	json_decref(end);
}
