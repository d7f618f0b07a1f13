/* Write commands that autopack-ctl forwards while this supervisor holds the database, so
 * that the database keeps a single writer: run import, seed telemetry-run. New phases
 * join the scheduler at once. */
#include "supervisor/cmd.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* 0 when the file at `path` is the one autopack-ctl read, whose "device:inode" it sent as
 * `devino`; else a refusal naming both: a supervisor with a /tmp or a file system of its
 * own (systemd's PrivateTmp=, which the shipped unit sets; a container) opens another
 * file under the same name, or none, and would import a plan the operator never gave, or
 * fail saying a file the operator sees does not exist. */
static int import_same_file(const char *path, const char *devino, struct cmd_reply *rep)
{
	static const char why[] =
	    "it runs with a /tmp or a file system of its own (systemd's PrivateTmp=, a "
	    "container), or the file was replaced meanwhile: put the plan where both see the "
	    "same file (beside the database, for one), or import it with the supervisor "
	    "stopped; nothing was written";
	char here[48];
	struct stat sb;

	if (stat(path, &sb) != 0)
		return cmd_error(rep, "invalid_plan",
		    "%s: this supervisor (pid %d) cannot open the plan autopack-ctl read there "
		    "(%s): %s",
		    path, (int)getpid(), strerror(errno), why);
	snprintf(here, sizeof here, "%llu:%llu", (unsigned long long)sb.st_dev,
	    (unsigned long long)sb.st_ino);
	if (strcmp(here, devino) == 0)
		return 0;
	return cmd_error(rep, "invalid_plan",
	    "%s: the file this supervisor (pid %d) finds there (device:inode %s) is not the "
	    "one autopack-ctl read (%s): %s",
	    path, (int)getpid(), here, devino, why);
}

/* run import PLAN [DEVICE:INODE]: import a plan and queue its phases; with the plan's
 * device:inode as autopack-ctl saw it, only from that file. */
int cmd_run_import(
    struct sup *s, struct ctl_conn *c, const struct proto_request *req, struct cmd_reply *rep)
{
	struct store_plan_summary sum;
	struct store_err err;
	int rc;

	(void)c;
	if (req->args.n < 1 || req->args.n > 2 || req->args.items[0][0] != '/')
		return cmd_error(rep, "bad_argument", "run import: give the plan's absolute path");
	if (req->args.n == 2 && import_same_file(req->args.items[0], req->args.items[1], rep) != 0)
		return -1;
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
