/* Live commands: they talk to a running supervisor over its control socket. The socket
 * is given with --control, or found from the database: the supervisor that holds its lock
 * records its socket in meta, else it listens on the default socket named by the
 * database's uuid and file. With a database named, the request carries its canonical URL,
 * uuid and device:inode, the supervisor refuses it if it holds another database, and a
 * reply that names another database is refused here too. */
#include "ctl/cmd.h"
#include "ctl/client.h"
#include "common/jsonload.h"
#include "common/progress.h"
#include "common/store/dburl.h"
#include "common/store/store_lock.h"
#include "common/store/store_meta.h"
#include "common/store/store_runtime.h"
#include "common/util.h"
#include "common/numarg.h"

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
	OPT_TIMEOUT,
	OPT_SUPERVISOR
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
 * the one meta records if that supervisor recorded it, else the default one. 0, or
 * STORE_EBUSY with err set when none holds it. Takes `meta_sock`. */
static int live_socket(const char *path, int64_t meta_pid, char *meta_sock,
    const char *default_sock, struct live_target *t, char *err, size_t errlen)
{
	pid_t holder = 0;
	int fd = store_lock_acquire(path, &holder);

	/* A PostgreSQL database has no lock to probe: the supervisor meta records, if alive. */
	if (fd == STORE_LOCK_SERVER && meta_sock != NULL && meta_pid > 0 &&
	    (kill((pid_t)meta_pid, 0) == 0 || errno == EPERM)) {
		t->sock = meta_sock;
		return 0;
	}
	if (fd != STORE_EBUSY) {
		store_lock_release(fd);
		free(meta_sock);
		snprintf(err, errlen, "no autopack-supervisor is running on %s%s", t->url,
		    meta_pid > 0 && kill((pid_t)meta_pid, 0) != 0 && errno == ESRCH ?
		        " (the last one has exited)" :
		        "");
		return STORE_EBUSY;
	}
	if (meta_sock != NULL && holder > 0 && holder == (pid_t)meta_pid) {
		t->sock = meta_sock;
		return 0;
	}
	free(meta_sock);
	t->sock = xstrdup(default_sock);
	return 0;
}

/* Find the socket and the database to expect; 0, or a STORE_E* code with err set. */
static int live_target(
    struct cmd_ctx *ctx, const char *control, struct live_target *t, char *err, size_t errlen)
{
	struct store st = { 0 };
	struct store_err serr;
	char *path, *url, *meta_sock = NULL, *default_sock = NULL, msg[512];
	int64_t meta_pid = 0;
	int rc;

	memset(t, 0, sizeof *t);
	if (control != NULL && ctx->db_flag == NULL && getenv(DBURL_ENV_PRIMARY) == NULL &&
	    getenv(DBURL_ENV_LEGACY) == NULL) {
		t->sock = xstrdup(control);
		return 0;
	}
	if (dburl_resolve(ctx->db_flag, &path, &url, NULL, msg, sizeof msg) != 0) {
		snprintf(err, errlen, "%s", msg);
		return STORE_EIO; /* unusable, as any bad URL */
	}
	rc = store_open(&st, path, url, STORE_READ, &serr);
	free(url);
	if (rc != 0) {
		free(path);
		snprintf(err, errlen, "%s", serr.text);
		return rc;
	}
	t->identified = true;
	strlcpy_ap(t->url, st.url, sizeof t->url);
	strlcpy_ap(t->uuid, st.uuid, sizeof t->uuid);
	store_devino(&st, t->devino);
	if (control == NULL && store_meta_supervisor(&st, &meta_pid, &meta_sock, &serr) != 0) {
		snprintf(err, errlen, "%s", serr.text);
		rc = STORE_EIO;
	}
	if (control == NULL)
		default_sock = store_runtime_socket(&st);
	/* The lock is probed after the connection closes: closing a descriptor of the file
	 * would drop SQLite's own locks on it. */
	store_close(&st);
	if (rc == 0 && control != NULL)
		t->sock = xstrdup(control);
	else if (rc == 0)
		rc = live_socket(path, meta_pid, meta_sock, default_sock, t, err, errlen);
	else
		free(meta_sock);
	free(default_sock);
	free(path);
	return rc;
}

/* Refuse a reply about another database than the one asked about: 0 if it matches, else
 * STORE_EINVAL with err set. */
static int live_reply_check(
    const struct live_target *t, const struct proto_reply *r, char *err, size_t errlen)
{
	const char *part = NULL;

#ifdef AUTOPACK_MUTANT_reply_identity_unchecked
	return 0;
#endif
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
	snprintf(err, errlen,
	    "the supervisor at %s answered for database %s (uuid %s, device:inode %s), not for "
	    "%s (uuid %s, device:inode %s), which was asked about: %s differs. Its reply is "
	    "refused; name the socket of %s's own supervisor with --control, or check which "
	    "database you meant",
	    t->sock, r->db_url, r->db_uuid, r->db_devino, t->url, t->uuid, t->devino, part, t->url);
	return STORE_EINVAL;
}

/* Send one request and read its reply without printing; 0 or a STORE_E* code. */
int cmd_live_fetch(struct cmd_ctx *ctx, const char *control, const char *cmd, char **args,
    size_t nargs, struct live_reply *out, char *err, size_t errlen)
{
	struct proto_request req = { .id = 1 };
	struct live_target t;
	struct ctl_client c;
	struct proto_msg m;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = live_target(ctx, control, &t, err, errlen)) != 0)
		return rc;
	req.command = (char *)cmd;
	req.args.items = args;
	req.args.n = nargs;
	if (t.identified) {
		req.expect_uuid = t.uuid;
		req.expect_url = t.url;
		req.expect_devino = t.devino;
	}
	/* A supervisor that refuses the connection (too many clients) replies and closes
	 * before reading the request: its reply is read even when the send failed. */
	rc = client_connect(&c, t.sock, LIVE_TIMEOUT_MS, err, errlen);
	if (rc == 0) {
		char rerr[512];
		int sent = client_send(&c, &req, err, errlen);

		/* A request that cannot be encoded was not sent: no reply is waited for. */
		if (sent == -2) {
			client_close(&c);
			free(t.sock);
			return STORE_EINVAL;
		}
		rc = client_recv(&c, &m, rerr, sizeof rerr);
		if (rc != 0 && sent == 0)
			snprintf(err, errlen, "%s", rerr);
	}
	client_close(&c);
	if (rc != 0) {
		free(t.sock);
		return STORE_EBUSY;
	}
	/* A refusal is shown as it is (the supervisor names its own database); a success
	 * about another database than the one asked about is refused. */
	if (!m.u.reply.ok) {
		snprintf(err, errlen, "%s: %s (supervisor of %s)",
		    m.u.reply.code != NULL ? m.u.reply.code : "error",
		    m.u.reply.message != NULL ? m.u.reply.message : "failed", m.u.reply.db_url);
		rc = STORE_EINVAL;
	} else {
		rc = live_reply_check(&t, &m.u.reply, err, errlen);
	}
	free(t.sock);
	if (rc != 0) {
		proto_msg_free(&m);
		return rc;
	}
	/* A body that is no JSON object (another program at the socket, another version) is
	 * refused: shown, it read as a supervisor with nothing to report. */
	if (m.u.reply.body != NULL) {
		json_error_t jerr;

		out->body = json_loads_bounded(m.u.reply.body, 0, &jerr);
		if (out->body == NULL || !json_is_object(out->body)) {
			snprintf(err, errlen,
			    "bad reply from the supervisor of %s: its body is not a JSON object (%s)",
			    cmd_shown(m.u.reply.db_url),
			    out->body != NULL ? "another JSON value" : jerr.text);
			json_decref(out->body);
			out->body = NULL;
			proto_msg_free(&m);
			return STORE_EINVAL;
		}
	}
	if (out->body == NULL)
		out->body = json_object();
	out->db_url = xstrdup(m.u.reply.db_url != NULL ? m.u.reply.db_url : "");
	out->db_uuid = xstrdup(m.u.reply.db_uuid != NULL ? m.u.reply.db_uuid : "");
	out->db_devino = xstrdup(m.u.reply.db_devino != NULL ? m.u.reply.db_devino : "");
	proto_msg_free(&m);
	return 0;
}

/* Release a reply. */
void cmd_live_reply_free(struct live_reply *r)
{
	json_decref(r->body);
	free(r->db_url);
	free(r->db_uuid);
	free(r->db_devino);
	memset(r, 0, sizeof *r);
}

/* Print a metrics reply (Prometheus text). */
static void show_metrics(json_t *b, FILE *out);

/* Send `cmd` with `args` and print the reply; returns the exit code. `show` renders a
 * successful body as text, after a line naming the supervisor's database (on stderr for
 * metrics, whose stdout is Prometheus text only); with --json the body is printed with
 * "ok": true and the database's identity (and "command": cmd for a control command). */
static int live_call(struct cmd_ctx *ctx, const char *control, const char *cmd, char **args,
    size_t nargs, void (*show)(json_t *body, FILE *out))
{
	struct live_reply r;
	char err[1024];
	int rc;

	if ((rc = cmd_live_fetch(ctx, control, cmd, args, nargs, &r, err, sizeof err)) != 0)
		return cmd_fail(ctx, rc, "%s", err);
	if (ctx->json) {
		json_object_set_new(r.body, "ok", json_true());
		if (cmd_control_said(cmd))
			json_object_set_new(r.body, "command", json_string(cmd));
		json_object_set_new(r.body, "db_url", json_string(r.db_url));
		json_object_set_new(r.body, "db_uuid", json_string(r.db_uuid));
		json_object_set_new(r.body, "db_device_inode", json_string(r.db_devino));
		cmd_json_print(json_incref(r.body));
	} else {
		fprintf(show == show_metrics ? stderr : stdout, "supervisor of %s (uuid %s)\n",
		    cmd_shown(r.db_url), cmd_shown(r.db_uuid));
		fflush(stderr);
		if (show != NULL)
			show(r.body, stdout);
	}
	cmd_live_reply_free(&r);
	return CMD_EXIT_OK;
}

/* Send a live request and show its reply; the exit code. */
int cmd_live_call(struct cmd_ctx *ctx, const char *control, const char *cmd, char **args,
    size_t nargs, void (*show)(json_t *body, FILE *out))
{
	return live_call(ctx, control, cmd, args, nargs, show);
}

/* Integer member of a JSON object, 0 when absent. */
static long long jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

/* String member of a JSON object as a terminal may show it (cmd_shown), "-" when absent. */
static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s != NULL ? cmd_shown(s) : "-";
}

/* A number member of a JSON object, 0 when absent. */
static double jnum(json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

/* Print the worker table. */
static void show_workers(json_t *arr, FILE *out)
{
	char age[32];
	size_t i;
	json_t *w;

	fprintf(out, "%-4s %-8s %-9s %-10s %-28s %-24s %9s %8s %9s %5s\n", "id", "pid", "state",
	    "attempt", "run", "phase", "phase_age", "age_s", "rss_kib", "jobs");
	json_array_foreach(arr, i, w)
	{
		json_t *pa = json_object_get(w, "phase_age_seconds");

		if (json_is_number(pa))
			progress_duration_text(json_number_value(pa), age, sizeof age);
		else
			snprintf(age, sizeof age, "-");
		fprintf(out, "%-4lld %-8lld %-9s %-10lld %-28s %-24s %9s %8.1f %9lld %5lld\n",
		    jint(w, "id"), jint(w, "pid"), jstr(w, "state"), jint(w, "attempt_id"),
		    jstr(w, "run_id"), jstr(w, "phase_id"), age, jnum(w, "age_seconds"),
		    jint(w, "rss_kib"), jint(w, "jobs_done"));
	}
}

/* The attempts in flight, with the age of the phase each runs. */
static void show_in_flight(json_t *arr, FILE *out)
{
	char age[32];
	size_t i;
	json_t *a;

	if (json_array_size(arr) == 0)
		return;
	fprintf(out, "in flight:\n  %-10s %-6s %-28s %-24s %9s\n", "attempt", "worker", "run",
	    "phase", "phase_age");
	json_array_foreach(arr, i, a)
	{
		progress_duration_text(jnum(a, "seconds"), age, sizeof age);
		fprintf(out, "  %-10lld %-6lld %-28s %-24s %9s\n", jint(a, "attempt_id"),
		    jint(a, "worker_id"), jstr(a, "run_id"), jstr(a, "phase_id"), age);
	}
}

/* The health verdict and its reasons. */
static void show_health(json_t *h, FILE *out)
{
	json_t *reasons = json_object_get(h, "reasons"), *r;
	size_t i;

	if (h == NULL)
		return;
	if (json_array_size(reasons) == 0) {
		fprintf(out, "health: ok\n");
		return;
	}
	fprintf(out, "health: UNHEALTHY\n");
	json_array_foreach(reasons, i, r)
	    fprintf(out, "  %s: %s\n", jstr(r, "code"), jstr(r, "message"));
}

/* The newest failures, one line each, and the log to read. */
static void show_failures(json_t *arr, FILE *out)
{
	size_t i;
	json_t *f;

	if (json_array_size(arr) == 0)
		return;
	fprintf(out, "recent failures:\n");
	json_array_foreach(arr, i, f)
	{
		bool reason = json_is_string(json_object_get(f, "reason"));
		const char *msg = json_string_value(json_object_get(f, "message"));
		size_t len = msg != NULL ? strcspn(msg, "\n") : 0;

		fprintf(out, "  %s %s/%s a%lld %s%s%s: %s\n", jstr(f, "ended_at"),
		    jstr(f, "run_id"), jstr(f, "phase_id"), jint(f, "attempt"), jstr(f, "outcome"),
		    reason ? " " : "", reason ? jstr(f, "reason") : "",
		    msg != NULL ? cmd_shownn(msg, len < 200 ? len : 200) : "-");
		if (json_is_string(json_object_get(f, "log_path")))
			fprintf(out, "    log: %s\n", jstr(f, "log_path"));
	}
}

/* Print a status reply: state, durability, progress, rates, pool, phases, queue,
 * counters, health, attempts in flight, failures, workers. */
static void show_status(json_t *b, FILE *out)
{
	json_t *pool = json_object_get(b, "pool"), *ph = json_object_get(b, "phases");
	json_t *n = json_object_get(b, "counters"), *q = json_object_get(b, "queue");
	json_t *rates = json_object_get(b, "rates"), *tok = json_object_get(b, "tokens");
	struct progress p;
	char line[256];
	json_t *v;
	const char *k;

	/* Seconds under a minute, then as the ETA reads (2h03m, 3d04h) */
	if (jnum(b, "uptime_seconds") < 60)
		snprintf(line, sizeof line, "%.1fs", jnum(b, "uptime_seconds"));
	else
		progress_duration_text(jnum(b, "uptime_seconds"), line, sizeof line);
	fprintf(out, "state: %s   session: %s   pid: %lld   uptime: %s\n", jstr(b, "state"),
	    jstr(b, "session_id"), jint(b, "pid"), line);
	fprintf(out, "durability: synchronous=%s, group commit %lld ms / %lld writes\n",
	    jstr(b, "synchronous"), jint(b, "commit_window_ms"), jint(b, "commit_max"));
	progress_from_json(json_object_get(b, "progress"), &p);
	progress_line(&p, line, sizeof line);
	fprintf(out, "progress: %s\n", line);
	fprintf(out,
	    "rates: %.1f phases/min, %.3f results/s, %.3f events/s; tokens: %lld in, %lld out"
	    " (%lld LLM calls)\n",
	    p.per_minute, jnum(rates, "results_per_second"), jnum(rates, "events_per_second"),
	    jint(tok, "input"), jint(tok, "output"), jint(tok, "llm_calls"));
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
	    fprintf(out, " %s %lld", cmd_shown(k), (long long)json_integer_value(v));
	fprintf(out, "\nqueue: %lld eligible, %lld in flight, %lld started\n",
	    jint(q, "phases_queued"), jint(q, "in_flight"), jint(q, "started"));
	fprintf(out,
	    "events: %lld committed, %lld duplicate; rejected: %lld wrong database,"
	    " %lld stale attempt\n",
	    jint(n, "events_committed"), jint(n, "events_duplicate"),
	    jint(n, "rejected_wrong_uuid"), jint(n, "rejected_stale"));
	show_health(json_object_get(b, "health"), out);
	if (json_is_string(json_object_get(b, "http_url")))
		fprintf(out, "dashboard: %s\n", jstr(b, "http_url"));
	show_in_flight(json_object_get(b, "in_flight"), out);
	show_failures(json_object_get(b, "failures_recent"), out);
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
	cmd_print_lines(out, json_string_value(json_object_get(b, "text")));
}

/* Say what a control command did, in one line each (cmd_control_say). */
static void show_pause(json_t *b, FILE *out)
{
	cmd_control_say("pause", b, out);
}
static void show_resume(json_t *b, FILE *out)
{
	cmd_control_say("resume", b, out);
}
static void show_scale(json_t *b, FILE *out)
{
	cmd_control_say("scale", b, out);
}
static void show_stop(json_t *b, FILE *out)
{
	cmd_control_say("stop", b, out);
}
static void show_cancel(json_t *b, FILE *out)
{
	cmd_control_say("cancel", b, out);
}

/* Print what a forwarded import or seed wrote. */
static void show_import(json_t *b, FILE *out)
{
	char *runs = json_dumps(json_object_get(b, "runs"), JSON_COMPACT);

	fprintf(out,
	    "written by the supervisor (pid %lld), the database's only writer: runs %s,"
	    " %lld tier(s), %lld phase(s), all QUEUED and now eligible\n",
	    jint(b, "supervisor_pid"), runs != NULL ? cmd_shown(runs) : "[]", jint(b, "tiers"),
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
	if (cmd_db_probe(ctx, &path, &url) != 0) {
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
	/* A supervisor of another user is alive too (EPERM): the command is sent to it, and
	 * what refuses it says why. */
	if (rc != 0 || pid <= 0 || sock == NULL || (kill((pid_t)pid, 0) != 0 && errno != EPERM)) {
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

/* Parse the options shared by live commands; collect flags to forward in args. --force,
 * --now and --timeout are each taken once, and --now not with --timeout (a usage error,
 * exit 2): args holds at most one of them and the positional arguments. */
static int live_exec(struct cmd_ctx *ctx, int argc, char **argv, const char *cmd, int npos,
    void (*show)(json_t *, FILE *))
{
	static const struct option opts[] = {
		CMD_OPTS_COMMON,
		{ "control", required_argument, NULL, OPT_CONTROL },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "now", no_argument, NULL, OPT_NOW },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "supervisor", required_argument, NULL, OPT_SUPERVISOR },
		{ NULL, 0, NULL, 0 },
	};
	const char *control = NULL, *only = NULL, *given = NULL, *name;
	char *args[8];
	int64_t target = 0;
	bool handled;
	size_t n = 0;
	int o, exit_code = 0, i;

	while ((o = cmd_getopt(ctx, argc, argv, opts, &exit_code)) != -1) {
		switch (o) {
		case CMD_OPT_DONE: return exit_code;
		case OPT_CONTROL:
			if ((exit_code = cmd_path_given(ctx, "--control", optarg)) != 0)
				return exit_code;
			control = optarg;
			break;
		case OPT_SUPERVISOR: only = optarg; break;
		case OPT_FORCE:
		case OPT_NOW:
		case OPT_TIMEOUT:
			name = o == OPT_FORCE ? "--force" : o == OPT_NOW ? "--now" : "--timeout";
			if ((o == OPT_FORCE && strcmp(cmd, "scale") != 0) ||
			    (o != OPT_FORCE && strcmp(cmd, "stop") != 0))
				return cmd_usage_error(ctx, "option %s does not apply here", name);
			if (given != NULL && strcmp(given, name) == 0)
				return cmd_usage_error(ctx, "%s given twice", name);
			if (given != NULL)
				return cmd_usage_error(
				    ctx, "%s and %s exclude each other", given, name);
			given = name;
			args[n++] = (char *)name;
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
	if (only != NULL && strcmp(only, "all") != 0) {
		long long id;

		if (numarg_ll(only, &id) != 0 || id <= 0)
			return cmd_usage_error(
			    ctx, "--supervisor: \"%s\" is not a supervisor id or all", only);
		target = id;
	}
	if (control != NULL && only != NULL)
		return cmd_usage_error(ctx, "--supervisor and --control name a supervisor twice");
	if (control == NULL) {
		exit_code = cmd_fleet_live(ctx, cmd, target, args, n, &handled);
		if (handled)
			return exit_code;
		if (only != NULL)
			return cmd_usage_error(ctx,
			    "--supervisor applies to a PostgreSQL database, which several supervisors"
			    " may share");
	}
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
	{ "pause", 0, show_pause },
	{ "resume", 0, show_resume },
	{ "scale", 1, show_scale },
	{ "stop", 0, show_stop },
	{ "cancel", 2, show_cancel },
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

const struct cmd_entry cmd_status_entry = {
	"status",
	"[--json] [--control PATH | --supervisor ID|all]",
	"show a running supervisor's state",
	"Show the database it holds, durability and group-commit settings, the drain's\n"
	"progress and ETA, rates and tokens, phases by state, the queue, event and rejection\n"
	"counters, health, the attempts in flight with their phase's age, the newest\n"
	"failures with their log, and the workers (pid, state, attempt, phase age, age, RSS,\n"
	"jobs). --json prints the whole status document (the same as GET /api/status).\n" CMD_LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_workers_entry = {
	"workers",
	"[--json] [--control PATH | --supervisor ID|all]",
	"list a running supervisor's workers",
	"List the worker processes with their state and current attempt.\n" CMD_LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_metrics_entry = {
	"metrics",
	"[--json] [--control PATH | --supervisor ID|all]",
	"print the metrics in Prometheus text format",
	"Print the supervisor's metrics as Prometheus text (exposition format 0.0.4), the same\n"
	"as GET /metrics of --http: stdout holds only the exposition, the line naming the\n"
	"supervisor's database goes to stderr. docs/observe.md lists the metrics.\n" CMD_LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_pause_entry = {
	"pause",
	"[--json] [--control PATH | --supervisor ID|all]",
	"stop dispatching new phases",
	"Stop dispatching; attempts in flight finish. Recorded in control_log.\n" CMD_LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_resume_entry = {
	"resume",
	"[--json] [--control PATH | --supervisor ID|all]",
	"resume dispatching",
	"Resume dispatching after pause. Recorded in control_log.\n" CMD_LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_scale_entry = {
	"scale",
	"N [--force] [--json] [--control PATH | --supervisor ID|all]",
	"change the number of workers",
	"Grow or shrink the pool to N workers. Shrinking retires idle workers first; busy\n"
	"ones finish their phase, unless --force stops them (their phases are requeued).\n"
	"Recorded in control_log.\n" CMD_LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_cancel_entry = {
	"cancel",
	"RUN PHASE [--json] [--control PATH | --supervisor ID]",
	"cancel a phase: SKIPPED, stopping it if running",
	"Mark a queued or failed phase SKIPPED; a running one is stopped (its attempt ends as\n"
	"cancelled) and then SKIPPED. Recorded in control_log.\n" CMD_LIVE_HELP_TAIL,
	exec_live,
};
const struct cmd_entry cmd_stop_entry = {
	"stop",
	"[--timeout S | --now] [--json] [--control PATH | --supervisor ID|all]",
	"stop the supervisor",
	"Stop dispatching and exit once attempts in flight finish; with --timeout S, kill\n"
	"what is still running after S seconds; with --now, kill workers at once and requeue\n"
	"their phases. Recorded in control_log.\n" CMD_LIVE_HELP_TAIL,
	exec_live,
};
