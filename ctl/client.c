#include "ctl/client.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int client_connect(struct ctl_client *c, const char *path, int timeout_ms, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	c->fd = -1;
	c->timeout_ms = timeout_ms;
	proto_reader_init(&c->rd, PROTO_FRAME_MAX_DEFAULT);
	if (strlen(path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "control socket path too long: %s", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		snprintf(err, errlen, "cannot connect to the supervisor at %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int client_send(struct ctl_client *c, const struct proto_request *req, char *err, size_t errlen)
{
	struct proto_msg m = { .type = PROTO_REQUEST };
	struct proto_buf b;
	size_t off = 0;

	m.u.request = *req;
	proto_buf_init(&b);
	if (proto_pack(&m, &b) != 0) {
		snprintf(err, errlen, "request too large to encode");
		proto_buf_free(&b);
		return -1;
	}
	while (off < b.len) {
		ssize_t n = send(c->fd, b.data + off, b.len - off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "sending to the supervisor: %s", strerror(errno));
			proto_buf_free(&b);
			return -1;
		}
		off += (size_t)n;
	}
	proto_buf_free(&b);
	return 0;
}

int client_recv(struct ctl_client *c, struct proto_msg *m, char *err, size_t errlen)
{
	uint64_t deadline = clock_mono_ms() + (uint64_t)c->timeout_ms;
	struct proto_err perr;
	uint8_t buf[65536];

	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int64_t left = (int64_t)(deadline - clock_mono_ms());
		ssize_t n;
		int rc = proto_reader_next(&c->rd, m, &perr);

		if (rc < 0) {
			snprintf(err, errlen, "bad frame from the supervisor: %s", perr.text);
			return -1;
		}
		if (rc == 1) {
			if (m->type == PROTO_REPLY)
				return 0;
			snprintf(err, errlen, "the supervisor sent a %s message instead of a reply",
			    proto_type_name(m->type));
			proto_msg_free(m);
			return -1;
		}
		if (c->timeout_ms > 0 && left <= 0) {
			snprintf(err, errlen, "no reply from the supervisor within %d ms",
			    c->timeout_ms);
			return -1;
		}
		if (poll(&pfd, 1, c->timeout_ms > 0 ? (int)left : -1) < 0 && errno != EINTR) {
			snprintf(err, errlen, "waiting for the supervisor: %s", strerror(errno));
			return -1;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(c->fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "the supervisor closed the connection%s%s",
			    n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			return -1;
		}
		if (proto_reader_feed(&c->rd, buf, (size_t)n, &perr) != 0) {
			snprintf(err, errlen, "bad frame from the supervisor: %s", perr.text);
			return -1;
		}
	}
}

void client_close(struct ctl_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	proto_reader_free(&c->rd);
}
