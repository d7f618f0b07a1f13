/* The database and the drain session around the loop: opening and locking the database,
 * recovering what an earlier supervisor left open, opening (or resuming) the session with
 * its settings, reading the coefficient set and the queue; and at the end recording how
 * the session ended and releasing it all. */
#include "supervisor/sup.h"
#include "common/calib/calib.h"
#include "common/estimate/estimator.h"
#include "common/log.h"
#include "common/store/dburl.h"
#include "common/store/dburl_pg.h"
#include "common/store/pg/db_pg_wait.h"
#include "common/store/store_checkpoint.h"
#include "common/store/store_failed.h"
#include "common/store/store_fleet.h"
#include "common/store/store_lock.h"
#include "common/store/store_runtime.h"
#include "common/util.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Refuse an empty database unless --allow-empty-db, and a --run-id the database does not
 * hold with --exit-when-drained (without it, warn); exits 1. */
static void session_refuse_empty(struct sup *s)
{
	struct store_identity id;
	struct store_err err;
	int rc;

	if (store_identity_read(s->st, &id, &err) != 0)
		log_fatal(1, "%s", err.text);
	if (id.counts[STORE_COUNT_RUNS] == 0 && id.counts[STORE_COUNT_PHASES] == 0 &&
	    !s->cfg.allow_empty_db)
		log_fatal(1,
		    "database %s is empty (no runs, no phases). Likely causes: a fresh"
		    " database, the wrong --db / AUTOPACK_DB_URL / DATABASE_URL, or deleted data."
		    " Seed it (autopack-ctl seed telemetry-run, autopack-ctl run import PLAN.json)"
		    " or pass --allow-empty-db.",
		    s->st->url);
	if (s->cfg.run_id == NULL)
		return;
	rc = store_run_exists(s->st, s->cfg.run_id, &err);
	if (rc == STORE_EINVAL && s->cfg.exit_when_drained)
		log_fatal(1,
		    "--run-id %s: database %s holds no such run; with --exit-when-drained the"
		    " drain would end at once having run nothing (autopack-ctl db check lists"
		    " the runs)",
		    s->cfg.run_id, s->st->url);
	if (rc == STORE_EINVAL)
		log_warn("--run-id %s: database %s holds no such run yet; nothing is dispatched"
		         " until one is imported",
		    s->cfg.run_id, s->st->url);
	else if (rc != 0)
		log_fatal(1, "%s", err.text);
}

/* A stop signal sent while the supervisor starts (held back until the loop takes it):
 * "received <its name>", or NULL when none is pending. */
static const char *session_start_stop(void)
{
	static const int stops[] = { SIGTERM, SIGINT };
	static char why[64];
	sigset_t set;

	if (sigpending(&set) != 0)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(stops); i++)
		if (sigismember(&set, stops[i])) {
			snprintf(why, sizeof why, "received %s", strsignal(stops[i]));
			return why;
		}
	return NULL;
}

/* Say what the start waits for on the database, and that it goes on waiting. */
static void session_start_waiting(double seconds, const char *what)
{
	log_warn("starting: the database has not answered for %.0f s: %s; still waiting, and "
	         "saying so every %d s (SIGTERM or SIGINT stops the supervisor)",
	    seconds, what, DB_PG_WAIT_EVERY_MS / 1000);
}

/* The supervisor whose start is watched. */
static struct sup *session_starting;

/* The supervisor registered in the fleet whose loop has not started yet (its start may
 * still fail), its process (a child that exits leaves nothing), and the stop reason its
 * session gets if it does. */
static struct sup *session_unstarted;
static pid_t session_unstarted_pid;
static const char *session_unstarted_why = "refused to start";

/* The canonical URL of the database the supervisor starts on. */
static char *session_start_url;

/* The supervisor whose database is open and whose loop has not started yet, and its
 * process (session_start_close). */
static struct sup *session_open_unstarted;
static pid_t session_open_pid;

/* At an exit before the loop started (a refused start): close the drain's statements,
 * the claim, the database and the lock as session_finish does, so that closing the last
 * connection checkpoints what was committed into the file and removes the -wal and -shm
 * files it made. Nothing in another process, or once the loop has started. */
static void session_start_close(void)
{
	struct sup *s = session_open_unstarted;

	session_open_unstarted = NULL;
	if (s == NULL || getpid() != session_open_pid)
		return;
	store_drain_close(s->sd);
	s->sd = NULL;
	store_runtime_release(s->claim_fd, s->st);
	store_close(s->st);
	store_lock_release(s->lock_fd);
}

/* The database was found gone from the server while the supervisor started (dropped, or
 * renamed): exit 3, as for a database lost while it drains, having dispatched nothing.
 * Nothing more is written: a fleet row and a session recorded went with the database. */
static void session_start_gone(const char *what)
{
	db_pg_wait_watch(NULL);
	session_unstarted = NULL;
	log_error("DATABASE LOST: %s: %s while the supervisor started; nothing was dispatched; "
	          "exit status 3",
	    session_start_url != NULL ? session_start_url : "the database", what);
	exit(3);
}

/* How long the leave of a failed start may wait for the database. */
#define SESSION_LEAVE_WAIT_MS 5000
static uint64_t session_leave_deadline;
static bool session_leave_busy;

/* The leave's wait, given up at session_leave_deadline. */
static const char *session_leave_stop(void)
{
	return clock_mono_ms() >= session_leave_deadline ? "the database did not answer" : NULL;
}

/* The leave was given up: a connection left busy with it takes nothing more. */
static void session_leave_stopped(const char *why, double seconds, bool answered)
{
	(void)why;
	(void)seconds;
	session_leave_busy = !answered;
}

/* At exit, when the start of a supervisor registered in the fleet failed (a statement
 * failed, the control socket could not be opened, ...): leave the fleet, its row stopped
 * rather than live for the others to declare lost a lease later, and record the end of
 * the session it began when no other supervisor drains in it (not a resumed one). When
 * the leave fails (the connection lost, or no answer within SESSION_LEAVE_WAIT_MS), the
 * log says that the row stays live until the others declare this supervisor lost. */
static void session_start_abandon(void)
{
	static const struct db_pg_watch watch = {
		.stop = session_leave_stop,
		.stopped = session_leave_stopped,
	};
	struct sup *s = session_unstarted;
	struct store_err err;
	bool lost = false;

	session_unstarted = NULL;
	if (s == NULL || s->sd == NULL || s->fleet_id <= 0 || getpid() != session_unstarted_pid)
		return;
	session_leave_deadline = clock_mono_ms() + SESSION_LEAVE_WAIT_MS;
	db_pg_wait_watch(&watch);
	store_drain_rollback(s->sd);
	if (session_leave_busy || store_fleet_leave(s->sd, &lost, &err) != 0) {
		log_warn("the start failed and supervisor %lld could not leave the fleet (%s): its "
		         "row stays live until the others declare it lost, %.0f s after its last "
		         "heartbeat",
		    (long long)s->fleet_id,
		    session_leave_busy ? "the database did not answer in time" : err.text,
		    (double)s->cfg.lease_timeout_ms / 1000.0);
		return;
	}
	if (lost)
		return; /* declared lost by another, or left already */
	log_info("the start failed: supervisor %lld left the fleet", (long long)s->fleet_id);
	if (!s->cfg.resume && s->session_id != NULL && fleet_finish(s) &&
	    store_drain_session_close(s->sd, s->session_id, session_unstarted_why, &err) != 0)
		log_error("%s", err.text);
}

/* After a cancellation the database did not answer, leave the fleet on a connection of
 * its own, ending with it the drain session this supervisor opened, if recorded, when no
 * other supervisor is live in it (its stop reason `why`), and log what became of this
 * supervisor's row and of that session: stopped, the session ended, going on with the
 * others or not recorded; not live or gone already (nothing changed, the session left
 * open); a leave sent and not answered, which the server may still apply, session end and
 * all; or no leave, the row staying live until the others declare it lost and the session
 * open. */
static void session_start_left_aside(struct sup *s, const char *why)
{
	double lease_s = (double)s->cfg.lease_timeout_ms / 1000.0;
	long long id = (long long)s->fleet_id;
	enum fleet_aside how;
	enum fleet_aside_session session;
	int64_t others;
	struct store_err err;
	char found[16], said[sizeof err.text + 400], ended[600] = "";
	const char *sid = s->session_id;

	store_fleet_leave_aside(
	    s->sd, sid, why, &how, &session, &others, found, sizeof found, &err);
	switch (how) {
	case FLEET_ASIDE_LEFT:
		snprintf(said, sizeof said,
		    "supervisor %lld left the fleet on a connection of its own", id);
		break;
	case FLEET_ASIDE_NOT_LIVE:
		snprintf(said, sizeof said,
		    "supervisor %lld had no live row to leave on a connection of its own (its row "
		    "was %s%s: another supervisor declared it lost, or it had left); nothing was "
		    "changed",
		    id, found[0] != '\0' ? "already " : "",
		    found[0] != '\0' ? found : "changed by another transaction meanwhile");
		break;
	case FLEET_ASIDE_GONE:
		snprintf(said, sizeof said,
		    "supervisor %lld had no row to leave on a connection of its own (no row of "
		    "supervisors has its id any more: removed by another program or by hand); "
		    "nothing was changed",
		    id);
		break;
	case FLEET_ASIDE_UNANSWERED:
		snprintf(said, sizeof said,
		    "this supervisor's leave of the fleet, sent on a connection of its own, was not "
		    "answered (%s): the server may still apply it (its row then stopped), else its "
		    "row stays live until the others declare it lost, %.0f s after its last "
		    "heartbeat",
		    err.text, lease_s);
		break;
	case FLEET_ASIDE_FAILED:
		snprintf(said, sizeof said,
		    "this supervisor does not leave the fleet (its row stays live until the others "
		    "declare it lost, %.0f s after its last heartbeat; %s)",
		    lease_s, err.text);
		break;
	}
	if (sid == NULL)
		ended[0] = '\0';
	else if (session == FLEET_SESSION_ENDED)
		snprintf(ended, sizeof ended, ", and ended drain session %s (%s)", sid, why);
	else if (session == FLEET_SESSION_GOES_ON)
		snprintf(ended, sizeof ended,
		    "; drain session %s goes on with %lld other supervisor(s)", sid,
		    (long long)others);
	else if (session == FLEET_SESSION_UNRECORDED)
		snprintf(ended, sizeof ended, "; drain session %s was not recorded", sid);
	else if (session == FLEET_SESSION_WAS_ENDED)
		snprintf(ended, sizeof ended, "; drain session %s had ended already", sid);
	else if (how == FLEET_ASIDE_UNANSWERED)
		snprintf(ended, sizeof ended,
		    "; drain session %s, if recorded, ends with that leave if the server applies it "
		    "and no other supervisor is live in it, else stays open (interrupted)",
		    sid);
	else
		snprintf(ended, sizeof ended,
		    "%sdrain session %s, if recorded, stays open (interrupted)",
		    how == FLEET_ASIDE_FAILED ? ", and " : "; ", sid);
	log_warn("the database did not answer the cancellation: %s%s", said, ended);
}

/* End a start stopped by a signal while it waited for the database: exit 0, as a stop
 * taken as the drain begins would, having dispatched nothing. A supervisor registered
 * already leaves the fleet (its transaction, the cancelled statement's, rolled back) and
 * records the end of a session it had opened, as that stop would. When the server left
 * the cancellation unanswered, its connection is busy with the statement: nothing more is
 * written on it (a statement would wait for the server without a limit); the fleet is
 * left on a connection of its own (a pooler or proxy that drops cancel requests, the
 * server itself answering), and the log says what stays behind: the row when that leave
 * failed too, the session either way. */
static void session_start_stopped(const char *why, double seconds, bool answered)
{
	struct sup *s = session_starting;
	struct store_err err;
	bool left = false;

	db_pg_wait_watch(NULL);
	session_unstarted = NULL; /* what it leaves is settled here */
	if (s != NULL && s->sd != NULL && s->fleet_id > 0 && !answered)
		session_start_left_aside(s, why);
	else if (s != NULL && s->sd != NULL && s->fleet_id > 0) {
		store_drain_rollback(s->sd);
		if (store_fleet_leave(s->sd, NULL, &err) != 0)
			log_error("%s", err.text);
		else
			left = true;
	}
	if (left && s->session_id != NULL && fleet_finish(s) &&
	    store_drain_session_close(s->sd, s->session_id, why, &err) != 0)
		log_error("%s", err.text);
	log_info("[STOP] %s while starting, after waiting %.1f s for the database (its "
	         "statement's cancellation was sent to the server%s); nothing was dispatched; "
	         "exit status 0",
	    why, seconds, answered ? "" : ", and left unanswered");
	exit(0);
}

void session_start_watch(struct sup *s, bool on)
{
	static const struct db_pg_watch watch = {
		.waiting = session_start_waiting,
		.stop = session_start_stop,
		.stopped = session_start_stopped,
		.gone = session_start_gone,
	};

	session_starting = on ? s : NULL;
	db_pg_wait_watch(on ? &watch : NULL);
}

/* How long a start waits for the database's lock held by a process that is no supervisor
 * (autopack-ctl asking whether one runs, an offline command): such holds last moments. */
#define SESSION_LOCK_WAIT_MS 2000

/* Open, check and lock the database; exits 1 on failure. */
void session_open_store(struct sup *s)
{
	struct store_err err;
	char *path, *url, msg[512];
	pid_t holder = 0;
	struct stat sb;

	if (dburl_resolve(s->cfg.db_flag, &path, &url, NULL, msg, sizeof msg) != 0)
		log_fatal(1, "%s", msg);
	session_start_url = xstrdup(url);
	if (!dburl_is_pg(url) && stat(path, &sb) != 0)
		log_fatal(1,
		    "database %s does not exist (%s); create it with: autopack-ctl"
		    " --db %s db init",
		    url, strerror(errno), url);
	s->lock_fd = store_lock_acquire_wait(path, &holder, SESSION_LOCK_WAIT_MS);
	if (s->lock_fd < 0) {
		char name[32];

		store_lock_holder_name(holder, name, sizeof name, "a process");
		if (strcmp(name, "autopack-supervisor") == 0)
			log_fatal(1,
			    "database %s is held by autopack-supervisor pid %d; refusing to"
			    " start a second writer",
			    url, (int)holder);
		if (holder > 0)
			log_fatal(1,
			    "database %s is held by %s pid %d (waited %.1f s for it); refusing to"
			    " start a second writer",
			    url, name, (int)holder, SESSION_LOCK_WAIT_MS / 1000.0);
		if (s->lock_fd == STORE_EBUSY)
			log_fatal(1,
			    "database %s is held by another process (its pid is not in"
			    " /proc/locks); waited %.1f s for it; refusing to start a second"
			    " writer",
			    url, SESSION_LOCK_WAIT_MS / 1000.0);
		if (s->lock_fd == STORE_ENOTDB)
			log_fatal(1, "database %s: %s is not a regular file", url, path);
		log_fatal(1, "cannot lock the database file %s: %s", path, strerror(errno));
	}
	s->st = xcalloc(1, sizeof *s->st);
	s->claim_fd = -1;
	if (store_open(s->st, path, url, STORE_WRITE, &err) != 0)
		log_fatal(1, "%s", err.text);
	session_open_unstarted = s;
	session_open_pid = getpid();
	atexit(session_start_close);
	if (store_lock_check(s->lock_fd, s->st, &err) != 0)
		log_fatal(1, "%s", err.text);
	/* Checkpoints copy the log into the file and sync it: off the loop. */
	if (s->st->ckpt != NULL && !store_ckpt_background(s->st, msg, sizeof msg))
		log_warn("checkpoints run in the commits: %s", msg);
	/* One live supervisor per uuid: a copy of a database being served is refused. The
	 * claim lasts as long as this process. */
	if ((s->claim_fd = store_runtime_claim(s->st, &err)) < 0)
		log_fatal(1, "%s", err.text);
	free(path);
	free(url);
	/* With --log-format json the log, which a service manager's journal may share with
	 * stdout, holds only JSON objects: the identity is one line of it. */
	if (log_line_format() == LOG_FORMAT_JSON) {
		char *line = store_banner_line(s->st);

		log_info("%s", line);
		free(line);
	} else {
		store_banner(s->st, stdout);
		fflush(stdout);
	}
	session_refuse_empty(s);
}

/* The drain's settings, recorded with its session. */
static char *session_settings_json(const struct sup_config *c)
{
	json_t *skip = json_array();
	json_t *j;
	char *out;
	size_t i;

	for (i = 0; i < c->nskip; i++)
		json_array_append_new(skip, json_string(c->skip_prefixes[i]));
	j = json_pack("{s:i, s:s?, s:I, s:I, s:I, s:s, s:b, s:b, s:s, s:s, s:s, s:b, s:o,"
	              " s:I, s:I, s:I, s:I}",
	    "workers", c->workers, "run_id", c->run_id, "batch_size", (json_int_t)c->batch_size,
	    "phase_timeout_seconds", (json_int_t)c->phase_timeout_s, "max_attempts_per_phase",
	    (json_int_t)c->max_attempts, "synchronous", c->sync_full ? "full" : "normal",
	    "exit_when_drained", c->exit_when_drained, "dry_run", c->dry_run, "llm_provider",
	    c->llm_provider, "llm_base_url", c->llm_base_url, "model", c->llm_model, "retry_failed",
	    c->retry_failed, "skip_run_prefix", skip, "max_total_minutes",
	    (json_int_t)c->max_total_minutes, "max_timeouts_per_run",
	    (json_int_t)c->max_timeouts_per_run, "max_fingerprint_repeats",
	    (json_int_t)c->max_fingerprint_repeats, "max_consecutive_zero_yield",
	    (json_int_t)c->max_consecutive_zero_yield);
	out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	return out;
}

/* Read the active estimator coefficient set, sent with every job; it must be one a worker
 * takes (calib_coefs_from_json: its overhead rows on the defaults, its fitted model), or
 * every phase would fail INVALID_JOB. Exits 1 on failure. */
static void session_load_coefs(struct sup *s)
{
	struct store_coef_set set;
	struct store_err err;
	struct est_coefs *taken;
	bool found;

	if (store_coef_active(s->st, &set, &found, &err) != 0)
		log_fatal(1, "%s", err.text);
	s->coef_version = found ? (uint64_t)set.version : STORE_COEF_BUILTIN;
	if (found &&
	    store_coef_rows(set.overhead_json, set.version, &s->coefs, &s->ncoefs, &err) != 0)
		log_fatal(1, "%s: %s", s->st->url, err.text);
	taken = xmalloc(sizeof *taken);
	if (found &&
	    calib_coefs_from_json(set.overhead_json, set.model_json, (uint64_t)set.version, taken,
	        err.text, sizeof err.text) != 0)
		log_fatal(1,
		    "%s: estimator coefficient set %lld: %s; roll it back with autopack-ctl "
		    "calibrate --rollback",
		    s->st->url, (long long)set.version, err.text);
	free(taken);
	if (found && set.model_json != NULL)
		s->fit_json = xstrdup(set.model_json);
	store_coef_set_free(&set);
}

/* Continue the newest unfinished session (--resume), made with the same --dry-run or
 * none. Exits 1 on failure. */
static void session_resume(struct sup *s)
{
	struct store_err err;
	char *state = NULL;
	int64_t dry;

	if (store_drain_session_find_open(s->sd, &s->session_id, &state, &err) != 0)
		log_fatal(1, "%s", err.text);
	if (s->session_id == NULL)
		log_fatal(1, "--resume: %s has no unfinished drain session", s->st->url);
	if (policy_load(s, state) != 0)
		exit(1);
	free(state);
	if (store_drain_session_attempts(s->sd, s->session_id, &s->started, &dry, &err) != 0)
		log_fatal(1, "%s", err.text);
	/* A dry run's attempts would count as tries of a drain that calls the LLM, and the
	 * other way round. */
	if (dry != (s->cfg.dry_run ? s->started : 0))
		log_fatal(1,
		    "--resume: session %s made %lld %s attempt(s); resume it %s --dry-run, or "
		    "start a new session (without --resume)",
		    s->session_id, (long long)(s->cfg.dry_run ? s->started - dry : dry),
		    s->cfg.dry_run ? "LLM-calling" : "dry-run",
		    s->cfg.dry_run ? "without" : "with");
	log_info("resuming session %s (%lld attempt(s) already made)", s->session_id,
	    (long long)s->started);
}

/* Start a new session named after the time and pid, or, when another session has that
 * name (a supervisor of the same pid on another host started one in the same second by
 * its clock), that name with the first suffix -2, -3, ... none has, which the log
 * gives. Exits 1 on failure. */
static void session_new(struct sup *s)
{
	struct store_err err;
	char stamp[32], *settings, *name;

	time_iso8601(clock_wall_ms(), stamp);
	name = xasprintf("drain-%.4s%.2s%.2s-%.2s%.2s%.2s-%d", stamp, stamp + 5, stamp + 8,
	    stamp + 11, stamp + 14, stamp + 17, (int)getpid());
	settings = session_settings_json(&s->cfg);
	if (store_drain_session_open(s->sd, name, getpid(), settings, &s->session_id, &err) != 0)
		log_fatal(1, "%s", err.text);
	if (strcmp(name, s->session_id) != 0)
		log_info("drain session %s: the name %s is another session's already (a "
		         "supervisor of pid %d on another host, or in another pid namespace, "
		         "started it in the same second by its clock)",
		    s->session_id, name, (int)getpid());
	free(name);
	free(settings);
}

/* Prepare the drain; exits 1 on failure. */
void session_prepare(struct sup *s)
{
	struct store_err err;
	int closed = 0;

	if (store_drain_open(s->st, &s->sd, &err) != 0 ||
	    store_drain_set_synchronous(s->sd, s->cfg.sync_full, &err) != 0 ||
	    store_drain_ids_check(s->sd, &err) != 0)
		log_fatal(1, "%s", err.text);
	/* A dry run leaves the phases QUEUED: those its session visited are not read again
	 * (a --resume, a reload of a run for a retry, a cancel or an import). */
	store_drain_set_dry_run(s->sd, s->cfg.dry_run);
	/* The worker's first LLM call is a builder call (worker/phase.c). */
	if (!s->cfg.dry_run)
		store_drain_reserve_first_try(s->sd, s->cfg.llm_provider, s->cfg.llm_model,
		    LLM_ROLE_BUILDER, s->cfg.max_tokens_cap);
	/* Several supervisors: only the attempts of supervisors no longer live are closed,
	 * once their lease has run out (fleet.c); the others' are theirs. */
	if (store_fleet(s->st)) {
		fleet_register(s);
		session_unstarted = s;
		session_unstarted_pid = getpid();
		atexit(session_start_abandon);
	} else if (store_drain_recover(s->sd, &closed, &err) != 0)
		log_fatal(1, "%s", err.text);
	if (closed > 0)
		log_warn("recovered %d attempt(s) left open by an earlier supervisor"
		         " (closed as supervisor_restart, phases requeued)",
		    closed);
	if (s->cfg.resume)
		session_resume(s);
	else if (s->fleet_id == 0 || !fleet_join_session(s))
		session_new(s);
	if (s->fleet_id > 0)
		fleet_session_set(s);
	session_load_coefs(s);
	if (sched_load(s) != 0)
		exit(1);
	log_about(LOG_INFO, &(struct log_about){ .session = s->session_id },
	    "session %s: %lld phase(s) eligible, %d worker(s), estimator coefficients v%llu%s%s",
	    s->session_id, (long long)s->queued, s->cfg.workers,
	    (unsigned long long)s->coef_version, s->fit_json != NULL ? " (fitted model)" : "",
	    s->cfg.dry_run ? ", dry run" : "");
}

void session_started(struct sup *s)
{
	(void)s;
	session_unstarted = NULL;
	session_open_unstarted = NULL;
}

void session_refused(struct sup *s, const char *why)
{
	struct store_err err;

	session_unstarted_why = why;

	if (!s->cfg.resume && s->fleet_id == 0 &&
	    store_drain_session_close(s->sd, s->session_id, why, &err) != 0)
		log_error("%s", err.text);
	log_about(LOG_INFO, &(struct log_about){ .session = s->session_id },
	    "session %s ended (%s) before any dispatch", s->session_id, why);
	exit(1);
}

/* Commit, record the session's end and release the database. */
void session_finish(struct sup *s)
{
	struct store_err err;
	const char *why;
	char left[600] = "";
	bool left_fleet = true;

	/* The loop is over: what is still committed syncs in the database, and the
	 * checkpoints' thread wakes it no more; none of the last commits waits for it. */
	sync_finish(s);
	store_ckpt_notify(s->st, NULL, NULL);
	store_ckpt_wait(s->st);
	if (!s->writes_off) {
		writer_flush(s);
		/* Several supervisors: leaving is the last fence (one declared lost writes
		 * nothing more, exit 3). */
		if (s->fleet_id > 0)
			left_fleet = fleet_leave(s);
	}
	why = s->store_lost        ? "database lost" :
	    s->fleet_lost          ? "declared lost by another supervisor" :
	    s->stop_reason != NULL ? s->stop_reason :
	                             "stopped";
	if (!s->writes_off) {
		/* The thread copies the log into the file and syncs it while the report reads:
		 * closing the database then copies only the last commits. */
		store_ckpt_ahead(s->st);
		report_drain_end(s, left, sizeof left);
		/* Several supervisors: the last one to leave a shared session ends it. */
		if (left_fleet && (s->fleet_id == 0 || fleet_finish(s)) &&
		    store_drain_session_close(s->sd, s->session_id, why, &err) != 0)
			log_error("%s", err.text);
		if (s->fleet_id == 0 && store_drain_set_supervisor(s->sd, 0, NULL, &err) != 0)
			log_error("%s", err.text);
	} else if (s->fleet_lost &&
	    store_fleet_count_rejected(s->sd, (int64_t)s->n.rejected_lost, &err) != 0) {
		log_error("%s", err.text);
	}
	log_about(LOG_INFO, &(struct log_about){ .session = s->session_id },
	    "session %s ended (%s): %llu attempt(s), %llu event(s) committed, %llu"
	    " rejected%s%s",
	    s->session_id, why, (unsigned long long)s->n.results,
	    (unsigned long long)s->n.events_committed,
	    (unsigned long long)(s->n.rejected_uuid + s->n.rejected_stale + s->n.rejected_lost),
	    left[0] ? "; " : "", left);
	control_close(s);
	writer_free(s);
	sched_free(s);
	policy_free(&s->pol);
	store_drain_close(s->sd);
	store_runtime_release(s->claim_fd, s->st);
	store_close(s->st);
	free(s->st);
	store_lock_release(s->lock_fd);
	store_coef_rows_free(s->coefs, s->ncoefs);
	s->coefs = NULL;
	s->ncoefs = 0;
	free(s->fit_json);
	s->fit_json = NULL;
}
