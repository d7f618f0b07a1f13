/* Live commands: they talk to a running supervisor over its control socket. The socket
 * is given with --control, or found from the database: the supervisor that holds its lock
 * records its socket in meta, else it listens on the default socket named by the
 * database's uuid and file. With a database named, the request carries its canonical URL,
 * uuid and device:inode, the supervisor refuses it if it holds another database, and a
 * reply that names another database is refused here too. */
#include "ctl/cmd.h"
#include "ctl/client.h"
#include "common/store/dburl.h"
#include "common/store/store_lock.h"
#include "common/store/store_meta.h"
#include "common/store/store_runtime.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIVE_TIMEOUT_MS 30000

enum {
	OPT_CONTROL = CMD_OPT_FIRST_OWN,
	OPT_FORCE,
	OPT_NOW,
	OPT_TIMEOUT
};

/* Where to send a request, and the database its reply must name. */
struct live_target {
	char *sock;
	bool identified; /* a database was named: the reply must be about it */
	char url[4200];
	char uuid[37];
	char devino[48];
};

/* Pick the socket of the supervisor holding the lock of the database file at `path`:
 * the one meta records if that supervisor recorded it, else the default one; or fail
 * naming why none answers. Takes `meta_sock`. */
static int live_socket(struct cmd_ctx *ctx, const char *path, int64_t meta_pid, char *meta_sock,
    const char *default_sock, struct live_target *t)
{
	pid_t holder = 0;
	int fd = store_lock_acquire(path, &holder);

	if (fd != STORE_EBUSY) {
		store_lock_release(fd);
		free(meta_sock);
		return cmd_fail(ctx, STORE_EBUSY, "no autopack-supervisor is running on %s%s",
		    t->url,
		    meta_pid > 0 && kill((pid_t)meta_pid, 0) != 0 && errno == ESRCH ?
		        " (the last one has exited)" :
		        "");
	}
	if (meta_sock != NULL && holder > 0 && holder == (pid_t)meta_pid) {
		t->sock = meta_sock;
		return 0;
	}
	free(meta_sock);
	t->sock = xstrdup(default_sock);
	return 0;
}

/* Find the socket and the database to expect; 0 or an exit code after reporting. */
static int live_target(struct cmd_ctx *ctx, const char *control, struct live_target *t)
{
	struct store st = { 0 };
	struct store_err err;
	char *path, *url, *meta_sock = NULL, *default_sock = NULL;
	int64_t meta_pid = 0;
	int rc;

	memset(t, 0, sizeof *t);
	if (control != NULL && ctx->db_flag == NULL && getenv(DBURL_ENV_PRIMARY) == NULL &&
	    getenv(DBURL_ENV_LEGACY) == NULL) {
		t->sock = xstrdup(control);
		return 0;
	}
	if ((rc = cmd_db_resolve(ctx, &path, &url)) != 0)
		return rc;
	rc = store_open(&st, path, url, STORE_READ, &err);
	free(url);
	if (rc != 0) {
		free(path);
		return cmd_fail(ctx, rc, "%s", err.text);
	}
	t->identified = true;
	strlcpy_ap(t->url, st.url, sizeof t->url);
	strlcpy_ap(t->uuid, st.uuid, sizeof t->uuid);
	store_devino(&st, t->devino);
	if (control == NULL && (rc = store_meta_supervisor(&st, &meta_pid, &meta_sock, &err)) != 0)
		rc = cmd_fail(ctx, rc, "%s", err.text);
	if (control == NULL)
		default_sock = store_runtime_socket(&st);
	/* The lock is probed after the connection closes: closing a descriptor of the file
	 * would drop SQLite's own locks on it. */
	store_close(&st);
	if (rc == 0 && control != NULL)
		t->sock = xstrdup(control);
	else if (rc == 0)
		rc = live_socket(ctx, path, meta_pid, meta_sock, default_sock, t);
	else
		free(meta_sock);
	free(default_sock);
	free(path);
	return rc;
}

/* Refuse a reply about another database than the one asked about; 0 if it matches. */
static int live_reply_check(
    struct cmd_ctx *ctx, const struct live_target *t, const struct proto_reply *r)
{
	const char *part = NULL;

	if (!t->identified)
		return 0;
	if (strcmp(r->db_url, t->url) != 0)
		part = "its file";
	else if (strcmp(r->db_devino, t->devino) != 0)
		part = "its device:inode";
	else if (strcmp(r->db_uuid, t->uuid) != 0)
		part = "its uuid";
	if (part == NULL)
		return 0;
	return cmd_fail(ctx, STORE_EINVAL,
	    "the supervisor at %s answered for database %s (uuid %s, device:inode %s), not for "
	    "%s (uuid %s, device:inode %s), which was asked about: %s differs. Its reply is "
	    "refused; name the socket of %s's own supervisor with --control, or check which "
	    "database you meant",
	    t->sock, r->db_url, r->db_uuid, r->db_devino, t->url, t->uuid, t->devino, part, t->url);
}

/* Print a metrics reply (Prometheus text). */
static void show_metrics(json_t *b, FILE *out);

/* Send `cmd` with `args` and print the reply; returns the exit code. `show` renders a
 * successful body as text. */
static int live_call_as(struct cmd_ctx *ctx, const char *control, const char *cmd, char **args,
    size_t nargs, void (*show)(json_t *body, FILE *out), bool quiet)
{
	struct proto_request req = { .id = 1 };
	struct live_target t;
	struct ctl_client c;
	struct proto_msg m;
	char err[512];
	json_t *body = NULL;
	int rc;

	if ((rc = live_target(ctx, control, &t)) != 0)
		return rc;
	req.command = (char *)cmd;
	req.args.items = args;
	req.args.n = nargs;
	if (t.identified) {
		req.expect_uuid = t.uuid;
		req.expect_url = t.url;
		req.expect_devino = t.devino;
	}
	if (client_connect(&c, t.sock, LIVE_TIMEOUT_MS, err, sizeof err) != 0 ||
	    client_send(&c, &req, err, sizeof err) != 0 ||
	    client_recv(&c, &m, err, sizeof err) != 0) {
		client_close(&c);
		free(t.sock);
		return cmd_fail(ctx, STORE_EBUSY, "%s", err);
	}
	client_close(&c);
	/* A refusal is shown as it is (the supervisor names its own database); a success
	 * about another database than the one asked about is refused. */
	if (!m.u.reply.ok)
		rc = cmd_fail(ctx, STORE_EINVAL, "%s: %s (supervisor of %s)",
		    m.u.reply.code != NULL ? m.u.reply.code : "error",
		    m.u.reply.message != NULL ? m.u.reply.message : "failed", m.u.reply.db_url);
	else
		rc = live_reply_check(ctx, &t, &m.u.reply);
	free(t.sock);
	if (rc != 0) {
		proto_msg_free(&m);
		return rc;
	}
	if (m.u.reply.body != NULL)
		body = json_loads(m.u.reply.body, 0, NULL);
	if (body == NULL)
		body = json_object();
	if (ctx->json) {
		json_object_set_new(body, "db_url", json_string(m.u.reply.db_url));
		json_object_set_new(body, "db_uuid", json_string(m.u.reply.db_uuid));
		json_object_set_new(body, "db_device_inode", json_string(m.u.reply.db_devino));
		cmd_json_print(body);
	} else {
		/* Metrics stay Prometheus text: the header is a comment line there. */
		if (!quiet)
			printf("%ssupervisor of %s (uuid %s)\n", show == show_metrics ? "# " : "",
			    m.u.reply.db_url, m.u.reply.db_uuid);
		if (show != NULL)
			show(body, stdout);
		json_decref(body);
	}
	proto_msg_free(&m);
	return CMD_EXIT_OK;
}

/* Send one live request and show its reply with `show`; the exit code. */
static int live_call(struct cmd_ctx *ctx, const char *control, const char *cmd, char **args,
    size_t nargs, void (*show)(json_t *body, FILE *out))
{
	return live_call_as(ctx, control, cmd, args, nargs, show, false);
}

int cmd_live_call(struct cmd_ctx *ctx, const char *control, const char *cmd, char **args,
    size_t nargs, void (*show)(json_t *body, FILE *out))
{
	return live_call(ctx, control, cmd, args, nargs, show);
}

/* A status request whose reply is shown without the header line. */
static int live_call_quiet(
    struct cmd_ctx *ctx, const char *control, void (*show)(json_t *body, FILE *out))
{
	return live_call_as(ctx, control, "status", NULL, 0, show, true);
}

/* Integer member of a JSON object, 0 when absent. */
static long long jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* String member of a JSON object, "-" when absent. */
static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? s : "-";
}

/* Print the worker table. */
static void show_workers(json_t *arr, FILE *out)
{
	size_t i;
	json_t *w;

	fprintf(out, "%-4s %-8s %-9s %-10s %-28s %-24s %8s %9s %5s\n", "id", "pid", "state",
	    "attempt", "run", "phase", "age_s", "rss_kib", "jobs");
	json_array_foreach(arr, i, w)
	{
		fprintf(out, "%-4lld %-8lld %-9s %-10lld %-28s %-24s %8.1f %9lld %5lld\n",
		    jint(w, "id"), jint(w, "pid"), jstr(w, "state"), jint(w, "attempt_id"),
		    jstr(w, "run_id"), jstr(w, "phase_id"),
		    json_real_value(json_object_get(w, "age_seconds")), jint(w, "rss_kib"),
		    jint(w, "jobs_done"));
	}
}

/* Print a status reply: state, durability, pool, phases, queue, counters, workers. */
static void show_status(json_t *b, FILE *out)
{
	json_t *pool = json_object_get(b, "pool"), *ph = json_object_get(b, "phases");
	json_t *n = json_object_get(b, "counters"), *q = json_object_get(b, "queue");
	json_t *v;
	const char *k;

	fprintf(out, "state: %s   session: %s   pid: %lld   uptime: %.1fs\n", jstr(b, "state"),
	    jstr(b, "session_id"), jint(b, "pid"),
	    json_real_value(json_object_get(b, "uptime_seconds")));
	fprintf(out, "durability: synchronous=%s, group commit %lld ms / %lld writes\n",
	    jstr(b, "synchronous"), jint(b, "commit_window_ms"), jint(b, "commit_max"));
	fprintf(out, "workers: %lld live of %lld wanted%s\n", jint(pool, "live"),
	    jint(pool, "target"),
	    json_is_true(json_object_get(pool, "crash_loop")) ? " (CRASH LOOP: not respawning)" :
	                                                        "");
	if (json_is_string(json_object_get(pool, "breaker")))
		fprintf(out,
		    "BREAKER: dispatch paused: %s\n  (autopack-ctl resume tries again once the cause"
		    " is fixed)\n",
		    jstr(pool, "breaker"));
	fprintf(out, "phases:");
	json_object_foreach(ph, k, v) if (json_integer_value(v) > 0)
	    fprintf(out, " %s %lld", k, (long long)json_integer_value(v));
	fprintf(out, "\nqueue: %lld eligible, %lld in flight, %lld started\n",
	    jint(q, "phases_queued"), jint(q, "in_flight"), jint(q, "started"));
	fprintf(out,
	    "events: %lld committed, %lld duplicate; rejected: %lld wrong database,"
	    " %lld stale attempt\n",
	    jint(n, "events_committed"), jint(n, "events_duplicate"),
	    jint(n, "rejected_wrong_uuid"), jint(n, "rejected_stale"));
	show_workers(json_object_get(pool, "workers"), out);
}

/* Print the worker table of a `workers` reply. */
static void show_workers_body(json_t *b, FILE *out)
{
	show_workers(json_object_get(b, "workers"), out);
}

/* Print a metrics reply (Prometheus text). */
static void show_metrics(json_t *b, FILE *out)
{
	fputs(jstr(b, "text"), out);
}

/* Print a reply that only confirms: "ok" and its body. */
static void show_done(json_t *b, FILE *out)
{
	char *s = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);

	fprintf(out, "ok %s\n", s != NULL ? s : "");
	free(s);
}

/* Print what a forwarded import or seed wrote. */
static void show_import(json_t *b, FILE *out)
{
	char *runs = json_dumps(json_object_get(b, "runs"), JSON_COMPACT);

	fprintf(out,
	    "written by the supervisor (pid %lld), the database's only writer: runs %s,"
	    " %lld tier(s), %lld phase(s), all QUEUED and now eligible\n",
	    jint(b, "supervisor_pid"), runs != NULL ? runs : "[]", jint(b, "tiers"),
	    jint(b, "phases"));
	free(runs);
}

/* Send a write to the supervisor holding the database, if one does; *forwarded says
 * whether it did. Returns the exit code (0 when not forwarded). */
int cmd_live_forward(
    struct cmd_ctx *ctx, const char *cmd, char **args, size_t nargs, bool *forwarded)
{
	return cmd_live_forward_show(ctx, cmd, args, nargs, show_import, forwarded);
}

int cmd_live_forward_show(struct cmd_ctx *ctx, const char *cmd, char **args, size_t nargs,
    void (*show)(json_t *body, FILE *out), bool *forwarded)
{
	struct store st = { 0 };
	struct store_err err;
	char *path, *url, *sock = NULL;
	pid_t holder = 0;
	int64_t pid = 0;
	int fd, rc;

	*forwarded = false;
	if (cmd_db_resolve(ctx, &path, &url) != 0) {
		free(path);
		free(url);
		return 0;
	}
	/* Only an autopack database whose meta names a live supervisor is a candidate;
	 * anything else is left to the offline path, which reports it. */
	rc = store_open(&st, path, url, STORE_READ, &err);
	free(url);
	if (rc == 0) {
		rc = store_meta_supervisor(&st, &pid, &sock, &err);
		store_close(&st);
	}
	if (rc != 0 || pid <= 0 || sock == NULL || kill((pid_t)pid, 0) != 0) {
		free(path);
		free(sock);
		return 0;
	}
	fd = store_lock_acquire(path, &holder);
	free(path);
	if (fd >= 0)
		store_lock_release(fd);
	if (fd >= 0 || holder != (pid_t)pid) {
		free(sock);
		return 0;
	}
	*forwarded = true;
	rc = live_call(ctx, sock, cmd, args, nargs, show);
	free(sock);
	return rc;
}

/* Parse the options shared by live commands; collect flags to forward in args. */
static int live_exec(struct cmd_ctx *ctx, int argc, char **argv, const char *cmd, int npos,
    void (*show)(json_t *, FILE *))
{
	static const struct option opts[] = {
		CMD_OPTS_COMMON,
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "now", no_argument, NULL, OPT_NOW },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ NULL, 0, NULL, 0 },
	};
	const char *control = NULL;
	char *args[8];
	size_t n = 0;
	int o, exit_code = 0, i;

	while ((o = cmd_getopt(ctx, argc, argv, opts, &exit_code)) != -1) {
		switch (o) {
		case CMD_OPT_DONE: return exit_code;
		case OPT_CONTROL: control = optarg; break;
		case OPT_FORCE:
		case OPT_NOW:
		case OPT_TIMEOUT:
			if ((o == OPT_FORCE && strcmp(cmd, "scale") != 0) ||
			    (o != OPT_FORCE && strcmp(cmd, "stop") != 0))
				return cmd_usage_error(ctx, "option --%s does not apply here",
				    o == OPT_FORCE   ? "force" :
				        o == OPT_NOW ? "now" :
				                       "timeout");
			args[n++] = o == OPT_FORCE ? "--force" :
			    o == OPT_NOW           ? "--now" :
			                             "--timeout";
			if (o == OPT_TIMEOUT)
				args[n++] = optarg;
			break;
		default: return cmd_usage_error(ctx, "unexpected option");
		}
	}
	if (argc - optind != npos)
		return cmd_usage_error(ctx, "expected %d argument(s), got %d", npos, argc - optind);
	for (i = optind; i < argc && n < ARRAY_SIZE(args); i++)
		args[n++] = argv[i];
	return live_call(ctx, control, cmd, args, n, show);
}

/* The live commands that are one request and one reply: name, positional arguments, and
 * how a reply is shown. */
static const struct live_cmd {
	const char *name;
	int npos;
	void (*show)(json_t *, FILE *);
} live_cmds[] = {
	{ "status", 0, show_status },
	{ "workers", 0, show_workers_body },
	{ "metrics", 0, show_metrics },
	{ "pause", 0, show_done },
	{ "resume", 0, show_done },
	{ "scale", 1, show_done },
	{ "stop", 0, show_done },
	{ "cancel", 2, show_done },
};

/* Run the live command this entry names. */
static int exec_live(struct cmd_ctx *ctx, int argc, char **argv)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(live_cmds); i++)
		if (strcmp(live_cmds[i].name, ctx->entry->name) == 0)
			return live_exec(ctx, argc, argv, live_cmds[i].name, live_cmds[i].npos,
			    live_cmds[i].show);
	return cmd_usage_error(ctx, "not a live command");
}

/* One progress line from a status body. */
static void show_progress(json_t *b, FILE *out)
{
	json_t *ph = json_object_get(b, "phases"), *n = json_object_get(b, "counters");
	json_t *q = json_object_get(b, "queue"), *pool = json_object_get(b, "pool");
	char ts[32];

	time_iso8601(clock_wall_ms(), ts);
	fprintf(out,
	    "%.19s %-9s workers %lld/%lld  queued %lld  in flight %lld  complete %lld"
	    "  failed %lld  events %lld  rejected %lld\n",
	    ts, jstr(b, "state"), jint(pool, "live"), jint(pool, "target"),
	    jint(q, "phases_queued"), jint(q, "in_flight"), jint(ph, "COMPLETE"),
	    jint(ph, "FAILED"), jint(n, "events_committed"),
	    jint(n, "rejected_wrong_uuid") + jint(n, "rejected_stale"));
	fflush(out);
}

/* watch: a progress line every interval until the supervisor exits. */
static int exec_watch(struct cmd_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		CMD_OPTS_COMMON,
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "interval", required_argument, NULL, OPT_TIMEOUT },
		{ "count", required_argument, NULL, OPT_NOW },
		{ NULL, 0, NULL, 0 },
	};
	const char *control = NULL;
	long interval_ms = 1000, count = 0, i;
	int o, exit_code = 0, rc;

	while ((o = cmd_getopt(ctx, argc, argv, opts, &exit_code)) != -1) {
		char *end;
		double v;

		switch (o) {
		case CMD_OPT_DONE: return exit_code;
		case OPT_CONTROL: control = optarg; break;
		case OPT_TIMEOUT:
			v = strtod(optarg, &end);
			if (*end != '\0' || v < 0.1 || v > 3600)
				return cmd_usage_error(ctx,
				    "--interval: \"%s\" is not a number of"
				    " seconds from 0.1 to 3600",
				    optarg);
			interval_ms = (long)(v * 1000);
			break;
		case OPT_NOW:
			count = strtol(optarg, &end, 10);
			if (*end != '\0' || count < 1)
				return cmd_usage_error(
				    ctx, "--count: \"%s\" is not a positive number", optarg);
			break;
		default: return cmd_usage_error(ctx, "unexpected option");
		}
	}
	if (optind != argc)
		return cmd_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	ctx->json = false;
	for (i = 0; count == 0 || i < count; i++) {
		if (i > 0)
			poll(NULL, 0, (int)interval_ms);
		rc = live_call_quiet(ctx, control, show_progress);
		if (rc != 0)
			return i > 0 ? CMD_EXIT_OK : rc;
	}
	return CMD_EXIT_OK;
}

#define LIVE_HELP_TAIL                                                                             \
	"\nThe supervisor is found from the database (--db, AUTOPACK_DB_URL or DATABASE_URL),\n"   \
	"which records its control socket, or from --control PATH. With a database named,\n"       \
	"the supervisor refuses the request if it holds a different database.\n"

const struct cmd_entry cmd_status_entry = {
	"status",
	"[--json] [--control PATH]",
	"show a running supervisor's state",
	"Show the database it holds, durability and group-commit settings, workers (pid,\n"
	"state, attempt, age, RSS, jobs), phases by state, the queue, event and rejection\n"
	"counters.\n" LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_workers_entry = {
	"workers",
	"[--json] [--control PATH]",
	"list a running supervisor's workers",
	"List the worker processes with their state and current attempt.\n" LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_metrics_entry = {
	"metrics",
	"[--control PATH]",
	"print counters in Prometheus text format",
	"Print the supervisor's counters and gauges in Prometheus text format.\n" LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_pause_entry = {
	"pause",
	"[--control PATH]",
	"stop dispatching new phases",
	"Stop dispatching; attempts in flight finish. Recorded in control_log.\n" LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_resume_entry = {
	"resume",
	"[--control PATH]",
	"resume dispatching",
	"Resume dispatching after pause. Recorded in control_log.\n" LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_scale_entry = {
	"scale",
	"N [--force] [--control PATH]",
	"change the number of workers",
	"Grow or shrink the pool to N workers. Shrinking retires idle workers first; busy\n"
	"ones finish their phase, unless --force stops them (their phases are requeued).\n"
	"Recorded in control_log.\n" LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_cancel_entry = {
	"cancel",
	"RUN PHASE [--control PATH]",
	"cancel a phase: SKIPPED, stopping it if running",
	"Mark a queued or failed phase SKIPPED; a running one is stopped (its attempt ends as\n"
	"cancelled) and then SKIPPED. Recorded in control_log.\n" LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_watch_entry = {
	"watch",
	"[--interval S] [--count N] [--control PATH]",
	"print live progress",
	"Print one progress line (state, workers, queue, phases done and failed, events,\n"
	"rejections) every --interval seconds (default 1) until the supervisor exits or N\n"
	"lines are printed.\n" LIVE_HELP_TAIL,
	exec_watch,
};
const struct cmd_entry cmd_stop_entry = {
	"stop",
	"[--timeout S | --now] [--control PATH]",
	"stop the supervisor",
	"Stop dispatching and exit once attempts in flight finish; with --timeout S, kill\n"
	"what is still running after S seconds; with --now, kill workers at once and requeue\n"
	"their phases. Recorded in control_log.\n" LIVE_HELP_TAIL,
	exec_live,
};
