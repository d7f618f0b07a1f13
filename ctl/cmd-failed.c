/* failed: the failed and stopped phases, grouped by failure fingerprint, each with its
 * reason, message, check logs and the end of its stderr. Reads only, so it works with or
 * without a supervisor on the database. */
#include "ctl/cmd.h"
#include "common/checklog.h"
#include "common/fingerprint/fingerprint.h"
#include "common/store/db.h"
#include "common/store/store_failed.h"
#include "common/util.h"
#include "common/vocab.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAILED_TAIL_JSON 2048  /* bytes of stderr in --json */
#define FAILED_TAIL_LINES 6    /* lines of stderr in the text listing */
#define FAILED_MESSAGE_MAX 400 /* bytes of a message in the text listing */

enum {
	OPT_RUN = CMD_OPT_FIRST_OWN,
	OPT_SINCE
};

static const struct option cmd_failed_opts[] = {
	CMD_OPTS_COMMON,
	{ "run", required_argument, NULL, OPT_RUN },
	{ "since", required_argument, NULL, OPT_SINCE },
	{ NULL, 0, NULL, 0 },
};

/* Turn --since's value into a database timestamp in out (a timestamp), or an age in
 * *age_us (such as 90m, 6h, 2d; else -1), counted back from the database's time once it is
 * open (on PostgreSQL the server's clock, by which the attempts' ends are written); -1 if
 * it is neither. */
static int failed_since(const char *v, char out[32], int64_t *age_us)
{
	static const struct {
		char unit;
		int64_t us;
	} units[] = { { 's', 1000000LL }, { 'm', 60000000LL }, { 'h', 3600000000LL },
		{ 'd', 86400000000LL } };
	char *end;
	long long n;

	*age_us = -1;
	if (time_db_parse(v, out) == 0)
		return 0;
	if (v[0] < '0' || v[0] > '9')
		return -1;
	n = strtoll(v, &end, 10);
	if (end == v || n < 0 || n > 100000 || end[0] == '\0' || end[1] != '\0')
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++) {
		if (units[i].unit == end[0]) {
			*age_us = n * units[i].us;
			return 0;
		}
	}
	return -1;
}

/* Whether two listed phases failed the same way: same fingerprint, or with none, the same
 * reason. */
static bool failed_same_class(const struct store_failed *a, const struct store_failed *b)
{
	if (a->fingerprint != NULL || b->fingerprint != NULL)
		return a->fingerprint != NULL && b->fingerprint != NULL &&
		    strcmp(a->fingerprint, b->fingerprint) == 0;
	if (a->reason == NULL || b->reason == NULL)
		return a->reason == b->reason;
	return a->reason_len == b->reason_len && memcmp(a->reason, b->reason, a->reason_len) == 0;
}

/* The check log of a listed phase's last attempt if the file exists (heap), else NULL. */
static char *failed_log(const struct store_failed *f, const char *stream)
{
	char *p;

	if (f->attempt_id == 0 || f->workspace == NULL || f->workspace[0] == '\0')
		return NULL;
	p = checklog_path(f->workspace, f->run_id, f->phase_id, f->attempt_number, stream);
	if (access(p, F_OK) == 0)
		return p;
	free(p);
	return NULL;
}

/* Whether a phase is FAILED (the others listed are stopped: QUEUED or SKIPPED after a
 * failure). */
static bool failed_is_failed(const struct store_failed *f)
{
	return phase_state_parse(f->state) == PHASE_FAILED;
}

/* One listed phase as JSON. */
static json_t *failed_phase_json(const struct store_failed *f)
{
	char *out = failed_log(f, "stdout"), *err = failed_log(f, "stderr");
	char tail[FAILED_TAIL_JSON];
	json_t *j;

	tail[0] = '\0';
	if (err != NULL)
		checklog_tail(err, tail, sizeof tail);
	j = json_pack("{s:o, s:o, s:b, s:o, s:s, s:I, s:I, s:o, s:o, s:o, s:o, s:o,"
	              " s:{s:o, s:o}, s:o}",
	    "run_id", cmd_json_text(f->run_id), "phase_id", cmd_json_text(f->phase_id),
	    "run_missing", f->run_missing, "state", cmd_json_text(f->state), "status",
	    failed_is_failed(f) ? "failed" : "stopped", "attempt_id", (json_int_t)f->attempt_id,
	    "attempt_number", (json_int_t)f->attempt_number, "outcome", cmd_json_text(f->outcome),
	    "reason", cmd_json_textn(f->reason, f->reason_len), "message",
	    cmd_json_text(f->message), "ended_at", cmd_json_text(f->ended_at), "session_id",
	    cmd_json_text(f->session_id), "logs", "stdout", cmd_json_text(out), "stderr",
	    cmd_json_text(err), "stderr_tail", cmd_json_text(err != NULL ? tail : NULL));
	free(out);
	free(err);
	return j;
}

/* Print the last FAILED_TAIL_LINES lines of `text` indented under "stderr:". */
static void failed_print_tail(FILE *out, const char *text)
{
	size_t len = strlen(text);
	const char *start, *end, *p;
	bool first = true;
	int lines = 0;

	while (len > 0 && text[len - 1] == '\n')
		len--;
	end = text + len;
	for (start = end; start > text; start--)
		if (start[-1] == '\n' && ++lines == FAILED_TAIL_LINES)
			break;
	for (p = start; p < end; p += strcspn(p, "\n") + 1, first = false) {
		size_t n = strcspn(p, "\n");

		if (p + n > end)
			n = (size_t)(end - p);
		fprintf(out, "      %s| %s\n", first ? "stderr: " : "        ", cmd_shownn(p, n));
	}
}

/* Print a failure message on one line: runs of whitespace (newlines too) as one space,
 * cut at FAILED_MESSAGE_MAX bytes, shown as cmd_shown shows a text. */
static void failed_print_message(FILE *out, const char *msg)
{
	char line[FAILED_MESSAGE_MAX];
	size_t n = 0;

	for (const char *p = msg; *p != '\0' && n < FAILED_MESSAGE_MAX; p++) {
		if (isspace((unsigned char)*p)) {
			while (isspace((unsigned char)p[1]))
				p++;
			if (p[1] == '\0')
				break;
		}
		line[n++] = isspace((unsigned char)*p) ? ' ' : *p;
	}
	fprintf(out, "      message: %s%s\n", cmd_shownn(line, n),
	    strlen(msg) > FAILED_MESSAGE_MAX ? " ..." : "");
}

/* One listed phase as text. */
static void failed_phase_print(FILE *out, const struct store_failed *f)
{
	char *logs[2] = { failed_log(f, "stdout"), failed_log(f, "stderr") };
	char tail[1024];

	fprintf(
	    out, "  %s/%s  %s", cmd_shown(f->run_id), cmd_shown(f->phase_id), cmd_shown(f->state));
	if (f->run_missing)
		fprintf(out, "  (run %s: no row of runs has this id)", cmd_shown(f->run_id));
	if (f->attempt_id != 0)
		fprintf(out, "  attempt %lld (id %lld, %s)", (long long)f->attempt_number,
		    (long long)f->attempt_id, f->outcome != NULL ? cmd_shown(f->outcome) : "?");
	fprintf(out, "  %s\n", f->ended_at != NULL ? cmd_shown(f->ended_at) : "");
	if (f->message != NULL)
		failed_print_message(out, f->message);
	for (int i = 0; i < 2; i++)
		if (logs[i] != NULL)
			fprintf(out, "      log:     %s\n", cmd_shown(logs[i]));
	if (logs[1] != NULL && checklog_tail(logs[1], tail, sizeof tail) > 0)
		failed_print_tail(out, tail);
	free(logs[0]);
	free(logs[1]);
}

/* Print the retry of a class without a fingerprint: its reason as a terminal shows it
 * (which --reason accepts), in single quotes when the shell would read it otherwise. */
static void failed_print_retry_reason(FILE *out, const char *reason)
{
	static const char plain[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                            "0123456789_-.,:/=+@%";

	fputs("  retry them: autopack-ctl retry --reason ", out);
	if (reason[0] != '\0' && reason[strspn(reason, plain)] == '\0') {
		fprintf(out, "%s\n", reason);
		return;
	}
	fputc('\'', out);
	for (const char *p = reason; *p != '\0'; p++) {
		if (*p == '\'')
			fputs("'\\''", out);
		else
			fputc(*p, out);
	}
	fputs("'\n", out);
}

/* Print the groups as text: the largest detail first for the newest class. */
static void failed_print(FILE *out, const char *url, struct store_failed *v, size_t n,
    size_t *group_of, size_t ngroups, size_t nfailed)
{
	char id[FP_ID_LEN + 1];

	fprintf(out, "%s: %zu failed, %zu stopped phase%s in %zu class%s, newest first\n",
	    cmd_shown(url), nfailed, n - nfailed, n - nfailed == 1 ? "" : "s", ngroups,
	    ngroups == 1 ? "" : "es");
	for (size_t g = 0; g < ngroups; g++) {
		size_t first = SIZE_MAX, count = 0, failed = 0;

		for (size_t i = 0; i < n; i++) {
			if (group_of[i] != g)
				continue;
			count++;
			failed += failed_is_failed(&v[i]);
			if (first == SIZE_MAX)
				first = i;
		}
		fputc('\n', out);
		if (v[first].fingerprint != NULL) {
			fp_id(v[first].fingerprint, id);
			fprintf(out, "[%s] %s\n", id, cmd_shown(v[first].fingerprint));
		} else {
			fprintf(out, "[no fingerprint]\n");
		}
		fputs("  reason ", out);
		if (v[first].reason != NULL)
			cmd_print_textn(out, v[first].reason, v[first].reason_len);
		else
			fputs("unknown", out);
		fprintf(out, ", %zu phase%s, last %s\n", count, count == 1 ? "" : "s",
		    v[first].ended_at != NULL ? cmd_shown(v[first].ended_at) : "?");
		for (size_t i = first; i < n; i++)
			if (group_of[i] == g)
				failed_phase_print(out, &v[i]);
		if (failed == 0)
			fputs("  none of them is FAILED: the next drain takes the QUEUED ones "
			      "(a running supervisor, after autopack-ctl retry --stopped); "
			      "autopack-ctl retry RUN PHASE a SKIPPED one\n",
			    out);
		else if (v[first].fingerprint != NULL)
			fprintf(out, "  retry them: autopack-ctl retry --fingerprint %s\n", id);
		else if (v[first].reason != NULL)
			failed_print_retry_reason(
			    out, cmd_shownn(v[first].reason, v[first].reason_len));
	}
}

/* The groups as one JSON document. */
static json_t *failed_json(struct store *st, struct store_failed *v, size_t n, size_t *group_of,
    size_t ngroups, size_t nfailed)
{
	json_t *groups = json_array();
	char id[FP_ID_LEN + 1];

	for (size_t g = 0; g < ngroups; g++) {
		json_t *phases = json_array(), *grp = NULL;

		for (size_t i = 0; i < n; i++) {
			if (group_of[i] != g)
				continue;
			if (grp == NULL) {
				if (v[i].fingerprint != NULL)
					fp_id(v[i].fingerprint, id);
				grp = json_pack("{s:o, s:s?, s:o, s:o}", "fingerprint",
				    cmd_json_text(v[i].fingerprint), "id",
				    v[i].fingerprint != NULL ? id : NULL, "reason",
				    cmd_json_textn(v[i].reason, v[i].reason_len), "last_ended_at",
				    cmd_json_text(v[i].ended_at));
			}
			json_array_append_new(phases, failed_phase_json(&v[i]));
		}
		json_object_set_new(
		    grp, "count", json_integer((json_int_t)json_array_size(phases)));
		json_object_set_new(grp, "phases", phases);
		json_array_append_new(groups, grp);
	}
	return json_pack("{s:b, s:o, s:I, s:I, s:o}", "ok", 1, "database", cmd_identity_json(st),
	    "failed", (json_int_t)nfailed, "stopped", (json_int_t)(n - nfailed), "groups", groups);
}

/* failed [--run R] [--since T]: list the failed and stopped phases by class. */
static int cmd_failed_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct store_failed_filter f = { 0 };
	struct store_failed *v = NULL;
	struct store_err err;
	struct store st;
	size_t n = 0, ngroups = 0, nfailed = 0, *group_of;
	char since[32];
	int64_t age_us = -1;
	int c, rc, ret = CMD_EXIT_OK;

	while ((c = cmd_getopt(ctx, argc, argv, cmd_failed_opts, &ret)) != -1) {
		switch (c) {
		case CMD_OPT_DONE: return ret;
		case OPT_RUN: f.run_id = optarg; break;
		case OPT_SINCE:
			if (failed_since(optarg, since, &age_us) != 0)
				return cmd_usage_error(ctx,
				    "--since: \"%s\" is neither a timestamp (2026-12-01T10:00Z)"
				    " nor an age (90m, 6h, 2d)",
				    optarg);
			f.since = since;
			break;
		default: return cmd_usage_error(ctx, "unexpected option");
		}
	}
	if (optind != argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	if ((ret = cmd_open_read(ctx, &st, false)) != 0)
		return ret;
	if (f.since != NULL && age_us >= 0)
		time_db(db_clock_us(st.db) - age_us, since);
	rc = store_failed_list(&st, &f, &v, &n, &err);
	if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
		store_close(&st);
		return ret;
	}
	group_of = xcalloc(n + 1, sizeof *group_of);
	for (size_t i = 0; i < n; i++) {
		size_t j;

		nfailed += failed_is_failed(&v[i]);
		for (j = 0; j < i && !failed_same_class(&v[j], &v[i]); j++)
			;
		group_of[i] = j < i ? group_of[j] : ngroups++;
	}
	if (ctx->json)
		cmd_json_print(failed_json(&st, v, n, group_of, ngroups, nfailed));
	else
		failed_print(stdout, st.url, v, n, group_of, ngroups, nfailed);
	free(group_of);
	store_failed_free(v, n);
	store_close(&st);
	return CMD_EXIT_OK;
}

const struct cmd_entry cmd_failed_entry = {
	.name = "failed",
	.args = "[--run R] [--since T] [--json]",
	.summary = "show failed and stopped phases by failure class",
	.help = "Lists the FAILED phases, and the QUEUED or SKIPPED ones whose last attempt did\n"
	        "not succeed (\"stopped\": a drain left them after a failure, a stop or a\n"
	        "cancel), grouped by the failure fingerprint of their last attempt, the newest\n"
	        "class first. Each phase shows its state, last attempt, failure message, the\n"
	        "check command's log files and the end of its stderr; each class its id, for\n"
	        "autopack-ctl retry --fingerprint ID. A phase whose run has no row (another\n"
	        "program's rows) is listed and marked; retry leaves it. Control characters and\n"
	        "bytes that are not UTF-8 in what the database holds are shown escaped (\\e,\n"
	        "\\xNN; --json keeps the text); a class without a fingerprint shows the retry\n"
	        "--reason that selects it in that form. Reads only: it works while a supervisor\n"
	        "runs on the database too.\n"
	        "\n"
	        "  --run R     only run R (exit 1 when the database holds no run R)\n"
	        "  --since T   only attempts that ended at or after T: a timestamp\n"
	        "              (2026-12-01T10:00:00Z) or an age (90s, 30m, 6h, 2d), counted\n"
	        "              back from the database's clock (PostgreSQL: the server's)\n"
	        "  --json      the classes and their phases as JSON (stderr tails up to 2 KiB)\n",
	.exec = cmd_failed_exec,
};
