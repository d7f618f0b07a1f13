/* The control client (see client.h). */
#include "ctl/client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Connect to the supervisor's control socket; -1 with err set on failure. */
int client_connect(struct ctl_client *c, const char *path, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	c->timeout_ms = timeout_ms;
	proto_fd_init(&c->io, -1, PROTO_FRAME_MAX_DEFAULT);
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c->io.fd = fd;
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
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
	case PROTO_FD_TIMEOUT:
		snprintf(err, errlen, "no reply from the supervisor within %d ms", c->timeout_ms);
		return -1;
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
