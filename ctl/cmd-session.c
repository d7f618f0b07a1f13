/* The drain session reports: session list, session show. */
#include "ctl/cmd.h"
#include "common/jsondump.h"
#include "common/jsonload.h"
#include "common/store/store_session.h"
#include "common/procs.h"
#include "common/util.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
	CMD_OPT_LATEST = CMD_OPT_FIRST_OWN
};

static const struct option cmd_session_list_opts[] = {
	CMD_OPTS_COMMON,
	{ NULL, 0, NULL, 0 },
};

static const struct option cmd_session_show_opts[] = {
	CMD_OPTS_COMMON,
	{ "latest", no_argument, NULL, CMD_OPT_LATEST },
	{ NULL, 0, NULL, 0 },
};

/* Return true if `pid` is a live autopack-supervisor process. A pid past what pid_t holds
 * (another program's, a hand edit) is none: cut to pid_t, 4294967297 was pid 1. Nor is a
 * supervisor that was killed and not yet reaped (a zombie: kill(2) still finds it). */
static bool cmd_session_pid_alive(int64_t pid)
{
	char comm[64], stat[512];
	const char *st;

	if (pid <= 0 || pid > INT_MAX || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
		return false;
	st = procs_stat_text((pid_t)pid, stat, sizeof stat);
	if (st != NULL && (st[1] == 'Z' || st[1] == 'X'))
		return false;
	/* Unreadable (another user's /proc hidden): alive, as kill said. */
	if (!procs_comm((pid_t)pid, comm, sizeof comm))
		return true;
	return strncmp(comm, "autopack-superv", 15) == 0;
}

/* Describe where a session stands: completed, running, or interrupted (its supervisor
 * is gone without closing it). */
static const char *cmd_session_status(const struct store_session *s)
{
	if (s->completed_at != NULL)
		return "completed";
	return cmd_session_pid_alive(s->supervisor_pid) ? "running" : "interrupted";
}

/* Parse a JSON text column into a value; anything unparsable becomes an empty object. */
static json_t *cmd_session_json_col(const char *text)
{
	json_t *j = text != NULL ? json_loads_bounded(text, JSON_DECODE_ANY, NULL) : NULL;

	return j != NULL ? j : json_object();
}

/* Return one session's header as JSON. */
static json_t *cmd_session_head_json(const struct store_session *s)
{
	return json_pack("{s:o, s:o, s:o, s:s, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
	    "session_id", cmd_json_text(s->session_id), "started_at", cmd_json_text(s->started_at),
	    "completed_at", cmd_json_text(s->completed_at), "status", cmd_session_status(s),
	    "stop_reason", cmd_json_text(s->stop_reason), "supervisor_pid",
	    (json_int_t)s->supervisor_pid, "attempts", (json_int_t)s->attempts, "open_attempts",
	    (json_int_t)s->open_attempts, "results", (json_int_t)s->results, "successes",
	    (json_int_t)s->successes, "events", (json_int_t)s->events, "handed_back",
	    (json_int_t)s->handed_back);
}

/* Parse options of a session command: `opts`, at most one positional argument. */
static int cmd_session_parse(struct cmd_ctx *ctx, int argc, char **argv, const struct option *opts,
    bool *latest, const char **id, int *ret)
{
	int c;

	*ret = CMD_EXIT_OK;
	while ((c = cmd_getopt(ctx, argc, argv, opts, ret)) != -1) {
		if (c == CMD_OPT_DONE)
			return -1;
		*latest = true;
	}
	if (optind < argc && id != NULL)
		*id = argv[optind++];
	if (optind != argc) {
		*ret = cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
		return -1;
	}
	return 0;
}

/* Return the text of column `col` of a session list row (its shown form). */
static const char *cmd_session_cell(const struct store_session *s, int col)
{
	switch (col) {
	case 0: return s->session_id != NULL ? cmd_shown(s->session_id) : "-";
	case 1: return s->started_at != NULL ? cmd_shown(s->started_at) : "-";
	default:
		return s->completed_at != NULL ? cmd_shown(s->completed_at) : cmd_session_status(s);
	}
}

/* Return the columns a terminal gives the UTF-8 text s: its characters. */
static int cmd_session_width(const char *s)
{
	int w = 0;

	for (; *s != '\0'; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/* Print s and the spaces that make it `width` columns wide, then one more. */
static void cmd_session_pad(const char *s, int width)
{
	fputs(s, stdout);
	printf("%*s", width - cmd_session_width(s) + 1, "");
}

/* Print the session list as a table: each text column as wide as its widest value (the
 * timestamps in the database's format, an id or a time another program wrote), the counts
 * right-aligned, and the stop reason, of any length, last. */
static void cmd_session_list_print(const struct store_session *list, size_t n)
{
	static const char *const heads[] = { "SESSION", "STARTED", "COMPLETED" };
	int width[3];

	for (int c = 0; c < 3; c++) {
		width[c] = cmd_session_width(heads[c]);
		for (size_t i = 0; i < n; i++) {
			int w = cmd_session_width(cmd_session_cell(&list[i], c));

			width[c] = w > width[c] ? w : width[c];
		}
	}
	putchar('\n');
	for (int c = 0; c < 3; c++)
		cmd_session_pad(heads[c], width[c]);
	printf("%8s %9s %7s %s\n", "ATTEMPTS", "SUCCESSES", "EVENTS", "STOP REASON");
	for (size_t i = 0; i < n; i++) {
		for (int c = 0; c < 3; c++)
			cmd_session_pad(cmd_session_cell(&list[i], c), width[c]);
		printf("%8lld %9lld %7lld %s\n", (long long)list[i].attempts,
		    (long long)list[i].successes, (long long)list[i].events,
		    list[i].stop_reason != NULL ? cmd_shown(list[i].stop_reason) : "-");
	}
}

/* session list: every session, newest first. */
static int cmd_session_list_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct store_session *list;
	struct store_err err;
	struct store st;
	bool latest = false;
	size_t n;
	int rc, ret;

	if (cmd_session_parse(ctx, argc, argv, cmd_session_list_opts, &latest, NULL, &ret) != 0)
		return ret;
	ret = cmd_open_read(ctx, &st, true);
	if (ret != 0)
		return ret;
	rc = store_session_list(&st, &list, &n, &err);
	if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
		store_close(&st);
		return ret;
	}
	if (ctx->json) {
		json_t *arr = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, cmd_session_head_json(&list[i]));
		cmd_json_print(json_pack("{s:b, s:o, s:o}", "ok", 1, "sessions", arr, "database",
		    cmd_identity_json(&st)));
	} else if (n == 0) {
		printf("\nno drain sessions yet (a supervisor run records one)\n");
	} else {
		cmd_session_list_print(list, n);
	}
	store_session_list_free(list, n);
	store_close(&st);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_session_list_entry = {
	.name = "session list",
	.args = "[--json]",
	.summary = "list the drain sessions, newest first",
	.help =
	    "Lists every drain session (one per supervisor run, continued by --resume), newest\n"
	    "first: its id, when it started, when it completed (or \"running\" while its\n"
	    "supervisor is alive, or \"interrupted\" when the supervisor is gone without\n"
	    "closing it), the attempts it started, how many results succeeded, the telemetry\n"
	    "events its results collected, and last why it stopped. Reads only.\n"
	    "\n"
	    "  --json     print the list as JSON on stdout\n",
	.exec = cmd_session_list_exec,
};

/* Return a count list as a JSON array of {key_name: key, "count": n}. */
static json_t *cmd_session_counts_json(const struct store_counts *c, const char *key_name)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < c->n; i++)
		json_array_append_new(arr,
		    json_pack("{s:o, s:I}", key_name, cmd_json_text(c->items[i].key), "count",
		        (json_int_t)c->items[i].n));
	return arr;
}

/* Return a double as JSON, or null when negative (not computable). */
static json_t *cmd_session_real(double v)
{
	return v < 0 ? json_null() : json_real(v);
}

/* Return the state_json list `key` (an array), or an empty array. */
static json_t *cmd_session_state_list(json_t *state, const char *key)
{
	json_t *v = json_object_get(state, key);

	return json_is_array(v) ? json_incref(v) : json_array();
}

/* Return the summary as JSON. */
static json_t *cmd_session_summary_json(const struct store_session_summary *m)
{
	json_t *runs = json_array(), *recs = json_array(), *fpc, *czy;
	json_t *stopped_fps = cmd_session_state_list(m->state, "stopped_fingerprints");

	for (size_t i = 0; i < m->n_runs; i++)
		json_array_append_new(runs,
		    json_pack("{s:o, s:b, s:I, s:I, s:I, s:I}", "run_id",
		        cmd_json_text(m->runs[i].run_id), "stopped", m->runs[i].stopped, "total",
		        (json_int_t)m->runs[i].total, "succeeded", (json_int_t)m->runs[i].succeeded,
		        "timeouts", (json_int_t)m->runs[i].timeouts, "events",
		        (json_int_t)m->runs[i].events));
	for (size_t i = 0; i < m->n_recs; i++)
		json_array_append_new(recs,
		    json_pack(
		        "{s:s, s:o}", "id", m->recs[i].id, "text", cmd_json_text(m->recs[i].text)));
	fpc = json_object_get(m->state, "fingerprint_counts");
	fpc = json_is_object(fpc) ? json_incref(fpc) : json_object();
	czy = json_object_get(m->state, "consecutive_zero_yield");
	czy = json_is_integer(czy) ? json_incref(czy) : json_null();
	return json_pack("{s:{s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:f, s:o, s:o, "
	                 "s:{s:o, s:o, s:o}, s:o, s:I, s:I, s:o}, "
	                 "s:{s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o}, s:o, s:o}",
	    "summary", "total_processed", (json_int_t)m->processed, "succeeded",
	    (json_int_t)m->succeeded, "failed", (json_int_t)m->failed, "timeouts",
	    (json_int_t)m->timeouts, "success_rate_pct", m->success_pct, "total_events",
	    (json_int_t)m->events, "phases_with_events", (json_int_t)m->with_events,
	    "non_timeout_minutes", m->minutes_non_timeout, "overall_yield_per_minute",
	    cmd_session_real(m->overall_yield), "zero_yield_breakdown",
	    cmd_session_counts_json(&m->zero_yield, "reason"), "yield_per_minute", "median",
	    cmd_session_real(m->yield_median), "p90", cmd_session_real(m->yield_p90), "max",
	    cmd_session_real(m->yield_max), "top_fingerprints",
	    cmd_session_counts_json(&m->top_fingerprints, "fingerprint"), "llm_boundary_hits",
	    (json_int_t)m->boundary_hits, "unique_fingerprints", (json_int_t)m->unique_fingerprints,
	    "timeout_rate_pct", json_real(m->timeout_pct), "stop_conditions", "stopped_runs",
	    cmd_session_state_list(m->state, "stopped_runs"), "stopped_fingerprints", stopped_fps,
	    "repeat_limit_hits", (json_int_t)json_array_size(stopped_fps), "fingerprint_counts",
	    fpc, "consecutive_zero_yield", czy, "sampled_runs",
	    cmd_session_state_list(m->state, "sampled_runs"), "promising_runs",
	    cmd_session_state_list(m->state, "promising_runs"), "deprioritized_runs",
	    cmd_session_state_list(m->state, "deprioritized_runs"), "runs", runs, "recommendations",
	    recs);
}

/* What the drain left ("end" of its state, saved by the supervisor at its end), or JSON
 * null when the session was not closed by its supervisor. Borrowed. */
static json_t *cmd_session_end(json_t *state)
{
	json_t *end = json_object_get(state, "end");

	return json_is_object(end) ? end : json_null();
}

/* Print what the drain left: counts by state, the phases left and why, the exit status;
 * `completed`: the session has an end, which a supervisor refused at its start records
 * without this part. */
static void cmd_session_print_end(json_t *state, bool completed)
{
	static const char *const causes[][2] = { { "policy", "the drain rules" },
		{ "operator", "the operator's stop" }, { "breaker", "the breaker" },
		{ "other", "the stop" } };
	json_t *end = cmd_session_end(state), *phases = json_object_get(end, "phases"), *v, *e;
	const char *k;
	size_t i;

	printf("\nWhat is left\n");
	if (!json_is_object(end)) {
		printf("  not recorded: %s\n",
		    completed ? "the session ended before its supervisor dispatched anything" :
		                "the supervisor did not end this session itself");
		return;
	}
	printf("  phases: COMPLETE %lld, FAILED %lld, QUEUED %lld",
	    (long long)json_integer_value(json_object_get(phases, "COMPLETE")),
	    (long long)json_integer_value(json_object_get(phases, "FAILED")),
	    (long long)json_integer_value(json_object_get(phases, "QUEUED")));
	json_object_foreach(phases, k, v)
	{
		if (json_integer_value(v) > 0 && strcmp(k, "COMPLETE") != 0 &&
		    strcmp(k, "FAILED") != 0 && strcmp(k, "QUEUED") != 0)
			printf(", %s %lld", cmd_shown(k), (long long)json_integer_value(v));
	}
	printf("\n");
	if (json_array_size(json_object_get(end, "left")) == 0)
		printf("  nothing eligible left\n");
	json_array_foreach(json_object_get(end, "left"), i, e)
	{
		const char *cause = json_string_value(json_object_get(e, "cause"));
		const char *text = cause != NULL ? cause : "?";

		for (size_t c = 0; c < ARRAY_SIZE(causes); c++)
			if (cause != NULL && strcmp(cause, causes[c][0]) == 0)
				text = causes[c][1];
		printf("  %s: %lld phase(s), %s: %s\n",
		    cmd_shown(json_string_value(json_object_get(e, "run_id"))),
		    (long long)json_integer_value(json_object_get(e, "phases")), cmd_shown(text),
		    cmd_shown(json_string_value(json_object_get(e, "why"))));
	}
	printf("  exit status: %lld\n",
	    (long long)json_integer_value(json_object_get(end, "exit_status")));
}

/* Print a JSON array of strings on one line, or "(none)". */
static void cmd_session_print_list(const char *label, json_t *arr)
{
	size_t i, k = 0;
	json_t *v;

	printf("  %s:", label);
	json_array_foreach(arr, i, v)
	{
		if (json_is_string(v))
			printf("%s %s", k++ ? "," : "", cmd_shown(json_string_value(v)));
	}
	printf("%s\n", k == 0 ? " (none)" : "");
}

/* Print a yield figure, or "-" when it cannot be computed. */
static void cmd_session_print_real(const char *label, double v, const char *unit)
{
	if (v < 0)
		printf("%s -", label);
	else
		printf("%s %.2f%s", label, v, unit);
}

/* Print the summary as text, after the settings it ran with. */
static void cmd_session_print(
    const struct store_session *s, const struct store_session_summary *m, json_t *settings)
{
	json_t *stopped_fps = json_object_get(m->state, "stopped_fingerprints");
	json_t *czy = json_object_get(m->state, "consecutive_zero_yield");
	char *text = json_dumps_short(settings, JSON_COMPACT | JSON_SORT_KEYS);

	printf("\n== drain session %s ==\n", cmd_shown(s->session_id));
	printf("  started:      %s\n", cmd_shown(s->started_at));
	printf("  completed:    %s\n",
	    s->completed_at != NULL ? cmd_shown(s->completed_at) : cmd_session_status(s));
	printf("  stop reason:  %s\n", s->stop_reason != NULL ? cmd_shown(s->stop_reason) : "-");
	printf("  supervisor:   pid %lld\n", (long long)s->supervisor_pid);
	printf("  settings:     %s\n", text != NULL ? cmd_shown(text) : "{}");
	free(text);
	printf("\nBATCH DRAIN SUMMARY\n");
	printf("  Total processed:    %lld\n", (long long)m->processed);
	printf("  Succeeded:          %lld\n", (long long)m->succeeded);
	printf("  Failed:             %lld\n", (long long)m->failed);
	/* Failed counts every result that did not succeed, as the original's summary does;
	 * those that handed their phase back (a stop, a scale-down, a crash) are said apart. */
	printf("  Handed back:        %lld (of the failed: no fault of their phase, which went"
	       " back to the queue)\n",
	    (long long)s->handed_back);
	printf("  Timeouts:           %lld\n", (long long)m->timeouts);
	printf("  Success rate:       %.1f%%\n", m->success_pct);
	printf("  Phases with events: %lld\n", (long long)m->with_events);
	printf("  Total events:       %lld\n", (long long)m->events);
	cmd_session_print_real("  Overall yield:     ", m->overall_yield, " events/min");
	printf(" (over %.1f s of non-timeout results)\n", m->minutes_non_timeout * 60);
	cmd_session_print_real("  Yield per minute:   median", m->yield_median, "");
	cmd_session_print_real(", P90", m->yield_p90, "");
	cmd_session_print_real(", max", m->yield_max, "\n");
	if (m->yield_max < 0)
		putchar('\n');
	printf("\nZero-yield breakdown\n");
	if (m->zero_yield.n == 0)
		printf("  (none)\n");
	for (size_t i = 0; i < m->zero_yield.n; i++)
		printf("  %-22s %lld\n", cmd_shown(m->zero_yield.items[i].key),
		    (long long)m->zero_yield.items[i].n);
	printf("LLM boundary hits: %lld\n", (long long)m->boundary_hits);
	printf("\nStop conditions\n");
	printf("  stop reason: %s\n", s->stop_reason != NULL ? cmd_shown(s->stop_reason) : "-");
	cmd_session_print_list("stopped runs", json_object_get(m->state, "stopped_runs"));
	cmd_session_print_list("stopped fingerprints", stopped_fps);
	printf("  repeat limit hits: %zu\n", json_array_size(stopped_fps));
	if (json_is_integer(czy))
		printf("  consecutive zero-yield: %lld\n", (long long)json_integer_value(czy));
	printf("  unique fingerprints: %lld\n", (long long)m->unique_fingerprints);
	printf("\nTop fingerprints\n");
	if (m->top_fingerprints.n == 0)
		printf("  (none)\n");
	for (size_t i = 0; i < m->top_fingerprints.n; i++)
		printf("  %4lld  %s\n", (long long)m->top_fingerprints.items[i].n,
		    cmd_shown(m->top_fingerprints.items[i].key));
	printf("\nResults by run\n");
	if (m->n_runs == 0)
		printf("  (none)\n");
	for (size_t i = 0; i < m->n_runs; i++)
		printf("  %s%s: %lld/%lld succeeded, %lld timeouts, %lld events\n",
		    cmd_shown(m->runs[i].run_id), m->runs[i].stopped ? " [STOPPED]" : "",
		    (long long)m->runs[i].succeeded, (long long)m->runs[i].total,
		    (long long)m->runs[i].timeouts, (long long)m->runs[i].events);
	cmd_session_print_end(m->state, s->completed_at != NULL);
	printf("\nRecommendations\n");
	if (m->n_recs == 0)
		printf("  (none: nothing processed yet)\n");
	for (size_t i = 0; i < m->n_recs; i++)
		printf("  - %s\n", cmd_shown(m->recs[i].text));
}

/* session show: the summary of one session (default the newest). */
static int cmd_session_show_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct store_session_summary sum;
	struct store_session_result *res = NULL;
	struct store_session sess;
	struct store_err err;
	struct store st;
	const char *id = NULL;
	bool latest = false;
	json_t *settings;
	char *state_msg = NULL;
	size_t n = 0;
	int rc, ret;

	if (cmd_session_parse(ctx, argc, argv, cmd_session_show_opts, &latest, &id, &ret) != 0)
		return ret;
	if (latest && id != NULL)
		return cmd_usage_error(ctx, "give a session id or --latest, not both");
	ret = cmd_open_read(ctx, &st, true);
	if (ret != 0)
		return ret;
	rc = store_session_get(&st, id, &sess, &err);
	if (rc == 0) {
		rc = store_session_results(&st, sess.session_id, &res, &n, &err);
		if (rc != 0)
			store_session_free(&sess);
	}
	if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
		store_close(&st);
		return ret;
	}
	store_session_summarize(&sess, res, n, &sum);
	settings = cmd_session_json_col(sess.settings_json);
	if (sum.state_error != NULL)
		state_msg = xasprintf(
		    "session %s: drain_sessions.state_json (the saved state of "
		    "its drain rules): %s; its stop conditions and what the drain "
		    "left are not shown, and a supervisor refuses to resume it",
		    sess.session_id, sum.state_error);
	if (ctx->json) {
		json_t *j = cmd_session_summary_json(&sum);

		json_object_set_new(json_object_get(j, "stop_conditions"), "stop_reason",
		    cmd_json_text(sess.stop_reason));
		json_object_set_new(
		    json_object_get(j, "summary"), "handed_back", json_integer(sess.handed_back));
		json_object_set_new(j, "session", cmd_session_head_json(&sess));
		json_object_set(j, "end", cmd_session_end(sum.state));
		json_object_set(json_object_get(j, "session"), "settings", settings);
		json_object_set_new(j, "ok", json_boolean(state_msg == NULL));
		if (state_msg != NULL) {
			json_object_set_new(j, "error", json_string(store_strerror(STORE_EINVAL)));
			json_object_set_new(j, "message", cmd_json_text(state_msg));
		}
		json_object_set_new(j, "state_error", cmd_json_text(sum.state_error));
		json_object_set_new(j, "database", cmd_identity_json(&st));
		cmd_json_print(j);
	} else {
		cmd_session_print(&sess, &sum, settings);
	}
	if (state_msg != NULL) {
		fputs("autopack-ctl: ", stderr);
		cmd_print_line(stderr, state_msg);
		ret = cmd_exit_code(STORE_EINVAL);
	}
	free(state_msg);
	json_decref(settings);
	store_session_summary_free(&sum);
	store_session_results_free(res, n);
	store_session_free(&sess);
	store_close(&st);
	return ret;
}

const struct cmd_entry cmd_session_show_entry = {
	.name = "session show",
	.args = "[ID | --latest] [--json]",
	.summary = "summarise a drain session (default the newest)",
	.help =
	    "Prints the summary of one drain session, computed from its result rows (one per\n"
	    "attempt) and the drain policies' state: processed, succeeded, failed (every result\n"
	    "that did not succeed, as the original counts them) and of those the handed back\n"
	    "(attempts ended for no fault of their phase: a stop, a scale-down, a crash; the\n"
	    "phase went back to the queue), timeouts, success rate, telemetry events and overall yield (events per minute of non-timeout\n"
	    "results), median / P90 / max yield per minute (a result without events counts 0),\n"
	    "the zero-yield breakdown, LLM boundary hits, stop conditions (stop reason, stopped\n"
	    "runs and fingerprints), unique and top-5 fingerprints, results by run, the\n"
	    "session's settings, and recommendations: timeouts above 30% suggest\n"
	    "--phase-timeout-seconds 1200, below 10% suggest 600; under 1 event per phase is low\n"
	    "yield, over 5 good; more than half the runs stopped suggests\n"
	    "--max-fingerprint-repeats 5; and what the drain left: its runs' phases by state,\n"
	    "every eligible phase it did not finish with why (a run the drain rules stopped or\n"
	    "deprioritised, the batch size, the time budget, the breaker, the operator's stop)\n"
	    "and the supervisor's exit status. Reads only.\n"
	    "\n"
	    "  ID         a session id from `autopack-ctl session list`\n"
	    "  --latest   the newest session (the default)\n"
	    "  --json     print the summary as JSON on stdout\n"
	    "\n"
	    "A saved state (drain_sessions.state_json) that cannot be read, not JSON or not\n"
	    "of the shape the supervisor saves, is named on stderr (and in --json as\n"
	    "state_error, with ok false) after the rest of the summary.\n"
	    "\n"
	    "Exit status: 0 shown, 1 no such session (or none yet) or a saved state that cannot\n"
	    "be read, 2 unusable database.\n",
	.exec = cmd_session_show_exec,
};
