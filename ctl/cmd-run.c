/* The run commands: run import. */
#include "ctl/cmd.h"
#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How many run ids the text output names; --json lists them all. */
#define CMD_RUN_IDS_SHOWN 10

/* The plan's name in messages when it is read from standard input (`-`). */
#define CMD_RUN_STDIN "standard input"

enum {
	OPT_WAIT = CMD_OPT_FIRST_OWN
};

static const struct option cmd_run_import_opts[] = {
	CMD_OPTS_COMMON,
	{ "wait", no_argument, NULL, OPT_WAIT },
	{ NULL, 0, NULL, 0 },
};

/* Set err to the formatted message; returns STORE_EINVAL. */
__attribute__((format(printf, 2, 3))) static int run_fail(
    struct store_err *err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->text, sizeof err->text, fmt, ap);
	va_end(ap);
	return STORE_EINVAL;
}

/* The most bytes read from a FIFO to learn whether it has a writer. */
#define CMD_RUN_PROBE 4096

/* Read the plan from the FIFO at `path`. It is opened without waiting (O_NONBLOCK) and
 * read once: nothing and no writer (end of file at once) is refused, unless `wait_writer`, which
 * opens it again and waits for a writer as a plain open does. With a writer, the rest is
 * read to its end, as a pipe (store_plan_read_fd). 0, or STORE_EINVAL with err naming
 * the FIFO and why. */
static int cmd_run_read_fifo(
    const char *path, bool wait_writer, struct store_plan_text *pt, struct store_err *err)
{
	char head[CMD_RUN_PROBE];
	ssize_t got;
	char *text;
	int fd, rc;

	memset(pt, 0, sizeof *pt);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return run_fail(err, "%s: cannot read the plan: %s", path, strerror(errno));
	do
		got = read(fd, head, sizeof head);
	while (got < 0 && errno == EINTR);
	if (got < 0 && errno != EAGAIN) {
		rc = errno;
		close(fd);
		return run_fail(err, "%s: cannot read the plan: %s", path, strerror(rc));
	}
	if (got == 0) {
		close(fd);
		if (!wait_writer)
			return run_fail(err,
			    "%s: a FIFO that no process has open for writing: there is no plan to "
			    "read (start the program that writes it first, or pass --wait to wait "
			    "for one)",
			    path);
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return run_fail(err, "%s: cannot read the plan: %s", path, strerror(errno));
		got = 0;
	} else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
		rc = errno;
		close(fd);
		return run_fail(err, "%s: cannot read the plan: %s", path, strerror(rc));
	}
	rc = store_plan_read_fd(fd, path, pt, err);
	close(fd);
	if (rc != 0 || got <= 0)
		return rc;
	if (pt->len + (size_t)got > STORE_PLAN_MAX) {
		store_plan_text_free(pt);
		return run_fail(
		    err, "%s: the plan is larger than %d MiB", path, STORE_PLAN_MAX >> 20);
	}
	/* The bytes the probe read come first. */
	text = xmalloc(pt->len + (size_t)got + 1);
	memcpy(text, head, (size_t)got);
	memcpy(text + got, pt->text, pt->len);
	pt->len += (size_t)got;
	text[pt->len] = '\0';
	free(pt->text);
	pt->text = text;
	return 0;
}

/* run import PLAN.json: load runs, tiers and phases from a plan, all or nothing. */
static int cmd_run_import_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct store_plan_summary sum;
	struct store_plan_text pt;
	struct store_err err;
	struct store st;
	const char *plan;
	bool from_stdin, wait_writer = false;
	struct stat fsb;
	int c, lock_fd, rc, ret = CMD_EXIT_OK;

	while ((c = cmd_getopt(ctx, argc, argv, cmd_run_import_opts, &ret)) != -1) {
		if (c == CMD_OPT_DONE)
			return ret;
		if (c == OPT_WAIT)
			wait_writer = true;
	}
	if (optind == argc)
		return cmd_usage_error(ctx, "missing the plan file");
	if (optind + 1 != argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	plan = argv[optind];
	if ((ret = cmd_path_given(ctx, "the plan file's name", plan)) != 0)
		return ret;
	from_stdin = strcmp(plan, "-") == 0;
	/* The database must be usable; then the plan is read before anything is locked, as a
	 * plan on a pipe may wait for its writer. */
	ret = cmd_open_read(ctx, &st, false);
	if (ret != 0)
		return ret;
	store_close(&st);
	if (from_stdin && isatty(STDIN_FILENO))
		fprintf(stderr,
		    "autopack-ctl run import: reading the plan from the terminal; end "
		    "it with Ctrl-D\n");
	if (from_stdin)
		rc = store_plan_read_fd(STDIN_FILENO, CMD_RUN_STDIN, &pt, &err);
	else if (stat(plan, &fsb) == 0 && S_ISFIFO(fsb.st_mode))
		rc = cmd_run_read_fifo(plan, wait_writer, &pt, &err);
	else
		rc = store_plan_read(plan, false, &pt, &err);
	if (rc != 0)
		return cmd_fail(ctx, rc, "%s; nothing was written", err.text);
	if (pt.regular) {
		/* The supervisor opens the plan by its path: it is sent the file's device:inode
		 * too, and refuses another file it may find under that name (a private /tmp).
		 * The path is resolved here: /dev/stdin, or a link followed by "..", names
		 * another file in the supervisor. */
		char devino[48], *args[2] = { realpath(plan, NULL), devino };
		struct stat sb;
		bool forwarded;

		if (args[0] == NULL || stat(args[0], &sb) != 0) {
			const char *cause = strerror(errno);

			free(args[0]);
			store_plan_text_free(&pt);
			return cmd_fail(ctx, STORE_EINVAL,
			    "%s: cannot read the plan: %s; nothing was written", plan, cause);
		}
		snprintf(devino, sizeof devino, "%llu:%llu", (unsigned long long)sb.st_dev,
		    (unsigned long long)sb.st_ino);
		ret = cmd_live_forward(ctx, "run import", args, 2, &forwarded);
		free(args[0]);
		if (forwarded) {
			store_plan_text_free(&pt);
			return ret;
		}
	}
	if (!pt.regular)
		ctx->busy_advice = "the plan is no regular file (a pipe, standard input), and a "
		                   "running supervisor reads a plan from its file: write the plan "
		                   "to a file and import that";
	ret = cmd_open_write(ctx, &st, &lock_fd);
	ctx->busy_advice = NULL;
	if (ret != 0) {
		store_plan_text_free(&pt);
		return ret;
	}
	rc = store_plan_import(
	    &st, pt.text, pt.len, pt.base_dir, from_stdin ? CMD_RUN_STDIN : plan, &sum, &err);
	store_plan_text_free(&pt);
	if (rc != 0) {
		ret = cmd_fail(
		    ctx, rc, "%s%s", err.text, rc == STORE_EINVAL ? "; nothing was written" : "");
	} else {
		json_t *ids = json_array(), *woken;
		FILE *out = cmd_text_out(ctx);

		fprintf(out, "imported %s: %zu run%s (",
		    from_stdin ? CMD_RUN_STDIN : cmd_shown(plan), sum.n_runs,
		    sum.n_runs == 1 ? "" : "s");
		for (size_t i = 0; i < sum.n_runs; i++) {
			if (i < CMD_RUN_IDS_SHOWN)
				fprintf(out, "%s%s", i ? ", " : "", sum.run_ids[i]);
			json_array_append_new(ids, json_string(sum.run_ids[i]));
		}
		if (sum.n_runs > CMD_RUN_IDS_SHOWN)
			fprintf(out, " and %zu more", sum.n_runs - CMD_RUN_IDS_SHOWN);
		fprintf(out, "), %lld tier%s, %lld phase%s, all QUEUED\n", (long long)sum.tiers,
		    sum.tiers == 1 ? "" : "s", (long long)sum.phases, sum.phases == 1 ? "" : "s");
		woken = cmd_fleet_woken(&st, true, out);
		if (ctx->json)
			cmd_json_print(json_pack("{s:b, s:o, s:I, s:I, s:o, s:o?}", "ok", 1, "runs",
			    ids, "tiers", (json_int_t)sum.tiers, "phases", (json_int_t)sum.phases,
			    "database", cmd_identity_json(&st), "supervisors_woken", woken));
		else {
			json_decref(ids);
			json_decref(woken);
		}
		store_plan_summary_free(&sum);
	}
	cmd_close_write(&st, lock_fd);
	return ret;
}

const struct cmd_entry cmd_run_import_entry = {
	.name = "run import",
	.args = "PLAN.json|- [--wait] [--json]",
	.summary = "load runs, tiers and phases from a JSON plan",
	.help =
	    "Loads a plan (README, \"Plan files\"). The whole plan is checked first, against the\n"
	    "database too; the first error names its JSON path, e.g.\n"
	    "  plan.json: runs[0].tiers[1].phases[2].scope.deliverables[0]: expected string\n"
	    "and then nothing is written. Otherwise everything is written in one transaction.\n"
	    "A run entry with \"append\": true adds tiers to an existing run. Relative\n"
	    "workspaces are resolved against the plan file's directory. While a supervisor\n"
	    "holds an SQLite database, the import goes through it; on PostgreSQL, every live\n"
	    "supervisor is woken to take the new phases at once, and the output names them.\n"
	    "A plan named - is read from standard input (a pipe: `gen-plan | autopack-ctl run\n"
	    "import -`), its relative workspaces resolved against the current directory; it\n"
	    "is refused while a supervisor holds an SQLite database, which reads a plan from\n"
	    "a file (a file named - is ./-).\n"
	    "A plan that is a FIFO (mkfifo) is read as a pipe; one that no process has open\n"
	    "for writing is refused at once (exit 1), not waited on, unless --wait.\n"
	    "\n"
	    "  --wait     a FIFO with no writer yet: wait for one\n"
	    "  --json     print the result as JSON on stdout (the banner goes to stderr)\n",
	.exec = cmd_run_import_exec,
};
