/* What a control command did, said in one line: the text autopack-ctl prints for the
 * supervisor's reply to pause, resume, scale, stop and cancel (over the control socket or
 * through a shared database), in place of the reply's JSON, which --json prints. */
#include "ctl/cmd.h"
#include "common/jsondump.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integer member `k` of `o`, `dflt` when absent. */
static long long said_int(json_t *o, const char *k, long long dflt)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

/* String member `k` of `o` as a terminal may show it, "?" when absent. */
static const char *said_str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? cmd_shown(s) : "?";
}

/* "N attempt(s) in flight". */
static void said_in_flight(FILE *out, long long n)
{
	fprintf(out, "%lld attempt%s in flight", n, n == 1 ? "" : "s");
}

/* pause: whether it was paused already, and what is in flight. */
static void said_pause(json_t *b, FILE *out)
{
	long long n = said_int(b, "in_flight", -1);

	fputs(json_is_true(json_object_get(b, "was_paused")) ? "paused already: nothing changed" :
	                                                       "paused: no new phase is dispatched",
	    out);
	if (n >= 0) {
		fputs("; ", out);
		said_in_flight(out, n);
		fputs(n > 0 ? " finish" : "", out);
	}
	fputs(" (autopack-ctl resume dispatches again)\n", out);
}

/* resume: whether it was paused, and whether the breaker was reset. */
static void said_resume(json_t *b, FILE *out)
{
	fputs(json_is_true(json_object_get(b, "was_paused")) ? "resumed: dispatching again" :
	                                                       "not paused: dispatching as before",
	    out);
	if (json_is_true(json_object_get(b, "breaker_reset")))
		fputs("; the crash-loop breaker was reset and the pool brought back", out);
	fputc('\n', out);
}

/* scale: from how many workers to how many. */
static void said_scale(json_t *b, FILE *out)
{
	long long from = said_int(b, "from", -1), to = said_int(b, "to", -1);

	if (from == to)
		fprintf(out, "the pool stays at %lld worker%s: nothing changed\n", to,
		    to == 1 ? "" : "s");
	else
		fprintf(out, "scaled the pool from %lld to %lld worker%s%s\n", from, to,
		    to == 1 ? "" : "s",
		    to > from ? "" :
		        json_is_true(json_object_get(b, "force")) ?
		                " (forced: busy workers stopped, their phases queued again)" :
		                " (idle workers retire first, busy ones after their phase)");
}

/* stop: how, and what is in flight. */
static void said_stop(json_t *b, FILE *out)
{
	long long n = said_int(b, "in_flight", 0), timeout = said_int(b, "timeout_seconds", -1);

	if (strcmp(said_str(b, "mode"), "now") == 0) {
		fputs("stopping now: ", out);
		said_in_flight(out, n);
		fputs(n > 0 ? " killed, their phases queued again; " : "; ", out);
		fputs("the supervisor exits\n", out);
		return;
	}
	fputs("stopping: nothing new is dispatched; ", out);
	said_in_flight(out, n);
	fputs(n > 0 ? " finish, then the supervisor exits" : ", the supervisor exits", out);
	if (timeout >= 0)
		fprintf(out, " (what still runs after %lld s is killed, its phase queued again)",
		    timeout);
	fputc('\n', out);
}

/* cancel: the phase and what became of it. */
static void said_cancel(json_t *b, FILE *out)
{
	const char *state = said_str(b, "state");

	fprintf(out, "%s/%s: ", said_str(b, "run_id"), said_str(b, "phase_id"));
	if (strcmp(state, "cancelling") == 0)
		fprintf(out, "cancelling: its attempt %lld is stopped, then the phase is SKIPPED\n",
		    said_int(b, "attempt_id", 0));
	else if (json_is_string(json_object_get(b, "attempt_outcome")))
		fprintf(out, "%s (its attempt %lld had ended %s before the cancel came)\n", state,
		    said_int(b, "attempt_id", 0), said_str(b, "attempt_outcome"));
	else
		fprintf(out, "%s\n", state);
}

/* The control commands whose reply is said in a line, and how. */
static const struct said {
	const char *cmd;
	void (*say)(json_t *b, FILE *out);
} saids[] = {
	{ "pause", said_pause },
	{ "resume", said_resume },
	{ "scale", said_scale },
	{ "stop", said_stop },
	{ "cancel", said_cancel },
};

/* Whether `cmd` is one of them. */
bool cmd_control_said(const char *cmd)
{
	for (size_t i = 0; i < sizeof saids / sizeof saids[0]; i++)
		if (strcmp(saids[i].cmd, cmd) == 0)
			return true;
	return false;
}

/* Say what `cmd` did from its reply's body; any other command's body as compact JSON
 * after "done: ". */
void cmd_control_say(const char *cmd, json_t *body, FILE *out)
{
	char *s;

	for (size_t i = 0; i < sizeof saids / sizeof saids[0]; i++)
		if (strcmp(saids[i].cmd, cmd) == 0) {
			saids[i].say(body, out);
			return;
		}
	s = json_dumps_short(body, JSON_COMPACT | JSON_SORT_KEYS);
	fprintf(out, "done: %s\n", s != NULL ? cmd_shown(s) : "");
	free(s);
}
