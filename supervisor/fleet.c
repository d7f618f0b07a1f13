/* Several supervisors on one PostgreSQL database (docs/postgresql.md, "Several hosts"):
 * this supervisor's registration, its heartbeat when nothing else commits (every group
 * commit writes it too, writer.c), the rescue of the attempts of supervisors whose
 * heartbeat stopped, the run queues read again when other supervisors free runs, and the
 * commands sent through the database. The connection's socket is watched with a uv_poll
 * (on a duplicate of it) for NOTIFY; every database call is one query, so the loop never
 * waits longer. */
#include "supervisor/cmd.h"
#include "common/jsonload.h"
#include "common/log.h"
#include "common/store/store_fleet.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The least time between two rebuilds of the run queues. */
#define FLEET_REFRESH_MIN_MS 100
/* The longest period of the fleet timer. */
#define FLEET_TICK_MS 250

/* The period of the heartbeat, the rescue and the polls: a quarter of the lease, within
 * bounds. */
static uint64_t fleet_beat_ms(struct sup *s)
{
	int64_t t = s->cfg.lease_timeout_ms / 4;

	return (uint64_t)(t < 50 ? 50 : t > 5000 ? 5000 : t);
}

/* The period of the fleet timer: at most FLEET_TICK_MS. */
static uint64_t fleet_tick_ms(struct sup *s)
{
	uint64_t b = fleet_beat_ms(s);

	return b < FLEET_TICK_MS ? b : FLEET_TICK_MS;
}

/* The key of the drain this supervisor runs: supervisors with the same one share their
 * drain session (and its policy state). */
static char *fleet_join_key(const struct sup_config *c)
{
	json_t *skip = json_array(), *j;
	char *out;

	for (size_t i = 0; i < c->nskip; i++)
		json_array_append_new(skip, json_string(c->skip_prefixes[i]));
	j = json_pack("{s:b, s:s?, s:b, s:o}", "dry_run", c->dry_run, "run_id", c->run_id,
	    "retry_failed", c->retry_failed, "skip_run_prefix", skip);
	out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	return out;
}

/* Register in the database's supervisors; exits 1 on failure. */
void fleet_register(struct sup *s)
{
	struct fleet_self self = { .pid = getpid(),
		.lease_timeout_ms = s->cfg.lease_timeout_ms,
		.retry_failed = s->cfg.retry_failed,
		.batch_size = s->cfg.batch_size };
	struct store_err err;
	char host[256];

	if (gethostname(host, sizeof host) != 0)
		strlcpy_ap(host, "unknown-host", sizeof host);
	host[sizeof host - 1] = '\0';
	self.host = host;
	if (store_fleet_register(s->sd, &self, &s->fleet_id, &err) != 0)
		log_fatal(1, "%s", err.text);
	s->fleet_busy = true;
	s->fleet_live_ms = clock_mono_ms();
	log_info("registered as supervisor %lld of %s on %s (lease timeout %.1f s)",
	    (long long)s->fleet_id, s->st->url, host, (double)s->cfg.lease_timeout_ms / 1000.0);
}

/* Take the budgets of session `id` as this supervisor's: the time it ran before, the
 * attempts it started. A session's --batch-size and --max-total-minutes hold for the
 * whole session, so a supervisor started with others leaves the fleet and exits 1. */
static void fleet_join_budgets(struct sup *s, const char *id)
{
	struct fleet_budget b;
	struct store_err err;

	if (store_fleet_session_budget(s->sd, id, &b, &err) != 0)
		log_fatal(1, "%s", err.text);
	if (b.batch_size != s->cfg.batch_size || b.max_total_minutes != s->cfg.max_total_minutes) {
		store_drain_rollback(s->sd);
		if (store_fleet_leave(s->sd, NULL, &err) != 0)
			log_error("%s", err.text);
		log_fatal(1,
		    "drain session %s of the other supervisors has --batch-size %lld and"
		    " --max-total-minutes %lld (0: none), budgets of the whole session; this"
		    " supervisor has %lld and %lld. Start it with the session's, or once the"
		    " session has ended",
		    id, (long long)b.batch_size, (long long)b.max_total_minutes,
		    (long long)s->cfg.batch_size, (long long)s->cfg.max_total_minutes);
	}
	if (s->cfg.max_total_minutes > 0)
		s->session_elapsed_ms = b.elapsed_ms > 0 ? b.elapsed_ms : 0;
	if (s->cfg.batch_size > 0)
		s->started = b.started;
}

/* This supervisor was declared lost by another before it chose its session (`while`:
 * what it was doing): nothing is written, exit 3, as a commit finding so would. */
static void fleet_lost_starting(struct sup *s, const char *while_)
{
	log_fatal(3,
	    "DECLARED LOST: another supervisor declared supervisor %lld lost (no heartbeat for"
	    " longer than its lease timeout, %.1f s) %s; nothing is written, exiting with status"
	    " 3",
	    (long long)s->fleet_id, (double)s->cfg.lease_timeout_ms / 1000.0, while_);
}

/* Begin the transaction that chooses the session, holding the session-choosing lock.
 * While another supervisor holds it, wait, saying once for each holder who it is; the
 * server frees it from one stopped while holding it after half that one's lease. Exits 1
 * on failure, or when the lock is held where the server never frees it; 3 when this
 * supervisor is found declared lost while it waits. */
static void fleet_session_lock(struct sup *s)
{
	struct store_err err;
	int holder, said = 0, rc;
	bool lost;

	while ((rc = store_fleet_session_lock(s->sd, true, &holder, &lost, &err)) == STORE_EBUSY) {
		if (lost)
			fleet_lost_starting(s, "while it waited for the session-choosing lock");
		if (holder != 0 && holder != said)
			log_warn("%s", err.text);
		said = holder != 0 ? holder : said;
	}
	if (rc != 0)
		log_fatal(1, "%s", err.text);
}

/* Join the session of live supervisors draining the same way, with its budgets; false
 * when there is none (the caller starts one). Exits 1 on failure, 3 when this supervisor
 * is found declared lost while it waits for the session-choosing lock. */
bool fleet_join_session(struct sup *s)
{
	struct store_err err;
	char *key = fleet_join_key(&s->cfg), *id = NULL, *state = NULL;

	/* One transaction until fleet_session_set: two supervisors starting together share
	 * one session. */
	fleet_session_lock(s);
	if (store_fleet_session_find(s->sd, key, &id, &err) != 0)
		log_fatal(1, "%s", err.text);
	free(key);
	if (id == NULL)
		return false;
	s->session_id = id;
	log_info("joining drain session %s of the other supervisors", id);
	fleet_join_budgets(s, id);
	/* Their triage, run stops and fingerprint counts hold here too. */
	if (store_fleet_session_state(s->sd, id, false, &state, &err) != 0)
		log_fatal(1, "%s", err.text);
	if (policy_load(s, state) != 0)
		exit(1);
	free(state);
	return true;
}

/* Record the session this supervisor drains in and commit the choice; exits 1 on
 * failure, 3 (the choice rolled back) when this supervisor is no longer live. */
void fleet_session_set(struct sup *s)
{
	struct store_err err;
	char *key = fleet_join_key(&s->cfg);
	int holder;
	bool lost = false;

	if (store_fleet_session_set(s->sd, s->session_id, key, &lost, &err) != 0)
		log_fatal(1, "%s", err.text);
	if (lost) {
		/* The choice (a session started) is rolled back with the transaction. */
		store_drain_rollback(s->sd);
		fleet_lost_starting(s, "before it had chosen its session");
	}
	if (store_fleet_session_lock(s->sd, false, &holder, &lost, &err) != 0)
		log_fatal(1, "%s", err.text);
	free(key);
}

/* What the other hosts' `status` shows of this supervisor: its workers and counters. */
static char *fleet_status_json(struct sup *s)
{
	json_t *ws = json_array(), *j;
	struct worker *w;
	char *out;

	for (w = s->workers; w != NULL; w = w->next) {
		if (w->state == W_EXITED)
			continue;
		json_array_append_new(ws,
		    json_pack("{s:i, s:i, s:s, s:s?, s:s?, s:I}", "id", w->id, "pid", (int)w->pid,
		        "state", worker_state_name(w), "run_id",
		        w->lease.run != NULL ? w->lease.run->run_id : NULL, "phase_id",
		        w->lease.phase != NULL ? w->lease.phase->phase_id : NULL, "attempt_id",
		        (json_int_t)w->lease.attempt_id));
	}
	j = json_pack("{s:o, s:i, s:b, s:s, s:I, s:I, s:I, s:s?}", "workers", ws, "target",
	    s->target, "paused", s->paused, "stopping",
	    s->stopping ? stop_level_name(s->stopping) : "none", "in_flight",
	    (json_int_t)s->in_flight, "queued", (json_int_t)s->queued, "attempts",
	    (json_int_t)s->n.results, "control_socket", s->control_path);
	out = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return out;
}

/* Within a --batch-size, read the attempts the session started (the other supervisors'
 * claims count too); on failure the count stays as it was. */
static void fleet_read_started(struct sup *s)
{
	struct store_err err;
	int64_t n;

	if (s->cfg.batch_size <= 0 || s->commit_doubt || db_in_transaction(s->st->db))
		return;
	if (store_fleet_session_started(s->sd, s->session_id, &n, &err) != 0) {
		log_error("%s", err.text);
		return;
	}
	s->started = n;
}

/* Rebuild the run queues from the database, at most every FLEET_REFRESH_MIN_MS unless
 * `now` (else at the next tick), and dispatch what became eligible. A rebuild that fails
 * leaves the queues unread (s->fleet_unread) until one succeeds: the drain is not over
 * while they are, and the one every other beat tries again. */
static void fleet_refresh(struct sup *s, bool now)
{
	uint64_t t = clock_mono_ms();

	if (s->stopping || s->writes_off)
		return;
	if (!now && t - s->fleet_refreshed_ms < FLEET_REFRESH_MIN_MS) {
		s->fleet_refreshed_ms = 0; /* the next tick rebuilds */
		return;
	}
	s->fleet_refreshed_ms = t;
	fleet_read_started(s);
	policy_sync(s);
	s->fleet_unread = sched_refresh(s) != 0;
	lease_kick(s);
}

/* Reread the runs another supervisor held (or had changed) when this one tried them, in
 * one query, and dispatch those that became free: a claim that finds a run held leaves
 * only that run to be read again, not the whole queue. */
static void fleet_refresh_parked(struct sup *s)
{
	if (s->stopping || s->writes_off)
		return;
	policy_sync(s);
	sched_refresh_parked(s);
	lease_kick(s);
}

/* Run one command sent through the database and record the answer. */
static void fleet_command(struct sup *s, const struct fleet_command *fc)
{
	struct proto_request req = { .command = fc->command };
	struct ctl_conn conn = { .sup = s };
	struct cmd_reply rep = { 0 };
	json_t *args = json_loads_bounded(fc->args, 0, NULL), *v;
	struct store_err err;
	char *result = NULL;
	size_t i;
	int rc;

	req.args.items = xcalloc(json_array_size(args) + 1, sizeof *req.args.items);
	json_array_foreach(args, i, v) if (json_is_string(v))
	    req.args.items[req.args.n++] = (char *)json_string_value(v);
	log_info("command %lld from the database: %s", (long long)fc->id, fc->command);
	rc = control_run(s, &conn, &req, &rep);
	result = rc == 0 && rep.body != NULL ? json_dumps(rep.body, JSON_COMPACT) :
	                                       xstrdup(rep.message != NULL ? rep.message : "");
	if (store_fleet_command_done(s->sd, fc->id, rc == 0, result, &err) != 0)
		log_error("%s", err.text);
	free(result);
	free(rep.message);
	json_decref(rep.body);
	free(req.args.items);
	json_decref(args);
}

/* Run the commands due to this supervisor that it has not answered. The commands are
 * read from the lowest id not yet settled on: a command whose id is lower than one run
 * already can still become visible (its INSERT took its id first and committed last), and
 * is run when it does. */
static void fleet_commands(struct sup *s)
{
	struct fleet_command *cs;
	struct store_err err;
	size_t n;

	if (s->writes_off || db_in_transaction(s->st->db))
		return;
	if (store_fleet_commands_due(s->sd, s->fleet_cmd_after, &cs, &n, &err) != 0) {
		log_error("%s", err.text);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (cs[i].settled)
			s->fleet_cmd_after = cs[i].id;
		if (!cs[i].answered)
			fleet_command(s, &cs[i]);
	}
	store_fleet_commands_free(cs, n);
}

/* Whether this supervisor is known to be live: found so on the present connection (its
 * registration, or a heartbeat written on it) within half its lease, its last commit's
 * included. Until then it reads and writes nothing for the fleet: after a reconnection
 * or a stall it may have been declared lost meanwhile. */
static bool fleet_live_known(struct sup *s)
{
	uint64_t last = s->last_commit_ms > s->fleet_live_ms ? s->last_commit_ms : s->fleet_live_ms;

	return !s->writes_off && store_fleet_confirmed(s->sd) &&
	    clock_mono_ms() - last < (uint64_t)s->cfg.lease_timeout_ms / 2;
}

/* Make sure this supervisor is still live before it acts for the fleet: when that is not
 * known (fleet_live_known), renew its heartbeat alone. Found lost, it stops as a commit
 * finding so would (exit 3). Returns whether it is live; false on failure too (the
 * heartbeat and the writer's retries connect again), tried again at the next tick. */
static bool fleet_confirm(struct sup *s)
{
	struct store_err err;
	bool lost = false;

	if (fleet_live_known(s))
		return true;
	/* A group in doubt is settled first, by the writer: its transaction may still hold
	 * this supervisor's row, whose version says whether it committed. */
	if (s->writes_off || s->commit_doubt || db_in_transaction(s->st->db))
		return false;
	if (store_fleet_confirm(s->sd, &lost, &err) != 0) {
		log_error("%s", err.text);
		return false;
	}
	if (lost) {
		lifecycle_declared_lost(s);
		return false;
	}
	s->fleet_live_ms = clock_mono_ms();
	return true;
}

/* Read the notifications that arrived and act on them, once this supervisor is known to
 * be live (else they are only read: the beats read the commands and the queues anyway). */
static void fleet_notifications(struct sup *s)
{
	bool control, queue;

	if (s->writes_off || store_fleet_notified(s->sd, &control, &queue) != 0 ||
	    !fleet_live_known(s))
		return;
	if (control)
		fleet_commands(s);
	if (queue)
		fleet_refresh(s, false);
}

/* The watch on the connection: a uv_poll on a descriptor of its own, a duplicate of
 * the connection's socket. libpq closes its socket when the connection drops (and
 * PQreset opens another); the duplicate keeps the descriptor's number taken until the
 * poll is closed, so no handle opened meanwhile (a worker's channel, a control
 * connection) can get that number while the loop still watches it. */
struct fleet_watch {
	uv_poll_t poll; /* first: s->fleet_poll points here */
	int fd;         /* the duplicate, closed once the poll is */
};

/* Whether the watch still fits the connection: the same connection, still up, and the
 * supervisor still writing. */
static bool fleet_watch_valid(struct sup *s)
{
	return !s->writes_off && s->conn_gen == s->st->conn_gen && !store_connection_lost(s->st);
}

/* The connection's socket is readable: a notification, most likely. A failed poll or a
 * connection seen gone (or replaced) ends the watch at once: its socket would stay
 * readable; the fleet timer watches the next connection. */
static void fleet_poll_cb(uv_poll_t *h, int status, int events)
{
	struct sup *s = h->data;

	(void)events;
	if (status < 0 || !fleet_watch_valid(s)) {
		fleet_unlisten(s);
		return;
	}
	fleet_notifications(s);
	if (!fleet_watch_valid(s))
		fleet_unlisten(s);
}

/* Close the duplicate a closed poll watched and free the handle. */
static void fleet_poll_close_cb(uv_handle_t *h)
{
	struct fleet_watch *w = (struct fleet_watch *)h;

	close(w->fd);
	free(w);
}

/* Stop the watch *p and close its handle (its duplicate is closed with it); nothing
 * when *p is NULL. */
static void fleet_watch_stop(uv_poll_t **p)
{
	if (*p == NULL)
		return;
	uv_poll_stop(*p);
	uv_close((uv_handle_t *)*p, fleet_poll_close_cb);
	*p = NULL;
}

/* Watch socket `fd` for `events` through a duplicate of it, calling cb: the poll, or
 * NULL with why (`what`: what the watch is for). */
static uv_poll_t *fleet_watch(
    struct sup *s, int fd, int events, uv_poll_cb cb, const char *what, char *why, size_t n)
{
	struct fleet_watch *w;
	int dupfd, rc;

	if (fd < 0 || (dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		snprintf(
		    why, n, "cannot watch %s: %s", what, fd < 0 ? "no socket" : strerror(errno));
		return NULL;
	}
	w = xcalloc(1, sizeof *w);
	w->fd = dupfd;
	if ((rc = uv_poll_init(s->loop, &w->poll, dupfd)) != 0) {
		snprintf(why, n, "cannot watch %s: %s", what, uv_strerror(rc));
		close(dupfd);
		free(w);
		return NULL;
	}
	w->poll.data = s;
	uv_poll_start(&w->poll, events, cb);
	return &w->poll;
}

/* Stop the watch of notifications; nothing when nothing is watched. */
void fleet_unlisten(struct sup *s)
{
	fleet_watch_stop(&s->fleet_poll);
}

/* Watch the connection's socket for notifications (again, after a reconnect: the
 * socket is another one). On failure nothing is watched: the fleet timer still reads
 * the notifications at each tick. */
void fleet_listen(struct sup *s)
{
	struct store_err err;
	char why[256];
	int fd;

	s->conn_gen = s->st->conn_gen;
	s->fleet_connected_ms = clock_mono_ms();
	fleet_unlisten(s);
	if (store_fleet_listen(s->sd, &fd, &err) != 0) {
		log_error("%s", err.text);
		return;
	}
	s->fleet_poll = fleet_watch(s, fd, UV_READABLE, fleet_poll_cb,
	    "the database connection for notifications", why, sizeof why);
	if (s->fleet_poll == NULL)
		log_error("%s", why);
}

/* Stop watching the socket of the connection being made; nothing when none is
 * watched. */
static void fleet_connect_unwatch(struct sup *s)
{
	fleet_watch_stop(&s->reconnect_poll);
}

/* The attempt to connect again is over (made, failed, or out of time): its handles are
 * stopped, what became of it told (lifecycle_reconnected) and, once connected, a commit
 * waiting for its retry made at once. */
static void fleet_connect_end(struct sup *s, int rc, const struct store_err *err)
{
	fleet_connect_unwatch(s);
	uv_timer_stop(&s->reconnect_timer);
	s->reconnecting = false;
	lifecycle_reconnected(s, rc, err);
	if (rc == 0 && !s->writes_off && s->commit_retrying)
		writer_flush(s);
}

static void fleet_connect_step(struct sup *s);

/* Say in err why the attempt to connect again failed (the URL, then what), the
 * database's fault being the lost connection; returns STORE_EIO. */
static int fleet_connect_fail(struct sup *s, struct store_err *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fleet_connect_fail(struct sup *s, struct store_err *err, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err->text, sizeof err->text, "%s: ", s->st->url);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < sizeof err->text)
		vsnprintf(err->text + n, sizeof err->text - (size_t)n, fmt, ap);
	va_end(ap);
	err->fault = DB_FAULT_LOST;
	return STORE_EIO;
}

/* The socket of the connection being made is ready (or its poll failed: libpq's next
 * step finds out what became of the socket). */
static void fleet_connect_poll_cb(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	fleet_connect_step(h->data);
}

/* Watch socket `fd` until it is writable (`write`) or readable. Returns 0, or STORE_EIO
 * (err) when it cannot be watched. */
static int fleet_connect_watch(struct sup *s, int fd, bool write, struct store_err *err)
{
	char why[256];

	fleet_connect_unwatch(s);
	s->reconnect_poll = fleet_watch(s, fd, write ? UV_WRITABLE : UV_READABLE,
	    fleet_connect_poll_cb, "the connection being made", why, sizeof why);
	if (s->reconnect_poll == NULL)
		return fleet_connect_fail(s, err, "%s", why);
	return 0;
}

/* One step of the connection being made: wait for its socket again, or end. */
static void fleet_connect_step(struct sup *s)
{
	struct store_err err;
	bool write;
	int fd, rc = store_reconnect_poll(s->st, &fd, &write, &err);

	if (rc == STORE_EBUSY && (rc = fleet_connect_watch(s, fd, write, &err)) == 0)
		return;
	if (store_connection_lost(s->st))
		store_reconnect_abandon(s->st);
	fleet_connect_end(s, rc, &err);
}

/* The attempt to connect again had no answer in its time: given up. */
static void fleet_connect_timeout_cb(uv_timer_t *t)
{
	struct sup *s = t->data;
	struct store_err err;

	store_reconnect_abandon(s->st);
	fleet_connect_fail(s, &err, "cannot connect again: no answer within %.1f s",
	    (double)lifecycle_reconnect_ms(s) / 1000.0);
	fleet_connect_end(s, STORE_EIO, &err);
}

void fleet_reconnect(struct sup *s)
{
	struct store_err err;
	int fd, rc;

	if (!s->reconnect_timer_init) {
		uv_timer_init(s->loop, &s->reconnect_timer);
		s->reconnect_timer.data = s;
		s->reconnect_timer_init = true;
	}
	s->reconnecting = true;
	if ((rc = store_reconnect_start(s->st, &fd, &err)) == 0 &&
	    (rc = fleet_connect_watch(s, fd, true, &err)) == 0) {
		uv_timer_start(
		    &s->reconnect_timer, fleet_connect_timeout_cb, lifecycle_reconnect_ms(s), 0);
		return;
	}
	if (store_connection_lost(s->st))
		store_reconnect_abandon(s->st);
	fleet_connect_end(s, rc, &err);
}

/* Declare silent supervisors lost and take their attempts back into the queue. One is
 * judged only after this supervisor has been connected for that one's whole lease (the
 * store passes over the others): after an outage every heartbeat is old, and each needs
 * its own lease to renew its heartbeat (one of a longer lease beats less often, every
 * quarter of it up to 5 s, and connects again up to a beat after the server's return),
 * and no more; the attempts of supervisors no longer live are closed at once. */
static void fleet_rescue(struct sup *s)
{
	uint64_t connected = clock_mono_ms() - s->fleet_connected_ms;
	struct fleet_lost *lost;
	struct store_err err;
	size_t n;
	int closed;

	if (s->stopping || s->writes_off || s->conn_gen != s->st->conn_gen)
		return;
	if (store_fleet_rescue(s->sd, (int64_t)connected, &lost, &n, &closed, &err) != 0) {
		log_error("%s", err.text);
		return;
	}
	for (size_t i = 0; i < n; i++)
		log_warn(
		    "[LOST] supervisor %lld (%s pid %lld) sent no heartbeat for %.1f s: declared"
		    " lost; its open attempts are closed as supervisor_lost and their phases"
		    " requeued",
		    (long long)lost[i].id, lost[i].host, (long long)lost[i].pid, lost[i].silent_s);
	if (closed > 0) {
		log_warn("closed %d attempt(s) of lost supervisors; their phases are queued again",
		    closed);
		fleet_refresh(s, true);
	}
	store_fleet_lost_free(lost, n);
}

/* Whether phases are queued here that this supervisor may still start (its --batch-size
 * not reached). */
static bool fleet_work_left(const struct sup *s)
{
	return s->queued > 0 && !(s->cfg.batch_size > 0 && s->started >= s->cfg.batch_size);
}

/* Whether the whole database is drained: nothing eligible here (after a rebuild of the
 * queues when none is left), nothing open anywhere. The attempts open elsewhere are
 * counted before the queues are read again: an attempt counted closed had its commit (the
 * phases it queued, the run it stopped) read by the rebuild, so the drain is never found
 * over on queues read while that attempt was still open, nor this supervisor's end left
 * with drain rules' state older than them. Sets s->fleet_busy. */
static void fleet_check_drained(struct sup *s)
{
	struct store_err err;
	int64_t open, orphaned;

	if (!s->cfg.exit_when_drained || s->stopping || s->in_flight > 0 || s->ops_n > 0 ||
	    s->commit_doubt)
		return;
	if (fleet_work_left(s) || s->fleet_unread) {
		s->fleet_busy = true;
		return;
	}
	if (store_fleet_open_elsewhere(s->sd, &open, &orphaned, &err) != 0) {
		log_error("%s", err.text);
		return;
	}
	if (s->queued == 0)
		fleet_refresh(s, true);
	if (fleet_work_left(s) || s->fleet_unread) {
		s->fleet_busy = true;
		return;
	}
	if (open > 0 && s->fleet_waiting_logged != open) {
		log_info("nothing left here; waiting for %lld attempt(s) open elsewhere%s",
		    (long long)open,
		    orphaned > 0 ? " (some of lost supervisors: rescued after the lease timeout)" :
		                   "");
		s->fleet_waiting_logged = open;
	}
	s->fleet_busy = open > 0;
}

/* Every tick: notifications and, when workers wait with no run ready, the parked runs
 * read again (every other beat, or when asked, the whole queue); every beat: the
 * heartbeat when nothing committed, the rescue and the commands; then whether the drain
 * is over. While the connection is lost, the heartbeat alone (or, while the writer backs
 * off, a reconnection); once connected again, the heartbeat first (fleet_confirm). */
static void fleet_timer_cb(uv_timer_t *t)
{
	struct sup *s = t->data;
	uint64_t now = clock_mono_ms();
	bool beat = now - s->fleet_beat_ms >= fleet_beat_ms(s);

	/* Right after a stall of this supervisor, what its workers sent meanwhile is read
	 * (and queued) before the heartbeat learns whether it was declared lost. */
	lag_note(s);
	if (s->writes_off || s->judge_after_ms > uv_now(s->loop))
		return;
	if (beat) {
		s->fleet_beat_ms = now;
		free(s->fleet_status);
		s->fleet_status = fleet_status_json(s);
		/* While the writer waits out its backoff (up to 2 s, more than a short lease),
		 * the connection is still tried every beat (unless an attempt is under way), and
		 * once made the writer commits at once (fleet_connect_end): the others, back
		 * too, judge this one's heartbeat a lease after they connected again. */
		if (s->commit_retrying && store_connection_lost(s->st)) {
			lifecycle_reconnect(s);
		} else if (now - s->last_commit_ms >= fleet_beat_ms(s)) {
			writer_heartbeat(s);
		}
		if (s->writes_off)
			return;
	}
	/* While the server cannot be reached, only the heartbeat (or the reconnection above)
	 * and the writer's retries try it (each logging its failure): the reads below would
	 * fail alike. Once it can,
	 * nothing is read for the fleet before this supervisor knows it is still live. */
	if (store_connection_lost(s->st) || !fleet_confirm(s)) {
		lifecycle_check_done(s);
		return;
	}
	/* A connection made again since the last tick (in the heartbeat above, too) is
	 * watched, and dated, before the rescue: the rescue waits a whole lease from it. */
	if (s->conn_gen != s->st->conn_gen)
		fleet_listen(s);
	if (beat) {
		fleet_rescue(s);
		fleet_commands(s);
	}
	fleet_notifications(s);
	if (now - s->fleet_refreshed_ms >= 2 * fleet_beat_ms(s))
		fleet_refresh(s, true);
	else if (s->nready == 0 && s->idle != NULL)
		fleet_refresh_parked(s);
	fleet_check_drained(s);
	lifecycle_check_done(s);
}

/* Start the fleet's timer and the watch on the connection. */
void fleet_start(struct sup *s)
{
	s->fleet_status = fleet_status_json(s);
	uv_timer_init(s->loop, &s->fleet_timer);
	s->fleet_timer.data = s;
	uv_timer_start(&s->fleet_timer, fleet_timer_cb, fleet_tick_ms(s), fleet_tick_ms(s));
	fleet_listen(s);
}

/* After the loop, before the last writes (the leave, the session's end): a connection
 * lost as the drain ended (the server restarted, this supervisor's server session ended)
 * is made again, each attempt given up after lifecycle_reconnect_ms and the next made
 * 0.5 s later, for up to half the lease (the others declare this supervisor lost a lease
 * after its last heartbeat); an attempt the loop had begun is given up first. Returns
 * whether the connection is up; each failed attempt is logged. */
static bool fleet_connect_to_end(struct sup *s)
{
	uint64_t until = clock_mono_ms() + (uint64_t)s->cfg.lease_timeout_ms / 2;
	struct store_err err;
	int rc;

	if (!store_connection_lost(s->st))
		return true;
	if (s->reconnecting) {
		store_reconnect_abandon(s->st);
		fleet_connect_unwatch(s);
		uv_timer_stop(&s->reconnect_timer);
		s->reconnecting = false;
	}
	log_info("the connection to the database is lost as the drain ends; connecting again"
	         " to leave the fleet and end the session (for up to %.1f s)",
	    (double)(s->cfg.lease_timeout_ms / 2) / 1000.0);
	for (;;) {
		rc = store_reconnect_wait(s->st, lifecycle_reconnect_ms(s), &err);
		lifecycle_reconnected(s, rc, &err);
		if (rc == 0 || rc == STORE_EMOVED || clock_mono_ms() + 500 >= until)
			break;
		poll(NULL, 0, 500);
	}
	if (rc != 0 && rc != STORE_EMOVED)
		log_error("supervisor %lld does not leave the fleet (its row stays live until the"
		          " others declare it lost, a lease after its last heartbeat), and drain"
		          " session %s stays open: the database could not be reached again",
		    (long long)s->fleet_id, s->session_id != NULL ? s->session_id : "(none)");
	return rc == 0;
}

/* After the loop: leave the fleet, once connected again if the connection was lost
 * (fleet_connect_to_end), before the leave or by it (it is sent again on the new
 * connection: a row found stopped was left by the first). Leaving is the last fence: a
 * supervisor declared lost while it could not reach the server, with nothing to commit
 * once back (no heartbeat due yet), finds its row no longer live here and ends as one
 * whose commit found it so (lifecycle_lost_note: exit 3, nothing more written). Returns
 * whether it left. */
bool fleet_leave(struct sup *s)
{
	struct store_err err;
	bool lost = false;
	int rc;

	if (s->writes_off || !fleet_connect_to_end(s) || s->writes_off)
		return false;
	rc = store_fleet_leave(s->sd, &lost, &err);
	if (rc != 0 && store_connection_lost(s->st)) {
		log_warn("%s", err.text);
		if (!fleet_connect_to_end(s) || s->writes_off)
			return false;
		rc = store_fleet_leave(s->sd, &lost, &err);
	}
	if (rc != 0) {
		log_error("%s", err.text);
		return false;
	}
	if (lost)
		lifecycle_lost_note(s);
	return !lost;
}

/* After fleet_leave: whether no other supervisor still drains in the session (the
 * caller then ends it). */
bool fleet_finish(struct sup *s)
{
	struct store_err err;
	int64_t others = 0;

	if (s->writes_off)
		return false;
	if (store_fleet_session_others(s->sd, s->session_id, &others, &err) != 0) {
		log_error("%s", err.text);
		return false;
	}
	if (others > 0)
		log_info("drain session %s goes on with %lld other supervisor(s)", s->session_id,
		    (long long)others);
	return others == 0;
}

/* Close the fleet's handles and free its state (after the loop): a connection still
 * being made is given up. */
void fleet_close(struct sup *s)
{
	if (s->reconnecting)
		store_reconnect_abandon(s->st);
	s->reconnecting = false;
	fleet_connect_unwatch(s);
	fleet_unlisten(s);
	free(s->fleet_status);
	s->fleet_status = NULL;
}
