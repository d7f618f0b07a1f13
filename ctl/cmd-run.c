/* The run commands: run import. */
#include "ctl/cmd.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How many run ids the text output names; --json lists them all. */
#define CMD_RUN_IDS_SHOWN 10

/* The plan's name in messages when it is read from standard input (`-`). */
#define CMD_RUN_STDIN "standard input"

static const struct option cmd_run_import_opts[] = {
	CMD_OPTS_COMMON,
	{ NULL, 0, NULL, 0 },
};

/* run import PLAN.json: load runs, tiers and phases from a plan, all or nothing. */
static int cmd_run_import_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	struct store_plan_summary sum;
	struct store_plan_text pt;
	struct store_err err;
	struct store st;
	const char *plan;
	bool from_stdin;
	int c, lock_fd, rc, ret = CMD_EXIT_OK;

	while ((c = cmd_getopt(ctx, argc, argv, cmd_run_import_opts, &ret)) != -1)
		if (c == CMD_OPT_DONE)
			return ret;
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
	rc = from_stdin ? store_plan_read_fd(STDIN_FILENO, CMD_RUN_STDIN, &pt, &err) :
	                  store_plan_read(plan, false, &pt, &err);
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
	.args = "PLAN.json|- [--json]",
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
	    "\n"
	    "  --json     print the result as JSON on stdout (the banner goes to stderr)\n",
	.exec = cmd_run_import_exec,
};
