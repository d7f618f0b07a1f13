/*
 * The phase's check command: `/bin/sh -c COMMAND` in the workspace, in a process group of
 * its own inside the worker's session (no terminal), killed if the worker dies, with a
 * deadline (SIGTERM to the group, then SIGKILL after a grace period). When it ends, every
 * other process of the worker's session is killed: nothing it started outlives it (and
 * the supervisor kills the session whole when it loses the worker). It gets stdio and no
 * other descriptor. Output goes to
 * <workspace>/.autopack/logs/<run>__<phase>__a<attempt>.{stdout,stderr}.txt. Its
 * environment is minimal: PATH (a default when unset), HOME, USER, LOGNAME, LANG, LC_ALL,
 * LC_CTYPE, LC_MESSAGES, TZ and TMPDIR from the worker's, nothing else. Where the kernel
 * allows it, it runs in a user, a PID, a mount and a network namespace of its own
 * (docs/worker.md, "Keys and phase code").
 */
#ifndef AUTOPACK_CHECK_H
#define AUTOPACK_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHECK_EXCERPT_MAX 512
#define CHECK_STDOUT_END 256
/* How long the processes a check left are waited for once killed, and its pipes drained. */
#define CHECK_GRACE_MS 2000
/* Between the SIGTERM (with a SIGCONT, for a check that stopped itself) sent at the
 * attempt's deadline and the SIGKILL: well within the 4 s the supervisor waits past the
 * deadline before it kills the worker, so that the worker still reports the timeout. */
#define CHECK_DEADLINE_KILL_MS 1000
#define CHECK_STOP_WAIT_MS 1000 /* for the worker's own stop signal after the check's */

struct check_spec {
	const char *command;
	const char *workspace;
	const char *run_id;
	const char *phase_id;
	int64_t attempt;
	uint64_t deadline_mono_ms; /* clock_mono_ms() value by which the command must end */
	void *ctx;
	void (*heartbeat)(void *ctx); /* nullable: called at least every second */
	/* The SQLite database's path, or NULL: in a confined check's mount namespace its files
	 * (and -wal, -shm, -journal) are read-only and they and the directories between them and
	 * the writable mount that holds them cannot be removed or renamed. */
	const char *protect;
	/* The database's URL, or NULL: in a confined check's mount namespace the files libpq
	 * reads a password or a client key from (its ?passfile= and ?sslkey=, PGPASSFILE,
	 * PGSERVICEFILE, PGSSLKEY, their defaults under $HOME) can be neither read nor
	 * written. */
	const char *db_url;
};

struct check_result {
	int exit_code;   /* 0..255, or -1 when killed by a signal */
	int term_signal; /* the signal that ended it, else 0 */
	bool timed_out;
	int64_t duration_ms;
	char *stdout_path; /* heap */
	char *stderr_path; /* heap */
	char
	    excerpt[CHECK_EXCERPT_MAX]; /* tail of stderr, else of stdout, as the command sent it */
	int stderr_log_errno;           /* why the stderr log lost bytes (a full disk), else 0 */
	int stdout_log_errno;           /* why the stdout log lost bytes, else 0 */
	uint64_t sent[2], kept[2]; /* stdout's and stderr's bytes: sent, and taken by the log */
	/* stdout's last bytes as the command sent them when its log lost some, else "" */
	char stdout_end[CHECK_STDOUT_END];
	bool stopped_from_outside; /* ended by SIGTERM, SIGINT or SIGHUP that did not come from
	                              the check itself (check_note_stop_signal) */
	char limit[700]; /* a failed check: the limit it seems to have met (check_limits_hit),
	                    else "" */
	char git[2048];  /* what it made of the workspace's git repository, moved away
	                    (worker/check_git.h), else "" */
};

/* Whether the directory `dir` (a path) is, holds or lies in a runtime directory of the
 * worker's user (/run/user/<uid>, $XDG_RUNTIME_DIR, /run/autopack), where supervisors
 * keep their control sockets and uuid claims, which a check command is kept from (they
 * are empty to it) unless its workspace is there: it could then connect to any of them.
 * Fills `what` with how, and the directory ("is inside /run/autopack"). False for a path
 * that cannot be resolved. */
bool check_dir_at_runtime(const char *dir, char *what, size_t n);

/* Run the check. Returns 0 when the command ran (whatever its status), or -1 with `err`
 * when it could not be started (log files, fork; out->stopped_from_outside when a stop
 * signal from outside ended its wait for its user's namespaces). */
int check_run(const struct check_spec *spec, struct check_result *out, char *err, size_t errlen);
void check_result_free(struct check_result *r);

/* Note that a stop signal from another process than the supervisor reached the worker (a
 * service manager signalling every process, which stops the check too). A check in a PID
 * namespace cannot signal the worker, so a check that ended by a stop signal without one
 * (waited for CHECK_STOP_WAIT_MS) stopped itself. Async-signal-safe. */
void check_note_stop_signal(void);

/* Keep the supervisor's control socket at `path` (relative to the current directory, or
 * absolute) from confined checks: /dev/null is bound over it in their mount namespace, so
 * that a check can neither connect to it nor remove or rename it, nor a directory on its
 * way from a directory the check may write (autopack-supervisor passes --control-socket). */
void check_keep_control_socket(const char *path);

/* Have checks share the machine's network: no network namespace of their own
 * (autopack-supervisor --check-network host). */
void check_share_network(void);

/* Have confined checks see the machine's $HOME, read-only like every mount but the ones
 * they write, instead of an empty one of their own (autopack-supervisor --check-home
 * read-only): the programs installed there, and the sockets other programs keep there. */
void check_show_home(void);

/* Kill the process group of the check running now, if any. Async-signal-safe: the
 * worker calls it from its SIGTERM handler so a stopped attempt leaves nothing behind. */
void check_kill_running(void);

#endif
