/* A worker's channel made by the worker once it is not dumpable, vetted by the supervisor
 * (proto/hand.h). */
#include "proto/hand.h"
#include "common/procs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define HAND_FDS_MAX 4 /* descriptors one message may bring before it is refused */

union hand_cmsg {
	struct cmsghdr h;
	char buf[CMSG_SPACE(HAND_FDS_MAX * sizeof(int))];
};

/* Receive one byte on `fd` with `flags`, and the descriptors that came with it into
 * fds[HAND_FDS_MAX] (*nfds of them; *cut when the kernel dropped some). Returns what
 * recvmsg returned, errno set when negative. */
static ssize_t hand_recv(int fd, int flags, int *fds, int *nfds, int *cut)
{
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union hand_cmsg c;
	struct msghdr mh = { .msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = c.buf,
		.msg_controllen = sizeof c.buf };
	struct cmsghdr *cm;
	ssize_t k;

	*nfds = 0;
	*cut = 0;
	do
		k = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return k;
	for (cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t n;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n && *nfds < HAND_FDS_MAX; i++)
			memcpy(&fds[(*nfds)++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	*cut = (mh.msg_flags & MSG_CTRUNC) != 0;
	return k;
}

/* Close the n descriptors of fds. */
static void hand_close_all(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* Send one byte on `sock`, with descriptor `fd` when it is not -1. Returns 0 or a
 * negative errno. */
static int hand_send(int sock, int fd, int flags)
{
	char byte = 'h';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	union hand_cmsg c;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;
	ssize_t k;

	if (fd >= 0) {
		memset(&c, 0, sizeof c);
		mh.msg_control = c.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	do
		k = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	return k == 1 ? 0 : -EIO;
}

/* Whether a process traced by `tracer` may be trusted as the traced one's peer `peer`
 * is: only when nobody traces it, or the one that traces `peer` too (which can read
 * everything `peer` holds already). */
static bool hand_tracer_ok(pid_t tracer, pid_t peer)
{
	return tracer == 0 || (tracer > 0 && procs_tracer(peer) == tracer);
}

int hand_give(int hand, char *err, size_t errlen)
{
	pid_t tracer;
	int sv[2], rc;

	if (prctl(PR_GET_DUMPABLE) != 0) {
		snprintf(err, errlen, "this worker is still dumpable: it takes no keys");
		return -1;
	}
	tracer = procs_tracer(getpid());
	if (!hand_tracer_ok(tracer, getppid())) {
		if (tracer < 0)
			snprintf(err, errlen,
			    "cannot read /proc/self/status to see whether a process traces this"
			    " worker: it takes no keys");
		else
			snprintf(err, errlen,
			    "process %ld traces this worker and not its supervisor: it could take"
			    " the keys and the frames, so the worker takes none",
			    (long)tracer);
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		snprintf(err, errlen, "cannot make a socket pair: %s", strerror(errno));
		return -1;
	}
	rc = hand_send(hand, sv[1], 0);
	close(sv[1]);
	close(hand);
	if (rc != 0) {
		close(sv[0]);
		snprintf(err, errlen, "cannot hand the supervisor a socket on descriptor %d: %s",
		    hand, strerror(-rc));
		return -1;
	}
	return sv[0];
}

int hand_keys(int sock, int *keys_fd, char *err, size_t errlen)
{
	int fds[HAND_FDS_MAX], nfds, cut;
	ssize_t k = hand_recv(sock, 0, fds, &nfds, &cut);

	*keys_fd = -1;
	if (k < 0) {
		snprintf(err, errlen, "cannot read the supervisor's answer: %s", strerror(errno));
		return -1;
	}
	if (k == 0 || nfds > 1 || cut) {
		hand_close_all(fds, nfds);
		snprintf(err, errlen, "%s",
		    k == 0 ? "the supervisor closed the socket before answering: it refused this"
		             " worker (its log says why)" :
		             "the supervisor's answer holds more than the keys' descriptor");
		return -1;
	}
	if (nfds == 1)
		*keys_fd = fds[0];
	return 0;
}

int hand_take(int hand, int *sock)
{
	int fds[HAND_FDS_MAX], nfds, cut;
	ssize_t k = hand_recv(hand, MSG_DONTWAIT, fds, &nfds, &cut);

	*sock = -1;
	if (k < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	if (k == 0 && nfds == 0)
		return -EPIPE;
	if (nfds != 1 || cut) {
		hand_close_all(fds, nfds);
		return -EPROTO;
	}
	*sock = fds[0];
	return 1;
}

int hand_vet(pid_t pid, int sock, char *why, size_t whylen)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	int domain = -1, type = -1;
	socklen_t ilen = sizeof domain;
	pid_t tracer;

	if (getsockopt(sock, SOL_SOCKET, SO_DOMAIN, &domain, &ilen) != 0 || domain != AF_UNIX ||
	    (ilen = sizeof type, getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &ilen)) != 0 ||
	    type != SOCK_STREAM) {
		snprintf(why, whylen, "what it handed over is no Unix stream socket");
		return -1;
	}
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0) {
		snprintf(why, whylen, "cannot read who made the socket it handed over: %s",
		    strerror(errno));
		return -1;
	}
	if (cr.pid != pid) {
		snprintf(why, whylen,
		    "the socket handed over in its name was made by process %ld, not by the worker",
		    (long)cr.pid);
		return -1;
	}
	tracer = procs_tracer(pid);
	if (!hand_tracer_ok(tracer, getpid())) {
		if (tracer < 0)
			snprintf(why, whylen,
			    "cannot read /proc/%ld/status to see whether a process traces it",
			    (long)pid);
		else
			snprintf(why, whylen, "process %ld traces it and not the supervisor",
			    (long)tracer);
		return -1;
	}
	return 0;
}

int hand_answer(int sock, int keys_fd)
{
	return hand_send(sock, keys_fd, MSG_DONTWAIT);
}
