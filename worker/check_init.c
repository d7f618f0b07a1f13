/* PID 1 of a check command's PID namespace (worker/check_init.h). */
#include "worker/check_init.h"
#include "worker/check_limits.h"
#include "common/numarg.h"
#include "common/sysdirs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Say on stderr why the init gives up, and exit with `status`. */
__attribute__((format(printf, 2, 3))) static _Noreturn void check_init_fail(
    int status, const char *fmt, ...)
{
	va_list ap;

	fputs("autopack-worker " CHECK_INIT_FLAG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	_exit(status);
}

/* Send `len` bytes of `msg` to the worker in one message; exit 126 when it cannot. */
static void check_init_send(int fd, const char *msg, size_t len)
{
	ssize_t n;

	while ((n = send(fd, msg, len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (n < 0)
		check_init_fail(
		    126, "cannot report to the worker on descriptor %d: %s", fd, strerror(errno));
	if (n != (ssize_t)len)
		check_init_fail(126, "the report to the worker on descriptor %d was cut short", fd);
}

/* The descriptor, the data limit and the workspace's mount (-1 for none) of the command
 * line, checked; exits 2 naming what is wrong with it. */
static void check_init_args(int argc, char **argv, int *fd, long long *data, int *ws_fd)
{
	long long v;

	if (argc != 5 && argc != 9)
		check_init_fail(2,
		    "an internal mode, started by the worker for a check command: expected FD DATA "
		    "COMMAND [WSFD WORKSPACE TMPDIR READONLY], got %d argument(s)",
		    argc - 2);
	if (numarg_ll(argv[2], &v) != 0 || v < 3 || v > INT_MAX)
		check_init_fail(2, "FD \"%s\" is not a descriptor number of 3 or more", argv[2]);
	*fd = (int)v;
	if (fcntl(*fd, F_SETFD, FD_CLOEXEC) != 0)
		check_init_fail(2, "FD %d is not an open descriptor: %s", *fd, strerror(errno));
	if (numarg_ll(argv[3], data) != 0 || *data < 0)
		check_init_fail(
		    2, "DATA \"%s\" is not a number of bytes (0 for no limit)", argv[3]);
	*ws_fd = -1;
	if (argc == 5)
		return;
	if (numarg_ll(argv[5], &v) != 0 || v < -1 || v > INT_MAX || (v < 0) != (argv[6][0] == '\0'))
		check_init_fail(2,
		    "WSFD \"%s\" is not a descriptor number (-1 with no WORKSPACE, \"%s\")",
		    argv[5], argv[6]);
	*ws_fd = (int)v;
}

/* Append to `msg` (of `n` bytes, holding `len`) " NAME" for each temporary directory that
 * is a tmpfs with no block or no inode left (what the check's writes met there, when the
 * worker limited its size): /tmp, /var/tmp and /dev/shm by their path, $TMPDIR and $HOME
 * (as the command's environment names them) as "$TMPDIR" and "$HOME". Returns the new
 * length. */
static size_t check_init_full(char *msg, size_t len, size_t n)
{
	static const char *const names[] = { "/tmp", "/var/tmp", "/dev/shm", "$TMPDIR", "$HOME" };
	const char *dirs[] = { "/tmp", "/var/tmp", "/dev/shm", getenv("TMPDIR"), getenv("HOME") };
	struct statfs st;

	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		if (dirs[i] == NULL || dirs[i][0] != '/' || statfs(dirs[i], &st) != 0 ||
		    st.f_type != TMPFS_MAGIC || (st.f_bavail > 0 && st.f_ffree > 0) ||
		    len + strlen(names[i]) + 2 > n)
			continue;
		len += (size_t)snprintf(msg + len, n - len, " %s", names[i]);
	}
	return len;
}

/* Make the directory `path` (absolute), and those above it that are missing, mode 0700.
 * Returns 0, or -1 with errno. */
static int check_init_mkdirs(const char *path)
{
	char p[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof p) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p, path, len + 1);
	for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
		if (s != NULL)
			*s = '\0';
		if (mkdir(p, 0700) != 0 && errno != EEXIST)
			return -1;
		if (s == NULL)
			return 0;
		*s = '/';
	}
}

/* In the check's private temporary directories, make `tmpdir` ("" for none), and the
 * workspace `ws` ("" for none) with the mount `ws_fd` on it, entered; make the private
 * directory `readonly` ("" for none) read-only, but for what lies in it of these (a
 * `tmpdir` there is bound onto itself first, and stays writable); then drop the
 * capabilities the worker left for it (CAP_SYS_ADMIN, CAP_SETPCAP: bounding, ambient and
 * every other set), so that the command gets none. Returns 0, or -1 with `msg` (of `n`
 * bytes, "E" first) naming the step that failed. */
static int check_init_private_tmp(
    const char *tmpdir, const char *ws, int ws_fd, const char *readonly, char *msg, size_t n)
{
	struct __user_cap_header_struct ch = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct cd[_LINUX_CAPABILITY_U32S_3] = { { 0, 0, 0 } };
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	const char *step = "mkdir", *what = tmpdir;

	if (tmpdir[0] != '\0' && check_init_mkdirs(tmpdir) != 0)
		goto fail;
	step = "mount(MS_BIND)";
	if (tmpdir[0] != '\0' && readonly[0] != '\0' && path_holds(readonly, tmpdir) &&
	    mount(tmpdir, tmpdir, NULL, MS_BIND, NULL) != 0)
		goto fail;
	step = "mkdir";
	what = ws;
	if (ws_fd >= 0 && check_init_mkdirs(ws) != 0)
		goto fail;
	step = "move_mount";
	if (ws_fd >= 0 && move_mount(ws_fd, "", AT_FDCWD, ws, MOVE_MOUNT_F_EMPTY_PATH) != 0)
		goto fail;
	step = "chdir";
	if (ws_fd >= 0) {
		close(ws_fd);
		if (chdir(ws) != 0)
			goto fail;
	}
	what = readonly;
	step = "mount_setattr(MOUNT_ATTR_RDONLY)";
	if (readonly[0] != '\0' && mount_setattr(AT_FDCWD, readonly, 0, &ro, sizeof ro) != 0)
		goto fail;
	what = "the capabilities left";
	step = "prctl(PR_CAP_AMBIENT_CLEAR_ALL)";
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
		goto fail;
	step = "prctl(PR_CAPBSET_DROP)";
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0, 0, 0) != 0 ||
	    prctl(PR_CAPBSET_DROP, CAP_SETPCAP, 0, 0, 0) != 0)
		goto fail;
	step = "capset";
	if (syscall(SYS_capset, &ch, cd) != 0)
		goto fail;
	return 0;
fail:
	snprintf(msg, n, "Ecannot make the check's private temporary directories: %s(%s): %s", step,
	    what, strerror(errno));
	return -1;
}

void check_init_main(int argc, char **argv)
{
	char msg[256], go;
	int fd, ws_fd, ep[2], status = 0;
	long long data;
	pid_t sh, w;
	ssize_t n;

	check_init_args(argc, argv, &fd, &data, &ws_fd);
	prctl(PR_SET_NAME, "check-init");
	/* The worker maps this namespace's ids, then says go; EOF: it gave up. */
	while ((n = read(fd, &go, 1)) < 0 && errno == EINTR)
		;
	if (n < 0)
		check_init_fail(
		    126, "cannot read the worker's word on descriptor %d: %s", fd, strerror(errno));
	if (n != 1)
		check_init_fail(
		    126, "the worker closed descriptor %d before the namespace was ready", fd);
	/* Its memory and /proc files are closed to the command, whatever its capabilities in
	 * the namespace. */
	prctl(PR_SET_DUMPABLE, 0);
	if (argc == 9 &&
	    check_init_private_tmp(argv[7], argv[6], ws_fd, argv[8], msg, sizeof msg) != 0) {
		check_init_send(fd, msg, strlen(msg));
		_exit(0);
	}
	if (check_limits_data_set(data) != 0) {
		n = snprintf(msg, sizeof msg,
		    "Ecannot limit the check's memory (setrlimit(RLIMIT_DATA)): %s",
		    strerror(errno));
		check_init_send(fd, msg, (size_t)n);
		_exit(0);
	}
	if (pipe2(ep, O_CLOEXEC) != 0 || (sh = fork()) < 0) {
		n = snprintf(
		    msg, sizeof msg, "Ecannot start the check command: %s", strerror(errno));
		check_init_send(fd, msg, (size_t)n);
		_exit(0);
	}
	if (sh == 0) {
		execve("/bin/sh", (char *const[]){ (char *)"sh", (char *)"-c", argv[4], NULL },
		    environ);
		dprintf(ep[1], "cannot run /bin/sh: %s", strerror(errno));
		_exit(127);
	}
	close(ep[1]);
	/* Everything orphaned in the namespace is this process's child: reap it, until the
	 * command itself ends. */
	for (;;) {
		int st;

		w = wait(&st);
		if (w == sh) {
			status = st;
			break;
		}
		if (w < 0 && errno != EINTR)
			break;
	}
	msg[0] = 'E';
	while ((n = read(ep[0], msg + 1, sizeof msg - 2)) < 0 && errno == EINTR)
		;
	if (n > 0)
		check_init_send(fd, msg, (size_t)n + 1);
	else
		check_init_send(fd, msg,
		    check_init_full(
		        msg, (size_t)snprintf(msg, sizeof msg, "X%d", status), sizeof msg));
	_exit(0);
}
