/* Blocking frame I/O over one file descriptor: the worker's and autopack-ctl's side of a
 * socket (the supervisor's side is non-blocking, in its event loop: supervisor/chan.c).
 * Messages are written whole, after EINTR and without SIGPIPE; frames are read through
 * the strict incremental reader (wire.h). */
#ifndef AUTOPACK_PROTO_FDIO_H
#define AUTOPACK_PROTO_FDIO_H

#include "proto/wire.h"

struct proto_fd {
	int fd;
	struct proto_reader rd;
	struct proto_buf out; /* encoded frames not yet written */
	uint8_t *chunk;       /* what one read takes, made at the first read (off the stack) */
};

/* What proto_fd_recv returns. */
enum proto_fd_rc {
	PROTO_FD_MSG = 1,        /* a message */
	PROTO_FD_TIMEOUT = 0,    /* none within the time given */
	PROTO_FD_EOF = -1,       /* the peer closed the connection (or reset it) */
	PROTO_FD_EBADFRAME = -2, /* a malformed frame: err says which field and why */
	PROTO_FD_EIO = -3,       /* reading failed: err says why */
};

/* Use `fd` (not closed by proto_fd_free); frames over max_frame bytes (0: the default)
 * are refused. */
void proto_fd_init(struct proto_fd *c, int fd, size_t max_frame);
/* Release the buffers. */
void proto_fd_free(struct proto_fd *c);
/* Encode `m` after the frames already queued. Returns 0, or a negative errno with err
 * saying which field cannot be encoded (nothing is queued). */
int proto_fd_queue(struct proto_fd *c, const struct proto_msg *m, struct proto_err *err);
/* Write every queued frame. Returns 0, or -errno when the peer cannot be written to
 * (what was not written stays queued). */
int proto_fd_flush(struct proto_fd *c);
/* Queue and flush one message: 0, an encoding error (err set) or -errno from the write. */
int proto_fd_send(struct proto_fd *c, const struct proto_msg *m, struct proto_err *err);
/* Take the next message into *m (the caller frees it with proto_msg_free), waiting for
 * bytes at most timeout_ms (0: not at all; -1: without limit). A frame already read is
 * returned at once. */
enum proto_fd_rc proto_fd_recv(
    struct proto_fd *c, struct proto_msg *m, int timeout_ms, struct proto_err *err);

#endif
