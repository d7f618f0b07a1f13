/* Running a phase's check command with a deadline, in a process group of its own inside
 * the worker's session, with a minimal environment and a session keyring of its own, in a
 * user, a PID, a mount, an IPC and a network namespace of its own when the kernel allows it. */
#include "worker/check.h"
#include "worker/capture.h"
#include "worker/check_git.h"
#include "worker/check_init.h"
#include "worker/check_limits.h"
#include "worker/check_suid.h"
#include "common/checklog.h"
#include "common/log.h"
#include "common/procs.h"
#include "common/sysdirs.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Open the directory `name` under `dirfd`, creating it (mode 0700) when missing; a
 * symbolic link there is not followed. Returns the descriptor, or -1 with errno. */
static int check_dir_open(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0 && errno == ENOENT && (mkdirat(dirfd, name, 0700) == 0 || errno == EEXIST))
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

/* Open <workspace>/.autopack/logs, creating what is missing, through real directories
 * only: a check may have left a symbolic link there, and the worker's writes must not go
 * where the check itself may not. Returns the descriptor, or -1 with `err`. */
static int check_logs_dir(const char *workspace, char *err, size_t errlen)
{
	int ws = open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC), top = -1, logs = -1, e;
	const char *at = "";

	if (ws >= 0) {
		at = "/.autopack";
		if ((top = check_dir_open(ws, ".autopack")) >= 0) {
			at = "/.autopack/logs";
			logs = check_dir_open(top, "logs");
		}
	}
	if (logs < 0) {
		e = errno;
		snprintf(err, errlen, "cannot open %s%s: %s", workspace, at,
		    e == ELOOP || e == ENOTDIR ? "not a directory (a symbolic link or another file "
		                                 "that a check or another program put there)" :
		                                 strerror(e));
	}
	if (top >= 0)
		close(top);
	if (ws >= 0)
		close(ws);
	return logs;
}

/* Create the log file `path` (its last component) afresh in the logs directory: what
 * stands there is removed first, so that a symbolic link, a FIFO or a hard link a check
 * left under the name is neither followed, waited on, nor written through. Returns the
 * descriptor, or -1 with errno. */
static int check_log_create(int logs, const char *path)
{
	const char *name = strrchr(path, '/') + 1;

	if (unlinkat(logs, name, 0) != 0 && errno != ENOENT)
		return -1;
	return openat(logs, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
}

/* Wait up to `ms` milliseconds for output on the streams still open and capture it. */
static void check_drain(struct capture cap[2], int ms)
{
	struct pollfd pfd[2];
	nfds_t n = 0;
	int i;

	for (i = 0; i < 2; i++)
		if (cap[i].in >= 0)
			pfd[n++] = (struct pollfd){ .fd = cap[i].in, .events = POLLIN };
	if (n == 0) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
		return;
	}
	if (poll(pfd, n, ms) <= 0)
		return;
	for (i = 0; i < 2; i++)
		if (cap[i].in >= 0 && capture_read(&cap[i]) < 0)
			log_warn("reading the check command's output: %s", strerror(errno));
}

/* The process group of the check running now, for check_kill_running. */
static volatile pid_t check_pgid;

/* Whether a stop signal from outside reached the worker since the check started. */
static volatile sig_atomic_t check_stop_seen;

void check_note_stop_signal(void)
{
	check_stop_seen = 1;
}

/* Whether the stop signal that ended a check came from outside it: in a PID namespace
 * (`in_ns`), the check cannot signal the worker, so only when one reached the worker too,
 * waited for CHECK_STOP_WAIT_MS (the processes of a service are signalled one by one);
 * without one the check may have signalled the worker itself, and it is taken as from
 * outside. */
static bool check_stopped_from_outside(bool in_ns)
{
	uint64_t until = clock_mono_ms() + CHECK_STOP_WAIT_MS;

	while (in_ns && !check_stop_seen && clock_mono_ms() < until) {
		struct timespec ts = { 0, 10 * 1000000L };

		nanosleep(&ts, NULL);
	}
	return !in_ns || check_stop_seen;
}

void check_kill_running(void)
{
	pid_t pg = check_pgid;

	if (pg > 0)
		kill(-pg, SIGKILL);
}

/* Whether the check gets no $TMPDIR (check_tmpdir_choose): the worker's holds what a
 * phase's code must not write. */
static bool check_tmpdir_dropped;

/* At this worker's first check: leave the worker's $TMPDIR out of the checks' environment
 * and mounts when it holds the worker's binary or a system directory
 * (sysdirs_held), with one warning; the checks then use /tmp. A $TMPDIR bound
 * writable there would let them replace a program the workers run with the keys. */
static void check_tmpdir_choose(void)
{
	static bool chosen;
	const char *tmpdir = getenv("TMPDIR");
	char what[PATH_MAX];

	if (chosen)
		return;
	chosen = true;
	if (tmpdir == NULL || tmpdir[0] != '/' || !sysdirs_held(tmpdir, true, what, sizeof what))
		return;
	check_tmpdir_dropped = true;
	log_warn("TMPDIR=%s holds %s, which a check command must not write (a program put there "
	         "would run with the API keys): check commands get no TMPDIR, and use /tmp",
	    tmpdir, what);
}

/* The variables a check command gets from the worker's environment; nothing else. */
static const char *const check_env_kept[] = { "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL",
	"LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR", NULL };
#define CHECK_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

extern char **environ;

/* Build the check's minimal environment into env (room for `max` entries). */
static void check_env(char **env, size_t max)
{
	size_t n = 0, i, k;
	char **e;

	for (i = 0; check_env_kept[i] != NULL && n + 2 < max; i++) {
		if (check_tmpdir_dropped && strcmp(check_env_kept[i], "TMPDIR") == 0)
			continue;
		k = strlen(check_env_kept[i]);
		for (e = environ; *e != NULL; e++) {
			/* An empty PATH (`Environment=PATH=`, `env PATH=`) is taken as unset: with
			 * it the shell finds no program by name, and every check that runs one
			 * failed its phase `not found`. */
			if (strncmp(*e, check_env_kept[i], k) == 0 && (*e)[k] == '=' &&
			    (i != 0 || (*e)[k + 1] != '\0')) {
				env[n++] = *e;
				break;
			}
		}
		if (*e == NULL && i == 0)
			env[n++] = (char *)"PATH=" CHECK_DEFAULT_PATH;
	}
	env[n] = NULL;
}

/* Where the check command runs: in a user and a PID namespace of its own (the worker's
 * uid and gid mapped to themselves), in a PID namespace only (root, when user namespaces
 * are refused), or in neither. In a namespace, PID 1 is worker/check_init.c. */
enum check_ns {
	CHECK_NS_USER_PID,
	CHECK_NS_PID,
	CHECK_NS_NONE
};

/* This worker's choice, made at its first check: -1 until then. */
static int check_ns = -1;

/* Whether the worker that started this child is alive: its parent, or, in a PID namespace
 * (where getppid() is 0), the other end of `ns_fd`, which closes with the worker. */
static bool check_worker_alive(pid_t worker, int ns_fd)
{
	struct pollfd p = { .fd = ns_fd, .events = POLLIN };

	if (ns_fd < 0)
		return getppid() == worker;
	return poll(&p, 1, 0) == 0;
}

/* Whether checks in a user namespace also get a mount namespace where only their workspace
 * and the temporary directories can be written (check_confine): 1 until the kernel refuses
 * it, at this worker's first check. */
static int check_confined = 1;

/* A byte that starts what the child reports when the kernel refused to confine it. */
#define CHECK_CONFINE_REFUSED '\001'

/* Whether checks in a namespace also get a network namespace of their own, with only a
 * loopback interface (check_net_isolate): 1 until the kernel refuses it, at this worker's
 * first check, or the supervisor says checks share the machine's network. */
static int check_net = 1;

/* A byte that starts what the child reports when the kernel refused it a network
 * namespace. */
#define CHECK_NET_REFUSED '\002'

/* A byte that starts what the child reports when its user's namespaces of a kind are used
 * up (check_ns_used_up): the check is tried again, after a pause that doubles from
 * CHECK_NS_PAUSE_MS up to CHECK_NS_PAUSE_MAX_MS, CHECK_NS_TRIES times in all, within its
 * deadline, then not run. */
#define CHECK_NS_USED_UP '\003'
#define CHECK_NS_TRIES 8
#define CHECK_NS_PAUSE_MS 50
#define CHECK_NS_PAUSE_MAX_MS 1600

void check_share_network(void)
{
	check_net = 0;
}

/* Whether a confined check sees the machine's $HOME, read-only (check_show_home), instead
 * of an empty one of its own. */
static bool check_home_shown;

void check_show_home(void)
{
	check_home_shown = true;
}

/* What a confined check may write besides its workspace and $TMPDIR. */
static const char *const check_rw_dirs[] = { "/tmp", "/var/tmp", "/dev/shm", NULL };
/* The only devices of the machine a confined check may open (not a disk's, say); its
 * /dev/pts and /dev/ptmx are those of a devpts of its own (check_confine). */
static const char *const check_devices[] = { "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
	"/dev/urandom", "/dev/tty", NULL };

#define CHECK_KEEP_MAX 16

/* Directories a confined check finds empty, each a tmpfs of its own mount namespace that
 * goes with it: those of check_rw_dirs and $TMPDIR (writable; check_rw_add,
 * check_tmpdir_add), $HOME (read-only; check_home_add), and the runtime
 * directories (read-only), where the user's service manager and D-Bus and the
 * supervisor's control socket listen (common/store/store_runtime.c).
 * The sockets other processes keep there (an ssh agent's, a terminal multiplexer's) are
 * out of its reach. With a network of its own, also the system's runtime directories
 * (check_system_run); in the machine's /tmp, when it is the workspace, the directories of
 * the user's sessions (check_sessions_choose). Chosen by the worker before each check (check_empty_choose). */
#define CHECK_EMPTY_MAX 16
static struct {
	char path[PATH_MAX];
	bool writable;
} check_empty[CHECK_EMPTY_MAX];
static size_t check_nempty;
/* Whether check_rw_dirs[i] is one of check_empty, else bound from the machine's. */
static bool check_rw_private[ARRAY_SIZE(check_rw_dirs)];
/* The mount options of the writable ones among check_empty (their size and inodes). */
static const char *check_tmpfs_options = "mode=1777";
/* Whether $TMPDIR is bound from the machine's, not one of check_empty nor in one. */
static bool check_tmpdir_bound = true;
/* The workspace, and $TMPDIR, when they lie in one of check_rw_dirs that is private
 * (real paths; "" otherwise): the check's init makes each there, once its ids are mapped
 * (a file system of a user namespace takes no new file before), and mounts the workspace
 * on its own (worker/check_init.h). */
static char check_ws_inside[PATH_MAX], check_tmpdir_inside[PATH_MAX];
/* $HOME (its real path) when it is one of check_empty, writable until the check's init has
 * made the workspace or $TMPDIR there, and then read-only (check_home_add); "" otherwise. */
static char check_home_sealed[PATH_MAX];
/* $TMPDIR and $HOME (real paths) when each is a writable tmpfs of the check's own, of the
 * size of its private temporary directories: $TMPDIR outside them, $HOME when $TMPDIR is
 * or lies in it; "" otherwise. What check_full_private names, when the init finds one full. */
static char check_tmpdir_own[PATH_MAX], check_home_own[PATH_MAX];
/* Whether check_home_own is $TMPDIR itself. */
static bool check_home_is_tmpdir;

/* Add the real path `real` to check_empty, once. Returns true. */
static bool check_empty_put(const char *real, bool writable)
{
	for (size_t i = 0; i < check_nempty; i++)
		if (strcmp(check_empty[i].path, real) == 0)
			return true;
	snprintf(check_empty[check_nempty].path, PATH_MAX, "%s", real);
	check_empty[check_nempty++].writable = writable;
	return true;
}

/* Add the directory `dir`, by its real path, to check_empty unless it is missing or holds
 * the workspace `ws` or lies above `tmpdir` (real paths; "" for none; a writable one may be
 * $TMPDIR itself). Returns whether it is in check_empty. */
static bool check_empty_add(const char *dir, bool writable, const char *ws, const char *tmpdir)
{
	char real[PATH_MAX];

	if (check_nempty == CHECK_EMPTY_MAX || realpath(dir, real) == NULL ||
	    path_holds(real, ws) ||
	    (tmpdir[0] != '\0' && path_holds(real, tmpdir) &&
	        (!writable || strcmp(real, tmpdir) != 0)))
		return false;
	if (strcmp(real, tmpdir) == 0)
		check_tmpdir_bound = false;
	return check_empty_put(real, writable);
}

/* Add the temporary directory `dir` (one of check_rw_dirs), by its real path, to
 * check_empty, writable, unless it is missing or is the workspace `ws` itself: a check
 * whose workspace or $TMPDIR `tmpdir` (real paths; "" for none) lies in it gets them there
 * (check_ws_inside, check_tmpdir_inside), and nothing else of the machine's: not the
 * sockets other programs listen on in it or below, not another program's files, and
 * what it writes there goes with it. Returns whether it is in check_empty. */
static bool check_rw_add(const char *dir, const char *ws, const char *tmpdir)
{
	char real[PATH_MAX];

	if (check_nempty == CHECK_EMPTY_MAX || realpath(dir, real) == NULL || strcmp(real, ws) == 0)
		return false;
	if (path_holds(real, ws))
		snprintf(check_ws_inside, sizeof check_ws_inside, "%s", ws);
	if (tmpdir[0] != '\0' && path_holds(real, tmpdir)) {
		check_tmpdir_bound = false;
		if (strcmp(real, tmpdir) != 0 && !path_holds(ws, tmpdir))
			snprintf(check_tmpdir_inside, sizeof check_tmpdir_inside, "%s", tmpdir);
	}
	return check_empty_put(real, true);
}

/* What a confined check could move away to put a symbolic link in its place: the
 * directories between its workspace and the writable mount that holds it ($TMPDIR: the
 * next attempt's files and check would then go where the link leads), and the
 * directories between the SQLite database and the writable mount that holds it, when its
 * workspace (or another directory it may write) does (it would take the database from
 * under the supervisor). Each is bound onto itself in the check's mount namespace, so the
 * check can neither remove nor rename any of them (a mount point is neither removed nor
 * renamed). And the workspace's .autopack, and .autopack/logs in it, read-only, where the
 * check logs go (check_logs_dir): a directory the check made at the next attempt's log
 * path failed that attempt CHECK_NOT_RUN. And the database's files, wherever they are: /dev/null is bound over each,
 * read-only and as a device none may open (check_confine), so the check can neither write,
 * truncate, remove nor rename them, nor read them, nor lock them (a shared lock on a byte
 * of the -shm, taken through a descriptor opened read-only, refused the supervisor every
 * commit while it was held: `database is locked`). And the worker's binary, when a
 * writable mount holds it ($TMPDIR, the machine's /tmp given as the workspace): the
 * directory holding it is bound onto itself read-only, and
 * those between it and the mount are pinned, so that the check can put nothing in its
 * place, nor in the supervisor's beside it, for the next worker or supervisor to run with
 * the keys (a binary directly in the mount: the file itself, read-only). And so the log
 * file (--log-file), itself read-only, which the check could write lines into, empty, or
 * move away for one of its own. And, last, the sockets other programs listen on directly
 * in a machine's /tmp, /var/tmp or /dev/shm given to the check as its workspace
 * (check_sockets_choose).
 * Outermost first. Chosen by the worker before each check (check_pin_choose). */
#define CHECK_PIN_MAX 112
static struct {
	char path[PATH_MAX];
	bool file;     /* a file of the database: /dev/null is bound over it */
	bool readonly; /* bound onto itself read-only: the binary's directory, a file */
	bool sock;     /* another program's socket: left as it is if it cannot be pinned */
} check_pin[CHECK_PIN_MAX];
static size_t check_npin;

/* Make `cand` (a real path, or "" for none) the writable mount `root` holds `real` by,
 * when it holds it and lies deeper than the one found so far. */
static void check_pin_root(char *root, const char *cand, const char *real)
{
	if (cand[0] != '\0' && path_holds(cand, real) && strlen(cand) > strlen(root))
		snprintf(root, PATH_MAX, "%s", cand);
}

/* Make `root` the deepest of the writable mounts `ws`, `tmp` ($TMPDIR, when bound) and
 * `dirs` (real paths, "" for none) that holds the real path `real`; "" when none does. */
static void check_pin_writable_root(
    char *root, const char *real, const char *ws, const char *tmp, char dirs[][PATH_MAX])
{
	root[0] = '\0';
	check_pin_root(root, ws, real);
	if (check_tmpdir_bound)
		check_pin_root(root, tmp, real);
	for (size_t i = 0; check_rw_dirs[i] != NULL; i++)
		check_pin_root(root, dirs[i], real);
}

/* Add to check_pin each directory below `root` down to the parent of `real` (real paths;
 * nothing when root is ""), leaving room for `keep` more. */
static void check_pin_below(const char *root, const char *real, size_t keep)
{
	size_t k = strlen(root);
	const char *p;

	if (k == 0 || strcmp(root, real) == 0)
		return;
	for (p = strchr(real + k + (real[k] == '/'), '/');
	     p != NULL && check_npin + keep < CHECK_PIN_MAX; p = strchr(p + 1, '/')) {
		snprintf(check_pin[check_npin].path, PATH_MAX, "%.*s", (int)(p - real), real);
		check_pin[check_npin].file = false;
		check_pin[check_npin].sock = false;
		check_pin[check_npin++].readonly = false;
	}
}

/* Add to check_pin what keeps the file `path` from a check whose writable mounts are `ws`,
 * `tmp` and `dirs` (real paths, "" for none): nothing when none holds it. With `whole_dir`
 * (the worker's binary, and the supervisor's beside it) the directory holding it is
 * read-only, else (the log file) only the file itself; a file directly in the mount is
 * read-only itself. */
static void check_pin_kept(
    const char *path, bool whole_dir, const char *ws, const char *tmp, char dirs[][PATH_MAX])
{
	char real[PATH_MAX], root[PATH_MAX] = "";
	size_t before = check_npin;

	if (path == NULL || realpath(path, real) == NULL)
		return;
	check_pin_writable_root(root, real, ws, tmp, dirs);
	if (root[0] == '\0')
		return;
	check_pin_below(root, real, 1);
	/* The last directory pinned is the file's own; with none, or for the file alone, the
	 * file itself. */
	if (whole_dir && check_npin > before) {
		check_pin[check_npin - 1].readonly = true;
	} else if (check_npin < CHECK_PIN_MAX) {
		snprintf(check_pin[check_npin].path, PATH_MAX, "%s", real);
		check_pin[check_npin].file = false;
		check_pin[check_npin].sock = false;
		check_pin[check_npin++].readonly = true;
	}
}

/* Add to check_pin the files `path` followed by each of the `n` `suffixes`, as files
 * /dev/null is bound over, and the directories between them and the writable mount among
 * `ws`, `tmp` and `dirs` (real paths, "" for none) that holds them: the check can neither
 * read, write, connect to, remove nor rename them, nor move a directory on their way.
 * Nothing when `path` is NULL, cannot be resolved, or lies in one of check_empty outside
 * the workspace (the check does not see it). */
static void check_pin_files(const char *path, const char *const *suffixes, size_t n, const char *ws,
    const char *tmp, char dirs[][PATH_MAX])
{
	char real[PATH_MAX], root[PATH_MAX] = "";
	size_t i;

	if (path == NULL || realpath(path, real) == NULL)
		return;
	for (i = 0; i < check_nempty; i++)
		if (path_holds(check_empty[i].path, real) && !path_holds(ws, real))
			return;
	check_pin_writable_root(root, real, ws, tmp, dirs);
	if (root[0] != '\0' && strcmp(root, real) != 0)
		check_pin_below(root, real, n);
	for (i = 0; i < n && check_npin < CHECK_PIN_MAX; i++) {
		snprintf(check_pin[check_npin].path, PATH_MAX, "%s%s", real, suffixes[i]);
		check_pin[check_npin].readonly = false;
		check_pin[check_npin].sock = false;
		check_pin[check_npin++].file = true;
	}
}

/* Copy into `out` (of `n` bytes) the value, %XX decoded, of the query parameter `key` of
 * the PostgreSQL URL `url` (NULL for none). Returns false when it has none. */
static bool check_url_param(const char *url, const char *key, char *out, size_t n)
{
	const char *p = url != NULL ? strchr(url, '?') : NULL;
	size_t k = strlen(key), o = 0;

	for (; p != NULL; p = strchr(p + 1, '&')) {
		if (strncmp(p + 1, key, k) != 0 || p[k + 1] != '=')
			continue;
		for (p += k + 2; *p != '\0' && *p != '&' && o + 1 < n; p++) {
			unsigned int c;

			if (*p == '%' && sscanf(p + 1, "%2x", &c) == 1) {
				out[o++] = (char)c;
				p += 2;
			} else
				out[o++] = *p;
		}
		out[o] = '\0';
		return o > 0;
	}
	return false;
}

/* Add the file `path` to check_pin as check_pin_files does, when it is a regular file:
 * not a device (PGPASSFILE=/dev/null turns the password file off, and /dev/null bound
 * over itself would open for no check), a directory or what is missing. */
static void check_pin_secret(
    const char *path, const char *ws, const char *tmp, char dirs[][PATH_MAX])
{
	static const char *const one[] = { "" };
	struct stat sb;

	if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
		check_pin_files(path, one, 1, ws, tmp, dirs);
}

/* Add to check_pin, as files /dev/null is bound over (check_pin_files), those libpq reads
 * a password or a client key from, wherever they are: the password file, the service file
 * (which may hold a password) and the client key, each as the environment names it
 * (PGPASSFILE, PGSERVICEFILE, PGSSLKEY), by its default name under $HOME (hidden already
 * unless --check-home read-only) and as the database URL `db_url` names it (?passfile=,
 * ?sslkey=; NULL for none). Without it a check read a PGPASSFILE outside $HOME, and with it
 * the supervisor's password. `ws`, `tmp` and `dirs` as for check_pin_files. */
static void check_pin_secrets(
    const char *db_url, const char *ws, const char *tmp, char dirs[][PATH_MAX])
{
	static const struct {
		const char *env, *home, *param;
	} src[] = { { "PGPASSFILE", ".pgpass", "passfile" },
		{ "PGSERVICEFILE", ".pg_service.conf", NULL },
		{ "PGSSLKEY", ".postgresql/postgresql.key", "sslkey" } };
	const char *home = getenv("HOME"), *v;
	char path[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(src); i++) {
		if ((v = getenv(src[i].env)) != NULL && v[0] != '\0')
			check_pin_secret(v, ws, tmp, dirs);
		if (home != NULL && home[0] == '/' &&
		    snprintf(path, sizeof path, "%s/%s", home, src[i].home) < (int)sizeof path)
			check_pin_secret(path, ws, tmp, dirs);
		if (src[i].param != NULL &&
		    check_url_param(db_url, src[i].param, path, sizeof path))
			check_pin_secret(path, ws, tmp, dirs);
	}
}

/* The supervisor's control socket (check_keep_control_socket), absolute; "" for none. */
static char check_control[PATH_MAX];

void check_keep_control_socket(const char *path)
{
	char cwd[PATH_MAX];
	int n;

	if (path[0] == '/' || getcwd(cwd, sizeof cwd) == NULL)
		n = snprintf(check_control, sizeof check_control, "%s", path);
	else
		n = snprintf(check_control, sizeof check_control, "%s/%s", cwd, path);
	/* A path too long to resolve names nothing a check could reach. */
	if (n < 0 || (size_t)n >= sizeof check_control)
		check_control[0] = '\0';
}

/* The workspace's git repository as the check found it (check_git_before), chosen by the
 * worker before each check: what its mount namespace pins of it, and what check_git_after
 * compares with once it is gone. */
static struct check_git check_git_state;

/* Choose check_pin for a check whose workspace is `ws`, whose writable mounts besides it
 * are `tmp` ($TMPDIR, "" for none) and the check_rw_dirs it binds (real paths; after
 * check_empty_choose), the workspace's check logs directory, its git repository
 * (check_git_state), the worker's binary, the database `db` (NULL for none), the files
 * libpq reads secrets from (check_pin_secrets, for the database URL `db_url`) and the
 * supervisor's control socket. */
static void check_pin_choose(const char *db, const char *db_url, const char *ws, const char *tmp)
{
	static const char *const files[] = { "", "-wal", "-shm", "-journal" };
	static const char *const logs[] = { "/.autopack", "/.autopack/logs" };
	static const char *const control[] = { "" };
	/* Static, off the stack: the worker chooses a check's paths on its one thread. */
	static char dirs[ARRAY_SIZE(check_rw_dirs)][PATH_MAX];
	char root[PATH_MAX] = "";
	size_t i;

	check_npin = 0;
	for (i = 0; check_rw_dirs[i] != NULL; i++)
		if (check_rw_private[i] || realpath(check_rw_dirs[i], dirs[i]) == NULL)
			dirs[i][0] = '\0';
	if (check_tmpdir_bound)
		check_pin_root(root, tmp, ws);
	for (i = 0; check_rw_dirs[i] != NULL; i++)
		check_pin_root(root, dirs[i], ws);
	check_pin_below(root, ws, ARRAY_SIZE(files) + ARRAY_SIZE(logs));
	for (i = 0; i < ARRAY_SIZE(logs); i++) {
		snprintf(check_pin[check_npin].path, PATH_MAX, "%s%s", ws, logs[i]);
		check_pin[check_npin].file = false;
		check_pin[check_npin].sock = false;
		check_pin[check_npin++].readonly = i == ARRAY_SIZE(logs) - 1;
	}
	for (i = 0; i < check_git_state.ntop && check_npin < CHECK_PIN_MAX; i++) {
		snprintf(check_pin[check_npin].path, PATH_MAX, "%s", check_git_state.pin[i]);
		check_pin[check_npin].file = false;
		check_pin[check_npin].sock = false;
		check_pin[check_npin++].readonly = check_git_state.pin_readonly[i];
	}
	check_pin_kept("/proc/self/exe", true, ws, tmp, dirs);
	check_pin_kept(log_file_path(), false, ws, tmp, dirs);
	check_pin_files(db, files, ARRAY_SIZE(files), ws, tmp, dirs);
	check_pin_secrets(db_url, ws, tmp, dirs);
	check_pin_files(check_control[0] != '\0' ? check_control : NULL, control,
	    ARRAY_SIZE(control), ws, tmp, dirs);
}

/* The runtime directories of the worker's user, where supervisors keep their control
 * sockets and uuid claims (README, "Environment and files"), as named (not resolved), in
 * `dirs`; returns how many. The names stay valid until the next call. The last is the
 * one a user with none of the others gets in /tmp, which a check whose workspace lies in
 * /tmp is given: there it removed the control socket and the uuid claims of the running
 * supervisor, and could have put a socket of its own in their place. */
#define CHECK_RUNTIME_MAX 4
static size_t check_runtime_dirs(const char *dirs[CHECK_RUNTIME_MAX])
{
	static char user[32], tmp[32];
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	size_t n = 0;

	snprintf(user, sizeof user, "/run/user/%u", (unsigned)getuid());
	dirs[n++] = user;
	if (xdg != NULL && xdg[0] == '/')
		dirs[n++] = xdg;
	dirs[n++] = "/run/autopack";
	snprintf(tmp, sizeof tmp, "/tmp/autopack-%u", (unsigned)getuid());
	dirs[n++] = tmp;
	return n;
}

bool check_dir_at_runtime(const char *dir, char *what, size_t n)
{
	const char *dirs[CHECK_RUNTIME_MAX];
	char real[PATH_MAX], run[PATH_MAX];
	size_t k = check_runtime_dirs(dirs);

	if (realpath(dir, real) == NULL)
		return false;
	for (size_t i = 0; i < k; i++) {
		if (realpath(dirs[i], run) == NULL)
			continue;
		if (path_holds(real, run) || path_holds(run, real)) {
			snprintf(what, n, "%s %s",
			    strcmp(real, run) == 0    ? "is" :
			        path_holds(real, run) ? "holds" :
			                                "is inside",
			    run);
			return true;
		}
	}
	return false;
}

/* The system's runtime directories, where its services listen: the service manager
 * (/run/systemd/private), D-Bus, Docker, a PostgreSQL server's socket. A read-only mount
 * does not keep a process from connecting to a socket on it: a check, root in its
 * namespace or of the user a server lets in by its uid (peer authentication), had them
 * start a program outside every confinement, or change the database. A check with a
 * network of its own reaches no service, and finds these empty; one that shares the
 * machine's (--check-network host) keeps them, with the resolver's files some hosts keep
 * there. */
static const char *const check_system_run[] = { "/run", "/var/run", NULL };

/* When the check gets the machine's /tmp (as its workspace), add to check_empty,
 * writable, the directories where the user's sessions listen there: tmux's
 * (tmux-<uid>), the X server's and the session manager's (.X11-unix, .ICE-unix), an ssh
 * agent's (ssh-*). Through tmux's socket a check typed commands into the operator's
 * shell, run there outside every confinement; through an agent's it signs in as the
 * operator; through the X server it reads and types keys. Other sockets a program keeps
 * in /tmp stay within reach of a check whose workspace it is. `ws` and `tmp` are real
 * paths. */
static void check_sessions_choose(const char *ws, const char *tmp)
{
	char tmux[32], path[PATH_MAX];
	struct dirent *e;
	struct stat sb;
	DIR *d;

	if (check_rw_private[0] || (d = opendir(check_rw_dirs[0])) == NULL)
		return;
	snprintf(tmux, sizeof tmux, "tmux-%u", (unsigned)getuid());
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, tmux) != 0 && strcmp(e->d_name, ".X11-unix") != 0 &&
		    strcmp(e->d_name, ".ICE-unix") != 0 && strncmp(e->d_name, "ssh-", 4) != 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", check_rw_dirs[0], e->d_name);
		if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
			check_empty_add(path, true, ws, tmp);
	}
	closedir(d);
}

/* When the check gets the machine's /tmp, /var/tmp or /dev/shm (as its workspace), add to
 * check_pin, as files /dev/null is bound over, the sockets listening
 * directly in it: a PostgreSQL server's (/tmp/.s.PGSQL.5432 by upstream's default, where
 * its user may be let in by uid, and the check then writes the database), a MySQL
 * server's, an editor's or a build daemon's. A connect to one is refused, and the check can
 * neither remove nor replace it. Sockets made after the check starts, those in the
 * directories below, and those past the room check_pin has left stay within its reach. */
static void check_sockets_choose(void)
{
	char path[PATH_MAX];
	struct dirent *e;
	struct stat sb;
	DIR *d;

	for (size_t i = 0; check_rw_dirs[i] != NULL; i++) {
		if (check_rw_private[i] || (d = opendir(check_rw_dirs[i])) == NULL)
			continue;
		while ((e = readdir(d)) != NULL && check_npin < CHECK_PIN_MAX) {
			if (e->d_type != DT_SOCK && e->d_type != DT_UNKNOWN)
				continue;
			snprintf(path, sizeof path, "%s/%s", check_rw_dirs[i], e->d_name);
			if (lstat(path, &sb) != 0 || !S_ISSOCK(sb.st_mode))
				continue;
			snprintf(check_pin[check_npin].path, PATH_MAX, "%s", path);
			check_pin[check_npin].readonly = false;
			check_pin[check_npin].sock = true;
			check_pin[check_npin++].file = true;
		}
		closedir(d);
	}
}

/* Add to check_pin, last and while there is room, what check_git_state pins of the
 * repositories nested in the workspace (after its own repository's, check_pin_choose). */
static void check_pin_git_nested(void)
{
	for (size_t i = check_git_state.ntop;
	     i < check_git_state.npin && check_npin < CHECK_PIN_MAX; i++) {
		snprintf(check_pin[check_npin].path, PATH_MAX, "%s", check_git_state.pin[i]);
		check_pin[check_npin].file = false;
		check_pin[check_npin].sock = false;
		check_pin[check_npin++].readonly = check_git_state.pin_readonly[i];
	}
}

/* Whether the real path `dir` is, holds or lies in one of check_rw_dirs. */
static bool check_near_rw_dirs(const char *dir)
{
	char real[PATH_MAX];

	for (size_t i = 0; check_rw_dirs[i] != NULL; i++)
		if (realpath(check_rw_dirs[i], real) != NULL &&
		    (path_holds(dir, real) || path_holds(real, dir)))
			return true;
	return false;
}

/* Add $HOME, by its real path, to check_empty: the check finds it empty and read-only, and
 * the sockets other programs of its user listen on there (gpg-agent's
 * ~/.gnupg/S.gpg-agent, Docker's ~/.docker/run/docker.sock) are out of its reach. When
 * the workspace `ws` or $TMPDIR `tmpdir` (real paths; "" for none) lies in it, the check's
 * init makes them there (check_rw_add) and then makes the rest read-only
 * (check_home_sealed); a $HOME that is $TMPDIR stays writable, the check's own. Not when
 * $HOME is missing, lies in the workspace, or is, holds or lies in a temporary directory
 * or holds a system directory. */
static void check_home_add(const char *ws, const char *tmpdir)
{
	const char *home = getenv("HOME");
	char real[PATH_MAX], what[PATH_MAX];

	check_home_sealed[0] = '\0';
	if (check_home_shown || home == NULL || home[0] != '/' || realpath(home, real) == NULL ||
	    path_holds(ws, real) || check_near_rw_dirs(real) ||
	    sysdirs_held(real, false, what, sizeof what))
		return;
	if (!path_holds(real, ws) &&
	    (tmpdir[0] == '\0' || !check_tmpdir_bound || !path_holds(real, tmpdir))) {
		check_empty_put(real, false);
		return;
	}
	if (!check_rw_add(real, ws, tmpdir))
		return;
	if (strcmp(real, tmpdir) != 0)
		snprintf(check_home_sealed, sizeof check_home_sealed, "%s", real);
	if (tmpdir[0] != '\0' && path_holds(real, tmpdir)) {
		snprintf(check_home_own, sizeof check_home_own, "%s", real);
		check_home_is_tmpdir = strcmp(real, tmpdir) == 0;
	}
}

/* Add $TMPDIR `tmpdir` (a real path; "" for none), when it is still bound from the
 * machine's, to check_empty, writable (check_rw_add): the check gets an empty one of its
 * own at the same path, with its workspace `ws` there when it lies in it, and the sockets
 * other programs keep in the machine's are out of its reach. Not when it is or lies in the
 * workspace, or is, holds or lies in a temporary directory, or holds $HOME. */
static void check_tmpdir_add(const char *ws, const char *tmpdir)
{
	if (tmpdir[0] == '\0' || !check_tmpdir_bound || path_holds(ws, tmpdir) ||
	    check_near_rw_dirs(tmpdir))
		return;
	/* Nor when it holds $HOME, emptied already: its tmpfs would hide that one's. */
	for (size_t i = 0; i < check_nempty; i++)
		if (path_holds(tmpdir, check_empty[i].path))
			return;
	if (check_rw_add(tmpdir, ws, tmpdir))
		snprintf(check_tmpdir_own, sizeof check_tmpdir_own, "%s", tmpdir);
}

/* Choose check_empty, check_rw_private and check_pin for a check of `workspace`, the
 * database `protect` (NULL for none) and the database URL `db_url` (NULL for none). */
static void check_empty_choose(const char *workspace, const char *protect, const char *db_url)
{
	const char *tmpdir = getenv("TMPDIR");
	const char *run[CHECK_RUNTIME_MAX];
	char ws[PATH_MAX], tmp[PATH_MAX] = "";
	size_t i, nrun;

	if (realpath(workspace, ws) == NULL)
		snprintf(ws, sizeof ws, "%s", workspace);
	if (tmpdir != NULL && tmpdir[0] == '/' && realpath(tmpdir, tmp) == NULL)
		snprintf(tmp, sizeof tmp, "%s", tmpdir);
	check_nempty = 0;
	check_tmpdir_bound = !check_tmpdir_dropped;
	check_ws_inside[0] = check_tmpdir_inside[0] = '\0';
	if (check_tmpdir_dropped)
		tmp[0] = '\0';
	for (i = 0; check_rw_dirs[i] != NULL; i++)
		check_rw_private[i] = check_rw_add(check_rw_dirs[i], ws, tmp);
	/* $HOME before $TMPDIR: a $TMPDIR in it is made there by the init. */
	check_home_add(ws, tmp);
	check_tmpdir_add(ws, tmp);
	nrun = check_runtime_dirs(run);
	for (i = 0; i < nrun; i++)
		check_empty_add(run[i], false, ws, tmp);
	for (i = 0; check_net && check_system_run[i] != NULL; i++)
		check_empty_add(check_system_run[i], false, ws, tmp);
	check_sessions_choose(ws, tmp);
	check_pin_choose(protect, db_url, ws, tmp);
	check_sockets_choose();
	check_pin_git_nested();
}

/* The kinds of namespace a check gets, and how many of each the worker's user may have
 * (/proc/sys/user/max_<kind>_namespaces), read at its first check; -1 when unknown. */
enum check_ns_kind {
	CHECK_KIND_USER,
	CHECK_KIND_PID,
	CHECK_KIND_MNT,
	CHECK_KIND_NET,
	CHECK_KIND_IPC
};
static struct {
	const char *name;
	long max;
} check_ns_max[] = { { "user", -1 }, { "pid", -1 }, { "mnt", -1 }, { "net", -1 }, { "ipc", -1 } };

/* Read check_ns_max from /proc/sys/user. */
static void check_ns_max_read(void)
{
	char path[64], text[32];

	for (size_t i = 0; i < ARRAY_SIZE(check_ns_max); i++) {
		FILE *f;

		snprintf(
		    path, sizeof path, "/proc/sys/user/max_%s_namespaces", check_ns_max[i].name);
		if ((f = fopen(path, "re")) != NULL && fgets(text, sizeof text, f) != NULL)
			check_ns_max[i].max = strtol(text, NULL, 10);
		if (f != NULL)
			fclose(f);
	}
}

/* Whether the error `e` of making namespaces of the kinds `a` and `b` (the same kind twice
 * for one) says its user's are used up for now, by another check or another program of
 * its user, rather than that the kernel refuses them: ENOSPC or EUSERS where the user may
 * have some. Such a check is not run, never run outside them. Fills `why` with the
 * limit. Runs between clone and exec too: no allocation. */
static bool check_ns_used_up(int e, enum check_ns_kind a, enum check_ns_kind b, char *why, size_t n)
{
	enum check_ns_kind k = check_ns_max[b].max < check_ns_max[a].max ? b : a;

	if ((e != ENOSPC && e != EUSERS) || check_ns_max[a].max <= 0 || check_ns_max[b].max <= 0)
		return false;
	snprintf(why, n,
	    "its user's namespaces are used up (user.max_%s_namespaces is %ld), by another "
	    "check or another program of its user; it is not run outside them",
	    check_ns_max[k].name, check_ns_max[k].max);
	return true;
}

/* Report a step of check_confine that failed on `status_fd`: as the kernel's refusal
 * (CHECK_CONFINE_REFUSED first) when errno says so, not when the step is unshare and its
 * user's mount namespaces are used up (check_ns_used_up). Returns -1. */
static int check_confine_fail(int status_fd, const char *step, const char *path)
{
	int e = errno;
	char why[200];
	bool used_up = strcmp(step, "unshare") == 0 &&
	    check_ns_used_up(e, CHECK_KIND_MNT, CHECK_KIND_IPC, why, sizeof why);
	bool refused = !used_up &&
	    (e == EPERM || e == EACCES || e == EINVAL || e == ENOSYS || e == ENOSPC ||
	        e == EOPNOTSUPP || e == EUSERS);

	dprintf(status_fd, "%s%s(%s): %s%s%s",
	    refused     ? "\001" :
	        used_up ? "\003" :
	                  "",
	    step, path, strerror(e), used_up ? ": " : "", used_up ? why : "");
	return -1;
}

/* In the child: a network namespace of its own, whose loopback interface is brought up
 * (SIOCSIFFLAGS), so a check reaches no port and no abstract socket of the machine, listens
 * on none, and still runs servers on 127.0.0.1 for itself. Returns 0, or -1 having reported
 * the step that failed on `status_fd` (CHECK_NET_REFUSED first when the kernel refused it,
 * not when its user's network namespaces are used up: check_ns_used_up). Runs between
 * clone and exec: no allocation. */
static int check_net_isolate(int status_fd)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	const char *step = "unshare(CLONE_NEWNET)";
	char why[200];
	int fd = -1, e;
	bool refused, used_up;

	if (unshare(CLONE_NEWNET) == 0) {
		step = "socket(AF_INET)";
		if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) >= 0) {
			step = "ioctl(lo, SIOCSIFFLAGS)";
			if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
				ifr.ifr_flags |= IFF_UP;
				if (ioctl(fd, SIOCSIFFLAGS, &ifr) == 0) {
					close(fd);
					return 0;
				}
			}
		}
	}
	e = errno;
	used_up = strcmp(step, "unshare(CLONE_NEWNET)") == 0 &&
	    check_ns_used_up(e, CHECK_KIND_NET, CHECK_KIND_NET, why, sizeof why);
	refused = !used_up &&
	    (e == EPERM || e == EACCES || e == EINVAL || e == ENOSYS || e == ENOSPC || e == EUSERS);
	if (fd >= 0)
		close(fd);
	dprintf(status_fd, "%s%s: %s%s%s",
	    refused     ? "\002" :
	        used_up ? "\003" :
	                  "",
	    step, strerror(e), used_up ? ": " : "", used_up ? why : "");
	return -1;
}

/* In the child, new in its user namespace: a mount and an IPC namespace of its own, where
 * every mount is read-only and opens no device, but for bind mounts of the workspace, $TMPDIR
 * and check_rw_dirs (writable, no devices) and of check_devices, a devpts of its own at
 * /dev/pts and /dev/ptmx, and an empty tmpfs over each
 * of check_empty (check_rw_dirs among them are not bound); then no capability is left
 * in the bounding set, so nothing the check runs (root in the namespace included) gets one
 * to undo it. What the check can then write holds no program or library the supervisor
 * or a worker loads, and no setting they read. When the workspace or $TMPDIR lies in a
 * private temporary directory (check_ws_inside, check_tmpdir_inside), *ws_fd becomes a
 * copy of the workspace's mount, with what check_pin put in it, and CAP_SYS_ADMIN and
 * CAP_SETPCAP are left, ambient, for the init to put it there and then drop them
 * (worker/check_init.h); else *ws_fd is -1. Returns 0, or -1 having reported the step
 * that failed on `status_fd`. Runs between clone and exec: no allocation. */
static int check_confine(const char *workspace, int status_fd, int *ws_fd)
{
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NODEV };
	struct mount_attr nodev = { .attr_set = MOUNT_ATTR_NODEV };
	struct __user_cap_header_struct ch = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct cd[_LINUX_CAPABILITY_U32S_3];
	const char *path[CHECK_KEEP_MAX], *tmpdir = getenv("TMPDIR");
	int fd[CHECK_KEEP_MAX];
	size_t n = 0, rw, i;
	bool finish = check_ws_inside[0] != '\0' || check_tmpdir_inside[0] != '\0';
	/* What the init needs to finish (check_init.h): mount the workspace, drop these. */
	const unsigned long kept[] = { CAP_SYS_ADMIN, CAP_SETPCAP };

	*ws_fd = -1;
	for (i = 0; check_devices[i] != NULL; i++)
		path[n++] = check_devices[i];
	rw = n;
	for (i = 0; check_rw_dirs[i] != NULL; i++)
		if (!check_rw_private[i])
			path[n++] = check_rw_dirs[i];
	if (tmpdir != NULL && tmpdir[0] == '/' && check_tmpdir_bound)
		path[n++] = tmpdir;
	/* Last: mounted over a temporary directory it may lie in. */
	path[n++] = workspace;
	/* With the mount namespace, an IPC one: System V segments, semaphores and message
	 * queues and POSIX message queues made by the check go with it (they outlived it,
	 * memory outside every limit), and it reaches none of the machine's. */
	if (unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0)
		return check_confine_fail(status_fd, "unshare", "CLONE_NEWNS|CLONE_NEWIPC");
	for (i = 0; i < n; i++) {
		fd[i] = open_tree(
		    AT_FDCWD, path[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		/* What is missing or out of the user's reach is not kept (a workspace so fails
		 * at chdir). */
		if (fd[i] < 0 && (errno == ENOENT || errno == ENOTDIR || errno == EACCES))
			continue;
		if (fd[i] < 0)
			return check_confine_fail(status_fd, "open_tree", path[i]);
		if (i >= rw &&
		    mount_setattr(fd[i], "", AT_EMPTY_PATH | AT_RECURSIVE, &nodev, sizeof nodev) !=
		        0)
			return check_confine_fail(status_fd, "mount_setattr", path[i]);
	}
	if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof ro) != 0)
		return check_confine_fail(status_fd, "mount_setattr", "/");
	for (i = 0; i < n; i++) {
		if (fd[i] < 0)
			continue;
		if (move_mount(fd[i], "", AT_FDCWD, path[i], MOVE_MOUNT_F_EMPTY_PATH) != 0)
			return check_confine_fail(status_fd, "move_mount", path[i]);
		close(fd[i]);
	}
	for (i = 0; i < check_npin; i++) {
		bool file = check_pin[i].file, readonly = check_pin[i].readonly;
		int pin = -1;
		struct stat st = { 0 };

		/* A file the database does not have now (its -journal), or one out of the
		 * user's reach, is not pinned. */
		if (stat(check_pin[i].path, &st) != 0 &&
		    (errno == ENOENT || errno == ENOTDIR || errno == EACCES))
			continue;
		/* Not the kernel's refusal of a confinement (which would run every later check
		 * unconfined): this check is not run. */
		if (file)
			pin = open_tree(AT_FDCWD, "/dev/null", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
		/* Without a /dev/null, the file itself, read-only. */
		if (pin < 0 && (!file || errno == ENOENT))
			pin = open_tree(AT_FDCWD, check_pin[i].path,
			    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (file ? 0 : AT_RECURSIVE));
		if (pin < 0 ||
		    mount_setattr(pin, "", AT_EMPTY_PATH | (readonly ? AT_RECURSIVE : 0),
		        file || readonly ? &ro : &nodev, sizeof ro) != 0 ||
		    move_mount(pin, "", AT_FDCWD, check_pin[i].path, MOVE_MOUNT_F_EMPTY_PATH) !=
		        0) {
			if (check_pin[i].sock) {
				if (pin >= 0)
					close(pin);
				continue;
			}
			dprintf(status_fd, "cannot keep the %s %s from the check: %s",
			    file || (readonly && !S_ISDIR(st.st_mode)) ? "file" : "directory",
			    check_pin[i].path, strerror(errno));
			return -1;
		}
		close(pin);
	}
	if (check_ws_inside[0] != '\0' &&
	    (*ws_fd = open_tree(AT_FDCWD, check_ws_inside, OPEN_TREE_CLONE | AT_RECURSIVE)) < 0) {
		dprintf(status_fd, "cannot enter workspace %s: %s", workspace, strerror(errno));
		return -1;
	}
	/* Terminals of its own: the machine's (the operator's shell's) are not there to read
	 * what is typed or write into. */
	if (mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	        "newinstance,ptmxmode=0666,mode=0620") != 0 &&
	    errno != ENOENT && errno != ENOTDIR)
		return check_confine_fail(status_fd, "mount(devpts)", "/dev/pts");
	if (mount("/dev/pts/ptmx", "/dev/ptmx", NULL, MS_BIND, NULL) != 0 && errno != ENOENT &&
	    errno != ENOTDIR)
		return check_confine_fail(status_fd, "mount(MS_BIND)", "/dev/ptmx");
	for (i = 0; i < check_nempty; i++)
		if (mount("tmpfs", check_empty[i].path, "tmpfs",
		        MS_NOSUID | MS_NODEV |
		            (check_empty[i].writable ? 0 : MS_RDONLY | MS_NOEXEC),
		        check_empty[i].writable ? check_tmpfs_options : "mode=0700") != 0 &&
		    errno != ENOENT && errno != ENOTDIR)
			return check_confine_fail(status_fd, "mount(tmpfs)", check_empty[i].path);
	for (i = 0; prctl(PR_CAPBSET_READ, (unsigned long)i, 0, 0, 0) >= 0; i++)
		if ((!finish || (i != kept[0] && i != kept[1])) &&
		    prctl(PR_CAPBSET_DROP, (unsigned long)i, 0, 0, 0) != 0)
			return check_confine_fail(status_fd, "prctl", "PR_CAPBSET_DROP");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
		return check_confine_fail(status_fd, "prctl", "PR_CAP_AMBIENT_CLEAR_ALL");
	if (syscall(SYS_capget, &ch, cd) != 0)
		return check_confine_fail(status_fd, "capget", "inheritable");
	for (i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		cd[i].inheritable = 0;
	for (i = 0; finish && i < ARRAY_SIZE(kept); i++)
		cd[CAP_TO_INDEX(kept[i])].inheritable |= CAP_TO_MASK(kept[i]);
	if (syscall(SYS_capset, &ch, cd) != 0)
		return check_confine_fail(status_fd, "capset", "inheritable");
	for (i = 0; finish && i < ARRAY_SIZE(kept); i++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, kept[i], 0, 0) != 0) {
			dprintf(status_fd,
			    "cannot leave the check's init the capability %lu to finish its private "
			    "temporary directories: prctl(PR_CAP_AMBIENT_RAISE): %s",
			    kept[i], strerror(errno));
			return -1;
		}
	return 0;
}

/* Child side: a process group of its own in the worker's session (which has no terminal,
 * and which the supervisor takes down whole when it loses the worker), killed with the
 * worker, a minimal environment, stdio to the logs and no other descriptor, then the
 * shell, or in a namespace the init (worker/check_init.h) given `ns_fd`. Reports a failure
 * to start on `status_fd` (close-on-exec) and exits 126/127. Never returns. */
static void check_child(const struct check_spec *spec, int out_fd, int err_fd, int status_fd,
    pid_t worker, int ns_fd, bool net, bool confine)
{
	char *env[16], fd_arg[16], data_arg[24], ws_arg[16];
	int null_fd = open("/dev/null", O_RDONLY), ws_fd = -1;
	bool finish = confine && (check_ws_inside[0] != '\0' || check_tmpdir_inside[0] != '\0');

	if (setpgid(0, 0) != 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
	    !check_worker_alive(worker, ns_fd)) {
		dprintf(status_fd, "cannot detach the check command: %s", strerror(errno));
		_exit(126);
	}
	signal(SIGPIPE, SIG_DFL);
	signal(SIGXFSZ, SIG_DFL);
	signal(SIGXCPU, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	/* A session keyring of its own, empty: the check possessed the one the supervisor was
	 * started with (a login's, holding Kerberos tickets, say) and read every key in it and
	 * in the user keyring linked to it. None is needed where the kernel has no keyrings or
	 * a filter refuses keyctl, to the check too. Its user's keys used up (EDQUOT: by a
	 * check holding them) are waited for as its namespaces are (CHECK_NS_USED_UP). */
	if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0 && errno != ENOSYS &&
	    errno != EPERM) {
		int e = errno;

		if (e == EDQUOT)
			dprintf(status_fd,
			    "%ckeyctl(KEYCTL_JOIN_SESSION_KEYRING): %s: its user's keys are used up "
			    "(/proc/sys/kernel/keys), by another check or another program of its user; "
			    "it is not run in the supervisor's session keyring",
			    CHECK_NS_USED_UP, strerror(e));
		else
			dprintf(status_fd,
			    "cannot give the check command a session keyring of its own: %s",
			    strerror(e));
		_exit(126);
	}
	/* Before the limits: building the filter allocates, which a memory limit in force
	 * could refuse. */
	if (check_suid_forbid(status_fd) != 0)
		_exit(126);
	if (check_limits_apply(status_fd, ns_fd >= 0) != 0)
		_exit(126);
	if (net && check_net_isolate(status_fd) != 0)
		_exit(126);
	if (confine && check_confine(spec->workspace, status_fd, &ws_fd) != 0)
		_exit(126);
	/* A workspace in a private temporary directory is entered by the init. */
	if ((!finish || check_ws_inside[0] == '\0') && chdir(spec->workspace) != 0) {
		dprintf(
		    status_fd, "cannot enter workspace %s: %s", spec->workspace, strerror(errno));
		_exit(126);
	}
	if (null_fd >= 0)
		dup2(null_fd, 0);
	dup2(out_fd, 1);
	dup2(err_fd, 2);
	/* Nothing but stdio reaches the command: not the supervisor's socket (a forged frame
	 * would pass for the worker's), not whatever the worker inherited. */
	procs_cloexec_from(3);
	check_env(env, ARRAY_SIZE(env));
	if (ns_fd >= 0) {
		/* A fresh image of the worker's binary: it holds no key, and the worker can map
		 * its ids (the files of /proc/<pid> of this non-dumpable copy are root's). */
		snprintf(fd_arg, sizeof fd_arg, "%d", ns_fd);
		snprintf(data_arg, sizeof data_arg, "%lld", (long long)check_limits_data());
		snprintf(ws_arg, sizeof ws_arg, "%d", ws_fd);
		if (fcntl(ns_fd, F_SETFD, 0) == 0 && (ws_fd < 0 || fcntl(ws_fd, F_SETFD, 0) == 0))
			execve("/proc/self/exe",
			    (char *const[]){ (char *)"autopack-check-init", (char *)CHECK_INIT_FLAG,
			        fd_arg, data_arg, (char *)spec->command, finish ? ws_arg : NULL,
			        check_ws_inside, check_tmpdir_inside, check_home_sealed, NULL },
			    env);
		dprintf(
		    status_fd, "cannot run the check's init (/proc/self/exe): %s", strerror(errno));
		_exit(127);
	}
	execve("/bin/sh",
	    (char *const[]){ (char *)"sh", (char *)"-c", (char *)spec->command, NULL }, env);
	dprintf(status_fd, "cannot run /bin/sh: %s", strerror(errno));
	_exit(127);
}

/* Write `text` to /proc/<pid>/<name>. Returns 0, or -1 with `err`. */
static int check_proc_write(pid_t pid, const char *name, const char *text, char *err, size_t errlen)
{
	char path[64];
	size_t len = strlen(text);
	int fd, ok;

	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	ok = fd >= 0 && write(fd, text, len) == (ssize_t)len;
	if (!ok)
		snprintf(err, errlen, "writing /proc/<pid>/%s: %s", name, strerror(errno));
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* Map the worker's effective uid and gid to themselves in the user namespace of `pid`
 * (no other id; setgroups denied, as an unprivileged map requires). Returns 0, or -1 with
 * `err`. */
static int check_map_ids(pid_t pid, char *err, size_t errlen)
{
	char map[64];

	if (check_proc_write(pid, "setgroups", "deny", err, errlen) != 0)
		return -1;
	snprintf(map, sizeof map, "%u %u 1", (unsigned)geteuid(), (unsigned)geteuid());
	if (check_proc_write(pid, "uid_map", map, err, errlen) != 0)
		return -1;
	snprintf(map, sizeof map, "%u %u 1", (unsigned)getegid(), (unsigned)getegid());
	return check_proc_write(pid, "gid_map", map, err, errlen);
}

/* Fork the check into the namespaces of `ns`; wait until it runs the shell (or, in a
 * namespace, the init, which then gets its ids mapped and the word to go), or failed to
 * start. Returns the pid, with *ns_fd the socket the init reports on (-1 without a
 * namespace); -1 with `err` when it could not start; -2 with `err` naming the step the
 * kernel refused, when it refused a namespace, -3 when it refused the confinement
 * (check_confine), -4 when it refused the network namespace (check_net_isolate), -5 when
 * its user's namespaces are used up (check_ns_used_up) (nothing left running either
 * way). */
static pid_t check_spawn(const struct check_spec *spec, enum check_ns ns, int out_fd, int err_fd,
    int *ns_fd, char *err, size_t errlen)
{
	int sp[2], sk[2] = { -1, -1 }, status, refused = 0;
	char msg[256];
	ssize_t n;
	pid_t pid, self = getpid();

	*ns_fd = -1;
	if (pipe2(sp, O_CLOEXEC) != 0) {
		snprintf(err, errlen, "cannot start the check command: %s", strerror(errno));
		return -1;
	}
	check_tmpdir_own[0] = check_home_own[0] = '\0';
	if (ns == CHECK_NS_USER_PID && check_confined) {
		check_empty_choose(spec->workspace, spec->protect, spec->db_url);
		check_tmpfs_options = check_limits_tmpfs_options();
	}
	check_limits_prepare(ns == CHECK_NS_USER_PID);
	if (ns != CHECK_NS_NONE && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk) != 0) {
		snprintf(err, errlen, "cannot start the check command: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (ns == CHECK_NS_NONE)
		pid = fork();
	else /* fork-like: the child returns 0, on this stack's copy */
		pid = (pid_t)syscall(SYS_clone,
		    (ns == CHECK_NS_USER_PID ? CLONE_NEWUSER : 0) | CLONE_NEWPID | SIGCHLD, 0, 0, 0,
		    0);
	if (pid < 0) {
		const char *call = ns == CHECK_NS_USER_PID ? "clone(CLONE_NEWUSER|CLONE_NEWPID)" :
		                                             "clone(CLONE_NEWPID)";
		int e = errno;
		char why[200];

		refused = ns != CHECK_NS_NONE &&
		    (e == EPERM || e == EINVAL || e == ENOSPC || e == ENOSYS || e == EUSERS ||
		        e == EACCES);
		if (refused &&
		    check_ns_used_up(e, ns == CHECK_NS_USER_PID ? CHECK_KIND_USER : CHECK_KIND_PID,
		        CHECK_KIND_PID, why, sizeof why)) {
			refused = 4;
			snprintf(err, errlen, "cannot start the check command: %s: %s: %s", call,
			    strerror(e), why);
		} else if (refused)
			snprintf(err, errlen, "%s: %s", call, strerror(e));
		else
			snprintf(err, errlen, "cannot start the check command: %s", strerror(e));
		goto fail;
	}
	if (pid == 0) {
		close(sp[0]);
		if (sk[0] >= 0)
			close(sk[0]);
		check_child(spec, out_fd, err_fd, sp[1], self, sk[1],
		    ns != CHECK_NS_NONE && check_net, ns == CHECK_NS_USER_PID && check_confined);
	}
	close(sp[1]);
	sp[1] = -1;
	if (sk[1] >= 0)
		close(sk[1]);
	sk[1] = -1;
	check_pgid = pid;
	while ((n = read(sp[0], msg, sizeof msg - 1)) < 0 && errno == EINTR)
		;
	if (n > 0) {
		msg[n] = '\0';
		snprintf(err, errlen, "%s",
		    msg + (msg[0] == CHECK_CONFINE_REFUSED || msg[0] == CHECK_NET_REFUSED));
		if (msg[0] == CHECK_CONFINE_REFUSED)
			refused = 2;
		else if (msg[0] == CHECK_NET_REFUSED)
			refused = 3;
		else if (msg[0] == CHECK_NS_USED_UP) {
			snprintf(err, errlen, "cannot start the check command: %s", msg + 1);
			refused = 4;
		}
	} else if (ns == CHECK_NS_USER_PID && check_map_ids(pid, err, errlen) != 0) {
		refused = 1;
		kill(pid, SIGKILL);
	} else if (ns == CHECK_NS_NONE || send(sk[0], "g", 1, MSG_NOSIGNAL) == 1) {
		close(sp[0]);
		*ns_fd = sk[0];
		return pid; /* the shell, or the init told to go, runs */
	} else {
		snprintf(err, errlen, "cannot start the check command: %s", strerror(errno));
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	check_pgid = 0;
fail:
	close(sp[0]);
	if (sp[1] >= 0)
		close(sp[1]);
	if (sk[0] >= 0)
		close(sk[0]);
	if (sk[1] >= 0)
		close(sk[1]);
	return refused == 4 ? -5 : refused == 3 ? -4 : refused == 2 ? -3 : refused ? -2 : -1;
}

/* Wait `ms` for the namespaces of its user to free up, the heartbeat kept; false (no
 * wait) when the check's deadline comes first or a stop signal came. */
static bool check_ns_pause(const struct check_spec *spec, uint64_t ms)
{
	uint64_t until = clock_mono_ms() + ms;

	if (until >= spec->deadline_mono_ms || check_stop_seen)
		return false;
	for (uint64_t now; (now = clock_mono_ms()) < until && !check_stop_seen;) {
		uint64_t step = until - now < 500 ? until - now : 500;

		if (spec->heartbeat != NULL)
			spec->heartbeat(spec->ctx);
		nanosleep(
		    &(struct timespec){ (time_t)(step / 1000), (long)(step % 1000) * 1000000 },
		    NULL);
	}
	return !check_stop_seen;
}

/* Start the check (check_spawn) in the namespaces this worker uses; at its first check,
 * choose them: each namespace the kernel refuses gives way to the next (a PID namespace
 * alone needs root), with one warning naming what was refused and what a check can then
 * do. Namespaces of its user used up for now are waited for (CHECK_NS_TRIES). Returns the
 * pid, or -1 with `err`, or -2 with `err` when a stop signal from outside ended that
 * wait. */
static pid_t check_start(
    const struct check_spec *spec, int out_fd, int err_fd, int *ns_fd, char *err, size_t errlen)
{
	char why[320] = "", net_why[160] = "";
	uint64_t pause = CHECK_NS_PAUSE_MS, first = clock_mono_ms();
	int tries = 0;
	pid_t pid;

	if (check_ns < 0) {
		check_ns_max_read();
		check_ns = CHECK_NS_USER_PID;
		if (access("/proc/self/exe", X_OK) != 0) {
			snprintf(why, sizeof why, "/proc/self/exe: %s", strerror(errno));
			check_ns = CHECK_NS_NONE;
		}
	}
	while ((pid = check_spawn(spec, check_ns, out_fd, err_fd, ns_fd, err, errlen)) <= -2) {
		size_t k = strlen(why);

		if (pid == -5) {
			if (++tries < CHECK_NS_TRIES && check_ns_pause(spec, pause)) {
				pause = pause * 2 < CHECK_NS_PAUSE_MAX_MS ? pause * 2 :
				                                            CHECK_NS_PAUSE_MAX_MS;
				continue;
			}
			k = strlen(err);
			snprintf(err + k, errlen - k, "; %stried %d time(s) over %.1f s",
			    check_stop_seen ? "stopped by a signal from outside while it waited: " :
			                      "",
			    tries, (double)(clock_mono_ms() - first) / 1000.0);
			return check_stop_seen ? -2 : -1;
		}
		if (pid == -4) {
			snprintf(net_why, sizeof net_why, "%s", err);
			check_net = 0;
			continue;
		}
		snprintf(why + k, sizeof why - k, "%s%s", k > 0 ? "; " : "", err);
		if (pid == -3)
			check_confined = 0;
		else
			check_ns = check_ns == CHECK_NS_USER_PID && geteuid() == 0 ? CHECK_NS_PID :
			                                                             CHECK_NS_NONE;
	}
	if (net_why[0] != '\0')
		log_warn("check commands share the machine's network (%s): they can reach the "
		         "ports and abstract sockets of the machine's processes, the supervisor's "
		         "--http port included, and listen on a free port where the workers' LLM "
		         "calls go, and so read the API keys",
		    net_why);
	if (why[0] == '\0')
		return pid;
	if (check_ns == CHECK_NS_USER_PID)
		log_warn("check commands run in a user and a PID namespace of their own but may "
		         "write wherever their user may (%s): they can replace a program or a "
		         "library the workers load, or a setting they read, and so reach the API "
		         "keys",
		    why);
	else if (check_ns == CHECK_NS_PID)
		log_warn("check commands run in a PID namespace of their own but in no user "
		         "namespace (%s): they cannot signal the supervisor or the workers, but "
		         "as root they can read any process's memory, the API keys included",
		    why);
	else
		log_warn("check commands run in no namespace of their own (%s): they can signal "
		         "the supervisor and the workers%s",
		    why,
		    geteuid() == 0 ? ", and as root read any process's memory, the API keys "
		                     "included" :
		                     "");
	return pid;
}

/* Fill `full` (of `n` bytes) with those of the directories `list` names (separated by
 * spaces; "$TMPDIR" and "$HOME" for those) that are this check's private writable ones
 * (check_rw_private, check_tmpdir_own, check_home_own), separated by ", ": /tmp, /var/tmp
 * and /dev/shm by their path, "$TMPDIR (PATH)", "$HOME (PATH, which holds $TMPDIR)", or
 * "$HOME (PATH, also $TMPDIR)". Returns how many it named; *own says whether $TMPDIR or
 * $HOME is among them. */
static int check_full_private(const char *list, char *full, size_t n, bool *own)
{
	char copy[256], name[PATH_MAX + 64], *tok, *save;
	size_t k = 0, i;
	int named = 0;

	full[0] = '\0';
	snprintf(copy, sizeof copy, "%s", list);
	for (tok = strtok_r(copy, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
		name[0] = '\0';
		for (i = 0; check_rw_dirs[i] != NULL; i++)
			if (strcmp(tok, check_rw_dirs[i]) == 0 && check_rw_private[i])
				snprintf(name, sizeof name, "%s", tok);
		if (strcmp(tok, "$TMPDIR") == 0 && check_tmpdir_own[0] != '\0')
			snprintf(name, sizeof name, "$TMPDIR (%.200s)", check_tmpdir_own);
		if (strcmp(tok, "$HOME") == 0 && check_home_own[0] != '\0')
			snprintf(name, sizeof name, "$HOME (%.200s, %s $TMPDIR)", check_home_own,
			    check_home_is_tmpdir ? "also" : "which holds");
		if (name[0] == '\0' || k + strlen(name) + 3 >= n)
			continue;
		*own = *own || name[0] == '$';
		k += (size_t)snprintf(full + k, n - k, "%s%s", k > 0 ? ", " : "", name);
		named++;
	}
	return named;
}

/* How the command in a namespace ended, from its init's report on `fd` once the init is
 * reaped: *status becomes the command's wait status, `full` (of `n` bytes) names the
 * check's private temporary directories the init found full, *nfull how many, and *own
 * whether they include its $TMPDIR or $HOME (check_full_private). Without a report (the init
 * was killed, with everything in its namespace) *status stays the init's. Returns 0, or
 * -1 with `err` when the init could not run /bin/sh, or sent anything else. */
static int check_report(
    int fd, int *status, char *full, size_t n, int *nfull, bool *own, char *err, size_t errlen)
{
	char msg[256], *end;
	ssize_t got;

	while ((got = recv(fd, msg, sizeof msg - 1, MSG_DONTWAIT)) < 0 && errno == EINTR)
		;
	if (got <= 0)
		return 0;
	msg[got] = '\0';
	if (msg[0] == 'X') {
		*status = (int)strtol(msg + 1, &end, 10);
		*nfull = check_full_private(end, full, n, own);
		return 0;
	}
	/* Text only: code in the namespace may have written it. */
	for (char *c = msg; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	snprintf(err, errlen, "%s", msg[0] == 'E' ? msg + 1 : "the check's init failed");
	return -1;
}

int check_run(const struct check_spec *spec, struct check_result *out, char *err, size_t errlen)
{
	uint64_t start = clock_mono_ms(), last_beat = start, term_at = 0, end;
	int log_fd[2] = { -1, -1 }, pipe_fd[2][2] = { { -1, -1 }, { -1, -1 } };
	struct capture cap[2];
	int status = 0, rc = -1, i, ns_fd = -1, logs;
	char full[512] = "", tag[NAME_MAX + 1];
	int nfull = 0;
	bool own = false;
	pid_t pid;

	memset(out, 0, sizeof *out);
	memset(cap, 0, sizeof cap);
	cap[0].in = cap[1].in = -1;
	out->stdout_path = checklog_path(
	    spec->workspace, spec->run_id, spec->phase_id, spec->attempt, "stdout");
	out->stderr_path = checklog_path(
	    spec->workspace, spec->run_id, spec->phase_id, spec->attempt, "stderr");
	if ((logs = check_logs_dir(spec->workspace, err, errlen)) < 0)
		goto out;
	log_fd[0] = check_log_create(logs, out->stdout_path);
	log_fd[1] = log_fd[0] < 0 ? -1 : check_log_create(logs, out->stderr_path);
	close(logs);
	if (log_fd[0] < 0 || log_fd[1] < 0) {
		snprintf(err, errlen, "cannot open check logs under %s/.autopack/logs: %s",
		    spec->workspace, strerror(errno));
		goto out;
	}
	/* The command writes into pipes that the worker drains into the logs, capped. */
	if (pipe2(pipe_fd[0], O_CLOEXEC) != 0 || pipe2(pipe_fd[1], O_CLOEXEC) != 0) {
		snprintf(err, errlen, "cannot start the check command: %s", strerror(errno));
		goto out;
	}
	check_stop_seen = 0;
	check_tmpdir_choose();
	check_git_before(spec->workspace, &check_git_state, spec->heartbeat, spec->ctx);
	pid = check_start(spec, pipe_fd[0][1], pipe_fd[1][1], &ns_fd, err, errlen);
	out->stopped_from_outside = pid == -2;
	for (i = 0; i < 2; i++) {
		close(pipe_fd[i][1]);
		pipe_fd[i][1] = -1;
		capture_init(&cap[i], pipe_fd[i][0], log_fd[i]);
	}
	if (pid < 0)
		goto out;
	for (;;) {
		uint64_t now;
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			snprintf(err, errlen, "waiting for the check command: %s", strerror(errno));
			goto out;
		}
		now = clock_mono_ms();
		if (term_at == 0 && now >= spec->deadline_mono_ms) {
			out->timed_out = true;
			term_at = now;
			kill(-pid, SIGTERM);
			kill(-pid, SIGCONT);
		} else if (term_at != 0 && now >= term_at + CHECK_DEADLINE_KILL_MS) {
			kill(-pid, SIGKILL);
		}
		if (spec->heartbeat != NULL && now - last_beat >= 500) {
			spec->heartbeat(spec->ctx);
			last_beat = now;
		}
		check_drain(cap, now - start < 200 ? 10 : 50);
	}
	/* Nothing the check started may outlive it: its group, whatever else of the worker's
	 * session (a process that moved to a group of its own), and every child of the
	 * worker, a child subreaper (a process that left the session and was orphaned). */
	kill(-pid, SIGKILL);
	check_pgid = 0;
	if (ns_fd >= 0 &&
	    check_report(ns_fd, &status, full, sizeof full, &nfull, &own, err, errlen) != 0)
		goto out;
	if (getsid(0) == getpid() &&
	    procs_session_kill(getpid(), getpid(), procs_keep_none, NULL, CHECK_GRACE_MS) < 0)
		log_warn("processes the check command started are still alive %d ms after"
		         " SIGKILL",
		    CHECK_GRACE_MS);
	/* Every process of the check is gone: what it made of the repository stays made. Named
	 * after the attempt as its logs are (common/checklog.h: a safe name within NAME_MAX). */
	snprintf(tag, sizeof tag, "%s", strrchr(out->stdout_path, '/') + 1);
	if (strlen(tag) > strlen(".stdout.txt"))
		tag[strlen(tag) - strlen(".stdout.txt")] = '\0';
	check_git_after(spec->workspace, tag, &check_git_state, out->git, sizeof out->git,
	    spec->heartbeat, spec->ctx);
	/* What is left in the pipes; a writer that escaped the kill is not waited for long. */
	end = clock_mono_ms() + CHECK_GRACE_MS;
	while ((cap[0].in >= 0 || cap[1].in >= 0) && clock_mono_ms() < end)
		check_drain(cap, 50);
	if (WIFEXITED(status)) {
		out->exit_code = WEXITSTATUS(status);
	} else {
		out->exit_code = -1;
		out->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
		if (!out->timed_out &&
		    (out->term_signal == SIGTERM || out->term_signal == SIGINT ||
		        out->term_signal == SIGHUP))
			out->stopped_from_outside = check_stopped_from_outside(ns_fd >= 0);
	}
	out->duration_ms = (int64_t)(clock_mono_ms() - start);
	rc = 0;
out:
	for (i = 0; i < 2; i++) {
		if (log_fd[i] >= 0 && capture_finish(&cap[i]) > 0)
			log_info(
			    "check output of %s/%s attempt %lld on %s exceeded %u KiB: its log "
			    "keeps the first and last %u KiB",
			    spec->run_id, spec->phase_id, (long long)spec->attempt,
			    i == 0 ? "stdout" : "stderr",
			    (CAPTURE_HEAD_MAX + CAPTURE_TAIL_MAX) >> 10, CAPTURE_HEAD_MAX >> 10);
		if (log_fd[i] >= 0 && cap[i].write_errno != 0)
			log_warn("writing the check log %s: %s",
			    i == 0 ? out->stdout_path : out->stderr_path,
			    strerror(cap[i].write_errno));
		if (pipe_fd[i][0] >= 0)
			close(pipe_fd[i][0]);
		if (pipe_fd[i][1] >= 0)
			close(pipe_fd[i][1]);
		if (log_fd[i] >= 0)
			close(log_fd[i]);
	}
	if (ns_fd >= 0)
		close(ns_fd);
	/* From what the command sent, not from the logs: a log the disk refused holds less, or
	 * nothing, and the excerpt would be the other stream's under stderr's name. */
	if (rc == 0 && capture_last(&cap[1], out->excerpt, sizeof out->excerpt) == 0)
		capture_last(&cap[0], out->excerpt, sizeof out->excerpt);
	if (rc == 0 && cap[0].write_errno != 0)
		capture_last(&cap[0], out->stdout_end, sizeof out->stdout_end);
	for (i = 0; rc == 0 && i < 2; i++) {
		out->sent[i] = cap[i].total;
		out->kept[i] = cap[i].kept;
	}
	if (rc == 0) {
		out->stderr_log_errno = cap[1].write_errno;
		out->stdout_log_errno = cap[0].write_errno;
	}
	if (rc == 0 && !out->timed_out && !out->stopped_from_outside && out->exit_code != 0)
		check_limits_hit(out->excerpt, full, nfull, own, out->limit, sizeof out->limit);
	return rc;
}

void check_result_free(struct check_result *r)
{
	free(r->stdout_path);
	free(r->stderr_path);
	r->stdout_path = r->stderr_path = NULL;
}
