/* Live commands on a PostgreSQL database that several supervisors share (docs/postgresql.md,
 * "Several hosts"): `status` and `workers` read every supervisor's row (what it wrote with
 * its last heartbeat); `pause`, `resume`, `scale`, `stop`, `metrics` and `cancel` are sent
 * through the database (a supervisor_commands row and a NOTIFY) to one supervisor or to
 * every live one, and their answers are awaited: metrics merged into one exposition, a
 * cancel to the supervisor running the phase. With --control, the local socket is used as
 * for SQLite. Writes that queue work (run import, seed, retry) wake the supervisors. */
#include "ctl/cmd.h"
#include "common/jsonload.h"
#include "common/store/store_fleet.h"
#include "common/util.h"

#include <stdarg.h>
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
	json_t *status = json_loads_bounded(m->status_json, 0, NULL);

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
	json_t *st = json_loads_bounded(m->status_json, 0, NULL), *ws, *w;
	size_t i;

	fprintf(out, "supervisor %lld  %s  %s pid %lld  heartbeat %.1f s ago (lease %.1f s)",
	    (long long)m->id, cmd_shown(m->state), cmd_shown(m->host), (long long)m->pid,
	    m->heartbeat_age_s, (double)m->lease_timeout_ms / 1000.0);
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
		fprintf(out, "  control socket (on %s): %s\n", cmd_shown(m->host),
		    cmd_shown(fleet_socket(m, st)));
	ws = json_object_get(st, "workers");
	if (strcmp(m->state, "live") == 0)
		json_array_foreach(ws, i, w)
		{
			const char *run = json_string_value(json_object_get(w, "run_id"));

			fprintf(out, "  worker %lld  pid %lld  %s",
			    json_integer_value(json_object_get(w, "id")),
			    json_integer_value(json_object_get(w, "pid")),
			    cmd_shown(json_string_value(json_object_get(w, "state"))) ?: "?");
			if (run != NULL)
				fprintf(out, "  %s/%s attempt %lld", cmd_shown(run),
				    cmd_shown(json_string_value(json_object_get(w, "phase_id"))) ?:
				        "?",
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

/* Fill err: no live supervisor, or not supervisor `target`; returns STORE_EBUSY. */
static int fleet_none_err(struct store *st, int64_t target, struct store_err *err)
{
	if (target > 0)
		snprintf(err->text, sizeof err->text, "supervisor %lld of %s is not running",
		    (long long)target, cmd_shown(st->url));
	else
		snprintf(err->text, sizeof err->text, "no autopack-supervisor is running on %s",
		    cmd_shown(st->url));
	return STORE_EBUSY;
}

/* Fail: no live supervisor, or not supervisor `target`. */
static int fleet_none(struct cmd_ctx *ctx, struct store *st, int64_t target)
{
	struct store_err err;
	int rc = fleet_none_err(st, target, &err);

	return cmd_fail(ctx, rc, "%s", err.text);
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
		return fleet_none(ctx, st, target);
	}
	arr = json_array();
	if (!ctx->json)
		printf("supervisors of %s (uuid %s)\n", cmd_shown(st->url), st->uuid);
	for (size_t i = 0; i < n; i++) {
		if (target > 0 && m[i].id != target)
			continue;
		if (ctx->json)
			json_array_append_new(arr, fleet_member_json(&m[i]));
		else
			fleet_member_show(&m[i], stdout);
	}
	if (ctx->json)
		cmd_json_print(json_pack("{s:b, s:s, s:s, s:o}", "ok", 1, "db_url", st->url,
		    "db_uuid", st->uuid, "supervisors", arr));
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

/* A command sent through the database and the answers it got. */
struct fleet_ask {
	int64_t id;
	size_t want; /* the live supervisors it went to */
	struct fleet_result *res;
	size_t nres;
};

/* Fill err with a message; returns `code`. */
__attribute__((format(printf, 3, 4))) static int fleet_err(
    struct store_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->text, sizeof err->text, fmt, ap);
	va_end(ap);
	return code;
}

/* Send a command to supervisor `target` (0: every live one) and wait for every answer,
 * or FLEET_ANSWER_MS, printing nothing. Returns 0, or a STORE_E* code with err set
 * (STORE_EBUSY: no such supervisor live). */
static int fleet_ask_quiet(struct store *st, int64_t target, const char *cmd, char **args,
    size_t nargs, struct fleet_ask *a, struct store_err *err)
{
	struct fleet_member *m;
	json_t *arr;
	char *text, *by;
	size_t n;
	int rc = store_fleet_members(st, 0, &m, &n, err);

	memset(a, 0, sizeof *a);
	if (rc != 0)
		return rc;
	a->want = fleet_live_count(m, n, target);
	store_fleet_members_free(m, n);
	if (a->want == 0)
		return fleet_none_err(st, target, err);
	arr = json_array();
	for (size_t i = 0; i < nargs; i++)
		json_array_append_new(arr, json_string(args[i]));
	text = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	by = fleet_sender();
	rc = store_fleet_command_send(st, target, cmd, text, by, &a->id, err);
	free(text);
	free(by);
	for (long waited = 0; rc == 0 && waited < FLEET_ANSWER_MS; waited += 100) {
		store_fleet_results_free(a->res, a->nres);
		a->res = NULL;
		a->nres = 0;
		if ((rc = store_fleet_command_results(st, a->id, &a->res, &a->nres, err)) != 0)
			break;
		if (a->nres >= a->want)
			break;
		fleet_nap(100);
	}
	if (rc != 0) {
		store_fleet_results_free(a->res, a->nres);
		a->res = NULL;
		a->nres = 0;
	}
	return rc;
}

/* fleet_ask_quiet, reporting a failure (the exit code) and the supervisors that did not
 * answer. */
static int fleet_ask(struct cmd_ctx *ctx, struct store *st, int64_t target, const char *cmd,
    char **args, size_t nargs, struct fleet_ask *a)
{
	struct store_err err;
	int rc = fleet_ask_quiet(st, target, cmd, args, nargs, a, &err);

	if (rc != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	if (a->nres < a->want)
		fprintf(stderr,
		    "autopack-ctl: %zu of %zu supervisor(s) did not answer within %d s (they carry"
		    " the command out when they see it: autopack-ctl status shows them)\n",
		    a->want - a->nres, a->want, FLEET_ANSWER_MS / 1000);
	return 0;
}

/* Send a command to supervisor `target` (0: every live one), wait for every answer and
 * print them. */
static int fleet_send(struct cmd_ctx *ctx, struct store *st, int64_t target, const char *cmd,
    char **args, size_t nargs)
{
	struct fleet_ask a;
	json_t *out;
	int exit_code = fleet_ask(ctx, st, target, cmd, args, nargs, &a);

	if (exit_code != 0)
		return exit_code;
	out = json_array();
	if (!ctx->json)
		printf("%s sent to %s of %s (command %lld)\n", cmd,
		    target > 0 ? "one supervisor" : "every supervisor", cmd_shown(st->url),
		    (long long)a.id);
	for (size_t i = 0; i < a.nres; i++) {
		/* A success's result is the reply's body (a JSON object): said in a line, and
		 * with --json given as "reply" beside the text it came as. */
		json_t *body = a.res[i].ok && a.res[i].result != NULL ?
		    json_loads_bounded(a.res[i].result, 0, NULL) :
		    NULL;

		if (!json_is_object(body)) {
			json_decref(body);
			body = NULL;
		}
		if (!a.res[i].ok)
			exit_code = CMD_EXIT_REFUSED;
		if (ctx->json) {
			json_array_append_new(out,
			    json_pack("{s:I, s:b, s:s, s:o?}", "supervisor_id",
			        (json_int_t)a.res[i].supervisor_id, "ok", a.res[i].ok, "result",
			        a.res[i].result, "reply", body));
			continue;
		}
		printf("supervisor %lld: ", (long long)a.res[i].supervisor_id);
		if (body != NULL)
			cmd_control_say(cmd, body, stdout);
		else
			printf(
			    "%s %s\n", a.res[i].ok ? "ok" : "refused:", cmd_shown(a.res[i].result));
		json_decref(body);
	}
	if (a.nres < a.want)
		exit_code = CMD_EXIT_REFUSED;
	if (ctx->json)
		cmd_json_print(
		    json_pack("{s:b, s:s, s:s, s:I, s:s, s:o, s:I}", "ok", exit_code == CMD_EXIT_OK,
		        "db_url", st->url, "db_uuid", st->uuid, "command_id", (json_int_t)a.id,
		        "command", cmd, "answers", out, "expected", (json_int_t)a.want));
	else
		json_decref(out);
	store_fleet_results_free(a.res, a.nres);
	return exit_code;
}

/* cancel RUN PHASE: to the supervisor whose attempt of the phase is open, else (a queued
 * or failed phase) to the live supervisor registered first; when the phase was claimed
 * meanwhile, once more to its new holder. */
static int fleet_cancel(
    struct cmd_ctx *ctx, struct store *st, int64_t target, char **args, size_t nargs)
{
	struct fleet_member *m;
	struct store_err err;
	int64_t holder = 0, again = 0;
	size_t n;
	int rc;

	if (nargs != 2)
		return cmd_usage_error(ctx, "expected RUN PHASE");
	if (target > 0)
		return fleet_send(ctx, st, target, "cancel", args, nargs);
	if ((rc = store_fleet_phase_holder(st, args[0], args[1], &holder, &err)) != 0 ||
	    (rc = store_fleet_members(st, 0, &m, &n, &err)) != 0)
		return cmd_fail(ctx, rc, "%s", err.text);
	for (size_t i = 0; holder == 0 && i < n; i++)
		if (strcmp(m[i].state, "live") == 0)
			holder = m[i].id;
	store_fleet_members_free(m, n);
	if (holder == 0)
		return fleet_none(ctx, st, 0);
	rc = fleet_send(ctx, st, holder, "cancel", args, nargs);
	if (rc == CMD_EXIT_REFUSED &&
	    store_fleet_phase_holder(st, args[0], args[1], &again, &err) == 0 && again > 0 &&
	    again != holder) {
		fprintf(stderr,
		    "autopack-ctl: supervisor %lld claimed %s/%s meanwhile: sending the cancel to"
		    " it\n",
		    (long long)again, cmd_shown(args[0]), cmd_shown(args[1]));
		rc = fleet_send(ctx, st, again, "cancel", args, nargs);
	}
	return rc;
}

/* A metric family of the merged exposition: its HELP and TYPE lines once, then the
 * samples of every supervisor, each labelled supervisor="id". */
struct fleet_family {
	char *name;
	char *head; /* its # HELP and # TYPE lines */
	char *body; /* its samples */
	size_t body_len;
	FILE *f;
};

/* The family named `name` (created at the end when new; each on the heap, where its
 * memory stream writes). */
static struct fleet_family *fleet_family(
    struct fleet_family ***fs, size_t *n, const char *name, size_t len)
{
	struct fleet_family *f;

	for (size_t i = 0; i < *n; i++)
		if (strlen((*fs)[i]->name) == len && strncmp((*fs)[i]->name, name, len) == 0)
			return (*fs)[i];
	*fs = xrealloc(*fs, (*n + 1) * sizeof **fs);
	f = (*fs)[(*n)++] = xcalloc(1, sizeof *f);
	f->name = xstrndup(name, len);
	f->head = xstrdup("");
	f->f = open_memstream(&f->body, &f->body_len);
	if (f->f == NULL)
		abort();
	return f;
}

/* Add one supervisor's exposition to the families. */
static void fleet_metrics_add(
    struct fleet_family ***fs, size_t *n, const char *text, int64_t supervisor_id)
{
	struct fleet_family *cur = NULL;
	const char *line = text, *end;

	for (; *line != '\0'; line = *end != '\0' ? end + 1 : end) {
		size_t len, name_len;

		end = strchr(line, '\n');
		if (end == NULL)
			end = line + strlen(line);
		len = (size_t)(end - line);
		if (len == 0)
			continue;
		if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
			char *copy = xasprintf("%.*s\n", (int)len, line), *head;

			name_len = strcspn(line + 7, " \n");
			cur = fleet_family(fs, n, line + 7, name_len);
			if (strstr(cur->head, copy) == NULL) {
				head = xasprintf("%s%s", cur->head, copy);
				free(cur->head);
				cur->head = head;
			}
			free(copy);
			continue;
		}
		if (line[0] == '#')
			continue;
		name_len = strcspn(line, "{ ");
		if (cur == NULL)
			cur = fleet_family(fs, n, line, name_len);
		if (line[name_len] == '{')
			fprintf(cur->f, "%.*s{supervisor=\"%lld\",%.*s\n", (int)name_len, line,
			    (long long)supervisor_id, (int)(len - name_len - 1),
			    line + name_len + 1);
		else
			fprintf(cur->f, "%.*s{supervisor=\"%lld\"}%.*s\n", (int)name_len, line,
			    (long long)supervisor_id, (int)(len - name_len), line + name_len);
	}
}

/* metrics: every live supervisor's (or --supervisor ID's) exposition, merged into one,
 * each sample labelled with its supervisor. */
static int fleet_metrics(struct cmd_ctx *ctx, struct store *st, int64_t target)
{
	struct fleet_family **fs = NULL;
	struct fleet_ask a;
	size_t n = 0;
	int exit_code = fleet_ask(ctx, st, target, "metrics", NULL, 0, &a);

	if (exit_code != 0)
		return exit_code;
	for (size_t i = 0; i < a.nres; i++) {
		json_t *body = json_loads_bounded(a.res[i].result, 0, NULL);
		const char *text = json_string_value(json_object_get(body, "text"));

		if (!a.res[i].ok || text == NULL) {
			fprintf(stderr, "autopack-ctl: supervisor %lld: refused: %s\n",
			    (long long)a.res[i].supervisor_id, cmd_shown(a.res[i].result));
			exit_code = CMD_EXIT_REFUSED;
		} else {
			fleet_metrics_add(&fs, &n, text, a.res[i].supervisor_id);
		}
		json_decref(body);
	}
	fprintf(stderr, "supervisors of %s (uuid %s): %zu answered\n", cmd_shown(st->url), st->uuid,
	    a.nres);
	for (size_t i = 0; i < n; i++) {
		fclose(fs[i]->f);
		fputs(fs[i]->head, stdout);
		fwrite(fs[i]->body, 1, fs[i]->body_len, stdout);
		free(fs[i]->name);
		free(fs[i]->head);
		free(fs[i]->body);
		free(fs[i]);
	}
	free(fs);
	if (a.nres < a.want)
		exit_code = CMD_EXIT_REFUSED;
	store_fleet_results_free(a.res, a.nres);
	return exit_code;
}

/* After a write that queued phases: on a database several supervisors share, wake every
 * live one (notify first when the write's own transaction did not) and say on `out`
 * which were woken; returns their ids (a JSON array), or NULL on SQLite. When they cannot
 * be woken, that is said: they read the queues again within two heartbeats anyway. */
json_t *cmd_fleet_woken(struct store *st, bool notify, FILE *out)
{
	struct fleet_member *m;
	struct store_err err;
	json_t *ids, *id;
	size_t n, i;

	if (!store_fleet(st))
		return NULL;
	ids = json_array();
	if ((notify && store_fleet_wake(st, &err) != 0) ||
	    store_fleet_members(st, 0, &m, &n, &err) != 0) {
		fprintf(stderr,
		    "autopack-ctl: %s (the supervisors read the queues again within two"
		    " heartbeats)\n",
		    cmd_shown(err.text));
		return ids;
	}
	for (i = 0; i < n; i++)
		if (strcmp(m[i].state, "live") == 0)
			json_array_append_new(ids, json_integer(m[i].id));
	store_fleet_members_free(m, n);
	if (json_array_size(ids) == 0) {
		fprintf(out, "no autopack-supervisor is running on %s: the next one takes them\n",
		    cmd_shown(st->url));
		return ids;
	}
	fprintf(
	    out, "woke %zu live supervisor(s) of %s (", json_array_size(ids), cmd_shown(st->url));
	json_array_foreach(ids, i, id)
	    fprintf(out, "%s%lld", i > 0 ? ", " : "", (long long)json_integer_value(id));
	fprintf(out, "): they take them at once\n");
	return ids;
}

/* The first live supervisor's id, or 0. */
static int64_t fleet_first_live(struct store *st, struct store_err *err)
{
	struct fleet_member *m;
	int64_t id = 0;
	size_t n;

	if (store_fleet_members(st, 0, &m, &n, err) != 0)
		return -1;
	for (size_t i = 0; id == 0 && i < n; i++)
		if (strcmp(m[i].state, "live") == 0)
			id = m[i].id;
	store_fleet_members_free(m, n);
	return id;
}

/* Fetch one supervisor's reply to `cmd` through the database, as cmd_live_fetch does over
 * a socket; the command is removed once answered. */
int cmd_fleet_fetch(struct cmd_ctx *ctx, int64_t *target, const char *cmd, struct live_reply *out,
    bool *handled, char *errtext, size_t errlen)
{
	struct store st = { 0 };
	struct fleet_ask a = { 0 };
	struct store_err err;
	char *path, *url;
	int rc;

	memset(out, 0, sizeof *out);
	*handled = false;
	if (cmd_db_probe(ctx, &path, &url) != 0 || strncmp(url, "postgresql://", 13) != 0) {
		free(path);
		free(url);
		return 0;
	}
	*handled = true;
	rc = store_open(&st, path, url, STORE_WRITE, &err);
	free(path);
	free(url);
	if (rc == 0 && *target == 0 && (*target = fleet_first_live(&st, &err)) <= 0) {
		rc = *target < 0 ? STORE_EIO : fleet_none_err(&st, 0, &err);
		*target = 0;
	}
	if (rc == 0)
		rc = fleet_ask_quiet(&st, *target, cmd, NULL, 0, &a, &err);
	if (rc == 0 && a.nres == 0)
		rc = fleet_err(&err, STORE_EBUSY,
		    "supervisor %lld of %s did not answer within %d s", (long long)*target, st.url,
		    FLEET_ANSWER_MS / 1000);
	else if (rc == 0 && !a.res[0].ok)
		rc = fleet_err(
		    &err, STORE_EINVAL, "supervisor %lld: %s", (long long)*target, a.res[0].result);
	if (rc == 0) {
		out->body = json_loads_bounded(a.res[0].result, 0, NULL);
		if (out->body == NULL)
			out->body = json_object();
		out->db_url = xstrdup(st.url);
		out->db_uuid = xstrdup(st.uuid);
		out->db_devino = xstrdup("");
	}
	if (a.id > 0 && store_fleet_command_forget(&st, a.id, &err) != 0 && rc == 0)
		fprintf(stderr, "autopack-ctl: %s\n", cmd_shown(err.text));
	store_fleet_results_free(a.res, a.nres);
	store_close(&st);
	if (rc != 0)
		snprintf(errtext, errlen, "%s", err.text);
	return rc;
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
	if (cmd_db_probe(ctx, &path, &url) != 0) {
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
	    strcmp(cmd, "scale") != 0 && strcmp(cmd, "stop") != 0 && strcmp(cmd, "cancel") != 0 &&
	    strcmp(cmd, "metrics") != 0) {
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
	if (list)
		rc = fleet_list(ctx, &st, target);
	else if (strcmp(cmd, "cancel") == 0)
		rc = fleet_cancel(ctx, &st, target, args, nargs);
	else if (strcmp(cmd, "metrics") == 0)
		rc = fleet_metrics(ctx, &st, target);
	else
		rc = fleet_send(ctx, &st, target, cmd, args, nargs);
	store_close(&st);
	return rc;
}
