/* The sd_notify datagram protocol (see notify.h). */
#include "supervisor/notify.h"
#include "common/utf8.h"
#include "common/util.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Parse $WATCHDOG_USEC for this process into n->watchdog_usec; -1 if it is malformed, -2
 * if it is under NOTIFY_WATCHDOG_MIN_USEC. */
static int notify_watchdog(struct notify *n)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	n->watchdog_usec = 0;
	if (usec == NULL)
		return 0;
	if (pid != NULL && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	/* The whole value is the number: strtoull would skip white space and take a sign
	 * ("-5" as 2^64 - 5). */
	if (usec[0] < '0' || usec[0] > '9')
		return -1;
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno != 0 || end == usec || *end != '\0' || v == 0)
		return -1;
	if (v < NOTIFY_WATCHDOG_MIN_USEC)
		return -2;
	n->watchdog_usec = v;
	return 0;
}

/* Read the service manager's variables and make the socket; -1 with err when they are
 * malformed. */
int notify_open(struct notify *n, char *err, size_t errlen)
{
	const char *name = getenv("NOTIFY_SOCKET");
	size_t len;
	int rc = 0;

	memset(n, 0, sizeof *n);
	n->fd = -1;
	if ((rc = notify_watchdog(n)) == -2) {
		snprintf(err, errlen,
		    "WATCHDOG_USEC=%s is under %d (%d ms), the shortest watchdog period this"
		    " supervisor keeps: it pings every half period, and only while its queued writes"
		    " are committed within one; give the unit WatchdogSec=%dms or more",
		    getenv("WATCHDOG_USEC"), NOTIFY_WATCHDOG_MIN_USEC,
		    NOTIFY_WATCHDOG_MIN_USEC / 1000, NOTIFY_WATCHDOG_MIN_USEC / 1000);
		rc = -1;
	} else if (rc != 0) {
		snprintf(err, errlen,
		    "WATCHDOG_USEC=\"%s\" is not a positive number of microseconds",
		    getenv("WATCHDOG_USEC"));
		rc = -1;
	}
	/* Empty is unset, as `NOTIFY_SOCKET= autopack-supervisor ...` means. */
	if (rc == 0 && name != NULL && name[0] != '\0') {
		len = strlen(name);
		n->addr.sun_family = AF_UNIX;
		if ((name[0] != '/' && name[0] != '@') || len < 2 ||
		    len >= sizeof n->addr.sun_path) {
			snprintf(err, errlen,
			    "NOTIFY_SOCKET=\"%s\" is neither an absolute socket path nor an abstract"
			    " \"@name\" of at most %zu bytes",
			    name, sizeof n->addr.sun_path - 1);
			rc = -1;
		} else {
			memcpy(n->addr.sun_path, name, len);
			memcpy(n->name, name, len + 1);
			if (name[0] == '@')
				n->addr.sun_path[0] = '\0';
			n->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
			    (name[0] == '/'));
			n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
			if (n->fd < 0) {
				snprintf(err, errlen, "NOTIFY_SOCKET: cannot make a socket: %s",
				    strerror(errno));
				rc = -1;
			}
		}
	}
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (rc != 0)
		notify_close(n);
	return rc;
}

/* Send one datagram of assignments; -errno when it cannot be sent. */
int notify_send(struct notify *n, const char *assignments)
{
	ssize_t w;

	if (n->fd < 0)
		return 0;
	do
		w = sendto(n->fd, assignments, strlen(assignments), MSG_NOSIGNAL,
		    (const struct sockaddr *)&n->addr, n->addr_len);
	while (w < 0 && errno == EINTR);
	return w < 0 ? -errno : 0;
}

/* Send STATUS=text, its newlines as \\n (one line: a newline would start another
 * assignment), unless it was the last status sent; -errno on failure. */
int notify_status(struct notify *n, const char *text)
{
	char line[sizeof n->last_status], msg[sizeof n->last_status + 8];

	utf8_one_line(line, text, sizeof line);
	if (n->fd < 0 || strcmp(line, n->last_status) == 0)
		return 1;
	memcpy(n->last_status, line, sizeof line);
	snprintf(msg, sizeof msg, "STATUS=%s", n->last_status);
	return notify_send(n, msg);
}

/* Close the socket; nothing to do when none is open. */
void notify_close(struct notify *n)
{
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
}
