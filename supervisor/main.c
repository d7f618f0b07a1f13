/* autopack-supervisor: holds one autopack database as its only writer and drains its
 * queued phases with a pool of autopack-worker processes. */
#include "supervisor/sup.h"
#include "common/estimate/estimator.h"
#include "common/store/dburl.h"
#include "common/log.h"
#include "common/store/store_lock.h"
#include "common/store/store_runtime.h"
#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: autopack-supervisor --db URL [options]\n"
    "\n"
    "Drain the queued phases of one autopack database with a pool of workers. The\n"
    "supervisor is the database's only writer; it refuses to start on a database another\n"
    "supervisor holds. The database comes from --db (given once), else AUTOPACK_DB_URL,\n"
    "else DATABASE_URL; the two variables set to different databases are an error. URL\n"
    "forms: sqlite:///relative.db, sqlite:////absolute.db.\n"
    "\n"
    "options:\n"
    "  --db URL                    the database (created beforehand with autopack-ctl db init)\n"
    "  --workers N                 worker processes (default 4)\n"
    "  --run-id ID                 drain only this run\n"
    "  --batch-size N              start at most N attempts (default: no limit)\n"
    "  --phase-timeout-seconds S   wall-clock limit of one attempt (default 900)\n"
    "  --max-attempts-per-phase N  attempts before a phase is FAILED (default 3; a phase's\n"
    "                              own max_builder_attempts lowers it)\n"
    "  --synchronous full|normal   SQLite durability of each commit (default full)\n"
    "  --commit-window-ms MS       group commit window (default 2)\n"
    "  --commit-max N              writes that force a commit (default 256)\n"
    "  --exit-when-drained         exit 0 once nothing is eligible and nothing is in flight\n"
    "  --dry-run                   workers estimate each phase and call no LLM; phase states\n"
    "                              are left unchanged\n"
    "  --allow-empty-db            start even if the database has no runs and no phases\n"
    "\n"
    "drain policies (the batch controller's rules; README \"Drain policies\"):\n"
    "  --retry-failed              FAILED phases are eligible too, not only QUEUED ones\n"
    "  --skip-run-prefix P         leave out runs whose id starts with P (repeatable)\n"
    "  --max-total-minutes M       stop dispatching after M minutes\n"
    "  --max-timeouts-per-run N    stop a run after N timeouts in the session (default 2)\n"
    "  --max-fingerprint-repeats N stop the run that repeats a failure fingerprint for the\n"
    "                              Nth time in the session (default 3)\n"
    "  --max-consecutive-zero-yield N  end the session after N attempts in a row that\n"
    "                              yield no telemetry (default: no limit)\n"
    "  --resume                    continue the newest unfinished drain session with its\n"
    "                              counters, triage and stopped runs\n"
    "  --control PATH              control socket (default /tmp/autopack-UID/UUID.sock)\n"
    "  --log-file PATH             append logs here instead of stderr\n"
    "  --heartbeat-timeout-seconds S  kill a worker silent this long (default 10)\n"
    "  --llm-provider anthropic|openai   (default anthropic)\n"
    "  --llm-base-url URL          provider endpoint (default https://api.anthropic.com, or\n"
    "                              https://api.openai.com/v1 for openai)\n"
    "  --model NAME                model (default claude-sonnet-4-5)\n"
    "  --llm-timeout-seconds S     one HTTP call (default 120)\n"
    "  --llm-retries N             retries on 429/5xx/network errors (default 3)\n"
    "  --max-tokens-cap N          upper bound of any max_tokens (default 64000)\n"
    "  --help                      this text\n"
    "\n"
    "Signals: the first SIGINT/SIGTERM stops dispatching and lets in-flight attempts finish;\n"
    "a second one kills the workers, requeues their phases and exits.\n"
    "Exit status: 0 stopped or drained, 1 refused to start, 2 usage, 3 database lost.\n";

enum {
	OPT_DB = 256,
	OPT_WORKERS,
	OPT_RUN,
	OPT_BATCH,
	OPT_PTIMEOUT,
	OPT_MAXATT,
	OPT_SYNC,
	OPT_WINDOW,
	OPT_CMAX,
	OPT_EXIT,
	OPT_DRY,
	OPT_EMPTY,
	OPT_CONTROL,
	OPT_LOG,
	OPT_HB,
	OPT_PROV,
	OPT_URL,
	OPT_MODEL,
	OPT_LTMO,
	OPT_LRETRY,
	OPT_CAP,
	OPT_WORKER,
	OPT_HELP,
	OPT_RETRYF,
	OPT_SKIPP,
	OPT_MAXMIN,
	OPT_MAXTO,
	OPT_MAXFP,
	OPT_MAXZY,
	OPT_RESUME,
};

static const struct option long_opts[] = {
	{ "db", required_argument, NULL, OPT_DB },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "run-id", required_argument, NULL, OPT_RUN },
	{ "batch-size", required_argument, NULL, OPT_BATCH },
	{ "phase-timeout-seconds", required_argument, NULL, OPT_PTIMEOUT },
	{ "max-attempts-per-phase", required_argument, NULL, OPT_MAXATT },
	{ "synchronous", required_argument, NULL, OPT_SYNC },
	{ "commit-window-ms", required_argument, NULL, OPT_WINDOW },
	{ "commit-max", required_argument, NULL, OPT_CMAX },
	{ "exit-when-drained", no_argument, NULL, OPT_EXIT },
	{ "dry-run", no_argument, NULL, OPT_DRY },
	{ "allow-empty-db", no_argument, NULL, OPT_EMPTY },
	{ "control", required_argument, NULL, OPT_CONTROL },
	{ "log-file", required_argument, NULL, OPT_LOG },
	{ "heartbeat-timeout-seconds", required_argument, NULL, OPT_HB },
	{ "llm-provider", required_argument, NULL, OPT_PROV },
	{ "llm-base-url", required_argument, NULL, OPT_URL },
	{ "model", required_argument, NULL, OPT_MODEL },
	{ "llm-timeout-seconds", required_argument, NULL, OPT_LTMO },
	{ "llm-retries", required_argument, NULL, OPT_LRETRY },
	{ "max-tokens-cap", required_argument, NULL, OPT_CAP },
	{ "worker", required_argument, NULL, OPT_WORKER },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "retry-failed", no_argument, NULL, OPT_RETRYF },
	{ "skip-run-prefix", required_argument, NULL, OPT_SKIPP },
	{ "max-total-minutes", required_argument, NULL, OPT_MAXMIN },
	{ "max-timeouts-per-run", required_argument, NULL, OPT_MAXTO },
	{ "max-fingerprint-repeats", required_argument, NULL, OPT_MAXFP },
	{ "max-consecutive-zero-yield", required_argument, NULL, OPT_MAXZY },
	{ "resume", no_argument, NULL, OPT_RESUME },
	{ NULL, 0, NULL, 0 },
};

/* Parse a whole decimal in [min, max] for flag `name`, or exit 2 naming it. */
static int64_t flag_int(const char *name, const char *v, int64_t min, int64_t max)
{
	char *end;
	long long n;

	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || n < min || n > max) {
		fprintf(stderr,
		    "autopack-supervisor: --%s: \"%s\" is not a whole number from %lld"
		    " to %lld\n",
		    name, v, (long long)min, (long long)max);
		exit(2);
	}
	return n;
}

/* Fill cfg from argv; exits 2 on a bad flag. */
static void parse_flags(struct sup_config *c, int argc, char **argv)
{
	int o;

	*c = (struct sup_config){
		.workers = 4,
		.phase_timeout_s = 900,
		.max_attempts = 3,
		.sync_full = true,
		.heartbeat_timeout_s = 10,
		.kill_grace_ms = 5000,
		.commit_window_ms = 2,
		.commit_max = 256,
		.llm_provider = "anthropic",
		.llm_model = "claude-sonnet-4-5",
		.llm_timeout_s = 120,
		.llm_retries = 3,
		.max_tokens_cap = 64000,
		.max_timeouts_per_run = 2,
		.max_fingerprint_repeats = 3,
	};
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		switch (o) {
		case OPT_DB:
			if (c->db_flag != NULL) {
				fprintf(stderr,
				    "autopack-supervisor: --db given twice (%s and %s); name one"
				    " database\n",
				    c->db_flag, optarg);
				exit(2);
			}
			c->db_flag = optarg;
			break;
		case OPT_WORKERS: c->workers = (int)flag_int("workers", optarg, 0, 1024); break;
		case OPT_RUN: c->run_id = optarg; break;
		case OPT_BATCH: c->batch_size = flag_int("batch-size", optarg, 1, INT64_MAX); break;
		case OPT_PTIMEOUT:
			c->phase_timeout_s = flag_int("phase-timeout-seconds", optarg, 1, 604800);
			break;
		case OPT_MAXATT:
			c->max_attempts = flag_int("max-attempts-per-phase", optarg, 1, 1000);
			break;
		case OPT_SYNC:
			if (strcmp(optarg, "full") != 0 && strcmp(optarg, "normal") != 0) {
				fprintf(stderr,
				    "autopack-supervisor: --synchronous: \"%s\" is not"
				    " full or normal\n",
				    optarg);
				exit(2);
			}
			c->sync_full = strcmp(optarg, "full") == 0;
			break;
		case OPT_WINDOW:
			c->commit_window_ms = flag_int("commit-window-ms", optarg, 0, 10000);
			break;
		case OPT_CMAX: c->commit_max = flag_int("commit-max", optarg, 1, 100000); break;
		case OPT_EXIT: c->exit_when_drained = true; break;
		case OPT_DRY: c->dry_run = true; break;
		case OPT_EMPTY: c->allow_empty_db = true; break;
		case OPT_CONTROL: c->control_path = optarg; break;
		case OPT_LOG: c->log_file = optarg; break;
		case OPT_HB:
			c->heartbeat_timeout_s = flag_int(
			    "heartbeat-timeout-seconds", optarg, 1, 3600);
			break;
		case OPT_PROV:
			if (strcmp(optarg, "anthropic") != 0 && strcmp(optarg, "openai") != 0) {
				fprintf(stderr,
				    "autopack-supervisor: --llm-provider: \"%s\" is not"
				    " anthropic or openai\n",
				    optarg);
				exit(2);
			}
			c->llm_provider = optarg;
			break;
		case OPT_URL: c->llm_base_url = optarg; break;
		case OPT_MODEL: c->llm_model = optarg; break;
		case OPT_LTMO:
			c->llm_timeout_s = flag_int("llm-timeout-seconds", optarg, 1, 3600);
			break;
		case OPT_LRETRY: c->llm_retries = flag_int("llm-retries", optarg, 0, 20); break;
		case OPT_CAP:
			c->max_tokens_cap = flag_int("max-tokens-cap", optarg, 1, 1000000);
			break;
		case OPT_WORKER: c->worker_path = optarg; break;
		case OPT_HELP: fputs(usage_text, stdout); exit(0);
		case OPT_RETRYF: c->retry_failed = true; break;
		case OPT_SKIPP:
			if (*optarg == '\0') {
				fprintf(stderr,
				    "autopack-supervisor: --skip-run-prefix: empty prefix\n");
				exit(2);
			}
			c->skip_prefixes = xrealloc(
			    c->skip_prefixes, (c->nskip + 1) * sizeof *c->skip_prefixes);
			c->skip_prefixes[c->nskip++] = optarg;
			break;
		case OPT_MAXMIN:
			c->max_total_minutes = flag_int("max-total-minutes", optarg, 1, 525600);
			break;
		case OPT_MAXTO:
			c->max_timeouts_per_run = flag_int(
			    "max-timeouts-per-run", optarg, 1, 1000000);
			break;
		case OPT_MAXFP:
			c->max_fingerprint_repeats = flag_int(
			    "max-fingerprint-repeats", optarg, 1, 1000000);
			break;
		case OPT_MAXZY:
			c->max_consecutive_zero_yield = flag_int(
			    "max-consecutive-zero-yield", optarg, 1, 1000000);
			break;
		case OPT_RESUME: c->resume = true; break;
		default:
			if (optopt != 0 && optopt < 256)
				fprintf(
				    stderr, "autopack-supervisor: unknown option -%c\n", optopt);
			else
				fprintf(stderr,
				    "autopack-supervisor: unknown or incomplete option"
				    " \"%s\"\n",
				    argv[optind - 1]);
			fputs("Try 'autopack-supervisor --help'.\n", stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr,
		    "autopack-supervisor: unexpected argument \"%s\"\nTry"
		    " 'autopack-supervisor --help'.\n",
		    argv[optind]);
		exit(2);
	}
	if (c->llm_base_url == NULL)
		c->llm_base_url = strcmp(c->llm_provider, "openai") == 0 ?
		    "https://api.openai.com/v1" :
		    "https://api.anthropic.com";
}

/* The worker binary: --worker, else autopack-worker beside this executable. */
static char *worker_path(const char *flag)
{
	char self[PATH_MAX], *slash;
	ssize_t n;

	if (flag != NULL)
		return xstrdup(flag);
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return xstrdup("autopack-worker");
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	return xasprintf("%s/autopack-worker", self);
}

void sup_identity_check(struct sup *s)
{
	struct store_err err;

	if (s->store_lost || store_identity_changed(s->st, &err) == 0)
		return;
	s->store_lost = true;
	s->exit_code = 3;
	log_error("DATABASE LOST: %s; no further writes or dispatches. Workers are stopped;"
	          " open attempts are recovered by the next supervisor on that database.",
	    err.text);
	sup_stop(s, STOP_NOW);
}

/* The drain's time budget is spent: dispatch nothing more. */
static void deadline_timer_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	sup_stop_because(s, STOP_GRACEFUL, "%lld minutes elapsed (--max-total-minutes)",
	    (long long)s->cfg.max_total_minutes);
}

static void identity_timer_cb(uv_timer_t *t)
{
	sup_identity_check(t->data);
}

/* Escalate a graceful stop that took too long. */
static void stop_timer_cb(uv_timer_t *t)
{
	struct sup *s = t->data;

	log_warn("graceful stop timed out; stopping now");
	sup_stop(s, STOP_NOW);
}

void sup_stop_timeout(struct sup *s, uint64_t ms)
{
	uv_timer_start(&s->stop_timer, stop_timer_cb, ms, 0);
}

void sup_stop_because(struct sup *s, enum stop_level level, const char *fmt, ...)
{
	va_list ap;

	if (s->stop_reason == NULL) {
		va_start(ap, fmt);
		vsnprintf(s->stop_buf, sizeof s->stop_buf, fmt, ap);
		va_end(ap);
		s->stop_reason = s->stop_buf;
		log_info("[STOP] %s", s->stop_buf);
	}
	sup_stop(s, level);
}

void sup_stop(struct sup *s, enum stop_level level)
{
	if (level <= s->stopping)
		return;
	s->stopping = level;
	if (level == STOP_GRACEFUL) {
		log_info("stopping: no new dispatch; %lld attempt(s) in flight finish first",
		    (long long)s->in_flight);
		pool_kill_all(s, 0);
	} else {
		log_info("stopping now: killing workers and requeueing their phases");
		pool_kill_all(s, SIGKILL);
	}
	sup_check_done(s);
}

void sup_check_done(struct sup *s)
{
	if (!s->stopping && s->cfg.exit_when_drained && sched_drained(s)) {
		sup_stop_because(s, STOP_GRACEFUL, "drained");
		return;
	}
	if (s->stopping && s->live == 0 && (s->ops_n == 0 || s->store_lost))
		uv_stop(s->loop);
}

static void signal_cb(uv_signal_t *h, int signum)
{
	struct sup *s = h->data;

	sup_stop_because(
	    s, s->stopping ? STOP_NOW : STOP_GRACEFUL, "received %s", strsignal(signum));
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Open, check and lock the database; on failure print why and exit 1. */
static void sup_open_store(struct sup *s)
{
	struct store_identity id;
	struct store_err err;
	char *path, *url, msg[512];
	pid_t holder = 0;
	struct stat sb;
	int rc;

	if (dburl_resolve(s->cfg.db_flag, &path, &url, NULL, msg, sizeof msg) != 0)
		log_fatal(1, "%s", msg);
	if (stat(path, &sb) != 0)
		log_fatal(1,
		    "database %s does not exist (%s); create it with: autopack-ctl"
		    " --db %s db init",
		    url, strerror(errno), url);
	s->lock_fd = store_lock_acquire(path, &holder);
	if (s->lock_fd < 0) {
		if (holder > 0)
			log_fatal(1,
			    "database %s is held by autopack-supervisor pid %d; refusing to"
			    " start a second writer",
			    url, (int)holder);
		log_fatal(1, "cannot lock the database file %s: %s", path, strerror(errno));
	}
	s->st = xcalloc(1, sizeof *s->st);
	if ((rc = store_open(s->st, path, url, STORE_WRITE, &err)) != 0 ||
	    (rc = store_lock_check(s->lock_fd, s->st, &err)) != 0)
		log_fatal(1, "%s", err.text);
	/* One live supervisor per uuid: a copy of a database being served is refused. The
	 * claim lasts as long as this process. */
	if (store_runtime_claim(s->st, &err) < 0)
		log_fatal(1, "%s", err.text);
	free(path);
	free(url);
	store_banner(s->st, stdout);
	fflush(stdout);
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
}

/* The drain's settings, recorded with its session. */
static char *settings_json(const struct sup_config *c)
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

/* Read the active estimator coefficient set, sent with every job; a fitted model must
 * parse. Exits 1 on failure. */
static void sup_load_coefs(struct sup *s)
{
	struct store_coef_set set;
	struct store_err err;
	struct est_fit fit;
	bool found;

	if (store_coef_active(s->st, &set, &found, &err) != 0)
		log_fatal(1, "%s", err.text);
	s->coef_version = found ? (uint64_t)set.version : STORE_COEF_BUILTIN;
	if (found &&
	    store_coef_rows(set.overhead_json, set.version, &s->coefs, &s->ncoefs, &err) != 0)
		log_fatal(1, "%s: %s", s->st->url, err.text);
	if (found && set.model_json != NULL &&
	    est_fit_from_json(set.model_json, &fit, err.text, sizeof err.text) != 0)
		log_fatal(1,
		    "%s: estimator coefficient set %lld: %s; roll it back with autopack-ctl "
		    "calibrate --rollback",
		    s->st->url, (long long)set.version, err.text);
	if (found && set.model_json != NULL)
		s->fit_json = xstrdup(set.model_json);
	store_coef_set_free(&set);
}

/* Prepare the drain: statements, recovery, session, queue. Exits 1 on failure. */
static void sup_prepare(struct sup *s)
{
	struct store_err err;
	char stamp[32], *settings;
	int closed = 0;

	if (store_drain_open(s->st, &s->sd, &err) != 0 ||
	    store_drain_set_synchronous(s->sd, s->cfg.sync_full, &err) != 0 ||
	    store_drain_recover(s->sd, &closed, &err) != 0)
		log_fatal(1, "%s", err.text);
	if (closed > 0)
		log_warn("recovered %d attempt(s) left open by an earlier supervisor"
		         " (closed as supervisor_restart, phases requeued)",
		    closed);
	if (s->cfg.resume) {
		char *state = NULL;

		if (store_drain_session_find_open(s->sd, &s->session_id, &state, &err) != 0)
			log_fatal(1, "%s", err.text);
		if (s->session_id == NULL)
			log_fatal(1, "--resume: %s has no unfinished drain session", s->st->url);
		if (policy_load(s, state) != 0)
			exit(1);
		free(state);
		if (store_drain_session_attempts(s->sd, s->session_id, &s->started, &err) != 0)
			log_fatal(1, "%s", err.text);
		log_info("resuming session %s (%lld attempt(s) already made)", s->session_id,
		    (long long)s->started);
	} else {
		time_iso8601(clock_wall_ms(), stamp);
		s->session_id = xasprintf("drain-%.4s%.2s%.2s-%.2s%.2s%.2s-%d", stamp, stamp + 5,
		    stamp + 8, stamp + 11, stamp + 14, stamp + 17, (int)getpid());
		settings = settings_json(&s->cfg);
		if (store_drain_session_open(s->sd, s->session_id, getpid(), settings, &err) != 0)
			log_fatal(1, "%s", err.text);
		free(settings);
	}
	sup_load_coefs(s);
	if (sched_load(s) != 0)
		exit(1);
	log_info(
	    "session %s: %lld phase(s) eligible, %d worker(s), estimator coefficients v%llu%s%s",
	    s->session_id, (long long)s->queued, s->cfg.workers,
	    (unsigned long long)s->coef_version, s->fit_json != NULL ? " (fitted model)" : "",
	    s->cfg.dry_run ? ", dry run" : "");
}

/* Record the end of the session and release the database. */
static void sup_finish(struct sup *s)
{
	struct store_err err;
	const char *why = s->store_lost ? "database lost" :
	    s->stop_reason != NULL      ? s->stop_reason :
	                                  "stopped";

	if (!s->store_lost) {
		writer_flush(s);
		if (store_drain_session_close(s->sd, s->session_id, why, &err) != 0 ||
		    store_drain_set_supervisor(s->sd, 0, NULL, &err) != 0)
			log_error("%s", err.text);
	}
	log_info("session %s ended (%s): %llu attempt(s), %llu event(s) committed, %llu"
	         " rejected",
	    s->session_id, why, (unsigned long long)s->n.results,
	    (unsigned long long)s->n.events_committed,
	    (unsigned long long)(s->n.rejected_uuid + s->n.rejected_stale));
	control_close(s);
	sched_free(s);
	policy_free(&s->pol);
	store_drain_close(s->sd);
	store_close(s->st);
	free(s->st);
	store_lock_release(s->lock_fd);
}

int main(int argc, char **argv)
{
	static struct sup sup;
	struct sup *s = &sup;
	struct store_err err;
	uv_loop_t loop;

	signal(SIGPIPE, SIG_IGN);
	log_init("autopack-supervisor", LOG_INFO);
	parse_flags(&s->cfg, argc, argv);
	if (s->cfg.log_file != NULL && log_open(s->cfg.log_file) != 0)
		log_fatal(1, "cannot open log file %s: %s", s->cfg.log_file, strerror(errno));
	sup_open_store(s);
	s->worker_path = worker_path(s->cfg.worker_path);
	if (access(s->worker_path, X_OK) != 0)
		log_fatal(1, "worker binary %s: %s", s->worker_path, strerror(errno));
	sup_prepare(s);

	uv_loop_init(&loop);
	s->loop = &loop;
	s->started_ms = clock_mono_ms();
	writer_init(s);
	if (control_listen(s) != 0)
		exit(1);
	if (store_drain_set_supervisor(s->sd, getpid(), s->control_path, &err) != 0)
		log_fatal(1, "%s", err.text);
	log_info("control socket %s", s->control_path);
	uv_signal_init(&loop, &s->sigint);
	uv_signal_init(&loop, &s->sigterm);
	s->sigint.data = s->sigterm.data = s;
	uv_signal_start(&s->sigint, signal_cb, SIGINT);
	uv_signal_start(&s->sigterm, signal_cb, SIGTERM);
	uv_timer_init(&loop, &s->stop_timer);
	s->stop_timer.data = s;
	uv_timer_init(&loop, &s->identity_timer);
	s->identity_timer.data = s;
	uv_timer_start(&s->identity_timer, identity_timer_cb, 1000, 1000);
	if (s->cfg.max_total_minutes > 0) {
		uv_timer_init(&loop, &s->deadline_timer);
		s->deadline_timer.data = s;
		uv_timer_start(&s->deadline_timer, deadline_timer_cb,
		    (uint64_t)s->cfg.max_total_minutes * 60000, 0);
	}
	pool_init(s);
	sched_kick(s);
	sup_check_done(s);

	uv_run(&loop, UV_RUN_DEFAULT);

	sup_finish(s);
	uv_walk(&loop, close_walk_cb, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	free(s->worker_path);
	free(s->control_path);
	free(s->session_id);
	store_coef_rows_free(s->coefs, s->ncoefs);
	free(s->fit_json);
	return s->exit_code;
}
