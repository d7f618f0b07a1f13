/*
 * systemd's service notification protocol (sd_notify(3)), spoken directly: each
 * notification is one datagram of newline-separated VARIABLE=value assignments sent to
 * the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or "@name" in the abstract
 * namespace). $WATCHDOG_USEC asks for WATCHDOG=1 at least that often, when
 * $WATCHDOG_PID is unset or names this process. Without $NOTIFY_SOCKET (or with it
 * empty) every call does nothing.
 */
#ifndef AUTOPACK_NOTIFY_H
#define AUTOPACK_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

/* The shortest watchdog period taken: the supervisor pings every half period, and only
 * while no queued write has waited a whole period for its commit (a commit window, a
 * disk's fsync and a loop's stall take milliseconds each). */
#define NOTIFY_WATCHDOG_MIN_USEC 100000

struct notify {
	int fd; /* -1: not under a service manager */
	struct sockaddr_un addr;
	socklen_t addr_len;
	uint64_t watchdog_usec; /* 0: no watchdog */
	char last_status[256];  /* the STATUS= sent last, to send only changes */
	char name[sizeof(struct sockaddr_un){ 0 }.sun_path]; /* $NOTIFY_SOCKET, for messages */
};

/* Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID, then remove all three from the
 * environment so that no child inherits them. Returns 0 (also when they are unset), or
 * -1 with what was wrong in err: a socket name that is not a path or "@name", or too
 * long; a socket that cannot be made; a WATCHDOG_USEC that is not a positive number, or
 * is under NOTIFY_WATCHDOG_MIN_USEC. */
int notify_open(struct notify *n, char *err, size_t errlen);
/* Send one notification (the assignments, '\n'-separated). Returns 0, or -errno; does
 * nothing and returns 0 when not under a service manager. */
int notify_send(struct notify *n, const char *assignments);
/* Send STATUS=text, each newline and carriage return in it as \\n and \\r (a newline
 * would start an assignment of its own), if it differs from the status sent last: 0 sent,
 * 1 nothing to send (the same text, or no service manager), or -errno. */
int notify_status(struct notify *n, const char *text);
void notify_close(struct notify *n);

#endif
