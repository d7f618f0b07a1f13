/* watch: one live line of a running drain — done/total, percentage, phases per minute, ETA
 * (the supervisor's, from the median attempt duration per task category), failures so far,
 * workers. A terminal gets the line redrawn in place; a pipe or file one line per interval
 * (--json: one JSON object per line). When the supervisor exits, the final counts of its
 * session are read from the database and printed, and watch exits with the status the
 * supervisor recorded at the end of its session (1 if it recorded none). */
#include "common/jsondump.h"
#include "common/procs.h"
#include "common/progress.h"
#include "common/jsonload.h"
#include "common/store/dburl.h"
#include "common/store/store_session.h"
#include "common/util.h"
#include "common/numarg.h"
#include "ctl/cmd.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define WATCH_EXIT_WAIT_MS 30000 /* for the supervisor's process to go once it stopped answering */

enum {
	OPT_CONTROL = CMD_OPT_FIRST_OWN,
	OPT_INTERVAL,
	OPT_COUNT,
	OPT_SUPERVISOR
};

/* Whether process pid is gone (or a zombie nobody reaped yet), by kill(pid, 0) and the
 * state in /proc/PID/stat (procs_stat_text; an unreadable file: gone). */
static bool watch_pid_gone(pid_t pid)
{
	char buf[128];
	const char *state;

	if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
		return true;
	state = procs_stat_text(pid, buf, sizeof buf);
	return state == NULL || (state[0] == ' ' && state[1] == 'Z');
}

/* The terminal's width, or 0 when stdout is not a terminal. */
static int watch_tty_width(void)
{
	struct winsize ws;

	if (!isatty(STDOUT_FILENO))
		return 0;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0)
		return 80;
	return ws.ws_col;
}

/* Print one line (or JSON object) for a status body; false when standard output could not
 * take it (its errno in cmd_stdout_errno). */
static bool watch_show(json_t *b, bool json, int width)
{
	json_t *pool = json_object_get(b, "pool"), *q = json_object_get(b, "queue");
	const char *state = json_string_value(json_object_get(b, "state"));
	struct progress p;
	char ts[32], prog[256], line[512];

	time_iso8601(clock_wall_ms(), ts);
	progress_from_json(json_object_get(b, "progress"), &p);
	if (json) {
		json_t *o = json_pack("{s:s, s:s?, s:O?, s:{s:I, s:I}, s:I}", "time", ts, "state",
		    state, "progress", json_object_get(b, "progress"), "workers", "live",
		    json_integer_value(json_object_get(pool, "live")), "wanted",
		    json_integer_value(json_object_get(pool, "target")), "in_flight",
		    json_integer_value(json_object_get(q, "in_flight")));
		char *text = json_dumps_short(o, JSON_COMPACT);

		printf("%s\n", text != NULL ? text : "{}");
		free(text);
		json_decref(o);
		return cmd_stdout_flush();
	}
	progress_line(&p, prog, sizeof prog);
	snprintf(line, sizeof line, "%.19s %-9s %s  workers %lld/%lld  in flight %lld", ts,
	    state != NULL ? cmd_shown(state) : "-", prog,
	    (long long)json_integer_value(json_object_get(pool, "live")),
	    (long long)json_integer_value(json_object_get(pool, "target")),
	    (long long)json_integer_value(json_object_get(q, "in_flight")));
	if (width > 0) {
		if ((int)strlen(line) >= width)
			line[width - 1] = '\0';
		printf("\r%s\033[K", line);
	} else {
		printf("%s\n", line);
	}
	return cmd_stdout_flush();
}

/* The exit status the supervisor recorded at the end of its session; -1 if none. */
static int watch_exit_status(const struct store_session *ses)
{
	json_t *state = json_loads_bounded(
	    ses->state_json != NULL ? ses->state_json : "{}", 0, NULL);
	json_t *v = json_object_get(json_object_get(state, "end"), "exit_status");
	int status = json_is_integer(v) && json_integer_value(v) >= 0 &&
	        json_integer_value(v) <= 125 ?
	    (int)json_integer_value(v) :
	    -1;

	json_decref(state);
	return status;
}

/* The supervisor stopped answering: once its process is gone, print the final counts of
 * its session and return the exit code; -1 while it is still there. */
static int watch_final(struct cmd_ctx *ctx, json_t *last, bool json, int width, bool fleet)
{
	const char *sid = json_string_value(json_object_get(last, "session_id"));
	pid_t pid = (pid_t)json_integer_value(json_object_get(last, "pid"));
	uint64_t deadline = clock_mono_ms() + WATCH_EXIT_WAIT_MS;
	struct store_session ses = { 0 };
	struct store st = { 0 };
	struct store_err err;
	char *path = NULL, *url = NULL, msg[512];
	bool have = false;
	int rc = CMD_EXIT_OK, status = -1;

	/* Through the database: no longer live there, it is gone (or lost); its pid is
	 * another host's. */
	while (!fleet && !watch_pid_gone(pid)) {
		if (clock_mono_ms() > deadline)
			return -1;
		poll(NULL, 0, 100);
	}
	if (width > 0)
		printf("\n");
	if (dburl_resolve(ctx->db_flag, &path, &url, NULL, msg, sizeof msg) == 0 &&
	    store_open(&st, path, url, STORE_READ, &err) == 0) {
		have = store_session_get(&st, sid, &ses, &err) == 0;
		store_close(&st);
	}
	free(path);
	free(url);
	if (have && ses.completed_at == NULL)
		rc = CMD_EXIT_REFUSED;
	else if (have)
		status = watch_exit_status(&ses);
	if (status > 0)
		rc = status;
	if (json) {
		json_t *o = json_pack("{s:b, s:I, s:s?, s:b, s:s?, s:o, s:I, s:I, s:I, s:I, s:O?}",
		    "final", true, "supervisor_pid", (json_int_t)pid, "session_id", sid,
		    "completed", have && ses.completed_at != NULL, "stop_reason",
		    have ? ses.stop_reason : NULL, "exit_status",
		    status >= 0 ? json_integer(status) : json_null(), "attempts",
		    (json_int_t)(have ? ses.attempts : 0), "succeeded",
		    (json_int_t)(have ? ses.successes : 0), "failed",
		    (json_int_t)(have ? ses.results - ses.successes - ses.handed_back : 0),
		    "handed_back", (json_int_t)(have ? ses.handed_back : 0), "progress",
		    json_object_get(last, "progress"));
		char *text = json_dumps_short(o, JSON_COMPACT);

		printf("%s\n", text != NULL ? text : "{}");
		free(text);
		json_decref(o);
	} else if (have) {
		char tail[32] = "", back[48] = "";

		if (status >= 0)
			snprintf(tail, sizeof tail, "; exit status %d", status);
		if (ses.handed_back > 0)
			snprintf(
			    back, sizeof back, ", %lld handed back", (long long)ses.handed_back);
		printf("supervisor pid %d exited; session %s %s (%s): %lld attempt(s), %lld"
		       " succeeded, %lld failed%s%s\n",
		    (int)pid, cmd_shown(ses.session_id),
		    ses.completed_at != NULL ? "ended" : "did not record its end",
		    ses.stop_reason != NULL ? cmd_shown(ses.stop_reason) : "no stop reason",
		    (long long)ses.attempts, (long long)ses.successes,
		    (long long)(ses.results - ses.successes - ses.handed_back), back, tail);
	} else {
		struct progress p;
		char line[256];

		progress_from_json(json_object_get(last, "progress"), &p);
		progress_line(&p, line, sizeof line);
		printf("supervisor pid %d exited; last seen: %s\n", (int)pid, line);
	}
	cmd_stdout_flush();
	if (have && ses.completed_at == NULL && fleet)
		fprintf(stderr,
		    "autopack-ctl: the supervisor is no longer live and session %s has not ended:"
		    " other supervisors may still drain it (autopack-ctl status), or it was"
		    " killed or declared lost; see its log\n",
		    sid != NULL ? cmd_shown(sid) : "?");
	else if (have && ses.completed_at == NULL)
		fprintf(stderr,
		    "autopack-ctl: the supervisor exited without recording the end of session %s"
		    " (killed, crashed, or its database was lost); see its log\n",
		    sid != NULL ? cmd_shown(sid) : "?");
	if (have)
		store_session_free(&ses);
	return rc;
}

/* watch: a progress line every interval until the supervisor exits or N lines are shown. */
static int exec_watch(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		CMD_OPTS_COMMON,
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "interval", required_argument, NULL, OPT_INTERVAL },
		{ "count", required_argument, NULL, OPT_COUNT },
		{ "supervisor", required_argument, NULL, OPT_SUPERVISOR },
		{ NULL, 0, NULL, 0 },
	};
	const char *control = NULL;
	int64_t target = 0;
	bool fleet = false;
	long interval_ms = 1000, count = 0, shown = 0;
	int o, exit_code = 0, rc, width;
	bool json = ctx->json;
	json_t *last = NULL;
	char err[1024];

	cmd_json_lines = true;
	while ((o = cmd_getopt(ctx, argc, argv, opts, &exit_code)) != -1) {
		long long id;
		double v;

		switch (o) {
		case CMD_OPT_DONE: return exit_code;
		case OPT_CONTROL:
			if ((exit_code = cmd_path_given(ctx, "--control", optarg)) != 0)
				return exit_code;
			control = optarg;
			break;
		case OPT_SUPERVISOR:
			if (numarg_ll(optarg, &id) != 0 || id <= 0)
				return cmd_usage_error(
				    ctx, "--supervisor: \"%s\" is not a supervisor id", optarg);
			target = id;
			break;
		case OPT_INTERVAL:
			if (numarg_double(optarg, &v) != 0 || !(v >= 0.1 && v <= 3600))
				return cmd_usage_error(ctx,
				    "--interval: \"%s\" is not a number of seconds from 0.1 to 3600",
				    optarg);
			interval_ms = (long)(v * 1000);
			break;
		case OPT_COUNT:
			if (numarg_ll(optarg, &id) != 0 || id < 1 || id > LONG_MAX)
				return cmd_usage_error(
				    ctx, "--count: \"%s\" is not a positive number", optarg);
			count = (long)id;
			break;
		default: return cmd_usage_error(ctx, "unexpected option");
		}
	}
	if (optind != argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	if (control != NULL && target > 0)
		return cmd_usage_error(ctx, "--supervisor and --control name a supervisor twice");
	json = json || ctx->json;
	width = json ? 0 : watch_tty_width();
	for (;;) {
		struct live_reply r;

		rc = 0;
		if (control == NULL)
			rc = cmd_fleet_fetch(ctx, &target, "status", &r, &fleet, err, sizeof err);
		if (!fleet && target > 0)
			return cmd_usage_error(ctx,
			    "--supervisor applies to a PostgreSQL database, which several supervisors"
			    " may share");
		if (!fleet)
			rc = cmd_live_fetch(ctx, control, "status", NULL, 0, &r, err, sizeof err);
		if (rc == 0) {
			json_decref(last);
			last = json_incref(r.body);
			cmd_live_reply_free(&r);
			/* Output that cannot be written (a full disk, a closed descriptor) ends
			 * the watch: main says why, rather than it go on for ever unread. */
			if (!watch_show(last, json, width))
				break;
			if (count > 0 && ++shown >= count)
				break;
		} else if (last == NULL) {
			return cmd_fail(ctx, rc, "%s", err);
		} else if ((rc = watch_final(ctx, last, json, width, fleet)) >= 0) {
			json_decref(last);
			return rc;
		}
		poll(NULL, 0, (int)interval_ms);
	}
	if (width > 0)
		printf("\n");
	json_decref(last);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_watch_entry = {
	"watch",
	"[--interval S] [--count N] [--json] [--control PATH | --supervisor ID]",
	"one live line of a drain's progress and ETA",
	"Show the drain's progress every --interval seconds (default 1): phases done of the\n"
	"total, the percentage, phases finished per minute, the ETA (from the median attempt\n"
	"duration per task category in this database), failed attempts so far, workers and\n"
	"attempts in flight. A terminal gets one line redrawn in place; a pipe or a file one\n"
	"line per interval; --json one JSON object per line. Stops after --count N lines, or\n"
	"when the supervisor exits: then it prints the final counts of its session (read from\n"
	"the database) and exits with the status the supervisor recorded (0 drained, 4 the\n"
	"breaker, 5 work left by the drain rules), or 1 when the session did not record its\n"
	"end (killed, crashed, database lost). On PostgreSQL it follows one supervisor\n"
	"through the database: --supervisor ID, or the first live one (autopack-ctl status\n"
	"lists them); its line shows that supervisor's workers and in-flight attempts.\n" CMD_LIVE_HELP_TAIL,
	exec_watch,
};
