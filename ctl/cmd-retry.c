/* retry: queue failed phases again: one (RUN PHASE), or a class of them (--run,
 * --fingerprint, --reason, --all-failed). Through the supervisor when one holds the
 * database, else offline under the database lock; on PostgreSQL, which several
 * supervisors share, written here and every live supervisor woken. Either way in one
 * transaction, each phase recorded in control_log with who asked and why. */
#include "ctl/cmd.h"
#include "common/store/store_failed.h"
#include "common/store/store_fleet.h"
#include "common/strbuf.h"
#include "common/util.h"
#include "common/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define RETRY_ARGS_MAX 16

enum {
	OPT_RUN = CMD_OPT_FIRST_OWN,
	OPT_FINGERPRINT,
	OPT_REASON,
	OPT_ALL,
	OPT_STOPPED,
	OPT_NOTE,
	OPT_DRY,
	OPT_CONTROL
};

static const struct option cmd_retry_opts[] = {
	CMD_OPTS_COMMON,
	{ "run", required_argument, NULL, OPT_RUN },
	{ "fingerprint", required_argument, NULL, OPT_FINGERPRINT },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "all-failed", no_argument, NULL, OPT_ALL },
	{ "stopped", no_argument, NULL, OPT_STOPPED },
	{ "note", required_argument, NULL, OPT_NOTE },
	{ "dry-run", no_argument, NULL, OPT_DRY },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ NULL, 0, NULL, 0 },
};

/* Print what the supervisor retried. */
static void retry_show(json_t *b, FILE *out)
{
	json_t *list = json_object_get(b, "retried"), *p;
	size_t i;

	bool stopped = json_is_true(json_object_get(b, "stopped"));

	if (json_array_size(list) == 0) {
		fprintf(out, "nothing to retry: no %s phase matches\n",
		    stopped ? "stopped QUEUED" : "FAILED");
		return;
	}
	fprintf(out, "%s %lld %sphase%s through the supervisor (pid %lld), %s\n",
	    stopped ? "put back" : "retried", (long long)json_array_size(list),
	    stopped ? "stopped " : "", json_array_size(list) == 1 ? "" : "s",
	    (long long)json_integer_value(json_object_get(b, "supervisor_pid")),
	    stopped ? "their runs no longer stopped: it drains them now" : "now QUEUED");
	json_array_foreach(list, i, p)
	{
		fprintf(out, "  %s/%s (was %s)\n",
		    cmd_shown(json_string_value(json_object_get(p, "run_id"))),
		    cmd_shown(json_string_value(json_object_get(p, "phase_id"))),
		    cmd_shown(json_string_value(json_object_get(p, "from"))));
	}
}

/* Print (or put in JSON) the phases of v that a retry took, or with dry_run, would take;
 * on a database several supervisors share, which of them were woken to take them. */
static int retry_report(struct cmd_ctx *ctx, struct store *st, const struct store_failed *v,
    size_t n, bool dry_run, bool stopped)
{
	bool shared = !dry_run && store_fleet(st);
	json_t *list = json_array();
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		if (!dry_run && !v[i].retried)
			continue;
		k++;
		json_array_append_new(list,
		    json_pack("{s:o, s:o, s:o, s:o, s:o}", "run_id", cmd_json_text(v[i].run_id),
		        "phase_id", cmd_json_text(v[i].phase_id), "from", cmd_json_text(v[i].state),
		        "reason", cmd_json_textn(v[i].reason, v[i].reason_len), "fingerprint",
		        cmd_json_text(v[i].fingerprint)));
	}
	if (ctx->json) {
		json_t *woken = shared && k > 0 ? cmd_fleet_woken(st, false, stderr) : NULL;

		cmd_json_print(json_pack("{s:b, s:b, s:b, s:s, s:I, s:o, s:o, s:o?}", "ok", 1,
		    "dry_run", dry_run, "stopped", stopped, "via",
		    dry_run    ? "none" :
		        shared ? "database" :
		                 "offline",
		    "count", (json_int_t)k, dry_run ? "would_retry" : "retried", list, "database",
		    cmd_identity_json(st), "supervisors_woken", woken));
		return CMD_EXIT_OK;
	}
	json_decref(list);
	if (k == 0)
		printf("nothing to retry: no %s phase matches\n",
		    stopped ? "stopped QUEUED" : "FAILED");
	else if (dry_run)
		printf("would %s %zu %sphase%s (nothing written):\n",
		    stopped ? "put back" : "retry", k, stopped ? "stopped " : "",
		    k == 1 ? "" : "s");
	else if (stopped)
		printf(
		    "put back %zu stopped phase%s, their runs no longer stopped in any unfinished"
		    " session%s:\n",
		    k, k == 1 ? "" : "s",
		    shared ? "" : " (the next drain, or a --resume, takes them)");
	else
		printf("retried %zu phase%s, now QUEUED%s:\n", k, k == 1 ? "" : "s",
		    shared ? "" : " (the next drain takes them)");
	for (i = 0; i < n; i++) {
		if (!dry_run && !v[i].retried)
			continue;
		printf("  %s/%s (%s", cmd_shown(v[i].run_id), cmd_shown(v[i].phase_id),
		    cmd_shown(v[i].state));
		if (v[i].reason != NULL) {
			fputs(", ", stdout);
			cmd_print_textn(stdout, v[i].reason, v[i].reason_len);
		}
		fputs(")\n", stdout);
	}
	if (shared && k > 0)
		json_decref(cmd_fleet_woken(st, false, stdout));
	return CMD_EXIT_OK;
}

/* List what `ra` selects, and unless dry_run, retry it offline under the lock. */
static int retry_local(struct cmd_ctx *ctx, const struct store_retry_args *ra, bool dry_run)
{
	struct store_retry_who who = { .pid = getpid(), .uid = getuid(), .via = "offline" };
	struct store_failed *v = NULL;
	struct store_err err;
	struct store st;
	size_t n = 0, moved;
	int lock_fd = -1, ret, rc;

	ret = dry_run ? cmd_open_read(ctx, &st, false) : cmd_open_write(ctx, &st, &lock_fd);
	if (ret != 0)
		return ret;
	rc = store_failed_list(&st, &ra->filter, &v, &n, &err);
	if (store_fleet(&st))
		who.via = "database";
	who.selector = ra->selector;
	who.note = ra->note;
	if (rc == 0 && !dry_run && n > 0 && ra->stopped)
		rc = store_failed_release(&st, v, n, &who, &moved, &err);
	else if (rc == 0 && !dry_run && n > 0)
		rc = store_failed_retry(&st, v, n, &who, &moved, &err);
	if (rc != 0)
		ret = cmd_fail(ctx, rc, "%s", err.text);
	else
		ret = retry_report(ctx, &st, v, n, dry_run, ra->stopped);
	store_failed_free(v, n);
	if (dry_run)
		store_close(&st);
	else
		cmd_close_write(&st, lock_fd);
	return ret;
}

/* 0 when --reason `reason` names a failure reason: one of the vocabulary's (any case), or
 * one a failed or stopped phase of the database records (another program's rows may hold
 * others). Else a usage error (exit 2) saying it is unknown and listing the known ones: a
 * misspelt reason is not "nothing to retry". */
static int retry_reason_check(
    struct cmd_ctx *ctx, const char *control, const char *run_id, const char *reason)
{
	struct store_failed_filter f = { .reason = reason };
	struct store_failed *v = NULL;
	struct strbuf known = { 0 };
	struct store_err err;
	struct store st;
	char *path = NULL, *url = NULL;
	size_t n = 0;
	int rc;

	for (int r = REASON_NONE + 1; r < REASON_COUNT; r++)
		if (strcasecmp(reason, reason_name((enum reason)r)) == 0)
			return 0;
	/* With --control and no database named, the supervisor asked is the one to say. */
	rc = cmd_db_probe(ctx, &path, &url);
	free(path);
	free(url);
	if (rc != 0 && control != NULL)
		return 0;
	if ((rc = cmd_open_read(ctx, &st, false)) != 0)
		return rc;
	/* A run the database does not hold is named first, as without --reason. */
	rc = run_id != NULL ? store_run_exists(&st, run_id, &err) : 0;
	if (rc == 0)
		rc = store_failed_list(&st, &f, &v, &n, &err);
	store_failed_free(v, n);
	store_close(&st);
	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	if (n > 0)
		return 0;
	for (int r = REASON_NONE + 1; r < REASON_COUNT; r++)
		strbuf_printf(
		    &known, "%s%s", r > REASON_NONE + 1 ? ", " : "", reason_name((enum reason)r));
	rc = cmd_usage_error(ctx,
	    "--reason %s: unknown failure reason (no phase records it); the known reasons are %s",
	    reason, known.s);
	free(known.s);
	return rc;
}

/* retry: parse, then list (--dry-run), go through the supervisor, or retry offline. */
static int cmd_retry_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const char *const names[] = {
		[OPT_RUN - OPT_RUN] = "--run",
		[OPT_FINGERPRINT - OPT_RUN] = "--fingerprint",
		[OPT_REASON - OPT_RUN] = "--reason",
		[OPT_ALL - OPT_RUN] = "--all-failed",
		[OPT_STOPPED - OPT_RUN] = "--stopped",
		[OPT_NOTE - OPT_RUN] = "--note",
	};
	struct store_retry_args ra;
	char *args[RETRY_ARGS_MAX], err[512];
	const char *control = NULL;
	bool dry_run = false, forwarded;
	size_t n = 0;
	int c, ret = CMD_EXIT_OK;

	while ((c = cmd_getopt(ctx, argc, argv, cmd_retry_opts, &ret)) != -1) {
		switch (c) {
		case CMD_OPT_DONE: return ret;
		case OPT_DRY: dry_run = true; break;
		case OPT_CONTROL:
			if ((ret = cmd_path_given(ctx, "--control", optarg)) != 0)
				return ret;
			control = optarg;
			break;
		case OPT_RUN:
		case OPT_FINGERPRINT:
		case OPT_REASON:
		case OPT_ALL:
		case OPT_STOPPED:
		case OPT_NOTE:
			if (n + 2 > RETRY_ARGS_MAX)
				return cmd_usage_error(ctx, "too many options");
			args[n++] = (char *)names[c - OPT_RUN];
			if (c != OPT_ALL && c != OPT_STOPPED)
				args[n++] = optarg;
			break;
		default: return cmd_usage_error(ctx, "unexpected option");
		}
	}
	for (; optind < argc; optind++) {
		if (n + 1 > RETRY_ARGS_MAX)
			return cmd_usage_error(ctx, "too many arguments");
		args[n++] = argv[optind];
	}
	if (store_retry_args_parse(args, n, &ra, err, sizeof err) != 0)
		return cmd_usage_error(ctx, "%s", err + strlen("retry: "));
	if (ra.filter.reason != NULL &&
	    (ret = retry_reason_check(ctx, control, ra.filter.run_id, ra.filter.reason)) != 0)
		return ret;
	if (dry_run)
		return retry_local(ctx, &ra, true);
	if (control != NULL)
		return cmd_live_call(ctx, control, "retry", args, n, retry_show);
	ret = cmd_live_forward_show(ctx, "retry", args, n, retry_show, &forwarded);
	if (forwarded)
		return ret;
	return retry_local(ctx, &ra, false);
}

const struct cmd_entry cmd_retry_entry = {
	.name = "retry",
	.args = "RUN PHASE | --run R | --fingerprint FP | --reason R | --all-failed | --stopped"
	        " [--note TEXT] [--dry-run] [--json] [--control PATH]",
	.summary = "queue FAILED phases again: one, or a class of them (--stopped: stopped ones)",
	.help =
	    "Moves FAILED phases back to QUEUED, chosen by:\n"
	    "  RUN PHASE           one phase (FAILED or SKIPPED)\n"
	    "  --run R             the FAILED phases of run R\n"
	    "  --fingerprint FP    those whose last attempt failed with fingerprint FP: the\n"
	    "                      whole text, or the id autopack-ctl failed shows (6 to 12\n"
	    "                      hex digits, any case)\n"
	    "  --reason R          those whose last failure reason is R (CHECK_FAILED,\n"
	    "                      PROVIDER_ERROR, ...; any case), as it is or as\n"
	    "                      autopack-ctl failed shows it (\\x00 for a NUL byte)\n"
	    "  --all-failed        every FAILED phase\n"
	    "  --stopped           the stopped QUEUED phases (those `autopack-ctl failed`\n"
	    "                      counts as stopped: left QUEUED by a failure with attempts\n"
	    "                      left, a stop or a cancel, in a run the drain rules may have\n"
	    "                      stopped), alone or with --run, --fingerprint and --reason:\n"
	    "                      they stay QUEUED and their runs are no longer stopped or\n"
	    "                      deprioritised, so a running supervisor drains them now\n"
	    "--run, --fingerprint and --reason combine: a phase must match each one given.\n"
	    "\n"
	    "  --note TEXT  why, recorded with each phase in control_log\n"
	    "  --dry-run    list what would be retried; write nothing\n"
	    "  --json       the result as JSON\n"
	    "  --control PATH  the supervisor's control socket, when it is not the one the\n"
	    "               database records\n"
	    "\n"
	    "While an autopack-supervisor holds the database the retry goes through it (the\n"
	    "database keeps one writer) and its drain takes the phases at once, in their\n"
	    "run's order, even in a run it had stopped; otherwise autopack-ctl takes the\n"
	    "database lock and writes itself, and the next drain takes them. On PostgreSQL,\n"
	    "which supervisors on several hosts share, autopack-ctl writes itself and wakes\n"
	    "every live supervisor, which take the phases at once (the output names them),\n"
	    "and the retried phases' runs are no longer stopped or deprioritised in any\n"
	    "unfinished session. All phases are\n"
	    "moved in one transaction; each gets a control_log row (time, pid and uid of\n"
	    "who asked, \"RUN PHASE\", the former state, the selector, the note, and whether\n"
	    "it went through the supervisor). Nothing matching is not an error (exit 0);\n"
	    "a named phase that is not FAILED or SKIPPED, or a run the database does not\n"
	    "hold, is (exit 1); a --reason that is no failure reason (not one of the known\n"
	    "reasons, which the error lists, nor one a phase of the database records) is a\n"
	    "usage error (exit 2).\n",
	.exec = cmd_retry_exec,
};
