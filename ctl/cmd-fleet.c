/* Live commands on a PostgreSQL database that several supervisors share (docs/postgresql.md,
 * "Several hosts"): `status` and `workers` read every supervisor's row (what it wrote with
 * its last heartbeat); `pause`, `resume`, `scale` and `stop` are sent through the database
 * (a supervisor_commands row and a NOTIFY) to one supervisor or to every live one, and
 * their answers are awaited. With --control, the local socket is used as for SQLite. */
#include "ctl/cmd.h"
#include "common/store/store_fleet.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* How long to wait for the supervisors' answers to a command. */
#define FLEET_ANSWER_MS 30000
/* Supervisors that ended this long ago are still listed by status. */
#define FLEET_RECENT_S 600.0

/* The control socket of a supervisor: its row's, else the one its status names. */
static const char *fleet_socket(const struct fleet_member *m, json_t *status)
{
	return m->control_socket != NULL ?
	    m->control_socket :
	    json_string_value(json_object_get(status, "control_socket"));
}

/* A supervisor's row as JSON, with what it wrote at its last heartbeat as `status`. */
static json_t *fleet_member_json(const struct fleet_member *m)
{
	json_t *status = json_loads(m->status_json, 0, NULL);

	if (status == NULL)
		status = json_object();

	return json_pack("{s:I, s:s, s:I, s:s, s:s, s:s, s:f, s:f, s:s?, s:s?, s:I, s:I, s:o}",
	    "supervisor_id", (json_int_t)m->id, "host", m->host, "pid", (json_int_t)m->pid, "state",
	    m->state, "started_at", m->started_at, "heartbeat_at", m->heartbeat_at,
	    "heartbeat_age_s", m->heartbeat_age_s, "lease_timeout_s",
	    (double)m->lease_timeout_ms / 1000.0, "session_id", m->session_id, "control_socket",
	    fleet_socket(m, status), "lost_by", (json_int_t)m->lost_by, "rejected",
	    (json_int_t)m->rejected, "status", status);
}

/* Print one supervisor and its workers. */
static void fleet_member_show(const struct fleet_member *m, FILE *out)
{
	json_t *st = json_loads(m->status_json, 0, NULL), *ws, *w;
	size_t i;

	fprintf(out, "supervisor %lld  %s  %s pid %lld  heartbeat %.1f s ago (lease %.1f s)",
	    (long long)m->id, m->state, m->host, (long long)m->pid, m->heartbeat_age_s,
	    (double)m->lease_timeout_ms / 1000.0);
	if (strcmp(m->state, "live") == 0 && st != NULL)
		fprintf(out, "  workers %lld  in flight %lld  queued %lld  attempts %lld%s%s",
		    (long long)json_integer_value(json_object_get(st, "target")),
		    (long long)json_integer_value(json_object_get(st, "in_flight")),
		    (long long)json_integer_value(json_object_get(st, "queued")),
		    (long long)json_integer_value(json_object_get(st, "attempts")),
		    json_is_true(json_object_get(st, "paused")) ? "  PAUSED" : "",
		    strcmp(json_string_value(json_object_get(st, "stopping")) ?: "none", "none") !=
		            0 ?
		        "  STOPPING" :
		        "");
	if (m->lost_by > 0)
		fprintf(out, "  declared lost by supervisor %lld", (long long)m->lost_by);
	if (m->rejected > 0)
		fprintf(out, "  %lld late write(s) refused", (long long)m->rejected);
	fputc('\n', out);
	if (fleet_socket(m, st) != NULL && strcmp(m->state, "live") == 0)
		fprintf(out, "  control socket (on %s): %s\n", m->host, fleet_socket(m, st));
	ws = json_object_get(st, "workers");
	if (strcmp(m->state, "live") == 0)
		json_array_foreach(ws, i, w)
		{
			const char *run = json_string_value(json_object_get(w, "run_id"));

			fprintf(out, "  worker %lld  pid %lld  %s",
			    json_integer_value(json_object_get(w, "id")),
			    json_integer_value(json_object_get(w, "pid")),
			    json_string_value(json_object_get(w, "state")) ?: "?");
			if (run != NULL)
				fprintf(out, "  %s/%s attempt %lld", run,
				    json_string_value(json_object_get(w, "phase_id")) ?: "?",
				    json_integer_value(json_object_get(w, "attempt_id")));
			fputc('\n', out);
		}
	json_decref(st);
}

/* Count the live members that are supervisor `target` (0: any). */
static size_t fleet_live_count(const struct fleet_member *m, size_t n, int64_t target)
{
	size_t live = 0;

	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].state, "live") == 0 && (target == 0 || m[i].id == target))
			live++;
	return live;
}

/* List the supervisors and their workers (status, workers). */
static int fleet_list(struct cmd_ctx *ctx, struct store *st, int64_t target)
{
	struct fleet_member *m;
	struct store_err err;
	json_t *arr;
	size_t n;
	int rc = store_fleet_members(st, FLEET_RECENT_S, &m, &n, &err);

	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	if (fleet_live_count(m, n, target) == 0) {
		store_fleet_members_free(m, n);
		if (target > 0)
			return cmd_fail(ctx, STORE_EBUSY, "supervisor %lld of %s is not running",
			    (long long)target, st->url);
		return cmd_fail(
		    ctx, STORE_EBUSY, "no autopack-supervisor is running on %s", st->url);
	}
	arr = json_array();
	if (!ctx->json)
		printf("supervisors of %s (uuid %s)\n", st->url, st->uuid);
	for (size_t i = 0; i < n; i++) {
		if (target > 0 && m[i].id != target)
			continue;
		if (ctx->json)
			json_array_append_new(arr, fleet_member_json(&m[i]));
		else
			fleet_member_show(&m[i], stdout);
	}
	if (ctx->json)
		cmd_json_print(json_pack(
		    "{s:s, s:s, s:o}", "db_url", st->url, "db_uuid", st->uuid, "supervisors", arr));
	else
		json_decref(arr);
	store_fleet_members_free(m, n);
	return CMD_EXIT_OK;
}

/* Who sends a command: user@host and pid. */
static char *fleet_sender(void)
{
	char host[256] = "unknown-host";
	const char *user = getenv("USER");

	gethostname(host, sizeof host);
	host[sizeof host - 1] = '\0';
	return xasprintf(
	    "%s@%s autopack-ctl pid %ld", user != NULL ? user : "?", host, (long)getpid());
}

/* Sleep `ms` milliseconds. */
static void fleet_nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Send a command to supervisor `target` (0: every live one) and wait for every answer. */
static int fleet_send(struct cmd_ctx *ctx, struct store *st, int64_t target, const char *cmd,
    char **args, size_t nargs)
{
	struct fleet_member *m;
	struct fleet_result *res = NULL;
	struct store_err err;
	json_t *a = json_array(), *out;
	char *text, *by = fleet_sender();
	size_t n, want, nres = 0;
	int64_t id = 0;
	int rc = store_fleet_members(st, 0, &m, &n, &err), exit_code = CMD_EXIT_OK;

	if (rc != 0)
		goto fail;
	want = fleet_live_count(m, n, target);
	store_fleet_members_free(m, n);
	if (want == 0) {
		free(by);
		json_decref(a);
		if (target > 0)
			return cmd_fail(ctx, STORE_EBUSY, "supervisor %lld of %s is not running",
			    (long long)target, st->url);
		return cmd_fail(
		    ctx, STORE_EBUSY, "no autopack-supervisor is running on %s", st->url);
	}
	for (size_t i = 0; i < nargs; i++)
		json_array_append_new(a, json_string(args[i]));
	text = json_dumps(a, JSON_COMPACT);
	rc = store_fleet_command_send(st, target, cmd, text, by, &id, &err);
	free(text);
	if (rc != 0)
		goto fail;
	for (long waited = 0; waited < FLEET_ANSWER_MS; waited += 100) {
		store_fleet_results_free(res, nres);
		if ((rc = store_fleet_command_results(st, id, &res, &nres, &err)) != 0)
			goto fail;
		if (nres >= want)
			break;
		fleet_nap(100);
	}
	out = json_array();
	if (!ctx->json)
		printf("%s sent to %s of %s (command %lld)\n", cmd,
		    target > 0 ? "one supervisor" : "every supervisor", st->url, (long long)id);
	for (size_t i = 0; i < nres; i++) {
		if (!res[i].ok)
			exit_code = CMD_EXIT_REFUSED;
		if (ctx->json)
			json_array_append_new(out,
			    json_pack("{s:I, s:b, s:s}", "supervisor_id",
			        (json_int_t)res[i].supervisor_id, "ok", res[i].ok, "result",
			        res[i].result));
		else
			printf("supervisor %lld: %s %s\n", (long long)res[i].supervisor_id,
			    res[i].ok ? "ok" : "refused:", res[i].result);
	}
	if (nres < want) {
		exit_code = CMD_EXIT_REFUSED;
		fprintf(stderr,
		    "autopack-ctl: %zu of %zu supervisor(s) did not answer within %d s (they carry"
		    " the command out when they see it: autopack-ctl status shows them)\n",
		    want - nres, want, FLEET_ANSWER_MS / 1000);
	}
	if (ctx->json)
		cmd_json_print(json_pack("{s:b, s:s, s:s, s:I, s:s, s:o, s:I}", "ok",
		    exit_code == CMD_EXIT_OK, "db_url", st->url, "db_uuid", st->uuid, "command_id",
		    (json_int_t)id, "command", cmd, "answers", out, "expected", (json_int_t)want));
	else
		json_decref(out);
	store_fleet_results_free(res, nres);
	free(by);
	json_decref(a);
	return exit_code;
fail:
	store_fleet_results_free(res, nres);
	free(by);
	json_decref(a);
	return cmd_fail(ctx, rc, "%s", err.text);
}

/* Run live command `cmd` through the database when it is shared by several supervisors
 * (PostgreSQL); *handled says whether it was. Returns the exit code. */
int cmd_fleet_live(
    struct cmd_ctx *ctx, const char *cmd, int64_t target, char **args, size_t nargs, bool *handled)
{
	bool list = strcmp(cmd, "status") == 0 || strcmp(cmd, "workers") == 0;
	struct store st = { 0 };
	struct store_err err;
	char *path, *url;
	int rc;

	*handled = false;
	if (cmd_db_resolve(ctx, &path, &url) != 0) {
		free(path);
		free(url);
		return 0;
	}
	if (strncmp(url, "postgresql://", 13) != 0) {
		free(path);
		free(url);
		return 0;
	}
	*handled = true;
	if (!list && strcmp(cmd, "pause") != 0 && strcmp(cmd, "resume") != 0 &&
	    strcmp(cmd, "scale") != 0 && strcmp(cmd, "stop") != 0) {
		free(path);
		free(url);
		return cmd_fail(ctx, STORE_EINVAL,
		    "%s goes to one supervisor of a database several may share: name its socket"
		    " with --control on its host (autopack-ctl status lists them)",
		    cmd);
	}
	rc = store_open(&st, path, url, list ? STORE_READ : STORE_WRITE, &err);
	free(path);
	free(url);
	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	rc = list ? fleet_list(ctx, &st, target) : fleet_send(ctx, &st, target, cmd, args, nargs);
	store_close(&st);
	return rc;
}
