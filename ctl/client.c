/* The control client (see client.h). */
#include "ctl/client.h"

#include "common/procs.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* After a connect to `path` failed with EACCES: describe into buf (n bytes) the first
 * directory on the way to it that this user may not enter, or else the socket when this
 * user may not write it, with its mode and owner, and put that owner in *owner; false
 * when neither is found. */
static bool client_denied_at(const char *path, char *buf, size_t n, uid_t *owner)
{
	char dir[PATH_MAX];
	struct stat st;

	if (strlen(path) >= sizeof dir)
		return false;
	strcpy(dir, path);
	for (char *p = strchr(dir + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
		*p = '\0';
		if (access(dir, X_OK) != 0 && errno == EACCES && stat(dir, &st) == 0) {
			snprintf(buf, n,
			    "its directory %s (mode %04o, owner uid %d) cannot be entered by this "
			    "user (uid %d)",
			    dir, (unsigned)(st.st_mode & 07777), (int)st.st_uid, (int)getuid());
			*owner = st.st_uid;
			return true;
		}
		*p = '/';
	}
	if (stat(path, &st) == 0 && access(path, W_OK) != 0) {
		snprintf(buf, n,
		    "the socket (mode %04o, owner uid %d) cannot be written by this user (uid %d)",
		    (unsigned)(st.st_mode & 07777), (int)st.st_uid, (int)getuid());
		*owner = st.st_uid;
		return true;
	}
	return false;
}

/* Say why connecting to `path` failed with `e`: what is there when it is not a socket,
 * that nothing listens on a socket that refused, which directory or socket this user may
 * not use when permission was denied. */
static void client_refused(const char *path, int e, char *err, size_t errlen)
{
	struct stat st;
	const char *what = NULL;
	char denied[PATH_MAX + 128];
	uid_t owner;

	if (stat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
		what = S_ISREG(st.st_mode) ? "a regular file" :
		    S_ISDIR(st.st_mode)    ? "a directory" :
		    S_ISFIFO(st.st_mode)   ? "a FIFO" :
		                             "a device";
	if (what != NULL)
		snprintf(err, errlen,
		    "cannot connect to the supervisor at %s: it is %s, not a control socket", path,
		    what);
	else if (e == EACCES && client_denied_at(path, denied, sizeof denied, &owner))
		snprintf(err, errlen,
		    "cannot connect to the supervisor at %s: %s: %s (a supervisor keeps its "
		    "control socket where only its user may reach it, and answers only that "
		    "user's commands: run autopack-ctl as uid %d)",
		    path, denied, strerror(e), (int)owner);
	else if (e == ECONNREFUSED)
		snprintf(err, errlen,
		    "cannot connect to the supervisor at %s: no process listens there (a socket "
		    "left by a supervisor that ended)",
		    path);
	else
		snprintf(
		    err, errlen, "cannot connect to the supervisor at %s: %s", path, strerror(e));
}

/* Connect to the supervisor's control socket within the client's timeout; -1 with err set
 * on failure. A socket whose backlog is full (a supervisor stopped or stalled under a
 * flood of connections, or another process listening there and accepting nothing) makes
 * a blocking connect wait for ever: the connect is tried without blocking, again every
 * 10 ms, until the timeout. */
int client_connect(struct ctl_client *c, const char *path, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline = clock_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	struct ucred cred = { 0 };
	socklen_t credlen = sizeof cred;
	int fd, rc;

	c->timeout_ms = timeout_ms;
	proto_fd_init(&c->io, -1, PROTO_FRAME_MAX_DEFAULT);
	if (path[0] == '\0') {
		snprintf(err, errlen, "the control socket's path is empty");
		return -1;
	}
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "control socket path too long (%zu bytes, at most %zu): %s",
		    strlen(path), sizeof sa.sun_path - 1, path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	c->io.fd = fd;
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to the supervisor at %s: %s", path,
		    strerror(errno));
		return -1;
	}
	while ((rc = connect(fd, (struct sockaddr *)&sa, sizeof sa)) != 0 && errno == EAGAIN &&
	    (timeout_ms <= 0 || clock_mono_ms() < deadline))
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	if (rc != 0) {
		if (errno == EAGAIN)
			snprintf(err, errlen,
			    "cannot connect to the supervisor at %s: it accepted no connection "
			    "within %d ms (its backlog of connections is full: it is stalled, "
			    "stopped, or another process listens there)",
			    path, timeout_ms);
		else
			client_refused(path, errno, err, errlen);
		return -1;
	}
	/* A supervisor answers only peers of its own uid: a listener of another one is
	 * either a supervisor that would close the connection unanswered, or not one. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &credlen) == 0 && cred.pid > 0 &&
	    cred.uid != getuid()) {
		snprintf(err, errlen,
		    "the process serving the control socket %s (pid %d) runs as uid %d, not as "
		    "this user (uid %d): a supervisor answers only its own user's commands; run "
		    "autopack-ctl as uid %d",
		    path, (int)cred.pid, (int)cred.uid, (int)getuid(), (int)cred.uid);
		return -1;
	}
	/* The replies are read with poll and a deadline; the request is written blocking. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
		snprintf(err, errlen, "cannot connect to the supervisor at %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* Send one request; -1 with err set on failure, -2 when nothing could be encoded. */
int client_send(struct ctl_client *c, const struct proto_request *req, char *err, size_t errlen)
{
	struct proto_msg m = { .type = PROTO_REQUEST };
	struct proto_err perr;
	int rc;

	m.u.request = *req;
	if (proto_fd_queue(&c->io, &m, &perr) != 0) {
		snprintf(err, errlen, "the request cannot be encoded: %s", perr.text);
		return -2;
	}
	if ((rc = proto_fd_flush(&c->io)) != 0) {
		snprintf(err, errlen, "sending to the supervisor: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

/* Say that no reply came within the timeout, naming the supervisor's pid (its socket's
 * peer credentials) and, when it is stopped (state T, or t under a debugger), so: it
 * answers nothing until it is continued. */
static void client_silent(const struct ctl_client *c, char *err, size_t errlen)
{
	struct ucred cred = { 0 };
	socklen_t len = sizeof cred;
	char buf[512];
	const char *st = NULL;

	if (getsockopt(c->io.fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.pid <= 0) {
		snprintf(err, errlen, "no reply from the supervisor within %d ms", c->timeout_ms);
		return;
	}
	st = procs_stat_text(cred.pid, buf, sizeof buf);
	if (st != NULL && (st[1] == 'T' || st[1] == 't'))
		snprintf(err, errlen,
		    "no reply from the supervisor (pid %d) within %d ms: it is stopped (%s); "
		    "kill -CONT %d lets it go on",
		    (int)cred.pid, c->timeout_ms,
		    st[1] == 'T' ? "SIGSTOP, or Ctrl-Z in its terminal" : "by a debugger",
		    (int)cred.pid);
	else
		snprintf(err, errlen, "no reply from the supervisor (pid %d) within %d ms",
		    (int)cred.pid, c->timeout_ms);
}

/* Read the next reply within the client's timeout; -1 with err set on failure. */
int client_recv(struct ctl_client *c, struct proto_msg *m, char *err, size_t errlen)
{
	struct proto_err perr;

	switch (proto_fd_recv(&c->io, m, c->timeout_ms > 0 ? c->timeout_ms : -1, &perr)) {
	case PROTO_FD_MSG:
		if (m->type == PROTO_REPLY)
			return 0;
		snprintf(err, errlen, "the supervisor sent a %s message instead of a reply",
		    proto_type_name(m->type));
		proto_msg_free(m);
		return -1;
	case PROTO_FD_TIMEOUT: client_silent(c, err, errlen); return -1;
	case PROTO_FD_EOF: snprintf(err, errlen, "the supervisor closed the connection"); return -1;
	case PROTO_FD_EBADFRAME:
		snprintf(err, errlen, "bad frame from the supervisor: %s", perr.text);
		return -1;
	case PROTO_FD_EIO:
		snprintf(err, errlen, "waiting for the supervisor: %s", perr.text);
		return -1;
	}
	return -1;
}

/* Close the socket and free the buffers. */
void client_close(struct ctl_client *c)
{
	if (c->io.fd >= 0)
		close(c->io.fd);
	c->io.fd = -1;
	proto_fd_free(&c->io);
}
