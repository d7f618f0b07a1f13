/* Write commands that autopack-ctl forwards while this supervisor holds the database, so
 * that the database keeps a single writer: run import, seed telemetry-run. New phases
 * join the scheduler at once. */
#include "supervisor/cmd.h"
#include "common/log.h"
#include "common/util.h"

#include <string.h>

/* Reply with what an import added, and queue its phases. */
static int write_done(struct sup *s, struct store_plan_summary *sum, struct cmd_reply *rep)
{
	json_t *ids = json_array();
	size_t i;

	for (i = 0; i < sum->n_runs; i++) {
		json_array_append_new(ids, json_string(sum->run_ids[i]));
		sched_reload_run(s, sum->run_ids[i]);
	}
	rep->body = json_pack("{s:o, s:I, s:I, s:i}", "runs", ids, "tiers", (json_int_t)sum->tiers,
	    "phases", (json_int_t)sum->phases, "supervisor_pid", (int)getpid());
	store_plan_summary_free(sum);
	lease_kick(s);
	return 0;
}

/* run import PLAN: import a plan and queue its phases. */
int cmd_run_import(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	struct store_plan_summary sum;
	struct store_err err;
	int rc;

	(void)c;
	if (req->args.n != 1 || req->args.items[0][0] != '/')
		return cmd_error(rep, "bad_argument", "run import: give the plan's absolute path");
	rc = store_plan_import_file(s->st, req->args.items[0], &sum, &err);
	if (rc != 0)
		return cmd_error(rep, rc == STORE_EINVAL ? "invalid_plan" : "store_error", "%s%s",
		    err.text, rc == STORE_EINVAL ? "; nothing was written" : "");
	log_info("imported %s: %zu run(s), %lld phase(s)", req->args.items[0], sum.n_runs,
	    (long long)sum.phases);
	return write_done(s, &sum, rep);
}

/* seed telemetry-run WORKSPACE: add the seed run and queue it. */
int cmd_seed(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	struct store_plan_summary sum;
	struct store_err err;
	int rc;

	(void)c;
	if (req->args.n != 1 || req->args.items[0][0] != '/')
		return cmd_error(rep, "bad_argument",
		    "seed telemetry-run: give the workspace's"
		    " absolute path");
	rc = store_seed_telemetry_run(s->st, req->args.items[0], &sum, &err);
	if (rc != 0)
		return cmd_error(
		    rep, rc == STORE_EEXIST ? "run_exists" : "store_error", "%s", err.text);
	log_info("seeded run %s", STORE_SEED_RUN_ID);
	return write_done(s, &sum, rep);
}
