/* A framed message channel over a libuv pipe: the supervisor's side of a worker socket or
 * a control connection. Frames in are decoded strictly (proto/wire.h); a malformed frame
 * (after on_refused, when set) or EOF closes the channel. */
#ifndef AUTOPACK_CHAN_H
#define AUTOPACK_CHAN_H

#include <stdbool.h>
#include <uv.h>

#include "proto/wire.h"

struct chan;

/* Called with each decoded message; the callee owns `m` and frees it with proto_msg_free. */
typedef void (*chan_msg_cb)(struct chan *c, struct proto_msg *m);
/* Called once the channel is closed and its handle released; `why` is NULL on clean EOF. */
typedef void (*chan_close_cb)(struct chan *c, const char *why);
/* Called, when set, with the reason a frame was refused as malformed, or was cut short by
 * the peer's end of stream (a half-close, after which the peer may still read), in place
 * of closing the channel at once: the callee closes it (chan_close_after_write, once it
 * has told the peer why). */
typedef void (*chan_refused_cb)(struct chan *c, const char *why);

struct chan {
	uv_pipe_t pipe;
	struct proto_reader rd;
	chan_msg_cb on_msg;
	chan_close_cb on_close;
	chan_refused_cb on_refused; /* NULL: a malformed frame closes the channel at once */
	bool open;
	bool closing;
	char *why;
	size_t queued;        /* bytes written but not yet flushed */
	size_t max_queued;    /* 0, or the output a peer may leave unread before it is dropped */
	bool serial;          /* one message at a time: the next waits until the reply is written */
	bool reading;         /* the pipe is being read */
	bool last;            /* close once the queued output is written */
	bool corked;          /* frames are gathered in `out` until chan_uncork */
	struct proto_buf out; /* frames packed and not yet handed to the pipe (reused) */
	char *rbuf;           /* the read buffer (reused) */
};

/* Initialise `c` on `loop`; the pipe still has to be opened or accepted into. */
int chan_init(
    uv_loop_t *loop, struct chan *c, size_t max_frame, chan_msg_cb on_msg, chan_close_cb on_close);
/* Start reading. Returns 0 or a libuv error. A serial channel hands on_msg one message
 * at a time: while a reply to it is being written the peer is not read, so a client that
 * sends faster than it reads is held back by its own socket, not buffered. */
int chan_start(struct chan *c);
/* Send one message. Returns 0; a negative errno from proto_msg_pack when it cannot be
 * encoded (nothing is sent, the channel stays open, and err, if not NULL, says why); or a
 * libuv error, after which the channel is closing (UV_ENOBUFS: more than max_queued bytes
 * are waiting for a peer that does not read). */
int chan_send(struct chan *c, const struct proto_msg *m, struct proto_err *err);
/* Gather the frames sent from now on into one write, made by chan_uncork. */
void chan_cork(struct chan *c);
/* Write the frames gathered since chan_cork (see chan_send for the errors). */
int chan_uncork(struct chan *c);
/* Close the channel once everything queued is written (at once when nothing is); the
 * peer is not read any more. */
void chan_close_after_write(struct chan *c);
/* Close the channel with a reason (NULL for a clean close); on_close follows. */
void chan_close(struct chan *c, const char *why);

#endif
