/* Blocking frame I/O over a file descriptor (see fdio.h). */
#include "proto/fdio.h"
#include "common/util.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FDIO_READ_CHUNK 65536

/* Start a channel on fd with empty buffers. */
void proto_fd_init(struct proto_fd *c, int fd, size_t max_frame)
{
	c->fd = fd;
	c->chunk = NULL;
	proto_reader_init(&c->rd, max_frame);
	proto_buf_init(&c->out);
}

/* Free the buffers (the fd stays open). */
void proto_fd_free(struct proto_fd *c)
{
	proto_reader_free(&c->rd);
	proto_buf_free(&c->out);
	free(c->chunk);
	c->chunk = NULL;
}

/* Encode a message after the queued ones; a negative errno with err set. */
int proto_fd_queue(struct proto_fd *c, const struct proto_msg *m, struct proto_err *err)
{
	return proto_msg_pack(m, &c->out, err);
}

/* Write n bytes once: send() without SIGPIPE on a socket, else write(). */
static ssize_t fdio_write(int fd, const void *p, size_t n)
{
	ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

	if (k < 0 && errno == ENOTSOCK)
		k = write(fd, p, n);
	return k;
}

/* Write every queued frame; -errno when the peer cannot be written to. */
int proto_fd_flush(struct proto_fd *c)
{
	size_t off = 0;
	int rc = 0;

	while (off < c->out.len) {
		ssize_t k = fdio_write(c->fd, c->out.data + off, c->out.len - off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			rc = k < 0 ? -errno : -EPIPE;
			break;
		}
		off += (size_t)k;
	}
	memmove(c->out.data, c->out.data + off, c->out.len - off);
	c->out.len -= off;
	return rc;
}

/* Queue and write one message. */
int proto_fd_send(struct proto_fd *c, const struct proto_msg *m, struct proto_err *err)
{
	int rc = proto_fd_queue(c, m, err);

	return rc != 0 ? rc : proto_fd_flush(c);
}

/* Milliseconds left until `deadline` for poll: -1 without a deadline, else at least 0. */
static int fdio_left(int timeout_ms, uint64_t deadline)
{
	uint64_t now;

	if (timeout_ms <= 0)
		return timeout_ms;
	now = clock_mono_ms();
	return now >= deadline ? 0 : (int)(deadline - now);
}

/* Read what a socket holds without waiting: recv() with MSG_DONTWAIT, one system call
 * where poll() and read() are two. Returns its result, with errno ENOTSOCK when fd is
 * not a socket (nothing read). */
static ssize_t fdio_read_now(int fd, void *p, size_t n)
{
	return recv(fd, p, n, MSG_DONTWAIT);
}

/* Take the next message, waiting at most timeout_ms for bytes. With timeout_ms 0 a
 * socket is read at once without waiting (EAGAIN: none), other descriptors are polled
 * first. */
enum proto_fd_rc proto_fd_recv(
    struct proto_fd *c, struct proto_msg *m, int timeout_ms, struct proto_err *err)
{
	uint64_t deadline = timeout_ms > 0 ? clock_mono_ms() + (uint64_t)timeout_ms : 0;
	bool now = timeout_ms == 0;
	uint8_t *buf;

	if (c->chunk == NULL)
		c->chunk = xmalloc(FDIO_READ_CHUNK);
	buf = c->chunk;
	for (;;) {
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int rc = proto_reader_next(&c->rd, m, err);
		ssize_t k;

		if (rc != 0)
			return rc > 0 ? PROTO_FD_MSG : PROTO_FD_EBADFRAME;
		if (now) {
			k = fdio_read_now(c->fd, buf, FDIO_READ_CHUNK);
			if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return PROTO_FD_TIMEOUT;
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0 && errno == ENOTSOCK) {
				now = false;
				continue;
			}
		} else {
			rc = poll(&pfd, 1, fdio_left(timeout_ms, deadline));
			if (rc < 0 && errno == EINTR)
				continue;
			if (rc < 0) {
				snprintf(err->text, sizeof err->text, "waiting for a frame: %s",
				    strerror(errno));
				return PROTO_FD_EIO;
			}
			if (rc == 0)
				return PROTO_FD_TIMEOUT;
			k = read(c->fd, buf, FDIO_READ_CHUNK);
		}
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k == 0 || (k < 0 && errno == ECONNRESET))
			return PROTO_FD_EOF;
		if (k < 0) {
			snprintf(
			    err->text, sizeof err->text, "reading a frame: %s", strerror(errno));
			return PROTO_FD_EIO;
		}
		if (proto_reader_feed(&c->rd, buf, (size_t)k, err) != 0)
			return PROTO_FD_EBADFRAME;
	}
}
