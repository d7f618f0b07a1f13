/* The seed commands: seed telemetry-run. */
#include "ctl/cmd.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>

#define CMD_SEED_DEFAULT_WORKSPACE "autopack-workspace"

enum {
	CMD_OPT_WORKSPACE = CMD_OPT_FIRST_OWN
};

static const struct option cmd_seed_opts[] = {
	CMD_OPTS_COMMON,
	{ "workspace", required_argument, NULL, CMD_OPT_WORKSPACE },
	{ NULL, 0, NULL, 0 },
};

/* seed telemetry-run: add the ten-phase telemetry collection run. */
static int cmd_seed_telemetry_run_exec(struct cmd_ctx *ctx, int argc, char **argv)
{
	const char *ws_arg = CMD_SEED_DEFAULT_WORKSPACE;
	struct store_plan_summary sum;
	struct store_err err;
	struct store st;
	char *ws;
	int c, lock_fd, rc, ret = CMD_EXIT_OK;

	while ((c = cmd_getopt(ctx, argc, argv, cmd_seed_opts, &ret)) != -1) {
		if (c == CMD_OPT_DONE)
			return ret;
		ws_arg = optarg;
	}
	if (optind != argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	if (ws_arg[0] == '\0')
		return cmd_usage_error(ctx, "--workspace needs a directory");
	ws = store_path_absolute(ws_arg, NULL);
	if (ws == NULL)
		return cmd_fail(ctx, STORE_EIO, "cannot read the current directory");
	{
		bool forwarded;

		ret = cmd_live_forward(ctx, "seed telemetry-run", &ws, 1, &forwarded);
		if (forwarded) {
			free(ws);
			return ret;
		}
	}
	ret = cmd_open_write(ctx, &st, &lock_fd);
	if (ret != 0) {
		free(ws);
		return ret;
	}
	rc = store_seed_telemetry_run(&st, ws, &sum, &err);
	if (rc != 0) {
		ret = cmd_fail(ctx, rc, "%s", err.text);
	} else {
		fprintf(cmd_text_out(ctx),
		    "seeded run %s: %lld tier, %lld phases (implementation 6, tests 3, docs 1), "
		    "all QUEUED\nworkspace: %s (deliverables go under "
		    "examples/telemetry_utils/ there)\n",
		    STORE_SEED_RUN_ID, (long long)sum.tiers, (long long)sum.phases, ws);
		json_t *woken = cmd_fleet_woken(&st, true, cmd_text_out(ctx));

		if (ctx->json)
			cmd_json_print(json_pack("{s:b, s:s, s:I, s:I, s:s, s:o, s:o?}", "ok", 1,
			    "run_id", STORE_SEED_RUN_ID, "tiers", (json_int_t)sum.tiers, "phases",
			    (json_int_t)sum.phases, "workspace", ws, "database",
			    cmd_identity_json(&st), "supervisors_woken", woken));
		else
			json_decref(woken);
		store_plan_summary_free(&sum);
	}
	cmd_close_write(&st, lock_fd);
	free(ws);
	return ret;
}

const struct cmd_entry cmd_seed_telemetry_run_entry = {
	.name = "seed telemetry-run",
	.args = "[--workspace DIR] [--json]",
	.summary = "add the ten-phase telemetry collection run",
	.help =
	    "Adds run " STORE_SEED_RUN_ID " (token_cap 500000, max_phases 15): tier T1\n"
	    "\"Telemetry Collection Tier\" with ten small phases (six implementation, three\n"
	    "tests, one docs) whose deliverables go under examples/telemetry_utils/ in the\n"
	    "workspace, each with a python3 check command. Refused if the run exists.\n"
	    "\n"
	    "  --workspace DIR  where deliverables are written (default ./" CMD_SEED_DEFAULT_WORKSPACE
	    ",\n"
	    "                   stored as an absolute path, created if missing)\n"
	    "  --json           print the result as JSON on stdout (the banner goes to stderr)\n",
	.exec = cmd_seed_telemetry_run_exec,
};
