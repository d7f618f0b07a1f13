/* autopack-supervisor: holds one autopack database as its only writer and drains its
 * queued phases with a pool of autopack-worker processes. This file parses the flags,
 * then starts the parts (supervisor/README.md) and wires them together. */
#include "supervisor/sup.h"
#include "supervisor/observe.h"
#include "common/stacklimit.h"
#include "common/umaskcheck.h"
#include "common/dbfiles.h"
#include "common/log.h"
#include "common/procs.h"
#include "common/util.h"
#include "common/numarg.h"
#include "common/store/dburl.h"
#include "common/store/dburl_pg.h"
#include "proto/hand.h"
#include "proto/proto.h"
#include "common/helpjson.h"
#include "common/usage.h"
#include "common/utf8.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: autopack-supervisor [--db URL] [options]\n"
    "       autopack-supervisor --version | --help [--json]\n"
    "\n"
    "Drain the queued phases of one autopack database with a pool of workers. The\n"
    "supervisor is the database's only writer; it refuses to start on a database another\n"
    "supervisor holds. The database comes from --db, else AUTOPACK_DB_URL,\n"
    "else DATABASE_URL; the two variables set to different databases are an error. URL\n"
    "forms: sqlite:///relative.db, sqlite:////absolute.db,\n"
    "postgresql://user@host:port/dbname. Several supervisors, on one host or many, may\n"
    "drain one PostgreSQL database together (docs/postgresql.md).\n"
    "\n"
    "options:\n"
    "  --db URL                    the database (created beforehand with autopack-ctl db init)\n"
    "  --workers N                 worker processes (default 4; 0 waits for `scale`)\n"
    "  --run-id ID                 drain only this run (one the database does not hold is\n"
    "                              refused with --exit-when-drained)\n"
    "  --batch-size N              start at most N attempts (default: no limit)\n"
    "  --phase-timeout-seconds S   wall-clock limit of one attempt (default 900)\n"
    "  --max-attempts-per-phase N  attempts before a phase is FAILED (default 3; a phase's\n"
    "                              own max_builder_attempts lowers it)\n"
    "  --synchronous full|normal   SQLite durability of each commit (default full)\n"
    "  --fsync-off-loop            with full on SQLite: every commit's fsync on a thread while\n"
    "                              the loop goes on (default: only while each worker ends a\n"
    "                              phase every 20 ms or sooner)\n"
    "  --fsync-on-loop             with full on SQLite: every commit's fsync in SQLite's\n"
    "                              COMMIT, on the loop\n"
    "  --commit-window-ms MS       group commit window (default 5)\n"
    "  --commit-max N              writes that force a commit (default 256)\n"
    "  --worker-jobs N             jobs a worker holds: 1 (default), or 2: while phases are\n"
    "                              short, each busy worker also holds its next job\n"
    "  --exit-when-drained         exit 0 once nothing is eligible and nothing is in flight\n"
    "  --dry-run                   workers estimate each phase and call no LLM; phase states\n"
    "                              are left unchanged\n"
    "  --allow-empty-db            start even if the database has no runs and no phases\n"
    "\n"
    "drain policies (the batch controller's rules; docs/drain-rules.md):\n"
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
    "  --control PATH              control socket (default\n"
    "                              RUNTIME/UUID-DEVICE-INODE.sock; RUNTIME is /run/autopack,\n"
    "                              $XDG_RUNTIME_DIR/autopack, /run/user/UID/autopack or\n"
    "                              /tmp/autopack-UID)\n"
    "  --log-file PATH             append logs here instead of stderr\n"
    "  --log-level L               error, warn, info (default) or debug\n"
    "  --log-format F              text (default), or json: one object a line with ts,\n"
    "                              level, program, pid, msg, and session, run, phase,\n"
    "                              attempt, worker\n"
    "  --http ADDR:PORT            serve a dashboard (/), health (/healthz), Prometheus\n"
    "                              metrics (/metrics) and the status (/api/status) there,\n"
    "                              read-only; e.g. 127.0.0.1:9464 (default: off)\n"
    "  --check-network isolated|host  isolated (default): each phase's check command gets\n"
    "                              a network of its own with only a loopback interface;\n"
    "                              host: checks share the machine's network and reach its\n"
    "                              ports, --http and the LLM base URL's included\n"
    "  --check-home hidden|read-only  hidden (default): each phase's check command finds\n"
    "                              $HOME empty and read-only; read-only: it sees the\n"
    "                              machine's $HOME read-only, the programs installed\n"
    "                              there and the sockets kept there included\n"
    "  --check-max-processes N     processes and threads a check runs at once (default\n"
    "                              1024; 0: no limit)\n"
    "  --check-max-memory-mib M    memory each process of a check may allocate (default a\n"
    "                              quarter of the machine's; 0: no limit)\n"
    "  --check-tmp-size-mib M      size of a check's private /tmp, /var/tmp and /dev/shm,\n"
    "                              each (default a sixteenth of the machine's memory; 0:\n"
    "                              the kernel's, half of it)\n"
    "  --heartbeat-timeout-seconds S  kill a worker silent this long (default 10)\n"
    "  --worker PATH               the worker program (default autopack-worker beside this\n"
    "                              one); a wrapper that execs it (strace, valgrind) works\n"
    "  --lease-timeout S           PostgreSQL: a supervisor silent this long is declared\n"
    "                              lost and its attempts rescued by another (default 30)\n"
    "  --llm-provider anthropic|openai   (default anthropic)\n"
    "  --llm-base-url URL          provider endpoint (default https://api.anthropic.com, or\n"
    "                              https://api.openai.com/v1 for openai)\n"
    "  --model NAME                model (default claude-sonnet-4-5)\n"
    "  --llm-timeout-seconds S     one HTTP call (default 120)\n"
    "  --llm-retries N             retries on 429/5xx/network errors (default 3)\n"
    "  --max-tokens-cap N          upper bound of any max_tokens (default 64000)\n"
    "  --version                   print the version\n"
    "  -h, --help                  this text\n"
    "  --json                      with --help or --version: print it as one JSON object\n"
    "\n"
    "API keys: ANTHROPIC_API_KEY / OPENAI_API_KEY in the environment; they are taken out\n"
    "of it at start and handed to each worker once it is not dumpable, on a socket it\n"
    "made, so no process that runs a phase's code can read them. Without the provider's\n"
    "key (and without --dry-run) the supervisor refuses to start.\n"
    "\n"
    "Signals (workers run in sessions of their own and take stop signals only from the\n"
    "supervisor): the first SIGINT/SIGTERM stops dispatching and lets in-flight attempts\n"
    "finish; a second one kills the workers, requeues their phases (supervisor_stopped)\n"
    "and exits; SIGHUP reopens --log-file.\n"
    "\n"
    "Exit status: 0 drained, or stopped by the operator; 1 refused to start; 2 usage;\n"
    "3 database lost or unwritable; 4 the breaker tripped (repeated infrastructure\n"
    "failures, with --exit-when-drained); 5 the drain rules left eligible phases (a run\n"
    "stopped or deprioritised, --batch-size, ...), or the CPU time limit was reached.\n"
    "The last log line says what is left.\n";

enum {
	OPT_DB = 256,
	OPT_WORKERS,
	OPT_RUN,
	OPT_BATCH,
	OPT_PTIMEOUT,
	OPT_MAXATT,
	OPT_SYNC,
	OPT_FSYNC_THREAD,
	OPT_FSYNC_ON_LOOP,
	OPT_WINDOW,
	OPT_WJOBS,
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
	OPT_LOGLEVEL,
	OPT_LOGFORMAT,
	OPT_VERSION,
	OPT_HTTP,
	OPT_LEASE,
	OPT_CHECKNET,
	OPT_CHECKHOME,
	OPT_CHECKPROC,
	OPT_CHECKMEM,
	OPT_CHECKTMP,
	OPT_JSON,
	OPT_LAST = OPT_JSON,
};

static const struct option long_opts[] = {
	{ "db", required_argument, NULL, OPT_DB },
	{ "workers", required_argument, NULL, OPT_WORKERS },
	{ "run-id", required_argument, NULL, OPT_RUN },
	{ "batch-size", required_argument, NULL, OPT_BATCH },
	{ "phase-timeout-seconds", required_argument, NULL, OPT_PTIMEOUT },
	{ "max-attempts-per-phase", required_argument, NULL, OPT_MAXATT },
	{ "synchronous", required_argument, NULL, OPT_SYNC },
	{ "fsync-off-loop", no_argument, NULL, OPT_FSYNC_THREAD },
	{ "fsync-on-loop", no_argument, NULL, OPT_FSYNC_ON_LOOP },
	{ "commit-window-ms", required_argument, NULL, OPT_WINDOW },
	{ "worker-jobs", required_argument, NULL, OPT_WJOBS },
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
	{ "log-level", required_argument, NULL, OPT_LOGLEVEL },
	{ "log-format", required_argument, NULL, OPT_LOGFORMAT },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "http", required_argument, NULL, OPT_HTTP },
	{ "lease-timeout", required_argument, NULL, OPT_LEASE },
	{ "check-network", required_argument, NULL, OPT_CHECKNET },
	{ "check-home", required_argument, NULL, OPT_CHECKHOME },
	{ "check-max-processes", required_argument, NULL, OPT_CHECKPROC },
	{ "check-max-memory-mib", required_argument, NULL, OPT_CHECKMEM },
	{ "check-tmp-size-mib", required_argument, NULL, OPT_CHECKTMP },
	{ NULL, 0, NULL, 0 },
};

/* A numeric flag: where it is stored and the range it must lie in. */
struct int_flag {
	int opt;
	const char *name;
	size_t off;  /* in struct sup_config */
	bool is_int; /* an int, else an int64_t */
	int64_t min, max;
};

#define CFG(field) offsetof(struct sup_config, field)

static const struct int_flag int_flags[] = {
	{ OPT_WORKERS, "workers", CFG(workers), true, 0, 1024 },
	{ OPT_BATCH, "batch-size", CFG(batch_size), false, 1, INT64_MAX },
	{ OPT_PTIMEOUT, "phase-timeout-seconds", CFG(phase_timeout_s), false, 1, 604800 },
	{ OPT_MAXATT, "max-attempts-per-phase", CFG(max_attempts), false, 1, 1000 },
	{ OPT_WINDOW, "commit-window-ms", CFG(commit_window_ms), false, 0, 10000 },
	{ OPT_CMAX, "commit-max", CFG(commit_max), false, 1, 100000 },
	{ OPT_WJOBS, "worker-jobs", CFG(worker_jobs), false, 1, 2 },
	{ OPT_HB, "heartbeat-timeout-seconds", CFG(heartbeat_timeout_s), false, 1, 3600 },
	{ OPT_LTMO, "llm-timeout-seconds", CFG(llm_timeout_s), false, 1, 3600 },
	{ OPT_LRETRY, "llm-retries", CFG(llm_retries), false, 0, 20 },
	{ OPT_CAP, "max-tokens-cap", CFG(max_tokens_cap), false, 1, 1000000 },
	{ OPT_MAXMIN, "max-total-minutes", CFG(max_total_minutes), false, 1, 525600 },
	{ OPT_MAXTO, "max-timeouts-per-run", CFG(max_timeouts_per_run), false, 1, 1000000 },
	{ OPT_MAXFP, "max-fingerprint-repeats", CFG(max_fingerprint_repeats), false, 1, 1000000 },
	{ OPT_MAXZY, "max-consecutive-zero-yield", CFG(max_consecutive_zero_yield), false, 1,
	    1000000 },
	/* The ranges the worker takes (worker/check_limits.h). */
	{ OPT_CHECKPROC, "check-max-processes", CFG(check_limits[0]), false, 0, 4000000 },
	{ OPT_CHECKMEM, "check-max-memory-mib", CFG(check_limits[1]), false, 0, 1LL << 30 },
	{ OPT_CHECKTMP, "check-tmp-size-mib", CFG(check_limits[2]), false, 0, 1LL << 30 },
};

/* Store a numeric flag's value, or exit 2 naming the flag and its range. Returns false
 * when `opt` is not a numeric flag. */
static bool flag_int(struct sup_config *c, int opt, const char *v)
{
	long long n;

	for (size_t i = 0; i < ARRAY_SIZE(int_flags); i++) {
		const struct int_flag *f = &int_flags[i];

		if (f->opt != opt)
			continue;
		if (numarg_ll(v, &n) != 0 || n < f->min || n > f->max) {
			usage_say("autopack-supervisor",
			    "--%s: \"%s\" is not a whole number from %lld to %lld", f->name, v,
			    (long long)f->min, (long long)f->max);
			exit(2);
		}
		if (f->is_int)
			*(int *)((char *)c + f->off) = (int)n;
		else
			*(int64_t *)((char *)c + f->off) = n;
		return true;
	}
	return false;
}

/* Report an unknown or incomplete option and exit 2. */
static void flag_unknown(char **argv)
{
	if (optopt != 0 && optopt < 256)
		usage_say("autopack-supervisor", "unknown option -%c", optopt);
	else
		usage_say(
		    "autopack-supervisor", "unknown or incomplete option \"%s\"", argv[optind - 1]);
	fputs("Try 'autopack-supervisor --help'.\n", stderr);
	exit(2);
}

/* Exit 2 with a message about flag `name`. */
__attribute__((noreturn, format(printf, 2, 3))) static void flag_fail(
    const char *name, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	usage_say("autopack-supervisor", "--%s: %s", name,
	    msg != NULL ? msg : "bad value (its message could not be formatted)");
	free(msg);
	exit(2);
}

/* A flag that sets a string or a switch of struct sup_config. */
struct plain_flag {
	int opt;
	size_t off;           /* in struct sup_config */
	bool is_bool;         /* a switch (bool), else a string (const char *) */
	const char *nonempty; /* a string flag's name when an empty value is refused */
};

static const struct plain_flag plain_flags[] = {
	{ OPT_RUN, CFG(run_id), false, "run-id" },
	{ OPT_CONTROL, CFG(control_path), false, "control" },
	{ OPT_LOG, CFG(log_file), false, "log-file" },
	{ OPT_URL, CFG(llm_base_url), false, NULL },
	{ OPT_MODEL, CFG(llm_model), false, NULL },
	{ OPT_WORKER, CFG(worker_path), false, "worker" },
	{ OPT_EXIT, CFG(exit_when_drained), true, NULL },
	{ OPT_DRY, CFG(dry_run), true, NULL },
	{ OPT_EMPTY, CFG(allow_empty_db), true, NULL },
	{ OPT_RETRYF, CFG(retry_failed), true, NULL },
	{ OPT_RESUME, CFG(resume), true, NULL },
};

/* Store a string or switch flag; exits 2 on an empty value a flag refuses. Returns false
 * when `opt` is not one. */
static bool flag_plain(struct sup_config *c, int opt, const char *v)
{
	for (size_t i = 0; i < ARRAY_SIZE(plain_flags); i++) {
		const struct plain_flag *f = &plain_flags[i];

		if (f->opt != opt)
			continue;
		if (f->is_bool)
			*(bool *)((char *)c + f->off) = true;
		else if (f->nonempty != NULL && *v == '\0')
			flag_fail(f->nonempty, "empty value");
		else
			*(const char **)((char *)c + f->off) = v;
		return true;
	}
	return false;
}

/* The long name of flag `opt`, without its dashes. */
static const char *flag_name(int opt)
{
	for (size_t i = 0; long_opts[i].name != NULL; i++)
		if (long_opts[i].val == opt)
			return long_opts[i].name;
	return "?";
}

/* Exit 2 when a flag that takes one value is given again with another (--run-id a
 * --run-id b): one of them would be dropped without a word, and the drain would not be
 * the one asked for. The same value twice is taken; --skip-run-prefix is a list, and
 * --db has a refusal of its own. `given` holds the value each flag took, by its number
 * from OPT_DB. Also exits 2 for --fsync-off-loop with --fsync-on-loop. */
static void flag_once(const char **given, int opt, const char *v)
{
	const char **g = &given[opt - OPT_DB];

	if (opt == OPT_SKIPP || opt == OPT_DB || opt < OPT_DB || opt > OPT_LAST)
		return;
	if (opt == OPT_FSYNC_THREAD || opt == OPT_FSYNC_ON_LOOP) {
		int other = opt == OPT_FSYNC_THREAD ? OPT_FSYNC_ON_LOOP : OPT_FSYNC_THREAD;

		if (given[other - OPT_DB] != NULL)
			flag_fail(flag_name(opt), "--%s and --%s exclude each other: give one",
			    flag_name(other), flag_name(opt));
	}
	if (v == NULL)
		v = "";
	if (*g != NULL && strcmp(*g, v) != 0)
		flag_fail(flag_name(opt),
		    "given twice with different values (\"%s\", \"%s\"); give it once", *g, v);
	*g = v;
}

/* Exit 2 when the value of flag `opt` is not UTF-8, or for --model is empty, holds a
 * control character or is over PROTO_NAME_MAX bytes: values travel in the session's
 * record and in every job, which hold only such text, and a job that cannot be sent
 * fails its phase (INVALID_JOB) without reaching a worker. */
static void flag_check_text(int opt, const char *v)
{
	const char *name = flag_name(opt);
	size_t len = strlen(v), bad = utf8_check(v, len);

	if (bad != len)
		flag_fail(name, "not valid UTF-8 (byte %zu of %zu)", bad + 1, len);
	if (opt != OPT_MODEL)
		return;
	if (len == 0 || len > PROTO_NAME_MAX)
		flag_fail(name, "a model name is 1 to %d bytes, not %zu", PROTO_NAME_MAX, len);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			flag_fail(name, "\"%s\" holds a control character (byte %zu)", v, i + 1);
}

/* Check --llm-base-url: at most PROTO_PATH_MAX bytes (every job carries it: a longer one
 * failed every phase INVALID_JOB), http or https, a host, a port of digits when a ':'
 * follows the host, no control character or space, no user or password (a credential
 * would show in ps and in every call's error), no query or fragment (the provider's path is
 * appended); else exit 2 naming what is wrong, never showing a password or a query. */
static void flag_check_base_url(const char *v)
{
	const char *host, *end, *colon, *at;
	size_t i;

	if (strlen(v) > PROTO_PATH_MAX)
		flag_fail("llm-base-url",
		    "%zu bytes long; a base URL travels in every job, which holds at most %d",
		    strlen(v), PROTO_PATH_MAX);
	for (i = 0; v[i] != '\0'; i++)
		if ((unsigned char)v[i] <= 0x20 || v[i] == 0x7f)
			flag_fail("llm-base-url",
			    "holds a %s (byte 0x%02x at position %zu); remove it",
			    v[i] == ' ' ? "space" : "control character", (unsigned char)v[i],
			    i + 1);
	if (strncmp(v, "http://", 7) == 0)
		host = v + 7;
	else if (strncmp(v, "https://", 8) == 0)
		host = v + 8;
	else
		flag_fail("llm-base-url", "\"%s\" is not an http:// or https:// URL", v);
	end = host + strcspn(host, "/?#");
	at = memchr(host, '@', (size_t)(end - host));
	if (at != NULL)
		flag_fail("llm-base-url",
		    "\"%.*s***%s\" holds a user or password before '@': a URL is shown by ps and "
		    "quoted in every error about a call; give the key in ANTHROPIC_API_KEY or "
		    "OPENAI_API_KEY",
		    (int)(host - v), v, at);
	if (v[strcspn(v, "?#")] != '\0')
		flag_fail("llm-base-url",
		    "\"%.*s...\" holds a %s (byte %zu): the provider's path (/v1/messages, "
		    "/chat/completions) is appended to the base URL and would land inside it; give "
		    "the key in ANTHROPIC_API_KEY or OPENAI_API_KEY",
		    (int)strcspn(v, "?#"), v, v[strcspn(v, "?#")] == '?' ? "query" : "fragment",
		    strcspn(v, "?#") + 1);
	colon = host < end && host[0] == '[' ? memchr(host, ']', (size_t)(end - host)) : host;
	colon = colon != NULL ? memchr(colon, ':', (size_t)(end - colon)) : NULL;
	if (end == host || colon == host)
		flag_fail("llm-base-url", "\"%s\" names no host", v);
	if (colon != NULL) {
		const char *p = colon + 1;
		long port = 0;

		if (p == end)
			flag_fail("llm-base-url", "\"%s\" has an empty port after ':'", v);
		for (; p < end && port <= 65535; p++) {
			if (*p < '0' || *p > '9')
				flag_fail("llm-base-url", "\"%s\": the port is not a number", v);
			port = port * 10 + (*p - '0');
		}
		if (port < 1 || port > 65535)
			flag_fail("llm-base-url", "\"%s\": the port is not from 1 to 65535", v);
	}
}

/* Check a flag's value against its choices, or exit 2 naming them. */
static const char *flag_choice(const char *name, const char *v, const char *a, const char *b)
{
	if (strcmp(v, a) != 0 && strcmp(v, b) != 0)
		flag_fail(name, "\"%s\" is not %s or %s", v, a, b);
	return v;
}

/* A number of seconds (fractions allowed, 0.2 to 3600) in milliseconds, or exit 2 naming
 * the flag. */
static int64_t flag_seconds_ms(const char *name, const char *v)
{
	double d;

	if (numarg_double(v, &d) != 0 || !(d >= 0.2 && d <= 3600))
		flag_fail(name, "\"%s\" is not a number of seconds from 0.2 to 3600", v);
	return (int64_t)(d * 1000.0 + 0.5);
}

/* Handle the flags that check or act on their value; exits 2 on a bad value or an
 * unknown flag. */
static void flag_other(struct sup_config *c, int o, char **argv)
{
	enum log_format format;
	enum log_level level;
	char err[512], *url, *shown;

	switch (o) {
	case OPT_DB:
		/* A copy is used: the command line, which every process reads (a phase's check
		 * command too), keeps the URL without its password. */
		url = xstrdup(optarg);
		dburl_pg_hide_password(optarg);
		if (c->db_flag != NULL && strcmp(c->db_flag, url) != 0) {
			shown = xstrdup(c->db_flag);
			dburl_pg_hide_password(shown);
			usage_say("autopack-supervisor",
			    "--db given twice with different URLs ('%s', '%s'); name one database",
			    shown, optarg);
			free(shown);
			free(url);
			exit(2);
		}
		free((char *)c->db_flag);
		c->db_flag = url;
		break;
	case OPT_SYNC:
		c->sync_full = strcmp(flag_choice("synchronous", optarg, "full", "normal"),
		                   "full") == 0;
		break;
	case OPT_CHECKNET:
		c->check_network_host = strcmp(flag_choice(
		                                   "check-network", optarg, "isolated", "host"),
		                            "host") == 0;
		break;
	case OPT_CHECKHOME:
		c->check_home_shown = strcmp(
		                          flag_choice("check-home", optarg, "hidden", "read-only"),
		                          "read-only") == 0;
		break;
	case OPT_FSYNC_THREAD: c->fsync_where = FSYNC_OFF_LOOP; break;
	case OPT_FSYNC_ON_LOOP: c->fsync_where = FSYNC_ON_LOOP; break;
	case OPT_PROV:
		c->llm_provider = flag_choice("llm-provider", optarg, "anthropic", "openai");
		break;
	case 'h':
	case OPT_HELP:
		if (help_json_asked(argv))
			exit(help_json_print("autopack-supervisor",
			    help_json_text("autopack-supervisor", usage_text)));
		errno = 0; /* the cause of a write that fails in it */
		fputs(usage_text, stdout);
		exit(stdout_finish("autopack-supervisor", errno) == 0 ? 0 : 1);
	case OPT_VERSION:
		if (help_json_asked(argv))
			exit(help_json_print(
			    "autopack-supervisor", help_json_version("autopack-supervisor")));
		printf("autopack-supervisor %s\n", AUTOPACK_VERSION);
		exit(stdout_finish("autopack-supervisor", 0) == 0 ? 0 : 1);
	case OPT_JSON: break; /* taken by --help and --version, wherever it stands */
	case OPT_LOGLEVEL:
		if (log_level_parse(optarg, &level) != 0)
			flag_fail("log-level", "\"%s\" is not error, warn, info or debug", optarg);
		log_configure(level, log_line_format());
		break;
	case OPT_LOGFORMAT:
		if (log_format_parse(optarg, &format) != 0)
			flag_fail("log-format", "\"%s\" is not text or json", optarg);
		log_configure(log_min_level(), format);
		break;
	case OPT_SKIPP:
		if (*optarg == '\0')
			flag_fail("skip-run-prefix", "empty prefix");
		c->skip_prefixes = xrealloc(
		    c->skip_prefixes, (c->nskip + 1) * sizeof *c->skip_prefixes);
		c->skip_prefixes[c->nskip++] = optarg;
		break;
	case OPT_LEASE: c->lease_timeout_ms = flag_seconds_ms("lease-timeout", optarg); break;
	case OPT_HTTP:
		if (http_addr_check(optarg, err, sizeof err) != 0)
			flag_fail("http", "%s", err);
		c->http_addr = optarg;
		break;
	default: flag_unknown(argv);
	}
}

/* Refuse (exit 2) a --log-file that names one of the SQLite database's files: the log
 * would be appended into it, and the file watch would take the supervisor's own lines for
 * another program's writes (DATABASE LOST). A URL that does not resolve is left to
 * session_open_store, which reports it. */
static void log_file_refuse_db(const struct sup_config *c)
{
	char *path = NULL, *url = NULL, msg[512];
	const char *sfx;

	if (dburl_resolve(c->db_flag, &path, &url, NULL, msg, sizeof msg) == 0 &&
	    !dburl_is_pg(url) && (sfx = dbfiles_match(path, c->log_file, -1)) != NULL)
		log_fatal(2,
		    "--log-file %s: that is %s%s, %s; the log would be written into it: name "
		    "another file",
		    c->log_file, path, sfx, dbfiles_what(sfx));
	free(path);
	free(url);
}

/* Fill cfg from argv; exits 2 on a bad flag. */
static void parse_flags(struct sup_config *c, int argc, char **argv)
{
	const char *given[OPT_LAST - OPT_DB + 1] = { NULL };
	int o;

	*c = (struct sup_config){
		.workers = 4,
		.phase_timeout_s = 900,
		.max_attempts = 3,
		.sync_full = true,
		.heartbeat_timeout_s = 10,
		.kill_grace_ms = 5000,
		.commit_window_ms = 5,
		.commit_max = 256,
		.worker_jobs = 1,
		.llm_provider = "anthropic",
		.llm_model = "claude-sonnet-4-5",
		.llm_timeout_s = 120,
		.llm_retries = 3,
		.max_tokens_cap = 64000,
		.max_timeouts_per_run = 2,
		.max_fingerprint_repeats = 3,
		.lease_timeout_ms = 30000,
		.check_limits = { -1, -1, -1 },
	};
	opterr = 0;
	while ((o = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		if (o != '?' && optarg != NULL)
			flag_check_text(o, optarg);
		if (o != '?')
			flag_once(given, o, optarg);
		if (o != '?' && optarg != NULL && flag_int(c, o, optarg))
			continue;
		if (o != '?' && flag_plain(c, o, optarg))
			continue;
		flag_other(c, o, argv);
	}
	if (given[OPT_JSON - OPT_DB] != NULL)
		flag_fail("json",
		    "goes only with --help or --version: the supervisor writes a log, not a "
		    "result (for a log of JSON lines: --log-format json)");
	if (optind < argc) {
		usage_say("autopack-supervisor", "unexpected argument \"%s\"", argv[optind]);
		fputs("Try 'autopack-supervisor --help'.\n", stderr);
		exit(2);
	}
	/* Nothing would ever drain, and so nothing would end the process. */
	if (c->workers == 0 && c->exit_when_drained)
		flag_fail("workers",
		    "0 workers never drain: --exit-when-drained needs at least 1"
		    " (without it, a supervisor of 0 workers waits for"
		    " `autopack-ctl scale N`)");
	if (c->llm_base_url == NULL)
		c->llm_base_url = strcmp(c->llm_provider, "openai") == 0 ?
		    "https://api.openai.com/v1" :
		    "https://api.anthropic.com";
	flag_check_base_url(c->llm_base_url);
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

/* Exit 1 when the provider's key is missing: every attempt would end NO_API_KEY, using
 * up its phase's attempts and stopping its run. A dry run calls no LLM and needs none.
 * Exit 1 too when the keys are longer than a worker takes (HAND_KEYS_MAX), dry run or
 * not: they are written whole into a pipe before the worker reads it, and the loop would
 * wait on that write for ever. */
static void no_key_refuse(const struct sup *s)
{
	const char *var = s->cfg.dry_run ? NULL : secrets_missing(s);
	char why[256];

	if (var != NULL)
		log_fatal(1,
		    "%s is not set (or empty): the %s provider needs it, and workers take keys"
		    " only from the supervisor's environment; set it (under systemd, in the"
		    " service's EnvironmentFile), or use --dry-run, which calls no LLM",
		    var, s->cfg.llm_provider);
	if (!secrets_fit(s, why, sizeof why))
		log_fatal(1,
		    "the provider keys in the environment are too long (%s): workers take at most"
		    " %d bytes of keys with their names, and an API key is a few hundred; check"
		    " what the variable holds",
		    why, HAND_KEYS_MAX);
}

/* Close every handle left open once the loop has ended. */
static void close_walk_cb(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Descriptors the supervisor needs to start its first worker: the database and its side
 * files, lock and claim, the event loop's, the log, the control socket and its clients. */
#define SUP_FILES_MIN 24

/* Parse the flags, open the database and the session, start the parts and run the loop;
 * exits 1 when it cannot start, 2 on a bad flag, 3 when the database was lost. */
int main(int argc, char **argv)
{
	static struct sup sup;
	struct sup *s = &sup;
	struct store_err err;
	sigset_t stop_signals;
	struct rlimit files;
	uv_loop_t loop;
	int rc;

	/* Closed standard descriptors are filled before anything takes their numbers. */
	procs_stdio_open();
	stack_limit_require("autopack-supervisor", 1);
	umask_require("autopack-supervisor", 1);
	/* Descriptors the operator's shell left open reach no worker and no check. */
	procs_cloexec_from(3);
	signal(SIGPIPE, SIG_IGN);
	/* A write past the file size limit (ulimit -f, LimitFSIZE=) fails with EFBIG, named
	 * as the failed commit's or log line's cause, instead of killing the supervisor. */
	signal(SIGXFSZ, SIG_IGN);
	/* A stop or reopen signal that comes while the database is opened and the queue read
	 * waits for the loop, which takes it as always (lifecycle_init); a mask inherited with
	 * these signals blocked is undone there too. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	sigaddset(&stop_signals, SIGHUP);
	sigaddset(&stop_signals, SIGXCPU);
	/* And those it ignores (lifecycle.c), which would otherwise end it without a word. */
	sigaddset(&stop_signals, SIGUSR1);
	sigaddset(&stop_signals, SIGUSR2);
	sigaddset(&stop_signals, SIGALRM);
	sigprocmask(SIG_BLOCK, &stop_signals, NULL);
	secrets_take(s);
	/* The database's password too: the workers, their checks and the code they run get
	 * none (its connections are all made here). */
	dburl_pg_take_env_password();
	log_init("autopack-supervisor", LOG_INFO);
	parse_flags(&s->cfg, argc, argv);
	if (s->cfg.log_file != NULL)
		log_file_refuse_db(&s->cfg);
	if (s->cfg.log_file != NULL && (rc = log_open(s->cfg.log_file)) != 0)
		log_fatal(1, "cannot open log file %s: %s", s->cfg.log_file, log_open_error(rc));
	/* Before the database is touched: without descriptors for it (a low `ulimit -n`)
	 * nothing could run, and libuv aborts when it has none for its own pipes. */
	if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < SUP_FILES_MIN)
		log_fatal(1,
		    "the limit of open files is %llu (ulimit -n); the supervisor needs at least %d to "
		    "start its first worker",
		    (unsigned long long)files.rlim_cur, SUP_FILES_MIN);
	if ((rc = uv_loop_init(&loop)) != 0)
		log_fatal(1, "cannot start the event loop: %s%s", uv_strerror(rc),
		    rc == UV_EMFILE ? " (raise the limit of open files, ulimit -n)" : "");
	service_open(s);
	session_start_watch(s, true);
	session_open_store(s);
	no_key_refuse(s);
	secrets_warn_clear_text(s);
	s->worker_path = worker_path(s->cfg.worker_path);
	if (access(s->worker_path, X_OK) != 0)
		log_fatal(1, "worker binary %s: %s", s->worker_path, strerror(errno));
	session_prepare(s);

	s->loop = &loop;
	s->started_ms = clock_mono_ms();
	writer_init(s);
	service_init(s);
	lease_init(s);
	lifecycle_init(s, pool_stop);
	session_start_watch(s, false);
	sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
	lag_init(s);
	metrics_init(s);
	progress_init(s);
	if (control_listen(s) != 0)
		session_refused(s, "refused to start: the control socket could not be opened");
	if (http_start(s) != 0)
		session_refused(s, "refused to start: --http could not be served");
	if (s->fleet_id > 0)
		fleet_start(s);
	else if (store_drain_set_supervisor(s->sd, getpid(), s->control_path, &err) != 0)
		log_fatal(1, "%s", err.text);
	log_info("control socket %s", s->control_path);
	pool_init(s);
	lease_kick(s);
	lifecycle_check_done(s);
	session_started(s);

	uv_run(&loop, UV_RUN_DEFAULT);

	session_finish(s);
	lease_free(s);
	fleet_close(s);
	service_finish(s);
	http_stop(s);
	/* Closing the signal watchers restores the default actions: a late signal must not
	 * kill a supervisor that has already stopped cleanly, so the signals are blocked
	 * before the watchers close and ignored after (which drops any left pending). */
	sigprocmask(SIG_BLOCK, &stop_signals, NULL);
	uv_walk(&loop, close_walk_cb, NULL);
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	signal(SIGALRM, SIG_IGN);
	signal(SIGXCPU, SIG_IGN);
	/* A stop requested while the session was being finished makes one uv_run return at
	 * once (clearing the request); run until every closed handle is gone. */
	while (uv_run(&loop, UV_RUN_DEFAULT) != 0)
		;
	uv_loop_close(&loop);
	worker_table_free(s);
	http_free(s);
	metrics_free(s);
	progress_free(s);
	free(s->worker_path);
	free(s->control_path);
	free(s->session_id);
	free(s->cfg.skip_prefixes);
	secrets_free(s);
	return s->exit_code;
}
